import { test } from 'node:test';
import assert from 'node:assert/strict';
import { digestLogLines, messageShape } from './logs.ts';

const line = (level: number, msg: string, time = 1000): string => JSON.stringify({ level, time, name: 'm', msg });

test('messages differing only in numbers share a shape', () => {
  assert.equal(messageShape('server1-1 silent for 5276.9 ms'), messageShape('server1-1 silent for 5209.5 ms'));
  assert.notEqual(messageShape('replication failed'), messageShape('batch failed'));
});

test('the digest keeps warnings and worse, groups them by member and shape, worst and most frequent first', () => {
  const text = [
    line(30, 'info is ignored'),
    line(40, 'receiver 127.0.0.1[5001] closed; 3 events queued'),
    line(40, 'receiver 127.0.0.1[5001] closed; 9 events queued'),
    'not json',
    '{"broken": ',
    line(50, 'storage failed'),
    '',
  ].join('\n');
  const digest = digestLogLines([{ member: 'server1-1', text }, { member: 'server1-2', text: line(40, 'receiver 127.0.0.1[5001] closed; 1 events queued') }]);
  assert.deepEqual(digest, [
    { member: 'server1-1', level: 'error', example: 'storage failed', count: 1 },
    { member: 'server1-1', level: 'warn', example: 'receiver 127.0.0.1[5001] closed; 3 events queued', count: 2 },
    { member: 'server1-2', level: 'warn', example: 'receiver 127.0.0.1[5001] closed; 1 events queued', count: 1 },
  ]);
});

test('lines written before the load started are left out', () => {
  const text = [line(40, 'start-up: remote locator refused', 500), line(40, 'during the row', 2000)].join('\n');
  assert.deepEqual(digestLogLines([{ member: 'locator-1', text }], 1000).map((message) => message.example), ['during the row']);
});
