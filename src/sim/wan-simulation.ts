// A seeded simulation of several sites joined by gateway senders and receivers in a given
// topology, with a client writing at every site, server crashes (never the last replica of a
// site), partitions between sites and whole-site network outages. After healing and draining,
// the checkers assert:
//   - inside every site, all servers hold identical contents of the replicate region R, and
//     the copies of each bucket of the partitioned region Q (two per bucket, shipped by parallel
//     senders) hold identical entries;
//   - in a strongly connected topology (ring, mesh), every site holds identical contents, of R
//     and of Q;
//   - a write acknowledged at site X to a key only X writes is at every site X reaches, unless
//     superseded by a later write of the same writer;
//   - no event reached a site twice without the possible-duplicate flag (a resend is always
//     flagged; the first send may not be, when two copies overlap during a hand-over).

import { advanceWithPromises } from './drive.ts';
import { StraitClient, decodeValue } from '../client/client.ts';
import type { GatewaySenderSpec, LocatorConfig, MembershipTiming, RouterSettings, ServerConfig } from '../core/config.ts';
import { FRAME_BYTES_MAX_DEFAULT, PARTITION_DEFAULTS, VALUE_BYTES_MAX_DEFAULT } from '../core/config.ts';
import { mapOf } from '../core/partition-map.ts';
import { Locator } from '../core/locator.ts';
import { Router } from '../core/router.ts';
import { checkingMetrics, noteClientFailure, rebalanceWorker } from './checks.ts';
import { Server } from '../core/server.ts';
import type { RegionSpec } from '../protocol/messages.ts';
import type { Address, Runtime } from '../runtime/runtime.ts';
import type { SimHost } from './simulator.ts';
import { Simulator } from './simulator.ts';

export interface WanSimulationOptions {
  readonly seed: number;
  readonly sites: number;
  /** Directed edges [from, to]: a gateway sender at `from` ships to `to`. */
  readonly edges: readonly (readonly [number, number])[];
  readonly serversPerSite?: number;
  readonly workloadMs?: number;
  readonly faults?: boolean;
  readonly persistentQueues?: boolean;
  /**
   * Sites behind a NAT that lets connections out only: nothing outside can connect in, their
   * receivers dial out (`dial-out: true`) and their locators list the others, never the reverse.
   */
  readonly dialOutSites?: readonly number[];
  /**
   * Routers on the public network (each knows the next, the mesh closes by gossip), and the
   * sites whose members register with every one of them. A routed site is also behind a NAT
   * unless it is listed in `publicSites`.
   */
  readonly routers?: number;
  readonly routedSites?: readonly number[];
  readonly publicSites?: readonly number[];
  /** Dispatcher threads of every sender (serial ones by `thread`, parallel ones by `partition`), and batch conflation. */
  readonly dispatcherThreads?: number;
  readonly batchConflation?: boolean;
  readonly log?: 'silent' | 'collect' | 'print';
}

const TIMING: MembershipTiming = { memberTimeoutMs: 3000, heartbeatIntervalMs: 500, discoveryTimeoutMs: 1000, requestTimeoutMs: 4000 };
const LOCATOR_PORT = 10334;
const SERVER_PORT = 40404;
const RECEIVER_PORT = 5000;
const ROUTER_PORT = 12001;
const ROUTER_SECRET = 'simulated-mesh-secret';

interface SiteHosts {
  readonly id: number;
  readonly locator: SimHost;
  readonly servers: SimHost[];
  readonly client: SimHost;
}

interface Owned {
  lastAckedSeq: number;
}

export class WanSimulation {
  readonly sim: Simulator;
  private readonly options: Required<WanSimulationOptions>;
  private readonly sites: SiteHosts[] = [];
  private readonly locators = new Map<string, Locator>();
  private readonly servers = new Map<string, Server>();
  private readonly routerHosts: SimHost[] = [];
  private readonly routers = new Map<string, Router>();
  private readonly owned = new Map<string, Owned>();
  private readonly failures: string[] = [];
  /** Events receivers took without the possible-duplicate flag, as `site:region/key@tag`. */
  private readonly unflaggedArrivals = new Set<string>();
  readonly stats = { acked: 0, failed: 0, crashes: 0, partitions: 0, handovers: 0, routerCrashes: 0, rebalances: 0 };

  constructor(options: WanSimulationOptions) {
    this.options = {
      serversPerSite: 2, workloadMs: 15_000, faults: true, persistentQueues: true, dialOutSites: [], routers: 0, routedSites: [], publicSites: [],
      dispatcherThreads: 1, batchConflation: false,
      log: 'collect', ...options,
    };
    this.sim = new Simulator({ seed: options.seed, log: this.options.log, network: { baseDelayMs: 1, jitterMs: 2 } });
    for (let id = 1; id <= this.options.sites; id++) {
      const locator = this.sim.host(`s${id}-locator`);
      const servers = Array.from({ length: this.options.serversPerSite }, (_, index) => this.sim.host(`s${id}-server-${index + 1}`));
      const client = this.sim.host(`s${id}-client`);
      this.sites.push({ id, locator, servers, client });
      const routedBehindNat = this.options.routedSites.includes(id) && !this.options.publicSites.includes(id);
      if (this.options.dialOutSites.includes(id) || routedBehindNat) {
        this.sim.network.behindNat(`nat-site-${id}`, [locator.name, ...servers.map((server) => server.name), client.name]);
      }
    }
    for (let index = 1; index <= this.options.routers; index++) this.routerHosts.push(this.sim.host(`router-${index}`));
  }

  private routerAddress(host: SimHost): Address {
    return { host: host.address, port: ROUTER_PORT };
  }

  /** What a member of `site` registers with: every router, when the site is routed. */
  private routerSettings(site: number): RouterSettings | undefined {
    if (!this.options.routedSites.includes(site)) return undefined;
    return { addresses: this.routerHosts.map((host) => this.routerAddress(host)), secret: ROUTER_SECRET };
  }

  private startRouter(host: SimHost): void {
    if (host.alive && this.routers.has(host.name)) return;
    const index = this.routerHosts.indexOf(host);
    const next = this.routerHosts[(index + 1) % this.routerHosts.length]!;
    const router = new Router(host.runtime(), {
      name: host.name, bind: this.routerAddress(host), hostnameForClients: undefined,
      routers: next === host ? [] : [this.routerAddress(next)], secret: ROUTER_SECRET,
    });
    this.routers.set(host.name, router);
    router.start((result) => {
      if (!result.ok) this.failures.push(`${host.name}: ${result.error?.message}`);
    });
  }

  private dialsOut(site: number): boolean {
    return this.options.dialOutSites.includes(site);
  }

  /** A site reached only through the routers: nothing outside its NAT can dial it. */
  private behindRouters(site: number): boolean {
    return this.options.routedSites.includes(site) && !this.options.publicSites.includes(site);
  }

  private locatorAddress(site: number): Address {
    return { host: this.sites[site - 1]!.locator.address, port: LOCATOR_PORT };
  }

  /** Serial senders for region R (`to-site-N`) and parallel ones for region Q (`p-to-site-N`). */
  private senders(site: number): GatewaySenderSpec[] {
    return this.options.edges.filter(([from]) => from === site).flatMap(([, to]) => [false, true].map((parallel) => ({
      id: `${parallel ? 'p-' : ''}to-site-${to}`, remoteSiteId: to, parallel, batchSize: 50, batchTimeIntervalMs: 20,
      maximumQueueMemoryMegabytes: 1, persistent: this.options.persistentQueues, dispatcherThreads: this.options.dispatcherThreads,
      orderPolicy: parallel ? 'partition' as const : this.options.dispatcherThreads > 1 ? 'thread' as const : 'key' as const,
      batchConflation: this.options.batchConflation, manualStart: false, compression: site % 2 === 0,
    })));
  }

  private regions(site: number): RegionSpec[] {
    const ids = (parallel: boolean) => this.senders(site).filter((sender) => sender.parallel === parallel).map((sender) => sender.id);
    return [
      { name: 'R', type: 'replicate', persistent: false, gatewaySenderIds: ids(false) },
      { name: 'Q', type: 'partition', persistent: false, partition: { ...PARTITION_DEFAULTS, totalNumBuckets: 16, redundantCopies: 1 }, gatewaySenderIds: ids(true) },
    ];
  }

  private startLocator(site: SiteHosts): void {
    if (site.locator.alive && this.locators.has(site.locator.name)) return;
    // Each locator knows only the next site's locator that it can reach (not one behind a NAT):
    // the rest is learned transitively.
    let next = site.id;
    for (let step = 1; step < this.options.sites; step++) {
      const candidate = ((site.id + step - 1) % this.options.sites) + 1;
      if (!this.dialsOut(candidate) && !this.behindRouters(candidate)) {
        next = candidate;
        break;
      }
    }
    const config: LocatorConfig = {
      name: site.locator.name, site: site.id, bind: { host: site.locator.address, port: LOCATOR_PORT }, hostnameForClients: undefined,
      locators: [this.locatorAddress(site.id)], remoteLocators: next === site.id ? [] : [this.locatorAddress(next)],
      timing: TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, pid: undefined, httpAddress: undefined,
      ...(this.routerSettings(site.id) ? { routers: this.routerSettings(site.id)! } : {}),
    };
    const locator = new Locator(site.locator.runtime(), config, checkingMetrics(site.locator.name, this.failures));
    this.locators.set(site.locator.name, locator);
    locator.start((result) => {
      if (!result.ok) this.failures.push(`${site.locator.name}: ${result.error?.message}`);
    });
  }

  private startServer(site: SiteHosts, host: SimHost): void {
    if (host.alive && this.servers.has(host.name)) return;
    const config: ServerConfig = {
      name: host.name, site: site.id, bind: { host: host.address, port: SERVER_PORT }, hostnameForClients: undefined,
      locators: [this.locatorAddress(site.id)], regions: this.regions(site.id), timing: TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT,
      valueBytesMax: VALUE_BYTES_MAX_DEFAULT, gatewaySenders: this.senders(site.id),
      gatewayReceiver: {
        startPort: RECEIVER_PORT, endPort: RECEIVER_PORT + 5, bindAddress: undefined, hostnameForClients: undefined, manualStart: false,
        dialOut: this.dialsOut(site.id),
      },
      conflictResolver: undefined, pid: undefined, httpAddress: undefined,
      ...(this.routerSettings(site.id) ? { routers: this.routerSettings(site.id)! } : {}),
    };
    // Every event a receiver of this site takes: none may arrive unflagged twice (a resend is always flagged).
    const metrics = checkingMetrics(host.name, this.failures);
    metrics.receiverEvent = (region, key, tag, possibleDuplicate) => {
      if (possibleDuplicate) return;
      const event = `${site.id}:${region}/${key}@${tag.join('/')}`;
      if (this.unflaggedArrivals.has(event)) this.failures.push(`site ${site.id}: ${region}/${key} version ${tag.join('/')} arrived twice without the possible-duplicate flag`);
      else this.unflaggedArrivals.add(event);
    };
    const server = new Server(host.runtime(), config, metrics);
    this.servers.set(host.name, server);
    server.start((result) => {
      if (!result.ok) this.failures.push(`${host.name}: ${result.error?.message}`);
    });
  }

  /** Advances virtual time to `untilMs`, letting client promise chains run between events. */
  advance(untilMs: number, until?: () => boolean): Promise<void> {
    return advanceWithPromises(this.sim, untilMs, until);
  }

  private liveServers(site: SiteHosts): Server[] {
    return site.servers.filter((host) => host.alive && this.servers.has(host.name)).map((host) => this.servers.get(host.name)!);
  }

  private sitesReady(): boolean {
    for (const site of this.sites) {
      const locator = this.locators.get(site.locator.name);
      if (!site.locator.alive || locator === undefined || locator.admin.status().state !== 'ready') return false;
      const view = locator.admin.view();
      if (view === null || view.members.length !== 1 + site.servers.length || !view.members.every((member) => member.ready)) return false;
      for (const host of site.servers) {
        const server = this.servers.get(host.name);
        if (!host.alive || server === undefined || server.currentState !== 'ready' || server.view?.id !== view.id) return false;
      }
    }
    return true;
  }

  /** Every sender copy on every server has an empty queue and the primaries are connected. */
  private drained(): boolean {
    for (const server of this.servers.values()) {
      for (const status of server.senderStatuses()) if (status.queueEvents > 0) return false;
    }
    return true;
  }

  async run(): Promise<void> {
    const sim = this.sim;
    for (const host of this.routerHosts) sim.schedule(sim.random.int(300), () => this.startRouter(host));
    for (const site of this.sites) {
      sim.schedule(sim.random.int(500), () => this.startLocator(site));
      for (const host of site.servers) sim.schedule(200 + sim.random.int(1000), () => this.startServer(site, host));
    }
    await this.advance(30_000, () => this.sitesReady());
    if (!this.sitesReady()) throw this.failure('the sites did not form within 30 s');
    // Let WAN discovery spread the catalogue before writing.
    await this.advance(sim.nowMs + 6000);

    const end = sim.nowMs + this.options.workloadMs;
    const workers: Promise<void>[] = [];
    const clients: StraitClient[] = [];
    for (const site of this.sites) {
      const runtime = site.client.runtime();
      const client = new StraitClient(runtime, [this.locatorAddress(site.id)], { role: 'admin', locators: [this.locatorAddress(site.id)], name: site.client.name, requestTimeoutMs: 60_000 }, undefined);
      clients.push(client);
      for (let worker = 0; worker < 2; worker++) workers.push(this.workload(client, runtime, site.id, `site${site.id}.w${worker}`, end));
      // Buckets and primaries of Q move now and then: parallel senders' lanes change hands.
      if (this.options.faults) workers.push(rebalanceWorker(sim, client, runtime, end, this.stats));
    }
    if (this.options.faults) this.scheduleFaults(end);
    let done = false;
    void Promise.allSettled(workers).then(() => {
      done = true;
    });
    await this.advance(end + 120_000, () => done);
    if (!done) throw this.failure('client workers did not finish');

    sim.network.heal();
    for (const host of this.routerHosts) this.startRouter(host);
    for (const site of this.sites) {
      this.startLocator(site);
      for (const host of site.servers) this.startServer(site, host);
    }
    await this.advance(sim.nowMs + 60_000, () => this.sitesReady());
    if (!this.sitesReady()) throw this.failure('the sites did not recover after healing');
    await this.advance(sim.nowMs + 120_000, () => this.drained());
    if (!this.drained()) throw this.failure(`gateway queues did not drain: ${[...this.servers.values()].flatMap((server) => server.senderStatuses().map((status) => `${status.member}/${status.id}: ${status.queueEvents} queued, ${status.role}, ${status.state}, problem ${status.problem}`)).join('; ')}`);
    for (const client of clients) await client.close();
    this.check();
  }

  private async workload(client: StraitClient, runtime: Runtime, site: number, writer: string, end: number): Promise<void> {
    const random = this.sim.random;
    let seq = 0;
    while (this.sim.nowMs < end) {
      seq += 1;
      const shared = random.chance(0.3);
      const regionName = random.chance(0.5) ? 'R' : 'Q';
      const key = shared ? `shared-${random.int(5)}` : `${writer}-${random.int(6)}`;
      try {
        await client.region(regionName).put(key, { writer, seq, site });
        this.stats.acked += 1;
        if (!shared) {
          const owned = this.owned.get(`${regionName}/${key}`) ?? { lastAckedSeq: 0 };
          owned.lastAckedSeq = Math.max(owned.lastAckedSeq, seq);
          this.owned.set(`${regionName}/${key}`, owned);
        }
      } catch (error) {
        this.stats.failed += 1;
        noteClientFailure(writer, error, this.failures);
      }
      await new Promise<void>((resolve) => runtime.setTimer(5 + random.int(60), resolve));
    }
  }

  private scheduleFaults(end: number): void {
    const sim = this.sim;
    const random = sim.random;
    let at = 1000;
    while (sim.nowMs + at < end - 2000) {
      const kind = random.int(this.routerHosts.length > 0 ? 5 : 4);
      const site = random.pick(this.sites);
      if (kind === 4) {
        // A router dies mid-stream (its links reset), and comes back a while later.
        const victim = random.pick(this.routerHosts);
        const downMs = 1000 + random.int(5000);
        sim.schedule(at, () => {
          if (!victim.alive) return;
          this.stats.routerCrashes += 1;
          victim.crash();
          this.routers.delete(victim.name);
          sim.schedule(downMs, () => this.startRouter(victim));
        });
      } else if (kind === 3) {
        sim.schedule(at, () => this.restartSecondaryThenCrashPrimary(site));
      } else if (kind === 0) {
        const victim = random.pick(site.servers);
        const downMs = 500 + random.int(4000);
        sim.schedule(at, () => {
          const others = this.liveServers(site).filter((server) => server.currentState === 'ready' && server.admin.status().info.name !== victim.name);
          if (!victim.alive || others.length === 0 || this.lastCopyOnBucket(site, victim.name)) return;
          this.stats.crashes += 1;
          victim.crash();
          this.servers.delete(victim.name);
          sim.schedule(downMs, () => this.startServer(site, victim));
        });
      } else if (kind === 1) {
        const other = random.pick(this.sites.filter((candidate) => candidate !== site));
        const durationMs = 1000 + random.int(6000);
        sim.schedule(at, () => {
          this.stats.partitions += 1;
          const hosts = (s: SiteHosts) => [s.locator.name, ...s.servers.map((host) => host.name)];
          sim.network.partition(hosts(site), hosts(other));
          sim.schedule(durationMs, () => sim.network.heal());
        });
      } else {
        sim.schedule(at, () => sim.network.setLatency({ baseMs: 1 + random.int(40), jitterMs: 1 + random.int(10) }));
      }
      at += 1000 + random.int(3000);
    }
    sim.schedule(end - sim.nowMs, () => sim.network.setLatency({ baseMs: 1, jitterMs: 2 }));
  }

  /**
   * The sender-queue handover fault: with the site cut off from the others (so its senders'
   * queues hold a backlog), a secondary restarts — losing an in-memory queue — and once it
   * is ready the primary crashes. The restarted member must have been given the queue.
   */
  private restartSecondaryThenCrashPrimary(site: SiteHosts): void {
    const sim = this.sim;
    const live = site.servers.filter((host) => host.alive && this.servers.get(host.name)?.currentState === 'ready');
    if (live.length < 2 || this.options.edges.every(([from]) => from !== site.id)) return;
    const primaryHost = live.find((host) => this.servers.get(host.name)!.senderStatuses().some((status) => status.role === 'primary'));
    const secondary = live.find((host) => host !== primaryHost);
    if (primaryHost === undefined || secondary === undefined) return;
    this.stats.handovers += 1;
    const hosts = (s: SiteHosts) => [s.locator.name, ...s.servers.map((host) => host.name), s.client.name];
    const others = this.sites.filter((candidate) => candidate !== site).flatMap(hosts);
    sim.network.partition(hosts(site), others);
    secondary.crash();
    this.servers.delete(secondary.name);
    sim.schedule(200, () => this.startServer(site, secondary));
    const crashPrimaryOnceReady = (attempt: number): void => {
      const restarted = this.servers.get(secondary.name);
      // Ready, and holding ready copies of Q's buckets (not only pending ones) — else the crash
      // would take a bucket's last copy, which no simulation of a replicated grid may do.
      if ((restarted?.currentState !== 'ready' || this.lastCopyOnBucket(site, primaryHost.name)) && attempt < 100) {
        sim.schedule(100, () => crashPrimaryOnceReady(attempt + 1));
        return;
      }
      if (!primaryHost.alive || this.lastCopyOnBucket(site, primaryHost.name)) {
        sim.schedule(3000, () => sim.network.heal());
        return;
      }
      primaryHost.crash();
      this.servers.delete(primaryHost.name);
      sim.schedule(3000, () => {
        sim.network.heal();
        this.startServer(site, primaryHost);
      });
    };
    sim.schedule(1000, () => crashPrimaryOnceReady(0));
  }

  /** True when the server on `hostName` holds the only ready copy of a bucket of Q (or any is pending). */
  private lastCopyOnBucket(site: SiteHosts, hostName: string): boolean {
    const server = this.servers.get(hostName);
    const view = server?.view;
    if (server === undefined || view == null) return true;
    const id = server.admin.status().info.id;
    const map = mapOf(view.partitions, 'Q');
    return (map?.buckets ?? []).some((bucket) => bucket !== null && (bucket.pending.length > 0 || (bucket.copies.includes(id) && bucket.copies.length < 2)));
  }

  private reach(from: number): Set<number> {
    const seen = new Set([from]);
    const queue = [from];
    while (queue.length > 0) {
      const site = queue.shift()!;
      for (const [a, b] of this.options.edges) if (a === site && !seen.has(b)) { seen.add(b); queue.push(b); }
    }
    return seen;
  }

  private contents(server: Server, regionName = 'R'): Map<string, string> {
    const region = server.region(regionName)!;
    const result = new Map<string, string>();
    for (const key of region.keys()) {
      const entry = region.entry(key)!;
      result.set(key, `${Buffer.from(entry.value!).toString('hex')}@${entry.tag.join('/')}`);
    }
    return result;
  }

  /**
   * Site contents of Q, from the copies of each bucket (which must agree, and nobody else may
   * hold the bucket); every bucket created must have its two copies after the heal.
   */
  private partitionedContents(site: SiteHosts): Map<string, string> {
    const servers = this.liveServers(site);
    const view = servers[0]!.view!;
    const map = mapOf(view.partitions, 'Q');
    const byId = new Map(servers.map((server) => [server.admin.status().info.id, server]));
    const result = new Map<string, string>();
    for (const [index, bucket] of (map?.buckets ?? []).entries()) {
      if (bucket === null) continue;
      if (bucket.copies.length !== Math.min(2, servers.length) || bucket.pending.length > 0) throw this.failure(`site ${site.id}: Q bucket ${index} is ${JSON.stringify(bucket)} after the heal`);
      const copies = bucket.copies.map((id) => byId.get(id));
      if (copies.some((server) => server === undefined)) throw this.failure(`site ${site.id}: Q bucket ${index} names a server not live: ${JSON.stringify(bucket)}`);
      const entries = copies.map((server) => {
        const region = server!.region('Q')!;
        return region.bucketKeys(index).filter((key) => region.get(key) !== undefined).map((key) => `${key}=${Buffer.from(region.get(key)!).toString('hex')}@${region.entry(key)!.tag.join('/')}`).join('\n');
      });
      if (entries.some((text) => text !== entries[0])) throw this.failure(`site ${site.id}: the copies of Q bucket ${index} differ`);
      const region = copies[0]!.region('Q')!;
      for (const key of region.bucketKeys(index)) {
        const entry = region.entry(key)!;
        if (entry.value !== null) result.set(key, `${Buffer.from(entry.value).toString('hex')}@${entry.tag.join('/')}`);
      }
    }
    return result;
  }

  private failure(reason: string): Error {
    return new Error(`${reason} (seed ${this.sim.seed}); replay: npm run sim -- --wan --seed ${this.sim.seed} --verbose`);
  }

  check(): void {
    if (this.failures.length > 0) throw this.failure(this.failures.join('; '));
    const siteContents = new Map<number, Map<string, string>>();
    for (const site of this.sites) {
      const servers = this.liveServers(site);
      const reference = this.contents(servers[0]!);
      for (const server of servers.slice(1)) {
        const contents = this.contents(server);
        if (contents.size !== reference.size || [...reference].some(([key, value]) => contents.get(key) !== value)) {
          throw this.failure(`site ${site.id}: servers differ (${reference.size} vs ${contents.size} entries)`);
        }
      }
      siteContents.set(site.id, reference);
    }
    const partitioned = new Map(this.sites.map((site) => [site.id, this.partitionedContents(site)]));
    const stronglyConnected = this.sites.every((site) => this.reach(site.id).size === this.sites.length);
    if (stronglyConnected) {
      for (const [name, bySite] of [['R', siteContents], ['Q', partitioned]] as const) {
        const first = bySite.get(1)!;
        for (const [id, contents] of bySite) {
          for (const [key, value] of first) {
            if (contents.get(key) !== value) throw this.failure(`region ${name}: site ${id} and site 1 differ at ${key}: ${contents.get(key)?.split('@')[1] ?? 'missing'} vs ${value.split('@')[1]}`);
          }
          if (contents.size !== first.size) throw this.failure(`region ${name}: site ${id} holds ${contents.size} entries, site 1 ${first.size}`);
        }
      }
    }
    for (const [ownedKey, owned] of this.owned) {
      const [regionName, key] = ownedKey.split('/', 2) as [string, string];
      const writerSite = Number(/^site(\d+)\./.exec(key)![1]);
      for (const site of this.reach(writerSite)) {
        const contents = regionName === 'R' ? siteContents.get(site)! : partitioned.get(site)!;
        const value = contents.get(key);
        const written = value === undefined ? undefined : decodeValue<{ seq: number }>(Buffer.from(value.split('@')[0]!, 'hex'));
        if (written === undefined || written.seq < owned.lastAckedSeq) {
          throw this.failure(`site ${site}: ${ownedKey} holds seq ${written?.seq ?? 'nothing'} but site ${writerSite} acknowledged seq ${owned.lastAckedSeq}`);
        }
      }
    }

  }
}

export const TOPOLOGIES: Record<string, Pick<WanSimulationOptions, 'dialOutSites' | 'routers' | 'routedSites' | 'publicSites'> & { sites: number; edges: [number, number][] }> = {
  'two-way': { sites: 2, edges: [[1, 2], [2, 1]] },
  ring: { sites: 3, edges: [[1, 2], [2, 3], [3, 1]] },
  mesh: { sites: 3, edges: [[1, 2], [1, 3], [2, 1], [2, 3], [3, 1], [3, 2]] },
  dag: { sites: 4, edges: [[1, 2], [1, 3], [2, 4], [3, 4]] },
  chain: { sites: 3, edges: [[1, 2], [2, 3]] },
  // Site 2 is behind a NAT that lets connections out only.
  'dial-out': { sites: 2, edges: [[1, 2], [2, 1]], dialOutSites: [2] },
  // Sites 2 and 3 each behind their own such NAT; they reach each other only through site 1.
  'dial-out-hub': { sites: 3, edges: [[1, 2], [2, 1], [1, 3], [3, 1]], dialOutSites: [2, 3] },
  // A mesh where site 3 dials out: sites 1 and 2 reach it over the links it opens.
  'dial-out-mesh': { sites: 3, edges: [[1, 2], [1, 3], [2, 1], [2, 3], [3, 1], [3, 2]], dialOutSites: [3] },
  // Both sites behind NATs, reaching each other only through two routers (which crash now and then).
  routers: { sites: 2, edges: [[1, 2], [2, 1]], routers: 2, routedSites: [1, 2] },
  // A mesh of three routed sites, site 1 also reachable directly; three routers.
  'routers-mesh': { sites: 3, edges: [[1, 2], [1, 3], [2, 1], [2, 3], [3, 1], [3, 2]], routers: 3, routedSites: [1, 2, 3], publicSites: [1] },
};

export async function runWanSeed(seed: number, topology: string, options: Partial<WanSimulationOptions> = {}): Promise<string> {
  const shape = TOPOLOGIES[topology];
  if (shape === undefined) throw new Error(`unknown topology ${topology}; one of ${Object.keys(TOPOLOGIES).join(', ')}`);
  const simulation = new WanSimulation({ seed, ...shape, ...options });
  try {
    await simulation.run();
  } catch (error) {
    if (options.log !== 'print' && error instanceof Error) error.message += `\n--- last log lines ---\n${simulation.sim.dumpLog().split('\n').slice(-150).join('\n')}`;
    throw error;
  }
  const { acked, failed, crashes, partitions, handovers, routerCrashes, rebalances } = simulation.stats;
  const routerText = simulation.stats.routerCrashes > 0 || (shape.routers ?? 0) > 0 ? `, ${routerCrashes} router crashes` : '';
  return `wan ${topology} seed ${seed}: ok — ${acked} writes acknowledged, ${failed} failed, ${crashes} crashes, ${partitions} partitions, ${handovers} handovers, ${rebalances} rebalances${routerText}, ${Math.round(simulation.sim.nowMs / 1000)} s virtual`;
}
