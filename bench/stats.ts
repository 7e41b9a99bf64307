// Summaries of measured samples: latency percentiles of one run, and the median, minimum and
// maximum of a figure over repeated runs.

/** The value at `fraction` (0..1) of the sorted samples, by the nearest-rank method. */
export function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(fraction * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** A figure measured in several runs: its median, minimum and maximum, and every run's value. */
export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly runs: readonly number[];
}

/** The spread of one figure over runs; NaN (a figure a run could not produce) is left out. */
export function spread(values: readonly number[]): Spread {
  const measured = values.filter((value) => !Number.isNaN(value));
  const sorted = [...measured].sort((a, b) => a - b);
  if (sorted.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, runs: values };
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs: values };
}
