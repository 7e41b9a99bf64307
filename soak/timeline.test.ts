import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SeededRandom } from '../src/sim/random.ts';
import { DURATION_SECONDS_MIN } from './options.ts';
import { FAULT_WINDOW_MS_MIN, rowTimeline, TAIL_MS_MIN, WARM_UP_MS_MIN } from './timeline.ts';

test('every duration allowed gets a warm-up, a fault window past the member timeout and a tail', () => {
  fc.assert(fc.property(fc.integer({ min: DURATION_SECONDS_MIN, max: 86_400 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (seconds, seed) => {
    const timeline = rowTimeline(seconds, new SeededRandom(seed));
    assert.ok(timeline.faultAtMs >= WARM_UP_MS_MIN, JSON.stringify(timeline));
    assert.ok(timeline.recoverAtMs - timeline.faultAtMs >= FAULT_WINDOW_MS_MIN, JSON.stringify(timeline));
    assert.ok(timeline.durationMs - timeline.recoverAtMs >= TAIL_MS_MIN, JSON.stringify(timeline));
  }));
});

test('the fault comes at 20–30 % of a long row, the same moment for the same seed', () => {
  const timeline = rowTimeline(100, new SeededRandom(5));
  assert.ok(timeline.faultAtMs >= 20_000 && timeline.faultAtMs <= 30_000);
  assert.equal(timeline.recoverAtMs - timeline.faultAtMs, 30_000);
  assert.deepEqual(rowTimeline(100, new SeededRandom(5)), timeline);
});
