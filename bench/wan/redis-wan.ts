// The Redis peer: a primary and a replica whose `replicaof` points through the WAN proxy
// (127.0.0.2:Q → the primary's 127.0.0.1:P), the replica publishing keyspace notifications.
// Throughput: redis-benchmark -P 64 SETs at the primary, then the time until the replica's
// offset reaches the primary's; lag: SETs at a fixed rate from this process, each timed until
// its keyspace notification arrives from the replica. Everything but redis-benchmark goes
// through ioredis, the client a Node user of Redis has.

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { RedisTools } from '../peers.ts';
import { Cleanup, describeFailure, freePort, runCommand, waitForExit } from '../processes.ts';
import { connectRedis, parseInfo, parseRedisBenchmarkCsv } from '../redis.ts';
import { LagRecorder, rateLimited, waitUntil, type LagSummary, type RateRun } from './load.ts';
import { ProxyProcess } from './proxy-control.ts';
import { KEY_COUNT } from './strait-wan.ts';

const REDIS_READY_TIMEOUT_MS = 15_000;
const REDIS_STOP_TIMEOUT_MS = 10_000;
const CATCH_UP_TIMEOUT_MS = 120_000;
export const REDIS_PIPELINE = 64;
export const REDIS_CONNECTIONS = 1;
/** SETs the lag writer keeps outstanding at most (the same bound as the NATS and Strait writers). */
const LAG_IN_FLIGHT_MAX = 4096;

export interface RedisWan {
  readonly tools: RedisTools;
  readonly primaryPort: number;
  readonly replicaPort: number;
  readonly proxy: ProxyProcess;
  readonly pids: readonly number[];
  /** Auto-pipelined: the lag writer's SETs of one event-loop turn leave in one write. */
  readonly primary: Redis;
  readonly replica: Redis;
  readonly commands: readonly string[];
}

async function startRedisServer(cleanup: Cleanup, tools: RedisTools, root: string, role: string, port: number, args: readonly string[]): Promise<number> {
  const dir = join(root, `redis-${role}`);
  mkdirSync(dir, { recursive: true });
  const log = openSync(join(dir, 'redis.log'), 'a');
  const child = spawn(tools.server, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...args], { stdio: ['ignore', log, log] });
  closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not run ${tools.server}`);
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  cleanup.add(`redis ${role} on port ${port}`, pid, async () => {
    if (exited) return;
    child.kill('SIGTERM');
    if (!(await waitForExit(pid, REDIS_STOP_TIMEOUT_MS))) throw new Error(`redis ${role} did not exit after SIGTERM`);
  });
  const ready = await waitUntil(async () => {
    if (exited) throw new Error(`redis ${role} exited at start; see ${join(dir, 'redis.log')}`);
    try {
      const client = await connectRedis(port);
      try {
        return (await client.ping()) === 'PONG';
      } finally {
        client.disconnect();
      }
    } catch {
      return false;
    }
  }, REDIS_READY_TIMEOUT_MS, 50);
  if (!ready) throw new Error(`redis ${role} on port ${port} did not answer PING within ${REDIS_READY_TIMEOUT_MS} ms`);
  return pid;
}

async function info(client: Redis): Promise<Map<string, string>> {
  return parseInfo(await client.info('replication'));
}

export async function startRedisWan(cleanup: Cleanup, tools: RedisTools, root: string): Promise<RedisWan> {
  const primaryPort = await freePort();
  const replicaPort = await freePort();
  const proxyPort = await freePort();
  // A replica far behind after a partition resumes from the backlog instead of a full sync.
  const primaryPid = await startRedisServer(cleanup, tools, root, 'primary', primaryPort, ['--repl-backlog-size', '512mb']);
  const proxy = await ProxyProcess.start(cleanup, 'redis primary→replica', `127.0.0.2:${proxyPort}`, `127.0.0.1:${primaryPort}`);
  const replicaPid = await startRedisServer(cleanup, tools, root, 'replica', replicaPort, ['--replicaof', '127.0.0.2', String(proxyPort), '--notify-keyspace-events', 'K$']);
  const primary = await connectRedis(primaryPort, { autoPipelining: true });
  const replica = await connectRedis(replicaPort);
  const linked = await waitUntil(async () => {
    const fields = await info(replica);
    return fields.get('master_link_status') === 'up' && fields.get('master_sync_in_progress') === '0';
  }, REDIS_READY_TIMEOUT_MS, 50);
  if (!linked) throw new Error(`redis replica on port ${replicaPort} did not sync with its primary through the proxy within ${REDIS_READY_TIMEOUT_MS} ms`);
  return {
    tools, primaryPort, replicaPort, proxy, pids: [replicaPid, primaryPid], primary, replica,
    commands: [
      `redis-server --port <P> --bind 127.0.0.1 --save '' --appendonly no --repl-backlog-size 512mb`,
      `node bench/wan/proxy-process.ts --listen 127.0.0.2:<Q> --target 127.0.0.1:<P>   # = strait proxy`,
      `redis-server --port <R> --bind 127.0.0.1 --save '' --appendonly no --replicaof 127.0.0.2 <Q> --notify-keyspace-events K$`,
      `redis-benchmark -p <P> -t set -n <events> -d <100|1024> -P ${REDIS_PIPELINE} -c ${REDIS_CONNECTIONS} -r ${KEY_COUNT} --csv   # then INFO replication offsets (ioredis) until the replica has everything`,
      `lag: SET lag<run>:<i> at a fixed rate from the bench (ioredis, auto-pipelined, at most ${LAG_IN_FLIGHT_MAX} in flight), each timed to its keyspace notification (ioredis PSUBSCRIBE on the replica)`,
    ],
  };
}

export async function stopRedisWan(cleanup: Cleanup, wan: RedisWan): Promise<void> {
  wan.primary.disconnect();
  wan.replica.disconnect();
  for (const pid of wan.pids) await cleanup.stop(pid);
  await cleanup.stop(wan.proxy.pid);
}

/** Waits until the replica's offset reaches the primary's now; the time it did. */
async function waitCaughtUp(wan: RedisWan): Promise<number> {
  const target = Number((await info(wan.primary)).get('master_repl_offset'));
  let at = Number.NaN;
  await waitUntil(async () => {
    if (Number((await info(wan.replica)).get('slave_repl_offset')) >= target) {
      at = performance.now();
      return true;
    }
    return false;
  }, CATCH_UP_TIMEOUT_MS, 5);
  if (Number.isNaN(at)) throw new Error(`redis replica did not reach offset ${target} within ${CATCH_UP_TIMEOUT_MS} ms`);
  return at;
}

export interface RedisThroughputRun {
  readonly events: number;
  readonly valueBytes: number;
  readonly roundTripMs: number;
  /** SETs per second at the primary, from redis-benchmark. */
  readonly primaryPerSecond: number;
  /** Events from redis-benchmark's start until the replica had them all, per second. */
  readonly endToEndPerSecond: number;
  /** From redis-benchmark's exit until the replica caught up. */
  readonly catchUpMs: number;
}

export async function redisThroughputRun(wan: RedisWan, events: number, valueBytes: number, roundTripMs: number): Promise<RedisThroughputRun> {
  await waitCaughtUp(wan);
  const args = ['-p', String(wan.primaryPort), '-t', 'set', '-n', String(events), '-d', String(valueBytes), '-P', String(REDIS_PIPELINE), '-c', String(REDIS_CONNECTIONS), '-r', String(KEY_COUNT), '--csv'];
  const startedMs = performance.now();
  const result = await runCommand(wan.tools.benchmark, args, { timeoutMs: 300_000 });
  const exitedMs = performance.now();
  if (result.status !== 0) throw new Error(describeFailure(`redis-benchmark ${args.join(' ')}`, result));
  const row = parseRedisBenchmarkCsv(result.stdout).find((candidate) => candidate.test === 'SET');
  if (row === undefined) throw new Error(`redis-benchmark printed no SET row: ${result.stdout.slice(0, 200)}`);
  const caughtUpMs = await waitCaughtUp(wan);
  return {
    events, valueBytes, roundTripMs,
    primaryPerSecond: row.rps,
    endToEndPerSecond: events / ((caughtUpMs - startedMs) / 1000),
    catchUpMs: caughtUpMs - exitedMs,
  };
}

export interface RedisLagRun extends LagSummary {
  readonly writer: RateRun;
  readonly expected: number;
}

let lagRunCounter = 0;

/**
 * SET lag<run>:<i> at a fixed rate on the primary; lag until the replica's keyspace notification.
 * Each SET is its own ioredis command and promise (what a user issuing writes one by one has);
 * auto-pipelining puts the SETs due in one turn in one write, and at most LAG_IN_FLIGHT_MAX are
 * outstanding, as with the hand-written client before it.
 */
export async function redisLagRun(wan: RedisWan, ratePerSecond: number, events: number, valueBytes: number): Promise<RedisLagRun> {
  await waitCaughtUp(wan);
  const run = `lag${++lagRunCounter}`;
  const sentAtMs = new Float64Array(events);
  const recorder = new LagRecorder(events);
  const subscriber = await connectRedis(wan.replicaPort);
  const prefix = `__keyspace@0__:${run}:`;
  let allArrived: () => void = () => {};
  const arrived = new Promise<void>((resolve) => (allArrived = resolve));
  try {
    subscriber.on('pmessage', (_pattern: string, channel: string) => {
      const index = Number(channel.slice(prefix.length));
      if (!channel.startsWith(prefix) || !Number.isInteger(index) || index < 0 || index >= events) return;
      recorder.add(performance.now() - sentAtMs[index]!);
      if (recorder.events === events) allArrived();
    });
    await subscriber.psubscribe(`${prefix}*`);
    const value = 'x'.repeat(valueBytes);
    const writer = await rateLimited(events, ratePerSecond, LAG_IN_FLIGHT_MAX, (index) => {
      sentAtMs[index] = performance.now();
      return wan.primary.set(`${run}:${index}`, value);
    });
    const finished = await Promise.race([arrived.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 30_000))]);
    if (!finished) process.stderr.write(`bench: redis lag run: ${recorder.events} of ${events} notifications within 30 s\n`);
    // The lag keys are not part of the workload: drop them so later runs don't carry them.
    await wan.primary.flushall();
    return { ...recorder.summary(), writer, expected: events };
  } finally {
    subscriber.disconnect();
  }
}
