import { test } from 'node:test';
import { StraitError } from '../errors.ts';
import assert from 'node:assert/strict';
import { Connection, type Reply } from '../protocol/connection.ts';
import type { GatewayEvent, RequestBody, ResponseBody } from '../protocol/messages.ts';
import { SILENT_LOGGER, type Runtime } from '../runtime/runtime.ts';
import { Simulator } from '../sim/simulator.ts';
import type { GatewaySenderSpec } from './config.ts';
import { SenderDispatcher, type Refusal } from './sender-dispatcher.ts';
import { WINDOW_BATCHES_MIN } from './send-window.ts';
import { eventPackr, SenderQueue, type QueueItem } from './sender-queue.ts';

const spec: GatewaySenderSpec = {
  id: 'to-2', remoteSiteId: 2, parallel: false, batchSize: 10, batchTimeIntervalMs: 5, maximumQueueMemoryMegabytes: 1,
  persistent: false, dispatcherThreads: 1, orderPolicy: 'key', batchConflation: false, manualStart: false, compression: false,
};

/** A gateway receiver stand-in on its own simulated host: it records batches and answers on demand. */
/** `answerAtOnce`, or after `answerAfterMs` (a receiver applying and committing), or never (the test answers). */
function receiver(runtime: Runtime, answerAtOnce: boolean, frameBytesMax = 1 << 24, incomingRequestsMax?: number, answerAfterMs?: number) {
  const batches: { body: RequestBody<'gatewayBatch'>; reply: Reply<'gatewayBatch'> }[] = [];
  let connections = 0;
  runtime.network.listen({ host: '10.0.0.2', port: 5000 }, (stream) => {
    connections += 1;
    const limits = incomingRequestsMax === undefined ? {} : { incomingRequestsMax };
    Connection.accept(runtime, stream, { local: { role: 'server', name: 'receiver', site: 2 }, frameBytesMax, requestTimeoutMs: 30_000, requestsInFlightMax: 100, ...limits }, {
      onOpen: () => {},
      onRequest: (_connection, request, reply) => {
        const sent = request.body as RequestBody<'gatewayBatch'>;
        // The events travel as their queue-record bytes (`packed`): decoded here for the checks.
        assert.equal(sent.events.length, 0, 'events go as packed bytes');
        const body = { ...sent, events: eventPackr.unpack(sent.packed!) as GatewayEvent[] };
        batches.push({ body, reply: reply as Reply<'gatewayBatch'> });
        const answer = () => reply.ok({ applied: body.events.length, refused: [] } satisfies ResponseBody<'gatewayBatch'>);
        if (answerAfterMs !== undefined) runtime.setTimer(answerAfterMs, answer);
        else if (answerAtOnce) answer();
      },
      onPush: () => {},
      onClose: () => {},
    });
  }, () => {});
  return { batches, connections: () => connections };
}

function sender(sim: Simulator, acknowledged: QueueItem[][], dialInLinks: () => readonly Connection[] = () => []) {
  const refusals: { key: string; code: string }[] = [];
  const runtime = sim.host('sender', { address: '10.0.0.1' }).runtime();
  const queue = new SenderQueue(runtime.storage.open('sender-to-2'), runtime.clock, { name: 'sender to-2', persistent: false, memoryBytesMax: 1 << 20 });
  const dispatcher = new SenderDispatcher(runtime, spec, queue, {
    memberName: 'server-1', site: 1,
    dialInLinks,
    receivers: () => ({ receivers: [{ host: '10.0.0.2', port: 5000 }], problem: null }),
    mayDispatch: () => true, mayReconnect: () => true, transmits: () => true,
    acknowledged: (items: readonly QueueItem[], refused: readonly Refusal[]) => {
      acknowledged.push([...items]);
      refusals.push(...refused.map((refusal) => ({ key: items[refusal.index]!.event![1], code: refusal.code })));
      queue.acknowledge(items);
    },
    queuedEvents: () => queue.size,
    batchSettled: () => {},
    windowChanged: () => {},
  }, SILENT_LOGGER);
  return { queue, dispatcher, refusals, runtime };
}

const event = (n: number): GatewayEvent => ['R', `key-${n}`, new Uint8Array([n & 0xff]), [1, 1000 + n, 'server-1#a', n], false];

test('batches reach the receiver in queue order and acknowledged events leave the queue', () => {
  const sim = new Simulator({ seed: 1, log: 'silent' });
  const remote = receiver(sim.host('receiver', { address: '10.0.0.2' }).runtime(), true);
  const acknowledged: QueueItem[][] = [];
  const { queue, dispatcher } = sender(sim, acknowledged);
  for (let n = 1; n <= 95; n++) queue.enqueue(event(n));
  dispatcher.pump();
  sim.run({ untilMs: 5000 });
  const keys = remote.batches.flatMap((batch) => batch.body.events.map((sent) => sent[1]));
  assert.deepEqual(keys, Array.from({ length: 95 }, (_, index) => `key-${index + 1}`));
  assert.ok(remote.batches.every((batch) => batch.body.events.length <= spec.batchSize));
  assert.equal(queue.size, 0);
  assert.equal(dispatcher.eventsSent, 95);
});

test('no more than the window of batches is in flight; a lost connection resends them flagged', () => {
  const sim = new Simulator({ seed: 2, log: 'silent' });
  const remote = receiver(sim.host('receiver', { address: '10.0.0.2' }).runtime(), false);
  const acknowledged: QueueItem[][] = [];
  const { queue, dispatcher } = sender(sim, acknowledged);
  for (let n = 1; n <= spec.batchSize * (WINDOW_BATCHES_MIN + 4); n++) queue.enqueue(event(n));
  dispatcher.pump();
  sim.run({ untilMs: 2000 });
  assert.equal(remote.batches.length, WINDOW_BATCHES_MIN);
  assert.equal(dispatcher.batchesInFlight, WINDOW_BATCHES_MIN);
  sim.network.partition(['sender'], ['receiver']);
  sim.run({ untilMs: 4000 });
  sim.network.heal();
  sim.run({ untilMs: 20_000 });
  const resent = remote.batches.slice(WINDOW_BATCHES_MIN);
  assert.ok(resent.length > 0, 'the batches lost with the connection were sent again');
  assert.equal(resent[0]!.body.events[0]![1], 'key-1', 'from the head of the queue');
  assert.equal(resent[0]!.body.events[0]![4], true, 'flagged possible-duplicate');
  const answered = new Set(remote.batches.slice(0, WINDOW_BATCHES_MIN));
  for (let round = 0; round < 100 && queue.size > 0; round++) {
    for (const batch of remote.batches) {
      if (answered.has(batch)) continue;
      answered.add(batch);
      batch.reply.ok({ applied: batch.body.events.length, refused: [] });
    }
    sim.run({ untilMs: sim.nowMs + 1000 });
  }
  assert.equal(queue.size, 0, 'everything was acknowledged in the end');
});

test('batches of large values are split by bytes below the receiver\'s frame limit; an event that can never fit is refused', () => {
  const sim = new Simulator({ seed: 3, log: 'silent' });
  const remote = receiver(sim.host('receiver', { address: '10.0.0.2' }).runtime(), true, 256 * 1024);
  const acknowledged: QueueItem[][] = [];
  const { queue, dispatcher, refusals } = sender(sim, acknowledged);
  const big = (n: number, bytes: number): GatewayEvent => ['R', `big-${n}`, new Uint8Array(bytes).fill(n), [1, 1000 + n, 'server-1#a', n], false];
  for (let n = 1; n <= 10; n++) queue.enqueue(big(n, 60 * 1024));
  queue.enqueue(big(11, 300 * 1024));
  queue.enqueue(big(12, 1024));
  dispatcher.pump();
  sim.run({ untilMs: 5000 });
  assert.equal(queue.size, 0, 'nothing stalls the queue');
  const delivered = remote.batches.flatMap((batch) => batch.body.events.map((sent) => sent[1]));
  assert.deepEqual(delivered, [...Array.from({ length: 10 }, (_, index) => `big-${index + 1}`), 'big-12']);
  assert.ok(remote.batches.every((batch) => batch.body.events.reduce((sum, sent) => sum + (sent[2]?.length ?? 0), 0) <= 128 * 1024));
  assert.deepEqual(refusals, [{ key: 'big-11', code: 'STRAIT_FRAME_TOO_LARGE' }]);
});

test('thousands of events too large for the receiver in a row become dead letters without deepening the stack', () => {
  const sim = new Simulator({ seed: 4, log: 'silent' });
  receiver(sim.host('receiver', { address: '10.0.0.2' }).runtime(), true, 2 * 1024);
  const acknowledged: QueueItem[][] = [];
  const { queue, dispatcher, refusals } = sender(sim, acknowledged);
  for (let n = 1; n <= 5000; n++) queue.enqueue(['R', `big-${n}`, new Uint8Array(4096), [1, 1000 + n, 'server-1#a', n], false]);
  dispatcher.pump();
  sim.run({ untilMs: 60_000 });
  assert.equal(queue.size, 0);
  assert.equal(refusals.length, 5000);
  assert.ok(refusals.every((refusal) => refusal.code === 'STRAIT_FRAME_TOO_LARGE'));
});

test('a connection still in its handshake when the dispatcher disconnects is closed, not kept by nobody', () => {
  const sim = new Simulator({ seed: 6, log: 'silent', network: { baseDelayMs: 5, jitterMs: 0 } });
  receiver(sim.host('receiver', { address: '10.0.0.2' }).runtime(), true);
  const { queue, dispatcher } = sender(sim, []);
  queue.enqueue(event(1));
  dispatcher.pump();
  sim.run({ untilMs: 2 }); // the handshake is under way
  dispatcher.disconnect();
  sim.run({ untilMs: 1000 });
  assert.equal(sim.network.stats().connectionsOpen, 0);
  assert.equal(dispatcher.receiver, undefined);
});

/** Enqueues `count` events, pumps, and returns the virtual ms until the queue drained (or `limitMs`). */
function drainMs(sim: Simulator, queue: SenderQueue, dispatcher: SenderDispatcher, count: number, limitMs: number): number {
  const startMs = sim.nowMs;
  for (let n = 1; n <= count; n++) queue.enqueue(event(n));
  dispatcher.pump();
  while (queue.size > 0 && sim.nowMs - startMs < limitMs) sim.run({ untilMs: sim.nowMs + 10 });
  return sim.nowMs - startMs;
}

test('on a 100 ms round trip the window grows past 16 batches, so a backlog is not window-bound', () => {
  const sim = new Simulator({ seed: 7, log: 'silent', network: { baseDelayMs: 50, jitterMs: 0 } });
  receiver(sim.host('receiver', { address: '10.0.0.2' }).runtime(), true);
  const { queue, dispatcher } = sender(sim, []);
  // 1,600 batches of 10: a fixed window of 16 would need 100 round trips, ~10 s.
  const events = 16_000;
  const elapsedMs = drainMs(sim, queue, dispatcher, events, 30_000);
  assert.equal(queue.size, 0);
  assert.ok(elapsedMs < 3_000, `drained in ${elapsedMs} ms`);
  const window = dispatcher.windowStatus;
  assert.ok(window.batches > 4 * WINDOW_BATCHES_MIN, `window ${window.batches} batches`);
  assert.ok(window.baseRttMs !== null && window.baseRttMs >= 100 && window.baseRttMs < 110, `base round trip ${window.baseRttMs} ms`);
  assert.equal(window.bytesInFlight, 0, 'nothing left in flight');
});

test('a lost connection measures the next one afresh: the window starts again from the floor', () => {
  const sim = new Simulator({ seed: 8, log: 'silent', network: { baseDelayMs: 50, jitterMs: 0 } });
  receiver(sim.host('receiver', { address: '10.0.0.2' }).runtime(), true);
  const { queue, dispatcher } = sender(sim, []);
  drainMs(sim, queue, dispatcher, 16_000, 30_000);
  assert.ok(dispatcher.windowStatus.batches > WINDOW_BATCHES_MIN);
  sim.network.partition(['sender'], ['receiver']);
  queue.enqueue(event(1));
  dispatcher.pump();
  sim.run({ untilMs: sim.nowMs + 40_000 });
  assert.equal(dispatcher.windowStatus.batches, WINDOW_BATCHES_MIN);
  assert.equal(dispatcher.windowStatus.baseRttMs, null);
  sim.network.heal();
  sim.run({ untilMs: sim.nowMs + 20_000 });
  assert.equal(queue.size, 0, 'the event went out on the new connection');
});

test('a round trip that rises under an open connection is probed afresh: the window then grows to the long link', () => {
  const sim = new Simulator({ seed: 9, log: 'silent', network: { baseDelayMs: 1, jitterMs: 0 } });
  receiver(sim.host('receiver', { address: '10.0.0.2' }).runtime(), true);
  const { queue, dispatcher } = sender(sim, []);
  drainMs(sim, queue, dispatcher, 2_000, 10_000);
  const shortBase = dispatcher.windowStatus.baseRttMs;
  assert.ok(shortBase !== null && shortBase < 10, `base round trip ${shortBase} ms on the short path`);
  sim.network.setLatency({ baseMs: 150, jitterMs: 0 });
  // At the floor, 16 batches of 10 per 300 ms: 40,000 events would take 75 s.
  const elapsedMs = drainMs(sim, queue, dispatcher, 40_000, 120_000);
  assert.equal(queue.size, 0);
  assert.ok(elapsedMs < 40_000, `drained in ${elapsedMs} ms`);
  const window = dispatcher.windowStatus;
  assert.ok(window.baseRttMs !== null && window.baseRttMs >= 300, `base round trip ${window.baseRttMs} ms after the probe`);
  assert.ok(window.batches > 4 * WINDOW_BATCHES_MIN, `window ${window.batches} batches`);
});

/**
 * A dial-out receiver: it dials the sender's server and serves batches over that link, holding
 * each `answerAfterMs`, taking at most `incomingRequestsMax` at once (dial-out.ts's limit).
 */
function dialOutReceiver(sim: Simulator, senderRuntime: Runtime, incomingRequestsMax: number, answerAfterMs: number) {
  const receiverRuntime = sim.host('receiver', { address: '10.0.0.2' }).runtime();
  const links: Connection[] = [];
  const delivered: string[] = [];
  senderRuntime.network.listen({ host: '10.0.0.1', port: 40404 }, (stream) => {
    Connection.accept(senderRuntime, stream, { local: { role: 'server', name: 'server-1', site: 1 }, frameBytesMax: 1 << 24, requestTimeoutMs: 30_000, requestsInFlightMax: 10_000 }, {
      onOpen: (connection) => links.push(connection),
      onRequest: (_connection, _request, reply) => reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: 'receiver', reason: 'test' })),
      onPush: () => {},
      onClose: () => {},
    });
  }, () => {});
  Connection.open(receiverRuntime, { host: '10.0.0.1', port: 40404 }, {
    local: { role: 'server', name: 'receiver', site: 2 }, frameBytesMax: 1 << 24, requestTimeoutMs: 30_000, requestsInFlightMax: 4, incomingRequestsMax,
  }, {
    onOpen: () => {},
    onRequest: (_connection, request, reply) => {
      const sent = request.body as RequestBody<'gatewayBatch'>;
      const events = eventPackr.unpack(sent.packed!) as GatewayEvent[];
      receiverRuntime.setTimer(answerAfterMs, () => {
        delivered.push(...events.map((event) => event[1]));
        (reply as Reply<'gatewayBatch'>).ok({ applied: events.length, refused: [] });
      });
    },
    onPush: () => {},
    onClose: () => {},
  });
  return { links, delivered };
}

test('a dial-out link that holds fewer of our batches than the window caps it for a while, not a reason to reconnect', () => {
  const sim = new Simulator({ seed: 10, log: 'silent', network: { baseDelayMs: 50, jitterMs: 0 } });
  // It holds each batch 60 ms: once the window passes ~40 × 160 / 60 ≈ 107, it refuses some.
  const links: Connection[] = [];
  const { queue, dispatcher, runtime } = sender(sim, [], () => links);
  const remote = dialOutReceiver(sim, runtime, 40, 60);
  sim.run({ untilMs: 1000 });
  links.push(...remote.links);
  assert.equal(links.length, 1, 'the receiver dialed in');
  let windowMax = 0;
  for (let n = 1; n <= 40_000; n++) queue.enqueue(event(n));
  dispatcher.pump();
  while (queue.size > 0 && sim.nowMs < 120_000) {
    sim.run({ untilMs: sim.nowMs + 20 });
    windowMax = Math.max(windowMax, dispatcher.windowStatus.batches);
  }
  assert.equal(queue.size, 0);
  assert.equal(remote.links.length, 1, 'one link throughout');
  assert.equal(dispatcher.dialInFrom !== undefined, true, 'still sending over it');
  assert.ok(windowMax > 40, `the window grew past the limit and learnt it: up to ${windowMax}`);
  assert.ok(dispatcher.windowStatus.batches >= 16 && dispatcher.windowStatus.batches <= 45, `window ${dispatcher.windowStatus.batches}`);
  // Every event arrived; a refused batch went again (flagged), and was not applied twice.
  assert.equal(new Set(remote.delivered).size, 40_000);
  assert.equal(remote.delivered.length, 40_000);
});

test('a refusal with none of our other batches in flight backs off and reconnects, and loses nothing', () => {
  const sim = new Simulator({ seed: 12, log: 'silent', network: { baseDelayMs: 1, jitterMs: 0 } });
  // A link that takes no request at all: every batch is refused with nothing else in flight.
  const links: Connection[] = [];
  const { queue, dispatcher, runtime } = sender(sim, [], () => links);
  const remote = dialOutReceiver(sim, runtime, 0, 1);
  sim.run({ untilMs: 1000 });
  links.push(...remote.links);
  queue.enqueue(event(1));
  dispatcher.pump();
  sim.run({ untilMs: 5000 });
  assert.equal(queue.size, 1, 'still queued, nothing lost');
  assert.equal(dispatcher.batchesInFlight, 0);
  assert.equal(dispatcher.windowStatus.bytesInFlight, 0);
});
