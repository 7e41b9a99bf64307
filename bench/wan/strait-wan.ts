// Two Strait sites on this machine, replicating region BENCH from site 1 to site 2 through the
// WAN proxy, started exactly as a user does (`strait start`), and the measurements on them.
//
//   site 1: locator (site-id 1, remote-locators → site 2's locator) + one server hosting BENCH
//           with a serial, persistent gateway sender `to-site-2`.
//   site 2: locator (site-id 2, remote-locators → site 1's locator) + one server hosting BENCH
//           with a gateway receiver that binds 127.0.0.1:P (a one-port range) and advertises
//           127.0.0.2 (hostname-for-clients). The proxy listens on 127.0.0.2:P and forwards to
//           127.0.0.1:P, so every batch and acknowledgement crosses the proxy, while the
//           locators exchange their catalogues directly. (All of 127.0.0.0/8 is loopback.)
//
// "Applied at site 2" is read from the sender's `eventsSent`: the receiver acknowledges a batch
// only after it applied every event of it (src/core/server.ts onGatewayBatch).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ClientRegion, type StraitClient } from '../../src/client/client.ts';
import { connect } from '../../src/client/connect.ts';
import type { SenderStatus } from '../../src/protocol/messages.ts';
import { Cleanup, describeFailure, freePort } from '../processes.ts';
import { BENCH_REGION, makeCertificates, startMember, startProfiledServer, strait, tlsFlags, type StartedMember } from '../strait-site.ts';
import { anonymousResidentBytes, LagRecorder, pipelined, rateLimited, residentBytes, sentAt, stampedValue, waitUntil, type LagSummary, type RateRun } from './load.ts';
import { ProxyProcess } from './proxy-control.ts';

export const SENDER_ID = 'to-site-2';
/** The address the receiver advertises; the proxy listens there. */
export const ADVERTISED_RECEIVER_HOST = '127.0.0.2';
/** How long the sender may take to find and connect to site 2's receiver at the start. */
const SENDER_CONNECT_TIMEOUT_MS = 60_000;
/** Sender status is polled this often while waiting for events to arrive. */
const STATUS_POLL_INTERVAL_MS = 10;
/** Keys the writers cycle through, so regions (and memory) don't grow with the event count. */
export const KEY_COUNT = 10_000;

export interface SenderSettings {
  readonly batchSize: number;
  readonly batchTimeIntervalMs: number;
  readonly maximumQueueMemoryMegabytes: number;
  readonly persistent: boolean;
  /**
   * A parallel sender instead: BENCH is partitioned (no redundant copy) at both sites, site 1
   * runs `servers` servers, each dispatching the buckets it is primary of with
   * `dispatcherThreads` threads (order-policy partition).
   */
  readonly parallel?: { readonly servers: number; readonly dispatcherThreads: number };
}

/**
 * The servers' `maximum-heap-memory`, MiB: a limit sized as an operator would (the regions hold
 * 10,000 keys; a sender at most its 32 MiB of queue memory), so the backlog figure is the memory
 * a configured member takes (docs/CLI.md). Without one, Node's default (~4 GiB here) applies.
 */
export const SERVER_HEAP_MEGABYTES = 512;

export function siteAServerConfig(settings: SenderSettings): string {
  const parallel = settings.parallel;
  const region = parallel === undefined ? 'type: replicate' : 'type: partition, redundant-copies: 0';
  const kind = parallel === undefined ? 'parallel: false' : `parallel: true, dispatcher-threads: ${parallel.dispatcherThreads}, order-policy: partition`;
  return [
    `maximum-heap-memory: ${SERVER_HEAP_MEGABYTES}`,
    'regions:',
    `  ${BENCH_REGION}: { ${region}, persistent: false, gateway-sender-ids: [${SENDER_ID}] }`,
    'gateway-senders:',
    `  ${SENDER_ID}: { remote-site-id: 2, ${kind}, batch-size: ${settings.batchSize}, batch-time-interval: ${settings.batchTimeIntervalMs}, ` +
      `persistent: ${settings.persistent}, maximum-queue-memory: ${settings.maximumQueueMemoryMegabytes} }`,
    '',
  ].join('\n');
}

export function siteBServerConfig(receiverPort: number | string, advertisedHost = ADVERTISED_RECEIVER_HOST, partitioned = false): string {
  return [
    `maximum-heap-memory: ${SERVER_HEAP_MEGABYTES}`,
    'regions:',
    `  ${BENCH_REGION}: { type: ${partitioned ? 'partition, redundant-copies: 0' : 'replicate'}, persistent: false }`,
    `gateway-receiver: { start-port: ${receiverPort}, end-port: ${receiverPort}, bind-address: 127.0.0.1, hostname-for-clients: ${advertisedHost} }`,
    '',
  ].join('\n');
}

/**
 * The routed variant: the receiver advertises an address nobody reaches (TEST-NET-1), so after
 * one failed direct attempt the sender goes through the router, with no proxy on the way.
 */
export const UNREACHABLE_RECEIVER_HOST = '192.0.2.1';
const ROUTER_SECRET = 'bench-router-mesh-secret';

export interface ServerProcess {
  readonly name: string;
  readonly dir: string;
  readonly pid: number;
  readonly adminUrl: string;
  /** Where `node --cpu-prof` writes, when profiled. */
  readonly profileDir: string | undefined;
}

export interface StraitWan {
  readonly locatorA: StartedMember;
  readonly locatorB: StartedMember;
  /** Replaced when the backlog run restarts it. */
  serverA: ServerProcess;
  /** Every server of site 1 (more than serverA with a parallel sender). */
  serversA: ServerProcess[];
  readonly serverB: ServerProcess;
  readonly proxy: ProxyProcess;
  readonly receiverPort: number;
  readonly clientA: StraitClient;
  readonly clientB: StraitClient;
  readonly regionA: ClientRegion<string>;
  readonly commands: readonly string[];
  readonly cleanup: Cleanup;
}

async function runProfiledServer(cleanup: Cleanup, name: string, dir: string, locators: string): Promise<ServerProcess> {
  const server = await startProfiledServer(cleanup, name, dir, locators, SERVER_HEAP_MEGABYTES);
  if (server.httpAddress === undefined) throw new Error(`${name} reports no admin address; see ${join(dir, `${name}.log`)}`);
  return { name, dir, pid: server.pid, adminUrl: `http://${server.httpAddress.host}:${server.httpAddress.port}`, profileDir: server.profileDir };
}

async function startServer(cleanup: Cleanup, name: string, dir: string, locators: string, profiled: boolean, extraFlags: readonly string[] = [], https = false): Promise<ServerProcess> {
  if (profiled) return runProfiledServer(cleanup, name, dir, locators);
  const member = await startMember(cleanup, 'server', name, dir, ['--server-port', '0', '--locators', locators, ...extraFlags], https);
  return { name, dir, pid: member.pid, adminUrl: member.adminUrl, profileDir: undefined };
}

/** A port free on 127.0.0.1 with the proxy bound on 127.0.0.2 at the same number. */
async function proxyOnFreePort(cleanup: Cleanup): Promise<{ port: number; proxy: ProxyProcess }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = await freePort();
    try {
      const proxy = await ProxyProcess.start(cleanup, 'strait A→B', `${ADVERTISED_RECEIVER_HOST}:${port}`, `127.0.0.1:${port}`);
      return { port, proxy };
    } catch (error) {
      lastError = error;
    }
  }
  throw new Error(`could not bind the proxy on ${ADVERTISED_RECEIVER_HOST}: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
}

async function copyStatus(server: ServerProcess): Promise<SenderStatus> {
  const response = await fetch(`${server.adminUrl}/gateways/senders/${SENDER_ID}`);
  if (!response.ok) throw new Error(`GET ${server.adminUrl}/gateways/senders/${SENDER_ID} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as SenderStatus;
}

/**
 * The sender's status on site 1, from its servers' admin APIs: one copy's for a serial sender,
 * the sum over the copies (events sent, queued, in flight) for a parallel one.
 */
export async function senderStatus(wan: StraitWan): Promise<SenderStatus> {
  const copies = await Promise.all(wan.serversA.map(copyStatus));
  if (copies.length === 1) return copies[0]!;
  const sum = (pick: (status: SenderStatus) => number) => copies.reduce((total, status) => total + pick(status), 0);
  return {
    ...copies[0]!,
    connectedReceiver: copies.find((status) => status.connectedReceiver !== null)?.connectedReceiver ?? null,
    queueEvents: sum((status) => status.queueEvents), queueBytes: sum((status) => status.queueBytes), overflowEvents: sum((status) => status.overflowEvents),
    batchesInFlight: sum((status) => status.batchesInFlight), eventsSent: sum((status) => status.eventsSent),
    problem: copies.find((status) => status.problem !== null)?.problem ?? null,
  };
}

/** Starts `strait start router` on a free port; returns its host[port]. */
async function startRouter(cleanup: Cleanup, root: string): Promise<string> {
  const port = await freePort();
  const dir = join(root, 'wan-router');
  const result = await strait(['start', 'router', '--name', 'wan-router', '--dir', dir, '--port', String(port), '--bind-address', '127.0.0.1', '--json']);
  if (result.status !== 0) throw new Error(describeFailure('strait start router', result));
  const record = JSON.parse(result.stdout) as { pid: number };
  cleanup.add('router wan-router', record.pid, async () => {
    await strait(['stop', 'router', '--dir', dir, '--force']);
  });
  return `127.0.0.1[${port}]`;
}

/**
 * Starts both sites and the proxy; `profiled` runs the two servers under node --cpu-prof.
 * `routed`: every member registers with one router and site 2's receiver can't be reached
 * directly, so the batches go through the router (the proxy then carries nothing).
 */
export async function startStraitWan(cleanup: Cleanup, root: string, settings: SenderSettings, profiled = false, routed = false, tls = false): Promise<StraitWan> {
  const [portA, portB] = [await freePort(), await freePort()];
  // TLS: certificates as a user makes them, every member on TLS (the proxy relays TLS bytes).
  const certs = tls ? await makeCertificates(root, [1, 2]) : undefined;
  const secured = (site: number, role: 'locator' | 'server'): string[] => (certs === undefined ? [] : tlsFlags(certs, site, role));
  const trusting = certs === undefined ? {} : { tls: { ca: join(certs, 'ca.crt') } };
  const { port: receiverPort, proxy } = await proxyOnFreePort(cleanup);
  if (routed) process.env['STRAIT_ROUTER_SECRET'] = ROUTER_SECRET;
  const routers = routed ? ['--routers', await startRouter(cleanup, root)] : [];
  const locatorA = await startMember(cleanup, 'locator', 'wan-locator-1', join(root, 'wan-locator-1'), ['--port', String(portA), '--site-id', '1', ...(routed ? routers : ['--remote-locators', `127.0.0.1[${portB}]`]), ...secured(1, 'locator')], tls);
  const locatorB = await startMember(cleanup, 'locator', 'wan-locator-2', join(root, 'wan-locator-2'), ['--port', String(portB), '--site-id', '2', ...(routed ? routers : ['--remote-locators', `127.0.0.1[${portA}]`]), ...secured(2, 'locator')], tls);
  const dirA = join(root, 'wan-server-1');
  const dirB = join(root, 'wan-server-2');
  mkdirSync(dirA, { recursive: true });
  mkdirSync(dirB, { recursive: true });
  writeFileSync(join(dirA, 'strait.yaml'), siteAServerConfig(settings));
  writeFileSync(join(dirB, 'strait.yaml'), siteBServerConfig(receiverPort, routed ? UNREACHABLE_RECEIVER_HOST : ADVERTISED_RECEIVER_HOST, settings.parallel !== undefined));
  const serverB = await startServer(cleanup, 'wan-server-2', dirB, locatorB.address, profiled, [...routers, ...secured(2, 'server')], tls);
  const serverA = await startServer(cleanup, 'wan-server-1', dirA, locatorA.address, profiled, [...routers, ...secured(1, 'server')], tls);
  const serversA = [serverA];
  for (let index = 2; index <= (settings.parallel?.servers ?? 1); index++) {
    const dir = join(root, `wan-server-1-${index}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'strait.yaml'), siteAServerConfig(settings));
    serversA.push(await startServer(cleanup, `wan-server-1-${index}`, dir, locatorA.address, profiled, [...routers, ...secured(1, 'server')], tls));
  }
  const clientA = await connect({ locators: locatorA.address, name: 'wan-bench-writer', ...trusting });
  const clientB = await connect({ locators: locatorB.address, name: 'wan-bench-reader', ...trusting });
  const wan: StraitWan = {
    locatorA, locatorB, serverA, serversA, serverB, proxy, receiverPort, clientA, clientB, regionA: clientA.region<string>(BENCH_REGION), cleanup,
    commands: [
      `node bench/wan/proxy-process.ts --listen ${ADVERTISED_RECEIVER_HOST}:P --target 127.0.0.1:P   # = strait proxy; P = the receiver's port`,
      `strait start locator --name wan-locator-1 --dir <tmp>/wan-locator-1 --bind-address 127.0.0.1 --port <A> --site-id 1 --remote-locators 127.0.0.1[<B>]`,
      `strait start locator --name wan-locator-2 --dir <tmp>/wan-locator-2 --bind-address 127.0.0.1 --port <B> --site-id 2 --remote-locators 127.0.0.1[<A>]`,
      `strait start server --name wan-server-2 --dir <tmp>/wan-server-2 --bind-address 127.0.0.1 --server-port 0 --locators 127.0.0.1[<B>]   # strait.yaml: ${siteBServerConfig('P').replace(/\n/g, ' ').trim()}`,
      `strait start server --name wan-server-1 --dir <tmp>/wan-server-1 --bind-address 127.0.0.1 --server-port 0 --locators 127.0.0.1[<A>]   # strait.yaml: ${siteAServerConfig(settings).replace(/\n/g, ' ').trim()}`,
    ],
  };
  // Serial: the primary connects. Parallel: a copy connects once it dispatches a bucket, and
  // buckets exist once written — the first puts create them.
  if (settings.parallel !== undefined) await pipelined(KEY_COUNT, 64, (index) => wan.regionA.put(keys[index]!, 'warm'));
  const connected = await waitUntil(async () => (await Promise.all(wan.serversA.map(copyStatus))).every((status) => status.connectedReceiver !== null), SENDER_CONNECT_TIMEOUT_MS, 100);
  if (!connected) throw new Error(`sender ${SENDER_ID} did not connect to site 2's receiver within ${SENDER_CONNECT_TIMEOUT_MS} ms: ${(await senderStatus(wan)).problem ?? 'no problem reported'}`);
  return wan;
}

/** Stops the clients, servers (site 1 first), locators and the proxy. */
export async function stopStraitWan(cleanup: Cleanup, wan: StraitWan): Promise<void> {
  await wan.clientA.close().catch(() => {});
  await wan.clientB.close().catch(() => {});
  for (const server of wan.serversA) await cleanup.stop(server.pid);
  await cleanup.stop(wan.serverB.pid);
  await cleanup.stop(wan.locatorA.pid);
  await cleanup.stop(wan.locatorB.pid);
  await cleanup.stop(wan.proxy.pid);
}

/** Waits until the sender's queue is empty (what earlier phases wrote has arrived). */
export async function waitDrained(wan: StraitWan, timeoutMs: number): Promise<SenderStatus> {
  let status = await senderStatus(wan);
  const drained = await waitUntil(async () => {
    status = await senderStatus(wan);
    return status.queueEvents === 0 && status.batchesInFlight === 0;
  }, timeoutMs, 20);
  if (!drained) throw new Error(`sender ${SENDER_ID} still has ${status.queueEvents} events queued after ${timeoutMs} ms (${status.problem ?? 'no problem reported'})`);
  return status;
}

export interface ThroughputRun {
  readonly events: number;
  readonly valueBytes: number;
  readonly inFlight: number;
  readonly roundTripMs: number;
  /** Client puts acknowledged per second at site 1. */
  readonly putsPerSecond: number;
  /** Events from the first put at site 1 until the last one was applied at site 2, per second. */
  readonly endToEndPerSecond: number;
  /** From the last put's acknowledgement until the last event was applied at site 2. */
  readonly tailMs: number;
  /** The largest send window (batches) the sender's status showed during the run, and its last round trip (ms); null if none showed. */
  readonly windowBatchesMax: number | null;
  readonly windowRoundTripMs: number | null;
}

const keys = Array.from({ length: KEY_COUNT }, (_, index) => `key:${String(index).padStart(6, '0')}`);

/** The send window the sender's status showed, at its largest, while a run polled it. */
interface WindowSeen {
  batchesMax: number | null;
  roundTripMs: number | null;
}

function noteWindow(seen: WindowSeen, status: SenderStatus): void {
  const window = status.sendWindow;
  if (window === undefined) return;
  seen.batchesMax = Math.max(seen.batchesMax ?? 0, window.batches);
  if (window.rttMs !== null) seen.roundTripMs = window.rttMs;
}

/** Waits until the sender's eventsSent reaches `target`; the time it did, or NaN on timeout. */
async function waitForEventsSent(wan: StraitWan, target: number, timeoutMs: number, seen: WindowSeen): Promise<number> {
  let at = Number.NaN;
  await waitUntil(async () => {
    const status = await senderStatus(wan);
    noteWindow(seen, status);
    if (status.eventsSent >= target) {
      at = performance.now();
      return true;
    }
    return false;
  }, timeoutMs, STATUS_POLL_INTERVAL_MS);
  return at;
}

/** `events` puts of `valueBytes`-byte values, `inFlight` outstanding, until all are applied at site 2. */
export async function throughputRun(wan: StraitWan, events: number, valueBytes: number, inFlight: number, roundTripMs: number): Promise<ThroughputRun> {
  const before = await waitDrained(wan, 120_000);
  const value = 'x'.repeat(valueBytes);
  const startedMs = performance.now();
  const putSeconds = await pipelined(events, inFlight, (index) => wan.regionA.put(keys[index % KEY_COUNT]!, value));
  const putsDoneMs = performance.now();
  const seen: WindowSeen = { batchesMax: null, roundTripMs: null };
  const appliedMs = await waitForEventsSent(wan, before.eventsSent + events, 120_000 + events, seen);
  if (Number.isNaN(appliedMs)) throw new Error(`site 2 did not acknowledge ${events} events within the timeout (RTT ${roundTripMs} ms)`);
  return {
    events, valueBytes, inFlight, roundTripMs,
    putsPerSecond: events / putSeconds,
    endToEndPerSecond: events / ((appliedMs - startedMs) / 1000),
    tailMs: appliedMs - putsDoneMs,
    windowBatchesMax: seen.batchesMax,
    windowRoundTripMs: seen.roundTripMs,
  };
}

export interface LagRun extends LagSummary {
  readonly writer: RateRun;
  readonly expected: number;
}

let lagRunCounter = 0;

/**
 * Per-event replication lag: a rate-limited writer at site 1 puts values stamped with their
 * send time; a subscriber at site 2 (same process, same clock) takes the difference.
 */
export async function lagRun(wan: StraitWan, ratePerSecond: number, events: number, valueBytes: number): Promise<LagRun> {
  await waitDrained(wan, 120_000);
  const run = `lag${++lagRunCounter}`;
  const recorder = new LagRecorder(events);
  const abort = new AbortController();
  const subscription = wan.clientB.region<string>(BENCH_REGION).subscribe({ signal: abort.signal, bufferedEventsMax: 10_000_000 });
  await subscription.ready;
  let allArrived: () => void = () => {};
  const arrived = new Promise<void>((resolve) => (allArrived = resolve));
  const reading = (async () => {
    for await (const event of subscription) {
      if (event.kind === 'gap') continue;
      const sent = event.value === undefined ? undefined : sentAt(event.value, run);
      if (sent === undefined) continue;
      recorder.add(performance.now() - sent);
      if (recorder.events === events) allArrived();
    }
  })();
  try {
    const writer = await rateLimited(events, ratePerSecond, 4096, (index) => wan.regionA.put(keys[index % KEY_COUNT]!, stampedValue(run, performance.now(), valueBytes)));
    const timeout = sleep(30_000).then(() => 'timeout' as const);
    if ((await Promise.race([arrived.then(() => 'ok' as const), timeout])) === 'timeout') {
      process.stderr.write(`bench: lag run at ${ratePerSecond}/s: only ${recorder.events} of ${events} events reached site 2 within 30 s after the writer finished\n`);
    }
    return { ...recorder.summary(), writer, expected: events };
  } finally {
    abort.abort();
    await reading.catch(() => {});
  }
}

export interface BacklogSample {
  readonly atMs: number;
  readonly phase: 'partition' | 'restart' | 'drain';
  readonly rssBytes: number;
  readonly anonymousBytes: number;
  readonly queueEvents: number;
  readonly queueBytes: number;
  readonly overflowEvents: number;
  /** The primary's send window then (its read-ahead is two of them); null while it has none (a secondary, restarting). */
  readonly windowBatches: number | null;
}

export interface BacklogRun {
  readonly events: number;
  readonly valueBytes: number;
  readonly maximumQueueMemoryBytes: number;
  readonly writeSeconds: number;
  readonly writesPerSecond: number;
  readonly rssBeforeBytes: number;
  readonly rssPeakBytes: number;
  readonly rssGrowthBytes: number;
  /** Growth of anonymous memory (RssAnon): RSS without LMDB's file-mapped pages. */
  readonly anonymousGrowthBytes: number;
  /**
   * The server restarted during the partition, its backlog on disk: its RssAnon while it
   * recovers the queue and the 2 s after, above the first process's before the backlog.
   */
  readonly restartAnonymousGrowthBytes: number;
  /** From the restarted server's start until its sender reports the whole backlog queued. */
  readonly recoveryMs: number;
  readonly recoveredEvents: number;
  readonly queueBytesPeak: number;
  readonly overflowEventsPeak: number;
  /** From heal until the sender's first acknowledgement after it. */
  readonly reconnectMs: number;
  /** From heal until every backlog event was applied at site 2. */
  readonly drainFromHealMs: number;
  /** Events per second from heal until drained. */
  readonly drainPerSecondFromHeal: number;
  /** Events per second from the first acknowledgement after heal until drained. */
  readonly drainPerSecond: number;
  readonly samples: readonly BacklogSample[];
}

/**
 * Stops site 1's server (`strait stop`, a clean leave) while the link is cut and starts it again
 * from the same directory: its persistent queue is recovered from disk. Resolves once the
 * restarted sender reports at least the backlog it had queued.
 */
async function restartWithBacklog(wan: StraitWan, stopping: () => void, started: () => void): Promise<{ recoveryMs: number; recoveredEvents: number }> {
  if (wan.serversA.length !== 1) throw new Error('the backlog run restarts a serial sender\'s only server');
  const queued = (await senderStatus(wan)).queueEvents;
  const old = wan.serverA;
  stopping();
  await wan.cleanup.stop(old.pid);
  const restartStartedMs = performance.now();
  const restarted = await startServer(wan.cleanup, old.name, old.dir, wan.locatorA.address, false);
  wan.serverA = restarted;
  wan.serversA = [restarted];
  started();
  let recoveredEvents = 0;
  const recovered = await waitUntil(async () => {
    recoveredEvents = (await senderStatus(wan)).queueEvents;
    return recoveredEvents >= queued;
  }, 300_000, 50);
  if (!recovered) throw new Error(`the restarted server recovered ${recoveredEvents} of ${queued} queued events within 300 s`);
  return { recoveryMs: performance.now() - restartStartedMs, recoveredEvents };
}

/**
 * Cuts the link, writes `events` events at site 1 (pipelined), samples the site-1 server's RSS
 * and the sender's queue meanwhile, restarts the server with that backlog on disk (its memory
 * while it recovers is the restart figure), heals, and times the drain.
 */
export async function backlogRun(wan: StraitWan, events: number, valueBytes: number, inFlight: number, maximumQueueMemoryMegabytes: number): Promise<BacklogRun> {
  const before = await waitDrained(wan, 120_000);
  const rssBeforeBytes = await residentBytes(wan.serverA.pid);
  const anonymousBeforeBytes = await anonymousResidentBytes(wan.serverA.pid);
  const samples: BacklogSample[] = [];
  const startedMs = performance.now();
  let phase: BacklogSample['phase'] = 'partition';
  let sampling = true;
  let paused = false;
  const sampler = (async () => {
    while (sampling) {
      if (paused) {
        await sleep(50);
        continue;
      }
      const [rssBytes, anonymousBytes, status] = await Promise.all([residentBytes(wan.serverA.pid), anonymousResidentBytes(wan.serverA.pid), senderStatus(wan)]);
      samples.push({
        atMs: performance.now() - startedMs, phase, rssBytes, anonymousBytes,
        queueEvents: status.queueEvents, queueBytes: status.queueBytes, overflowEvents: status.overflowEvents,
        windowBatches: status.sendWindow?.batches ?? null,
      });
      await sleep(250);
    }
  })();
  try {
    await wan.proxy.partition();
    const value = 'x'.repeat(valueBytes);
    const writeSeconds = await pipelined(events, inFlight, (index) => wan.regionA.put(keys[index % KEY_COUNT]!, value));
    // Let the sampler see the whole backlog before the restart.
    await sleep(500);
    const { recoveryMs, recoveredEvents } = await restartWithBacklog(wan, () => {
      paused = true;
    }, () => {
      phase = 'restart';
      paused = false;
    });
    // The restarted server's memory while it recovers, and 2 s more.
    await sleep(2000);
    const restartSamples = samples.filter((sample) => sample.phase === 'restart');
    phase = 'drain';
    const healedMs = performance.now();
    await wan.proxy.heal();
    let firstAckMs = Number.NaN;
    let drainedMs = Number.NaN;
    // The restarted sender counts what it sent from 0.
    const target = recoveredEvents;
    await waitUntil(async () => {
      const status = await senderStatus(wan);
      if (Number.isNaN(firstAckMs) && status.eventsSent > 0) firstAckMs = performance.now();
      if (status.eventsSent >= target) {
        drainedMs = performance.now();
        return true;
      }
      return false;
    }, 300_000, 20);
    if (Number.isNaN(drainedMs)) throw new Error(`backlog of ${events} events not drained within 300 s of the heal`);
    const rssPeakBytes = Math.max(rssBeforeBytes, ...samples.map((sample) => sample.rssBytes).filter((bytes) => !Number.isNaN(bytes)));
    return {
      events, valueBytes,
      maximumQueueMemoryBytes: maximumQueueMemoryMegabytes * 1024 * 1024,
      writeSeconds,
      writesPerSecond: events / writeSeconds,
      rssBeforeBytes,
      rssPeakBytes,
      rssGrowthBytes: rssPeakBytes - rssBeforeBytes,
      anonymousGrowthBytes: Math.max(anonymousBeforeBytes, ...samples.map((sample) => sample.anonymousBytes).filter((bytes) => !Number.isNaN(bytes))) - anonymousBeforeBytes,
      restartAnonymousGrowthBytes: Math.max(0, ...restartSamples.map((sample) => sample.anonymousBytes).filter((bytes) => !Number.isNaN(bytes))) - anonymousBeforeBytes,
      recoveryMs,
      recoveredEvents,
      queueBytesPeak: Math.max(0, ...samples.map((sample) => sample.queueBytes)),
      overflowEventsPeak: Math.max(0, ...samples.map((sample) => sample.overflowEvents)),
      reconnectMs: firstAckMs - healedMs,
      drainFromHealMs: drainedMs - healedMs,
      drainPerSecondFromHeal: recoveredEvents / ((drainedMs - healedMs) / 1000),
      drainPerSecond: recoveredEvents / ((drainedMs - firstAckMs) / 1000),
      samples,
    };
  } finally {
    sampling = false;
    await sampler.catch(() => {});
    await wan.proxy.heal().catch(() => {});
  }
}
