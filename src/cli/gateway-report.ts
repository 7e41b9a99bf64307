// How the CLI prints gateway senders and receivers: the tables of `list gateways`, the summary
// in `strait status`, the per-copy detail of `status gateway-sender` and the problem lines.
// Pure functions of the statuses (and the current time, for ages); no I/O.

import type { SenderStatus } from '../protocol/messages.ts';
import { formatAddress, type Address } from '../runtime/runtime.ts';
import { table } from './report.ts';

export interface ReceiverRow {
  readonly member: string;
  /** null for a receiver that dials out (it listens on nothing). */
  readonly address: Address | null;
  readonly dialOut?: boolean;
}

/** Primary first, then secondaries, each group by member name. */
export function sortCopies(senders: readonly SenderStatus[]): SenderStatus[] {
  return [...senders].sort((a, b) => a.id.localeCompare(b.id) || (a.role === b.role ? 0 : a.role === 'primary' ? -1 : 1) || a.member.localeCompare(b.member));
}

/** The receiver a copy sends to: the one it dialed, or the dial-out receiver whose link it uses. */
function receiverText(sender: SenderStatus): string {
  if (sender.dialInFrom !== undefined) return `dial-in from ${sender.dialInFrom}`;
  return sender.connectedReceiver === null ? '-' : formatAddress(sender.connectedReceiver);
}

/** "never", "250 ms ago", "4.2 s ago", "3 min ago", from a wall-clock timestamp. */
export function formatAge(atMs: number, nowMs: number): string {
  if (atMs === 0) return 'never';
  const age = Math.max(0, nowMs - atMs);
  if (age < 1000) return `${Math.round(age)} ms ago`;
  if (age < 60_000) return `${(age / 1000).toFixed(1)} s ago`;
  if (age < 3_600_000) return `${Math.round(age / 60_000)} min ago`;
  return `${(age / 3_600_000).toFixed(1)} h ago`;
}

/** One line per copy whose status names a problem: the text says what is missing and where. */
export function problemLines(senders: readonly SenderStatus[]): string[] {
  return sortCopies(senders)
    .filter((sender) => sender.problem !== null)
    .map((sender) => `PROBLEM ${sender.id} → site ${sender.remoteSite} on ${sender.member} (${sender.role}): ${sender.problem}`);
}

/** Every copy of every sender: `strait list gateways`. */
export function sendersTable(senders: readonly SenderStatus[]): string {
  if (senders.length === 0) return 'No gateway senders.';
  const rows = [['SENDER', 'MEMBER', 'REMOTE SITE', 'ROLE', 'STATE', 'QUEUE', 'RECEIVER']];
  for (const sender of sortCopies(senders)) {
    rows.push([sender.id, sender.member, String(sender.remoteSite), sender.role, sender.state, String(sender.queueEvents), receiverText(sender)]);
  }
  return table(rows);
}

export function receiversTable(receivers: readonly ReceiverRow[]): string {
  if (receivers.length === 0) return 'No gateway receivers.';
  const rows = [['RECEIVER MEMBER', 'ADDRESS', 'LINKS']];
  for (const receiver of [...receivers].sort((a, b) => a.member.localeCompare(b.member))) {
    rows.push(receiver.address === null || receiver.dialOut === true
      ? [receiver.member, '-', 'dial-out (opens them to the senders of other sites)']
      : [receiver.member, formatAddress(receiver.address), 'accepts them']);
  }
  return table(rows);
}

/** One row per sender id, from its primary (or any copy when none is primary): `strait status`. */
export function senderSummaryTable(senders: readonly SenderStatus[]): string {
  if (senders.length === 0) return 'No gateway senders.';
  const byId = new Map<string, SenderStatus[]>();
  for (const sender of sortCopies(senders)) byId.set(sender.id, [...(byId.get(sender.id) ?? []), sender]);
  const rows = [['SENDER', 'REMOTE SITE', 'PRIMARY', 'STATE', 'QUEUE', 'LAG MS', 'SENT', 'DEAD LETTERS', 'COPIES']];
  for (const [id, copies] of byId) {
    const primary = copies.find((copy) => copy.role === 'primary');
    const shown = primary ?? copies[0]!;
    rows.push([
      id,
      String(shown.remoteSite),
      primary?.member ?? '-',
      shown.state,
      String(shown.queueEvents),
      String(shown.lagMs),
      String(copies.reduce((sum, copy) => sum + copy.eventsSent, 0)),
      String(shown.deadLetters),
      String(copies.length),
    ]);
  }
  return table(rows);
}

/** Every figure of every copy of one sender: `strait status gateway-sender --id S`. */
export function senderDetail(senders: readonly SenderStatus[], nowMs: number): string {
  const copies = sortCopies(senders);
  const first = copies[0];
  if (first === undefined) return 'No copies.';
  const lines = [`Gateway sender ${first.id} → site ${first.remoteSite}: ${copies.length} ${copies.length === 1 ? 'copy' : 'copies'}`, ''];
  const rows = [['MEMBER', 'ROLE', 'STATE', 'RECEIVER', 'QUEUE', 'QUEUE BYTES', 'OVERFLOW', 'IN FLIGHT', 'SENT', 'LAST ACK', 'LAG MS', 'DEAD LETTERS']];
  for (const copy of copies) {
    rows.push([
      copy.member,
      copy.role,
      copy.state,
      receiverText(copy),
      String(copy.queueEvents),
      String(copy.queueBytes),
      String(copy.overflowEvents),
      String(copy.batchesInFlight),
      String(copy.eventsSent),
      formatAge(copy.lastAckAtMs, nowMs),
      String(copy.lagMs),
      String(copy.deadLetters),
    ]);
  }
  lines.push(table(rows));
  const parallel = copies.filter((copy) => copy.parallel !== undefined);
  if (parallel.length > 0) {
    const counts = parallel.map((copy) => `${copy.member} ${copy.parallel!.dispatching} of the ${copy.parallel!.held} it holds`).join(', ');
    lines.push('', `Parallel sender: buckets each copy dispatches — ${counts}.`);
  }
  for (const copy of copies) {
    const window = copy.sendWindow;
    if (window === undefined) continue;
    const roundTrip = window.rttMs === null || window.baseRttMs === null ? 'no acknowledgement yet' : `round trip ${window.rttMs} ms (shortest ${window.baseRttMs} ms)`;
    lines.push('', `${copy.member}: send window ${window.batches} batches, ${window.bytesInFlight} bytes in flight, ${roundTrip}.`);
  }
  const extras = copies.filter((copy) => (copy.eventsConflated ?? 0) > 0 || (copy.filterFailures ?? 0) > 0);
  for (const copy of extras) {
    lines.push(`${copy.member}: ${copy.eventsConflated ?? 0} events conflated into later ones, ${copy.filterFailures ?? 0} event filter failures (STRAIT_FILTER_FAILED in its log)`);
  }
  const problems = problemLines(copies);
  if (problems.length > 0) lines.push('', ...problems);
  const deadLetters = copies.filter((copy) => copy.deadLetters > 0);
  if (deadLetters.length > 0) {
    lines.push('', `${deadLetters.map((copy) => `${copy.member} holds ${copy.deadLetters}`).join(', ')} dead letters (events site ${first.remoteSite} refused); once fixed, replay them with: strait resume gateway-sender --id ${first.id} --replay-dead-letters`);
  }
  return lines.join('\n');
}
