// Parallel gateway senders in the simulator: two sites, a partitioned region at each, a parallel
// sender from site 1 to site 2. Each bucket's events leave from its primary; a crashed primary's
// buckets are taken over by their copies, which resend what they hold flagged possible-duplicate;
// a bucket that moves takes its queue along; a stopped copy hands its buckets over. Checked
// throughout: every acknowledged write reaches site 2 with its last value, and every event that
// reached site 2 twice was flagged possible-duplicate by its sender.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StraitClient, decodeValue } from '../client/client.ts';
import type { RegionSpec, SenderStatus } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';
import { advanceWithPromises } from '../sim/drive.ts';
import { checkingMetrics } from '../sim/checks.ts';
import { Simulator, type SimHost } from '../sim/simulator.ts';
import { FRAME_BYTES_MAX_DEFAULT, PARTITION_DEFAULTS, VALUE_BYTES_MAX_DEFAULT, type GatewayEventFilter, type GatewaySenderSpec, type MembershipTiming } from './config.ts';
import { Locator } from './locator.ts';
import { holds, mapOf } from './partition-map.ts';
import { Server } from './server.ts';

const TIMING: MembershipTiming = { memberTimeoutMs: 2000, heartbeatIntervalMs: 250, discoveryTimeoutMs: 500, requestTimeoutMs: 3000 };
const SENDER: GatewaySenderSpec = {
  id: 'to-2', remoteSiteId: 2, parallel: true, batchSize: 50, batchTimeIntervalMs: 20, maximumQueueMemoryMegabytes: 1, persistent: false,
  dispatcherThreads: 1, orderPolicy: 'partition', batchConflation: false, manualStart: false, compression: false,
};

function region(site: number): RegionSpec {
  return {
    name: 'P', type: 'partition', persistent: false, partition: { ...PARTITION_DEFAULTS, totalNumBuckets: 16 },
    ...(site === 1 ? { gatewaySenderIds: ['to-2'] } : {}),
  };
}

class TwoSites {
  readonly sim: Simulator;
  readonly failures: string[] = [];
  readonly servers = new Map<string, Server>();
  readonly hosts = new Map<number, SimHost[]>();
  private readonly locators = new Map<number, Address>();
  private clients = 0;

  private readonly sender: GatewaySenderSpec;

  private readonly eventFilters: ReadonlyMap<string, GatewayEventFilter> | undefined;

  constructor(seed: number, serversAtSite1: number, sender: Partial<GatewaySenderSpec> = {}, eventFilters?: ReadonlyMap<string, GatewayEventFilter>) {
    this.sender = { ...SENDER, ...sender };
    this.eventFilters = eventFilters;
    this.sim = new Simulator({ seed, log: 'collect', network: { baseDelayMs: 1, jitterMs: 2 } });
    const locatorHosts = [1, 2].map((site) => this.sim.host(`s${site}-locator`));
    for (const [index, host] of locatorHosts.entries()) this.locators.set(index + 1, { host: host.address, port: 10334 });
    for (const [index, host] of locatorHosts.entries()) {
      const site = index + 1;
      const address = this.locators.get(site)!;
      new Locator(host.runtime(), {
        name: host.name, site, bind: address, hostnameForClients: undefined, locators: [address],
        remoteLocators: [this.locators.get(3 - site)!], timing: TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, pid: undefined, httpAddress: undefined,
      }, checkingMetrics(host.name, this.failures)).start(() => {});
      this.hosts.set(site, []);
      for (let server = 1; server <= (site === 1 ? serversAtSite1 : 2); server++) this.addServer(site);
    }
  }

  addServer(site: number): SimHost {
    const list = this.hosts.get(site)!;
    const host = this.sim.host(`s${site}-server-${list.length + 1}`);
    list.push(host);
    this.startServer(site, host);
    return host;
  }

  startServer(site: number, host: SimHost): Server {
    const server = new Server(host.runtime(), {
      name: host.name, site, bind: { host: host.address, port: 40404 }, hostnameForClients: undefined, locators: [this.locators.get(site)!],
      regions: [region(site)], timing: TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, valueBytesMax: VALUE_BYTES_MAX_DEFAULT,
      gatewaySenders: site === 1 ? [this.sender] : [],
      gatewayReceiver: site === 2 ? { startPort: 5000, endPort: 5005, bindAddress: undefined, hostnameForClients: undefined, manualStart: false } : undefined,
      conflictResolver: undefined, pid: undefined, httpAddress: undefined, ...(this.eventFilters !== undefined ? { eventFilters: this.eventFilters } : {}),
    }, checkingMetrics(host.name, this.failures));
    this.servers.set(host.name, server);
    server.start(() => {});
    return server;
  }

  live(site: number): Server[] {
    return this.hosts.get(site)!.filter((host) => host.alive).map((host) => this.servers.get(host.name)!);
  }

  ready(): boolean {
    return [1, 2].every((site) => {
      const servers = this.live(site);
      return servers.every((server) => server.currentState === 'ready' && server.view?.id === servers[0]!.view?.id
        && server.view?.members.filter((member) => member.info.role === 'server').length === servers.length);
    });
  }

  client(site: number): StraitClient {
    const host = this.sim.host(`s${site}-client-${++this.clients}`);
    return new StraitClient(host.runtime(), [this.locators.get(site)!], { role: 'admin', locators: [this.locators.get(site)!], requestTimeoutMs: 30_000 }, undefined);
  }

  async waitFor(what: string, until: () => boolean, forMs = 60_000): Promise<void> {
    await advanceWithPromises(this.sim, this.sim.nowMs + forMs, until);
    if (!until()) throw new Error(`${what}: not within ${forMs} ms of virtual time (seed ${this.sim.seed})\n${this.sim.dumpLog().split('\n').slice(-60).join('\n')}`);
  }

  async settle<T>(promise: Promise<T>, forMs = 60_000): Promise<T> {
    let settled = false;
    promise.then(() => { settled = true; }, () => { settled = true; });
    await this.waitFor('a client call', () => settled, forMs);
    return promise;
  }

  statuses(): SenderStatus[] {
    return this.live(1).flatMap((server) => server.senderStatuses());
  }

  drained(): boolean {
    return this.statuses().every((status) => status.queueEvents === 0);
  }

  /** Site 2's value of `key`, read from the copies of its bucket (they must agree). */
  remoteValue(key: string): string | undefined {
    const servers = this.live(2);
    const view = servers[0]!.view!;
    const regionHere = servers[0]!.region('P')!;
    const assigned = mapOf(view.partitions, 'P')?.buckets[regionHere.bucketOf(key)] ?? null;
    if (assigned === null) return undefined;
    const values = servers.filter((server) => holds(assigned, server.admin.status().info.id)).map((server) => {
      const value = server.region('P')!.get(key);
      return value === undefined ? undefined : decodeValue<string>(value);
    });
    assert.ok(values.every((value) => value === values[0]), `site 2's copies of ${key} differ: ${values.join(' / ')}`);
    return values[0];
  }

  /** Receiver statistics summed over site 2. */
  received(): { events: number; duplicates: number; unflaggedDuplicates: number } {
    const total = { events: 0, duplicates: 0, unflaggedDuplicates: 0 };
    for (const server of this.live(2)) {
      const statistics = server.receiverStatistics;
      total.events += statistics.events;
      total.duplicates += statistics.duplicates;
      total.unflaggedDuplicates += statistics.unflaggedDuplicates;
    }
    return total;
  }
}

async function writeAll(sites: TwoSites, client: StraitClient, keys: readonly string[], suffix: string): Promise<void> {
  const region = client.region<string>('P');
  for (let start = 0; start < keys.length; start += 50) {
    await sites.settle(Promise.all(keys.slice(start, start + 50).map((key) => region.put(key, `${key}${suffix}`))));
  }
}

function assertDelivered(sites: TwoSites, keys: readonly string[], suffix: string): void {
  const missing = keys.filter((key) => sites.remoteValue(key) !== `${key}${suffix}`);
  assert.deepEqual(missing.slice(0, 5), [], `${missing.length} keys missing or stale at site 2`);
}

test('a parallel sender ships each bucket from its primary: every server dispatches its own buckets, every key arrives once', async () => {
  const sites = new TwoSites(1, 3);
  await sites.waitFor('both sites ready', () => sites.ready());
  await advanceWithPromises(sites.sim, sites.sim.nowMs + 6000);
  const client = sites.client(1);
  const keys = Array.from({ length: 400 }, (_, index) => `k${index}`);
  await writeAll(sites, client, keys, '');
  await sites.waitFor('queues drained', () => sites.drained());
  assertDelivered(sites, keys, '');
  const statuses = sites.statuses();
  assert.equal(statuses.length, 3);
  assert.ok(statuses.every((status) => status.role === 'primary' && (status.parallel?.dispatching ?? 0) > 0), JSON.stringify(statuses.map((status) => status.parallel)));
  assert.equal(statuses.reduce((sum, status) => sum + status.parallel!.dispatching, 0), 16, 'each of the 16 buckets dispatched by exactly one server');
  assert.equal(statuses.reduce((sum, status) => sum + status.parallel!.held, 0), 32, 'each bucket held by two');
  const received = sites.received();
  assert.equal(received.events, keys.length, 'each event sent once: no copy sent a bucket it does not dispatch');
  assert.equal(received.duplicates, 0);
  assert.deepEqual(sites.failures, []);
  await client.close();
});

test('a parallel sender\'s primary crashes mid-stream: its buckets\' copies take over and resend, flagged; nothing acknowledged is lost', async () => {
  for (const seed of [2, 3, 4]) {
    const sites = new TwoSites(seed, 3);
    await sites.waitFor('both sites ready', () => sites.ready());
    await advanceWithPromises(sites.sim, sites.sim.nowMs + 6000);
    const client = sites.client(1);
    const keys = Array.from({ length: 300 }, (_, index) => `k${index}`);
    await writeAll(sites, client, keys, '');
    // Site 2 unreachable for a while, so the queues hold a backlog when the crash comes.
    const site1 = [...sites.hosts.get(1)!.map((host) => host.name), 's1-locator'];
    const site2 = [...sites.hosts.get(2)!.map((host) => host.name), 's2-locator'];
    sites.sim.network.partition(site1, site2);
    const writing = writeAll(sites, client, keys, '-2');
    await advanceWithPromises(sites.sim, sites.sim.nowMs + 300);
    const victim = sites.hosts.get(1)![seed % 3]!;
    victim.crash();
    await sites.settle(writing);
    sites.sim.network.heal();
    await sites.waitFor('queues drained', () => sites.ready() && sites.drained(), 90_000);
    assertDelivered(sites, keys, '-2');
    const received = sites.received();
    assert.equal(received.unflaggedDuplicates, 0, `seed ${seed}: every event site 2 got twice was flagged possible-duplicate (${JSON.stringify(received)})`);
    assert.deepEqual(sites.failures, []);
    await client.close();
  }
});

test('a new copy of a bucket takes the bucket\'s queue along: after a rebalance the old holders crash, and the backlog still arrives', async () => {
  const sites = new TwoSites(5, 2);
  await sites.waitFor('both sites ready', () => sites.ready());
  await advanceWithPromises(sites.sim, sites.sim.nowMs + 6000);
  const client = sites.client(1);
  const keys = Array.from({ length: 300 }, (_, index) => `k${index}`);
  const site1 = () => [...sites.hosts.get(1)!.map((host) => host.name), 's1-locator'];
  const site2 = [...sites.hosts.get(2)!.map((host) => host.name), 's2-locator'];
  sites.sim.network.partition(site1(), site2);
  await writeAll(sites, client, keys, '');
  const third = sites.addServer(1);
  sites.sim.network.partition([third.name], site2);
  await sites.waitFor('three servers at site 1', () => sites.ready());
  await sites.settle(client.rebalance());
  const thirdId = sites.servers.get(third.name)!.admin.status().info.id;
  await sites.waitFor('the rebalance moved buckets to the third server', () => {
    const map = mapOf(sites.servers.get(third.name)!.view?.partitions, 'P')!;
    return map.buckets.filter((bucket) => bucket !== null && bucket.copies.includes(thirdId)).length >= 8
      && map.buckets.every((bucket) => bucket === null || bucket.pending.length === 0);
  });
  const moved = sites.servers.get(third.name)!.senderStatuses()[0]!;
  assert.ok(moved.queueEvents > 0, 'the third server copied the queues of the buckets it took');
  // Both original servers crash: for the buckets the third server holds, only its copy of the queue remains.
  const map = mapOf(sites.servers.get(third.name)!.view!.partitions, 'P')!;
  const onThird = keys.filter((key) => map.buckets[sites.servers.get(third.name)!.region('P')!.bucketOf(key)]!.copies.includes(thirdId));
  for (const host of sites.hosts.get(1)!.slice(0, 2)) host.crash();
  sites.sim.network.heal();
  await sites.waitFor('the third server drained', () => sites.live(1).every((server) => server.senderStatuses().every((status) => status.queueEvents === 0)), 90_000);
  assertDelivered(sites, onThird, '');
  assert.deepEqual(sites.failures, []);
  await client.close();
});

test('four dispatcher threads by partition with batch conflation: each bucket on one thread, only the latest of a key per batch, every key ends at its last value', async () => {
  const sites = new TwoSites(6, 2, { dispatcherThreads: 4, orderPolicy: 'partition', batchConflation: true, batchSize: 500 });
  await sites.waitFor('both sites ready', () => sites.ready());
  await advanceWithPromises(sites.sim, sites.sim.nowMs + 6000);
  const client = sites.client(1);
  const keys = Array.from({ length: 60 }, (_, index) => `k${index}`);
  // A backlog while site 2 is away, so batches fill and hold several versions of a key.
  sites.sim.network.partition([...sites.hosts.get(1)!.map((host) => host.name), 's1-locator'], [...sites.hosts.get(2)!.map((host) => host.name), 's2-locator']);
  for (let round = 1; round <= 8; round++) await writeAll(sites, client, keys, `-${round}`);
  sites.sim.network.heal();
  await sites.waitFor('queues drained', () => sites.drained(), 90_000);
  assertDelivered(sites, keys, '-8');
  const statuses = sites.statuses();
  const conflated = statuses.reduce((sum, status) => sum + (status.eventsConflated ?? 0), 0);
  const sent = statuses.reduce((sum, status) => sum + status.eventsSent, 0);
  assert.ok(conflated > 0, 'batches left superseded versions out');
  assert.equal(sent + conflated, keys.length * 8, `every event was either sent or conflated into a later one (${sent} sent, ${conflated} conflated)`);
  assert.equal(sites.received().events, sent, 'the remote site received only what was sent');
  assert.deepEqual(sites.failures, []);
  await client.close();
});

test('gateway event filters: beforeEnqueue keeps events out, beforeTransmit holds them back, afterAcknowledgement sees what arrived; a throwing filter loses nothing', async () => {
  let acknowledged = 0;
  const filters = new Map<string, GatewayEventFilter>([
    ['/filters/choose.ts', {
      beforeEnqueue: (event) => !event.key.startsWith('local-'),
      beforeTransmit: (event) => !event.key.startsWith('hold-'),
      afterAcknowledgement: () => { acknowledged += 1; },
    }],
    ['/filters/broken.ts', { beforeEnqueue: (event) => { if (event.key.endsWith('7')) throw new Error('broken filter'); return true; } }],
  ]);
  const sites = new TwoSites(7, 2, { eventFilters: ['/filters/choose.ts', '/filters/broken.ts'] }, filters);
  await sites.waitFor('both sites ready', () => sites.ready());
  await advanceWithPromises(sites.sim, sites.sim.nowMs + 6000);
  const client = sites.client(1);
  const shipped = Array.from({ length: 100 }, (_, index) => `k${index}`);
  const local = Array.from({ length: 20 }, (_, index) => `local-${index}`);
  const held = Array.from({ length: 20 }, (_, index) => `hold-${index}`);
  await writeAll(sites, client, [...shipped, ...local, ...held], '');
  await sites.waitFor('queues drained', () => sites.drained());
  assertDelivered(sites, shipped, '');
  assert.deepEqual([...local, ...held].filter((key) => sites.remoteValue(key) !== undefined), [], 'filtered events never reach site 2');
  assert.equal(acknowledged, shipped.length, 'afterAcknowledgement once per event the remote site applied (on its dispatcher)');
  const failures = sites.statuses().reduce((sum, status) => sum + (status.filterFailures ?? 0), 0);
  assert.equal(failures, 2 * 12, 'the broken filter threw on both copies for each key ending in 7 that the first filter passed (10 shipped, 2 held); those events still went');
  assert.deepEqual(sites.failures, []);
  await client.close();
});
