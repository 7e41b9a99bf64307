// Prometheus metrics of one member process. The core reports observations through the
// MetricsSink interface; this maps them onto prom-client metrics in a registry of the member's
// own (never the global one, so tests and embedded members don't share counters).

import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { MemberAdmin, MetricsSink } from '../core/member-admin.ts';
import type { SenderStatus } from '../protocol/messages.ts';
import { registerOperationHistogram } from './operation-histogram.ts';

/** Seconds; from a cache hit (sub-millisecond) to a put that waited for a slow replica. */
const OPERATION_DURATION_BUCKETS_SECONDS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface Metrics {
  readonly registry: Registry;
  readonly sink: MetricsSink;
  /** A server learns its site from the locator; this updates the `site` label once it knows. */
  setSite(site: number): void;
  /**
   * Reads the member's gateway senders and receiver at every scrape. Until it is called (and
   * while the source throws, e.g. before the member has started) the gateway series are empty
   * and `strait_gateway_receiver_up` is 0.
   */
  observeGateways(source: GatewaySource): void;
  /** Reads when the member's TLS certificate expires (it may be rotated), for the expiry gauge. */
  observeCertificate(expiresAtMs: () => number | undefined): void;
}

/** What the gateway gauges read: the senders and receiver of the member. */
export type GatewaySource = Pick<MemberAdmin, 'senders' | 'receiver'>;

/** One gauge per sender figure, labelled by sender id and remote site. */
const SENDER_GAUGES: readonly { readonly name: string; readonly help: string; readonly value: (status: SenderStatus) => number }[] = [
  { name: 'strait_gateway_sender_queue_events', help: 'Events queued in this member\'s copy of the gateway sender.', value: (s) => s.queueEvents },
  { name: 'strait_gateway_sender_queue_bytes', help: 'Bytes of the events queued in this member\'s copy of the gateway sender.', value: (s) => s.queueBytes },
  { name: 'strait_gateway_sender_overflow_events', help: 'Queued events kept on disk beyond the queue memory limit.', value: (s) => s.overflowEvents },
  { name: 'strait_gateway_sender_batches_in_flight', help: 'Batches sent and not yet acknowledged by the remote site.', value: (s) => s.batchesInFlight },
  {
    name: 'strait_gateway_sender_window_batches',
    help: 'Batches the primary may have in flight: its send window, sized from the round trip (0 on a secondary).',
    value: (s) => s.sendWindow?.batches ?? 0,
  },
  {
    name: 'strait_gateway_sender_round_trip_ms',
    help: 'The shortest batch acknowledgement time of the primary\'s last round trip, ms (0 before the first, and on a secondary).',
    value: (s) => s.sendWindow?.rttMs ?? 0,
  },
  { name: 'strait_gateway_sender_lag_ms', help: 'Age of the oldest queued event, ms (0 when the queue is empty).', value: (s) => s.lagMs },
  { name: 'strait_gateway_sender_dead_letters', help: 'Events the remote site refused, kept for replay.', value: (s) => s.deadLetters },
  { name: 'strait_gateway_sender_primary', help: '1 when this member\'s copy of the sender is the primary (dispatches), 0 for a secondary.', value: (s) => (s.role === 'primary' ? 1 : 0) },
  {
    name: 'strait_gateway_sender_events_sent',
    help: 'Events this member\'s copy of the sender shipped and saw acknowledged since the member started (only grows; a counter read at scrape time).',
    value: (s) => s.eventsSent,
  },
  {
    name: 'strait_gateway_sender_running',
    help: '1 when the sender runs, 0 when it is paused or stopped.',
    value: (s) => (s.state === 'running' ? 1 : 0),
  },
];

/**
 * Creates the metrics of one member. Every series carries the labels `role`, `member` and
 * `site` (empty until known), so one Prometheus can scrape every member of every site.
 */
export function createMetrics(role: 'locator' | 'server', name: string, site: number | undefined): Metrics {
  const registry = new Registry();
  const labels = (siteLabel: number | undefined): Record<string, string> => ({
    role,
    member: name,
    site: siteLabel === undefined ? '' : String(siteLabel),
  });
  registry.setDefaultLabels(labels(site));
  collectDefaultMetrics({ register: registry });

  const operations = new Counter({
    name: 'strait_operations_total',
    help: 'Client-facing operations finished, by operation and outcome (ok or error).',
    labelNames: ['op', 'outcome'] as const,
    registers: [registry],
  });
  const operationDuration = registerOperationHistogram(registry, 'strait_operation_duration_seconds', 'Duration of client-facing operations, by operation.', OPERATION_DURATION_BUCKETS_SECONDS);
  const viewMembers = new Gauge({
    name: 'strait_view_members',
    help: 'Members in the membership view this member installed last.',
    registers: [registry],
  });
  const viewId = new Gauge({
    name: 'strait_view_id',
    help: 'Id of the membership view this member installed last.',
    registers: [registry],
  });
  const replicatedEntries = new Counter({
    name: 'strait_replicated_entries_total',
    help: 'Entries replicated between the servers of this site.',
    registers: [registry],
  });
  const internalErrors = new Counter({
    name: 'strait_internal_errors_total',
    help: 'Exceptions that were not coded errors (bugs), answered STRAIT_INTERNAL, by where they escaped; the member kept serving.',
    labelNames: ['where'] as const,
    registers: [registry],
  });
  const subscribersCut = new Counter({
    name: 'strait_subscribers_cut_total',
    help: 'Subscriptions ended because the subscriber did not take its events (STRAIT_SUBSCRIBER_TOO_SLOW).',
    registers: [registry],
  });
  const securityRefusals = new Counter({
    name: 'strait_security_refusals_total',
    help: 'Peers refused for their credentials (STRAIT_TLS_REFUSED, STRAIT_UNAUTHENTICATED) or for what they asked (STRAIT_FORBIDDEN), by code.',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  let certificateExpiresAtMs: (() => number | undefined) | undefined;
  new Gauge({
    name: 'strait_tls_certificate_expiry_seconds',
    help: 'Seconds until this member\'s TLS certificate expires (absent without TLS); alert well before 0 — a warning is also logged 30 days before.',
    registers: [registry],
    collect() {
      this.reset();
      const expiresAtMs = certificateExpiresAtMs?.();
      if (expiresAtMs !== undefined) this.set(Math.round((expiresAtMs - Date.now()) / 1000));
    },
  });
  const receiverUnflagged = new Counter({
    name: 'strait_gateway_receiver_unflagged_duplicates_total',
    help: 'Duplicate events (already held at that version) that their sender did not flag possible-duplicate. A resend after a failover is always flagged; anything here is a bug worth reporting.',
    registers: [registry],
  });
  const receiverEvents = new Counter({
    name: 'strait_gateway_receiver_events_total',
    help: 'Events the gateway receiver took from other sites, by outcome: applied, duplicate (already held at that version: a resend), refused (a dead letter at the sender).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const clientConnections = new Gauge({
    name: 'strait_client_connections',
    help: 'Client connections currently open to this member.',
    registers: [registry],
  });

  // Label children are looked up once per operation name: prom-client hashes the label object
  // on every call otherwise, which showed in the server's profile under pipelined load.
  const children = new Map<string, { ok: { inc(value?: number): void }; error: { inc(value?: number): void } }>();
  const childrenOf = (op: string) => {
    let found = children.get(op);
    if (found === undefined) {
      found = { ok: operations.labels({ op, outcome: 'ok' }), error: operations.labels({ op, outcome: 'error' }) };
      children.set(op, found);
    }
    return found;
  };
  const sink: MetricsSink = {
    operation(op, durationMs, ok, count = 1) {
      const child = childrenOf(op);
      (ok ? child.ok : child.error).inc(count);
      operationDuration.observe(op, durationMs / 1000, count);
    },
    replicated(entries) {
      replicatedEntries.inc(entries);
    },
    viewInstalled(id, members) {
      viewId.set(id);
      viewMembers.set(members);
    },
    clients(count) {
      clientConnections.set(count);
    },
    internalError(where) {
      internalErrors.labels({ where }).inc();
    },
    subscriberCut() {
      subscribersCut.inc();
    },
    securityRefusal(code) {
      securityRefusals.labels({ code }).inc();
    },
    receiverBatch(applied, duplicates, refused, unflaggedDuplicates = 0) {
      receiverEvents.labels({ outcome: 'applied' }).inc(applied - duplicates);
      receiverEvents.labels({ outcome: 'duplicate' }).inc(duplicates);
      receiverEvents.labels({ outcome: 'refused' }).inc(refused);
      receiverUnflagged.inc(unflaggedDuplicates);
    },
  };

  let gatewaySource: GatewaySource | undefined;
  /** The senders as the source reports them now; none when it can't answer yet. */
  const senders = (): readonly SenderStatus[] => {
    if (gatewaySource === undefined) return [];
    try {
      return gatewaySource.senders();
    } catch {
      return [];
    }
  };
  for (const description of SENDER_GAUGES) {
    new Gauge({
      name: description.name,
      help: description.help,
      labelNames: ['sender', 'remote_site'] as const,
      registers: [registry],
      collect() {
        // Senders come and go (stop, reconfiguration): rebuild the series at every scrape.
        this.reset();
        for (const status of senders()) this.set({ sender: status.id, remote_site: String(status.remoteSite) }, description.value(status));
      },
    });
  }
  new Gauge({
    name: 'strait_gateway_receiver_up',
    help: '1 when this member runs a gateway receiver, else 0.',
    registers: [registry],
    collect() {
      let up = false;
      try {
        up = gatewaySource !== undefined && gatewaySource.receiver() !== null;
      } catch {
        up = false;
      }
      this.set(up ? 1 : 0);
    },
  });

  return {
    registry,
    sink,
    setSite(siteId) {
      registry.setDefaultLabels(labels(siteId));
    },
    observeGateways(source) {
      gatewaySource = source;
    },
    observeCertificate(expiresAtMs) {
      certificateExpiresAtMs = expiresAtMs;
    },
  };
}
