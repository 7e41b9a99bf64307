import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics } from './metrics.ts';
import type { SenderStatus } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';

function senderStatus(overrides: Partial<SenderStatus>): SenderStatus {
  return {
    id: 'to-site-2', member: 'server1-1', remoteSite: 2, role: 'primary', state: 'running', connectedReceiver: null,
    queueEvents: 0, queueBytes: 0, overflowEvents: 0, batchesInFlight: 0, eventsSent: 0, lastAckAtMs: 0, lagMs: 0, deadLetters: 0, problem: null,
    ...overrides,
  };
}

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

  it('counts internal errors, subscribers cut off and the receiver\'s events by outcome', async () => {
    const { registry, sink } = createMetrics('server', 'server1-1', 1);
    sink.internalError('put', new TypeError('bug'));
    sink.subscriberCut();
    sink.receiverBatch(10, 3, 2, 1);
    sink.receiverBatch(5, 0, 0);
    const text = await registry.metrics();
    assert.equal(sample(text, 'strait_internal_errors_total', 'where="put"'), 1);
    assert.equal(sample(text, 'strait_subscribers_cut_total', 'member="server1-1"'), 1);
    assert.equal(sample(text, 'strait_gateway_receiver_events_total', 'outcome="applied"'), 12);
    assert.equal(sample(text, 'strait_gateway_receiver_events_total', 'outcome="duplicate"'), 3);
    assert.equal(sample(text, 'strait_gateway_receiver_events_total', 'outcome="refused"'), 2);
    assert.equal(sample(text, 'strait_gateway_receiver_unflagged_duplicates_total', ''), 1);
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

  it('reads every gateway sender and the receiver at scrape time', async () => {
    const metrics = createMetrics('server', 'server1-1', 1);
    let senders: SenderStatus[] = [
      senderStatus({ queueEvents: 5, queueBytes: 700, overflowEvents: 1, batchesInFlight: 2, lagMs: 40, deadLetters: 3, eventsSent: 120, sendWindow: { batches: 40, bytesInFlight: 9000, baseRttMs: 101.5, rttMs: 104.2 } }),
      senderStatus({ id: 'to-site-3', remoteSite: 3, role: 'secondary', state: 'paused', queueEvents: 9 }),
    ];
    let receiver: Address | null = { host: '127.0.0.1', port: 5000 };
    metrics.observeGateways({ senders: () => senders, receiver: () => receiver });

    let text = await metrics.registry.metrics();
    const toSite2 = 'sender="to-site-2",remote_site="2"';
    assert.equal(sample(text, 'strait_gateway_sender_queue_events', toSite2), 5);
    assert.equal(sample(text, 'strait_gateway_sender_queue_bytes', toSite2), 700);
    assert.equal(sample(text, 'strait_gateway_sender_overflow_events', toSite2), 1);
    assert.equal(sample(text, 'strait_gateway_sender_batches_in_flight', toSite2), 2);
    assert.equal(sample(text, 'strait_gateway_sender_window_batches', toSite2), 40);
    assert.equal(sample(text, 'strait_gateway_sender_round_trip_ms', toSite2), 104.2);
    assert.equal(sample(text, 'strait_gateway_sender_window_batches', 'sender="to-site-3",remote_site="3"'), 0, 'a secondary has no window');
    assert.equal(sample(text, 'strait_gateway_sender_lag_ms', toSite2), 40);
    assert.equal(sample(text, 'strait_gateway_sender_dead_letters', toSite2), 3);
    assert.equal(sample(text, 'strait_gateway_sender_events_sent', toSite2), 120);
    assert.equal(sample(text, 'strait_gateway_sender_primary', toSite2), 1);
    assert.equal(sample(text, 'strait_gateway_sender_running', toSite2), 1);
    assert.equal(sample(text, 'strait_gateway_sender_queue_events', 'sender="to-site-3",remote_site="3",role="server",member="server1-1",site="1"'), 9);
    assert.equal(sample(text, 'strait_gateway_sender_primary', 'sender="to-site-3"'), 0);
    assert.equal(sample(text, 'strait_gateway_sender_running', 'sender="to-site-3"'), 0);
    assert.equal(sample(text, 'strait_gateway_receiver_up', 'member="server1-1"'), 1);

    // The next scrape sees the new figures; a sender that went away leaves no stale series.
    senders = [senderStatus({ queueEvents: 0, eventsSent: 125 })];
    receiver = null;
    text = await metrics.registry.metrics();
    assert.equal(sample(text, 'strait_gateway_sender_events_sent', toSite2), 125);
    assert.equal(sample(text, 'strait_gateway_sender_queue_events', toSite2), 0);
    assert.equal(sample(text, 'strait_gateway_sender_queue_events', 'sender="to-site-3"'), undefined);
    assert.equal(sample(text, 'strait_gateway_receiver_up', 'member="server1-1"'), 0);
  });

  it('has no sender series and the receiver down before the member can answer', async () => {
    const metrics = createMetrics('server', 'server1-1', undefined);
    let text = await metrics.registry.metrics();
    assert.equal(sample(text, 'strait_gateway_receiver_up', 'member="server1-1"'), 0);
    metrics.observeGateways({
      senders: () => {
        throw new Error('not started');
      },
      receiver: () => {
        throw new Error('not started');
      },
    });
    text = await metrics.registry.metrics();
    assert.equal(sample(text, 'strait_gateway_sender_queue_events', 'sender='), undefined);
    assert.equal(sample(text, 'strait_gateway_receiver_up', 'member="server1-1"'), 0);
  });
});
