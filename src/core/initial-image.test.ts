import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../errors.ts';
import type { Reply } from '../protocol/connection.ts';
import type { ResponseBody, View } from '../protocol/messages.ts';
import { SILENT_LOGGER } from '../runtime/runtime.ts';
import { Simulator } from '../sim/simulator.ts';
import { InitialImage } from './initial-image.ts';
import { KeyPager } from './key-pager.ts';
import { NO_METRICS } from './member-admin.ts';
import { RecordingPool, recordingConnection, serverInfo, viewOf } from './parts.test-support.ts';
import { RegionTable } from './region-table.ts';
import { Subscriptions } from './subscriptions.ts';
import { WritePath } from './write-path.ts';

const bytes = (n: number) => new Uint8Array([n]);

function member(name: string, state: { ready: boolean; initializing: boolean }, view: () => View) {
  const sim = new Simulator({ seed: 1, log: 'silent' });
  const runtime = sim.host(name).runtime();
  const pool = new RecordingPool();
  const regions = new RegionTable(runtime.storage, name, undefined, SILENT_LOGGER);
  regions.open({ name: 'R', type: 'replicate', persistent: false });
  const info = serverInfo(name);
  const writes = new WritePath(runtime, pool.asPool(), { memberName: name, info: () => info, state: () => 'initializing', storageFailed: () => {} },
    { regions, subscriptions: new Subscriptions('server-1', 1 << 20), gateways: { queue: () => {}, sync: () => {}, admit: () => {} } }, NO_METRICS, SILENT_LOGGER);
  let complete = 0;
  const images = new InitialImage(runtime, pool.asPool(), {
    memberName: name, view, memberId: () => info.id,
    initializing: () => state.initializing, ready: () => state.ready, imagesComplete: () => { complete += 1; },
  }, regions, writes, new KeyPager());
  return { sim, pool, regions, writes, images, info, completed: () => complete };
}

function page(images: InitialImage, connection: ReturnType<typeof recordingConnection>, after: string | null, limit: number, viewId = 1): ResponseBody<'image'> | string {
  let result: ResponseBody<'image'> | string = 'no reply';
  const reply: Reply<'image'> = { ok: (body) => { result = body; }, fail: (error) => { result = error.code; } };
  try {
    images.serve(connection, { region: 'R', viewId, after, limit }, reply);
  } catch (error) {
    result = (error as StraitError).code;
  }
  return result;
}

test('a provider serves its region in key order, page by page, tombstones included', () => {
  const view = viewOf([serverInfo('server-1'), serverInfo('server-2')]);
  const provider = member('server-1', { ready: true, initializing: false }, () => view);
  const region = provider.regions.require('R');
  for (const key of ['c', 'a', 'e', 'b', 'd']) region.apply(key, bytes(1), [1, 1, 'server-1#1', key.charCodeAt(0)]);
  region.apply('b', null, [1, 2, 'server-1#1', 100]);
  const joiner = recordingConnection('server-2', 'server');
  const keys: string[] = [];
  let after: string | null = null;
  for (let round = 0; round < 10; round++) {
    const answer = page(provider.images, joiner, after, 2);
    assert.ok(typeof answer !== 'string', `page answered (${String(answer)})`);
    keys.push(...answer.entries.map((entry) => entry[0]));
    after = answer.entries.at(-1)?.[0] ?? after;
    if (answer.done) break;
  }
  assert.deepEqual(keys, ['a', 'b', 'c', 'd', 'e']);
  assert.equal(page(provider.images, joiner, null, 10, 2), 'STRAIT_NOT_READY', 'a joiner in a newer view waits');
});

test('a provider that is not ready refuses to serve', () => {
  const view = viewOf([serverInfo('server-1')]);
  const provider = member('server-1', { ready: false, initializing: true }, () => view);
  assert.equal(page(provider.images, recordingConnection('server-2', 'server'), null, 10), 'STRAIT_NOT_READY');
});

test('a joiner learns runtime regions, applies the images and pushes back what only it had', () => {
  const providerInfo = serverInfo('server-1');
  let view = viewOf([providerInfo, serverInfo('server-2')]);
  const joiner = member('server-2', { ready: false, initializing: true }, () => view);
  view = viewOf([providerInfo, joiner.info]);
  joiner.writes.viewInstalled(view);
  const region = joiner.regions.require('R');
  region.apply('mine', bytes(9), [1, 5, 'server-2#1', 1]);
  region.apply('newer-here', bytes(9), [1, 50, 'server-2#1', 2]);
  joiner.images.take(view);
  const list = joiner.pool.open('listRegions');
  assert.equal(list.length, 1);
  list[0]!.answer(undefined, { regions: [{ spec: { name: 'R', type: 'replicate', persistent: false }, size: 2 }, { spec: { name: 'S', type: 'replicate', persistent: false }, size: 0, hosts: ['server-1#1', 'server-3#1'] }] });
  assert.ok(joiner.regions.has('S'), 'a region created at runtime elsewhere is created here');
  assert.ok(joiner.regions.expectedOn('S', 'server-3#1'), 'with the hosts its creation named, whose refusals are retried');
  for (const request of joiner.pool.open('image')) {
    const regionName = (request.body as { region: string }).region;
    request.answer(undefined, regionName === 'R'
      ? { entries: [['theirs', bytes(1), [1, 10, 'server-1#1', 1]], ['newer-here', bytes(1), [1, 20, 'server-1#1', 2]]], done: true }
      : { entries: [], done: true });
  }
  assert.equal(joiner.completed(), 1);
  assert.deepEqual(region.get('theirs'), bytes(1));
  assert.deepEqual(region.get('newer-here'), bytes(9), 'the newer local copy wins');
  joiner.sim.run();
  const pushed = joiner.pool.open('replicate').flatMap((request) => (request.body as { entries: [string][] }).entries.map((entry) => entry[0]));
  assert.deepEqual(pushed.sort(), ['mine', 'newer-here']);
});

test('an image from a provider that left the view is not waited for', () => {
  const providerInfo = serverInfo('server-1');
  const joinerInfo = serverInfo('server-2');
  let view = viewOf([providerInfo, joinerInfo]);
  const joiner = member('server-2', { ready: false, initializing: true }, () => view);
  joiner.images.take(view);
  view = viewOf([joinerInfo], 2);
  joiner.pool.open('listRegions')[0]!.answer(new StraitError('STRAIT_CONNECTION_CLOSED', { peer: 'server-1', type: 'listRegions' }));
  joiner.sim.run();
  assert.equal(joiner.completed(), 1);
});

test('image pages of large values stay within a few MiB, so they always fit a frame', () => {
  const view = viewOf([serverInfo('server-1'), serverInfo('server-2')]);
  const provider = member('server-1', { ready: true, initializing: false }, () => view);
  const region = provider.regions.require('R');
  for (let n = 0; n < 10; n++) region.apply(`k${n}`, new Uint8Array(1024 * 1024), [1, 1, 'server-1#1', n]);
  const joiner = recordingConnection('server-2', 'server');
  const sizes: number[] = [];
  let after: string | null = null;
  for (let round = 0; round < 20; round++) {
    const answer = page(provider.images, joiner, after, 2000);
    assert.ok(typeof answer !== 'string');
    sizes.push(answer.entries.length);
    after = answer.entries.at(-1)?.[0] ?? after;
    if (answer.done) break;
  }
  assert.equal(sizes.reduce((sum, size) => sum + size, 0), 10);
  assert.ok(sizes.every((size) => size <= 4), `pages of ${sizes.join(', ')} entries of 1 MiB`);
});
