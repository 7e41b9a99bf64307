import { test } from 'node:test';
import assert from 'node:assert/strict';
import { percentile, spread } from './stats.ts';

test('percentile uses the nearest rank', () => {
  const sorted = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(percentile(sorted, 0.5), 5);
  assert.equal(percentile(sorted, 0.99), 10);
  assert.equal(percentile(sorted, 0), 1);
  assert.ok(Number.isNaN(percentile(new Float64Array(0), 0.5)));
});

test('spread gives the median, min and max and keeps every run', () => {
  assert.deepEqual(spread([3, 1, 2]), { median: 2, min: 1, max: 3, runs: [3, 1, 2] });
  assert.equal(spread([4, 1, 2, 3]).median, 2.5);
  assert.equal(spread([Number.NaN, 5]).median, 5);
});
