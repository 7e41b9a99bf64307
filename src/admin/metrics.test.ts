import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics } from './metrics.ts';

function sample(text: string, name: string, labels: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const [series, value] = line.split(' ');
    if (series === undefined || value === undefined) continue;
    if (!series.startsWith(`${name}{`) && series !== name) continue;
    if (labels.split(',').every((label) => series.includes(label))) return Number(value);
  }
  return undefined;
}

describe('createMetrics', () => {
  it('maps sink observations onto Prometheus series with member labels', async () => {
    const { registry, sink } = createMetrics('server', 'server1-1', 1);
    sink.operation('put', 2, true);
    sink.operation('put', 3, true);
    sink.operation('get', 1, false);
    sink.replicated(5);
    sink.replicated(2);
    sink.viewInstalled(4, 3);
    sink.clients(7);
    const text = await registry.metrics();

    assert.equal(sample(text, 'strait_operations_total', 'op="put",outcome="ok",role="server",member="server1-1",site="1"'), 2);
    assert.equal(sample(text, 'strait_operations_total', 'op="get",outcome="error"'), 1);
    assert.equal(sample(text, 'strait_operation_duration_seconds_count', 'op="put"'), 2);
    assert.equal(sample(text, 'strait_operation_duration_seconds_sum', 'op="put"'), 0.005);
    assert.equal(sample(text, 'strait_operation_duration_seconds_bucket', 'op="put",le="0.0025"'), 1);
    assert.equal(sample(text, 'strait_replicated_entries_total', 'member="server1-1"'), 7);
    assert.equal(sample(text, 'strait_view_id', 'role="server"'), 4);
    assert.equal(sample(text, 'strait_view_members', 'role="server"'), 3);
    assert.equal(sample(text, 'strait_client_connections', 'role="server"'), 7);
    assert.ok(text.includes('process_cpu_user_seconds_total'), 'default process metrics are collected');
  });

  it('keeps registries of different members apart', async () => {
    const first = createMetrics('locator', 'locator-1', 1);
    const second = createMetrics('locator', 'locator-2', 1);
    first.sink.clients(3);
    const text = await second.registry.metrics();
    assert.equal(sample(text, 'strait_client_connections', 'member="locator-2"'), 0);
  });

  it('labels the site once a server learns it', async () => {
    const metrics = createMetrics('server', 's', undefined);
    metrics.sink.clients(1);
    assert.equal(sample(await metrics.registry.metrics(), 'strait_client_connections', 'site=""'), 1);
    metrics.setSite(2);
    assert.equal(sample(await metrics.registry.metrics(), 'strait_client_connections', 'site="2"'), 1);
  });
});
