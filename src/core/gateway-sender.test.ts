import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage } from '../runtime/memory-storage.ts';
import { SIM_COMPRESSION } from '../sim/simulator.ts';
import { SILENT_LOGGER, type Runtime } from '../runtime/runtime.ts';
import type { GatewayEvent, RequestBody } from '../protocol/messages.ts';
import { Connection, type Reply } from '../protocol/connection.ts';
import { Simulator } from '../sim/simulator.ts';
import type { GatewaySenderSpec } from './config.ts';
import { GatewaySender, eventId, type SenderHost } from './gateway-sender.ts';
import { eventPackr } from './sender-queue.ts';

function runtime(storage: MemoryStorage): Runtime {
  let now = 0;
  return {
    clock: { now: () => 1_700_000_000_000 + now, monotonic: () => (now += 1) },
    random: { next: () => 0.5, int: (bound) => Math.floor(bound / 2) },
    setTimer: () => ({ cancel() {} }),
    defer: (callback) => queueMicrotask(callback),
    network: { listen: () => { throw new Error('no network'); }, connect: () => { throw new Error('no network'); } },
    storage,
    compression: SIM_COMPRESSION,
    log: SILENT_LOGGER,
  };
}

const secondary: SenderHost = {
  memberName: 'server-1', site: 1, isPrimary: () => false, dialInLinks: () => [], receivers: () => ({ receivers: [], problem: 'none' }), acknowledged: () => {}, stateChanged: () => {},
};

function spec(persistent: boolean): GatewaySenderSpec {
  return {
    id: 'to-2', remoteSiteId: 2, parallel: false, batchSize: 100, batchTimeIntervalMs: 10,
    maximumQueueMemoryMegabytes: 4096 / (1024 * 1024), persistent, dispatcherThreads: 1, orderPolicy: 'key',
    batchConflation: false, manualStart: false, compression: false,
  };
}

function event(n: number): GatewayEvent {
  return ['R', `key-${n}`, new Uint8Array(64).fill(n & 0xff), [1, 1000 + n, 'server-1#a', n], false];
}

for (const persistent of [false, true]) {
  test(`queue memory stays bounded; overflow waits on disk and comes back in order (persistent: ${persistent})`, () => {
    const storage = new MemoryStorage();
    const sender = new GatewaySender(runtime(storage), spec(persistent), secondary, SILENT_LOGGER);
    for (let n = 1; n <= 2000; n++) sender.enqueue(event(n));
    const status = sender.status();
    assert.equal(status.queueEvents, 2000);
    assert.ok(status.overflowEvents > 1900, `most events wait on disk (${status.overflowEvents})`);
    // Drain as the primary's acknowledgements would: oldest first, in order.
    let expected = 1;
    while (sender.queuedEvents > 0) {
      const held = sender.staleEvents(0, 50);
      assert.ok(held.length > 0);
      for (const [index, queued] of held.entries()) assert.equal(queued[1], `key-${expected + index}`);
      expected += held.length;
      sender.dropAcknowledged(held.map(eventId));
    }
    assert.equal(expected, 2001);
    assert.equal(sender.status().overflowEvents, 0);
    assert.equal(sender.status().queueBytes, 0);
    assert.equal([...storage.open('sender-to-2').entries()].length, 0, 'nothing left on disk');
  });
}

test('a persistent queue is recovered in order after a restart, overflow included', () => {
  const storage = new MemoryStorage();
  const first = new GatewaySender(runtime(storage), spec(true), secondary, SILENT_LOGGER);
  for (let n = 1; n <= 500; n++) first.enqueue(event(n));
  first.dropAcknowledged([eventId(event(1)), eventId(event(2))]);
  // This turn's events are written as one record at the end of the turn; the sync waits for it.
  return new Promise<void>((resolve, reject) => first.sync((error) => {
    if (error !== undefined) return reject(error);
    try {
      storage.crash();
      const second = new GatewaySender(runtime(storage), spec(true), secondary, SILENT_LOGGER);
      assert.equal(second.queuedEvents, 498, 'the events acknowledged before the record was written are not in it');
      // What fits in memory is loaded, the rest read back record by record: in order.
      const keys: string[] = [];
      while (second.queuedEvents > 0) {
        const held = second.staleEvents(0, 50);
        assert.ok(held.length > 0);
        keys.push(...held.map((queued) => queued[1]));
        second.dropAcknowledged(held.map(eventId));
      }
      assert.deepEqual(keys, Array.from({ length: 498 }, (_, index) => `key-${index + 3}`));
      resolve();
    } catch (failure) {
      reject(failure);
    }
  }));
});

test('a serial sender recovers only two floor windows of a persisted backlog into memory, however much memory it has', async () => {
  const storage = new MemoryStorage();
  const first = new GatewaySender(runtime(storage), spec(true), secondary, SILENT_LOGGER);
  // One record per turn: 20 turns of 1,000 events, almost all of them on disk.
  for (let turn = 0; turn < 20; turn++) {
    for (let n = turn * 1000 + 1; n <= (turn + 1) * 1000; n++) first.enqueue(event(n));
    await new Promise<void>((resolve, reject) => first.sync((error) => (error === undefined ? resolve() : reject(error))));
  }
  const roomy = new GatewaySender(runtime(storage), { ...spec(true), maximumQueueMemoryMegabytes: 64 }, secondary, SILENT_LOGGER);
  const status = roomy.status();
  assert.equal(status.queueEvents, 20_000);
  // 2 windows × 16 batches × batch-size 100, and the rest of the record that reaches it.
  const inMemory = status.queueEvents - status.overflowEvents;
  assert.ok(inMemory >= 2 * 16 * 100 && inMemory <= 2 * 16 * 100 + 1000, `${inMemory} events recovered into memory`);
});

test('events already acknowledged are not queued again', () => {
  const sender = new GatewaySender(runtime(new MemoryStorage()), spec(false), secondary, SILENT_LOGGER);
  sender.enqueue(event(1));
  sender.dropAcknowledged([eventId(event(1))]);
  sender.enqueue(event(1));
  assert.equal(sender.queuedEvents, 0);
});

/** A primary sender on a simulated host and a receiver stand-in that refuses region MISSING. */
function primaryWithReceiver(options: { holdReplies?: boolean; deadLetterBytesMax?: number; oneWayDelayMs?: number; queueMegabytes?: number } = {}) {
  const sim = new Simulator({ seed: 5, log: 'silent', ...(options.oneWayDelayMs === undefined ? {} : { network: { baseDelayMs: options.oneWayDelayMs, jitterMs: 0 } }) });
  const receiverRuntime = sim.host('receiver', { address: '10.0.0.2' }).runtime();
  const held: (() => void)[] = [];
  let batches = 0;
  const sizes: number[] = [];
  receiverRuntime.network.listen({ host: '10.0.0.2', port: 5000 }, (stream) => {
    Connection.accept(receiverRuntime, stream, { local: { role: 'server', name: 'receiver', site: 2 }, frameBytesMax: 1 << 24, requestTimeoutMs: 30_000, requestsInFlightMax: 100 }, {
      onOpen: () => {},
      onRequest: (_connection, request, reply) => {
        batches += 1;
        const events = eventPackr.unpack((request.body as RequestBody<'gatewayBatch'>).packed!) as GatewayEvent[];
        sizes.push(events.length);
        const answer = () => (reply as Reply<'gatewayBatch'>).ok({
          applied: events.length,
          refused: events.flatMap((sent, index) => (sent[0] === 'MISSING' ? [{ index, code: 'STRAIT_REGION_NOT_FOUND', message: 'no MISSING here' }] : [])),
        });
        if (options.holdReplies === true) held.push(answer);
        else answer();
      },
      onPush: () => {},
      onClose: () => {},
    });
  }, () => {});
  const announced: { ids: number; deadLetters: number }[] = [];
  const host: SenderHost = {
    memberName: 'server-1', site: 1, isPrimary: () => true, dialInLinks: () => [],
    receivers: () => ({ receivers: [{ host: '10.0.0.2', port: 5000 }], problem: null }),
    acknowledged: (ids, deadLetters) => announced.push({ ids: ids().length, deadLetters: deadLetters.length }),
    stateChanged: () => {},
  };
  const sender = new GatewaySender(sim.host('sender', { address: '10.0.0.1' }).runtime(), { ...spec(false), maximumQueueMemoryMegabytes: options.queueMegabytes ?? 1, batchSize: 10 }, host, SILENT_LOGGER,
    options.deadLetterBytesMax === undefined ? {} : { deadLetterBytesMax: options.deadLetterBytesMax });
  return { sim, sender, held, announced, batches: () => batches, sizes };
}

test('the events queued in one handler leave in one batch, at once, on an idle link', () => {
  const { sim, sender, sizes } = primaryWithReceiver();
  sender.enqueue(event(1));
  sender.tick();
  sim.run({ untilMs: 1000 });
  assert.deepEqual(sizes, [1], 'connected, the first event acknowledged');
  // One handler's worth (a network chunk of pipelined puts): pumping per event sent the first
  // alone and left the rest for the batch timer (10 ms here).
  for (let n = 2; n <= 9; n++) sender.enqueue(event(n));
  sim.run({ untilMs: 1005 });
  assert.deepEqual(sizes, [1, 8]);
});

test('a serial sender reads its backlog back as far ahead as its send window carries, within its queue memory', () => {
  const { sim, sender } = primaryWithReceiver({ oneWayDelayMs: 50, queueMegabytes: 4 });
  for (let n = 1; n <= 30_000; n++) sender.enqueue(event(n));
  sender.tick();
  const queued = sender.status();
  const filledAtFirst = queued.queueEvents - queued.overflowEvents;
  assert.ok(queued.overflowEvents > 20_000, 'most of the backlog waits on disk');
  // Once what filled memory at first is gone, memory holds what was read back: two windows of 16
  // batches of 10 (320 events, and the rest of the record being read) before the window grows.
  let inMemoryMax = 0;
  let windowMax = 0;
  while (sender.queuedEvents > 0 && sim.nowMs < 120_000) {
    sim.run({ untilMs: sim.nowMs + 50 });
    const status = sender.status();
    if (status.eventsSent > filledAtFirst && status.overflowEvents > 0) inMemoryMax = Math.max(inMemoryMax, status.queueEvents - status.overflowEvents);
    windowMax = Math.max(windowMax, status.sendWindow?.batches ?? 0);
  }
  assert.equal(sender.queuedEvents, 0);
  assert.ok(windowMax > 64, `the window grew on the 100 ms link: ${windowMax} batches`);
  assert.ok(inMemoryMax >= 2 * 10 * 64, `the read-ahead followed it: ${inMemoryMax} events in memory at most`);
  const itemBytes = 64 + 768;
  assert.ok(inMemoryMax <= (4 * 1024 * 1024) / itemBytes + 1024, `within the queue memory: ${inMemoryMax} events`);
});

test('pause answers once the batches in flight have landed; nothing arrives after it until resume', () => {
  const { sim, sender, held, batches } = primaryWithReceiver({ holdReplies: true });
  for (let n = 1; n <= 200; n++) sender.enqueue(event(n));
  sender.tick();
  sim.run({ untilMs: 1000 });
  assert.ok(batches() > 1, 'several batches in flight');
  let paused = false;
  sender.pause(() => { paused = true; });
  assert.equal(paused, false, 'waits for the batches in flight');
  for (const answer of held.splice(0)) answer();
  sim.run({ untilMs: 2000 });
  assert.equal(paused, true);
  const before = batches();
  for (let n = 201; n <= 220; n++) sender.enqueue(event(n));
  sim.run({ untilMs: 5000 });
  assert.equal(batches(), before, 'no batch after the pause');
  sender.resume();
  sim.run({ untilMs: 6000 });
  assert.ok(batches() > before);
});

test('refused events become dead letters announced to the copies; a full dead-letter store stops dispatch and drops nothing', () => {
  const { sim, sender, announced } = primaryWithReceiver({ deadLetterBytesMax: 400 });
  const missing = (n: number): GatewayEvent => ['MISSING', `key-${n}`, new Uint8Array(64), [1, 1000 + n, 'server-1#a', n], false];
  for (let n = 1; n <= 5; n++) sender.enqueue(missing(n));
  for (let n = 6; n <= 8; n++) sender.enqueue(event(n));
  sender.tick();
  sim.run({ untilMs: 5000 });
  const status = sender.status();
  assert.ok(status.deadLetters >= 2 && status.deadLetters < 5, `some dead letters kept (${status.deadLetters})`);
  assert.equal(status.queueEvents, 5 - status.deadLetters, 'the ones that did not fit stay queued');
  assert.match(status.problem ?? '', /dead letters are full/);
  assert.equal(announced.reduce((sum, entry) => sum + entry.deadLetters, 0), status.deadLetters, 'each dead letter was announced to the copies');
  sender.replayDeadLetters();
  assert.equal(sender.status().problem, null);
});
