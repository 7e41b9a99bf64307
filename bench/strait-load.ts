// Load on a Strait region through the TypeScript client, from the bench process: puts and gets
// of 100-byte values with one request in flight, or with a fixed number kept in flight
// (pipelined over the client's single server connection). Every operation is timed from the
// call to its promise settling.

import type { ClientRegion } from '../src/client/client.ts';
import { percentile } from './stats.ts';

export type Operation = 'put' | 'get';

export interface LoadRun {
  readonly operation: Operation;
  /** Requests kept in flight: 1, or the pipeline depth. */
  readonly inFlight: number;
  readonly ops: number;
  readonly seconds: number;
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** Keys cycled through by every run, built once so the timed loops don't build strings. */
export class Workload {
  readonly keys: readonly string[];
  readonly value: string;
  readonly valueBytes: number;

  constructor(keyCount: number, valueBytes: number) {
    this.keys = Array.from({ length: keyCount }, (_, index) => `key:${String(index).padStart(6, '0')}`);
    // ASCII, so the value is exactly valueBytes bytes (msgpack adds a 2-byte string header).
    this.value = 'x'.repeat(valueBytes);
    this.valueBytes = valueBytes;
  }
}

function checkValue(workload: Workload, key: string, value: string | undefined): void {
  // Every get must find what the warm-up stored; a miss means the benchmark measures nothing.
  if (value === undefined || value.length !== workload.valueBytes) {
    throw new Error(`get ${key} returned ${value === undefined ? 'nothing' : `${value.length} characters`}, expected the ${workload.valueBytes}-byte value`);
  }
}

/**
 * Runs `ops` operations keeping `inFlight` requests outstanding: each of `inFlight` loops
 * issues its next request the moment its previous one settles, so the depth never drops until
 * the last requests drain.
 */
export async function runLoad(region: ClientRegion<string>, workload: Workload, operation: Operation, ops: number, inFlight: number): Promise<LoadRun> {
  const latenciesMs = new Float64Array(ops);
  const keys = workload.keys;
  const value = workload.value;
  let issued = 0;
  const loop = async (): Promise<void> => {
    while (issued < ops) {
      const index = issued++;
      const key = keys[index % keys.length]!;
      const startedMs = performance.now();
      if (operation === 'put') {
        await region.put(key, value);
      } else {
        checkValue(workload, key, await region.get(key));
      }
      latenciesMs[index] = performance.now() - startedMs;
    }
  };
  const startedMs = performance.now();
  await Promise.all(Array.from({ length: Math.min(inFlight, ops) }, loop));
  const seconds = (performance.now() - startedMs) / 1000;
  latenciesMs.sort();
  return {
    operation,
    inFlight,
    ops,
    seconds,
    opsPerSecond: ops / seconds,
    p50Ms: percentile(latenciesMs, 0.5),
    p99Ms: percentile(latenciesMs, 0.99),
  };
}

/**
 * Warms the client, both servers and the replication path (JIT, connections, buffers) and
 * stores every key so that gets hit.
 */
export async function warmUp(region: ClientRegion<string>, workload: Workload, pipelineDepth: number, rounds: number): Promise<void> {
  await runLoad(region, workload, 'put', workload.keys.length * rounds, pipelineDepth);
  await runLoad(region, workload, 'get', workload.keys.length * rounds, pipelineDepth);
  await runLoad(region, workload, 'put', Math.min(2000, workload.keys.length), 1);
  await runLoad(region, workload, 'get', Math.min(2000, workload.keys.length), 1);
}

/** Like runLoad, but for a duration instead of a count (the profiling step). */
export async function runLoadForSeconds(region: ClientRegion<string>, workload: Workload, operation: Operation, seconds: number, inFlight: number): Promise<LoadRun> {
  const keys = workload.keys;
  const value = workload.value;
  const latenciesMs: number[] = [];
  const startedMs = performance.now();
  const endMs = startedMs + seconds * 1000;
  let issued = 0;
  const loop = async (): Promise<void> => {
    while (performance.now() < endMs) {
      const key = keys[issued++ % keys.length]!;
      const requestStartedMs = performance.now();
      if (operation === 'put') await region.put(key, value);
      else checkValue(workload, key, await region.get(key));
      latenciesMs.push(performance.now() - requestStartedMs);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, loop));
  const elapsed = (performance.now() - startedMs) / 1000;
  const sorted = Float64Array.from(latenciesMs).sort();
  return {
    operation,
    inFlight,
    ops: latenciesMs.length,
    seconds: elapsed,
    opsPerSecond: latenciesMs.length / elapsed,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
  };
}
