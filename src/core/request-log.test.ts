import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestLog } from './request-log.ts';

test('remembered ids are found until they are too old or pushed out', () => {
  const log = new RequestLog(3, 1000);
  // Times are kept in whole seconds.
  log.remember('a', true, 0);
  log.remember('b', false, 10);
  assert.deepEqual(log.lookup('a', 500), { existed: true });
  assert.deepEqual(log.lookup('b', 500), { existed: false });
  assert.equal(log.lookup('a', 1001), undefined, 'too old');
  log.remember('c', false, 20);
  log.remember('d', false, 30);
  assert.equal(log.lookup('a', 40), undefined, 'the oldest went first');
  assert.notEqual(log.lookup('b', 40), undefined);
  assert.equal(log.size, 3);
});
