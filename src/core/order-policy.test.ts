import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GatewayEvent } from '../protocol/messages.ts';
import { dispatcherThreadOf } from './order-policy.ts';
import { conflate } from './sender-dispatcher.ts';
import type { QueueItem } from './sender-queue.ts';

const event = (key: string, member: string, counter: number): GatewayEvent => ['R', key, new Uint8Array([counter]), [1, counter, member, counter], false];

test('order policies: one key, one bucket or one tagging server always on one thread, and threads are all used', () => {
  const keys = Array.from({ length: 200 }, (_, index) => `k${index}`);
  const byKey = new Set(keys.map((key) => dispatcherThreadOf('key', 4, event(key, 's#1', 1), undefined)));
  assert.deepEqual([...byKey].sort(), [0, 1, 2, 3]);
  assert.equal(dispatcherThreadOf('key', 4, event('k7', 'a#1', 1), 3), dispatcherThreadOf('key', 4, event('k7', 'b#1', 9), 5), 'key: the same thread whoever wrote it');
  assert.equal(dispatcherThreadOf('partition', 4, event('x', 'a#1', 1), 6), 2, 'partition: bucket modulo threads');
  assert.equal(dispatcherThreadOf('thread', 4, event('k1', 'server-3#1', 1), 0), dispatcherThreadOf('thread', 4, event('k2', 'server-3#1', 2), 1), 'thread: by the tagging server');
  assert.equal(dispatcherThreadOf('key', 1, event('k1', 'a#1', 1), 0), 0);
});

test('batch conflation keeps the latest event of each key, in queue order, and names the ones it left out', () => {
  const item = (key: string, counter: number) => ({ event: event(key, 's#1', counter) }) as unknown as QueueItem;
  const items = [item('a', 1), item('b', 2), item('a', 3), item('c', 4), item('b', 5)];
  const { sent, superseded } = conflate(items);
  assert.deepEqual(sent.map((kept) => `${kept.event![1]}${kept.event![3][1]}`), ['a3', 'c4', 'b5']);
  assert.deepEqual(superseded.map((left) => `${left.event![1]}${left.event![3][1]}`), ['a1', 'b2']);
  assert.equal(conflate(items.slice(0, 2)).superseded.length, 0);
});

test('batch conflation keeps the newest version, not the last queued (an image or a handoff appends older events)', () => {
  const item = (key: string, counter: number) => ({ event: event(key, 's#1', counter) }) as unknown as QueueItem;
  const { sent, superseded } = conflate([item('a', 9), item('a', 4)]);
  assert.deepEqual(sent.map((kept) => kept.event![3][1]), [9]);
  assert.deepEqual(superseded.map((left) => left.event![3][1]), [4]);
});
