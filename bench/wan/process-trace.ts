// What each process did during a lag run: its garbage-collection pauses and how late its event
// loop ran. A lag tail is a process that could not run when an event reached it, so these are
// the traces that say where one comes from. A Strait server reports both in its own /metrics
// (prom-client's GC observer, `nodejs_gc_duration_seconds` by kind, and its event-loop delay
// monitor, `nodejs_eventloop_lag_*`, which restarts at every scrape); the bench process, whose
// writer and subscriber every system's lag passes through, measures its own with
// monitorEventLoopDelay. A scrape before the run restarts the servers' delay monitors and gives
// the GC counts to subtract. Both delay monitors sample every 10 ms and record the whole
// interval (an idle process shows ~10.2 ms), so the trace reports how late the loop ran: the
// figure less the 10 ms tick.

import { monitorEventLoopDelay } from 'node:perf_hooks';

/** One sample of Prometheus text: the metric name, its labels, its value. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const SAMPLE = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([A-Za-z_]\w*)="((?:[^"\\]|\\.)*)"/g;

/** The samples of Prometheus exposition text (comments and blank lines skipped). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.length === 0 || line.startsWith('#')) continue;
    const match = SAMPLE.exec(line);
    if (match === null) continue;
    const labels: Record<string, string> = {};
    for (const label of (match[2] ?? '').matchAll(LABEL)) labels[label[1]!] = label[2]!.replace(/\\(.)/g, '$1');
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** Collections of one kind (minor = scavenge, major = mark-compact, incremental marking steps). */
export interface GcKind {
  readonly collections: number;
  readonly milliseconds: number;
  /** Those that took longer than 10 ms (the histogram's bucket boundary). */
  readonly over10ms: number;
}

export interface ProcessTrace {
  /** By prom-client's kind: minor, major, incremental, weakcb. Absent for the bench process. */
  readonly gc?: Readonly<Record<string, GcKind>>;
  /** How late the event loop ran, beyond the monitor's tick (LOOP_MONITOR_TICK_MS): p99 and max. */
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
}

/** A process's trace, or why it has none. */
export type Trace = Record<string, ProcessTrace | { readonly failed: string }>;

/** The delay monitors' sampling interval: prom-client's default, and the bench's own. */
export const LOOP_MONITOR_TICK_MS = 10;

function lateness(intervalMs: number): number {
  return Math.max(0, intervalMs - LOOP_MONITOR_TICK_MS);
}

function gcByKind(samples: readonly Sample[]): Map<string, GcKind> {
  const kinds = new Map<string, { collections: number; milliseconds: number; upTo10ms: number }>();
  const of = (kind: string) => {
    let entry = kinds.get(kind);
    if (entry === undefined) kinds.set(kind, (entry = { collections: 0, milliseconds: 0, upTo10ms: 0 }));
    return entry;
  };
  for (const sample of samples) {
    const kind = sample.labels['kind'];
    if (kind === undefined) continue;
    if (sample.name === 'nodejs_gc_duration_seconds_count') of(kind).collections = sample.value;
    else if (sample.name === 'nodejs_gc_duration_seconds_sum') of(kind).milliseconds = sample.value * 1000;
    else if (sample.name === 'nodejs_gc_duration_seconds_bucket' && Number(sample.labels['le']) === 0.01) of(kind).upTo10ms = sample.value;
  }
  return new Map([...kinds].map(([kind, entry]) => [kind, { collections: entry.collections, milliseconds: entry.milliseconds, over10ms: entry.collections - entry.upTo10ms }]));
}

function gauge(samples: readonly Sample[], name: string): number {
  return samples.find((sample) => sample.name === name)?.value ?? Number.NaN;
}

/** A server's trace between two scrapes of its /metrics: GC during it, delay since `before`. */
export function traceBetween(before: readonly Sample[], after: readonly Sample[]): ProcessTrace {
  const earlier = gcByKind(before);
  const gc: Record<string, GcKind> = {};
  for (const [kind, now] of gcByKind(after)) {
    const then = earlier.get(kind) ?? { collections: 0, milliseconds: 0, over10ms: 0 };
    gc[kind] = { collections: now.collections - then.collections, milliseconds: now.milliseconds - then.milliseconds, over10ms: now.over10ms - then.over10ms };
  }
  return {
    gc,
    loopDelayP99Ms: lateness(gauge(after, 'nodejs_eventloop_lag_p99_seconds') * 1000),
    loopDelayMaxMs: lateness(gauge(after, 'nodejs_eventloop_lag_max_seconds') * 1000),
  };
}

export async function scrapeMetrics(adminUrl: string): Promise<Sample[]> {
  const response = await fetch(`${adminUrl}/metrics`);
  if (!response.ok) throw new Error(`GET ${adminUrl}/metrics answered ${response.status}`);
  return parseMetrics(await response.text());
}

/** A scrape that failed: the run is kept, its trace says why it has no figures. */
async function scrapeOrFailure(adminUrl: string): Promise<Sample[] | string> {
  try {
    return await scrapeMetrics(adminUrl);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Traces `run` in the servers at `adminUrls` (by name; none for a peer) and in this process,
 * from the moment `run` starts: the caller waits for a quiet start (a drained queue) before.
 * A server whose /metrics cannot be read gets `failed` instead of figures; the run is kept.
 */
export async function traced<T>(adminUrls: Readonly<Record<string, string>>, run: () => Promise<T>): Promise<{ result: T; trace: Trace }> {
  const names = Object.keys(adminUrls);
  const before = await Promise.all(names.map((name) => scrapeOrFailure(adminUrls[name]!)));
  const own = monitorEventLoopDelay({ resolution: LOOP_MONITOR_TICK_MS });
  own.enable();
  let result: T;
  try {
    result = await run();
  } finally {
    own.disable();
  }
  const after = await Promise.all(names.map((name) => scrapeOrFailure(adminUrls[name]!)));
  const trace: Trace = {};
  names.forEach((name, index) => {
    const [first, last] = [before[index]!, after[index]!];
    trace[name] = typeof first === 'string' ? { failed: first } : typeof last === 'string' ? { failed: last } : traceBetween(first, last);
  });
  trace['bench'] = { loopDelayP99Ms: lateness(own.percentile(99) / 1e6), loopDelayMaxMs: lateness(own.max / 1e6) };
  return { result, trace };
}

/** One line: "site 1: GC 412 ms (85 minor, 3 major; 7 over 10 ms), loop late p99 13 ms, max 38". */
export function describeTrace(trace: Readonly<Trace>): string {
  return Object.entries(trace).map(([name, process]) => {
    if ('failed' in process) return `${name}: no trace (${process.failed})`;
    const kinds = Object.entries(process.gc ?? {}).filter(([, kind]) => kind.collections > 0);
    const gcMs = kinds.reduce((sum, [, kind]) => sum + kind.milliseconds, 0);
    const over = kinds.reduce((sum, [, kind]) => sum + kind.over10ms, 0);
    const gc = process.gc === undefined ? '' : `GC ${gcMs.toFixed(0)} ms (${kinds.map(([kind, value]) => `${value.collections} ${kind}`).join(', ') || 'none'}; ${over} over 10 ms), `;
    return `${name}: ${gc}loop late p99 ${process.loopDelayP99Ms.toFixed(1)} ms, max ${process.loopDelayMaxMs.toFixed(1)}`;
  }).join(' | ');
}
