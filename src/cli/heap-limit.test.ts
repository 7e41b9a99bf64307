import { test } from 'node:test';
import assert from 'node:assert/strict';
import { heapLimitProblem } from './heap-limit.ts';

const MiB = 1024 * 1024;

test('a heap limit V8 got from the setting is no problem; Node\'s default one is, with the fix', () => {
  assert.equal(heapLimitProblem(undefined, 4288 * MiB), undefined, 'nothing configured');
  assert.equal(heapLimitProblem(512, 536 * MiB), undefined, '--max-old-space-size=512 with 8 MiB semi-spaces');
  assert.equal(heapLimitProblem(512, 704 * MiB), undefined, '--max-old-space-size=512 with default semi-spaces');
  assert.equal(heapLimitProblem(64, 256 * MiB), undefined, 'V8 rounds a small limit up');
  const problem = heapLimitProblem(512, 4288 * MiB);
  assert.match(problem ?? '', /maximum-heap-memory is 512 MiB but this Node's heap limit is 4288 MiB/);
  assert.match(problem ?? '', /NODE_OPTIONS=--max-old-space-size=512/);
});
