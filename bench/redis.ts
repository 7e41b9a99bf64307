// The yardstick: a Redis primary and one replica on this machine, measured with
// redis-benchmark at the same depths as Strait (one request in flight, and 64 pipelined), and
// the replica's catch-up after a pipelined SET run (Redis replicates asynchronously, so its SET
// figures don't include the replica; Strait's put figures do). What redis-benchmark can't do —
// SET + WAIT together, INFO while timing a catch-up — goes through ioredis, the client a Node
// user of Redis has (bench/peers.ts finds the binaries and records the client's version).

import { spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { RedisTools } from './peers.ts';
import { Cleanup, describeFailure, freePort, runCommand, waitForExit } from './processes.ts';
import { percentile } from './stats.ts';

/** How long Redis may take to accept connections, and the replica to finish its first sync. */
const REDIS_READY_TIMEOUT_MS = 15_000;
const REDIS_STOP_TIMEOUT_MS = 10_000;
/** A replica still behind after this long is reported as not caught up. */
const CATCH_UP_TIMEOUT_MS = 30_000;

/**
 * An ioredis client of the Redis on 127.0.0.1:`port`, connected and ready. It never reconnects
 * and never retries: a dropped connection fails the commands it carried, and so the run, rather
 * than being hidden by a retry. `autoPipelining` sends the commands issued in one event-loop turn
 * in one write (ioredis's `enableAutoPipelining`), what a user who issues many at once turns on.
 */
export async function connectRedis(port: number, options: { readonly autoPipelining?: boolean } = {}): Promise<Redis> {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableAutoPipelining: options.autoPipelining ?? false,
    connectionName: 'strait-bench',
  });
  // ioredis reports connection errors as events as well as by rejecting the commands they hit;
  // the rejections are what the bench acts on, so the events need no second report.
  client.on('error', () => {});
  await client.connect();
  return client;
}

export interface RedisInstance {
  readonly role: 'primary' | 'replica';
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
}

async function startRedis(cleanup: Cleanup, tools: RedisTools, root: string, role: 'primary' | 'replica', args: readonly string[]): Promise<RedisInstance> {
  const port = await freePort();
  const dir = join(root, `redis-${role}`);
  mkdirSync(dir, { recursive: true });
  const log = openSync(join(dir, 'redis.log'), 'a');
  const child = spawn(tools.server, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...args], {
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not run ${tools.server}`);
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  const instance: RedisInstance = { role, port, pid, dir };
  cleanup.add(`redis ${role} on port ${port}`, pid, async () => {
    if (exited) return;
    child.kill('SIGTERM');
    if (!(await waitForExit(pid, REDIS_STOP_TIMEOUT_MS))) throw new Error(`redis ${role} did not exit after SIGTERM`);
  });
  const deadline = performance.now() + REDIS_READY_TIMEOUT_MS;
  for (;;) {
    const pong = await runCommand(tools.cli, ['-p', String(port), 'PING'], { timeoutMs: 5000 });
    if (pong.status === 0 && pong.stdout.trim() === 'PONG') return instance;
    if (exited) throw new Error(`redis ${role} exited before it answered PING; see ${join(dir, 'redis.log')}`);
    if (performance.now() >= deadline) throw new Error(`redis ${role} on port ${port} did not answer PING within ${REDIS_READY_TIMEOUT_MS} ms`);
    await sleep(50);
  }
}

/** `INFO replication` of one instance, as key → value. */
export async function replicationInfo(tools: RedisTools, port: number): Promise<Map<string, string>> {
  const result = await runCommand(tools.cli, ['-p', String(port), 'INFO', 'replication'], { timeoutMs: 5000 });
  if (result.status !== 0) throw new Error(describeFailure(`redis-cli -p ${port} INFO replication`, result));
  return parseInfo(result.stdout);
}

/** INFO text (`key:value` lines, `# Section` headers) as key → value. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

function offsetField(info: Map<string, string>, field: string, port: number): number {
  const value = Number(info.get(field));
  if (!Number.isFinite(value)) throw new Error(`redis on port ${port}: INFO replication has no ${field}`);
  return value;
}

export interface RedisPair {
  readonly tools: RedisTools;
  readonly primary: RedisInstance;
  readonly replica: RedisInstance;
}

/** A primary and a replica of it, started by pid and listed for cleanup; waits for the first sync. */
export async function startRedisPair(cleanup: Cleanup, tools: RedisTools, root: string): Promise<RedisPair> {
  const primary = await startRedis(cleanup, tools, root, 'primary', []);
  const replica = await startRedis(cleanup, tools, root, 'replica', ['--replicaof', '127.0.0.1', String(primary.port)]);
  const deadline = performance.now() + REDIS_READY_TIMEOUT_MS;
  for (;;) {
    const info = await replicationInfo(tools, replica.port);
    if (info.get('master_link_status') === 'up' && info.get('master_sync_in_progress') === '0') return { tools, primary, replica };
    if (performance.now() >= deadline) throw new Error(`redis replica on port ${replica.port} did not connect to its primary within ${REDIS_READY_TIMEOUT_MS} ms`);
    await sleep(50);
  }
}

export interface RedisBenchmarkRow {
  readonly test: string;
  readonly rps: number;
  /** Latency columns, when this redis-benchmark prints them (6.2 and later); NaN otherwise. */
  readonly avgLatencyMs: number;
  readonly p50LatencyMs: number;
  readonly p99LatencyMs: number;
}

/**
 * Parses `redis-benchmark --csv`. Redis 7 prints a header line
 * `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"`
 * and one quoted row per test; before 6.2 there is no header and only `"test","rps"`.
 */
export function parseRedisBenchmarkCsv(text: string): RedisBenchmarkRow[] {
  const lines = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.startsWith('"'));
  const cells = (line: string): string[] => line.split(',').map((cell) => cell.trim().replace(/^"|"$/g, ''));
  let columns = ['test', 'rps'];
  const rows: RedisBenchmarkRow[] = [];
  for (const line of lines) {
    const values = cells(line);
    if (values[0] === 'test') {
      columns = values;
      continue;
    }
    const column = (name: string): number => {
      const index = columns.indexOf(name);
      return index < 0 || values[index] === undefined ? Number.NaN : Number(values[index]);
    };
    const row: RedisBenchmarkRow = {
      test: values[0] ?? '',
      rps: column('rps'),
      avgLatencyMs: column('avg_latency_ms'),
      p50LatencyMs: column('p50_latency_ms'),
      p99LatencyMs: column('p99_latency_ms'),
    };
    if (row.test.length === 0 || !Number.isFinite(row.rps)) throw new Error(`unexpected redis-benchmark CSV line: ${line}`);
    rows.push(row);
  }
  return rows;
}

export interface RedisBenchmarkRun {
  readonly command: string;
  readonly rows: readonly RedisBenchmarkRow[];
  /** performance.now() when redis-benchmark exited. */
  readonly exitedAtMs: number;
}

/** The redis-benchmark arguments of one run. */
export function redisBenchmarkArgs(port: number, tests: string, ops: number, pipeline: number, valueBytes: number): string[] {
  return ['-p', String(port), '-t', tests, '-n', String(ops), '-d', String(valueBytes), '-P', String(pipeline), '-c', '1', '--csv'];
}

/** redis-benchmark against the pair's primary. */
export async function runRedisBenchmark(pair: RedisPair, tests: string, ops: number, pipeline: number, valueBytes: number): Promise<RedisBenchmarkRun> {
  const args = redisBenchmarkArgs(pair.primary.port, tests, ops, pipeline, valueBytes);
  const result = await runCommand(pair.tools.benchmark, args);
  const exitedAtMs = performance.now();
  const command = `redis-benchmark ${args.join(' ')}`;
  if (result.status !== 0) throw new Error(describeFailure(command, result));
  const rows = parseRedisBenchmarkCsv(result.stdout);
  if (rows.length === 0) throw new Error(`${command} printed no CSV rows:\n${result.stdout}`);
  return { command, rows, exitedAtMs };
}

export interface CatchUp {
  /** Replication bytes the replica was behind at the first check after the run ended. */
  readonly lagBytesAtFirstCheck: number;
  /** From redis-benchmark's exit until the replica's offset reached the primary's. */
  readonly catchUpMs: number;
  /** How long one check (INFO on both) took: the resolution of catchUpMs. */
  readonly checkMs: number;
  readonly checks: number;
  readonly primaryOffset: number;
  readonly replicaOffset: number;
  /** The same offsets read afterwards with redis-cli, as a cross-check. */
  readonly confirmedWithRedisCli: { readonly primaryOffset: number; readonly replicaOffset: number };
}

/**
 * Connections opened before a run, so that a check during the catch-up costs a round trip, where
 * redis-cli would cost a process start (~15 ms here).
 */
export interface CatchUpProbe {
  readonly primary: Redis;
  readonly replica: Redis;
}

export async function openCatchUpProbe(pair: RedisPair): Promise<CatchUpProbe> {
  return { primary: await connectRedis(pair.primary.port), replica: await connectRedis(pair.replica.port) };
}

export function closeCatchUpProbe(probe: CatchUpProbe): void {
  probe.primary.disconnect();
  probe.replica.disconnect();
}

/** `INFO replication` over an open connection, as key → value. */
async function replicationInfoOf(client: Redis): Promise<Map<string, string>> {
  return parseInfo(await client.info('replication'));
}

/**
 * How far behind the replica is right after a run, and how long until it has everything the
 * primary had then (`master_repl_offset` of the primary vs `slave_repl_offset` of the
 * replica). Then the offsets are read again with redis-cli to confirm the replica caught up.
 */
export async function measureCatchUp(pair: RedisPair, probe: CatchUpProbe, runEndedAtMs: number): Promise<CatchUp> {
  const checkStartedMs = performance.now();
  const [primaryInfo, firstReplicaInfo] = await Promise.all([replicationInfoOf(probe.primary), replicationInfoOf(probe.replica)]);
  const checkMs = performance.now() - checkStartedMs;
  const primaryOffset = offsetField(primaryInfo, 'master_repl_offset', pair.primary.port);
  let replicaOffset = offsetField(firstReplicaInfo, 'slave_repl_offset', pair.replica.port);
  const lagBytesAtFirstCheck = Math.max(0, primaryOffset - replicaOffset);
  let checks = 1;
  const deadline = performance.now() + CATCH_UP_TIMEOUT_MS;
  while (replicaOffset < primaryOffset) {
    if (performance.now() >= deadline) throw new Error(`redis replica still ${primaryOffset - replicaOffset} bytes behind ${CATCH_UP_TIMEOUT_MS} ms after the run`);
    replicaOffset = offsetField(await replicationInfoOf(probe.replica), 'slave_repl_offset', pair.replica.port);
    checks += 1;
  }
  const catchUpMs = performance.now() - runEndedAtMs;
  const [primaryCli, replicaCli] = await Promise.all([replicationInfo(pair.tools, pair.primary.port), replicationInfo(pair.tools, pair.replica.port)]);
  const confirmed = {
    primaryOffset: offsetField(primaryCli, 'master_repl_offset', pair.primary.port),
    replicaOffset: offsetField(replicaCli, 'slave_repl_offset', pair.replica.port),
  };
  if (confirmed.replicaOffset < primaryOffset) throw new Error(`redis-cli shows the replica at offset ${confirmed.replicaOffset}, behind ${primaryOffset}`);
  return { lagBytesAtFirstCheck, catchUpMs, checkMs, checks, primaryOffset, replicaOffset, confirmedWithRedisCli: confirmed };
}

export interface SetWaitRun {
  readonly ops: number;
  readonly seconds: number;
  readonly opsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** WAIT gives up after this long; a replica that did not acknowledge by then fails the run. */
const WAIT_TIMEOUT_MS = 5000;

/**
 * Redis with a synchronous replica acknowledgement, one write in flight: `SET key value` and
 * `WAIT 1 <timeout>` sent together as one ioredis pipeline (one write on the socket; one pair in
 * flight, as before ioredis), timed until WAIT answers that the replica has the write —
 * what a Strait put guarantees. Issued from this (Node) process, as Strait's client is. The
 * pipeline's objects and promises are part of what an ioredis user pays per write, so they are
 * part of the figure.
 */
export async function runSetWait(port: number, keys: readonly string[], value: string, ops: number): Promise<SetWaitRun> {
  const connection = await connectRedis(port);
  try {
    const latenciesMs = new Float64Array(ops);
    const startedMs = performance.now();
    for (let index = 0; index < ops; index++) {
      const requestStartedMs = performance.now();
      const replies = await connection.pipeline().set(keys[index % keys.length]!, value).wait(1, WAIT_TIMEOUT_MS).exec();
      const [set, wait] = replies ?? [];
      if (set === undefined || set[0] !== null || set[1] !== 'OK') throw new Error(`SET answered ${String(set?.[0] ?? set?.[1])}`);
      if (wait === undefined || wait[0] !== null || typeof wait[1] !== 'number' || wait[1] < 1) {
        throw new Error(`WAIT 1 answered ${String(wait?.[0] ?? wait?.[1])}: the replica did not acknowledge`);
      }
      latenciesMs[index] = performance.now() - requestStartedMs;
    }
    const seconds = (performance.now() - startedMs) / 1000;
    latenciesMs.sort();
    return { ops, seconds, opsPerSecond: ops / seconds, p50Ms: percentile(latenciesMs, 0.5), p99Ms: percentile(latenciesMs, 0.99) };
  } finally {
    connection.disconnect();
  }
}
