// The NATS JetStream peer: two nats-servers with JetStream (domains `hub` and `leaf`, temp
// store directories), the leaf joined to the hub by a leafnode connection that goes through the
// WAN proxy; a stream BENCH on the hub and a mirror of it, MIRROR, on the leaf. Throughput:
// publishes with acknowledgements (256 in flight) at the hub until the mirror has them all; lag:
// a push consumer on the mirror; backlog: the proxy partitioned while publishing, then healed.
// Driven with the official NATS client (nats.js v3: @nats-io/transport-node for the connection,
// @nats-io/jetstream for publishes with acks, stream management, stream info and the consumer).

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy, DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, ReplayPolicy, RetentionPolicy, StorageType,
  type JetStreamClient, type JetStreamManager,
} from '@nats-io/jetstream';
import type { NatsTools } from '../peers.ts';
import { Cleanup, freePort, waitForExit } from '../processes.ts';
import { LagRecorder, pipelined, rateLimited, sentAt, stampedValue, waitUntil, type LagSummary, type RateRun } from './load.ts';
import { ProxyProcess } from './proxy-control.ts';

const NATS_READY_TIMEOUT_MS = 15_000;
const NATS_STOP_TIMEOUT_MS = 10_000;
const MIRROR_TIMEOUT_MS = 300_000;
const STREAM = 'BENCH';
const MIRROR = 'MIRROR';
/**
 * Messages the runs other than the backlog publish, at most: the streams keep the backlog plus
 * these. The limit must never be reached: past it a stream discards its oldest message on every
 * publish, and JetStream's file store then took ~2,750 publishes/s here instead of ~35,000 (a
 * 4M-message backlog with the old 3M limit), which is what kept a full run's 10M backlog from
 * finishing. `natsBacklogRun` checks that nothing was discarded.
 */
const MESSAGES_OUTSIDE_BACKLOG_MAX = 5_000_000;
/** Publishes the lag writer keeps awaiting their acknowledgement at most (as for Redis and Strait). */
const LAG_IN_FLIGHT_MAX = 4096;
/** Subjects the publishes cycle over, like Strait's keys. */
const SUBJECTS = 10_000;

export interface NatsWan {
  readonly hubPort: number;
  readonly leafPort: number;
  readonly proxy: ProxyProcess;
  readonly pids: readonly number[];
  readonly hub: NatsConnection;
  readonly leaf: NatsConnection;
  /** Publishes at the hub, with JetStream acknowledgements. */
  readonly hubJetStream: JetStreamClient;
  /** Stream info at the hub (the last sequence before a run). */
  readonly hubManager: JetStreamManager;
  /** The mirror's stream info and consumers at the leaf. */
  readonly leafJetStream: JetStreamClient;
  readonly leafManager: JetStreamManager;
  readonly commands: readonly string[];
}

/**
 * A connection to the nats-server on 127.0.0.1:`port` that does not reconnect: a dropped
 * connection fails the run instead of being retried behind its back.
 *
 * `noAsyncTraces` is a documented connection option (errors then lack the call site's context):
 * without it every request builds two Error objects up front, stack traces captured, in case it
 * fails (a RequestError and a TimeoutError). Profiled here, that was 48 % of the bench process's
 * CPU while publishing, and `js.publish` went from ~20k to 30–45k acknowledged publishes/s with
 * it. nats.js still builds one more per request (the RequestError its `cancel()` creates after
 * the reply arrived, 28 % of the CPU): that cost stays, as every nats.js user has it.
 */
function connectNats(port: number): Promise<NatsConnection> {
  return connect({ servers: `127.0.0.1:${port}`, name: 'strait-wan-bench', reconnect: false, noAsyncTraces: true });
}

async function startNatsServer(cleanup: Cleanup, tools: NatsTools, root: string, name: string, config: string, port: number): Promise<number> {
  const dir = join(root, `nats-${name}`);
  mkdirSync(join(dir, 'store'), { recursive: true });
  const configFile = join(dir, 'nats.conf');
  writeFileSync(configFile, config.replace('<STORE>', JSON.stringify(join(dir, 'store'))));
  const log = openSync(join(dir, 'nats.log'), 'a');
  const child = spawn(tools.server, ['-c', configFile], { stdio: ['ignore', log, log] });
  closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not run ${tools.server}`);
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  cleanup.add(`nats-server ${name} on port ${port}`, pid, async () => {
    if (exited) return;
    child.kill('SIGTERM');
    if (!(await waitForExit(pid, NATS_STOP_TIMEOUT_MS))) throw new Error(`nats-server ${name} did not exit after SIGTERM`);
  });
  const ready = await waitUntil(async () => {
    if (exited) throw new Error(`nats-server ${name} exited at start; see ${join(dir, 'nats.log')}`);
    try {
      await (await connectNats(port)).close();
      return true;
    } catch {
      return false;
    }
  }, NATS_READY_TIMEOUT_MS, 50);
  if (!ready) throw new Error(`nats-server ${name} on port ${port} not ready within ${NATS_READY_TIMEOUT_MS} ms`);
  return pid;
}

/** The stream's last sequence (`$JS.API.STREAM.INFO.<stream>`, one request). */
async function lastSequence(manager: JetStreamManager, stream: string): Promise<number> {
  return (await manager.streams.info(stream)).state.last_seq;
}

export async function startNatsWan(cleanup: Cleanup, tools: NatsTools, root: string, backlogEvents: number): Promise<NatsWan> {
  const hubPort = await freePort();
  const hubLeafnodePort = await freePort();
  const proxyPort = await freePort();
  const leafPort = await freePort();
  // The hub advertises the proxy as its leafnode URL: otherwise the leaf learns 127.0.0.1:<port>
  // from the hub's INFO and reconnects there directly after a partition, around the proxy.
  const hubConfig = `server_name: hub\nlisten: 127.0.0.1:${hubPort}\njetstream { store_dir: <STORE>, domain: hub }\nleafnodes { listen: 127.0.0.1:${hubLeafnodePort}, advertise: "127.0.0.2:${proxyPort}" }\n`;
  const leafConfig = `server_name: leaf\nlisten: 127.0.0.1:${leafPort}\njetstream { store_dir: <STORE>, domain: leaf }\nleafnodes { remotes: [ { url: "nats-leaf://127.0.0.2:${proxyPort}" } ] }\n`;
  const hubPid = await startNatsServer(cleanup, tools, root, 'hub', hubConfig, hubPort);
  const proxy = await ProxyProcess.start(cleanup, 'nats leafnode', `127.0.0.2:${proxyPort}`, `127.0.0.1:${hubLeafnodePort}`);
  const leafPid = await startNatsServer(cleanup, tools, root, 'leaf', leafConfig, leafPort);
  const hub = await connectNats(hubPort);
  const leaf = await connectNats(leafPort);
  const hubManager = await jetstreamManager(hub);
  const leafManager = await jetstreamManager(leaf);
  const limits = {
    storage: StorageType.File, retention: RetentionPolicy.Limits, discard: DiscardPolicy.Old, max_msgs: backlogEvents + MESSAGES_OUTSIDE_BACKLOG_MAX, num_replicas: 1,
  };
  await hubManager.streams.add({ name: STREAM, subjects: ['bench.>'], ...limits });
  // The leafnode connection may take a moment; the mirror is created once the hub's API answers through it.
  let created = false;
  let lastError: unknown;
  await waitUntil(async () => {
    try {
      await leafManager.streams.add({ name: MIRROR, ...limits, mirror: { name: STREAM, external: { api: '$JS.hub.API' } } });
      created = true;
    } catch (error) {
      lastError = error;
    }
    return created;
  }, NATS_READY_TIMEOUT_MS, 200);
  if (!created) throw new Error(`could not create the mirror on the leaf: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
  const hubJetStream = jetstream(hub);
  await hubJetStream.publish('bench.probe', 'probe');
  const mirrored = await waitUntil(async () => (await lastSequence(leafManager, MIRROR)) >= 1, 30_000, 50);
  if (!mirrored) throw new Error('the mirror on the leaf did not receive a probe message through the leafnode within 30 s');
  return {
    hubPort, leafPort, proxy, pids: [leafPid, hubPid], hub, leaf, hubJetStream, hubManager, leafJetStream: jetstream(leaf), leafManager,
    commands: [
      `nats-server -c hub.conf    # ${hubConfig.replace('<STORE>', '<tmp>').replace(/\n/g, '; ').trim()}`,
      `node bench/wan/proxy-process.ts --listen 127.0.0.2:<Q> --target 127.0.0.1:<hub leafnode port>   # = strait proxy`,
      `nats-server -c leaf.conf   # ${leafConfig.replace('<STORE>', '<tmp>').replace(/\n/g, '; ').trim()}`,
      `jetstreamManager(hub).streams.add(${STREAM}): subjects bench.>, file storage; jetstreamManager(leaf).streams.add(${MIRROR}): mirror ${STREAM} via external api $JS.hub.API`,
      'publish: jetstream(hub).publish(bench.<i>), 256 awaiting their JetStream ack; mirror progress: jetstreamManager(leaf).streams.info(MIRROR) (= $JS.API.STREAM.INFO.MIRROR)',
      `lag: a push consumer on ${MIRROR} (deliver policy new, no acks) through js.consumers.getPushConsumer().consume(); at most ${LAG_IN_FLIGHT_MAX} publishes in flight`,
    ],
  };
}

export async function stopNatsWan(cleanup: Cleanup, wan: NatsWan): Promise<void> {
  await Promise.all([wan.hub.close(), wan.leaf.close()]);
  for (const pid of wan.pids) await cleanup.stop(pid);
  await cleanup.stop(wan.proxy.pid);
}

/** Waits until the mirror's last sequence reaches `target`; the time it did, NaN on timeout. */
async function waitMirrored(wan: NatsWan, target: number, onProgress?: (sequence: number) => void): Promise<number> {
  let at = Number.NaN;
  await waitUntil(async () => {
    const sequence = await lastSequence(wan.leafManager, MIRROR);
    onProgress?.(sequence);
    if (sequence >= target) {
      at = performance.now();
      return true;
    }
    return false;
  }, MIRROR_TIMEOUT_MS, 10);
  return at;
}

export interface NatsThroughputRun {
  readonly events: number;
  readonly valueBytes: number;
  readonly roundTripMs: number;
  /** Acknowledged publishes per second at the hub. */
  readonly publishPerSecond: number;
  /** From the first publish until the mirror had them all, per second. */
  readonly endToEndPerSecond: number;
  /** From the last publish acknowledgement until the mirror had them all. */
  readonly catchUpMs: number;
}

/**
 * One JetStream publish awaiting its acknowledgement; `js.publish` rejects a refused one. nats.js
 * gives every publish its own request (a reply subject on the connection's shared inbox, a
 * promise, a timeout timer) and an empty header block (HPUB), where the hand-written client sent
 * a bare PUB without a timer: that is what a nats.js user pays per acknowledged publish, so it is
 * part of the figure. The depth is the caller's (`pipelined` keeps `inFlight` outstanding, 256,
 * as before); nats.js buffers what is published together and writes it at once (a microtask
 * later), as the hand-written client did per tick.
 */
function publish(wan: NatsWan, index: number, payload: Uint8Array | string): Promise<unknown> {
  return wan.hubJetStream.publish(`bench.${index % SUBJECTS}`, payload);
}

export async function natsThroughputRun(wan: NatsWan, events: number, valueBytes: number, inFlight: number, roundTripMs: number): Promise<NatsThroughputRun> {
  const before = await lastSequence(wan.hubManager, STREAM);
  if (Number.isNaN(await waitMirrored(wan, before))) throw new Error('the mirror did not catch up before the run');
  const payload = Buffer.from('x'.repeat(valueBytes));
  const startedMs = performance.now();
  const seconds = await pipelined(events, inFlight, (index) => publish(wan, index, payload));
  const publishedMs = performance.now();
  const mirroredMs = await waitMirrored(wan, before + events);
  if (Number.isNaN(mirroredMs)) throw new Error(`the mirror did not receive ${events} messages within ${MIRROR_TIMEOUT_MS} ms`);
  return {
    events, valueBytes, roundTripMs,
    publishPerSecond: events / seconds,
    endToEndPerSecond: events / ((mirroredMs - startedMs) / 1000),
    catchUpMs: mirroredMs - publishedMs,
  };
}

export interface NatsLagRun extends LagSummary {
  readonly writer: RateRun;
  readonly expected: number;
}

let lagRunCounter = 0;

/**
 * Stamped publishes at a fixed rate at the hub; lag until a push consumer on the mirror delivers
 * them (created with jetstreamManager, deliver policy new, no acks; consumed through
 * `js.consumers.getPushConsumer`, each message handed to a callback as it is read).
 */
export async function natsLagRun(wan: NatsWan, ratePerSecond: number, events: number, valueBytes: number): Promise<NatsLagRun> {
  const before = await lastSequence(wan.hubManager, STREAM);
  await waitMirrored(wan, before);
  const run = `lag${++lagRunCounter}`;
  const recorder = new LagRecorder(events);
  let allArrived: () => void = () => {};
  const arrived = new Promise<void>((resolve) => (allArrived = resolve));
  const consumer = await wan.leafManager.consumers.add(MIRROR, {
    name: run,
    deliver_subject: `deliver.${run}`,
    deliver_policy: DeliverPolicy.New,
    ack_policy: AckPolicy.None,
    replay_policy: ReplayPolicy.Instant,
    max_ack_pending: -1,
  });
  try {
    const pushConsumer = await wan.leafJetStream.consumers.getPushConsumer(MIRROR, consumer.name);
    const messages = await pushConsumer.consume({
      callback: (message) => {
        const sent = sentAt(message.string(), run);
        if (sent === undefined) return;
        recorder.add(performance.now() - sent);
        if (recorder.events === events) allArrived();
      },
    });
    try {
      // The subscription is at the leaf before the first publish.
      await wan.leaf.flush();
      const writer = await rateLimited(events, ratePerSecond, LAG_IN_FLIGHT_MAX,
        (index) => publish(wan, index, stampedValue(run, performance.now(), valueBytes)));
      const finished = await Promise.race([arrived.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 30_000))]);
      if (!finished) process.stderr.write(`bench: nats lag run: ${recorder.events} of ${events} messages within 30 s\n`);
      return { ...recorder.summary(), writer, expected: events };
    } finally {
      messages.stop();
    }
  } finally {
    await wan.leafManager.consumers.delete(MIRROR, consumer.name).catch(() => {});
  }
}

export interface NatsBacklogRun {
  readonly events: number;
  readonly valueBytes: number;
  readonly writeSeconds: number;
  readonly reconnectMs: number;
  readonly drainFromHealMs: number;
  readonly drainPerSecondFromHeal: number;
  readonly drainPerSecond: number;
}

/** Partition, publish `events` at the hub, heal, and time the mirror's catch-up. */
export async function natsBacklogRun(wan: NatsWan, events: number, valueBytes: number, inFlight: number): Promise<NatsBacklogRun> {
  const before = await lastSequence(wan.hubManager, STREAM);
  await waitMirrored(wan, before);
  await wan.proxy.partition();
  try {
    const payload = Buffer.from('x'.repeat(valueBytes));
    const writeSeconds = await pipelined(events, inFlight, (index) => publish(wan, index, payload));
    const healedMs = performance.now();
    await wan.proxy.heal();
    let firstProgressMs = Number.NaN;
    const drainedMs = await waitMirrored(wan, before + events, (sequence) => {
      if (Number.isNaN(firstProgressMs) && sequence > before) firstProgressMs = performance.now();
    });
    if (Number.isNaN(drainedMs)) throw new Error(`the mirror did not catch up ${events} messages within ${MIRROR_TIMEOUT_MS} ms of the heal`);
    const { first_seq: first } = (await wan.hubManager.streams.info(STREAM)).state;
    if (first > 1) throw new Error(`the stream ${STREAM} discarded messages (its first is now ${first}): its limit was reached, so the figures would include JetStream's discarding; raise MESSAGES_OUTSIDE_BACKLOG_MAX`);
    return {
      events, valueBytes, writeSeconds,
      reconnectMs: firstProgressMs - healedMs,
      drainFromHealMs: drainedMs - healedMs,
      drainPerSecondFromHeal: events / ((drainedMs - healedMs) / 1000),
      drainPerSecond: events / ((drainedMs - firstProgressMs) / 1000),
    };
  } finally {
    await wan.proxy.heal().catch(() => {});
  }
}
