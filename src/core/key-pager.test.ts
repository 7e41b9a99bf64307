import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KEY_PAGE_CHARACTERS_MAX, KeyPager } from './key-pager.ts';

test('pages follow a snapshot in sorted order; keys added meanwhile do not shift them', () => {
  const pager = new KeyPager();
  const keys = ['d', 'b', 'a', 'e', 'c'];
  const first = pager.page(1, 'keys', 'R', () => [...keys], null, 2);
  keys.push('aa', 'bb');
  const second = pager.page(1, 'keys', 'R', () => [...keys], first.keys.at(-1)!, 2);
  const third = pager.page(1, 'keys', 'R', () => [...keys], second.keys.at(-1)!, 2);
  assert.deepEqual([first.keys, second.keys, third.keys], [['a', 'b'], ['c', 'd'], ['e']]);
  assert.deepEqual([first.done, second.done, third.done], [false, false, true]);
});

test('a page holds a bounded number of characters, and always at least one key', () => {
  const pager = new KeyPager();
  const long = Array.from({ length: 10 }, (_, index) => `${index}`.padEnd(KEY_PAGE_CHARACTERS_MAX / 4, 'x'));
  const page = pager.page(1, 'keys', 'R', () => long, null, 10_000);
  assert.equal(page.keys.length, 4);
  const huge = pager.page(2, 'keys', 'R', () => ['y'.repeat(KEY_PAGE_CHARACTERS_MAX * 2)], null, 10);
  assert.equal(huge.keys.length, 1);
});

test('a closed connection\'s snapshots are dropped; another connection continues after the last key', () => {
  const pager = new KeyPager();
  const keys = ['a', 'b', 'c'];
  pager.page(1, 'keys', 'R', () => [...keys], null, 1);
  pager.connectionClosed(1);
  keys.unshift('0');
  const resumed = pager.page(2, 'keys', 'R', () => [...keys], 'a', 10);
  assert.deepEqual(resumed.keys, ['b', 'c']);
});
