import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseInfo, parseRedisBenchmarkCsv, redisBenchmarkArgs } from './redis.ts';

test('parses redis-benchmark 7 CSV with its latency columns', () => {
  const text = [
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"',
    '"SET","7374.63","0.126","0.024","0.119","0.199","0.439","3.927"',
    '"GET","7779.07","0.119","0.024","0.119","0.175","0.335","4.095"',
    '',
  ].join('\n');
  assert.deepEqual(parseRedisBenchmarkCsv(text), [
    { test: 'SET', rps: 7374.63, avgLatencyMs: 0.126, p50LatencyMs: 0.119, p99LatencyMs: 0.439 },
    { test: 'GET', rps: 7779.07, avgLatencyMs: 0.119, p50LatencyMs: 0.119, p99LatencyMs: 0.335 },
  ]);
});

test('parses the headerless CSV of redis-benchmark before 6.2: rps only, latencies NaN', () => {
  const [row] = parseRedisBenchmarkCsv('"SET","81234.56"\r\n');
  assert.equal(row?.test, 'SET');
  assert.equal(row?.rps, 81234.56);
  assert.ok(Number.isNaN(row?.p50LatencyMs));
});

test('ignores progress lines and refuses a row without a number', () => {
  assert.deepEqual(parseRedisBenchmarkCsv('SET: rps=0.0 (overall: nan) avg_msec=nan\n'), []);
  assert.throws(() => parseRedisBenchmarkCsv('"SET","fast"\n'));
});

test('parses INFO replication', () => {
  const info = parseInfo('# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nslave_repl_offset:97924659\r\n');
  assert.equal(info.get('role'), 'slave');
  assert.equal(info.get('slave_repl_offset'), '97924659');
  assert.equal(info.has('# Replication'), false);
});

test('redis-benchmark runs one client at the given pipeline depth with CSV output', () => {
  assert.deepEqual(redisBenchmarkArgs(6379, 'set,get', 1000, 64, 100), ['-p', '6379', '-t', 'set,get', '-n', '1000', '-d', '100', '-P', '64', '-c', '1', '--csv']);
});
