import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SILENT_LOGGER } from '../runtime/runtime.ts';
import { Simulator } from '../sim/simulator.ts';
import type { GatewaySender } from './gateway-sender.ts';
import { RecordingPool, serverInfo } from './parts.test-support.ts';
import { copyQueue } from './sender-images.ts';

function setup() {
  const sim = new Simulator({ seed: 1, log: 'silent' });
  const pool = new RecordingPool();
  const absorbed: unknown[] = [];
  const sender = { spec: { id: 'to-2' }, absorb: (events: unknown[]) => absorbed.push(...events), queuedEvents: 0 } as unknown as GatewaySender;
  const context = { runtime: sim.host('server-1').runtime(), pool: pool.asPool(), log: SILENT_LOGGER, memberName: 'server-1', selfId: () => 'server-1#1' };
  return { sim, pool, absorbed, sender, context };
}

test('a lane is paged from its source until the last page, then done', () => {
  const { pool, absorbed, sender, context } = setup();
  let done = 0;
  copyQueue(context, sender, 7, { from: () => serverInfo('server-2'), lane: 'P/3' }, () => true, () => { done += 1; });
  const first = pool.open('senderImage')[0]!;
  assert.deepEqual(first.body, { sender: 'to-2', viewId: 7, after: null, limit: 2000, lane: 'P/3' });
  first.answer(undefined, { events: [['P', 'a', null, [1, 1, 's#1', 1], false]], next: 5 });
  const second = pool.open('senderImage')[0]!;
  assert.equal((second.body as { after: number }).after, 5);
  second.answer(undefined, { events: [], next: null });
  assert.equal(absorbed.length, 1);
  assert.equal(done, 1);
});

test('a copy abandoned midway (no longer pending) still finishes, so its caller can clean up and image again later', () => {
  const { pool, sender, context } = setup();
  let still = true;
  let done = 0;
  copyQueue(context, sender, 7, { from: () => serverInfo('server-2'), lane: 'P/3' }, () => still, () => { done += 1; });
  still = false;
  pool.open('senderImage')[0]!.answer(undefined, { events: [], next: 9 });
  assert.equal(done, 1, 'done once, with no further page asked');
  assert.equal(pool.open('senderImage').length, 0);
});

test('no source, or this member itself: nothing to copy', () => {
  const { pool, sender, context } = setup();
  let done = 0;
  copyQueue(context, sender, 7, { from: () => undefined }, () => true, () => { done += 1; });
  copyQueue(context, sender, 7, { from: () => serverInfo('server-1') }, () => true, () => { done += 1; });
  assert.equal(done, 2);
  assert.equal(pool.open('senderImage').length, 0);
});
