// WAN replication over the real network (Node runtime, loopback, free ports) in one process:
// sites of one locator and one or two servers each, joined by gateway senders and receivers.
// Covers discovery through remote-locators, one- and two-way replication, ring / mesh / DAG
// routing (exactly once, never back to the origin), a receiving server's outage, a sender
// failover after a crash, dead letters and their replay, and conflict resolution.
//
// Waiting is by polling with a deadline; nothing asserts on timing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeValue, type StraitClient } from '../client/client.ts';
import { connect } from '../client/connect.ts';
import type { RegionSpec, SenderStatus, VersionTag } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';
import { createNodeRuntime } from '../runtime/node/node-runtime.ts';
import {
  DEFAULT_TIMING, FRAME_BYTES_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT,
  type ConflictResolver, type GatewaySenderSpec, type MembershipTiming,
} from './config.ts';
import { Locator } from './locator.ts';
import { NO_METRICS } from './member-admin.ts';
import { compareTags } from './region.ts';
import { Server } from './server.ts';
import { CapturingLogger, started, type Running } from './cluster.test-support.ts';

const TIMING: MembershipTiming = { ...DEFAULT_TIMING, memberTimeoutMs: 1500, heartbeatIntervalMs: 250, discoveryTimeoutMs: 300 };
const REGION = 'TEST';
/** How long any one wait in these tests may take before it fails. */
const WAIT_MS = 30_000;

// ---- In-process members ----


function senderId(remoteSite: number): string {
  return `to-site-${remoteSite}`;
}

function senderSpec(remoteSite: number, persistent: boolean): GatewaySenderSpec {
  return {
    id: senderId(remoteSite), remoteSiteId: remoteSite, parallel: false, batchSize: 100, batchTimeIntervalMs: 20,
    maximumQueueMemoryMegabytes: 16, persistent, dispatcherThreads: 1, orderPolicy: 'key', batchConflation: false,
    manualStart: false, compression: false,
  };
}

interface ServerOptions {
  readonly name: string;
  readonly site: number;
  readonly locators: readonly Address[];
  /** Remote sites this server's gateway senders ship region TEST to. */
  readonly sendsTo?: readonly number[];
  readonly persistentQueues?: boolean;
  /** Whether the server hosts region TEST at all (default true). */
  readonly hostsRegion?: boolean;
  readonly persistentRegion?: boolean;
  /** Whether the server runs a gateway receiver (default true). */
  readonly receiver?: boolean;
  readonly storageDirectory?: string;
  readonly conflictResolver?: ConflictResolver;
}

/**
 * Members, clients and temp directories of one test; `close()` (in t.after) stops whatever is
 * still running even when the test failed half-way.
 */
class Cluster {
  private readonly members: Running<Locator | Server>[] = [];
  private readonly clients: StraitClient[] = [];
  private readonly directories: string[] = [];

  /** A fresh temp directory, removed on close. */
  directory(prefix: string): string {
    const directory = mkdtempSync(join(tmpdir(), `strait-wan-${prefix}-`));
    this.directories.push(directory);
    return directory;
  }

  async locator(name: string, site: number, port: number, remoteLocators: readonly Address[]): Promise<Running<Locator>> {
    const log = new CapturingLogger();
    const runtime = createNodeRuntime({ logger: log });
    const node = new Locator(runtime, {
      name, site, bind: { host: '127.0.0.1', port }, hostnameForClients: undefined, locators: [], remoteLocators, timing: TIMING,
      frameBytesMax: 64 * 1024, pid: undefined, httpAddress: undefined,
    }, NO_METRICS);
    const running = await started(node, runtime, log);
    this.members.push(running);
    return running;
  }

  async server(options: ServerOptions): Promise<Running<Server>> {
    const log = new CapturingLogger();
    const runtime = createNodeRuntime({ logger: log, ...(options.storageDirectory ? { storageDirectory: options.storageDirectory } : {}) });
    const sendsTo = options.sendsTo ?? [];
    const regions: RegionSpec[] = options.hostsRegion === false ? [] : [{
      name: REGION, type: 'replicate', persistent: options.persistentRegion ?? false,
      ...(sendsTo.length > 0 ? { gatewaySenderIds: sendsTo.map(senderId) } : {}),
    }];
    const node = new Server(runtime, {
      name: options.name, site: options.site, bind: { host: '127.0.0.1', port: 0 }, hostnameForClients: undefined, locators: options.locators,
      regions, timing: TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, valueBytesMax: VALUE_BYTES_MAX_DEFAULT,
      gatewaySenders: sendsTo.map((site) => senderSpec(site, options.persistentQueues ?? false)),
      gatewayReceiver: options.receiver === false ? undefined : { startPort: 0, endPort: 0, bindAddress: undefined, hostnameForClients: undefined, manualStart: false },
      conflictResolver: options.conflictResolver, pid: undefined, httpAddress: undefined,
    }, NO_METRICS);
    const running = await started(node, runtime, log);
    this.members.push(running);
    return running;
  }

  async client(locator: Running<Locator>, name: string): Promise<StraitClient> {
    const client = await connect({ role: 'admin', locators: [locator.address], name, requestTimeoutMs: 20_000 });
    this.clients.push(client);
    return client;
  }

  /** A clean stop: the member leaves its view. */
  async stop(member: Running<Locator | Server>): Promise<void> {
    this.forget(member);
    await new Promise<void>((resolve) => member.node.stop(() => member.runtime.close(() => resolve())));
  }

  /** Kills a member the hard way: no leave, connections reset (as kill -9 looks to peers). */
  async crash(member: Running<Locator | Server>): Promise<void> {
    this.forget(member);
    await new Promise<void>((resolve) => member.runtime.close(() => resolve()));
  }

  private forget(member: Running<Locator | Server>): void {
    const index = this.members.indexOf(member);
    if (index >= 0) this.members.splice(index, 1);
  }

  async close(): Promise<void> {
    for (const client of this.clients.splice(0)) await client.close().catch(() => {});
    // Servers first, then locators, each in reverse start order.
    const members = this.members.splice(0).reverse();
    const servers = members.filter((member) => member.node instanceof Server);
    const locators = members.filter((member) => member.node instanceof Locator);
    for (const member of [...servers, ...locators]) {
      await new Promise<void>((resolve) => member.node.stop(() => member.runtime.close(() => resolve()))).catch(() => {});
    }
    for (const directory of this.directories.splice(0)) rmSync(directory, { recursive: true, force: true });
  }
}

async function eventually(check: () => boolean | Promise<boolean>, what: string, describe?: () => string | Promise<string>, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting until ${what}${describe ? `: ${await describe()}` : ''}`);
}

function sleep(delayMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, delayMs));
}

// ---- Sites ----

interface Site {
  readonly id: number;
  readonly locator: Running<Locator>;
  readonly servers: Running<Server>[];
  client: StraitClient;
}

interface SitesOptions {
  /** Directed edges [from, to]: a gateway sender at `from` ships region TEST to `to`. */
  readonly edges: readonly (readonly [number, number])[];
  readonly serversPerSite?: number;
  readonly conflictResolver?: ConflictResolver;
}

/**
 * Starts sites 1..count, one locator each (site 1's is every other locator's remote locator),
 * and their servers, each hosting the senders of its site's outgoing edges and a
 * gateway receiver.
 */
async function startSites(cluster: Cluster, count: number, options: SitesOptions): Promise<Site[]> {
  const sites: Site[] = [];
  for (let id = 1; id <= count; id++) {
    // Every locator binds a port of its own choosing and names site 1's locator as its remote
    // locator; site 1 learns the others from their exchanges (transitive discovery). Picking
    // ports ahead so locators could name each other raced with other tests for those ports.
    const remote = id === 1 ? [] : [sites[0]!.locator.address];
    const locator = await cluster.locator(`s${id}-locator`, id, 0, remote);
    const servers: Running<Server>[] = [];
    for (let index = 1; index <= (options.serversPerSite ?? 1); index++) {
      servers.push(await cluster.server({
        name: `s${id}-server-${index}`, site: id, locators: [locator.address],
        sendsTo: options.edges.filter(([from]) => from === id).map(([, to]) => to),
        ...(options.conflictResolver ? { conflictResolver: options.conflictResolver } : {}),
      }));
    }
    sites.push({ id, locator, servers, client: await cluster.client(locator, `s${id}-client`) });
  }
  return sites;
}

function statuses(sites: readonly Site[]): SenderStatus[] {
  return sites.flatMap((site) => site.servers.flatMap((server) => server.node.senderStatuses()));
}

function describeSenders(sites: readonly Site[]): string {
  return statuses(sites).map((status) => `${status.member}/${status.id}: ${status.role} ${status.state}, ${status.queueEvents} queued, `
    + `receiver ${status.connectedReceiver ? `${status.connectedReceiver.host}:${status.connectedReceiver.port}` : 'none'}, problem ${status.problem}`).join('; ');
}

/** Every sender's primary is connected to a receiver of its remote site. */
function sendersConnected(sites: readonly Site[]): boolean {
  const primaries = statuses(sites).filter((status) => status.role === 'primary');
  const senderIds = new Set(statuses(sites).map((status) => `${status.member.split('-')[0]}/${status.id}`));
  return primaries.length === senderIds.size && primaries.every((status) => status.connectedReceiver !== null);
}

/** Every sender queue on every server is empty: each event was acknowledged by its remote site. */
function drained(sites: readonly Site[]): boolean {
  return statuses(sites).every((status) => status.queueEvents === 0);
}

/**
 * Every server's copy of the WAN catalogue knows every site with its receivers and its edges.
 * Routing decisions depend on it: a server that does not know the graph yet forwards anyway
 * (a harmless duplicate by design), which the exactly-once checks below would count.
 */
function cataloguesComplete(sites: readonly Site[], edges: readonly (readonly [number, number])[]): boolean {
  return sites.every((site) => site.servers.every((server) => {
    const known = server.node.knownSites();
    return sites.every((other) => {
      const entry = known.find((candidate) => candidate.site === other.id);
      const expected = edges.filter(([from]) => from === other.id).map(([, to]) => to).sort((a, b) => a - b);
      return entry !== undefined && entry.receivers === other.servers.length && JSON.stringify([...entry.edges].sort((a, b) => a - b)) === JSON.stringify(expected);
    });
  }));
}

/** A region's contents on one server, tombstones included, values decoded, sorted by key. */
function contents(server: Running<Server>): [string, unknown, VersionTag][] {
  const region = server.node.region(REGION);
  if (region === undefined) return [];
  return region.sortedKeys().map((key) => {
    const entry = region.entry(key)!;
    return [key, entry.value === null ? null : decodeValue(entry.value), entry.tag];
  });
}

function valueAt(server: Running<Server>, key: string): unknown {
  const bytes = server.node.region(REGION)?.get(key);
  return bytes === undefined ? undefined : decodeValue(bytes);
}

/** Sites reachable from `origin` along the edges, the origin excluded. */
function reachable(origin: number, edges: readonly (readonly [number, number])[]): Set<number> {
  const seen = new Set<number>([origin]);
  const frontier = [origin];
  while (frontier.length > 0) {
    const site = frontier.pop()!;
    for (const [from, to] of edges) {
      if (from === site && !seen.has(to)) {
        seen.add(to);
        frontier.push(to);
      }
    }
  }
  seen.delete(origin);
  return seen;
}

// ---- Tests ----

test('two sites by config: one way, then both ways once the reverse sender is added', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.close());
  // Site 2 names site 1's locator; site 1 learns site 2 from its exchange.
  const locator1 = await cluster.locator('s1-locator', 1, 0, []);
  const locator2 = await cluster.locator('s2-locator', 2, 0, [locator1.address]);
  const server1 = await cluster.server({ name: 's1-server', site: 1, locators: [locator1.address], sendsTo: [2] });
  let server2 = await cluster.server({ name: 's2-server', site: 2, locators: [locator2.address] });
  const client1 = await cluster.client(locator1, 's1-client');
  let client2 = await cluster.client(locator2, 's2-client');

  await client1.region(REGION).put('from-1', { site: 1 });
  await eventually(async () => (await client2.region(REGION).get('from-1')) !== undefined, 'site 2 reads the put made at site 1',
    () => JSON.stringify(server1.node.senderStatuses()));
  assert.deepEqual(await client2.region(REGION).get('from-1'), { site: 1 });
  const [status] = await client1.gatewaySenders(senderId(2));
  assert.equal(status?.role, 'primary');
  assert.equal(status?.remoteSite, 2);
  assert.notEqual(status?.connectedReceiver, null);
  assert.deepEqual(await client2.gatewaySenders(), [], 'site 2 has no sender yet');

  // Add the reverse sender: site 2's server restarts with it (and a fresh receiver port, which
  // site 1's sender must learn again through the locators).
  await cluster.stop(server2);
  server2 = await cluster.server({ name: 's2-server', site: 2, locators: [locator2.address], sendsTo: [1] });
  client2 = await cluster.client(locator2, 's2-client-2');
  await client2.region(REGION).put('from-2', { site: 2 });
  await eventually(async () => (await client1.region(REGION).get('from-2')) !== undefined, 'site 1 reads the put made at site 2',
    () => JSON.stringify(server2.node.senderStatuses()));
  assert.deepEqual(await client1.region(REGION).get('from-2'), { site: 2 });
  await client1.region(REGION).put('from-1-again', { site: 1 });
  await eventually(async () => (await client2.region(REGION).get('from-1-again')) !== undefined, 'site 2 reads a put made at site 1 after its restart',
    () => JSON.stringify(server1.node.senderStatuses()));
  // Neither event came back to the site that wrote it.
  assert.equal(server1.node.receiverStatistics.events, 1);
  assert.equal(server2.node.receiverStatistics.events, 1);
  assert.equal(server1.node.receiverStatistics.duplicates + server2.node.receiverStatistics.duplicates, 0);
});

const TOPOLOGIES: { name: string; sites: number; edges: [number, number][]; stronglyConnected: boolean }[] = [
  { name: 'ring of three', sites: 3, edges: [[1, 2], [2, 3], [3, 1]], stronglyConnected: true },
  { name: 'mesh of three', sites: 3, edges: [[1, 2], [1, 3], [2, 1], [2, 3], [3, 1], [3, 2]], stronglyConnected: true },
  { name: 'DAG of four (1→2, 1→3, 2→4, 3→4)', sites: 4, edges: [[1, 2], [1, 3], [2, 4], [3, 4]], stronglyConnected: false },
];

for (const topology of TOPOLOGIES) {
  test(`${topology.name}: every put reaches every reachable site exactly once and never returns to its origin`, async (t) => {
    const cluster = new Cluster();
    t.after(() => cluster.close());
    const sites = await startSites(cluster, topology.sites, { edges: topology.edges });
    await eventually(() => sendersConnected(sites) && cataloguesComplete(sites, topology.edges), 'every sender is connected and every server knows the whole graph',
      () => describeSenders(sites));

    const keysPerSite = 60;
    const writers = sites.filter((site) => topology.edges.some(([from]) => from === site.id));
    await Promise.all(writers.map((site) => Promise.all(Array.from({ length: keysPerSite }, (_, n) => site.client.region(REGION).put(`s${site.id}-k${n}`, { origin: site.id, n })))));

    // What each site must end with: its own keys and those of every writer that reaches it.
    const expectedKeys = new Map<number, string[]>();
    for (const site of sites) {
      const origins = writers.filter((writer) => writer.id === site.id || reachable(writer.id, topology.edges).has(site.id));
      expectedKeys.set(site.id, origins.flatMap((origin) => Array.from({ length: keysPerSite }, (_, n) => `s${origin.id}-k${n}`)).sort());
    }
    const sizesMatch = () => sites.every((site) => site.servers[0]!.node.region(REGION)!.size === expectedKeys.get(site.id)!.length);
    await eventually(() => drained(sites) && sizesMatch(), 'every queue drained and every site holds what reaches it',
      () => `${describeSenders(sites)}; sizes ${sites.map((site) => `${site.id}: ${site.servers[0]!.node.region(REGION)!.size}`).join(', ')}`);

    for (const site of sites) {
      const held = contents(site.servers[0]!);
      assert.deepEqual(held.map(([key]) => key), expectedKeys.get(site.id), `site ${site.id} holds exactly the keys of the sites that reach it`);
      for (const [key, value, tag] of held) {
        const origin = Number(key.slice(1, key.indexOf('-')));
        assert.deepEqual(value, { origin, n: Number(key.slice(key.indexOf('-k') + 2)) });
        assert.equal(tag[0], origin, `${key} at site ${site.id} carries its origin site's tag`);
      }
    }
    if (topology.stronglyConnected) {
      const first = contents(sites[0]!.servers[0]!);
      for (const site of sites.slice(1)) assert.deepEqual(contents(site.servers[0]!), first, `site ${site.id} holds the same contents as site 1`);
    }

    // Exactly once: no event arrived twice anywhere, none was refused, and each receiver took in
    // exactly the writes of the other sites that reach it — an event returning to its origin
    // (or arriving over two paths) would make a count larger.
    const receivedBy = new Map(sites.map((site) => [site.id, site.servers[0]!.node.receiverStatistics]));
    assert.equal([...receivedBy.values()].reduce((sum, statistics) => sum + statistics.duplicates, 0), 0, 'no duplicates anywhere');
    assert.equal([...receivedBy.values()].reduce((sum, statistics) => sum + statistics.refused, 0), 0, 'nothing refused');
    for (const site of sites) {
      const origins = writers.filter((writer) => writer.id !== site.id && reachable(writer.id, topology.edges).has(site.id));
      assert.equal(receivedBy.get(site.id)!.events, origins.length * keysPerSite,
        `site ${site.id} received the writes of sites ${origins.map((origin) => origin.id).join(', ') || 'none'} once each, none of its own`);
    }
  });
}

test('a receiving server stopped for a while: site 1 keeps writing; afterwards every key holds its last value', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.close());
  // Site 2 names site 1's locator; site 1 learns site 2 from its exchange.
  const locator1 = await cluster.locator('s1-locator', 1, 0, []);
  const locator2 = await cluster.locator('s2-locator', 2, 0, [locator1.address]);
  const server1 = await cluster.server({ name: 's1-server', site: 1, locators: [locator1.address], sendsTo: [2], receiver: false });
  // Site 2's only server keeps the region on disk, so what it had before the stop survives.
  const storage2 = cluster.directory('s2');
  const serverOptions2: ServerOptions = { name: 's2-server', site: 2, locators: [locator2.address], persistentRegion: true, storageDirectory: storage2 };
  let server2 = await cluster.server(serverOptions2);
  const client1 = await cluster.client(locator1, 's1-client');
  await eventually(() => server1.node.senderStatuses()[0]?.connectedReceiver != null, 'site 1 sender connects', () => JSON.stringify(server1.node.senderStatuses()));

  const keys = ['alpha', 'bravo', 'charlie', 'delta', 'echo'];
  const last = new Map<string, number>(keys.map((key) => [key, 0]));
  let writing = true;
  let written = 0;
  // Sequential per key; keys in parallel.
  const writers = keys.map(async (key) => {
    for (let n = 1; writing; n++) {
      await client1.region(REGION).put(key, n);
      last.set(key, n);
      written += 1;
      await sleep(60);
    }
  });
  try {
    await eventually(() => [...last.values()].every((n) => n >= 10), 'every key has 10 writes');
    await cluster.stop(server2);
    const atStop = written;
    await sleep(5000);
    assert.ok(written > atStop, 'site 1 kept writing while site 2 was down');
    server2 = await cluster.server(serverOptions2);
    const atRestart = new Map(last);
    await eventually(() => keys.every((key) => last.get(key)! >= atRestart.get(key)! + 5), 'every key has 5 more writes after the restart');
  } finally {
    writing = false;
    await Promise.all(writers);
  }
  assert.ok(written >= 200, `a few hundred puts (${written})`);

  const restarted = server2;
  await eventually(() => server1.node.senderStatuses()[0]!.queueEvents === 0 && keys.every((key) => valueAt(restarted, key) === last.get(key)),
    'site 2 holds the last value written at site 1 for every key',
    () => `${JSON.stringify(server1.node.senderStatuses())}; site 2 ${JSON.stringify(keys.map((key) => [key, valueAt(restarted, key), last.get(key)]))}`);
  assert.deepEqual(contents(restarted), contents(server1));
  const [status] = server1.node.senderStatuses();
  assert.equal(status?.deadLetters, 0);
  assert.ok(status!.eventsSent >= written, 'every write was shipped');
});

test('two servers host a persistent sender: the primary crashes mid-stream, the secondary takes over, nothing is lost', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.close());
  // Site 2 names site 1's locator; site 1 learns site 2 from its exchange.
  const locator1 = await cluster.locator('s1-locator', 1, 0, []);
  const locator2 = await cluster.locator('s2-locator', 2, 0, [locator1.address]);
  const site1 = [
    await cluster.server({ name: 's1-server-1', site: 1, locators: [locator1.address], sendsTo: [2], persistentQueues: true, receiver: false, storageDirectory: cluster.directory('s1a') }),
    await cluster.server({ name: 's1-server-2', site: 1, locators: [locator1.address], sendsTo: [2], persistentQueues: true, receiver: false, storageDirectory: cluster.directory('s1b') }),
  ];
  const server2 = await cluster.server({ name: 's2-server', site: 2, locators: [locator2.address] });
  const client1 = await cluster.client(locator1, 's1-client');
  const describe = () => JSON.stringify(site1.map((server) => server.node.senderStatuses()));
  await eventually(() => site1.some((server) => server.node.senderStatuses()[0]?.role === 'primary' && server.node.senderStatuses()[0]?.connectedReceiver != null),
    'a primary sender connects', describe);
  const primary = site1.find((server) => server.node.senderStatuses()[0]?.role === 'primary')!;
  const secondary = site1.find((server) => server !== primary)!;
  assert.equal(secondary.node.senderStatuses()[0]?.role, 'secondary');

  let writing = true;
  let written = 0;
  const workers = Array.from({ length: 4 }, async (_, worker) => {
    for (let n = 0; writing; n++) {
      await client1.region(REGION).put(`w${worker}-k${n % 25}`, { worker, n });
      written += 1;
    }
  });
  try {
    await eventually(() => written >= 150, '150 writes');
    await cluster.crash(primary);
    const atCrash = written;
    await eventually(() => written >= atCrash + 250, '250 more writes after the crash');
  } finally {
    writing = false;
    await Promise.all(workers);
  }

  await eventually(() => secondary.node.senderStatuses()[0]?.role === 'primary', 'the secondary becomes primary', describe);
  await eventually(() => secondary.node.senderStatuses()[0]!.queueEvents === 0 && JSON.stringify(contents(server2)) === JSON.stringify(contents(secondary)),
    'site 2 holds exactly what site 1 holds', () => `${describe()}; site 1 ${contents(secondary).length} entries, site 2 ${contents(server2).length}`);
  assert.deepEqual(contents(server2), contents(secondary));
  assert.equal(contents(server2).length, 100);
  assert.ok(secondary.node.senderStatuses()[0]!.eventsSent > 0, 'the new primary shipped the writes made after the crash');
  assert.equal(server2.node.receiverStatistics.refused, 0);
});

test('a receiving site without the region: events become dead letters, then arrive once the region exists and they are replayed', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.close());
  // Site 2 names site 1's locator; site 1 learns site 2 from its exchange.
  const locator1 = await cluster.locator('s1-locator', 1, 0, []);
  const locator2 = await cluster.locator('s2-locator', 2, 0, [locator1.address]);
  const server1 = await cluster.server({ name: 's1-server', site: 1, locators: [locator1.address], sendsTo: [2], receiver: false });
  const server2 = await cluster.server({ name: 's2-server', site: 2, locators: [locator2.address], hostsRegion: false });
  const client1 = await cluster.client(locator1, 's1-client');
  const client2 = await cluster.client(locator2, 's2-client');

  const keys = ['a', 'b', 'c', 'd', 'e'];
  for (const key of keys) await client1.region(REGION).put(key, `value-${key}`);
  const primaryStatus = async () => (await client1.gatewaySenders(senderId(2))).find((status) => status.role === 'primary');
  await eventually(async () => (await primaryStatus())?.deadLetters === keys.length, 'every event is a dead letter',
    () => JSON.stringify(server1.node.senderStatuses()));
  const status = await primaryStatus();
  assert.equal(status?.queueEvents, 0, 'dead letters are not in the queue');
  assert.equal(server2.node.region(REGION), undefined);
  assert.equal(server2.node.receiverStatistics.refused, keys.length);
  const [listed] = await client2.listRegions();
  assert.equal(listed, undefined, 'site 2 has no region');

  assert.equal(await client2.createRegion({ name: REGION, type: 'replicate', persistent: false }), true);
  const replayed = await client1.controlSender(senderId(2), 'replayDeadLetters');
  assert.deepEqual(replayed.map((member) => member.member), ['s1-server']);
  await eventually(() => keys.every((key) => valueAt(server2, key) === `value-${key}`), 'the replayed events arrive at site 2',
    () => JSON.stringify(server1.node.senderStatuses()));
  for (const key of keys) assert.equal(await client2.region(REGION).get(key), `value-${key}`);
  await eventually(async () => (await primaryStatus())?.deadLetters === 0 && (await primaryStatus())?.queueEvents === 0, 'the dead letters are gone');
  assert.deepEqual(contents(server2), contents(server1));
});

test('conflicting writes to the same keys at both sites converge to identical contents', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.close());
  const edges: [number, number][] = [[1, 2], [2, 1]];
  const sites = await startSites(cluster, 2, { edges });
  await eventually(() => sendersConnected(sites), 'both senders connect', () => describeSenders(sites));
  const [site1, site2] = sites as [Site, Site];

  const keys = Array.from({ length: 10 }, (_, n) => `key-${n}`);
  for (let round = 0; round < 10; round++) {
    await Promise.all([
      ...keys.map((key) => site1.client.region(REGION).put(key, `site-1 round ${round}`)),
      ...keys.map((key) => site2.client.region(REGION).put(key, `site-2 round ${round}`)),
    ]);
  }
  await eventually(() => drained(sites), 'every queue drained', () => describeSenders(sites));
  const held1 = contents(site1.servers[0]!);
  assert.equal(held1.length, keys.length);
  assert.deepEqual(contents(site2.servers[0]!), held1);
  for (const [, value] of held1) assert.match(String(value), /^site-[12] round 9$/, 'the winner is one of the last round');
});

/** Prefers the larger number whenever it was written; equal numbers (and deletes) by version tag. */
const largerNumberWins: ConflictResolver = (_key, existing, incoming) => {
  if (typeof existing.value === 'number' && typeof incoming.value === 'number' && existing.value !== incoming.value) {
    return incoming.value > existing.value ? 'incoming' : 'existing';
  }
  return compareTags(incoming.tag as VersionTag, existing.tag as VersionTag) > 0 ? 'incoming' : 'existing';
};

test('a custom conflict resolver (larger number wins) makes both sites converge to the maximum', async (t) => {
  const cluster = new Cluster();
  t.after(() => cluster.close());
  const sites = await startSites(cluster, 2, { edges: [[1, 2], [2, 1]], conflictResolver: largerNumberWins });
  await eventually(() => sendersConnected(sites), 'both senders connect', () => describeSenders(sites));
  const [site1, site2] = sites as [Site, Site];

  // The maximum is written first, so last-writer-wins would end elsewhere: smaller values
  // written concurrently at both sites afterwards.
  const keys = Array.from({ length: 10 }, (_, n) => `key-${n}`);
  const maximum = (index: number) => 1000 + index;
  for (const [index, key] of keys.entries()) await site1.client.region(REGION).put(key, maximum(index));
  for (let round = 0; round < 5; round++) {
    await Promise.all([
      ...keys.map((key, index) => site1.client.region(REGION).put(key, index * 10 + round)),
      ...keys.map((key, index) => site2.client.region(REGION).put(key, index * 10 + round + 500)),
    ]);
  }
  await eventually(() => drained(sites), 'every queue drained', () => describeSenders(sites));
  for (const site of sites) {
    for (const [index, key] of keys.entries()) assert.equal(valueAt(site.servers[0]!, key), maximum(index), `${key} at site ${site.id}`);
  }
  assert.deepEqual(contents(site2.servers[0]!), contents(site1.servers[0]!));
});
