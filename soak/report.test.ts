import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarizeLosses } from './ledger.ts';
import { formatTable, peakMemory, rowNotes, tableCells, TABLE_HEADER, verdict, type RowResult } from './report.ts';

function row(overrides: Partial<RowResult> = {}): RowResult {
  return {
    row: 'primary-sender',
    summary: 'kill -9 the primary',
    seed: 7,
    error: undefined,
    writes: { attempted: 1010, acknowledged: 1000, failed: 8, pending: 2, keysAcknowledged: 800 },
    writers: [{ site: 1, targetPerSecond: 25, issued: 505, seconds: 20, skipped: 3, errors: { STRAIT_TIMEOUT: 8 } }],
    losses: summarizeLosses([]),
    duplicatesApplied: 0,
    subscribers: [],
    convergeSeconds: 2.345,
    converged: true,
    drainSeconds: 0.5,
    convergeTimeoutSeconds: 60,
    memory: [
      { member: 'server1-1', firstMiB: 70, peakMiB: 80.4, lastMiB: 75, peakAtSeconds: 9, series: [] },
      { member: 'server2-2', firstMiB: 72, peakMiB: 310.6, lastMiB: 300, peakAtSeconds: 12, series: [] },
    ],
    unexpectedExits: [],
    timeline: { faultAtSeconds: 5, recoveredAtSeconds: 11, loadEndSeconds: 20 },
    fault: 'kill -9 server1-1 (pid 10)',
    watchedMember: undefined,
    recovery: 'restarted server1-1 (pid 11)',
    logs: [],
    directory: '/tmp/x',
    ...overrides,
  };
}

test('verdict: an error, a loss, no convergence and a member that died by itself each fail a row', () => {
  assert.equal(verdict(row()), 'ok');
  assert.equal(verdict(row({ error: 'boom' })), 'ERROR');
  const lost = summarizeLosses([{ key: 'a', site: 2, member: 'server2-1', verdict: 'missing', shown: undefined, expectedVersion: 1 }]);
  assert.equal(verdict(row({ losses: lost, converged: false })), 'LOST');
  assert.equal(verdict(row({ converged: false, convergeSeconds: undefined })), 'NOT CONVERGED');
  assert.equal(verdict(row({ unexpectedExits: [{ member: 'server1-2', pid: 3, atSeconds: 4 }] })), 'MEMBER DIED');
});

test('the cells: unacked is failed + pending, memory names the peak process and its growth', () => {
  assert.deepEqual(tableCells(row()), ['primary-sender', '1000', '10', '0', '0', '2.3 s', '311 MiB server2-2 (+239)', 'ok']);
  const lost = summarizeLosses([
    { key: 'a', site: 2, member: 'server2-1', verdict: 'missing', shown: undefined, expectedVersion: 1 },
    { key: 'b', site: 1, member: 'server1-1', verdict: 'older', shown: 'b@1', expectedVersion: 2 },
  ]);
  const cells = tableCells(row({ losses: lost, converged: false, convergeSeconds: undefined, convergeTimeoutSeconds: 30 }));
  assert.equal(cells[3], '2 (1 at site 1, 1 at site 2)');
  assert.equal(cells[5], 'no (> 30 s)');
  assert.equal(tableCells(row({ convergeSeconds: 42.4 }))[5], '42 s');
  const failedEarly = tableCells(row({ error: 'no start', writes: undefined, losses: undefined, duplicatesApplied: undefined, memory: [], convergeSeconds: undefined }));
  assert.deepEqual(failedEarly, ['primary-sender', '—', '—', '—', '—', '—', '—', 'ERROR']);
});

test('the table is Markdown with one line per row, columns aligned', () => {
  const lines = formatTable([row(), row({ row: 'site' })]).split('\n');
  assert.equal(lines.length, 4);
  assert.ok(lines[0]!.startsWith('| row '));
  for (const title of TABLE_HEADER) assert.ok(lines[0]!.includes(title), title);
  assert.match(lines[1]!, /^\|-+(\|-+)+\|$/);
  assert.ok(lines.every((line) => line.length === lines[0]!.length));
});

test('peakMemory picks the highest peak', () => {
  assert.equal(peakMemory(row().memory)?.member, 'server2-2');
  assert.equal(peakMemory([]), undefined);
});

test('the notes say what was done, what failed and the writers\' errors', () => {
  const notes = rowNotes(row({
    watchedMember: 'server2-2',
    subscribers: [{ member: 'server1-1', pid: 11, events: 5, duplicates: 1, foreign: 0, duplicateExamples: ['s1-0000001@1 (issued at 5.0 s, settled at 11.0 s)'] }],
    logs: [{ member: 'server1-2', level: 'warn', example: 'replication to server1-1 failed', count: 3 }],
  })).join('\n');
  assert.match(notes, /seed 7/);
  assert.match(notes, /fault at 5\.0 s: kill -9 server1-1/);
  assert.match(notes, /failed: STRAIT_TIMEOUT ×8/);
  assert.match(notes, /applied twice: 1 at server1-1 \(pid 11\), e\.g\. s1-0000001@1/);
  assert.match(notes, /server2-2 \(the fault's member\): anonymous memory first 72, peak 311 at 12 s, last 300 MiB: \+239 MiB$/m);
  assert.match(notes, /log warn server1-2 ×3: replication to server1-1 failed/);
});
