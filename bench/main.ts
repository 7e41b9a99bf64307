// `npm run bench`: Strait against a Redis yardstick on this machine, in one run.
//
// 1. A Strait site as a user starts it (`strait start locator`, two `strait start server` with
//    region BENCH, replicate, in memory), measured from this process with the TypeScript
//    client: puts and gets of 100-byte values, one in flight and 64 in flight. Every put is a
//    distributed-ack write: acknowledged once both servers applied it.
// 2. A Redis primary with one replica, measured with redis-benchmark at the same depths, the
//    replica's catch-up after the pipelined SET run, and SET + WAIT 1 (a replica-acknowledged
//    write, what a Strait put is) from this process with ioredis.
//    Both run side by side; each run measures Strait, then Redis. A missing Redis is installed
//    (as root) or stops the bench with the command to run (peers.ts); `--without-peers` measures
//    Strait alone.
// 3. A table (median of the runs, min–max beside it) and bench/results/<timestamp>.json.
//
// `--profile` instead CPU-profiles the servers during pipelined puts (see profile.ts).
// Everything started is stopped by pid at the end, on failure and on Ctrl-C. docs/BENCHMARKS.md
// records a full run and what it means.

import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '../src/client/connect.ts';
import { Cleanup } from './processes.ts';
import { parseOptions, peersWanted, USAGE, UsageError, type BenchOptions } from './options.ts';
import { BENCH_REGION, makeCertificates, regionSizes, startStraitSite, stopStraitSite, type BenchRegionType } from './strait-site.ts';
import { runLoad, warmUp, Workload, type LoadRun } from './strait-load.ts';
import { ensurePeers, machinePeerHost, PEER_CLIENTS, type RedisTools } from './peers.ts';
import { closeCatchUpProbe, measureCatchUp, openCatchUpProbe, redisBenchmarkArgs, runRedisBenchmark, runSetWait, startRedisPair, type CatchUp, type RedisBenchmarkRow, type SetWaitRun } from './redis.ts';
import { runProfile } from './profile.ts';
import { describeMachine, measureCpuBusy, formatMachine, formatProfile, formatTable, tableRows, type Machine, type Row, sourceState, timestamp, writeResults } from './report.ts';
import { spread } from './stats.ts';

const REPOSITORY_ROOT = fileURLToPath(new URL('..', import.meta.url));
const SERVERS = 2;
/** The issue's aims: one-in-flight latency within 2× Redis, pipelined throughput within 3×. */
const LATENCY_RATIO_MAX = 2;
/** Issue #11: pipelined put and get ≥ half of Redis -P 64. */
const THROUGHPUT_RATIO_MIN = 0.5;
/** Issue #11: a put with 1 in flight, p50, ≤ 1.2× Redis SET + WAIT 1 (the same guarantee: a replica has it). */
const REPLICATED_PUT_RATIO_MAX = 1.2;
/** Functions listed from each profile. */
const PROFILE_TOP_FUNCTIONS = 15;

interface StraitRun {
  readonly putOne: LoadRun;
  readonly getOne: LoadRun;
  readonly putPipelined: LoadRun;
  readonly getPipelined: LoadRun;
}

interface StraitResults {
  readonly commands: readonly string[];
  readonly runs: readonly StraitRun[];
  /** Entries each server holds after the runs: equal when every acknowledged put is on both. */
  readonly regionSizes: readonly { name: string; size: number }[];
}

interface RedisRun {
  readonly setOne: RedisBenchmarkRow;
  readonly getOne: RedisBenchmarkRow;
  readonly setPipelined: RedisBenchmarkRow;
  readonly getPipelined: RedisBenchmarkRow;
  readonly catchUp: CatchUp;
  /** SET + WAIT 1, one in flight, from this process: a replica-acknowledged write. */
  readonly setWait: SetWaitRun;
}

type RedisResults = { readonly commands: readonly string[]; readonly runs: readonly RedisRun[] } | { readonly skipped: string };

/** Redis's binaries, found by peers.ts, or why Redis is not measured (--without-peers, --profile). */
type RedisPeer = { readonly tools: RedisTools } | { readonly skipped: string };

/**
 * What the results record about Redis: its version, the client that measured SET + WAIT and the
 * catch-up, and the redis-benchmark that measured SET and GET.
 */
function peerRecord(peer: RedisPeer): { version: string; client: string; benchmark: string } | { skipped: string } {
  if ('skipped' in peer) return { skipped: peer.skipped };
  return { version: peer.tools.version, client: PEER_CLIENTS.redis(), benchmark: peer.tools.benchmark };
}

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

function describeRun(label: string, run: { opsPerSecond?: number; rps?: number; p50Ms?: number; p99Ms?: number; p50LatencyMs?: number; p99LatencyMs?: number }): string {
  const rate = run.opsPerSecond ?? run.rps ?? Number.NaN;
  const p50 = run.p50Ms ?? run.p50LatencyMs ?? Number.NaN;
  const p99 = run.p99Ms ?? run.p99LatencyMs ?? Number.NaN;
  return `  ${label.padEnd(28)} ${Math.round(rate).toLocaleString('en-US').padStart(9)} ops/s   p50 ${p50.toFixed(3)} ms   p99 ${p99.toFixed(3)} ms`;
}

/** A running Strait site with a connected, warmed-up client; `run` measures one run. */
interface StraitSession {
  readonly commands: readonly string[];
  run(): Promise<StraitRun>;
  /** Entries per server; throws unless both hold every key (every acknowledged put is on both). */
  checkReplicas(): Promise<{ name: string; size: number }[]>;
  close(): Promise<void>;
}

async function openStrait(cleanup: Cleanup, root: string, options: BenchOptions, type: BenchRegionType = 'replicate', tls = false): Promise<StraitSession> {
  const label = tls ? 'Strait TLS' : type === 'replicate' ? 'Strait' : 'Strait partitioned';
  say(`\n${label}: starting a locator and ${SERVERS} servers (strait start) in ${root}, region ${BENCH_REGION} ${type === 'replicate' ? 'replicated' : 'partitioned, 113 buckets, 1 redundant copy'}${tls ? ', TLS on every link (strait tls init certificates; mutual between members)' : ''}`);
  const certs = tls ? await makeCertificates(root, [1]) : undefined;
  const site = await startStraitSite(cleanup, root, SERVERS, type, certs);
  for (const member of site.members) say(`  ${member.role} ${member.name} at ${member.address}, pid ${member.pid}`);
  const commands = [
    ...(tls ? ['strait tls init --dir <tmp>/certs --sites 1   # then every member below also gets --tls-cert <tmp>/certs/site-1/<role>.crt --tls-key ... --tls-ca <tmp>/certs/ca.crt'] : []),
    `strait start locator --name bench-locator --dir <tmp>/bench-locator --bind-address 127.0.0.1 --timeout 60 --json --port 0`,
    ...site.members.filter((member) => member.role === 'server').map((member) =>
      `strait start server --name ${member.name} --dir <tmp>/${member.name} --bind-address 127.0.0.1 --timeout 60 --json --server-port 0 --locators <locator host[port]>   # <tmp>/${member.name}/strait.yaml: regions: { ${BENCH_REGION}: ${type === 'replicate' ? '{ type: replicate, persistent: false }' : '{ type: partition, persistent: false, redundant-copies: 1 }'} }`),
    `strait stop server|locator --dir <tmp>/<member> --timeout 20 --force   # servers first, then the locator`,
  ];
  const workload = new Workload(options.keyCount, options.valueBytes);
  const client = await connect({ locators: site.locators, name: 'bench', ...(certs === undefined ? {} : { tls: { ca: join(certs, 'ca.crt') } }) });
  const close = async (): Promise<void> => {
    await client.close();
    say(`  ${label}: stopping the site (strait stop)`);
    await stopStraitSite(cleanup, site);
  };
  try {
    const servers = (await client.view()).members.filter((member) => member.info.role === 'server' && member.info.regions.includes(BENCH_REGION));
    if (servers.length !== SERVERS) throw new Error(`the view lists ${servers.length} servers hosting ${BENCH_REGION}, expected ${SERVERS}`);
    const region = client.region<string>(BENCH_REGION);
    say(`  client connected to ${client.currentServer ?? '?'}; warming up (${options.keyCount.toLocaleString('en-US')} keys stored, ${options.valueBytes}-byte values)`);
    await warmUp(region, workload, options.pipelineDepth, options.quick ? 1 : 2);
    return {
      commands,
      run: async () => {
        const putOne = await runLoad(region, workload, 'put', options.opsOneInFlight, 1);
        say(describeRun(`${label} put, 1 in flight`, putOne));
        const getOne = await runLoad(region, workload, 'get', options.opsOneInFlight, 1);
        say(describeRun(`${label} get, 1 in flight`, getOne));
        const putPipelined = await runLoad(region, workload, 'put', options.opsPipelined, options.pipelineDepth);
        say(describeRun(`${label} put, ${options.pipelineDepth} in flight`, putPipelined));
        const getPipelined = await runLoad(region, workload, 'get', options.opsPipelined, options.pipelineDepth);
        say(describeRun(`${label} get, ${options.pipelineDepth} in flight`, getPipelined));
        return { putOne, getOne, putPipelined, getPipelined };
      },
      checkReplicas: async () => {
        const sizes = await regionSizes(site, BENCH_REGION);
        say(`  ${label}: ${BENCH_REGION} entries per server after the runs: ${sizes.map((entry) => `${entry.name} ${entry.size}`).join(', ')}`);
        if (sizes.some((entry) => entry.size !== options.keyCount)) throw new Error(`servers disagree on ${BENCH_REGION}: ${JSON.stringify(sizes)}, expected ${options.keyCount} each`);
        return sizes;
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** A running Redis primary and replica, warmed up; `run` measures one run. */
interface RedisSession {
  readonly commands: readonly string[];
  run(): Promise<RedisRun>;
  close(): Promise<void>;
}

function findRow(rows: readonly RedisBenchmarkRow[], test: string): RedisBenchmarkRow {
  const found = rows.find((entry) => entry.test === test);
  if (found === undefined) throw new Error(`redis-benchmark printed no ${test} row`);
  return found;
}

async function openRedis(cleanup: Cleanup, tools: RedisTools, root: string, options: BenchOptions): Promise<RedisSession> {
  say(`\nRedis: starting a primary and one replica in ${root}`);
  const pair = await startRedisPair(cleanup, tools, root);
  say(`  primary on port ${pair.primary.port} (pid ${pair.primary.pid}), replica on port ${pair.replica.port} (pid ${pair.replica.pid}), link up`);
  const benchmarkCommand = (tests: string, ops: number, pipeline: number): string =>
    `redis-benchmark ${redisBenchmarkArgs(0, tests, ops, pipeline, options.valueBytes).join(' ').replace('-p 0', '-p P')}`;
  const commands = [
    `redis-server --port P --bind 127.0.0.1 --dir <tmp>/redis-primary --save '' --appendonly no`,
    `redis-server --port R --bind 127.0.0.1 --dir <tmp>/redis-replica --save '' --appendonly no --replicaof 127.0.0.1 P`,
    benchmarkCommand('set,get', options.opsOneInFlight, 1),
    `SET key:NNNNNN <${options.valueBytes} bytes> + WAIT 1 5000, sent together as one ${PEER_CLIENTS.redis()} pipeline from the bench process, one pair in flight, ${options.opsOneInFlight} times`,
    `${benchmarkCommand('set', options.opsPipelined, options.pipelineDepth)}   # then INFO replication on both (${PEER_CLIENTS.redis()} from the bench; redis-cli to confirm) until the replica's slave_repl_offset reaches the primary's master_repl_offset`,
    benchmarkCommand('get', options.opsPipelined, options.pipelineDepth),
    'kill -TERM <replica pid> <primary pid>',
  ];
  const close = async (): Promise<void> => {
    say('  Redis: stopping the primary and replica (SIGTERM by pid)');
    await cleanup.stop(pair.replica.pid);
    await cleanup.stop(pair.primary.pid);
  };
  const workload = new Workload(options.keyCount, options.valueBytes);
  try {
    // Warm-up, not recorded: connections, allocator, the replica's stream.
    await runRedisBenchmark(pair, 'set,get', Math.max(1000, Math.round(options.opsPipelined / 10)), options.pipelineDepth, options.valueBytes);
    await runSetWait(pair.primary.port, workload.keys, workload.value, Math.min(2000, options.opsOneInFlight));
  } catch (error) {
    await close();
    throw error;
  }
  return {
    commands,
    close,
    run: async () => {
      const one = await runRedisBenchmark(pair, 'set,get', options.opsOneInFlight, 1, options.valueBytes);
      const setOne = findRow(one.rows, 'SET');
      const getOne = findRow(one.rows, 'GET');
      say(describeRun('Redis SET, 1 in flight', setOne));
      say(describeRun('Redis GET, 1 in flight', getOne));
      const setWait = await runSetWait(pair.primary.port, workload.keys, workload.value, options.opsOneInFlight);
      say(describeRun('Redis SET + WAIT 1', setWait));
      const probe = await openCatchUpProbe(pair);
      let set: Awaited<ReturnType<typeof runRedisBenchmark>>;
      let catchUp: CatchUp;
      try {
        set = await runRedisBenchmark(pair, 'set', options.opsPipelined, options.pipelineDepth, options.valueBytes);
        catchUp = await measureCatchUp(pair, probe, set.exitedAtMs);
      } finally {
        closeCatchUpProbe(probe);
      }
      const setPipelined = findRow(set.rows, 'SET');
      say(describeRun(`Redis SET, ${options.pipelineDepth} pipelined`, setPipelined));
      say(`  Redis replica: ${catchUp.lagBytesAtFirstCheck} bytes behind at the first check, caught up ${catchUp.catchUpMs.toFixed(2)} ms after redis-benchmark exited (${catchUp.checks} check${catchUp.checks === 1 ? '' : 's'} of ${catchUp.checkMs.toFixed(2)} ms; redis-cli confirms offsets ${catchUp.confirmedWithRedisCli.primaryOffset} / ${catchUp.confirmedWithRedisCli.replicaOffset})`);
      const get = await runRedisBenchmark(pair, 'get', options.opsPipelined, options.pipelineDepth, options.valueBytes);
      const getPipelined = findRow(get.rows, 'GET');
      say(describeRun(`Redis GET, ${options.pipelineDepth} pipelined`, getPipelined));
      return { setOne, getOne, setPipelined, getPipelined, catchUp, setWait };
    },
  };
}

/**
 * Both systems run side by side and the runs alternate (Strait, then Redis, per run), so a
 * slow spell of this (virtual) machine hits both rather than one.
 */
async function measure(cleanup: Cleanup, root: string, options: BenchOptions, peer: RedisPeer): Promise<{ strait: StraitResults; partitioned: StraitResults; tls: StraitResults; redis: RedisResults }> {
  const strait = await openStrait(cleanup, join(root, 'strait'), options);
  let partitioned: StraitSession | undefined;
  let tls: StraitSession | undefined;
  let redis: RedisSession | undefined;
  try {
    // The same two servers' worth of data, partitioned: each bucket on a primary and one copy,
    // so both servers still hold every key, but each write goes through its bucket's primary.
    partitioned = await openStrait(cleanup, join(root, 'strait-partitioned'), options, 'partition');
    // The same replicated site with TLS on every link, measured in the same runs as without.
    tls = await openStrait(cleanup, join(root, 'strait-tls'), options, 'replicate', true);
    if ('tools' in peer) redis = await openRedis(cleanup, peer.tools, join(root, 'redis'), options);
    const straitRuns: StraitRun[] = [];
    const partitionedRuns: StraitRun[] = [];
    const tlsRuns: StraitRun[] = [];
    const redisRuns: RedisRun[] = [];
    for (let index = 1; index <= options.runs; index++) {
      say(`\nrun ${index}/${options.runs}`);
      straitRuns.push(await strait.run());
      partitionedRuns.push(await partitioned.run());
      tlsRuns.push(await tls.run());
      if (redis !== undefined) redisRuns.push(await redis.run());
    }
    const sizes = await strait.checkReplicas();
    const partitionedSizes = await partitioned.checkReplicas();
    const tlsSizes = await tls.checkReplicas();
    return {
      strait: { commands: strait.commands, runs: straitRuns, regionSizes: sizes },
      partitioned: { commands: partitioned.commands, runs: partitionedRuns, regionSizes: partitionedSizes },
      tls: { commands: tls.commands, runs: tlsRuns, regionSizes: tlsSizes },
      redis: redis === undefined ? { skipped: 'skipped' in peer ? peer.skipped : 'not run' } : { commands: redis.commands, runs: redisRuns },
    };
  } finally {
    await redis?.close();
    await tls?.close();
    await partitioned?.close();
    await strait.close();
  }
}

function comparisonRows(options: BenchOptions, strait: StraitResults, redis: RedisResults, partitioned?: StraitResults): Row[] {
  const redisRuns = 'runs' in redis ? redis.runs : undefined;
  const ofStrait = (pick: (run: StraitRun) => number) => spread(strait.runs.map(pick));
  const ofRedis = (pick: (run: RedisRun) => number) => (redisRuns === undefined ? undefined : spread(redisRuns.map(pick)));
  const depth = options.pipelineDepth;
  const latency = { max: LATENCY_RATIO_MAX };
  const throughput = { min: THROUGHPUT_RATIO_MIN };
  return [
    { metric: 'put, 1 in flight: ops/s', strait: ofStrait((run) => run.putOne.opsPerSecond), redis: ofRedis((run) => run.setOne.rps), decimals: 0 },
    { metric: 'put, 1 in flight: p50 ms', strait: ofStrait((run) => run.putOne.p50Ms), redis: ofRedis((run) => run.setOne.p50LatencyMs), aim: latency, decimals: 3 },
    { metric: 'put, 1 in flight: p99 ms', strait: ofStrait((run) => run.putOne.p99Ms), redis: ofRedis((run) => run.setOne.p99LatencyMs), aim: latency, decimals: 3 },
    { metric: 'get, 1 in flight: ops/s', strait: ofStrait((run) => run.getOne.opsPerSecond), redis: ofRedis((run) => run.getOne.rps), decimals: 0 },
    { metric: 'get, 1 in flight: p50 ms', strait: ofStrait((run) => run.getOne.p50Ms), redis: ofRedis((run) => run.getOne.p50LatencyMs), aim: latency, decimals: 3 },
    { metric: 'get, 1 in flight: p99 ms', strait: ofStrait((run) => run.getOne.p99Ms), redis: ofRedis((run) => run.getOne.p99LatencyMs), aim: latency, decimals: 3 },
    { metric: `put, ${depth} in flight: ops/s`, strait: ofStrait((run) => run.putPipelined.opsPerSecond), redis: ofRedis((run) => run.setPipelined.rps), aim: throughput, decimals: 0 },
    { metric: `put, ${depth} in flight: p50 ms`, strait: ofStrait((run) => run.putPipelined.p50Ms), redis: ofRedis((run) => run.setPipelined.p50LatencyMs), decimals: 3 },
    { metric: `put, ${depth} in flight: p99 ms`, strait: ofStrait((run) => run.putPipelined.p99Ms), redis: ofRedis((run) => run.setPipelined.p99LatencyMs), decimals: 3 },
    { metric: `get, ${depth} in flight: ops/s`, strait: ofStrait((run) => run.getPipelined.opsPerSecond), redis: ofRedis((run) => run.getPipelined.rps), aim: throughput, decimals: 0 },
    { metric: `get, ${depth} in flight: p50 ms`, strait: ofStrait((run) => run.getPipelined.p50Ms), redis: ofRedis((run) => run.getPipelined.p50LatencyMs), decimals: 3 },
    { metric: `get, ${depth} in flight: p99 ms`, strait: ofStrait((run) => run.getPipelined.p99Ms), redis: ofRedis((run) => run.getPipelined.p99LatencyMs), decimals: 3 },
    { metric: 'put acked by the replica (Redis: SET + WAIT 1), 1 in flight: ops/s', strait: ofStrait((run) => run.putOne.opsPerSecond), redis: ofRedis((run) => run.setWait.opsPerSecond), decimals: 0 },
    { metric: 'put acked by the replica (Redis: SET + WAIT 1), 1 in flight: p50 ms', strait: ofStrait((run) => run.putOne.p50Ms), redis: ofRedis((run) => run.setWait.p50Ms), aim: { max: REPLICATED_PUT_RATIO_MAX }, decimals: 3 },
    { metric: 'put acked by the replica (Redis: SET + WAIT 1), 1 in flight: p99 ms', strait: ofStrait((run) => run.putOne.p99Ms), redis: ofRedis((run) => run.setWait.p99Ms), decimals: 3 },
    ...(partitioned === undefined ? [] : partitionedRows(options, partitioned, ofRedis)),
    {
      metric: `replica catch-up after the ${depth}-deep put run: ms`,
      strait: undefined,
      straitNote: '0 (acked by both)',
      redis: ofRedis((run) => run.catchUp.catchUpMs),
      decimals: 2,
    },
  ];
}


/** TLS on every link beside plain TCP, the same site and load, in the same runs. */
function tlsRows(options: BenchOptions, off: StraitResults, on: StraitResults): Row[] {
  const depth = options.pipelineDepth;
  const pair = (metric: string, pick: (run: StraitRun) => number, decimals: number): Row => ({
    metric, strait: spread(on.runs.map(pick)), redis: spread(off.runs.map(pick)), decimals,
  });
  return [
    pair('put, 1 in flight: p50 ms', (run) => run.putOne.p50Ms, 3),
    pair('get, 1 in flight: p50 ms', (run) => run.getOne.p50Ms, 3),
    pair(`put, ${depth} in flight: ops/s`, (run) => run.putPipelined.opsPerSecond, 0),
    pair(`get, ${depth} in flight: ops/s`, (run) => run.getPipelined.opsPerSecond, 0),
  ];
}

/** The partitioned region's figures beside the same Redis runs. */
function partitionedRows(options: BenchOptions, partitioned: StraitResults, ofRedis: (pick: (run: RedisRun) => number) => ReturnType<typeof spread> | undefined): Row[] {
  const of = (pick: (run: StraitRun) => number) => spread(partitioned.runs.map(pick));
  const depth = options.pipelineDepth;
  const label = 'partitioned (2 servers, 1 redundant copy)';
  return [
    { metric: `${label} put, 1 in flight: p50 ms`, strait: of((run) => run.putOne.p50Ms), redis: ofRedis((run) => run.setWait.p50Ms), aim: { max: LATENCY_RATIO_MAX }, decimals: 3 },
    { metric: `${label} get, 1 in flight: p50 ms`, strait: of((run) => run.getOne.p50Ms), redis: ofRedis((run) => run.getOne.p50LatencyMs), aim: { max: LATENCY_RATIO_MAX }, decimals: 3 },
    { metric: `${label} put, ${depth} in flight: ops/s`, strait: of((run) => run.putPipelined.opsPerSecond), redis: ofRedis((run) => run.setPipelined.rps), aim: { min: THROUGHPUT_RATIO_MIN }, decimals: 0 },
    { metric: `${label} get, ${depth} in flight: ops/s`, strait: of((run) => run.getPipelined.opsPerSecond), redis: ofRedis((run) => run.getPipelined.rps), aim: { min: THROUGHPUT_RATIO_MIN }, decimals: 0 },
  ];
}

/** The code measured: commit and how many files differ from it (others may be editing). */

async function benchmark(cleanup: Cleanup, root: string, options: BenchOptions, machine: Machine, peer: RedisPeer): Promise<void> {
  const startedAt = new Date().toISOString();
  const startedMs = performance.now();
  say(`${options.runs} run${options.runs === 1 ? '' : 's'} of each measurement${options.quick ? ' (--quick: one run, so each figure is that run, not a median)' : ', median reported'}; ` +
    `${options.opsOneInFlight.toLocaleString('en-US')} ops one in flight, ${options.opsPipelined.toLocaleString('en-US')} ops ${options.pipelineDepth} in flight; ${options.valueBytes}-byte values`);
  const { strait, partitioned, tls, redis } = await measure(cleanup, root, options, peer);
  const rows = comparisonRows(options, strait, redis, partitioned);
  const securedRows = tlsRows(options, strait, tls);
  say('');
  say(formatTable(rows));
  say('\nTLS on every link (mutual between the servers) beside plain TCP, same site and load:');
  say(formatTable(securedRows, { strait: 'TLS on', redis: 'TLS off' }));
  if ('skipped' in redis) say(`\nRedis was not measured: ${redis.skipped}. The Redis column is empty; no Redis figure is assumed.`);
  const seconds = (performance.now() - startedMs) / 1000;
  const cpuBusyAfterEnd = await measureCpuBusy(1000);
  if (cpuBusyAfterEnd !== undefined) say(`\nafter the run (everything stopped): ${(cpuBusyAfterEnd * 100).toFixed(0)}% of the CPUs busy`);
  const path = writeResults(timestamp(), {
    kind: 'comparison',
    startedAt,
    seconds,
    arguments: process.argv.slice(2),
    options,
    machine,
    peers: { redis: peerRecord(peer) },
    source: await sourceState(),
    loadAverageAtEnd: loadavg()[0],
    cpuBusyAfterEnd,
    strait,
    partitioned,
    tls,
    redis,
    table: tableRows(rows),
    tlsTable: tableRows(securedRows),
  });
  say(`\nresults: ${path} (${seconds.toFixed(0)} s)`);
}

async function profile(cleanup: Cleanup, root: string, options: BenchOptions, machine: Machine): Promise<void> {
  const operation = options.profileOperation;
  say(`Profiling: a locator (strait start) and two servers under node --cpu-prof, ${options.profileSeconds} s of ${operation}s ${options.profileInFlight} in flight after a warm-up`);
  const report = await runProfile(cleanup, root, REPOSITORY_ROOT, {
    seconds: options.profileSeconds,
    operation,
    pipelineDepth: options.profileInFlight,
    keyCount: options.keyCount,
    valueBytes: options.valueBytes,
    limit: PROFILE_TOP_FUNCTIONS,
  });
  say(`  server command: ${report.command}`);
  say(describeRun(`${operation}, ${options.profileInFlight} in flight (profiled)`, report.load));
  for (const server of report.servers) {
    const part = server.part === 'replica' ? (operation === 'put' ? 'replica: applied the replicated puts' : 'the other member: not on a get\'s path') : operation === 'put' ? 'took the client\'s puts and replicated them' : 'answered the client\'s gets';
    say('');
    say(formatProfile(`Server ${server.name} (${part})`, server.summary, PROFILE_TOP_FUNCTIONS));
  }
  say('');
  say(formatProfile('Bench client (in-process inspector profile, same window)', report.client, 10));
  // Main-thread CPU per put in each process: what bounds throughput when the cores are full.
  const perOperation = (busyMs: number): string => `${((busyMs * 1000) / Math.max(1, report.load.ops)).toFixed(1)} µs`;
  say('');
  say(`main-thread CPU per ${operation} (${report.load.ops.toLocaleString('en-US')} ${operation}s in the window): ` +
    [...report.servers.map((server) => `${server.name} (${server.part}) ${perOperation(server.summary.busyMs)}`), `client ${perOperation(report.client.busyMs)}`].join(', '));
  const path = writeResults(`${timestamp()}-profile`, { kind: 'profile', arguments: process.argv.slice(2), options, machine, source: await sourceState(), ...report });
  say(`\nresults: ${path}`);
}

async function main(): Promise<number> {
  let options: BenchOptions | undefined;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`bench: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (options === undefined) {
    process.stdout.write(USAGE);
    return 0;
  }

  // The profile measures Strait alone; the comparison needs Redis, or --without-peers.
  const check = await ensurePeers(peersWanted(options), options.withoutPeers, machinePeerHost());
  if (check.kind === 'stop') {
    process.stderr.write(`bench: ${check.message}\n`);
    return 1;
  }
  const peer: RedisPeer = check.kind === 'skipped'
    ? { skipped: check.reason }
    : check.tools.redis === undefined ? { skipped: 'not used (--profile)' } : { tools: check.tools.redis };
  if (check.kind === 'skipped') say(`Redis: ${check.reason}. Strait is measured alone; the Redis column stays empty, the ratios show —.`);

  const cleanup = new Cleanup();
  const root = mkdtempSync(join(tmpdir(), 'strait-bench-'));
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\nbench: ${signal}; stopping everything it started (logs kept in ${root})\n`);
    void cleanup.stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const machine = describeMachine('tools' in peer ? peer.tools.version : `redis: ${peer.skipped}`, await measureCpuBusy(1000));
  say(formatMachine(machine));
  if ('tools' in peer) say(`Redis client: ${PEER_CLIENTS.redis()} (SET + WAIT, replica catch-up); throughput and latency: redis-benchmark`);

  let succeeded = false;
  try {
    if (options.profile) await profile(cleanup, root, options, machine);
    else await benchmark(cleanup, root, options, machine, peer);
    succeeded = true;
  } finally {
    await cleanup.stopAll();
    // Keep the members' directories (logs, member.json) when something went wrong.
    if (succeeded) rmSync(root, { recursive: true, force: true });
    else process.stderr.write(`bench: logs kept in ${root}\n`);
  }
  return 0;
}

main().then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
