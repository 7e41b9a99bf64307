// What one row found, how it is judged, and the table `npm run soak` prints. Pure (report.test.ts).

import type { SubscriberFigures } from './audit.ts';
import type { LedgerCounts, LossSummary } from './ledger.ts';
import type { LogMessage } from './logs.ts';
import type { MemberMemory, UnexpectedExit } from './monitor.ts';
import type { RowName } from './options.ts';
import type { WriterFigures } from './writer.ts';

export interface RowResult {
  readonly row: RowName;
  readonly summary: string;
  /** The row's seed (derived from the run's). */
  readonly seed: number;
  /** Set when the row could not run to the end (a member did not start, a fault could not be injected). */
  readonly error: string | undefined;
  readonly writes: LedgerCounts | undefined;
  readonly writers: readonly WriterFigures[];
  readonly losses: LossSummary | undefined;
  /** Writes applied twice by one server, summed over the servers' subscriptions. */
  readonly duplicatesApplied: number | undefined;
  readonly subscribers: readonly SubscriberFigures[];
  /** From the end of the recovery until every server held every write acknowledged by then; undefined if it did not. */
  readonly convergeSeconds: number | undefined;
  /** Every acknowledged write was at every server before the deadline. */
  readonly converged: boolean;
  /** From the end of the load until every server held every acknowledged write. */
  readonly drainSeconds: number | undefined;
  readonly convergeTimeoutSeconds: number;
  readonly memory: readonly MemberMemory[];
  readonly unexpectedExits: readonly UnexpectedExit[];
  /** Seconds from the start of the load. */
  readonly timeline: { readonly faultAtSeconds?: number; readonly recoveredAtSeconds?: number; readonly loadEndSeconds?: number };
  readonly fault: string | undefined;
  /** The member the fault is about, whose memory the notes show (the slow subscriber's server). */
  readonly watchedMember: string | undefined;
  readonly recovery: string | undefined;
  readonly logs: readonly LogMessage[];
  /** Where the members' directories (logs, data) are, while kept. */
  readonly directory: string;
}

export type Verdict = 'ok' | 'LOST' | 'NOT CONVERGED' | 'MEMBER DIED' | 'ERROR';

/** The worst thing a row found. A row fails unless it is `ok`. */
export function verdict(result: RowResult): Verdict {
  if (result.error !== undefined) return 'ERROR';
  if ((result.losses?.lost ?? 0) > 0) return 'LOST';
  if (!result.converged) return 'NOT CONVERGED';
  if (result.unexpectedExits.length > 0) return 'MEMBER DIED';
  return 'ok';
}

/** The member with the highest anonymous memory peak. */
export function peakMemory(memory: readonly MemberMemory[]): MemberMemory | undefined {
  let peak: MemberMemory | undefined;
  for (const member of memory) if (peak === undefined || member.peakMiB > peak.peakMiB) peak = member;
  return peak;
}

function formatSeconds(seconds: number): string {
  return seconds < 10 ? `${seconds.toFixed(1)} s` : `${Math.round(seconds)} s`;
}

function formatLost(losses: LossSummary | undefined): string {
  if (losses === undefined) return '—';
  if (losses.lost === 0) return '0';
  const sites = Object.entries(losses.lostBySite).map(([site, count]) => `${count} at site ${site}`).join(', ');
  return `${losses.lost} (${sites})`;
}

function formatConverge(result: RowResult): string {
  if (result.error !== undefined && result.writes === undefined) return '—';
  if (result.convergeSeconds !== undefined) return formatSeconds(result.convergeSeconds);
  return `no (> ${result.convergeTimeoutSeconds} s)`;
}

function formatMemory(memory: readonly MemberMemory[]): string {
  const peak = peakMemory(memory);
  if (peak === undefined) return '—';
  const growth = peak.peakMiB - peak.firstMiB;
  return `${Math.round(peak.peakMiB)} MiB ${peak.member} (+${Math.round(growth)})`;
}

export const TABLE_HEADER = [
  'row', 'acked', 'unacked', 'lost', 'duplicates applied', 'time to converge', 'peak anonymous memory', 'result',
] as const;

export function tableCells(result: RowResult): string[] {
  const writes = result.writes;
  return [
    result.row,
    writes === undefined ? '—' : String(writes.acknowledged),
    writes === undefined ? '—' : String(writes.failed + writes.pending),
    formatLost(result.losses),
    result.duplicatesApplied === undefined ? '—' : String(result.duplicatesApplied),
    formatConverge(result),
    formatMemory(result.memory),
    verdict(result),
  ];
}

/** A Markdown table: readable in a terminal and pasteable into docs/RELIABILITY.md. */
export function formatTable(results: readonly RowResult[]): string {
  const cells = results.map(tableCells);
  const widths = TABLE_HEADER.map((title, column) => Math.max(title.length, ...cells.map((line) => line[column]!.length)));
  const line = (values: readonly string[]): string => `| ${values.map((value, column) => value.padEnd(widths[column]!)).join(' | ')} |`;
  return [line(TABLE_HEADER), `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

/** Log messages printed under a row; the results file keeps the rest. */
const NOTES_LOG_MESSAGES_MAX = 8;

function writerNote(writer: WriterFigures): string {
  const errors = Object.entries(writer.errors).map(([code, count]) => `${code} ×${count}`).join(', ');
  const skipped = writer.skipped > 0 ? `, ${writer.skipped} slots skipped while stalled` : '';
  const failed = errors.length > 0 ? `; failed: ${errors}` : '';
  const puts = `${writer.issued} puts in ${writer.seconds.toFixed(1)} s (target ${writer.targetPerSecond}/s)`;
  return `  writer site ${writer.site}: ${puts}${skipped}${failed}`;
}

function lossNote(losses: LossSummary): string {
  const { missing, older, foreign } = losses.byVerdict;
  const examples = losses.examples.slice(0, 3).map((finding) => {
    const shown = finding.shown === undefined ? '' : ` (shows ${finding.shown})`;
    return `${finding.key}@${finding.expectedVersion} ${finding.verdict} at ${finding.member}${shown}`;
  });
  return `  lost: ${missing} missing, ${older} older, ${foreign} foreign (server × write); e.g. ${examples.join('; ')}`;
}

function duplicatesNote(subscribers: readonly SubscriberFigures[]): string | undefined {
  const applied = subscribers.filter((subscriber) => subscriber.duplicates > 0);
  if (applied.length === 0) return undefined;
  const parts = applied.map((subscriber) => {
    const examples = subscriber.duplicateExamples.length > 0 ? `, e.g. ${subscriber.duplicateExamples.slice(0, 2).join(', ')}` : '';
    return `${subscriber.duplicates} at ${subscriber.member} (pid ${subscriber.pid})${examples}`;
  });
  return `  applied twice: ${parts.join('; ')}`;
}

function growth(member: MemberMemory): string {
  return `+${(member.peakMiB - member.firstMiB).toFixed(0)} MiB`;
}

/** The fault's member against its site's other servers, which carry the same data and load. */
function watchedNote(memory: readonly MemberMemory[], name: string | undefined): string | undefined {
  const watched = memory.find((member) => member.member === name);
  if (watched === undefined) return undefined;
  const site = /^server(\d+)-/.exec(watched.member)?.[1];
  const peers = memory.filter((member) => member !== watched && site !== undefined && member.member.startsWith(`server${site}-`));
  const against = peers.length > 0 ? ` against ${peers.map((peer) => `${growth(peer)} at ${peer.member}`).join(', ')}` : '';
  return `  ${watched.member} (the fault's member): anonymous memory first ${watched.firstMiB.toFixed(0)}, ` +
    `peak ${watched.peakMiB.toFixed(0)} at ${watched.peakAtSeconds.toFixed(0)} s, last ${watched.lastMiB.toFixed(0)} MiB: ` +
    `${growth(watched)}${against}`;
}

/** The lines printed under the table for one row: what was done and what went wrong. */
export function rowNotes(result: RowResult): string[] {
  const notes = [`${result.row} (seed ${result.seed}): ${result.summary}`];
  const { faultAtSeconds, recoveredAtSeconds } = result.timeline;
  if (result.fault !== undefined) notes.push(`  fault at ${faultAtSeconds?.toFixed(1)} s: ${result.fault}`);
  if (result.recovery !== undefined) notes.push(`  recovered at ${recoveredAtSeconds?.toFixed(1)} s: ${result.recovery}`);
  if (result.error !== undefined) notes.push(`  ERROR: ${result.error}`);
  notes.push(...result.writers.map(writerNote));
  if (result.drainSeconds !== undefined) {
    notes.push(`  every acknowledged write at every server ${formatSeconds(result.drainSeconds)} after the load stopped`);
  }
  if (result.losses !== undefined && result.losses.lost > 0) notes.push(lossNote(result.losses));
  const duplicates = duplicatesNote(result.subscribers);
  if (duplicates !== undefined) notes.push(duplicates);
  for (const exit of result.unexpectedExits) notes.push(`  ${exit.member} (pid ${exit.pid}) exited by itself at ${exit.atSeconds.toFixed(1)} s`);
  const peak = peakMemory(result.memory);
  if (peak !== undefined) {
    notes.push(`  peak anonymous memory: ${peak.peakMiB.toFixed(0)} MiB at ${peak.member} at ${peak.peakAtSeconds.toFixed(0)} s ` +
      `(first ${peak.firstMiB.toFixed(0)}, last ${peak.lastMiB.toFixed(0)} MiB)`);
  }
  const watched = watchedNote(result.memory, result.watchedMember);
  if (watched !== undefined) notes.push(watched);
  for (const message of result.logs.slice(0, NOTES_LOG_MESSAGES_MAX)) {
    notes.push(`  log ${message.level} ${message.member} ×${message.count}: ${message.example}`);
  }
  if (result.logs.length > NOTES_LOG_MESSAGES_MAX) {
    notes.push(`  … ${result.logs.length - NOTES_LOG_MESSAGES_MAX} more kinds of warning in the results file`);
  }
  return notes;
}
