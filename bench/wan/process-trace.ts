// What each process did during a lag run: its garbage-collection pauses and how late its event
// loop ran. A lag tail is a process that could not run when an event reached it, so these are
// the traces that say where one comes from. A Strait server reports both in its own /metrics
// (prom-client's GC observer, `nodejs_gc_duration_seconds` by kind, and its event-loop delay
// monitor, `nodejs_eventloop_lag_*`, which restarts at every scrape); the bench process, whose
// writer and subscriber every system's lag passes through, measures its own with
// monitorEventLoopDelay. A scrape before the run restarts the servers' delay monitors and gives
// the GC counts to subtract.

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
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
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
    loopDelayP99Ms: gauge(after, 'nodejs_eventloop_lag_p99_seconds') * 1000,
    loopDelayMaxMs: gauge(after, 'nodejs_eventloop_lag_max_seconds') * 1000,
  };
}

export async function scrapeMetrics(adminUrl: string): Promise<Sample[]> {
  const response = await fetch(`${adminUrl}/metrics`);
  if (!response.ok) throw new Error(`GET ${adminUrl}/metrics answered ${response.status}`);
  return parseMetrics(await response.text());
}

/** Traces `run` in the servers at `adminUrls` (by name; none for a peer) and in this process. */
export async function traced<T>(adminUrls: Readonly<Record<string, string>>, run: () => Promise<T>): Promise<{ result: T; trace: Record<string, ProcessTrace> }> {
  const names = Object.keys(adminUrls);
  const before = await Promise.all(names.map((name) => scrapeMetrics(adminUrls[name]!)));
  // The same precision as the servers' monitors (prom-client's default, 10 ms).
  const own = monitorEventLoopDelay({ resolution: 10 });
  own.enable();
  let result: T;
  try {
    result = await run();
  } finally {
    own.disable();
  }
  const after = await Promise.all(names.map((name) => scrapeMetrics(adminUrls[name]!)));
  const trace: Record<string, ProcessTrace> = {};
  names.forEach((name, index) => (trace[name] = traceBetween(before[index]!, after[index]!)));
  trace['bench'] = { loopDelayP99Ms: own.percentile(99) / 1e6, loopDelayMaxMs: own.max / 1e6 };
  return { result, trace };
}

/** One line: "site 1: GC 412 ms (85 minor, 3 major; 7 over 10 ms), loop delay p99 23 ms, max 48". */
export function describeTrace(trace: Readonly<Record<string, ProcessTrace>>): string {
  return Object.entries(trace).map(([name, process]) => {
    const kinds = Object.entries(process.gc ?? {}).filter(([, kind]) => kind.collections > 0);
    const gcMs = kinds.reduce((sum, [, kind]) => sum + kind.milliseconds, 0);
    const over = kinds.reduce((sum, [, kind]) => sum + kind.over10ms, 0);
    const gc = process.gc === undefined ? '' : `GC ${gcMs.toFixed(0)} ms (${kinds.map(([kind, value]) => `${value.collections} ${kind}`).join(', ') || 'none'}; ${over} over 10 ms), `;
    return `${name}: ${gc}loop delay p99 ${process.loopDelayP99Ms.toFixed(1)} ms, max ${process.loopDelayMaxMs.toFixed(1)}`;
  }).join(' | ');
}
