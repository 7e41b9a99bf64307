import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { registerOperationHistogram } from './operation-histogram.ts';

test('renders cumulative buckets, +Inf, sum and count per operation, as prom-client does', async () => {
  const registry = new Registry();
  const histogram = registerOperationHistogram(registry, 'x_seconds', 'help text', [0.1, 1]);
  histogram.observe('put', 0.1); // on a bound: counted in that bucket (le is inclusive)
  histogram.observe('put', 0.5);
  histogram.observe('put', 7);
  histogram.observe('get', 0.01);
  const text = await registry.metrics();
  for (const line of [
    '# TYPE x_seconds histogram',
    'x_seconds_bucket{le="0.1",op="put"} 1',
    'x_seconds_bucket{le="1",op="put"} 2',
    'x_seconds_bucket{le="+Inf",op="put"} 3',
    'x_seconds_sum{op="put"} 7.6',
    'x_seconds_count{op="put"} 3',
    'x_seconds_bucket{le="0.1",op="get"} 1',
    'x_seconds_count{op="get"} 1',
  ]) assert.ok(text.split('\n').includes(line), `missing ${line} in\n${text}`);
  registry.resetMetrics();
  assert.ok(!(await registry.metrics()).includes('x_seconds_count'), 'reset clears the series');
});
