import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../errors.ts';
import type { SenderStatus } from '../protocol/messages.ts';
import { formatAge, problemLines, senderDetail, senderSummaryTable, sendersTable, sortCopies } from './gateway-report.ts';
import { parseDrainTimeout } from './gateway-commands.ts';

function copy(overrides: Partial<SenderStatus>): SenderStatus {
  return {
    id: 'to-site-2', member: 'server1-1', remoteSite: 2, role: 'secondary', state: 'running', connectedReceiver: null,
    queueEvents: 0, queueBytes: 0, overflowEvents: 0, batchesInFlight: 0, eventsSent: 0, lastAckAtMs: 0, lagMs: 0, deadLetters: 0, problem: null,
    ...overrides,
  };
}

describe('gateway report', () => {
  it('sorts the primary first within each sender', () => {
    const copies = [copy({ member: 'a' }), copy({ member: 'b', role: 'primary' }), copy({ id: 'to-site-1', member: 'c', remoteSite: 1 })];
    assert.deepEqual(sortCopies(copies).map((status) => `${status.id}/${status.member}`), ['to-site-1/c', 'to-site-2/b', 'to-site-2/a']);
  });

  it('formats the age of the last acknowledgement', () => {
    assert.equal(formatAge(0, 5000), 'never');
    assert.equal(formatAge(4750, 5000), '250 ms ago');
    assert.equal(formatAge(1000, 5200), '4.2 s ago');
    assert.equal(formatAge(1000, 1000 + 180_000), '3 min ago');
  });

  it('lists a problem per copy that reports one', () => {
    const lines = problemLines([copy({ role: 'primary', problem: 'site 2 has no gateway receiver known to locator(s) l[1]' }), copy({ member: 'server1-2' })]);
    assert.equal(lines.length, 1);
    assert.ok(lines[0]!.startsWith('PROBLEM to-site-2 → site 2 on server1-1 (primary): site 2 has no gateway receiver'));
  });

  it('summarizes each sender from its primary and sums events sent', () => {
    const text = senderSummaryTable([
      copy({ member: 'server1-2', eventsSent: 5, queueEvents: 9 }),
      copy({ role: 'primary', eventsSent: 100, queueEvents: 3, lagMs: 40 }),
    ]);
    const row = text.split('\n')[1]!.split(/\s+/);
    assert.deepEqual(row, ['to-site-2', '2', 'server1-1', 'running', '3', '40', '105', '0', '2']);
    assert.equal(senderSummaryTable([]), 'No gateway senders.');
    assert.equal(sendersTable([]), 'No gateway senders.');
  });

  it('details every copy, its problem and how to replay dead letters', () => {
    const text = senderDetail([copy({ role: 'primary', deadLetters: 2, problem: 'receiver down' }), copy({ member: 'server1-2' })], 10_000);
    assert.match(text, /2 copies/);
    assert.match(text, /^server1-1\s+primary\s+running/m);
    assert.match(text, /^PROBLEM .*receiver down$/m);
    assert.match(text, /--replay-dead-letters/);
  });

  it('details the primary\'s send window and the round trips it was sized from', () => {
    const text = senderDetail([
      copy({ role: 'primary', sendWindow: { batches: 40, bytesInFlight: 9000, baseRttMs: 101.5, rttMs: 104.2 } }),
      copy({ member: 'server1-2', role: 'primary', sendWindow: { batches: 16, bytesInFlight: 0, baseRttMs: null, rttMs: null } }),
      copy({ member: 'server1-3' }),
    ], 10_000);
    assert.match(text, /^server1-1: send window 40 batches, 9000 bytes in flight, round trip 104\.2 ms \(shortest 101\.5 ms\)\.$/m);
    assert.match(text, /^server1-2: send window 16 batches, 0 bytes in flight, no acknowledgement yet\.$/m);
    assert.doesNotMatch(text, /server1-3: send window/);
  });

  it('details a parallel sender: the buckets each copy dispatches, conflation and filter failures', () => {
    const text = senderDetail([
      copy({ role: 'primary', parallel: { dispatching: 57, held: 113, undispatched: 0 }, eventsConflated: 12 }),
      copy({ member: 'server1-2', role: 'primary', parallel: { dispatching: 56, held: 113, undispatched: 0 }, filterFailures: 3 }),
    ], 10_000);
    assert.match(text, /Parallel sender: buckets each copy dispatches — server1-1 57 of the 113 it holds, server1-2 56 of the 113 it holds\./);
    assert.match(text, /server1-1: 12 events conflated into later ones, 0 event filter failures/);
    assert.match(text, /server1-2: 0 events conflated into later ones, 3 event filter failures/);
  });

  it('parses --drain-timeout', () => {
    assert.equal(parseDrainTimeout(undefined), 0);
    assert.equal(parseDrainTimeout('-1'), -1);
    assert.equal(parseDrainTimeout('2500'), 2500);
    for (const bad of ['', '-2', '1.5', 'soon', '86400001']) {
      assert.throws(() => parseDrainTimeout(bad), (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_USAGE', bad);
    }
  });
});
