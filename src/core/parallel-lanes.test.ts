import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PartitionMap, View } from '../protocol/messages.ts';
import { PARTITION_DEFAULTS } from './config.ts';
import { dispatcherOf, holderOf, holdsLane, lanesOf } from './parallel-lanes.ts';
import { serverInfo, viewOf } from './parts.test-support.ts';

const members = ['a', 'b', 'c'].map((name) => serverInfo(name, { regions: ['P'], senders: [{ id: 'to-2', remoteSite: 2 }] }));
const [a, b, c] = members.map((member) => member.id) as [string, string, string];
const map: PartitionMap = {
  region: 'P', settings: { ...PARTITION_DEFAULTS, totalNumBuckets: 3 }, persistent: false,
  buckets: [{ primary: a, copies: [a, b], pending: [] }, { primary: b, copies: [b, c], pending: [] }, null],
};
const view = (ready: boolean[] = [true, true, true]): View => ({ ...viewOf(members, 5, ready), partitions: [map] });

test('each bucket is dispatched by its primary; every copy computes the same', () => {
  assert.equal(dispatcherOf(view(), 'to-2', 'P', 0, { id: b, dispatches: true }, undefined)?.id, a);
  assert.equal(dispatcherOf(view(), 'to-2', 'P', 0, { id: a, dispatches: true }, undefined)?.id, a);
  assert.equal(dispatcherOf(view(), 'to-2', 'P', 2, { id: a, dispatches: true }, undefined), undefined, 'a bucket not created yet has none');
  assert.deepEqual(lanesOf(view(), 'to-2', ['P'], { id: b, dispatches: true }, undefined), { lanes: new Set(['P/1']), held: 2, undispatched: 0 });
});

test('a stopped or not-ready primary hands its buckets to their next copy; with none left the bucket is undispatched', () => {
  assert.equal(dispatcherOf(view(), 'to-2', 'P', 0, { id: b, dispatches: true }, new Set([a]))?.id, b, 'a stopped copy (as announced) is skipped');
  assert.equal(dispatcherOf(view(), 'to-2', 'P', 0, { id: a, dispatches: false }, undefined)?.id, b, 'our own stopped copy is skipped');
  assert.equal(dispatcherOf(view([false, true, true]), 'to-2', 'P', 0, { id: b, dispatches: true }, undefined)?.id, b, 'a primary not ready yet is skipped');
  assert.deepEqual(lanesOf(view(), 'to-2', ['P'], { id: b, dispatches: false }, new Set([a])), { lanes: new Set(), held: 2, undispatched: 1 }, 'bucket 0: a and b stopped; bucket 1 goes to c');
  assert.equal(dispatcherOf(view(), 'other-sender', 'P', 0, { id: a, dispatches: true }, undefined), undefined, 'a member not hosting the sender never dispatches it');
});

test('with no copy dispatching, a new copy takes the lane from any ready copy of the bucket; a copy serves lanes of buckets it holds', () => {
  assert.equal(dispatcherOf(view(), 'to-2', 'P', 0, { id: c, dispatches: true }, new Set([a, b])), undefined, 'both copies stopped');
  assert.equal(holderOf(view(), 'to-2', 'P', 0, c)?.id, a, 'the first ready copy, stopped or not');
  assert.equal(holderOf(view([false, true, true]), 'to-2', 'P', 0, c)?.id, b);
  assert.equal(holdsLane(view(), 'P/1', c), true);
  assert.equal(holdsLane(view(), 'P/0', c), false);
  assert.equal(holdsLane(view(), 'P/2', a), false, 'a bucket not created yet');
});
