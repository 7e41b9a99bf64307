import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage } from '../runtime/memory-storage.ts';
import { SIM_COMPRESSION } from '../sim/simulator.ts';
import { SILENT_LOGGER, type Runtime } from '../runtime/runtime.ts';
import type { GatewayEvent } from '../protocol/messages.ts';
import type { GatewaySenderSpec } from './config.ts';
import { GatewaySender, eventId, type SenderHost } from './gateway-sender.ts';

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
  memberName: 'server-1', site: 1, isPrimary: () => false, receivers: () => ({ receivers: [], problem: 'none' }), acknowledged: () => {}, stateChanged: () => {},
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
  let synced = false;
  first.sync(() => { synced = true; });
  return new Promise<void>((resolve) => queueMicrotask(() => {
    assert.ok(synced);
    storage.crash();
    const second = new GatewaySender(runtime(storage), spec(true), secondary, SILENT_LOGGER);
    assert.equal(second.queuedEvents, 498);
    const held = second.staleEvents(0, 3);
    assert.deepEqual(held.map((queued) => queued[1]), ['key-3', 'key-4', 'key-5']);
    resolve();
  }));
});

test('events already acknowledged are not queued again', () => {
  const sender = new GatewaySender(runtime(new MemoryStorage()), spec(false), secondary, SILENT_LOGGER);
  sender.enqueue(event(1));
  sender.dropAcknowledged([eventId(event(1))]);
  sender.enqueue(event(1));
  assert.equal(sender.queuedEvents, 0);
});
