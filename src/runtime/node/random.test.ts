import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSeededRandom, Xoshiro128StarStar } from './random.ts';

test('xoshiro128** matches the reference implementation for seed 0, 1, 2, 3', () => {
  const random = new Xoshiro128StarStar([0, 1, 2, 3]);
  const outputs = Array.from({ length: 6 }, () => random.nextUint32());
  assert.deepEqual(outputs, [5760, 17280, 2966400, 32451840, 2604340873, 3891234569]);
});

test('the same seed gives the same sequence', () => {
  const first = new Xoshiro128StarStar([7, 8, 9, 10]);
  const second = new Xoshiro128StarStar([7, 8, 9, 10]);
  for (let index = 0; index < 100; index++) assert.equal(first.next(), second.next());
});

test('int is unbiased enough to hit every value of a small bound', () => {
  const random = new Xoshiro128StarStar([1, 2, 3, 4]);
  const counts = new Array<number>(6).fill(0);
  for (let index = 0; index < 6000; index++) {
    const value = random.int(6);
    counts[value] = (counts[value] ?? 0) + 1;
  }
  for (const count of counts) assert.ok(count > 800 && count < 1200, `count ${count} far from 1000`);
});

test('an all-zero seed and a non-positive bound are assertion failures', () => {
  assert.throws(() => new Xoshiro128StarStar([0, 0, 0, 0]), { name: 'AssertionFailure' });
  const random = createSeededRandom();
  assert.throws(() => random.int(0), { name: 'AssertionFailure' });
  assert.throws(() => random.int(1.5), { name: 'AssertionFailure' });
});
