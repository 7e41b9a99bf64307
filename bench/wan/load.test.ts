// The WAN benchmark's load helpers: stamped values and lag summaries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LagRecorder, sentAt, stampedValue } from './load.ts';

test('stamped values have the exact size and give back their send time and run', () => {
  const value = stampedValue('lag3', 1234.5678, 100);
  assert.equal(value.length, 100);
  assert.equal(sentAt(value, 'lag3'), 1234.568);
  assert.equal(sentAt(value, 'lag4'), undefined);
  assert.equal(sentAt('x'.repeat(100), 'lag3'), undefined);
  assert.equal(stampedValue('r', 1, 1024).length, 1024);
});

test('lag recorder percentiles', () => {
  const recorder = new LagRecorder(4);
  for (let lag = 1; lag <= 1000; lag++) recorder.add(lag);
  const summary = recorder.summary();
  assert.equal(summary.events, 1000);
  assert.equal(summary.p50Ms, 500);
  assert.equal(summary.p99Ms, 990);
  assert.equal(summary.p999Ms, 999);
  assert.equal(summary.maxMs, 1000);
});
