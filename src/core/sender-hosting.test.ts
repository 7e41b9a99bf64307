import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Reply } from '../protocol/connection.ts';
import type { GatewayEvent, MemberInfo, View } from '../protocol/messages.ts';
import { SILENT_LOGGER } from '../runtime/runtime.ts';
import { Simulator } from '../sim/simulator.ts';
import type { GatewaySenderSpec } from './config.ts';
import { RecordingPool, serverInfo, viewOf } from './parts.test-support.ts';
import { Region } from './region.ts';
import { eventId } from './sender-queue.ts';
import { SenderHosting } from './sender-hosting.ts';

const spec: GatewaySenderSpec = {
  id: 'to-2', remoteSiteId: 2, parallel: false, batchSize: 100, batchTimeIntervalMs: 10, maximumQueueMemoryMegabytes: 1,
  persistent: false, dispatcherThreads: 1, orderPolicy: 'key', batchConflation: false, manualStart: false, compression: false,
};
const hosting: Partial<MemberInfo> = { senders: [{ id: 'to-2', remoteSite: 2 }] };

function host(name: string, view: () => View, me: MemberInfo) {
  const sim = new Simulator({ seed: 1, log: 'silent' });
  const runtime = sim.host(name).runtime();
  const pool = new RecordingPool();
  const senders = new SenderHosting(runtime, pool.asPool(), {
    memberName: name, locators: [], hasReceiver: () => false, routed: false, view, info: () => me, ready: () => true, storageFailed: () => {}, bucketOf: () => undefined, holdsBucket: () => true, regionsUsing: () => [], partitionedRegions: () => [], eventFilter: () => undefined,
  }, SILENT_LOGGER);
  assert.equal(senders.open(1, [spec]), undefined);
  return { sim, pool, senders };
}

const ok: Reply<'senderAck'> = { ok: () => {}, fail: (error) => assert.fail(error.message) };

test('the oldest ready server whose copy is not stopped is primary', () => {
  const first = serverInfo('server-1', hosting);
  const second = serverInfo('server-2', hosting);
  let view = viewOf([first, second]);
  const { senders } = host('server-2', () => view, second);
  assert.equal(senders.isPrimary('to-2'), false);
  senders.onAck('server-1', { sender: 'to-2', ids: [], stopped: true }, ok);
  assert.equal(senders.isPrimary('to-2'), true, 'a stopped copy cannot be primary');
  senders.onAck('server-1', { sender: 'to-2', ids: [], stopped: false }, ok);
  assert.equal(senders.isPrimary('to-2'), false);
  view = viewOf([first, second], 2, [false, true]);
  assert.equal(senders.isPrimary('to-2'), true, 'a server that is not ready cannot be primary');
});

test('a server refuses a sender aimed at its own site', () => {
  const me = serverInfo('server-1');
  const sim = new Simulator({ seed: 1, log: 'silent' });
  const senders = new SenderHosting(sim.host('server-1').runtime(), new RecordingPool().asPool(), {
    memberName: 'server-1', locators: [], hasReceiver: () => false, routed: false, view: () => null, info: () => me, ready: () => true, storageFailed: () => {}, bucketOf: () => undefined, holdsBucket: () => true, regionsUsing: () => [], partitionedRegions: () => [], eventFilter: () => undefined,
  }, SILENT_LOGGER);
  assert.equal(senders.open(2, [spec])?.code, 'STRAIT_CONFIG_INVALID');
});

test('a secondary hands long-held events to the primary and drops those it reports acknowledged', () => {
  const first = serverInfo('server-1', hosting);
  const second = serverInfo('server-2', hosting);
  const view = viewOf([first, second]);
  const secondary = host('server-2', () => view, second);
  const region = new Region({ name: 'R', type: 'replicate', persistent: false, gatewaySenderIds: ['to-2'] }, undefined);
  for (let n = 1; n <= 3; n++) secondary.senders.queue(region, [`k${n}`, new Uint8Array([n]), [1, n, 'server-1#1', n]], false);
  assert.equal(secondary.senders.statuses()[0]!.queueEvents, 3);
  secondary.sim.run({ untilMs: 10_000 });
  secondary.senders.tick();
  const handoff = secondary.pool.open('senderHandoff');
  assert.equal(handoff.length, 1);
  assert.equal((handoff[0]!.body as { events: GatewayEvent[] }).events.length, 3);
  handoff[0]!.answer(undefined, { acknowledged: [eventId(['R', 'k1', null, [1, 1, 'server-1#1', 1], false])] });
  assert.equal(secondary.senders.statuses()[0]!.queueEvents, 2);
});

test('the primary adopts handed-off events it never had and names those already acknowledged', () => {
  const first = serverInfo('server-1', hosting);
  const view = viewOf([first, serverInfo('server-2', hosting)]);
  const primary = host('server-1', () => view, first);
  assert.equal(primary.senders.isPrimary('to-2'), true);
  let acknowledged: string[] = [];
  const reply: Reply<'senderHandoff'> = { ok: (body) => { acknowledged = body.acknowledged; }, fail: (error) => assert.fail(error.message) };
  const event = (n: number): GatewayEvent => ['R', `k${n}`, new Uint8Array([n]), [1, n, 'server-1#1', n], false];
  primary.senders.onAck('server-9', { sender: 'to-2', ids: [eventId(event(1))] }, ok);
  primary.senders.onHandoff({ sender: 'to-2', events: [event(1), event(2)] }, reply);
  assert.deepEqual(acknowledged, [eventId(event(1))]);
  assert.equal(primary.senders.statuses()[0]!.queueEvents, 1, 'the event only the secondary had is queued');
});

test('a joining copy takes the primary\'s queue page by page before it is done; only the primary serves it', () => {
  const first = serverInfo('server-1', hosting);
  const joinerInfo = serverInfo('server-2', hosting);
  const view = viewOf([first, joinerInfo], 3, [true, false]);
  const primary = host('server-1', () => view, first);
  const region = new Region({ name: 'R', type: 'replicate', persistent: false, gatewaySenderIds: ['to-2'] }, undefined);
  for (let n = 1; n <= 4500; n++) primary.senders.queue(region, [`k${n}`, new Uint8Array([n & 0xff]), [1, n, 'server-1#1', n]], false);
  const joiner = host('server-2', () => view, joinerInfo);
  let done = false;
  joiner.senders.takeImages(3, () => true, () => { done = true; });
  for (let round = 0; round < 10 && !done; round++) {
    const request = joiner.pool.open('senderImage')[0]!;
    assert.equal(request.address.host, 'host-server-1', 'asked the primary');
    let answer: unknown;
    primary.senders.onImage(request.body as never, { ok: (body) => { answer = body; }, fail: (error) => assert.fail(error.message) });
    request.answer(undefined, answer);
  }
  assert.equal(done, true);
  assert.equal(joiner.senders.statuses()[0]!.queueEvents, 4500);
  assert.throws(() => joiner.senders.onImage({ sender: 'to-2', viewId: 3, after: null, limit: 10 }, { ok: () => {}, fail: () => {} }),
    (error: unknown) => (error as { code?: string }).code === 'STRAIT_NOT_READY', 'a secondary does not serve images');
  assert.throws(() => primary.senders.onImage({ sender: 'to-2', viewId: 4, after: null, limit: 10 }, { ok: () => {}, fail: () => {} }),
    (error: unknown) => (error as { code?: string }).code === 'STRAIT_NOT_READY', 'nor a primary that has not seen the joiner\'s view');
});

test('a secondary keeps the dead letters the primary announces, so they outlive the primary\'s disk', () => {
  const first = serverInfo('server-1', hosting);
  const second = serverInfo('server-2', hosting);
  const view = viewOf([first, second]);
  const secondary = host('server-2', () => view, second);
  const region = new Region({ name: 'R', type: 'replicate', persistent: false, gatewaySenderIds: ['to-2'] }, undefined);
  const entries = [1, 2, 3].map((n) => [`k${n}`, new Uint8Array([n]), [1, n, 'server-1#1', n]] as [string, Uint8Array, [number, number, string, number]]);
  for (const entry of entries) secondary.senders.queue(region, entry, false);
  const refused: GatewayEvent = ['R', 'k2', new Uint8Array([2]), [1, 2, 'server-1#1', 2], false];
  secondary.senders.onAck('server-1', {
    sender: 'to-2', ids: entries.map((entry) => eventId(['R', entry[0], entry[1], entry[2], false])),
    deadLetters: [{ event: refused, code: 'STRAIT_REGION_NOT_FOUND', message: 'no R at site 2' }],
  }, ok);
  const status = secondary.senders.statuses()[0]!;
  assert.equal(status.queueEvents, 0);
  assert.equal(status.deadLetters, 1);
});

test('writes routed to a sender whose disk overflow is at its limit are refused with STRAIT_QUEUE_FULL', () => {
  const first = serverInfo('server-1', hosting);
  const view = viewOf([first]);
  const sim = new Simulator({ seed: 1, log: 'silent' });
  const senders = new SenderHosting(sim.host('server-1').runtime(), new RecordingPool().asPool(), {
    memberName: 'server-1', locators: [], hasReceiver: () => false, routed: false, view: () => view, info: () => first, ready: () => true, storageFailed: () => {}, bucketOf: () => undefined, holdsBucket: () => true, regionsUsing: () => [], partitionedRegions: () => [], eventFilter: () => undefined,
  }, SILENT_LOGGER);
  senders.open(1, [{ ...spec, maximumQueueMemoryMegabytes: 1, maximumQueueDiskMegabytes: 1 }]);
  const region = new Region({ name: 'R', type: 'replicate', persistent: false, gatewaySenderIds: ['to-2'] }, undefined);
  let n = 0;
  const refused = (): unknown => {
    try {
      senders.admit(region);
      return undefined;
    } catch (error) {
      return error;
    }
  };
  while (refused() === undefined && n < 100_000) {
    n += 1;
    senders.queue(region, [`k${n}`, new Uint8Array(1000), [1, n, 'server-1#1', n]], false);
  }
  const error = refused() as { code?: string; retryable?: boolean } | undefined;
  assert.equal(error?.code, 'STRAIT_QUEUE_FULL');
  assert.equal(error?.retryable, false, "a full overflow lasts: it is the answer, not retried");
  assert.ok(n > 1000 && n < 5000, `about 2 MiB of events were taken first (${n})`);
});

test('a handoff of an event the remote site refused makes it a dead letter at the secondary, not a silent drop', () => {
  const first = serverInfo('server-1', hosting);
  const second = serverInfo('server-2', hosting);
  const view = viewOf([first, second]);
  const primary = host('server-1', () => view, first);
  const refusedEvent: GatewayEvent = ['R', 'k1', new Uint8Array([1]), [1, 1, 'server-1#1', 1], false];
  // The primary holds the event as a dead letter (its acknowledgement to server-2 was lost).
  primary.senders.onAck('server-9', { sender: 'to-2', ids: [eventId(refusedEvent)], deadLetters: [{ event: refusedEvent, code: 'STRAIT_REGION_NOT_FOUND', message: 'no R at site 2' }] }, ok);
  let answer: { acknowledged: string[]; refused?: { id: string; code: string }[] } | undefined;
  primary.senders.onHandoff({ sender: 'to-2', events: [refusedEvent] }, { ok: (body) => { answer = body; }, fail: (error) => assert.fail(error.message) });
  assert.deepEqual(answer?.refused?.map((refusal) => refusal.code), ['STRAIT_REGION_NOT_FOUND']);

  const secondary = host('server-2', () => view, second);
  const region = new Region({ name: 'R', type: 'replicate', persistent: false, gatewaySenderIds: ['to-2'] }, undefined);
  secondary.senders.queue(region, ['k1', new Uint8Array([1]), [1, 1, 'server-1#1', 1]], false);
  secondary.sim.run({ untilMs: 10_000 });
  secondary.senders.tick();
  const handoff = secondary.pool.open('senderHandoff')[0]!;
  handoff.answer(undefined, answer);
  const status = secondary.senders.statuses()[0]!;
  assert.deepEqual([status.queueEvents, status.deadLetters], [0, 1]);
});
