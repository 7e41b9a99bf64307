import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { GatewayEvent } from '../protocol/messages.ts';
import { scanQueueRecord } from './queue-record-scan.ts';
import { eventBytes, eventPackr, queueRecordSlices } from './sender-queue.ts';

const asciiText = (maxLength: number) => fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-#:/'), minLength: 1, maxLength });
const anyEvent: fc.Arbitrary<GatewayEvent> = fc.tuple(
  asciiText(40),
  fc.oneof(asciiText(300), fc.string({ minLength: 1, maxLength: 40 })),
  fc.oneof(fc.constant(null), fc.uint8Array({ maxLength: 40 }), fc.nat(70_000).map((length) => new Uint8Array(length).fill(7))), // bin 8, 16 and 32
  fc.tuple(fc.nat(0xffff), fc.maxSafeNat(), fc.oneof(asciiText(60), fc.constant('server-1#a')), fc.oneof(fc.nat(300), fc.nat(0xffff_ffff), fc.maxSafeNat())),
  fc.boolean(),
).map(([region, key, value, tag, flag]) => [region, key, value, tag, flag] as GatewayEvent);

const identity = (member: string) => member;

test('a scanned record tells each event\'s bytes, id, size and flag, as decoding it would', () => {
  fc.assert(fc.property(fc.array(anyEvent, { minLength: 1, maxLength: 40 }), fc.boolean(), (events, single) => {
    const asOne = single && events.length === 1;
    const record = eventPackr.pack(asOne ? events[0] : events);
    const scanned = scanQueueRecord(record, identity);
    assert.ok(scanned !== undefined);
    assert.equal(scanned.count, events.length);
    const slices = queueRecordSlices(record, events.length)!;
    for (const [index, event] of events.entries()) {
      assert.deepEqual(Buffer.from(record.subarray(scanned.starts[index], scanned.starts[index + 1])), Buffer.from(slices[index]!));
      assert.equal(scanned.members[index], event[3][2]);
      assert.equal(scanned.counters[index], event[3][3]);
      assert.equal(scanned.possibleDuplicates[index], event[4]);
      // Sizes count UTF-8 bytes: for ASCII names and keys what eventBytes counts of the decoded event.
      const utf8Extra = Buffer.byteLength(event[1]) - event[1].length;
      assert.equal(scanned.sizes[index], eventBytes(event) + utf8Extra);
    }
  }), { numRuns: 300 });
});

test('a member id is decoded once per run of equal ids, and the queue\'s own string is used', () => {
  const events: GatewayEvent[] = [1, 2, 3, 4].map((n) => ['R', `k${n}`, null, [1, n, n <= 2 ? 'server-1#a' : 'server-2#b', n], false]);
  const asked: string[] = [];
  const scanned = scanQueueRecord(eventPackr.pack(events), (member) => {
    asked.push(member);
    return `canonical ${member}`;
  })!;
  assert.deepEqual(asked, ['server-1#a', 'server-2#b']);
  assert.deepEqual(scanned.members, ['canonical server-1#a', 'canonical server-1#a', 'canonical server-2#b', 'canonical server-2#b']);
});

test('anything but the shape the queue writes is not read: garbage, truncations, other types in the fields', () => {
  const good = eventPackr.pack([['R', 'k', new Uint8Array(3), [1, 2, 'm', 3], false], ['R', 'k2', null, [1, 2, 'm', 4], true]]);
  assert.ok(scanQueueRecord(good, identity) !== undefined);
  for (let length = 0; length < good.length; length++) assert.equal(scanQueueRecord(good.subarray(0, length), identity), undefined, `cut at ${length}`);
  const others: unknown[] = [
    [], ['R'], [['R', 'k', null, [1, 2, 'm', 3], false], 'x'],
    ['R', 'k', 'a string value', [1, 2, 'm', 3], false],
    ['R', 'k', null, [1, 2, 'm', -3], false],
    ['R', 'k', null, [1, 2, 'm', 1.5], false],
    ['R', 'k', null, [1, 2, 7, 3], false],
    ['R', 'k', null, [1, 2, 'm', 3], 0],
    ['R', 'k', null, [1, 2, 'm'], false],
    [7, 'k', null, [1, 2, 'm', 3], false],
  ];
  for (const other of others) assert.equal(scanQueueRecord(eventPackr.pack(other), identity), undefined, JSON.stringify(other));
  assert.equal(scanQueueRecord(Uint8Array.of(...good, 0xc0), identity), undefined, 'trailing bytes');
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
    scanQueueRecord(bytes, identity); // never throws, never reads past the end
  }), { numRuns: 2000 });
  fc.assert(fc.property(fc.nat(good.length - 1), fc.nat(255), (at, byte) => {
    const changed = Uint8Array.from(good);
    changed[at] = byte;
    const scanned = scanQueueRecord(changed, identity);
    if (scanned !== undefined) assert.equal(scanned.starts.at(-1), changed.length);
  }), { numRuns: 2000 });
});
