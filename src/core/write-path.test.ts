import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../errors.ts';
import type { Reply } from '../protocol/connection.ts';
import type { WireEntry } from '../protocol/messages.ts';
import { SILENT_LOGGER } from '../runtime/runtime.ts';
import { Simulator } from '../sim/simulator.ts';
import { NO_METRICS, type MemberState } from './member-admin.ts';
import { RecordingPool, serverInfo, viewOf } from './parts.test-support.ts';
import type { Region } from './region.ts';
import { RegionTable } from './region-table.ts';
import { Subscriptions } from './subscriptions.ts';
import { WritePath, type GatewayQueues } from './write-path.ts';
import { REPLICATION_QUEUE_ENTRIES_MAX } from './replication.ts';

function setup(state: MemberState = 'ready') {
  // Neither peer's view entry lists region R: they host it only when a creation named them.
  const sim = new Simulator({ seed: 1, log: 'silent' });
  const runtime = sim.host('server-1').runtime();
  const pool = new RecordingPool();
  const regions = new RegionTable(runtime.storage, 'server-1', undefined, SILENT_LOGGER);
  regions.open({ name: 'R', type: 'replicate', persistent: false });
  const queued: WireEntry[] = [];
  const gateways: GatewayQueues = { queue: (_region: Region, entry: WireEntry) => queued.push(entry), sync: () => {}, admit: () => {} };
  const me = serverInfo('server-1');
  const holder = { state };
  const writes = new WritePath(runtime, pool.asPool(), { memberName: 'server-1', info: () => me, state: () => holder.state, storageFailed: () => {} },
    { regions, subscriptions: new Subscriptions('server-1', 1 << 20), gateways }, NO_METRICS, SILENT_LOGGER);
  const peers = [serverInfo('server-2', { regions: [] }), serverInfo('server-3', { regions: [] })];
  writes.viewInstalled(viewOf([me, ...peers]));
  return { sim, pool, regions, writes, queued, me, peers, holder };
}

function outcome(): { done: boolean; error: StraitError | undefined; callback: (error: StraitError | undefined) => void } {
  const result = { done: false, error: undefined as StraitError | undefined, callback: (error: StraitError | undefined) => {
    result.done = true;
    result.error = error;
  } };
  return result;
}

test('a write is acknowledged once every other server applied it, and is queued for the gateways', () => {
  const { sim, pool, regions, writes, queued } = setup();
  const result = outcome();
  writes.write(regions.require('R'), [['k', new Uint8Array([1])]], undefined, result.callback);
  sim.run();
  const sent = pool.open('replicate');
  assert.equal(sent.length, 2, 'one replicate per other server');
  assert.deepEqual(sent.map((request) => (request.body as { gateway?: boolean }).gateway), [true, true]);
  assert.equal(queued.length, 1);
  sent[0]!.answer(undefined, {});
  sim.run();
  assert.equal(result.done, false, 'still waiting for server-3');
  sent[1]!.answer(undefined, {});
  sim.run();
  assert.deepEqual([result.done, result.error], [true, undefined]);
  assert.deepEqual(regions.require('R').get('k'), new Uint8Array([1]));
});

test('a server leaving the view releases the writes waiting on it; losing our own place fails them', () => {
  const { sim, pool, regions, writes, me, peers } = setup();
  const released = outcome();
  writes.write(regions.require('R'), [['k', new Uint8Array([1])]], undefined, released.callback);
  sim.run();
  pool.open('replicate').find((request) => request.address.host === 'host-server-2')!.answer(undefined, {});
  writes.viewInstalled(viewOf([me, peers[0]!], 2));
  sim.run();
  assert.deepEqual([released.done, released.error], [true, undefined]);

  const failed = outcome();
  writes.write(regions.require('R'), [['k', new Uint8Array([2])]], undefined, failed.callback);
  sim.run();
  writes.abandonAll(new StraitError('STRAIT_NOT_MEMBER', { member: 'server-1', site: 1 }));
  sim.run();
  assert.equal(failed.error?.code, 'STRAIT_NOT_MEMBER');
});

test('a new write gets a timestamp after the one the key holds, even from a clock running ahead', () => {
  const { sim, regions, writes } = setup();
  const region = regions.require('R');
  const ahead = Date.now() + 3_600_000;
  region.apply('k', new Uint8Array([1]), [2, ahead, 'server-9#z', 7]);
  writes.write(region, [['k', new Uint8Array([2])]], undefined, () => {});
  sim.run();
  assert.ok(region.entry('k')!.tag[1] > ahead);
  assert.deepEqual(region.get('k'), new Uint8Array([2]));
});

test('replicated entries are applied; only changes entering the site are queued for gateways', () => {
  const { sim, regions, writes, queued, holder } = setup();
  let replied: string | undefined;
  const reply: Reply<'replicate'> = { ok: () => { replied = 'ok'; }, fail: (error) => { replied = error.code; } };
  writes.onReplicate({ region: 'R', entries: [['a', new Uint8Array([1]), [1, 1, 'server-2#1', 1]]] }, reply);
  writes.onReplicate({ region: 'R', entries: [['b', new Uint8Array([1]), [1, 1, 'server-2#1', 2]]], gateway: true }, reply);
  sim.run();
  assert.equal(replied, 'ok');
  assert.deepEqual(queued.map((entry) => entry[0]), ['b']);
  assert.deepEqual(regions.require('R').keys().sort(), ['a', 'b']);
  holder.state = 'joining';
  writes.onReplicate({ region: 'R', entries: [] }, reply);
  assert.equal(replied, 'STRAIT_NOT_READY');
});

test('a server that should host the region and answers that it lacks it is asked again, not counted as applied', () => {
  const { sim, pool, regions, writes, peers } = setup();
  regions.expectHosts('R', [peers[0]!.id]);
  const result = outcome();
  writes.write(regions.require('R'), [['k', new Uint8Array([1])]], undefined, result.callback);
  sim.run();
  const notFound = new StraitError('STRAIT_REGION_NOT_FOUND', { region: 'R', member: 'x' });
  for (const request of pool.open('replicate')) request.answer(notFound);
  sim.run({ untilMs: sim.nowMs + 5000 });
  assert.equal(result.done, false, 'server-2 was named a host: its refusal is a failure');
  const again = pool.open('replicate');
  assert.deepEqual(again.map((request) => request.address.host), ['host-server-2'], 'only server-2 is asked again; server-3 hosts no R');
  again[0]!.answer(undefined, {});
  sim.run();
  assert.deepEqual([result.done, result.error], [true, undefined]);
});

test('a peer that does not take its replication backlog makes the server refuse new writes with STRAIT_OVERLOADED, applying nothing', () => {
  const { sim, regions, writes } = setup();
  const region = regions.require('R');
  const entries = Array.from({ length: REPLICATION_QUEUE_ENTRIES_MAX }, (_, index) => [`k${index}`, new Uint8Array(1)] as const);
  writes.write(region, entries, undefined, () => {});
  sim.run();
  assert.throws(() => writes.write(region, [['one-more', new Uint8Array(1)]], undefined, () => {}),
    (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_OVERLOADED' && error.retryable);
  assert.equal(region.get('one-more'), undefined);
});

test('a request id travels with all of its request\'s entries in one replicate message, or not at all', () => {
  const { sim, pool, regions, writes } = setup();
  const region = regions.require('R');
  const entries = (prefix: string, count: number) => Array.from({ length: count }, (_, index) => [`${prefix}${index}`, new Uint8Array(1)] as const);
  writes.write(region, entries('a', 1000), undefined, () => {});
  writes.write(region, entries('b', 100), 'client:1', () => {});
  writes.write(region, entries('c', 1500), 'client:2', () => {});
  sim.run();
  const toServer2 = pool.requests.filter((request) => request.op === 'replicate' && request.address.host === 'host-server-2')
    .map((request) => request.body as { entries: [string][]; requests?: [string, boolean][] });
  const carrying = toServer2.filter((body) => body.requests !== undefined);
  assert.equal(carrying.length, 1, 'only client:1 is named to the replicas; client:2 is too large for one message');
  assert.deepEqual(carrying[0]!.requests, [['client:1', false]]);
  const keys = carrying[0]!.entries.map((entry) => entry[0]);
  for (let index = 0; index < 100; index++) assert.ok(keys.includes(`b${index}`), `b${index} travels with its request id`);
});

test('a replicate frame the peer refuses as too large is split; a single entry it can never take fails its write', () => {
  const { sim, pool, regions, writes } = setup();
  const region = regions.require('R');
  const tooLarge = new StraitError('STRAIT_FRAME_TOO_LARGE', { size: 1, peer: 'server-2', limit: 1 });
  const result = outcome();
  writes.write(region, [0, 1, 2, 3].map((n) => [`k${n}`, new Uint8Array(1000)] as const), undefined, result.callback);
  sim.run();
  for (const request of pool.open('replicate')) {
    if (request.address.host === 'host-server-2') request.answer(tooLarge);
    else request.answer(undefined, {});
  }
  sim.run();
  const smaller = pool.open('replicate');
  assert.ok(smaller.length >= 2 && smaller.every((request) => (request.body as { entries: unknown[] }).entries.length < 4), 'sent again in smaller batches');
  for (const request of smaller) request.answer(undefined, {});
  sim.run();
  assert.deepEqual([result.done, result.error], [true, undefined]);

  const single = outcome();
  writes.write(region, [['huge', new Uint8Array(1000)]], undefined, single.callback);
  sim.run();
  for (const request of pool.open('replicate')) request.answer(request.address.host === 'host-server-2' ? tooLarge : undefined, {});
  sim.run();
  assert.equal(single.error?.code, 'STRAIT_FRAME_TOO_LARGE');
});
