// The yardstick: a Redis primary and one replica on this machine, measured with
// redis-benchmark at the same depths as Strait (one request in flight, and 64 pipelined), and
// the replica's catch-up after a pipelined SET run (Redis replicates asynchronously, so its SET
// figures don't include the replica; Strait's put figures do).

import { spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cleanup, describeFailure, freePort, runCommand, waitForExit } from './processes.ts';

export const REDIS_SERVER = '/usr/bin/redis-server';
export const REDIS_BENCHMARK = '/usr/bin/redis-benchmark';
export const REDIS_CLI = '/usr/bin/redis-cli';

/** How long Redis may take to accept connections, and the replica to finish its first sync. */
const REDIS_READY_TIMEOUT_MS = 15_000;
const REDIS_STOP_TIMEOUT_MS = 10_000;
/** A replica still behind after this long is reported as not caught up. */
const CATCH_UP_TIMEOUT_MS = 30_000;

export interface RedisTools {
  /** `redis-server --version`, e.g. "Redis server v=7.0.15 …". */
  readonly version: string;
}

/** The Redis tools, or why they can't be used. */
export async function findRedis(): Promise<RedisTools | { readonly missing: string }> {
  let version = '';
  for (const tool of [REDIS_SERVER, REDIS_BENCHMARK, REDIS_CLI]) {
    try {
      const result = await runCommand(tool, ['--version'], { timeoutMs: 10_000 });
      if (result.status !== 0) return { missing: describeFailure(`${tool} --version`, result) };
      if (tool === REDIS_SERVER) version = result.stdout.trim();
    } catch (error) {
      return { missing: `${tool} is not installed (${(error as { code?: string }).code ?? String(error)})` };
    }
  }
  return { version };
}

export interface RedisInstance {
  readonly role: 'primary' | 'replica';
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
}

async function startRedis(cleanup: Cleanup, root: string, role: 'primary' | 'replica', args: readonly string[]): Promise<RedisInstance> {
  const port = await freePort();
  const dir = join(root, `redis-${role}`);
  mkdirSync(dir, { recursive: true });
  const log = openSync(join(dir, 'redis.log'), 'a');
  const child = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...args], {
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not run ${REDIS_SERVER}`);
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
    const pong = await runCommand(REDIS_CLI, ['-p', String(port), 'PING'], { timeoutMs: 5000 });
    if (pong.status === 0 && pong.stdout.trim() === 'PONG') return instance;
    if (exited) throw new Error(`redis ${role} exited before it answered PING; see ${join(dir, 'redis.log')}`);
    if (performance.now() >= deadline) throw new Error(`redis ${role} on port ${port} did not answer PING within ${REDIS_READY_TIMEOUT_MS} ms`);
    await sleep(50);
  }
}

/** `INFO replication` of one instance, as key → value. */
export async function replicationInfo(port: number): Promise<Map<string, string>> {
  const result = await runCommand(REDIS_CLI, ['-p', String(port), 'INFO', 'replication'], { timeoutMs: 5000 });
  if (result.status !== 0) throw new Error(describeFailure(`redis-cli -p ${port} INFO replication`, result));
  const fields = new Map<string, string>();
  for (const line of result.stdout.split(/\r?\n/)) {
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
  readonly primary: RedisInstance;
  readonly replica: RedisInstance;
}

/** A primary and a replica of it, started by pid and listed for cleanup; waits for the first sync. */
export async function startRedisPair(cleanup: Cleanup, root: string): Promise<RedisPair> {
  const primary = await startRedis(cleanup, root, 'primary', []);
  const replica = await startRedis(cleanup, root, 'replica', ['--replicaof', '127.0.0.1', String(primary.port)]);
  const deadline = performance.now() + REDIS_READY_TIMEOUT_MS;
  for (;;) {
    const info = await replicationInfo(replica.port);
    if (info.get('master_link_status') === 'up' && info.get('master_sync_in_progress') === '0') return { primary, replica };
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

export async function runRedisBenchmark(port: number, tests: string, ops: number, pipeline: number, valueBytes: number): Promise<RedisBenchmarkRun> {
  const args = redisBenchmarkArgs(port, tests, ops, pipeline, valueBytes);
  const result = await runCommand(REDIS_BENCHMARK, args);
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
  /** Time of one check (redis-cli INFO on both): the resolution of catchUpMs. */
  readonly checkMs: number;
  readonly primaryOffset: number;
  readonly replicaOffset: number;
}

/**
 * How far behind the replica is right after a run, and how long until it has everything the
 * primary had then (`master_repl_offset` of the primary vs `slave_repl_offset` of the replica).
 * Both are read with redis-cli, so a check costs a few milliseconds of process start: a replica
 * already caught up at the first check reports catchUpMs ≈ checkMs, an upper bound.
 */
export async function measureCatchUp(pair: RedisPair, runEndedAtMs: number): Promise<CatchUp> {
  const checkStartedMs = performance.now();
  const [primaryInfo, firstReplicaInfo] = await Promise.all([replicationInfo(pair.primary.port), replicationInfo(pair.replica.port)]);
  const checkMs = performance.now() - checkStartedMs;
  const primaryOffset = offsetField(primaryInfo, 'master_repl_offset', pair.primary.port);
  let replicaOffset = offsetField(firstReplicaInfo, 'slave_repl_offset', pair.replica.port);
  const lagBytesAtFirstCheck = Math.max(0, primaryOffset - replicaOffset);
  const deadline = performance.now() + CATCH_UP_TIMEOUT_MS;
  while (replicaOffset < primaryOffset) {
    if (performance.now() >= deadline) throw new Error(`redis replica still ${primaryOffset - replicaOffset} bytes behind ${CATCH_UP_TIMEOUT_MS} ms after the run`);
    replicaOffset = offsetField(await replicationInfo(pair.replica.port), 'slave_repl_offset', pair.replica.port);
  }
  return { lagBytesAtFirstCheck, catchUpMs: performance.now() - runEndedAtMs, checkMs, primaryOffset, replicaOffset };
}
