// The WAN replication benchmark: `node bench/wan/main.ts [--quick]` (run by `npm run bench`
// after the site benchmark).
//
// 1. Strait: two sites started as a user does (`strait start`), site 1 → site 2 through the
//    WAN proxy (strait-wan.ts): a serial, persistent sender (batch-size 500,
//    batch-time-interval 5 ms, maximum-queue-memory 32 MB). Measured from this process with the
//    TypeScript client: E2E throughput (256 puts in flight, until site 2 applied them all) with
//    100-byte and 1 KiB values; per-event lag at 20k events/s and at half of the peak; E2E
//    throughput with 20, 100 and 300 ms RTT injected; a backlog written during a partition, the
//    site-1 server's RSS and the sender's queue meanwhile, and the drain after the heal.
// 2. Redis primary → replica, the replica's link through the same proxy (redis-wan.ts), driven by
//    redis-benchmark and ioredis.
// 3. NATS JetStream: a stream on a hub, a mirror on a leaf joined by a leafnode through the same
//    proxy (nats-wan.ts), driven by the official nats.js client. A missing redis-server or
//    nats-server is installed (as root) or stops the bench with the command to run (peers.ts);
//    `--without-peers` measures Strait alone. No peer figure is ever invented.
// 4. A table (median of the runs, min–max) with ratio columns, the issue's targets judged, and
//    bench/results/wan-<timestamp>.json.
//
// `--profile` instead runs the two Strait servers under `node --cpu-prof` and lists the hottest
// functions during the throughput phase. Everything started is stopped by pid, also on failure
// and on Ctrl-C.

import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { summarizeProfile, type CpuProfile, type ProfileSummary } from '../cpu-profile.ts';
import { ensurePeers, machinePeerHost, PEER_CLIENTS, type NatsTools, type PeerTools, type RedisTools } from '../peers.ts';
import { Cleanup } from '../processes.ts';
import { describeMachine, formatMachine, formatProfile, measureCpuBusy, sourceState, timestamp, writeResults } from '../report.ts';
import { spread, type Spread } from '../stats.ts';
import { pipelined, type RateRun } from './load.ts';
import { natsBacklogRun, natsLagRun, natsThroughputRun, startNatsWan, stopNatsWan, type NatsBacklogRun, type NatsLagRun, type NatsThroughputRun } from './nats-wan.ts';
import { parseWanOptions, peersWanted, WAN_USAGE, WanUsageError, type WanBenchOptions } from './options.ts';
import { describeTrace, traced, type Trace } from './process-trace.ts';
import { redisLagRun, redisThroughputRun, startRedisWan, stopRedisWan, type RedisLagRun, type RedisThroughputRun } from './redis-wan.ts';
import { formatTargets, formatWanTable, formatNumber, type Target, type WanRow } from './report.ts';
import {
  backlogRun, KEY_COUNT, lagRun, senderStatus, SERVER_HEAP_MEGABYTES, startStraitWan, stopStraitWan, throughputRun, waitDrained,
  type BacklogRun, type BacklogSample, type LagRun, type SenderSettings, type StraitWan, type ThroughputRun,
} from './strait-wan.ts';

const REPOSITORY_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SETTINGS: SenderSettings = { batchSize: 500, batchTimeIntervalMs: 5, maximumQueueMemoryMegabytes: 32, persistent: true };
/** The issue's fixed lag rate. */
const LAG_RATE_FIXED = 20_000;
/** Below this share of the fixed rate's peak, Strait's lag is measured at a rate it keeps up with. */
const KEEP_UP_SHARE = 0.85;
/** The largest send window the drain's samples showed (the read-ahead is two of them), as a suffix of the backlog line. */
function drainWindow(samples: readonly BacklogSample[]): string {
  const windows = samples.filter((sample) => sample.phase === 'drain' && sample.windowBatches !== null).map((sample) => sample.windowBatches!);
  return windows.length === 0 ? '' : `, send window up to ${Math.max(...windows)} batches while draining`;
}

/** One throughput run's line: E2E and puts, the tail, and the sender's send window as its status showed it. */
function describeThroughput(run: ThroughputRun): string {
  const window = run.windowBatchesMax === null ? '' : `, send window up to ${run.windowBatchesMax} batches (round trip ${run.windowRoundTripMs ?? '?'} ms)`;
  return `E2E ${rate(run.endToEndPerSecond)}, puts ${rate(run.putsPerSecond)}, tail ${run.tailMs.toFixed(0)} ms${window}`;
}

/**
 * The one-way delays injected for the RTT rows: 20 ms and 100 ms round trips (the issue's), and
 * 300 ms, where a fixed window of 16 batches would bound the link at ~26,700 events/s.
 */
const ONE_WAY_DELAYS_MS = [10, 50, 150] as const;
/** Targets of the issue. */
const RTT_THROUGHPUT_SHARE_MIN = 0.9;
/** The RTT of the second lag run (the issue's bound holds at 0 and 20 ms). */
const LAG_FAR_RTT_MS = 20;
/** Issue #11: Strait's E2E throughput against the peers'. */
const E2E_NATS_RATIO_MIN = 1.5;
const E2E_REDIS_RATIO_MIN = 0.33;
const QUEUE_MEMORY_SLACK_BYTES = 64 * 1024 * 1024;
const MIB = 1024 * 1024;

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

function rate(value: number): string {
  return `${formatNumber(value, 0)}/s`;
}

interface StraitResults {
  readonly settings: SenderSettings;
  readonly commands: readonly string[];
  readonly small: readonly ThroughputRun[];
  readonly large: readonly ThroughputRun[];
  readonly lagFixedRate: number;
  readonly lagFixed: readonly LagRun[];
  readonly lagHalfRate: number;
  readonly lagHalf: readonly LagRun[];
  /** The same half-of-peak rate with 20 ms RTT injected by the proxy. */
  readonly lagHalfFar: readonly LagRun[];
  readonly roundTrip: Readonly<Record<string, readonly ThroughputRun[]>>;
  readonly backlog: BacklogRun | undefined;
  /** The same 100 B throughput, the batches going through one router instead of the proxy. */
  readonly routed: readonly ThroughputRun[];
  /** The same 100 B throughput with a partitioned region and a parallel sender over two site-1 servers. */
  readonly parallel: readonly ThroughputRun[];
  /** The same 100 B throughput with TLS on every link (strait tls init certificates). */
  readonly tls: readonly ThroughputRun[];
}

interface RedisResults {
  readonly version: string;
  /** The client that measured what redis-benchmark does not: INFO offsets, the lag writer, keyspace notifications. */
  readonly client: string;
  readonly commands: readonly string[];
  readonly small: readonly RedisThroughputRun[];
  readonly large: readonly RedisThroughputRun[];
  readonly lagFixed: readonly RedisLagRun[];
  readonly lagHalf: readonly RedisLagRun[];
  readonly roundTrip: Readonly<Record<string, readonly RedisThroughputRun[]>>;
}

interface NatsResults {
  readonly version: string;
  readonly client: string;
  readonly commands: readonly string[];
  readonly small: readonly NatsThroughputRun[];
  readonly large: readonly NatsThroughputRun[];
  readonly lagFixed: readonly NatsLagRun[];
  readonly lagHalf: readonly NatsLagRun[];
  readonly roundTrip: Readonly<Record<string, readonly NatsThroughputRun[]>>;
  readonly backlog: NatsBacklogRun | undefined;
}

async function repeat<T>(runs: number, label: string, measure: () => Promise<T>, describe: (result: T) => string): Promise<T[]> {
  const results: T[] = [];
  for (let run = 1; run <= runs; run++) {
    const result = await measure();
    say(`  ${label} run ${run}/${runs}: ${describe(result)}`);
    results.push(result);
  }
  return results;
}

function describeLag(run: { p50Ms: number; p99Ms: number; p999Ms: number; events: number; expected: number; writer: { achievedPerSecond: number }; trace?: Trace }): string {
  const line = `writer ${rate(run.writer.achievedPerSecond)}, ${run.events}/${run.expected} events, p50 ${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms, p99.9 ${run.p999Ms.toFixed(2)} ms`;
  return run.trace === undefined ? line : `${line}\n      ${describeTrace(run.trace)}`;
}

/** A lag run with what each process did meanwhile (process-trace.ts): GC pauses, event-loop delay. */
async function tracedLag<R extends object>(adminUrls: Readonly<Record<string, string>>, run: () => Promise<R>): Promise<R & { trace: Trace }> {
  const { result, trace } = await traced(adminUrls, run);
  return { ...result, trace };
}

/** A Strait lag run traced in both servers from a drained queue (not the previous run's drain). */
async function tracedStraitLag(wan: StraitWan, ratePerSecond: number, seconds: number): Promise<LagRun & { trace: Trace }> {
  await waitDrained(wan, 120_000);
  return tracedLag({ 'site 1': wan.serverA.adminUrl, 'site 2': wan.serverB.adminUrl }, () => lagRun(wan, ratePerSecond, ratePerSecond * seconds, 100));
}

/** The lag rates: 20k/s unless Strait's peak is below it (then a rate it keeps up with), and half of the peak. */
function lagRates(peak: number | undefined): { fixed: number; half: number } {
  if (peak === undefined || Number.isNaN(peak)) return { fixed: LAG_RATE_FIXED, half: LAG_RATE_FIXED / 2 };
  const fixed = peak * KEEP_UP_SHARE >= LAG_RATE_FIXED ? LAG_RATE_FIXED : Math.max(1000, Math.floor((peak * KEEP_UP_SHARE) / 500) * 500);
  return { fixed, half: Math.max(500, Math.round(peak / 2 / 100) * 100) };
}

/** Shares of the peak tried, highest first, when 20k/s is beyond Strait's peak. */
const KEEP_UP_SHARES = [0.85, 0.75, 0.65, 0.55, 0.45] as const;
const KEEP_UP_PROBE_SECONDS = 2;
/** A rate "keeps up" when the writer holds it and lag stays bounded (doesn't build a queue). */
const KEEP_UP_WRITER_SHARE_MIN = 0.97;
const KEEP_UP_P99_MS_MAX = 100;

/** The highest of KEEP_UP_SHARES × peak at which a short lag probe keeps up. */
async function findKeepUpRate(wan: Awaited<ReturnType<typeof startStraitWan>>, peak: number): Promise<number> {
  let last = 1000;
  for (const share of KEEP_UP_SHARES) {
    const candidate = Math.max(1000, Math.floor((peak * share) / 500) * 500);
    last = candidate;
    const probe = await lagRun(wan, candidate, candidate * KEEP_UP_PROBE_SECONDS, 100);
    const keepsUp = probe.writer.achievedPerSecond >= KEEP_UP_WRITER_SHARE_MIN * candidate && probe.events === probe.expected && probe.p99Ms <= KEEP_UP_P99_MS_MAX;
    say(`  keep-up probe at ${rate(candidate)}: ${describeLag(probe)} → ${keepsUp ? 'keeps up' : 'falls behind'}`);
    if (keepsUp) return candidate;
  }
  return last;
}

async function measureStrait(cleanup: Cleanup, root: string, options: WanBenchOptions): Promise<StraitResults> {
  say('Strait: starting two sites and the proxy ...');
  const wan = await startStraitWan(cleanup, root, SETTINGS);
  try {
    say(`  sender connected to site 2's receiver through the proxy (127.0.0.2:${wan.receiverPort} → 127.0.0.1:${wan.receiverPort}); warming up`);
    await throughputRun(wan, options.quick ? 10_000 : 30_000, 100, options.inFlight, 0);
    const small = await repeat(options.runs, 'E2E 100 B', () => throughputRun(wan, options.eventsSmall, 100, options.inFlight, 0), describeThroughput);
    const large = await repeat(options.runs, 'E2E 1 KiB', () => throughputRun(wan, options.eventsLarge, 1024, options.inFlight, 0), describeThroughput);
    const peak = spread(small.map((run) => run.endToEndPerSecond)).median;
    let rates = lagRates(peak);
    if (rates.fixed !== LAG_RATE_FIXED) {
      const keepUp = await findKeepUpRate(wan, peak);
      rates = { ...rates, fixed: keepUp };
      say(`  peak E2E ${rate(peak)} is below what 20k/s needs: the fixed-rate lag is measured at ${rate(keepUp)}, the highest rate tried that keeps up`);
    }
    const lagFixed = await repeat(options.runs, `lag at ${rate(rates.fixed)}`, () => tracedStraitLag(wan, rates.fixed, options.lagSeconds), describeLag);
    const lagHalf = await repeat(options.runs, `lag at ${rate(rates.half)} (half of peak)`, () => tracedStraitLag(wan, rates.half, options.lagSeconds), describeLag);
    const roundTrip: Record<string, ThroughputRun[]> = {};
    for (const delayMs of ONE_WAY_DELAYS_MS) {
      await wan.proxy.setDelay(delayMs);
      roundTrip[String(delayMs * 2)] = await repeat(options.runs, `E2E 100 B at ${delayMs * 2} ms RTT`, () => throughputRun(wan, options.eventsRoundTrip, 100, options.inFlight, delayMs * 2), describeThroughput);
    }
    await wan.proxy.setDelay(LAG_FAR_RTT_MS / 2);
    const lagHalfFar = await repeat(options.runs, `lag at ${rate(rates.half)} (half of peak) at ${LAG_FAR_RTT_MS} ms RTT`, () => tracedStraitLag(wan, rates.half, options.lagSeconds), describeLag);
    await wan.proxy.setDelay(0);
    say(`  backlog: partition, ${options.backlogEvents.toLocaleString('en-US')} events, heal ...`);
    const backlog = await backlogRun(wan, options.backlogEvents, 100, options.inFlight, SETTINGS.maximumQueueMemoryMegabytes);
    say(`  backlog: writes ${rate(backlog.writesPerSecond)}, RSS ${formatNumber(backlog.rssBeforeBytes / MIB, 0)} → peak ${formatNumber(backlog.rssPeakBytes / MIB, 0)} MiB, ` +
      `queue peak ${formatNumber(backlog.queueBytesPeak / MIB, 1)} MiB (${backlog.overflowEventsPeak} events on disk), reconnect ${backlog.reconnectMs.toFixed(0)} ms, ` +
      `drain ${rate(backlog.drainPerSecondFromHeal)} from heal, ${rate(backlog.drainPerSecond)} from first ack${drainWindow(backlog.samples)}`);
    return { settings: SETTINGS, commands: wan.commands, small, large, lagFixedRate: rates.fixed, lagFixed, lagHalfRate: rates.half, lagHalf, lagHalfFar, roundTrip, backlog, routed: [], parallel: [], tls: [] };
  } finally {
    await stopStraitWan(cleanup, wan);
  }
}

/** The same two sites with the batches going through one router instead of the proxy. */
async function measureStraitRouted(cleanup: Cleanup, root: string, options: WanBenchOptions): Promise<ThroughputRun[]> {
  say('Strait through a router: two sites registered with one router, the receiver unreachable directly ...');
  const wan = await startStraitWan(cleanup, join(root, 'routed'), SETTINGS, false, true);
  try {
    const status = await senderStatus(wan);
    say(`  sender connected to ${status.connectedReceiver === null ? '?' : `${status.connectedReceiver.host}`}; warming up`);
    await throughputRun(wan, options.quick ? 10_000 : 30_000, 100, options.inFlight, 0);
    return await repeat(options.runs, 'E2E 100 B through the router', () => throughputRun(wan, options.eventsSmall, 100, options.inFlight, 0), describeThroughput);
  } finally {
    await stopStraitWan(cleanup, wan);
  }
}

/** Partitioned BENCH at both sites, a parallel sender over two site-1 servers (each dispatching its buckets with 2 threads). */
const PARALLEL_SETTINGS: SenderSettings = { ...SETTINGS, parallel: { servers: 2, dispatcherThreads: 2 } };

/** Warms up a variant of the two sites, then repeats its 100 B throughput run. */
async function measureVariant(cleanup: Cleanup, wan: StraitWan, options: WanBenchOptions, connected: string, label: string): Promise<ThroughputRun[]> {
  try {
    say(`  ${connected}; warming up`);
    await throughputRun(wan, options.quick ? 10_000 : 30_000, 100, options.inFlight, 0);
    return await repeat(options.runs, label, () => throughputRun(wan, options.eventsSmall, 100, options.inFlight, 0), describeThroughput);
  } finally {
    await stopStraitWan(cleanup, wan);
  }
}

async function measureStraitParallel(cleanup: Cleanup, root: string, options: WanBenchOptions): Promise<ThroughputRun[]> {
  say('Strait with a parallel sender: partitioned BENCH at both sites, two site-1 servers each sending the buckets it is primary of ...');
  return measureVariant(cleanup, await startStraitWan(cleanup, join(root, 'parallel'), PARALLEL_SETTINGS), options, 'both copies connected', 'E2E 100 B, parallel sender');
}

/** The direct two sites again, with TLS on every link: locators, servers, the sender's batches, the clients. */
async function measureStraitTls(cleanup: Cleanup, root: string, options: WanBenchOptions): Promise<ThroughputRun[]> {
  say('Strait with TLS: the same two sites, every link TLS (mutual between members and between the sites) ...');
  return measureVariant(cleanup, await startStraitWan(cleanup, join(root, 'tls'), SETTINGS, false, false, true), options, 'sender connected over TLS', 'E2E 100 B, TLS');
}

async function measureRedis(cleanup: Cleanup, tools: RedisTools, root: string, options: WanBenchOptions, rates: { fixed: number; half: number }): Promise<RedisResults> {
  say('Redis: starting a primary, the proxy and a replica through it ' +
    `(throughput: redis-benchmark; INFO, lag writes and keyspace notifications: ${PEER_CLIENTS.redis()}) ...`);
  const wan = await startRedisWan(cleanup, tools, root);
  try {
    await redisThroughputRun(wan, 100_000, 100, 0);
    const describe = (run: RedisThroughputRun) => `E2E ${rate(run.endToEndPerSecond)}, primary ${rate(run.primaryPerSecond)}, catch-up ${run.catchUpMs.toFixed(0)} ms`;
    const small = await repeat(options.runs, 'E2E 100 B', () => redisThroughputRun(wan, options.redisEventsSmall, 100, 0), describe);
    const large = await repeat(options.runs, 'E2E 1 KiB', () => redisThroughputRun(wan, options.redisEventsLarge, 1024, 0), describe);
    const lagFixed = await repeat(options.runs, `lag at ${rate(LAG_RATE_FIXED)}`, () => tracedLag({}, () => redisLagRun(wan, LAG_RATE_FIXED, LAG_RATE_FIXED * options.lagSeconds, 100)), describeLag);
    const lagHalf = await repeat(options.runs, `lag at ${rate(rates.half)}`, () => tracedLag({}, () => redisLagRun(wan, rates.half, rates.half * options.lagSeconds, 100)), describeLag);
    const roundTrip: Record<string, RedisThroughputRun[]> = {};
    for (const delayMs of ONE_WAY_DELAYS_MS) {
      await wan.proxy.setDelay(delayMs);
      roundTrip[String(delayMs * 2)] = await repeat(options.runs, `E2E 100 B at ${delayMs * 2} ms RTT`, () => redisThroughputRun(wan, options.redisEventsSmall, 100, delayMs * 2), describe);
    }
    await wan.proxy.setDelay(0);
    return { version: tools.version, client: PEER_CLIENTS.redis(), commands: wan.commands, small, large, lagFixed, lagHalf, roundTrip };
  } finally {
    await stopRedisWan(cleanup, wan);
  }
}

async function measureNats(cleanup: Cleanup, tools: NatsTools, root: string, options: WanBenchOptions, rates: { fixed: number; half: number }): Promise<NatsResults> {
  say(`NATS JetStream: starting a hub, the proxy and a leaf with a mirror through it (client: ${PEER_CLIENTS.nats()}) ...`);
  const wan = await startNatsWan(cleanup, tools, root, options.backlogEvents);
  try {
    await natsThroughputRun(wan, options.quick ? 20_000 : 50_000, 100, options.inFlight, 0);
    const describe = (run: NatsThroughputRun) => `E2E ${rate(run.endToEndPerSecond)}, publish ${rate(run.publishPerSecond)}, catch-up ${run.catchUpMs.toFixed(0)} ms`;
    const small = await repeat(options.runs, 'E2E 100 B', () => natsThroughputRun(wan, options.eventsSmall, 100, options.inFlight, 0), describe);
    const large = await repeat(options.runs, 'E2E 1 KiB', () => natsThroughputRun(wan, options.eventsLarge, 1024, options.inFlight, 0), describe);
    const lagFixed = await repeat(options.runs, `lag at ${rate(LAG_RATE_FIXED)}`, () => tracedLag({}, () => natsLagRun(wan, LAG_RATE_FIXED, LAG_RATE_FIXED * options.lagSeconds, 100)), describeLag);
    const lagHalf = await repeat(options.runs, `lag at ${rate(rates.half)}`, () => tracedLag({}, () => natsLagRun(wan, rates.half, rates.half * options.lagSeconds, 100)), describeLag);
    const roundTrip: Record<string, NatsThroughputRun[]> = {};
    for (const delayMs of ONE_WAY_DELAYS_MS) {
      await wan.proxy.setDelay(delayMs);
      roundTrip[String(delayMs * 2)] = await repeat(options.runs, `E2E 100 B at ${delayMs * 2} ms RTT`, () => natsThroughputRun(wan, options.eventsRoundTrip, 100, options.inFlight, delayMs * 2), describe);
    }
    await wan.proxy.setDelay(0);
    say(`  backlog: partition, ${options.backlogEvents.toLocaleString('en-US')} publishes, heal ...`);
    const backlog = await natsBacklogRun(wan, options.backlogEvents, 100, options.inFlight);
    say(`  backlog: publishes ${rate(backlog.events / backlog.writeSeconds)}, reconnect ${backlog.reconnectMs.toFixed(0)} ms, drain ${rate(backlog.drainPerSecondFromHeal)} from heal, ${rate(backlog.drainPerSecond)} from first progress`);
    return { version: tools.version, client: PEER_CLIENTS.nats(), commands: wan.commands, small, large, lagFixed, lagHalf, roundTrip, backlog };
  } finally {
    await stopNatsWan(cleanup, wan);
  }
}

function of<T>(runs: readonly T[] | undefined, pick: (run: T) => number): Spread | undefined {
  return runs === undefined || runs.length === 0 ? undefined : spread(runs.map(pick));
}

function single(value: number | undefined): Spread | undefined {
  return value === undefined ? undefined : spread([value]);
}


/**
 * A peer's lag is measured at the rate its writer held: when the bench's client (not the peer)
 * could not keep the target rate, the cell says at what rate the figure really is.
 */
function writerNote(runs: readonly { readonly writer: RateRun }[] | undefined): string | undefined {
  if (runs === undefined || runs.length === 0) return undefined;
  const achieved = spread(runs.map((run) => run.writer.achievedPerSecond)).median;
  const target = runs[0]!.writer.targetPerSecond;
  return achieved < KEEP_UP_WRITER_SHARE_MIN * target ? `(writer held ${rate(achieved)})` : undefined;
}

function buildRows(straitResults: StraitResults | undefined, redisResults: RedisResults | undefined, natsResults: NatsResults | undefined, options: WanBenchOptions): WanRow[] {
  const s = straitResults;
  const r = redisResults;
  const n = natsResults;
  const rows: WanRow[] = [
    { metric: 'E2E throughput, 100 B values (events/s)', strait: of(s?.small, (x) => x.endToEndPerSecond), redis: of(r?.small, (x) => x.endToEndPerSecond), nats: of(n?.small, (x) => x.endToEndPerSecond), decimals: 0 },
    { metric: 'E2E throughput, 1 KiB values (events/s)', strait: of(s?.large, (x) => x.endToEndPerSecond), redis: of(r?.large, (x) => x.endToEndPerSecond), nats: of(n?.large, (x) => x.endToEndPerSecond), decimals: 0 },
    { metric: 'writes acknowledged at the origin, 100 B (writes/s)', strait: of(s?.small, (x) => x.putsPerSecond), redis: of(r?.small, (x) => x.primaryPerSecond), nats: of(n?.small, (x) => x.publishPerSecond), decimals: 0 },
    { metric: 'catch-up after the last write, 100 B (ms)', strait: of(s?.small, (x) => x.tailMs), redis: of(r?.small, (x) => x.catchUpMs), nats: of(n?.small, (x) => x.catchUpMs), decimals: 0 },
  ];
  for (const delayMs of ONE_WAY_DELAYS_MS) {
    const key = String(delayMs * 2);
    rows.push({ metric: `E2E throughput at ${key} ms RTT, 100 B (events/s)`, strait: of(s?.roundTrip[key], (x) => x.endToEndPerSecond), redis: of(r?.roundTrip[key], (x) => x.endToEndPerSecond), nats: of(n?.roundTrip[key], (x) => x.endToEndPerSecond), decimals: 0 });
  }
  const rttShare = (zero: Spread | undefined, far: Spread | undefined): Spread | undefined => (zero === undefined || far === undefined ? undefined : single(far.median / zero.median));
  for (const delayMs of ONE_WAY_DELAYS_MS.slice(1)) {
    const key = String(delayMs * 2);
    rows.push({
      metric: `E2E at ${key} ms RTT / at 0 ms`,
      strait: rttShare(of(s?.small, (x) => x.endToEndPerSecond), of(s?.roundTrip[key], (x) => x.endToEndPerSecond)),
      redis: rttShare(of(r?.small, (x) => x.endToEndPerSecond), of(r?.roundTrip[key], (x) => x.endToEndPerSecond)),
      nats: rttShare(of(n?.small, (x) => x.endToEndPerSecond), of(n?.roundTrip[key], (x) => x.endToEndPerSecond)),
      decimals: 2,
    });
  }
  const fixedNote = s !== undefined && s.lagFixedRate !== LAG_RATE_FIXED ? `(at ${rate(s.lagFixedRate)})` : undefined;
  const redisFixedNote = writerNote(r?.lagFixed);
  const natsFixedNote = writerNote(n?.lagFixed);
  for (const [label, pick] of [['p50', (x: { p50Ms: number }) => x.p50Ms], ['p99', (x: { p99Ms: number }) => x.p99Ms], ['p99.9', (x: { p999Ms: number }) => x.p999Ms]] as const) {
    rows.push({
      metric: `lag ${label} at 20k events/s (ms)`,
      strait: of(s?.lagFixed, pick), redis: of(r?.lagFixed, pick), nats: of(n?.lagFixed, pick), decimals: 2,
      ...(fixedNote !== undefined ? { straitNote: fixedNote } : {}),
      ...(redisFixedNote !== undefined ? { redisNote: redisFixedNote } : {}),
      ...(natsFixedNote !== undefined ? { natsNote: natsFixedNote } : {}),
    });
  }
  const half = s?.lagHalfRate ?? LAG_RATE_FIXED / 2;
  const redisHalfNote = writerNote(r?.lagHalf);
  const natsHalfNote = writerNote(n?.lagHalf);
  for (const [label, pick] of [['p50', (x: { p50Ms: number }) => x.p50Ms], ['p99', (x: { p99Ms: number }) => x.p99Ms], ['p99.9', (x: { p999Ms: number }) => x.p999Ms]] as const) {
    rows.push({
      metric: `lag ${label} at ${formatNumber(half, 0)} events/s = half of Strait's peak (ms)`,
      strait: of(s?.lagHalf, pick), redis: of(r?.lagHalf, pick), nats: of(n?.lagHalf, pick), decimals: 2,
      ...(redisHalfNote !== undefined ? { redisNote: redisHalfNote } : {}),
      ...(natsHalfNote !== undefined ? { natsNote: natsHalfNote } : {}),
    });
  }
  for (const [label, pick] of [['p50', (x: { p50Ms: number }) => x.p50Ms], ['p99', (x: { p99Ms: number }) => x.p99Ms], ['p99.9', (x: { p999Ms: number }) => x.p999Ms]] as const) {
    rows.push({ metric: `lag ${label} at ${formatNumber(half, 0)} events/s, ${LAG_FAR_RTT_MS} ms RTT (ms)`, strait: of(s?.lagHalfFar, pick), redisNote: 'not measured', natsNote: 'not measured', decimals: 2 });
  }
  const routed = of(s?.routed, (x) => x.endToEndPerSecond);
  rows.push(
    { metric: 'E2E throughput through one router, 100 B (events/s)', strait: routed, redisNote: 'no relay', natsNote: 'not measured', decimals: 0 },
    { metric: 'through one router / direct through the proxy, 100 B', strait: routed === undefined ? undefined : rttShare(of(s?.small, (x) => x.endToEndPerSecond), routed), decimals: 2 },
    { metric: 'E2E throughput, partitioned region, parallel sender over 2 servers, 100 B (events/s)', strait: of(s?.parallel, (x) => x.endToEndPerSecond), redisNote: 'no counterpart', natsNote: 'not measured', decimals: 0 },
    { metric: 'E2E throughput, TLS on every link, 100 B (events/s)', strait: of(s?.tls, (x) => x.endToEndPerSecond), redisNote: 'plaintext', natsNote: 'plaintext', decimals: 0 },
    { metric: 'TLS on / TLS off, 100 B', strait: of(s?.tls, (x) => x.endToEndPerSecond) === undefined ? undefined : rttShare(of(s?.small, (x) => x.endToEndPerSecond), of(s?.tls, (x) => x.endToEndPerSecond)!), decimals: 2 },
    { metric: 'parallel (2 servers) / serial (1 server), 100 B', strait: of(s?.parallel, (x) => x.endToEndPerSecond) === undefined ? undefined : rttShare(of(s?.small, (x) => x.endToEndPerSecond), of(s?.parallel, (x) => x.endToEndPerSecond)!), decimals: 2 },
  );
  const b = s?.backlog;
  const nb = n?.backlog;
  const backlogLabel = `backlog of ${formatNumber(options.backlogEvents, 0)} events`;
  rows.push(
    { metric: `${backlogLabel}: writes during the partition (events/s)`, strait: single(b?.writesPerSecond), nats: single(nb === undefined ? undefined : nb.events / nb.writeSeconds), redisNote: 'not measured', decimals: 0 },
    { metric: `${backlogLabel}: first delivery after heal (ms)`, strait: single(b?.reconnectMs), nats: single(nb?.reconnectMs), redisNote: 'not measured', decimals: 0 },
    { metric: `${backlogLabel}: drain rate from heal (events/s)`, strait: single(b?.drainPerSecondFromHeal), nats: single(nb?.drainPerSecondFromHeal), redisNote: 'not measured', decimals: 0 },
    { metric: `${backlogLabel}: drain rate from first delivery (events/s)`, strait: single(b?.drainPerSecond), nats: single(nb?.drainPerSecond), redisNote: 'not measured', decimals: 0 },
    { metric: `${backlogLabel}: site-1 server RSS growth (MiB)`, strait: single(b === undefined ? undefined : b.rssGrowthBytes / MIB), decimals: 0 },
    { metric: `${backlogLabel}: site-1 server anonymous memory growth, RssAnon (MiB)`, strait: single(b === undefined ? undefined : b.anonymousGrowthBytes / MIB), decimals: 0 },
    { metric: `${backlogLabel}: sender queue bytes, peak (MiB)`, strait: single(b === undefined ? undefined : b.queueBytesPeak / MIB), decimals: 1 },
    { metric: `${backlogLabel}: events overflowed to disk, peak`, strait: single(b?.overflowEventsPeak), decimals: 0 },
    { metric: `${backlogLabel}: restart with it on disk, recovery (ms)`, strait: single(b?.recoveryMs), natsNote: 'not measured', decimals: 0 },
    { metric: `${backlogLabel}: restarted server's RssAnon above the first's before the backlog (MiB)`, strait: single(b === undefined ? undefined : b.restartAnonymousGrowthBytes / MIB), decimals: 0 },
  );
  return rows;
}

function judge(straitResults: StraitResults | undefined, redisResults: RedisResults | undefined, natsResults: NatsResults | undefined): Target[] {
  const s = straitResults;
  const targets: Target[] = [];
  const ratio = (label: string, strait: number | undefined, peer: number | undefined, minimum: number, peerName: string): Target => ({
    target: `${label} ≥ ${minimum}× ${peerName}`,
    met: strait === undefined || peer === undefined ? undefined : strait >= minimum * peer,
    detail: strait === undefined || peer === undefined ? `needs both Strait and ${peerName}` : `${rate(strait)} vs ${rate(peer)} (${(strait / peer).toFixed(2)}×)`,
  });
  const straitE2E = of(s?.small, (x) => x.endToEndPerSecond)?.median;
  const straitLarge = of(s?.large, (x) => x.endToEndPerSecond)?.median;
  targets.push(ratio('E2E throughput (100 B, serial persistent sender)', straitE2E, of(natsResults?.small, (x) => x.endToEndPerSecond)?.median, E2E_NATS_RATIO_MIN, 'NATS JetStream mirroring'));
  targets.push(ratio('E2E throughput (100 B)', straitE2E, of(redisResults?.small, (x) => x.endToEndPerSecond)?.median, E2E_REDIS_RATIO_MIN, 'Redis primary→replica'));
  targets.push(ratio('E2E throughput (1 KiB)', straitLarge, of(natsResults?.large, (x) => x.endToEndPerSecond)?.median, E2E_NATS_RATIO_MIN, 'NATS JetStream mirroring'));
  for (const [rtt, runs] of [[0, s?.lagHalf], [LAG_FAR_RTT_MS, s?.lagHalfFar]] as const) {
    const p99 = of(runs, (x) => x.p99Ms)?.median;
    const p999 = of(runs, (x) => x.p999Ms)?.median;
    const bound = SETTINGS.batchTimeIntervalMs + rtt + 5;
    targets.push({
      target: `lag p99 at half of peak, ${rtt} ms RTT ≤ batch-time-interval + RTT + 5 ms = ${bound} ms`,
      met: p99 === undefined ? undefined : p99 <= bound,
      detail: p99 === undefined ? 'not measured' : `p99 ${p99.toFixed(2)} ms (p99.9 ${p999?.toFixed(2)} ms) at ${rate(s!.lagHalfRate)}`,
    });
  }
  const zero = of(s?.small, (x) => x.endToEndPerSecond)?.median;
  const far = of(s?.roundTrip['100'], (x) => x.endToEndPerSecond)?.median;
  targets.push({
    target: `E2E throughput at 100 ms RTT ≥ ${RTT_THROUGHPUT_SHARE_MIN * 100}% of 0 ms`,
    met: zero === undefined || far === undefined ? undefined : far >= RTT_THROUGHPUT_SHARE_MIN * zero,
    detail: zero === undefined || far === undefined ? 'not measured' : `${rate(far)} vs ${rate(zero)} (${((far / zero) * 100).toFixed(0)}%)`,
  });
  const backlog = s?.backlog;
  const bound = SETTINGS.maximumQueueMemoryMegabytes * MIB + QUEUE_MEMORY_SLACK_BYTES;
  targets.push({
    target: `sender's RssAnon growth over the backlog ≤ maximum-queue-memory (${SETTINGS.maximumQueueMemoryMegabytes} MiB) + 64 MiB`,
    met: backlog === undefined ? undefined : backlog.anonymousGrowthBytes <= bound,
    detail: backlog === undefined
      ? 'not measured'
      : `site-1 server anonymous memory (RssAnon) grew ${formatNumber(backlog.anonymousGrowthBytes / MIB, 0)} MiB, RSS with LMDB's mapped file ${formatNumber(backlog.rssGrowthBytes / MIB, 0)} MiB (bound ${formatNumber(bound / MIB, 0)} MiB) over a ${formatNumber(backlog.events, 0)}-event backlog, restart and drain (maximum-heap-memory ${SERVER_HEAP_MEGABYTES}); ` +
        `queue ${formatNumber(backlog.queueBytesPeak / MIB, 1)} MiB of events, ${formatNumber(backlog.overflowEventsPeak, 0)} of them on disk at the peak`,
  });
  targets.push({
    target: 'restart with the backlog on disk stays within the same bound',
    met: backlog === undefined ? undefined : backlog.restartAnonymousGrowthBytes <= bound,
    detail: backlog === undefined ? 'not measured' : `the restarted server recovered ${formatNumber(backlog.recoveredEvents, 0)} events in ${formatNumber(backlog.recoveryMs, 0)} ms; its RssAnon ${formatNumber(backlog.restartAnonymousGrowthBytes / MIB, 0)} MiB from the first process's before the backlog`,
  });
  const drain = backlog?.drainPerSecondFromHeal;
  const natsDrain = natsResults?.backlog?.drainPerSecondFromHeal;
  targets.push(ratio('backlog drain after the heal (restarted sender)', drain, natsDrain, 1, 'NATS JetStream mirror catch-up'));
  return targets;
}



/** Why a peer was not measured, for the JSON and the table's empty column. */
function notMeasured(options: WanBenchOptions): string {
  return options.withoutPeers ? 'skipped with --without-peers' : 'not selected (--only)';
}

async function runComparison(cleanup: Cleanup, root: string, options: WanBenchOptions, args: readonly string[], peers: PeerTools): Promise<void> {
  const startedAt = new Date();
  const startedMs = performance.now();
  const cpuBusy = await measureCpuBusy(1000);
  const peerVersions = `${peers.redis?.version ?? `redis: ${notMeasured(options)}`}; ${peers.nats?.version ?? `nats-server: ${notMeasured(options)}`}`;
  const machine = describeMachine(peerVersions, cpuBusy);
  say(formatMachine(machine));
  if (options.withoutPeers) say('peers: skipped with --without-peers — Strait alone; the Redis and NATS columns and the ratios show —');
  say(`mode: ${options.quick ? 'QUICK (1 run of each figure, small event counts: indicative only)' : `full, ${options.runs} runs of each figure (median, min–max), backlog 1 run`}`);
  const wants = (system: string) => options.systems.includes(system as never);
  const direct = wants('strait') ? await measureStrait(cleanup, join(root, 'strait'), options) : undefined;
  const straitResults = direct === undefined ? undefined : {
    ...direct,
    routed: await measureStraitRouted(cleanup, join(root, 'strait'), options),
    parallel: await measureStraitParallel(cleanup, join(root, 'strait'), options),
    tls: await measureStraitTls(cleanup, join(root, 'strait'), options),
  };
  const rates = lagRates(straitResults === undefined ? undefined : spread(straitResults.small.map((run) => run.endToEndPerSecond)).median);
  const redisResults = peers.redis === undefined ? undefined : await measureRedis(cleanup, peers.redis, join(root, 'redis'), options, rates);
  const natsResults = peers.nats === undefined ? undefined : await measureNats(cleanup, peers.nats, join(root, 'nats'), options, rates);

  const rows = buildRows(straitResults, redisResults, natsResults, options);
  const targets = judge(straitResults, redisResults, natsResults);
  const seconds = (performance.now() - startedMs) / 1000;
  say('');
  say(formatWanTable(rows));
  say('');
  say('Targets (issue 11):');
  say(formatTargets(targets));
  const path = writeResults(`wan-${timestamp()}`, {
    kind: 'wan',
    startedAt: startedAt.toISOString(),
    seconds,
    arguments: args,
    options,
    machine,
    peers: {
      redis: peers.redis === undefined
        ? { skipped: notMeasured(options) }
        : { version: peers.redis.version, client: PEER_CLIENTS.redis(), benchmark: peers.redis.benchmark },
      nats: peers.nats === undefined ? { skipped: notMeasured(options) } : { version: peers.nats.version, client: PEER_CLIENTS.nats() },
    },
    source: await sourceState(),
    method: {
      strait: 'E2E = events from the first put at site 1 until the sender reports them acknowledged by site 2 (the receiver acknowledges a batch after applying it); 256 puts in flight from one client; keys cycle over 10 000',
      redis: `redis-benchmark -t set -P 64 -c 1 -r ${KEY_COUNT}; E2E = events from its start until the replica's slave_repl_offset reaches the primary's master_repl_offset (INFO replication through ioredis)`,
      nats: 'JetStream publishes with acknowledgement (nats.js js.publish), 256 in flight; E2E = until the mirror on the leaf reaches the last sequence (jsm.streams.info)',
      lag: 'stamped writes at a fixed rate from this process; Strait: subscribe() at site 2; Redis: keyspace notifications on the replica (ioredis psubscribe); NATS: a push consumer on the mirror (nats.js)',
    },
    strait: straitResults ?? { skipped: 'not selected (--only)' },
    redis: redisResults ?? { skipped: notMeasured(options) },
    nats: natsResults ?? { skipped: notMeasured(options) },
    table: rows,
    targets,
  });
  say(`\nresults: ${path} (${seconds.toFixed(0)} s)`);
}

function profilePath(directory: string | undefined): string {
  const files = directory !== undefined && existsSync(directory) ? readdirSync(directory).filter((file) => file.endsWith('.cpuprofile')) : [];
  if (directory === undefined || files.length !== 1) throw new Error(`expected one .cpuprofile in ${directory}, found ${files.length}`);
  return join(directory, files[0]!);
}

function readProfile(directory: string | undefined): CpuProfile {
  return JSON.parse(readFileSync(profilePath(directory), 'utf8')) as CpuProfile;
}

async function runProfileMode(cleanup: Cleanup, root: string, options: WanBenchOptions): Promise<void> {
  say('Profiling: site 1 and site 2 servers under node --cpu-prof (strait run server), sender through the proxy ...');
  const wan = await startStraitWan(cleanup, root, SETTINGS, true);
  let window: { fromMicros: number; toMicros: number };
  let events = 0;
  let seconds = 0;
  try {
    say(`  replicating ${formatNumber(options.profileAfterEvents, 0)} events before the profiled window ...`);
    await throughputRun(wan, options.profileAfterEvents, 100, options.inFlight, 0);
    await waitDrained(wan, 60_000);
    const before = (await senderStatus(wan)).eventsSent;
    const value = 'x'.repeat(100);
    let fromMicros = Number(process.hrtime.bigint() / 1000n);
    let started = performance.now();
    if (options.profileDrainEvents === undefined) {
      const endMs = performance.now() + options.profileSeconds * 1000;
      let index = 0;
      const loop = async (): Promise<void> => {
        while (performance.now() < endMs) await wan.regionA.put(`key:${index++ % KEY_COUNT}`, value);
      };
      await Promise.all(Array.from({ length: options.inFlight }, loop));
    } else {
      say(`  writing ${formatNumber(options.profileDrainEvents, 0)} events with the link cut, then profiling the drain ...`);
      await wan.proxy.partition();
      await pipelined(options.profileDrainEvents, options.inFlight, (index) => wan.regionA.put(`key:${index % KEY_COUNT}`, value));
      fromMicros = Number(process.hrtime.bigint() / 1000n);
      started = performance.now();
      await wan.proxy.heal();
    }
    await waitDrained(wan, 300_000);
    window = { fromMicros, toMicros: Number(process.hrtime.bigint() / 1000n) };
    seconds = (performance.now() - started) / 1000;
    events = (await senderStatus(wan)).eventsSent - before;
  } finally {
    await stopStraitWan(cleanup, wan);
  }
  const summaries: { name: string; summary: ProfileSummary }[] = [
    { name: 'site 1 server (client puts + gateway sender)', summary: summarizeProfile(readProfile(wan.serverA.profileDir), REPOSITORY_ROOT, 25, window) },
    { name: 'site 2 server (gateway receiver)', summary: summarizeProfile(readProfile(wan.serverB.profileDir), REPOSITORY_ROOT, 25, window) },
  ];
  say(`\n${formatNumber(events, 0)} events replicated in ${seconds.toFixed(1)} s = ${rate(events / seconds)} ${options.profileDrainEvents === undefined ? 'E2E' : 'drained from the heal'} while profiled (profiling slows both servers)`);
  for (const { name, summary } of summaries) say(`\n${formatProfile(name, summary, 20)}`);
  const path = writeResults(`wan-${timestamp()}-profile`, { kind: 'wan-profile', options, settings: SETTINGS, afterEvents: options.profileAfterEvents, events, seconds, profiles: summaries });
  // The whole profiles beside the summary, for Chrome DevTools (Performance → load) or line ticks.
  for (const [server, label] of [[wan.serverA, 'site1'], [wan.serverB, 'site2']] as const) {
    copyFileSync(profilePath(server.profileDir), path.replace(/\.json$/, `-${label}.cpuprofile`));
  }
  say(`\nresults: ${path} (and the -site1 / -site2 .cpuprofile files beside it)`);
}

async function main(args: readonly string[]): Promise<number> {
  let options: WanBenchOptions | undefined;
  try {
    options = parseWanOptions(args);
  } catch (error) {
    if (error instanceof WanUsageError) {
      process.stderr.write(`bench/wan: ${error.message}\n${WAN_USAGE}`);
      return 2;
    }
    throw error;
  }
  if (options === undefined) {
    say(WAN_USAGE);
    return 0;
  }
  const check = await ensurePeers(peersWanted(options), options.withoutPeers, machinePeerHost());
  if (check.kind === 'stop') {
    process.stderr.write(`bench/wan: ${check.message}\n`);
    return 1;
  }
  const peers = check.kind === 'ready' ? check.tools : {};
  const cleanup = new Cleanup();
  const root = mkdtempSync(join(tmpdir(), 'strait-wan-bench-'));
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) process.exit(1);
    interrupted = true;
    process.stderr.write(`bench/wan: ${signal}: stopping everything started ...\n`);
    void cleanup.stopAll().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let failed = false;
  try {
    if (options.profile) await runProfileMode(cleanup, root, options);
    else await runComparison(cleanup, root, options, args, peers);
    return 0;
  } catch (error) {
    failed = true;
    process.stderr.write(`bench/wan failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n(member logs are kept under ${root})\n`);
    return 1;
  } finally {
    await cleanup.stopAll();
    if (!failed) rmSync(root, { recursive: true, force: true, maxRetries: 3 });
  }
}

process.exitCode = await main(process.argv.slice(2));
// Client sockets and timers of the Node runtime may linger; everything started is stopped.
process.exit();
