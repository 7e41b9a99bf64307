// Prometheus metrics of one member process. The core reports observations through the
// MetricsSink interface; this maps them onto prom-client metrics in a registry of the member's
// own (never the global one, so tests and embedded members don't share counters).

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MetricsSink } from '../core/member-admin.ts';

/** Seconds; from a cache hit (sub-millisecond) to a put that waited for a slow replica. */
const OPERATION_DURATION_BUCKETS_SECONDS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface Metrics {
  readonly registry: Registry;
  readonly sink: MetricsSink;
  /** A server learns its site from the locator; this updates the `site` label once it knows. */
  setSite(site: number): void;
}

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
  const operationDuration = new Histogram({
    name: 'strait_operation_duration_seconds',
    help: 'Duration of client-facing operations, by operation.',
    labelNames: ['op'] as const,
    buckets: OPERATION_DURATION_BUCKETS_SECONDS,
    registers: [registry],
  });
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
  const clientConnections = new Gauge({
    name: 'strait_client_connections',
    help: 'Client connections currently open to this member.',
    registers: [registry],
  });

  const sink: MetricsSink = {
    operation(op, durationMs, ok) {
      operations.inc({ op, outcome: ok ? 'ok' : 'error' });
      operationDuration.observe({ op }, durationMs / 1000);
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
  };

  return {
    registry,
    sink,
    setSite(siteId) {
      registry.setDefaultLabels(labels(siteId));
    },
  };
}
