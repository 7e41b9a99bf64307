// The yardstick: a Redis primary and one replica on this machine, measured with
// redis-benchmark at the same depths as Strait (one request in flight, and 64 pipelined), and
// the replica's catch-up after a pipelined SET run (Redis replicates asynchronously, so its SET
// figures don't include the replica; Strait's put figures do).

import { spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cleanup, describeFailure, freePort, runCommand, waitForExit } from './processes.ts';
import { percentile } from './stats.ts';

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
  /** How long one check (INFO on both) took: the resolution of catchUpMs. */
  readonly checkMs: number;
  readonly checks: number;
  readonly primaryOffset: number;
  readonly replicaOffset: number;
  /** The same offsets read afterwards with redis-cli, as a cross-check. */
  readonly confirmedWithRedisCli: { readonly primaryOffset: number; readonly replicaOffset: number };
}

type RespReply = string | number | null | Error;

/**
 * A minimal RESP client over one TCP connection: commands may be pipelined, replies arrive in
 * order. Used for `INFO replication` while timing a catch-up (a round trip, where redis-cli
 * would cost a process start, ~15 ms here) and for SET + WAIT, which redis-benchmark can't
 * issue together.
 */
export class RespConnection {
  private readonly socket: Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private readonly waiting: { resolve: (reply: RespReply) => void; reject: (error: Error) => void }[] = [];
  private failure: Error | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.deliver();
    });
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('redis closed the connection')));
  }

  static open(port: number): Promise<RespConnection> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port, noDelay: true });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RespConnection(socket));
      });
    });
  }

  /** Sends one command; its reply (an Error for a RESP error reply) resolves the promise. */
  command(args: readonly string[]): Promise<RespReply> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    let text = `*${args.length}\r\n`;
    for (const arg of args) text += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(text);
    });
  }

  /** `INFO replication` as key → value. */
  async info(): Promise<Map<string, string>> {
    const reply = await this.command(['INFO', 'replication']);
    if (typeof reply !== 'string') throw new Error(`unexpected reply to INFO: ${String(reply)}`);
    return parseInfo(reply);
  }

  close(): void {
    this.socket.destroy();
  }

  private deliver(): void {
    while (this.waiting.length > 0) {
      const lineEnd = this.buffer.indexOf('\r\n');
      if (lineEnd < 0) return;
      const type = String.fromCharCode(this.buffer[0]!);
      const line = this.buffer.toString('utf8', 1, lineEnd);
      let reply: RespReply;
      let consumed = lineEnd + 2;
      if (type === '+') reply = line;
      else if (type === '-') reply = new Error(line);
      else if (type === ':') reply = Number(line);
      else if (type === '$') {
        const length = Number(line);
        if (length < 0) reply = null;
        else {
          if (this.buffer.length < consumed + length + 2) return;
          reply = this.buffer.toString('utf8', consumed, consumed + length);
          consumed += length + 2;
        }
      } else {
        this.fail(new Error(`unexpected RESP reply type ${JSON.stringify(type)}`));
        return;
      }
      this.buffer = this.buffer.subarray(consumed);
      this.waiting.shift()!.resolve(reply);
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiting of this.waiting.splice(0)) waiting.reject(error);
  }
}

export interface CatchUpProbe {
  readonly primary: RespConnection;
  readonly replica: RespConnection;
}

export async function openCatchUpProbe(pair: RedisPair): Promise<CatchUpProbe> {
  return { primary: await RespConnection.open(pair.primary.port), replica: await RespConnection.open(pair.replica.port) };
}

export function closeCatchUpProbe(probe: CatchUpProbe): void {
  probe.primary.close();
  probe.replica.close();
}

/**
 * How far behind the replica is right after a run, and how long until it has everything the
 * primary had then (`master_repl_offset` of the primary vs `slave_repl_offset` of the
 * replica). Then the offsets are read again with redis-cli to confirm the replica caught up.
 */
export async function measureCatchUp(pair: RedisPair, probe: CatchUpProbe, runEndedAtMs: number): Promise<CatchUp> {
  const checkStartedMs = performance.now();
  const [primaryInfo, firstReplicaInfo] = await Promise.all([probe.primary.info(), probe.replica.info()]);
  const checkMs = performance.now() - checkStartedMs;
  const primaryOffset = offsetField(primaryInfo, 'master_repl_offset', pair.primary.port);
  let replicaOffset = offsetField(firstReplicaInfo, 'slave_repl_offset', pair.replica.port);
  const lagBytesAtFirstCheck = Math.max(0, primaryOffset - replicaOffset);
  let checks = 1;
  const deadline = performance.now() + CATCH_UP_TIMEOUT_MS;
  while (replicaOffset < primaryOffset) {
    if (performance.now() >= deadline) throw new Error(`redis replica still ${primaryOffset - replicaOffset} bytes behind ${CATCH_UP_TIMEOUT_MS} ms after the run`);
    replicaOffset = offsetField(await probe.replica.info(), 'slave_repl_offset', pair.replica.port);
    checks += 1;
  }
  const catchUpMs = performance.now() - runEndedAtMs;
  const [primaryCli, replicaCli] = await Promise.all([replicationInfo(pair.primary.port), replicationInfo(pair.replica.port)]);
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
 * `WAIT 1 <timeout>` sent together, timed until WAIT answers that the replica has the write —
 * what a Strait put guarantees. Issued from this (Node) process, as Strait's client is.
 */
export async function runSetWait(port: number, keys: readonly string[], value: string, ops: number): Promise<SetWaitRun> {
  const connection = await RespConnection.open(port);
  try {
    const latenciesMs = new Float64Array(ops);
    const startedMs = performance.now();
    for (let index = 0; index < ops; index++) {
      const requestStartedMs = performance.now();
      const set = connection.command(['SET', keys[index % keys.length]!, value]);
      const wait = connection.command(['WAIT', '1', String(WAIT_TIMEOUT_MS)]);
      const [setReply, waitReply] = await Promise.all([set, wait]);
      if (setReply !== 'OK') throw new Error(`SET answered ${String(setReply)}`);
      if (typeof waitReply !== 'number' || waitReply < 1) throw new Error(`WAIT 1 answered ${String(waitReply)}: the replica did not acknowledge`);
      latenciesMs[index] = performance.now() - requestStartedMs;
    }
    const seconds = (performance.now() - startedMs) / 1000;
    latenciesMs.sort();
    return { ops, seconds, opsPerSecond: ops / seconds, p50Ms: percentile(latenciesMs, 0.5), p99Ms: percentile(latenciesMs, 0.99) };
  } finally {
    connection.close();
  }
}
