import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { GatewayEvent } from '../protocol/messages.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStorage } from '../runtime/memory-storage.ts';
import { LmdbStorage } from '../runtime/node/lmdb-storage.ts';
import { StraitError } from '../errors.ts';
import { ACKED_IDS_REMEMBERED_MAX, CHUNK_EVENTS_MAX, decodeQueueRecord, encodeBatchEvents, eventBytes, eventId, eventPackr, itemMemoryBytes, QUEUE_ITEM_OVERHEAD_BYTES, queueRecordEvents, queueRecordSlices, queueStoreKey, SenderQueue } from './sender-queue.ts';

function clock() {
  let now = 0;
  return { now: () => 1_700_000_000_000 + now, monotonic: () => now, advance: (ms: number) => { now += ms; } };
}

function event(n: number): GatewayEvent {
  return ['R', `key-${n}`, new Uint8Array(64).fill(n & 0xff), [1, 1000 + n, 'server-1#a', n], false];
}

function queue(persistent: boolean, memoryEvents = 10, storage = new MemoryStorage()) {
  return new SenderQueue(storage.open('sender-to-2'), clock(), { name: 'sender to-2', persistent, memoryBytesMax: itemMemoryBytes(event(1)) * memoryEvents });
}

test('items leave oldest first; a failed batch goes out again first, flagged possible-duplicate', () => {
  const q = queue(false);
  for (let n = 1; n <= 5; n++) q.enqueue(event(n));
  const first = q.takeUnsent(2);
  const second = q.takeUnsent(2);
  assert.deepEqual([...first, ...second].map((item) => item.event![1]), ['key-1', 'key-2', 'key-3', 'key-4']);
  assert.equal(q.unsentCount(10), 1);
  q.markUnsent(first);
  const again = q.takeUnsent(10);
  assert.deepEqual(again.map((item) => [item.event![1], item.possibleDuplicate]), [['key-1', true], ['key-2', true], ['key-5', false]]);
  q.acknowledge([...again, ...second]);
  assert.equal(q.size, 0);
  assert.equal(q.bytes, 0);
});

test('an acknowledged or already queued id is not queued again; a replayed one may be', () => {
  const q = queue(false);
  assert.equal(q.enqueue(event(1)), true);
  assert.equal(q.enqueue(event(1)), false);
  q.acknowledge(q.takeUnsent(1));
  assert.equal(q.enqueue(event(1)), false);
  q.forgetAcknowledged(eventId(event(1)));
  assert.equal(q.enqueue(event(1)), true);
});

test('ids are told apart by member and counter (members may hold a colon); the acknowledged ones are forgotten oldest first past the limit', () => {
  const q = queue(false, 100_000);
  const from = (member: string, n: number): GatewayEvent => ['R', `key-${n}`, new Uint8Array(1), [1, 1000 + n, member, n], false];
  // The same counter from two members (one with a colon in its id) are two events.
  assert.equal(q.enqueue(from('a:b', 7)), true);
  assert.equal(q.enqueue(from('a', 7)), true);
  assert.equal(q.has('a:b:7') && q.has('a:7'), true);
  assert.equal(q.has('a:b') || q.has('garbage') || q.has('a:7x'), false, 'text that is no id is not queued');
  q.acknowledge(q.takeUnsent(2));
  assert.equal(q.isAcknowledged('a:b:7') && q.isAcknowledged('a:7'), true);
  // A secondary drops what its primary reports acknowledged, by the ids on the wire.
  q.enqueue(from('a', 8));
  q.dropAcknowledged(['a:8', 'not an id']);
  assert.equal(q.size, 0);
  // Past ACKED_IDS_REMEMBERED_MAX acknowledgements the oldest id is forgotten: it may be queued again.
  for (let n = 0; n < ACKED_IDS_REMEMBERED_MAX; n++) q.dropAcknowledged([`c:${n}`]);
  assert.equal(q.isAcknowledged('a:b:7') || q.isAcknowledged('a:7') || q.isAcknowledged('a:8'), false);
  assert.equal(q.isAcknowledged(`c:${ACKED_IDS_REMEMBERED_MAX - 1}`), true);
  assert.equal(q.enqueue(from('a', 7)), true);
});

test('beyond the memory limit events wait on disk and come back in order as room frees', () => {
  const storage = new MemoryStorage();
  const q = queue(false, 10, storage);
  for (let n = 1; n <= 100; n++) q.enqueue(event(n));
  assert.equal(q.size, 100);
  assert.ok(q.spilled >= 89, `most events wait on disk (${q.spilled})`);
  const order: string[] = [];
  while (q.size > 0) {
    const items = q.takeUnsent(7);
    order.push(...items.map((item) => item.event![1]));
    q.acknowledge(items);
  }
  assert.deepEqual(order, Array.from({ length: 100 }, (_, index) => `key-${index + 1}`));
  assert.equal([...storage.open('sender-to-2').entries()].length, 0, 'an overflow-only queue leaves nothing on disk');
});

test('a takeover marks every queued and refilled event possible-duplicate', () => {
  const q = queue(false, 2);
  for (let n = 1; n <= 4; n++) q.enqueue(event(n));
  q.markTakeover();
  const items: boolean[] = [];
  while (q.size > 0) {
    const taken = q.takeUnsent(1);
    items.push(...taken.map((item) => item.possibleDuplicate));
    q.acknowledge(taken);
  }
  assert.deepEqual(items, [true, true, true, true]);
});

test('stale events are the oldest ones queued longer than asked', () => {
  const time = clock();
  const q = new SenderQueue(new MemoryStorage().open('sender-to-2'), time, { name: 'sender to-2', persistent: false, memoryBytesMax: 1 << 20 });
  q.enqueue(event(1));
  time.advance(5000);
  q.enqueue(event(2));
  assert.deepEqual(q.staleEvents(4000, 10).map((queued) => queued[1]), ['key-1']);
  assert.equal(q.oldestEnqueuedAtMs(), 0);
});

test('a queue image pages through memory and disk in queue order, bounded by count and bytes', () => {
  const q = queue(false, 10);
  for (let n = 1; n <= 50; n++) q.enqueue(event(n));
  q.acknowledge(q.takeUnsent(3));
  const seen: string[] = [];
  let after = -1;
  for (let round = 0; round < 100; round++) {
    const page = q.page(after, 7, 1 << 20);
    assert.ok(page.events.length <= 7);
    seen.push(...page.events.map((queued) => queued[1]));
    after = page.last;
    if (page.done) break;
  }
  assert.deepEqual(seen, Array.from({ length: 47 }, (_, index) => `key-${index + 4}`));
  const small = q.page(-1, 100, 1);
  assert.equal(small.events.length, 1, 'a byte limit still returns one event');
  assert.equal(small.done, false);
});

test('the memory limit counts what an item really costs, not only its contents', () => {
  const memoryBytesMax = 1024 * 1024;
  const q = new SenderQueue(new MemoryStorage().open('sender-to-2'), clock(), { name: 'sender to-2', persistent: false, memoryBytesMax });
  for (let n = 1; n <= 5000; n++) q.enqueue(event(n));
  const inMemory = q.size - q.spilled;
  assert.ok(inMemory * (eventBytes(event(1)) + QUEUE_ITEM_OVERHEAD_BYTES) <= memoryBytesMax, `${inMemory} items in memory`);
  assert.ok(inMemory > memoryBytesMax / (eventBytes(event(1)) + QUEUE_ITEM_OVERHEAD_BYTES) - 10, 'and the memory is used');
});

test('a persistent backlog larger than memory recovers from LMDB as an on-disk tail, in order, with exact accounting', async () => {
  const directory = mkdtempSync(join(tmpdir(), 'strait-queue-'));
  try {
    const memoryBytesMax = 64 * 1024;
    const first = new LmdbStorage(directory);
    const writer = new SenderQueue(first.open('sender-to-2'), clock(), { name: 'sender to-2', persistent: true, memoryBytesMax });
    for (let n = 1; n <= 20_000; n++) writer.enqueue(event(n));
    await new Promise<void>((resolve, reject) => first.close((error) => (error === undefined ? resolve() : reject(error))));
    const second = new LmdbStorage(directory);
    const reader = new SenderQueue(second.open('sender-to-2'), clock(), { name: 'sender to-2', persistent: true, memoryBytesMax });
    assert.equal(reader.recover(), 20_000);
    assert.equal(reader.size, 20_000);
    assert.ok((reader.size - reader.spilled) * itemMemoryBytes(event(1)) <= memoryBytesMax, 'only what fits is loaded');
    let expected = 1;
    while (reader.size > 0) {
      const items = reader.takeUnsent(500);
      for (const item of items) assert.equal(item.event![1], `key-${expected++}`);
      reader.acknowledge(items);
    }
    assert.equal(expected, 20_001);
    assert.equal(reader.bytes, 0, 'byte accounting returns to zero');
    await new Promise<void>((resolve, reject) => second.close((error) => (error === undefined ? resolve() : reject(error))));
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test('a memory limit smaller than one event still lets the queue make progress', () => {
  const q = new SenderQueue(new MemoryStorage().open('sender-to-2'), clock(), { name: 'sender to-2', persistent: false, memoryBytesMax: 10 });
  for (let n = 1; n <= 5; n++) q.enqueue(event(n));
  let drained = 0;
  while (q.size > 0 && drained < 10) {
    const items = q.takeUnsent(10);
    assert.equal(items.length, 1);
    q.acknowledge(items);
    drained += 1;
  }
  assert.equal(q.size, 0);
});

test('a parallel queue takes only the lanes this member dispatches; a lane taken over goes out flagged; a page can be one lane', () => {
  const storage = new MemoryStorage();
  const laneOf = (e: GatewayEvent) => `R/${Number(e[1].slice(4)) % 2}`;
  const q = new SenderQueue(storage.open('sender-p'), clock(), { name: 'sender p', persistent: false, memoryBytesMax: 1 << 20, laneOf });
  q.setDispatchable(new Set());
  for (let n = 1; n <= 6; n++) q.enqueue(event(n));
  q.setDispatchable(new Set(['R/0']));
  q.enqueue(event(8));
  assert.deepEqual(q.takeUnsent(10).map((item) => [item.event![1], item.possibleDuplicate]), [['key-2', true], ['key-4', true], ['key-6', true], ['key-8', false]],
    'what a lane held when it became ours may have been sent by its previous dispatcher; what comes after is new');
  assert.equal(q.unsentCount(10), 0, 'lane R/1 waits for its own dispatcher');
  assert.deepEqual(q.page(-1, 10, 1 << 20, 'R/1').events.map((e) => e[1]), ['key-1', 'key-3', 'key-5']);
  q.setDispatchable(new Set(['R/0', 'R/1']));
  assert.deepEqual(q.takeUnsent(10).map((item) => [item.event![1], item.possibleDuplicate]), [['key-1', true], ['key-3', true], ['key-5', true]]);
  assert.deepEqual(q.staleEvents(0, 10), [], 'a dispatcher hands nothing off of its own lanes');
});

test('dispatcher threads take only their own events, each thread in queue order', () => {
  const storage = new MemoryStorage();
  const q = new SenderQueue(storage.open('sender-t'), clock(), { name: 'sender t', persistent: false, memoryBytesMax: 1 << 20, threadOf: (e) => Number(e[1].slice(4)) % 3 });
  for (let n = 1; n <= 9; n++) q.enqueue(event(n));
  assert.deepEqual(q.takeUnsent(10, Number.POSITIVE_INFINITY, 1).map((item) => item.event![1]), ['key-1', 'key-4', 'key-7']);
  assert.equal(q.unsentCount(10, 1), 0);
  assert.equal(q.unsentCount(10, 0), 3);
  assert.equal(q.unsentCount(10), 6);
});

/** Event-loop turns by hand: what a queue defers runs at `end()`. */
function turns() {
  const deferred: (() => void)[] = [];
  return {
    defer: (callback: () => void) => { deferred.push(callback); },
    end: () => { while (deferred.length > 0) deferred.shift()!(); },
  };
}

function chunkedQueue(storage: MemoryStorage, turn: ReturnType<typeof turns>, persistent: boolean, memoryEvents: number) {
  return new SenderQueue(storage.open('sender-to-2'), clock(), { name: 'sender to-2', persistent, memoryBytesMax: itemMemoryBytes(event(1)) * memoryEvents, defer: turn.defer });
}

/** Sends and acknowledges everything, `batch` at a time: the keys in the order they left. */
function drain(q: SenderQueue, batch: number): string[] {
  const sent: string[] = [];
  while (q.size > 0) {
    const items = q.takeUnsent(batch);
    assert.ok(items.length > 0, 'a queue holding events hands some out');
    sent.push(...items.map((item) => item.event![1]));
    q.acknowledge(items);
  }
  return sent;
}

function records(storage: MemoryStorage): [string, number][] {
  return [...storage.open('sender-to-2').entries()].map(([key, bytes]) => [key, queueRecordEvents(bytes)]);
}

test('the events of one turn are one record, written at the end of the turn, a sync waiting for it; it goes once all of them are acknowledged', async () => {
  const storage = new MemoryStorage();
  const turn = turns();
  const q = chunkedQueue(storage, turn, true, 5000);
  for (let n = 1; n <= 30; n++) q.enqueue(event(n));
  let synced = false;
  const syncDone = new Promise<void>((resolve) => q.sync(() => { synced = true; resolve(); }));
  assert.deepEqual(records(storage), [], 'nothing is written before the turn ends');
  await Promise.resolve();
  assert.equal(synced, false, 'a sync waits for the turn\'s record');
  turn.end();
  assert.deepEqual(records(storage), [[queueStoreKey(1), 30]]);
  await syncDone;
  assert.ok(synced, 'the sync completes once the record is written');
  for (let n = 31; n <= 40; n++) q.enqueue(event(n));
  turn.end();
  assert.deepEqual(records(storage), [[queueStoreKey(1), 30], [queueStoreKey(31), 10]]);
  q.acknowledge(q.takeUnsent(39));
  assert.deepEqual(records(storage), [[queueStoreKey(31), 10]], 'a record goes once every event in it is acknowledged, not before');
  q.acknowledge(q.takeUnsent(1));
  assert.deepEqual(records(storage), []);
  // More than a record holds in one turn: several records.
  for (let n = 41; n < 41 + CHUNK_EVENTS_MAX + 5; n++) q.enqueue(event(n));
  turn.end();
  assert.deepEqual(records(storage), [[queueStoreKey(41), CHUNK_EVENTS_MAX], [queueStoreKey(41 + CHUNK_EVENTS_MAX), 5]]);
});

test('events acknowledged before their record is written are left out of it; after a restart the rest of a record comes back, flagged possible-duplicate', async () => {
  const storage = new MemoryStorage();
  const turn = turns();
  const q = chunkedQueue(storage, turn, true, 100);
  for (let n = 1; n <= 10; n++) q.enqueue(event(n));
  q.dropAcknowledged([eventId(event(1)), eventId(event(4))]);
  turn.end();
  assert.deepEqual(records(storage), [[queueStoreKey(1), 8]]);
  for (let n = 11; n <= 12; n++) q.enqueue(event(n));
  q.dropAcknowledged([eventId(event(11)), eventId(event(12))]);
  turn.end();
  assert.deepEqual(records(storage), [[queueStoreKey(1), 8]], 'a record all of whose events went is never written');
  // Acknowledged after the write: the record stays until its last event goes, so a restart resends these.
  q.dropAcknowledged([eventId(event(2)), eventId(event(3))]);
  await new Promise((resolve) => q.sync(resolve));
  storage.crash();
  const again = chunkedQueue(storage, turns(), true, 100);
  assert.equal(again.recover(), 8);
  assert.deepEqual(again.takeUnsent(100).map((item) => [item.event![1], item.possibleDuplicate]),
    [2, 3, 5, 6, 7, 8, 9, 10].map((n) => [`key-${n}`, true]));
});

test('the on-disk tail is written and read back a record at a time, stepping over the gaps of events left out, in order, for batches and pages alike', async () => {
  for (const persistent of [false, true]) {
    const storage = new MemoryStorage();
    const turn = turns();
    const q = chunkedQueue(storage, turn, persistent, 5);
    // Turns of 7 events: the first five fit in memory, then everything waits on disk.
    for (let round = 0; round < 10; round++) {
      for (let n = round * 7 + 1; n <= round * 7 + 7; n++) q.enqueue(event(n));
      turn.end();
    }
    assert.equal(q.size, 70);
    assert.equal(q.spilled, 65);
    const onDisk = records(storage).filter(([key]) => Number.parseInt(key, 16) > 5);
    assert.equal(onDisk.length, 10, `one record of the on-disk tail per turn (${JSON.stringify(onDisk)})`);
    const paged: string[] = [];
    for (let after = -1, round = 0; round < 100; round++) {
      const page = q.page(after, 10, 1 << 20);
      assert.ok(page.events.length <= 10, 'a page keeps its limit');
      paged.push(...page.events.map((queued) => queued[1]));
      after = page.last;
      if (page.done) break;
    }
    assert.deepEqual(paged, Array.from({ length: 70 }, (_, index) => `key-${index + 1}`));
    assert.deepEqual(drain(q, 3), Array.from({ length: 70 }, (_, index) => `key-${index + 1}`));
    assert.equal(q.bytes, 0);
    assert.deepEqual(records(storage), [], `nothing is left on disk (persistent: ${persistent})`);
  }
  // A restart with less memory than before: records of memory that lost events on the way
  // (gaps) become the on-disk tail, read back in order over the gaps.
  const storage = new MemoryStorage();
  const turn = turns();
  const q = chunkedQueue(storage, turn, true, 1000);
  for (let round = 0; round < 6; round++) {
    for (let n = round * 20 + 1; n <= round * 20 + 20; n++) q.enqueue(event(n));
    q.dropAcknowledged([eventId(event(round * 20 + 1)), eventId(event(round * 20 + 2))]);
    turn.end();
  }
  await new Promise((resolve) => q.sync(resolve));
  storage.crash();
  const small = chunkedQueue(storage, turns(), true, 10);
  assert.equal(small.recover(), 108);
  assert.ok(small.spilled >= 90, `most of it waits on disk (${small.spilled})`);
  const expected = Array.from({ length: 6 }, (_, round) => Array.from({ length: 18 }, (_, index) => `key-${round * 20 + index + 3}`)).flat();
  const firstPage = small.page(-1, 1000, 1 << 20);
  assert.deepEqual(firstPage.events.map((queued) => queued[1]), expected);
  assert.deepEqual(drain(small, 7), expected);
  assert.deepEqual(records(storage), []);
});

test('a queue record is a chunk of events or, as written before chunks, one event; anything else is a storage error', () => {
  const storage = new MemoryStorage();
  const store = storage.open('sender-to-2');
  store.put(queueStoreKey(1), eventPackr.pack(event(1)));
  store.put(queueStoreKey(2), eventPackr.pack([event(2), event(3)]));
  store.put(queueStoreKey(4), eventPackr.pack(Array.from({ length: 20 }, (_, index) => event(index + 4))));
  assert.deepEqual(records(storage).map(([, count]) => count), [1, 2, 20], 'the header tells the count, fixarray and array16 alike');
  const q = chunkedQueue(storage, turns(), true, 1000);
  assert.equal(q.recover(), 23);
  assert.deepEqual(q.takeUnsent(100).map((item) => item.event![1]), Array.from({ length: 23 }, (_, index) => `key-${index + 1}`));
  for (const garbage of [eventPackr.pack([]), eventPackr.pack(['R']), eventPackr.pack([event(1), 'x']), Uint8Array.of(0xc1)]) {
    assert.throws(() => decodeQueueRecord(garbage, 'record'), (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_STORAGE');
  }
});

test('while a backlog waits on disk, only the read-ahead is read back into memory, a record at a time', () => {
  const storage = new MemoryStorage();
  const turn = turns();
  const q = new SenderQueue(storage.open('sender-to-2'), clock(), { name: 'sender to-2', persistent: true, memoryBytesMax: itemMemoryBytes(event(1)) * 5, readAheadEventsMax: 10, defer: turn.defer });
  for (let round = 0; round < 20; round++) {
    for (let n = round * 7 + 1; n <= round * 7 + 7; n++) q.enqueue(event(n));
    turn.end();
  }
  // The memory limit was 5 events when they were queued; with room for far more, a restart
  // reads back only the read-ahead (and the rest of the record it is in).
  const sent: string[] = [];
  const roomy = new SenderQueue(storage.open('sender-to-2'), clock(), { name: 'sender to-2', persistent: true, memoryBytesMax: 1 << 24, readAheadEventsMax: 10, defer: turn.defer });
  assert.equal(roomy.recover(), 140);
  while (roomy.size > 0) {
    const inMemory = roomy.size - roomy.spilled;
    assert.ok(inMemory <= 10 + 7, `${inMemory} events in memory`);
    const items = roomy.takeUnsent(4);
    sent.push(...items.map((item) => item.event![1]));
    roomy.acknowledge(items);
  }
  assert.deepEqual(sent, Array.from({ length: 140 }, (_, index) => `key-${index + 1}`));
});

test('a larger read-ahead (the send window grew) reads more of the on-disk tail back at once; a smaller one waits', () => {
  const storage = new MemoryStorage();
  const turn = turns();
  const q = new SenderQueue(storage.open('sender-to-2'), clock(), { name: 'sender to-2', persistent: true, memoryBytesMax: itemMemoryBytes(event(1)) * 5, defer: turn.defer });
  for (let round = 0; round < 20; round++) {
    for (let n = round * 7 + 1; n <= round * 7 + 7; n++) q.enqueue(event(n));
    turn.end();
  }
  const roomy = new SenderQueue(storage.open('sender-to-2'), clock(), { name: 'sender to-2', persistent: true, memoryBytesMax: 1 << 24, readAheadEventsMax: 10, defer: turn.defer });
  assert.equal(roomy.recover(), 140);
  assert.ok(roomy.size - roomy.spilled <= 10 + 7);
  roomy.setReadAheadEventsMax(60);
  const grown = roomy.size - roomy.spilled;
  assert.ok(grown >= 60 && grown <= 60 + 7, `${grown} events in memory after the read-ahead grew`);
  roomy.setReadAheadEventsMax(10);
  assert.equal(roomy.size - roomy.spilled, grown, 'what was read back stays');
  const sent: string[] = [];
  while (roomy.size > 0) {
    const items = roomy.takeUnsent(4);
    sent.push(...items.map((item) => item.event![1]));
    roomy.acknowledge(items);
    assert.ok(roomy.size - roomy.spilled <= Math.max(10 + 7, grown), 'no read-back beyond the larger of the two');
  }
  assert.deepEqual(sent, Array.from({ length: 140 }, (_, index) => `key-${index + 1}`));
});

test('events queued in one turn around a read-back of the on-disk tail are recovered in queue order', async () => {
  const storage = new MemoryStorage();
  const turn = turns();
  // Room for three events and a little: the record written at the read-back counts too (its
  // bytes, kept for the batch).
  const q = chunkedQueue(storage, turn, true, 3.3);
  // One turn: three events fill memory, the fourth waits on disk, an acknowledgement frees room
  // (the fourth is read back), and the fifth goes to memory again.
  for (let n = 1; n <= 4; n++) q.enqueue(event(n));
  assert.equal(q.spilled, 1);
  q.dropAcknowledged([eventId(event(1)), eventId(event(2))]);
  assert.equal(q.spilled, 0);
  q.enqueue(event(5));
  assert.equal(q.spilled, 0, 'the fifth fits in memory');
  turn.end();
  await new Promise((resolve) => q.sync(resolve));
  storage.crash();
  const again = chunkedQueue(storage, turns(), true, 100);
  assert.equal(again.recover(), 3);
  assert.deepEqual(drain(again, 10), ['key-3', 'key-4', 'key-5']);
});

test('the on-disk limit counts the record of this turn before it is written', () => {
  const turn = turns();
  const q = new SenderQueue(new MemoryStorage().open('sender-to-2'), clock(), { name: 'sender to-2', persistent: true, memoryBytesMax: itemMemoryBytes(event(1)), diskBytesMax: 200, defer: turn.defer });
  for (let n = 1; n <= 2; n++) q.enqueue(event(n));
  assert.equal(q.full, false, 'one event on disk is below the limit');
  for (let n = 3; n <= 4; n++) q.enqueue(event(n));
  assert.equal(q.spilled, 3);
  assert.equal(q.full, true, 'full within the turn, not only once the record is written');
  turn.end();
  assert.equal(q.full, true);
});

test('with batches in flight across the compaction of a long queue, every event is taken once, in order, and a returned batch first', () => {
  const q = queue(false, 40_000);
  let next = 1;
  for (; next <= 30_000; next++) q.enqueue(event(next));
  const taken: number[] = [];
  const inFlight: ReturnType<SenderQueue['takeUnsent']>[] = [];
  let returned = false;
  while (q.size > 0) {
    // Eight batches in flight; the oldest acknowledged, one returned (refused before it left) once.
    while (inFlight.length < 8 && q.unsentCount(1) > 0) {
      const batch = q.takeUnsent(500);
      taken.push(...batch.map((item) => item.counter));
      inFlight.push(batch);
    }
    if (!returned && taken.length > 12_000) {
      const last = inFlight.pop()!;
      taken.splice(taken.length - last.length, last.length);
      q.returnUnsent(last);
      returned = true;
      continue;
    }
    q.acknowledge(inFlight.shift()!);
    if (next <= 40_000) for (let more = 0; more < 300; more++) q.enqueue(event(next++));
  }
  assert.ok(returned);
  assert.deepEqual(taken, Array.from({ length: next - 1 }, (_, index) => index + 1));
});

test('the count of unsent items, kept as items are queued, taken, returned, failed and acknowledged, is the count of a walk over them, for each thread', () => {
  type Step = { kind: 'enqueue' | 'take' | 'fail' | 'return' | 'ack' | 'drop'; n: number };
  const step: fc.Arbitrary<Step> = fc.record({ kind: fc.constantFrom('enqueue', 'enqueue', 'take', 'fail', 'return', 'ack', 'drop'), n: fc.integer({ min: 1, max: 7 }) });
  fc.assert(fc.property(fc.array(step, { maxLength: 200, size: 'max' }), (steps) => {
    const q = new SenderQueue(new MemoryStorage().open('q'), clock(), { name: 'q', persistent: false, memoryBytesMax: itemMemoryBytes(event(1)) * 10_000, threadOf: (e) => e[3][3] % 2 });
    let next = 1;
    const batches: ReturnType<SenderQueue['takeUnsent']>[] = [];
    const queued = new Map<number, { sent: boolean; thread: number }>();
    for (const { kind, n } of steps) {
      if (kind === 'enqueue') for (let i = 0; i < n; i++, next++) {
        if (q.enqueue(event(next))) queued.set(next, { sent: false, thread: next % 2 });
      } else if (kind === 'take') {
        const batch = q.takeUnsent(n, Number.POSITIVE_INFINITY, n % 2);
        for (const item of batch) queued.get(item.counter)!.sent = true;
        if (batch.length > 0) batches.push(batch);
      } else if (kind === 'fail' || kind === 'return' || kind === 'ack') {
        const batch = batches.splice(n % Math.max(1, batches.length), 1)[0];
        if (batch === undefined) continue;
        if (kind === 'ack') {
          q.acknowledge(batch);
          for (const item of batch) queued.delete(item.counter);
        } else {
          if (kind === 'fail') q.markUnsent(batch);
          else q.returnUnsent(batch);
          // Returning it twice changes nothing.
          if (n % 3 === 0) q.markUnsent(batch);
          for (const item of batch) if (queued.has(item.counter)) queued.get(item.counter)!.sent = false;
        }
      } else {
        // A secondary told an unsent or in-flight event was acknowledged elsewhere.
        const counter = [...queued.keys()][n % Math.max(1, queued.size)];
        if (counter === undefined) continue;
        q.dropAcknowledged([`server-1#a:${counter}`]);
        queued.delete(counter);
      }
      for (const thread of [0, 1]) {
        const expected = [...queued.values()].filter((entry) => !entry.sent && entry.thread === thread).length;
        assert.equal(q.unsentCount(1_000_000, thread), expected, `thread ${thread} after ${kind}`);
      }
      assert.equal(q.unsentCount(1_000_000), [...queued.values()].filter((entry) => !entry.sent).length);
    }
  }), { numRuns: 200 });
});

test('a batch is its events\' queue-record bytes, flagged possible-duplicate where asked: the same bytes as packing the flagged events, whether the record was written this turn, read back, or not written yet', async () => {
  const storage = new MemoryStorage();
  const turn = turns();
  const q = chunkedQueue(storage, turn, true, 3);
  for (let n = 1; n <= 6; n++) q.enqueue(event(n));
  // Not written yet: packed one by one.
  const early = q.takeUnsent(1);
  assert.equal(early[0]!.encoded, undefined);
  turn.end();
  const written = q.takeUnsent(2);
  assert.ok(written.every((item) => item.encoded !== undefined), 'this turn\'s record gave the items their bytes');
  q.markUnsent(written);
  q.acknowledge(early);
  // Events 4..6 waited on disk; acknowledging frees room and they are read back with their bytes.
  const again = q.takeUnsent(2);
  q.acknowledge(again);
  const readBack = q.takeUnsent(10);
  assert.deepEqual(readBack.map((item) => item.event![1]), ['key-4', 'key-5', 'key-6']);
  assert.ok(readBack.every((item) => item.encoded !== undefined), 'read back with their bytes');
  const items = [...early, ...written, ...readBack];
  const flagged = items.map((item) => item.event ?? event(item.counter)).map((sent, index): GatewayEvent => [sent[0], sent[1], sent[2], sent[3], index % 2 === 1 ? true : sent[4]]);
  const batch = encodeBatchEvents(items.map((item, index) => ({ event: item.event ?? event(item.counter), encoded: item.encoded, possibleDuplicate: index % 2 === 1 })));
  assert.deepEqual(Buffer.from(batch), Buffer.from(eventPackr.pack(flagged)));
  // Long batches take the 16-bit array header.
  const many = Array.from({ length: 300 }, (_, index) => event(index));
  assert.deepEqual(Buffer.from(encodeBatchEvents(many.map((sent) => ({ event: sent, encoded: eventPackr.pack(sent), possibleDuplicate: false })))), Buffer.from(eventPackr.pack(many)));
});

test('a record\'s events are told apart by their bytes; a record of one event (before chunks) is that event; anything else is not', () => {
  const events = [event(1), event(2), event(3)];
  const record = eventPackr.pack(events);
  const slices = queueRecordSlices(record, 3)!;
  assert.deepEqual(slices.map((slice) => Buffer.from(slice)), events.map((sent) => Buffer.from(eventPackr.pack(sent))));
  const single = eventPackr.pack(event(7));
  assert.deepEqual(queueRecordSlices(single, 1)!.map((slice) => Buffer.from(slice)), [Buffer.from(single)]);
  assert.equal(queueRecordSlices(record, 2), undefined);
  assert.equal(queueRecordSlices(record.subarray(0, record.length - 1), 3), undefined);
  assert.equal(queueRecordSlices(new Uint8Array([0xc1]), 1), undefined);
});

test('the copy of a record its items keep their bytes in is counted in queue memory until its last event goes', () => {
  const turn = turns();
  const q = chunkedQueue(new MemoryStorage(), turn, true, 100);
  for (let n = 1; n <= 3; n++) q.enqueue(event(n));
  const items = itemMemoryBytes(event(1)) * 3;
  assert.equal(q.memoryBytesHeld, items, 'before the record is written');
  turn.end();
  const record = eventPackr.pack([event(1), event(2), event(3)]).length;
  assert.equal(q.memoryBytesHeld, items + record);
  const taken = q.takeUnsent(3);
  q.acknowledge(taken.slice(0, 2));
  assert.equal(q.memoryBytesHeld, itemMemoryBytes(event(1)) + record, 'one event left keeps the whole copy');
  q.acknowledge(taken.slice(2));
  assert.equal(q.memoryBytesHeld, 0);
});

test('events read back from disk are not decoded until something asks for one; a batch is their bytes; a record of another shape is decoded whole', () => {
  const storage = new MemoryStorage();
  const turn = turns();
  const q = chunkedQueue(storage, turn, true, 4);
  for (let n = 1; n <= 12; n++) q.enqueue(event(n));
  turn.end();
  q.acknowledge(q.takeUnsent(4)); // the first four were in memory; the rest come back from disk
  const readBack = q.takeUnsent(4);
  assert.deepEqual(readBack.map((item) => item.sequence), [5, 6, 7, 8]);
  const decoded = (item: object) => (item as { decoded: GatewayEvent | undefined }).decoded;
  assert.ok(readBack.every((item) => decoded(item) === undefined && item.encoded !== undefined), 'read back as bytes only');
  assert.deepEqual(readBack.map((item) => [item.member, item.counter, item.bytes]), [5, 6, 7, 8].map((n) => ['server-1#a', n, eventBytes(event(n))]));
  assert.deepEqual(Buffer.from(encodeBatchEvents(readBack)), Buffer.from(eventPackr.pack([5, 6, 7, 8].map(event))));
  assert.ok(readBack.every((item) => decoded(item) === undefined), 'sending did not decode them');
  assert.deepEqual(readBack[1]!.event, event(6), 'asked for, an event is decoded from its bytes');
  assert.equal(decoded(readBack[0]!), undefined);
  q.acknowledge(readBack);
  assert.equal(readBack[1]!.event, undefined, 'a removed item lets go of its event');
  // A record the scan does not read (a value that is no byte array, written by no queue) is
  // decoded in full; one that is not events at all is a storage error.
  const other = new MemoryStorage();
  other.open('sender-to-2').put(queueStoreKey(1), eventPackr.pack([['R', 'k', 'text', [1, 2, 'm', 3], false]]));
  const decodedWhole = chunkedQueue(other, turns(), true, 100);
  assert.equal(decodedWhole.recover(), 1);
  const [item] = decodedWhole.takeUnsent(1);
  assert.equal(decoded(item!)?.[2], 'text');
  other.open('sender-to-2').put(queueStoreKey(2), eventPackr.pack([['R', 'k', null, [1, 2, 'm', 4], false], 'garbage']));
  assert.throws(() => chunkedQueue(other, turns(), true, 100).recover(), (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_STORAGE');
});
