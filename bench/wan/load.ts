// Load shapes of the WAN benchmark, shared by Strait and its peers: a fixed number of writes
// kept in flight (throughput), a rate-limited writer (lag at a given event rate), values that
// carry their send time, and lag percentiles.

import { setTimeout as sleep } from 'node:timers/promises';
import { percentile } from '../stats.ts';

/** Runs `count` operations, keeping `inFlight` outstanding; resolves with the elapsed seconds. */
export async function pipelined(count: number, inFlight: number, issue: (index: number) => Promise<unknown>): Promise<number> {
  let issued = 0;
  const startedMs = performance.now();
  const loop = async (): Promise<void> => {
    while (issued < count) await issue(issued++);
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, loop));
  return (performance.now() - startedMs) / 1000;
}

export interface RateRun {
  readonly targetPerSecond: number;
  readonly issued: number;
  readonly seconds: number;
  /** Writes issued per second: below target when the writer (or what it writes to) can't keep up. */
  readonly achievedPerSecond: number;
}

/**
 * Issues `count` writes at `ratePerSecond` (the i-th is due at start + i / rate), at most
 * `inFlightMax` outstanding. A writer that falls behind catches up in bursts; `achievedPerSecond`
 * says whether it kept the rate.
 */
export async function rateLimited(count: number, ratePerSecond: number, inFlightMax: number, issue: (index: number) => Promise<unknown>): Promise<RateRun> {
  let issued = 0;
  let outstanding = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const startedMs = performance.now();
  while (issued < count) {
    if (failure !== undefined) throw failure;
    const due = Math.min(count, Math.floor(((performance.now() - startedMs) / 1000) * ratePerSecond) + 1);
    while (issued < due && outstanding < inFlightMax) {
      outstanding += 1;
      issue(issued++).then(
        () => {
          outstanding -= 1;
          wake?.();
        },
        (error: unknown) => {
          failure ??= error;
          outstanding -= 1;
          wake?.();
        },
      );
    }
    if (outstanding >= inFlightMax) await new Promise<void>((resolve) => (wake = resolve));
    else await sleep(1);
    wake = undefined;
  }
  while (outstanding > 0) await new Promise<void>((resolve) => (wake = resolve));
  if (failure !== undefined) throw failure;
  const seconds = (performance.now() - startedMs) / 1000;
  return { targetPerSecond: ratePerSecond, issued, seconds, achievedPerSecond: issued / seconds };
}

/**
 * A value of exactly `valueBytes` ASCII characters that carries its run and send time:
 * `<run>|<performance.now() ms>|xxxx…`.
 */
export function stampedValue(run: string, sentAtMs: number, valueBytes: number): string {
  const head = `${run}|${sentAtMs.toFixed(3)}|`;
  return head.length >= valueBytes ? head : head + 'x'.repeat(valueBytes - head.length);
}

/** The send time in a stamped value of run `run`, or undefined for any other value. */
export function sentAt(value: string, run: string): number | undefined {
  if (!value.startsWith(`${run}|`)) return undefined;
  const end = value.indexOf('|', run.length + 1);
  if (end < 0) return undefined;
  const time = Number(value.slice(run.length + 1, end));
  return Number.isFinite(time) ? time : undefined;
}

export interface LagSummary {
  readonly events: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

/** Collects per-event lags (ms) and summarises them. */
export class LagRecorder {
  private lags: Float64Array;
  private count = 0;

  constructor(expected: number) {
    this.lags = new Float64Array(Math.max(16, expected));
  }

  add(lagMs: number): void {
    if (this.count === this.lags.length) {
      const grown = new Float64Array(this.lags.length * 2);
      grown.set(this.lags);
      this.lags = grown;
    }
    this.lags[this.count++] = lagMs;
  }

  get events(): number {
    return this.count;
  }

  summary(): LagSummary {
    const sorted = this.lags.slice(0, this.count).sort();
    return {
      events: this.count,
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      p999Ms: percentile(sorted, 0.999),
      maxMs: this.count === 0 ? Number.NaN : sorted[this.count - 1]!,
    };
  }
}

/** Polls `check` every `intervalMs` until it returns true; false if `timeoutMs` passes first. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 10): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (performance.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

/** Resident set size of a process, bytes (/proc/<pid>/status VmRSS); NaN where unreadable. */
export async function residentBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match === null ? Number.NaN : Number(match[1]) * 1024;
  } catch {
    return Number.NaN;
  }
}

/**
 * Anonymous resident memory of a process, bytes (/proc/<pid>/status RssAnon): the heap and other
 * private memory, without file-backed pages such as LMDB's memory-mapped database, which VmRSS
 * also counts. NaN where unreadable.
 */
export async function anonymousResidentBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /^RssAnon:\s+(\d+)\s+kB/m.exec(status);
    return match === null ? Number.NaN : Number(match[1]) * 1024;
  } catch {
    return Number.NaN;
  }
}
