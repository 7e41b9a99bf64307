import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DeliveryCounter, judgeRead, parseWriteValue, shownWrite, summarizeLosses, writeValue, WriteLedger, type Expectation, type Finding,
} from './ledger.ts';

test('a write value carries its identity and is padded to the size asked', () => {
  const value = writeValue('s1-0000042', 3, 64);
  assert.equal(value.length, 64);
  assert.deepEqual(parseWriteValue(value), { key: 's1-0000042', version: 3 });
  // A head longer than the size is kept whole.
  assert.deepEqual(parseWriteValue(writeValue('s2-0000001', 12, 4)), { key: 's2-0000001', version: 12 });
  for (const foreign of [undefined, null, 42, 'no identity', 'k@0|x', 'k@x|', '@1|', { key: 'k' }]) assert.equal(parseWriteValue(foreign), undefined, String(foreign));
});

test('write identities round-trip for any key and version', () => {
  fc.assert(fc.property(fc.string({ minLength: 1 }).filter((key) => !key.includes('|')), fc.integer({ min: 1, max: 1e9 }), fc.integer({ min: 0, max: 300 }), (key, version, bytes) => {
    assert.deepEqual(parseWriteValue(writeValue(key, version, bytes)), { key, version });
  }));
});

test('judgeRead: missing, older, foreign and ok', () => {
  const expected: Expectation = { key: 'k', site: 1, version: 2, attemptedVersionMax: 3 };
  assert.equal(judgeRead(expected, undefined), 'missing');
  assert.equal(judgeRead(expected, writeValue('k', 1, 10)), 'older');
  assert.equal(judgeRead(expected, writeValue('k', 2, 10)), 'ok');
  // Version 3 was attempted (and failed at the client): it may have been applied.
  assert.equal(judgeRead(expected, writeValue('k', 3, 10)), 'ok');
  assert.equal(judgeRead(expected, writeValue('k', 4, 10)), 'foreign');
  assert.equal(judgeRead(expected, writeValue('other', 2, 10)), 'foreign');
  assert.equal(judgeRead(expected, 'garbage'), 'foreign');
});

test('a finding shows the write a server held, or a clip of a foreign value', () => {
  assert.equal(shownWrite(writeValue('k', 2, 100)), 'k@2');
  assert.equal(shownWrite(undefined), undefined);
  assert.equal(shownWrite({ other: 'x'.repeat(100) })!.length, 40);
});

test('the ledger numbers versions per key, counts outcomes and expects the newest acknowledged version', () => {
  const ledger = new WriteLedger();
  assert.equal(ledger.begin(1, 'a', 0), 1);
  assert.equal(ledger.begin(2, 'b', 0), 1);
  ledger.settle('a', 1, true, 5);
  ledger.settle('b', 1, false, 5);
  assert.equal(ledger.begin(1, 'a', 0), 2);
  assert.deepEqual(ledger.counts(), { attempted: 3, acknowledged: 1, failed: 1, pending: 1, keysAcknowledged: 1 });
  assert.deepEqual(ledger.expectations(), [{ key: 'a', site: 1, version: 1, attemptedVersionMax: 2 }]);
  ledger.settle('a', 2, true, 5);
  assert.equal(ledger.outcome('a', 2), 'acknowledged');
  assert.deepEqual(ledger.timing('a', 2), { issuedAtMs: 0, settledAtMs: 5 });
  assert.equal(ledger.timing('a', 3), undefined);
  assert.deepEqual(ledger.expectations(), [{ key: 'a', site: 1, version: 2, attemptedVersionMax: 2 }]);
});

test('the ledger refuses a second write in flight on a key, a foreign writer and a double settle', () => {
  const ledger = new WriteLedger();
  ledger.begin(1, 'a', 0);
  assert.throws(() => ledger.begin(1, 'a', 0), /still pending/);
  assert.throws(() => ledger.begin(2, 'a', 0), /belongs to the writer of site 1/);
  ledger.settle('a', 1, true, 5);
  assert.throws(() => ledger.settle('a', 1, true, 5), /was not pending/);
});

test('a snapshot expectation, refreshed, accepts versions attempted after it was taken', () => {
  const ledger = new WriteLedger();
  ledger.begin(1, 'a', 0);
  ledger.settle('a', 1, true, 5);
  const [snapshot] = ledger.expectations();
  ledger.begin(1, 'a', 0);
  ledger.settle('a', 2, true, 5);
  assert.equal(judgeRead(snapshot!, writeValue('a', 2, 8)), 'foreign');
  assert.equal(judgeRead(ledger.refresh(snapshot!), writeValue('a', 2, 8)), 'ok');
  assert.equal(judgeRead(ledger.refresh(snapshot!), undefined), 'missing');
});

test('the delivery counter counts a write seen twice on one subscription as applied twice', () => {
  const counter = new DeliveryCounter();
  assert.equal(counter.observe(writeValue('a', 1, 8)), false);
  assert.equal(counter.observe(writeValue('a', 2, 8)), false);
  assert.equal(counter.observe(writeValue('a', 1, 8)), true);
  counter.observe('not a soak value');
  assert.deepEqual({ events: counter.events, duplicates: counter.duplicates, foreign: counter.foreign }, { events: 4, duplicates: 1, foreign: 1 });
  assert.deepEqual(counter.examples, ['a@1']);
});

test('losses count each write once, per site where a server lacks it', () => {
  const finding = (key: string, site: number, member: string, verdict: Finding['verdict']): Finding => ({ key, site, member, verdict, shown: undefined, expectedVersion: 1 });
  const summary = summarizeLosses([
    finding('a', 2, 'server2-1', 'missing'),
    finding('a', 2, 'server2-2', 'missing'),
    finding('b', 1, 'server1-1', 'older'),
    finding('b', 2, 'server2-1', 'foreign'),
  ]);
  assert.equal(summary.lost, 2);
  assert.deepEqual(summary.lostBySite, { 1: 1, 2: 2 });
  assert.deepEqual(summary.byVerdict, { missing: 2, older: 1, foreign: 1 });
  assert.equal(summary.examples.length, 4);
  assert.deepEqual(summarizeLosses([]), { lost: 0, lostBySite: {}, byVerdict: { missing: 0, older: 0, foreign: 0 }, examples: [] });
});
