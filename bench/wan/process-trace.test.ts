// The lag runs' process traces: Prometheus text parsed as prom-client writes it, GC counted
// between two scrapes by kind and over 10 ms, and the one-line description.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { describeTrace, parseMetrics, traceBetween, traced } from './process-trace.ts';

const labels = 'kind="minor",site="1",member="wan-server-1"';
function scrape(minor: { count: number; sum: number; upTo10ms: number }, major: { count: number; sum: number; upTo10ms: number }, p99: number, max: number): string {
  return [
    '# HELP nodejs_gc_duration_seconds Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    '# TYPE nodejs_gc_duration_seconds histogram',
    `nodejs_gc_duration_seconds_bucket{le="0.001",${labels}} 0`,
    `nodejs_gc_duration_seconds_bucket{le="0.01",${labels}} ${minor.upTo10ms}`,
    `nodejs_gc_duration_seconds_bucket{le="+Inf",${labels}} ${minor.count}`,
    `nodejs_gc_duration_seconds_sum{${labels}} ${minor.sum}`,
    `nodejs_gc_duration_seconds_count{${labels}} ${minor.count}`,
    `nodejs_gc_duration_seconds_bucket{le="0.01",kind="major",site="1",member="wan-server-1"} ${major.upTo10ms}`,
    `nodejs_gc_duration_seconds_sum{kind="major",site="1",member="wan-server-1"} ${major.sum}`,
    `nodejs_gc_duration_seconds_count{kind="major",site="1",member="wan-server-1"} ${major.count}`,
    '',
    `nodejs_eventloop_lag_p99_seconds{site="1",member="wan-server-1"} ${p99}`,
    `nodejs_eventloop_lag_max_seconds{site="1",member="wan-server-1"} ${max}`,
    'strait_label_with_escape{path="a\\"b"} 1',
  ].join('\n');
}

test('parseMetrics reads names, labels (escapes included) and values, skipping comments', () => {
  const samples = parseMetrics(scrape({ count: 3, sum: 0.5, upTo10ms: 2 }, { count: 1, sum: 0.02, upTo10ms: 0 }, 0.012, 0.04));
  assert.equal(samples.length, 11);
  assert.deepEqual(samples[1], { name: 'nodejs_gc_duration_seconds_bucket', labels: { le: '0.01', kind: 'minor', site: '1', member: 'wan-server-1' }, value: 2 });
  assert.deepEqual(samples.at(-1), { name: 'strait_label_with_escape', labels: { path: 'a"b' }, value: 1 });
});

test('traceBetween counts the collections of the run by kind, those over 10 ms, and the delay since the first scrape', () => {
  const before = parseMetrics(scrape({ count: 10, sum: 0.05, upTo10ms: 10 }, { count: 2, sum: 0.03, upTo10ms: 1 }, 0.5, 0.9));
  const after = parseMetrics(scrape({ count: 40, sum: 0.25, upTo10ms: 37 }, { count: 3, sum: 0.05, upTo10ms: 1 }, 0.023, 0.048));
  const trace = traceBetween(before, after);
  assert.deepEqual(trace.gc?.['minor'], { collections: 30, milliseconds: 200, over10ms: 3 });
  assert.equal(trace.gc?.['major']?.collections, 1);
  assert.equal(trace.gc?.['major']?.over10ms, 1);
  assert.ok(Math.abs(trace.gc!['major']!.milliseconds - 20) < 1e-9);
  // The monitors record the whole 10 ms tick: the trace says how late the loop ran beyond it.
  assert.equal(trace.loopDelayP99Ms, 13);
  assert.equal(trace.loopDelayMaxMs, 38);
  assert.equal(traceBetween(before, parseMetrics(scrape({ count: 10, sum: 0.05, upTo10ms: 10 }, { count: 2, sum: 0.03, upTo10ms: 1 }, 0.0098, 0.0099))).loopDelayMaxMs, 0, 'a tick that came early is not negative lateness');
  assert.equal(
    describeTrace({ 'site 1': trace, 'site 2': { failed: 'fetch failed' }, bench: { loopDelayP99Ms: 7.44, loopDelayMaxMs: 24 } }),
    'site 1: GC 220 ms (30 minor, 1 major; 4 over 10 ms), loop late p99 13.0 ms, max 38.0 | site 2: no trace (fetch failed) | bench: loop late p99 7.4 ms, max 24.0',
  );
});

test('the metrics a member exposes (prom-client default metrics) carry what the trace reads', async () => {
  const registry = new Registry();
  registry.setDefaultLabels({ site: '1', member: 'test' });
  collectDefaultMetrics({ register: registry });
  // Garbage enough for a scavenge, until the GC observer (it reports asynchronously) counted one.
  const minorCount = async () => parseMetrics(await registry.metrics()).find((sample) => sample.name === 'nodejs_gc_duration_seconds_count' && sample.labels['kind'] === 'minor')?.value ?? 0;
  let kept = 0;
  for (let attempt = 0; attempt < 100 && (await minorCount()) < 1; attempt++) {
    for (let index = 0; index < 200_000; index++) kept += new Array(16).fill(index).length;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.ok(kept > 0);
  assert.ok((await minorCount()) >= 1, 'a minor GC was counted');
  const samples = parseMetrics(await registry.metrics());
  assert.ok(samples.some((sample) => sample.name === 'nodejs_gc_duration_seconds_bucket' && Number(sample.labels['le']) === 0.01));
  const p99 = samples.find((sample) => sample.name === 'nodejs_eventloop_lag_p99_seconds');
  assert.ok(p99 !== undefined && Number.isFinite(p99.value));
});

test('a server whose /metrics cannot be read gets no figures, and the run is kept', async () => {
  // A port nothing listens on: one this test held and closed.
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const port = (holder.address() as AddressInfo).port;
  await new Promise((resolve) => holder.close(resolve));
  const { result, trace } = await traced({ 'site 1': `http://127.0.0.1:${port}` }, async () => 'kept');
  assert.equal(result, 'kept');
  assert.ok('failed' in trace['site 1']!);
});

test('traced with no servers measures this process only', async () => {
  const { result, trace } = await traced({}, async () => {
    await new Promise((resolve) => setTimeout(resolve, 30));
    return 7;
  });
  assert.equal(result, 7);
  assert.deepEqual(Object.keys(trace), ['bench']);
  const own = trace['bench']!;
  assert.ok(!('failed' in own) && own.loopDelayMaxMs >= 0);
});
