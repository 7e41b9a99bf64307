import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import type { GatewayEvent } from '../protocol/messages.ts';
import { CapturingLogger } from './cluster.test-support.ts';
import type { GatewayEventView } from './config.ts';
import { EventFilters } from './event-filters.ts';

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const event = (key: string, value: unknown): GatewayEvent => ['R', key, value === undefined ? null : packr.pack(value), [3, 1, 'server-1#a', 1], false];
const clock = { now: () => 0, monotonic: () => 0 };

test('filters decide what is queued and sent; they see decoded values, the origin site and removes', () => {
  const seen: GatewayEventView[] = [];
  const filters = new EventFilters([
    { beforeEnqueue: (view) => !view.key.startsWith('local-') },
    { beforeTransmit: (view) => (view.value as { secret?: boolean } | undefined)?.secret !== true, afterAcknowledgement: (view) => { seen.push(view); } },
  ], 'to-2', clock, new CapturingLogger());
  assert.equal(filters.beforeEnqueue(event('local-1', 1)), false);
  assert.equal(filters.beforeEnqueue(event('k', 1)), true);
  assert.equal(filters.beforeTransmit(event('k', { secret: true })), false);
  assert.equal(filters.beforeTransmit(event('k', { secret: false })), true);
  filters.afterAcknowledgement(event('gone', undefined));
  assert.deepEqual([seen[0]!.key, seen[0]!.removed, seen[0]!.originSite, seen[0]!.value], ['gone', true, 3, undefined]);
  assert.equal(filters.failures, 0);
});

test('a filter that throws loses no event: it passes, and the failure is logged with its code and counted', () => {
  const log = new CapturingLogger();
  const filters = new EventFilters([{
    beforeEnqueue: () => { throw new Error('bug in the filter'); },
    beforeTransmit: () => { throw new Error('another'); },
    afterAcknowledgement: () => { throw new Error('third'); },
  }], 'to-2', clock, log);
  assert.equal(filters.beforeEnqueue(event('k', 1)), true);
  assert.equal(filters.beforeTransmit(event('k', 1)), true);
  filters.afterAcknowledgement(event('k', 1));
  assert.equal(filters.failures, 3);
  const logged = log.lines.filter((line) => line.fields['code'] === 'STRAIT_FILTER_FAILED');
  assert.equal(logged.length, 1, 'logged once per interval, counted every time');
  assert.match(logged[0]!.message, /beforeEnqueue hook of a gateway event filter of sender to-2 failed on R\/k: bug in the filter/);
});
