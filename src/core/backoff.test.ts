import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from './backoff.ts';

function fixedRandom(value: number) {
  return { next: () => value, int: (bound: number) => Math.floor(value * bound) };
}

test('backoff grows exponentially up to the maximum and resets', () => {
  const backoff = new Backoff(fixedRandom(0.999999), { initialDelayMs: 100, maximumDelayMs: 1000 });
  const delays = Array.from({ length: 6 }, () => backoff.nextDelayMs());
  assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
  backoff.reset();
  assert.equal(backoff.nextDelayMs(), 100);
});

test('backoff jitter stays within half to all of the ceiling', () => {
  const low = new Backoff(fixedRandom(0), { initialDelayMs: 100, maximumDelayMs: 1000 });
  assert.deepEqual([low.nextDelayMs(), low.nextDelayMs()], [50, 100]);
});
