// What the benchmark prints and records: the machine, the comparison table, profile tables.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from './processes.ts';
import { availableParallelism, loadavg, totalmem, release } from 'node:os';
import type { ProfileSummary } from './cpu-profile.ts';
import type { Spread } from './stats.ts';

export interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly redis: string;
  /** 1-minute load average when the bench started (it lags: it still counts the last minute). */
  readonly loadAverageAtStart: number;
  /** Share of all CPUs busy during the second before the bench started (/proc/stat), 0..1. */
  readonly cpuBusyBeforeStart: number | undefined;
}

/** More than this share of the CPUs busy before the bench starts means others are using them. */
export const BUSY_CPU_SHARE = 0.1;

function cpuTimes(): { total: number; idle: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 8).map(Number);
    return { total: fields.reduce((sum, value) => sum + value, 0), idle: fields[3]! + fields[4]! };
  } catch {
    return undefined;
  }
}

/** The share of all CPUs busy over `intervalMs`, from /proc/stat; undefined where there is none. */
export async function measureCpuBusy(intervalMs: number): Promise<number | undefined> {
  const before = cpuTimes();
  await new Promise((resolve) => setTimeout(resolve, intervalMs));
  const after = cpuTimes();
  if (before === undefined || after === undefined || after.total === before.total) return undefined;
  return 1 - (after.idle - before.idle) / (after.total - before.total);
}

export function describeMachine(redisVersion: string, cpuBusyBeforeStart: number | undefined): Machine {
  let cpuModel = 'unknown';
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((text) => text.startsWith('model name'));
    if (line !== undefined) cpuModel = line.slice(line.indexOf(':') + 1).trim();
  } catch {
    // Not Linux: leave it unknown rather than guess.
  }
  return {
    cpus: availableParallelism(),
    cpuModel,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    kernel: release(),
    node: process.version,
    redis: redisVersion,
    loadAverageAtStart: loadavg()[0]!,
    cpuBusyBeforeStart,
  };
}

/** The issue's aims: Strait/Redis at most `max` (latency) or at least `min` (throughput). */
export type Aim = { readonly max: number } | { readonly min: number };

export interface Row {
  readonly metric: string;
  readonly strait: Spread | undefined;
  readonly redis: Spread | undefined;
  readonly aim?: Aim;
  /** Shown instead of a Strait figure (e.g. why there is none). */
  readonly straitNote?: string;
  readonly decimals: number;
}

export interface TableRow {
  readonly metric: string;
  readonly strait: Spread | undefined;
  readonly redis: Spread | undefined;
  /** Strait median / Redis median. */
  readonly ratio: number | undefined;
  readonly aim: string;
}

function formatNumber(value: number, decimals: number): string {
  if (Number.isNaN(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

function formatSpread(spread: Spread | undefined, decimals: number): string {
  if (spread === undefined) return '—';
  const median = formatNumber(spread.median, decimals);
  if (spread.runs.length < 2) return median;
  return `${median} (${formatNumber(spread.min, decimals)}–${formatNumber(spread.max, decimals)})`;
}

function judge(ratio: number | undefined, aim: Aim | undefined): string {
  if (aim === undefined) return '';
  const goal = 'max' in aim ? `≤ ${aim.max.toFixed(2)}` : `≥ ${aim.min.toFixed(2)}`;
  if (ratio === undefined || Number.isNaN(ratio)) return `${goal}: no Redis figure`;
  const met = 'max' in aim ? ratio <= aim.max : ratio >= aim.min;
  return `${goal}: ${met ? 'met' : 'MISSED'}`;
}

export function tableRows(rows: readonly Row[]): TableRow[] {
  return rows.map((row) => {
    const ratio = row.strait !== undefined && row.redis !== undefined && row.redis.median !== 0 ? row.strait.median / row.redis.median : undefined;
    return { metric: row.metric, strait: row.strait, redis: row.redis, ratio, aim: judge(ratio, row.aim) };
  });
}

/** A Markdown table: readable in a terminal and pasteable into docs/BENCHMARKS.md. */
/**
 * The rows as a Markdown table. `columns` names the two compared columns (Strait beside Redis by
 * default; TLS on beside TLS off for the TLS table).
 */
export function formatTable(rows: readonly Row[], columns: { readonly strait: string; readonly redis: string } = { strait: 'Strait', redis: 'Redis' }): string {
  const judged = tableRows(rows);
  const cells = rows.map((row, index) => {
    const result = judged[index]!;
    return [
      row.metric,
      row.straitNote ?? formatSpread(row.strait, row.decimals),
      formatSpread(row.redis, row.decimals),
      result.ratio === undefined || Number.isNaN(result.ratio) ? '—' : `${result.ratio.toFixed(2)}×`,
      result.aim,
    ];
  });
  const header = ['metric', columns.strait, columns.redis, `${columns.strait}/${columns.redis}`, 'aim (issue)'];
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((line) => line[column]!.length)));
  const line = (values: readonly string[]): string => `| ${values.map((value, column) => value.padEnd(widths[column]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

export function formatProfile(title: string, summary: ProfileSummary, limit: number): string {
  const lines = [
    `${title}: ${formatNumber(summary.busyMs, 0)} ms busy of ${formatNumber(summary.windowMs, 0)} ms (${formatNumber((summary.busyMs / Math.max(1, summary.windowMs)) * 100, 0)}% of one core)`,
    '',
    '| # | self ms | % busy | function (file:line) |',
    '|---|---|---|---|',
  ];
  summary.functions.slice(0, limit).forEach((entry, index) => {
    lines.push(`| ${index + 1} | ${formatNumber(entry.selfMs, 0)} | ${formatNumber(entry.share * 100, 1)} | \`${entry.name}\` |`);
  });
  lines.push('', '| self ms | % busy | file |', '|---|---|---|');
  for (const entry of summary.files.slice(0, 10)) lines.push(`| ${formatNumber(entry.selfMs, 0)} | ${formatNumber(entry.share * 100, 1)} | \`${entry.name}\` |`);
  return lines.join('\n');
}

export function formatMachine(machine: Machine): string {
  return [
    `machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}`,
    `node ${machine.node}; ${machine.redis}`,
    `before the start: ${machine.cpuBusyBeforeStart === undefined ? 'CPU use unknown' : `${(machine.cpuBusyBeforeStart * 100).toFixed(0)}% of the CPUs busy`}, load average ${machine.loadAverageAtStart.toFixed(2)}` +
      (machine.cpuBusyBeforeStart !== undefined && machine.cpuBusyBeforeStart > BUSY_CPU_SHARE ? ' — WARNING: other processes are using the CPUs; figures will be lower and noisier than on an idle machine' : ''),
  ].join('\n');
}

const REPOSITORY_ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_DIRECTORY = join(REPOSITORY_ROOT, 'bench', 'results');

/** `bench/results/<name>.json`; returns the path. */
export function writeResults(name: string, content: unknown): string {
  mkdirSync(RESULTS_DIRECTORY, { recursive: true });
  const path = join(RESULTS_DIRECTORY, `${name}.json`);
  writeFileSync(path, `${JSON.stringify(content, null, 2)}\n`);
  return path;
}

/** A timestamp usable in a file name. */
export function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

/** The code measured: commit and how many files differ from it (others may be editing). */
export async function sourceState(): Promise<{ commit: string; changedFiles: number } | undefined> {
  try {
    const commit = await runCommand('git', ['-C', REPOSITORY_ROOT, 'rev-parse', 'HEAD'], { timeoutMs: 10_000 });
    const status = await runCommand('git', ['-C', REPOSITORY_ROOT, 'status', '--porcelain'], { timeoutMs: 10_000 });
    if (commit.status !== 0 || status.status !== 0) return undefined;
    return { commit: commit.stdout.trim(), changedFiles: status.stdout.split('\n').filter((line) => line.trim().length > 0).length };
  } catch {
    return undefined;
  }
}
