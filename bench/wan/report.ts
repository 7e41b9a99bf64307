// The WAN benchmark's table: one row per figure, Strait beside Redis and NATS JetStream with
// ratio columns, each cell the median of the runs with min–max; and the targets, judged.

import type { Spread } from '../stats.ts';

export interface WanRow {
  readonly metric: string;
  readonly strait?: Spread | undefined;
  readonly redis?: Spread | undefined;
  readonly nats?: Spread | undefined;
  readonly decimals: number;
  /** Shown instead of the figure, e.g. why there is none, or at which rate it was measured. */
  readonly straitNote?: string;
  readonly redisNote?: string;
  readonly natsNote?: string;
}

export interface Target {
  readonly target: string;
  readonly met: boolean | undefined;
  readonly detail: string;
}

export function formatNumber(value: number, decimals: number): string {
  if (Number.isNaN(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

export function formatSpread(spread: Spread | undefined, decimals: number): string {
  if (spread === undefined) return '—';
  const median = formatNumber(spread.median, decimals);
  if (spread.runs.length < 2) return median;
  return `${median} (${formatNumber(spread.min, decimals)}–${formatNumber(spread.max, decimals)})`;
}

function ratio(strait: Spread | undefined, peer: Spread | undefined): string {
  if (strait === undefined || peer === undefined || Number.isNaN(strait.median) || Number.isNaN(peer.median) || peer.median === 0) return '—';
  return `${(strait.median / peer.median).toFixed(2)}×`;
}

function cell(spread: Spread | undefined, decimals: number, note: string | undefined): string {
  if (note === undefined) return formatSpread(spread, decimals);
  return spread === undefined ? note : `${formatSpread(spread, decimals)} ${note}`;
}

/** A Markdown table: readable in a terminal and pasteable into docs/BENCHMARKS.md. */
export function formatWanTable(rows: readonly WanRow[]): string {
  const header = ['metric', 'Strait', 'Redis', 'Strait/Redis', 'NATS JetStream', 'Strait/NATS'];
  const cells = rows.map((row) => [
    row.metric,
    cell(row.strait, row.decimals, row.straitNote),
    cell(row.redis, row.decimals, row.redisNote),
    ratio(row.strait, row.redis),
    cell(row.nats, row.decimals, row.natsNote),
    ratio(row.strait, row.nats),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((line) => line[column]!.length)));
  const line = (values: readonly string[]): string => `| ${values.map((value, column) => value.padEnd(widths[column]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

export function formatTargets(targets: readonly Target[]): string {
  return targets.map((target) => `- ${target.target}: ${target.met === undefined ? 'NOT MEASURED' : target.met ? 'met' : 'MISSED'} — ${target.detail}`).join('\n');
}
