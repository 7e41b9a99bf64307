// The NATS JetStream peer: two nats-servers with JetStream (domains `hub` and `leaf`, temp
// store directories), the leaf joined to the hub by a leafnode connection that goes through the
// WAN proxy; a stream BENCH on the hub and a mirror of it, MIRROR, on the leaf. Throughput:
// publishes with acknowledgements (256 in flight) at the hub until the mirror has them all; lag:
// a push consumer on the mirror; backlog: the proxy partitioned while publishing, then healed.

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cleanup, describeFailure, freePort, runCommand, waitForExit } from '../processes.ts';
import { LagRecorder, pipelined, rateLimited, sentAt, stampedValue, waitUntil, type LagSummary, type RateRun } from './load.ts';
import { NatsConnection } from './nats-client.ts';
import { ProxyProcess } from './proxy-control.ts';

export const NATS_SERVER = '/usr/sbin/nats-server';
const NATS_READY_TIMEOUT_MS = 15_000;
const NATS_STOP_TIMEOUT_MS = 10_000;
const MIRROR_TIMEOUT_MS = 300_000;
const STREAM = 'BENCH';
const MIRROR = 'MIRROR';
/** Messages each stream keeps at most (older ones are discarded), so the disk use stays bounded. */
const STREAM_MESSAGES_MAX = 3_000_000;

export async function findNats(): Promise<{ version: string } | { missing: string }> {
  for (const candidate of [NATS_SERVER, 'nats-server']) {
    try {
      const result = await runCommand(candidate, ['--version'], { timeoutMs: 10_000 });
      if (result.status === 0) return { version: result.stdout.trim() };
      return { missing: describeFailure(`${candidate} --version`, result) };
    } catch {
      // Try the next spelling.
    }
  }
  return { missing: 'nats-server is not installed (apt-get install -y nats-server)' };
}

export interface NatsWan {
  readonly hubPort: number;
  readonly leafPort: number;
  readonly proxy: ProxyProcess;
  readonly pids: readonly number[];
  readonly hub: NatsConnection;
  readonly leaf: NatsConnection;
  readonly commands: readonly string[];
}

async function startNatsServer(cleanup: Cleanup, root: string, name: string, config: string, port: number): Promise<number> {
  const dir = join(root, `nats-${name}`);
  mkdirSync(join(dir, 'store'), { recursive: true });
  const configFile = join(dir, 'nats.conf');
  writeFileSync(configFile, config.replace('<STORE>', JSON.stringify(join(dir, 'store'))));
  const log = openSync(join(dir, 'nats.log'), 'a');
  const child = spawn(NATS_SERVER, ['-c', configFile], { stdio: ['ignore', log, log] });
  closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not run ${NATS_SERVER}`);
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
      (await NatsConnection.open(port)).close();
      return true;
    } catch {
      return false;
    }
  }, NATS_READY_TIMEOUT_MS, 50);
  if (!ready) throw new Error(`nats-server ${name} on port ${port} not ready within ${NATS_READY_TIMEOUT_MS} ms`);
  return pid;
}

interface StreamInfo {
  readonly state: { readonly messages: number; readonly last_seq: number };
}

async function lastSequence(connection: NatsConnection, stream: string): Promise<number> {
  return (await connection.api<StreamInfo>(`$JS.API.STREAM.INFO.${stream}`, undefined)).state.last_seq;
}

export async function startNatsWan(cleanup: Cleanup, root: string): Promise<NatsWan> {
  const hubPort = await freePort();
  const hubLeafnodePort = await freePort();
  const proxyPort = await freePort();
  const leafPort = await freePort();
  // The hub advertises the proxy as its leafnode URL: otherwise the leaf learns 127.0.0.1:<port>
  // from the hub's INFO and reconnects there directly after a partition, around the proxy.
  const hubConfig = `server_name: hub\nlisten: 127.0.0.1:${hubPort}\njetstream { store_dir: <STORE>, domain: hub }\nleafnodes { listen: 127.0.0.1:${hubLeafnodePort}, advertise: "127.0.0.2:${proxyPort}" }\n`;
  const leafConfig = `server_name: leaf\nlisten: 127.0.0.1:${leafPort}\njetstream { store_dir: <STORE>, domain: leaf }\nleafnodes { remotes: [ { url: "nats-leaf://127.0.0.2:${proxyPort}" } ] }\n`;
  const hubPid = await startNatsServer(cleanup, root, 'hub', hubConfig, hubPort);
  const proxy = await ProxyProcess.start(cleanup, 'nats leafnode', `127.0.0.2:${proxyPort}`, `127.0.0.1:${hubLeafnodePort}`);
  const leafPid = await startNatsServer(cleanup, root, 'leaf', leafConfig, leafPort);
  const hub = await NatsConnection.open(hubPort);
  const leaf = await NatsConnection.open(leafPort);
  await hub.api(`$JS.API.STREAM.CREATE.${STREAM}`, { name: STREAM, subjects: ['bench.>'], storage: 'file', retention: 'limits', discard: 'old', max_msgs: STREAM_MESSAGES_MAX, num_replicas: 1 });
  // The leafnode connection may take a moment; the mirror is created once the hub's API answers through it.
  let created = false;
  let lastError: unknown;
  await waitUntil(async () => {
    try {
      await leaf.api(`$JS.API.STREAM.CREATE.${MIRROR}`, { name: MIRROR, storage: 'file', retention: 'limits', discard: 'old', max_msgs: STREAM_MESSAGES_MAX, num_replicas: 1, mirror: { name: STREAM, external: { api: '$JS.hub.API' } } });
      created = true;
    } catch (error) {
      lastError = error;
    }
    return created;
  }, NATS_READY_TIMEOUT_MS, 200);
  if (!created) throw new Error(`could not create the mirror on the leaf: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
  await hub.request('bench.probe', 'probe');
  const mirrored = await waitUntil(async () => (await lastSequence(leaf, MIRROR)) >= 1, 30_000, 50);
  if (!mirrored) throw new Error('the mirror on the leaf did not receive a probe message through the leafnode within 30 s');
  return {
    hubPort, leafPort, proxy, pids: [leafPid, hubPid], hub, leaf,
    commands: [
      `nats-server -c hub.conf    # ${hubConfig.replace('<STORE>', '<tmp>').replace(/\n/g, '; ').trim()}`,
      `node bench/wan/proxy-process.ts --listen 127.0.0.2:<Q> --target 127.0.0.1:<hub leafnode port>   # = strait proxy`,
      `nats-server -c leaf.conf   # ${leafConfig.replace('<STORE>', '<tmp>').replace(/\n/g, '; ').trim()}`,
      `$JS.API.STREAM.CREATE.${STREAM} (hub): subjects bench.>, file storage; $JS.API.STREAM.CREATE.${MIRROR} (leaf): mirror ${STREAM} via external api $JS.hub.API`,
      'publish: PUB bench.<i> with a reply inbox, 256 awaiting their JetStream ack; mirror progress: $JS.API.STREAM.INFO.MIRROR on the leaf',
    ],
  };
}

export async function stopNatsWan(cleanup: Cleanup, wan: NatsWan): Promise<void> {
  wan.hub.close();
  wan.leaf.close();
  for (const pid of wan.pids) await cleanup.stop(pid);
  await cleanup.stop(wan.proxy.pid);
}

/** Waits until the mirror's last sequence reaches `target`; the time it did, NaN on timeout. */
async function waitMirrored(wan: NatsWan, target: number, onProgress?: (sequence: number) => void): Promise<number> {
  let at = Number.NaN;
  await waitUntil(async () => {
    const sequence = await lastSequence(wan.leaf, MIRROR);
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

function acked(reply: Buffer): void {
  // {"stream":"BENCH","seq":N} or {"error":{...}}
  if (reply[2] !== 0x73) throw new Error(`JetStream publish refused: ${reply.toString('utf8').slice(0, 200)}`);
}

export async function natsThroughputRun(wan: NatsWan, events: number, valueBytes: number, inFlight: number, roundTripMs: number): Promise<NatsThroughputRun> {
  const before = await lastSequence(wan.hub, STREAM);
  if (Number.isNaN(await waitMirrored(wan, before))) throw new Error('the mirror did not catch up before the run');
  const payload = Buffer.from('x'.repeat(valueBytes));
  const startedMs = performance.now();
  const seconds = await pipelined(events, inFlight, async (index) => acked(await wan.hub.request(`bench.${index % 10_000}`, payload, 0)));
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

/** Stamped publishes at a fixed rate at the hub; lag until a push consumer on the mirror delivers them. */
export async function natsLagRun(wan: NatsWan, ratePerSecond: number, events: number, valueBytes: number): Promise<NatsLagRun> {
  const before = await lastSequence(wan.hub, STREAM);
  await waitMirrored(wan, before);
  const run = `lag${++lagRunCounter}`;
  const deliver = `deliver.${run}`;
  const recorder = new LagRecorder(events);
  let allArrived: () => void = () => {};
  const arrived = new Promise<void>((resolve) => (allArrived = resolve));
  const sid = wan.leaf.subscribe(deliver, (_subject, payload) => {
    const sent = sentAt(payload.toString('latin1'), run);
    if (sent === undefined) return;
    recorder.add(performance.now() - sent);
    if (recorder.events === events) allArrived();
  });
  const consumer = await wan.leaf.api<{ name: string }>(`$JS.API.CONSUMER.CREATE.${MIRROR}`, {
    stream_name: MIRROR,
    config: { deliver_subject: deliver, deliver_policy: 'new', ack_policy: 'none', replay_policy: 'instant', max_ack_pending: -1 },
  });
  try {
    const writer = await rateLimited(events, ratePerSecond, 4096, async (index) => acked(await wan.hub.request(`bench.${index % 10_000}`, stampedValue(run, performance.now(), valueBytes), 0)));
    const finished = await Promise.race([arrived.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 30_000))]);
    if (!finished) process.stderr.write(`bench: nats lag run: ${recorder.events} of ${events} messages within 30 s\n`);
    return { ...recorder.summary(), writer, expected: events };
  } finally {
    wan.leaf.unsubscribe(sid);
    await wan.leaf.api(`$JS.API.CONSUMER.DELETE.${MIRROR}.${consumer.name}`, undefined).catch(() => {});
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
  const before = await lastSequence(wan.hub, STREAM);
  await waitMirrored(wan, before);
  await wan.proxy.partition();
  try {
    const payload = Buffer.from('x'.repeat(valueBytes));
    const writeSeconds = await pipelined(events, inFlight, async (index) => acked(await wan.hub.request(`bench.${index % 10_000}`, payload, 0)));
    const healedMs = performance.now();
    await wan.proxy.heal();
    let firstProgressMs = Number.NaN;
    const drainedMs = await waitMirrored(wan, before + events, (sequence) => {
      if (Number.isNaN(firstProgressMs) && sequence > before) firstProgressMs = performance.now();
    });
    if (Number.isNaN(drainedMs)) throw new Error(`the mirror did not catch up ${events} messages within ${MIRROR_TIMEOUT_MS} ms of the heal`);
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
