// A Prometheus histogram labelled by operation whose `observe` is a bucket search and three
// additions. prom-client's Histogram validates and hashes its label set on every observation,
// even through a labelled child; at one observation per request that was ~3% of a server's CPU
// under pipelined load. This one keeps plain arrays per operation and renders them, in
// prom-client's metric format, only when the registry is scraped.

import type { Registry } from 'prom-client';

interface Series {
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly counts: number[];
  sum: number;
  count: number;
}

export interface OperationHistogram {
  /** `count` observations of `seconds` (the entries of a batch, all answered at once). */
  observe(op: string, seconds: number, count?: number): void;
}

export function registerOperationHistogram(
  registry: Registry, name: string, help: string, buckets: readonly number[],
): OperationHistogram {
  const series = new Map<string, Series>();
  const seriesOf = (op: string): Series => {
    let found = series.get(op);
    if (found === undefined) {
      found = { counts: new Array<number>(buckets.length + 1).fill(0), sum: 0, count: 0 };
      series.set(op, found);
    }
    return found;
  };
  const metric = {
    name,
    help,
    type: 'histogram' as const,
    aggregator: 'sum' as const,
    get() {
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      for (const [op, { counts, sum, count }] of series) {
        let cumulative = 0;
        for (let index = 0; index <= buckets.length; index++) {
          cumulative += counts[index]!;
          values.push({ labels: { le: index < buckets.length ? buckets[index]! : '+Inf', op }, value: cumulative, metricName: `${name}_bucket` });
        }
        values.push({ labels: { op }, value: sum, metricName: `${name}_sum` });
        values.push({ labels: { op }, value: count, metricName: `${name}_count` });
      }
      return { name, help, type: 'histogram' as const, aggregator: 'sum' as const, values };
    },
    reset() {
      series.clear();
    },
  };
  // prom-client's registry takes any object with this shape (its own metric classes are checked
  // the same way): name, help, type, aggregator, get() and reset().
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
  return {
    observe(op, seconds, count = 1) {
      const found = seriesOf(op);
      let index = 0;
      while (index < buckets.length && seconds > buckets[index]!) index += 1;
      found.counts[index]! += count;
      found.sum += seconds * count;
      found.count += count;
    },
  };
}
