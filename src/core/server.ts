// A server: a member hosting replicated regions and serving clients.
//
// Lifecycle: listen → (learn the site id from a locator) → join the view → take initial images
// of its regions from every older server → ready (serves clients, reported in heartbeats).
//
// Writes (distributed-ack): the receiving server stamps a version tag, applies locally, sends
// the entry to every other server of the view, and acknowledges the client once all of them
// applied it (or left the view) and, for a persistent region, once it is on disk here.
//
// Initial image: a joining server asks each OLDER server (lower join sequence) for its
// regions' contents, page by page, while already receiving live writes; applying by version
// tag makes the merge order-free. Each provider answers only once it has installed the view
// that contains the joiner, so a write the provider took before that view is in the image and
// a write after it is replicated to the joiner. Waiting only on older servers cannot deadlock:
// the oldest server waits on no one. Entries where the joiner's own (persisted) copy wins are
// pushed back to the others afterwards, so a full-site restart converges.
//
// A state machine: handlers run to completion; time and I/O come through the Runtime.

import { StraitError, assert } from '../errors.ts';
import { answering, Connection, type ConnectionHandler, type ConnectionOptions, type IncomingRequest, type Reply } from '../protocol/connection.ts';
import type { MemberInfo, RegionSpec, RequestBody, RequestOp, ResponseBody, VersionTag, View, WireEntry } from '../protocol/messages.ts';
import type { Address, Listener, Logger, Runtime, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import type { ServerConfig } from './config.ts';
import { advertisedHost } from './locator.ts';
import { Backoff } from './backoff.ts';
import { MemberAgent } from './member-agent.ts';
import type { MemberAdmin, MemberStartResult, MemberState, MetricsSink, RegionStatus } from './member-admin.ts';
import { PeerPool } from './peer-pool.ts';
import { Region, compareTags } from './region.ts';
import { PendingWrite, ReplicationChannel } from './replication.ts';
import { findMember, locatorsOf, serversOf } from './views.ts';
import { GatewaySender, type SenderHost } from './gateway-sender.ts';
import { WanCatalogue } from './wan-catalogue.ts';
import { WAN_EXCHANGE_INTERVAL_MS } from './config.ts';
import type { GatewayEvent, SenderStatus } from '../protocol/messages.ts';
import { zstdDecompressSync } from 'node:zlib';
import { Packr } from 'msgpackr';

const REQUESTS_IN_FLIGHT_MAX = 10_000;
/** Entries per initial-image page. */
const IMAGE_PAGE_ENTRIES = 2000;
/** Delay before asking a provider that was not ready yet again. */
const IMAGE_RETRY_MS = 100;
/** Tombstones are kept this long so late writes can't resurrect deleted keys. */
export const TOMBSTONE_TIMEOUT_MS = 10 * 60 * 1000;
const TOMBSTONE_PURGE_PER_TICK = 10_000;
/** Subscriptions per connection, at most. */
const SUBSCRIPTIONS_PER_CONNECTION_MAX = 1000;
/** Decompressed gateway batches larger than this are refused. */
const GATEWAY_BATCH_BYTES_MAX = 256 * 1024 * 1024;
const gatewayPackr = new Packr({ useRecords: false, mapsAsObjects: true });
/** How often a secondary hands its long-held events to the primary. */
const SENDER_HANDOFF_INTERVAL_MS = 2000;
const SENDER_HANDOFF_EVENTS_MAX = 1000;

interface Subscription {
  readonly id: number;
  readonly region: string;
  readonly connection: Connection;
}

interface ClientState {
  readonly subscriptions: Map<number, Subscription>;
}

export class Server {
  private readonly runtime: Runtime;
  private readonly config: ServerConfig;
  private readonly metrics: MetricsSink;
  private readonly log: Logger;
  private connectionOptions: ConnectionOptions;
  private pool: PeerPool;
  private agent: MemberAgent | undefined;
  private listener: Listener | undefined;
  private tickTimer: Timer | undefined;
  private state: MemberState = 'starting';
  private site: number | undefined;
  private infoValue: MemberInfo | undefined;
  private readonly regions = new Map<string, Region>();
  private readonly channels = new Map<string, ReplicationChannel>();
  private readonly inbound = new Set<Connection>();
  private readonly subscriptionsByRegion = new Map<string, Set<Subscription>>();
  private nextSubscriptionId = 1;
  private counter = 0;
  private lastTimestampMs = 0;
  private clientCount = 0;
  private startCallback: ((result: MemberStartResult) => void) | undefined;
  /** Initial image in progress: providers still owed, per region. */
  private imagesOutstanding = 0;
  private imageGeneration = 0;
  /** Keys whose local copy beat the image, pushed back to the others once images complete. */
  private readonly pushBack = new Map<string, Set<string>>();
  /** Keys some provider's image listed, per region; local keys no image had are pushed back. */
  private readonly imageSeen = new Map<string, Set<string>>();
  /** Sorted key snapshots served to image requesters, by connection and region. */
  private readonly imageCursors = new Map<string, string[]>();
  /** Gateway senders hosted here, by id. */
  private readonly senders = new Map<string, GatewaySender>();
  /** Members whose copy of a sender is stopped, by sender id (they can't be primary). */
  private readonly stoppedSenderCopies = new Map<string, Set<string>>();
  /** The WAN catalogue as our locators last reported it. */
  private catalogue: WanCatalogue | undefined;
  private catalogueFailures: { address: Address; error: string }[] = [];
  private catalogueFetchedMs = -Infinity;
  private catalogueInFlight = false;
  private handoffAtMs = 0;
  /** Paces asking a locator for the site id while none answers. */
  private readonly siteBackoff: Backoff;
  /** What the gateway receiver took in; `duplicates` counts events that arrived with a version this server already held. */
  readonly receiverStatistics = { batches: 0, events: 0, duplicates: 0, refused: 0 };
  private receiverListener: Listener | undefined;
  private receiverAddress: Address | undefined;

  readonly admin: MemberAdmin;

  constructor(runtime: Runtime, config: ServerConfig, metrics: MetricsSink) {
    this.runtime = runtime;
    this.config = config;
    this.metrics = metrics;
    this.site = config.site;
    this.log = runtime.log.child({ member: config.name, role: 'server' });
    this.siteBackoff = new Backoff(runtime.random, { initialDelayMs: 100, maximumDelayMs: 2000 });
    this.connectionOptions = this.makeConnectionOptions();
    this.pool = this.makePool();
    this.admin = {
      status: () => ({ info: this.infoValue ?? this.placeholderInfo(), state: this.state, viewId: this.view?.id ?? 0, coordinator: this.view?.coordinator ?? null }),
      view: () => this.view,
      regions: (): RegionStatus[] => [...this.regions.values()].map((region) => ({ spec: region.spec, size: region.size })),
      createRegion: (spec) => this.createRegion(spec, true),
      senders: () => this.senderStatuses(),
      receiver: () => this.receiverAddress ?? null,
      controlSender: (request, callback) => {
        const reply: Reply<'senderControl'> = {
          ok: (body) => callback(undefined, body.members),
          fail: (error) => callback(error, undefined),
        };
        answering(reply as Reply<RequestOp>, () => this.onSenderControl(request, reply));
      },
    };
  }

  private makeConnectionOptions(): ConnectionOptions {
    return {
      local: { role: 'server', name: this.config.name, site: this.site ?? null },
      frameBytesMax: this.config.frameBytesMax,
      requestTimeoutMs: this.config.timing.requestTimeoutMs,
      requestsInFlightMax: REQUESTS_IN_FLIGHT_MAX,
      ...(this.site !== undefined ? { expectedSite: this.site } : {}),
    };
  }

  private makePool(): PeerPool {
    const handler: ConnectionHandler = {
      onOpen: () => {},
      onRequest: (connection, request, reply) => this.onRequest(connection, request, reply),
      onPush: (_connection, op, body) => {
        if (op === 'view') this.agent?.offerView((body as { view: View }).view);
      },
      onClose: () => {},
    };
    return new PeerPool(this.runtime, this.connectionOptions, handler);
  }

  /** What status shows before the member has bound its port. */
  private placeholderInfo(): MemberInfo {
    return { id: this.config.name, name: this.config.name, role: 'server', site: this.site ?? 1, address: this.config.bind, regions: [] };
  }

  get info(): MemberInfo {
    if (this.infoValue === undefined) throw new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: this.state });
    return this.infoValue;
  }

  get view(): View | null {
    return this.agent?.view ?? null;
  }

  get currentState(): MemberState {
    return this.state;
  }

  /** Sites this server's copy of the WAN catalogue knows, with their edges (tests, status). */
  knownSites(): { site: number; edges: readonly number[]; receivers: number }[] {
    return (this.catalogue?.all() ?? []).map((entry) => ({ site: entry.site, edges: entry.edges, receivers: entry.receivers.length }));
  }

  /** Status of every gateway sender hosted here. */
  senderStatuses(): SenderStatus[] {
    return [...this.senders.values()].map((sender) => sender.status());
  }

  /** Test and simulator access to a region's contents. */
  region(name: string): Region | undefined {
    return this.regions.get(name);
  }

  start(callback: (result: MemberStartResult) => void): void {
    this.startCallback = callback;
    try {
      for (const spec of this.config.regions) this.openRegion(spec);
    } catch (error) {
      this.fail(error instanceof StraitError ? error : new StraitError('STRAIT_INTERNAL', { reason: String(error) }, { cause: error }));
      return;
    }
    this.listener = this.runtime.network.listen(
      this.config.bind,
      (stream) => this.accept(stream),
      (result) => {
        if (!result.ok) {
          this.fail(result.error);
          return;
        }
        this.log.info({ address: formatAddress(result.address) }, `server ${this.config.name} listening on ${formatAddress(result.address)}; joining through ${this.config.locators.map(formatAddress).join(', ')}`);
        const receiver = this.config.gatewayReceiver;
        if (receiver === undefined || receiver.manualStart) {
          this.resolveSite(result.address, 0);
          return;
        }
        this.startReceiver(receiver.startPort, (error) => {
          if (error !== undefined) this.fail(error);
          else this.resolveSite(result.address, 0);
        });
      },
    );
  }

  /** Binds the gateway receiver to the first free port of its range. */
  private startReceiver(port: number, done: (error: StraitError | undefined) => void): void {
    const spec = this.config.gatewayReceiver!;
    const host = spec.bindAddress ?? this.config.bind.host;
    this.receiverListener = this.runtime.network.listen({ host, port }, (stream) => this.accept(stream), (result) => {
      if (result.ok) {
        const advertised = spec.hostnameForClients ?? this.config.hostnameForClients ?? advertisedHost(result.address.host);
        this.receiverAddress = { host: advertised, port: result.address.port };
        this.log.info({ receiver: formatAddress(result.address) }, `server ${this.config.name}: gateway receiver listening on ${formatAddress(result.address)}, advertised as ${formatAddress(this.receiverAddress)}`);
        done(undefined);
        return;
      }
      if (result.error.code === 'STRAIT_PORT_IN_USE' && port < spec.endPort) {
        this.startReceiver(port + 1, done);
        return;
      }
      done(result.error.code === 'STRAIT_PORT_IN_USE'
        ? new StraitError('STRAIT_PORT_IN_USE', { address: `${host}[${spec.startPort}..${spec.endPort}] (every port of the gateway receiver's range)` })
        : result.error);
    });
  }

  /** A server without --site-id takes its locator's. */
  private resolveSite(bound: Address, attempt: number): void {
    if (this.state === 'stopped') return;
    if (this.site !== undefined) {
      this.begin(bound);
      return;
    }
    const locator = this.config.locators[attempt % this.config.locators.length]!;
    const connection = Connection.open(this.runtime, locator, this.connectionOptions, {
      onOpen: (opened) => {
        this.site = opened.peer?.site ?? undefined;
        opened.close();
        if (this.site === undefined || this.site === 0) {
          this.fail(new StraitError('STRAIT_NO_LOCATOR', { locators: formatAddress(locator), reason: 'the locator did not state its site' }));
          return;
        }
        this.connectionOptions = this.makeConnectionOptions();
        this.pool = this.makePool();
        this.begin(bound);
      },
      onRequest: (_connection, _request, reply) => reply.fail(new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: this.state })),
      onPush: () => {},
      onClose: (_closed, error) => {
        if (this.site !== undefined || this.state === 'stopped') return;
        if (attempt > 0 && attempt % this.config.locators.length === 0) {
          this.log.warn({ locators: this.config.locators.map(formatAddress), reason: error?.message }, `server ${this.config.name}: no locator answered at ${this.config.locators.map(formatAddress).join(', ')} (${error?.message ?? 'closed'}); retrying`);
        }
        this.runtime.setTimer(this.siteBackoff.nextDelayMs(), () => this.resolveSite(bound, attempt + 1));
      },
    });
    void connection;
  }

  private begin(bound: Address): void {
    assert(this.site !== undefined, 'site resolved before joining');
    const host = this.config.hostnameForClients ?? advertisedHost(bound.host);
    this.infoValue = {
      id: this.newMemberId(),
      name: this.config.name,
      role: 'server',
      site: this.site,
      address: { host, port: bound.port },
      regions: [...this.regions.keys()],
      ...(this.receiverAddress ? { receiver: this.receiverAddress } : {}),
      ...(this.config.gatewaySenders.length > 0 ? { senders: this.config.gatewaySenders.map((sender) => ({ id: sender.id, remoteSite: sender.remoteSiteId })) } : {}),
      ...(this.config.httpAddress ? { httpAddress: this.config.httpAddress } : {}),
      ...(this.config.pid !== undefined ? { pid: this.config.pid } : {}),
    };
    this.log.info({ site: this.site }, `server ${this.config.name}: site ${this.site}; joining`);
    this.catalogue = new WanCatalogue(this.site);
    for (const spec of this.config.gatewaySenders) {
      if (spec.remoteSiteId === this.site) {
        this.fail(new StraitError('STRAIT_CONFIG_INVALID', { source: 'gateway-senders', key: `${spec.id}.remote-site-id`, reason: `${spec.remoteSiteId} is this server's own site` }));
        return;
      }
      this.senders.set(spec.id, new GatewaySender(this.runtime, spec, this.senderHost(spec.id), this.log));
    }
    this.agent = new MemberAgent(this.runtime, this.pool, this.config.locators, this.config.timing, {
      info: () => this.info,
      load: () => this.clientCount,
      ready: () => this.state === 'ready',
      onView: (view, previous) => this.installed(view, previous),
      onRemoved: (reason) => this.removed(reason),
      onIsolated: () => {
        // Without a coordinator we can't know whether we are still in the view: stop serving
        // clients (they move to another server) until we are readmitted.
        if (this.state === 'ready' || this.state === 'initializing') this.state = 'joining';
        // Rejoin as a new incarnation: the coordinator may have removed us meanwhile, and
        // others must not mistake the newcomer for the member they knew.
        this.infoValue = { ...this.info, id: this.newMemberId() };
      },
      onJoinRefused: (error) => this.fail(error),
    }, this.log);
    this.state = 'joining';
    this.agent.join();
    this.scheduleTick();
  }

  private newMemberId(): string {
    return `${this.config.name}#${this.runtime.random.int(0x7fffffff).toString(36)}`;
  }

  stop(callback: () => void): void {
    if (this.state === 'stopped') {
      callback();
      return;
    }
    const finish = () => {
      this.state = 'stopped';
      this.agent?.stop();
      this.tickTimer?.cancel();
      this.listener?.close();
      this.receiverListener?.close();
      for (const sender of this.senders.values()) sender.close();
      const abandon = new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: 'stopping' });
      for (const channel of this.channels.values()) channel.close(abandon);
      this.channels.clear();
      this.pool.closeAll();
      for (const connection of [...this.inbound]) connection.close();
      let syncing = this.regions.size;
      if (syncing === 0) {
        callback();
        return;
      }
      for (const region of this.regions.values()) region.sync(() => {
        syncing -= 1;
        if (syncing === 0) callback();
      });
    };
    const view = this.view;
    const coordinator = view === null ? undefined : findMember(view, view.coordinator);
    if (coordinator === undefined || this.infoValue === undefined) {
      finish();
      return;
    }
    this.state = 'leaving';
    this.pool.get(coordinator.info.address).request('leave', { id: this.info.id }, () => finish());
  }

  private fail(error: StraitError): void {
    this.log.error({ code: error.code }, `server ${this.config.name}: ${error.message}`);
    this.state = 'stopped';
    this.agent?.stop();
    this.tickTimer?.cancel();
    this.listener?.close();
    this.receiverListener?.close();
    for (const sender of this.senders.values()) sender.close();
    this.pool.closeAll();
    const callback = this.startCallback;
    this.startCallback = undefined;
    callback?.({ ok: false, error });
  }

  private scheduleTick(): void {
    this.tickTimer = this.runtime.setTimer(this.config.timing.heartbeatIntervalMs, () => {
      if (this.state === 'stopped') return;
      this.agent?.tick();
      this.gatewayTick();
      const cutoff = this.runtime.clock.now() - TOMBSTONE_TIMEOUT_MS;
      for (const region of this.regions.values()) region.purgeTombstones(cutoff, TOMBSTONE_PURGE_PER_TICK);
      this.scheduleTick();
    });
  }

  // ---- Regions ----

  private openRegion(spec: RegionSpec): Region {
    const existing = this.regions.get(spec.name);
    if (existing !== undefined) {
      if (existing.spec.type !== spec.type || existing.spec.persistent !== spec.persistent) {
        throw new StraitError('STRAIT_REGION_EXISTS', { region: spec.name, member: this.config.name });
      }
      return existing;
    }
    const store = spec.persistent ? this.runtime.storage.open(`region-${spec.name}`) : undefined;
    const region = new Region(spec, store, this.config.conflictResolver);
    this.regions.set(spec.name, region);
    if (region.size > 0) this.log.info({ region: spec.name, entries: region.size }, `server ${this.config.name}: region ${spec.name} recovered ${region.size} entries from disk`);
    return region;
  }

  /** Creates a region here and, when asked by a client or operator, on every other server. */
  private createRegion(spec: RegionSpec, propagate: boolean): { created: boolean } {
    const created = !this.regions.has(spec.name);
    this.openRegion(spec);
    if (created) this.log.info({ region: spec.name, persistent: spec.persistent }, `server ${this.config.name}: created region ${spec.name}`);
    if (propagate) {
      for (const member of serversOf(this.view)) {
        if (member.info.id === this.infoValue?.id) continue;
        this.pool.get(member.info.address).request('createRegion', { spec }, (error) => {
          if (error !== undefined) this.log.warn({ code: error.code, peer: member.info.name }, `creating region ${spec.name} on ${member.info.name} failed: ${error.message}`);
        });
      }
    }
    return { created };
  }

  private requireRegion(name: string): Region {
    const region = this.regions.get(name);
    if (region === undefined) throw new StraitError('STRAIT_REGION_NOT_FOUND', { region: name, member: this.config.name });
    return region;
  }

  private requireReady(): void {
    if (this.state !== 'ready') throw new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: this.state });
  }

  // ---- Views and initial images ----

  private installed(view: View, previous: View | null): void {
    this.metrics.viewInstalled(view.id, view.members.length);
    const me = this.info.id;
    const servers = new Map(serversOf(view).filter((member) => member.info.id !== me).map((member) => [member.info.id, member]));
    for (const [id, channel] of this.channels) {
      if (!servers.has(id)) {
        channel.close();
        this.channels.delete(id);
      }
    }
    for (const [id, member] of servers) {
      if (!this.channels.has(id)) {
        this.channels.set(id, new ReplicationChannel(this.runtime, this.pool, { id, name: member.info.name, address: member.info.address }, this.log, (entries) => this.metrics.replicated(entries)));
      }
    }
    for (const [senderId, stopped] of this.stoppedSenderCopies) {
      for (const id of stopped) if (findMember(view, id) === undefined) stopped.delete(id);
      if (stopped.size === 0) this.stoppedSenderCopies.delete(senderId);
    }
    for (const sender of this.senders.values()) sender.tick();
    if (previous === null || this.state === 'joining') {
      this.log.info({ viewId: view.id, members: view.members.length }, `server ${this.config.name}: joined view ${view.id} of site ${view.site}`);
      this.state = 'initializing';
      this.takeImages(view);
    }
  }

  private removed(reason: string): void {
    if (this.state === 'stopped' || this.state === 'leaving') return;
    this.log.warn({ reason }, `server ${this.config.name}: removed from the view (${reason}); rejoining as a new member and taking fresh images`);
    const abandon = new StraitError('STRAIT_NOT_MEMBER', { member: this.config.name, site: this.info.site });
    for (const channel of this.channels.values()) channel.close(abandon);
    this.channels.clear();
    // Keep the data: it may hold acknowledged writes the others lost while we were out. The
    // fresh images bring what we missed (tombstones included) and we push back what they lack.
    this.infoValue = { ...this.info, id: this.newMemberId() };
    this.state = 'joining';
    this.agent?.join();
  }

  private takeImages(view: View): void {
    const generation = ++this.imageGeneration;
    const me = findMember(view, this.info.id);
    assert(me !== undefined, 'a view being installed contains this member');
    const providers = serversOf(view).filter((member) => member.joinSeq < me.joinSeq);
    this.pushBack.clear();
    this.imageSeen.clear();
    if (providers.length === 0) {
      this.becomeReady();
      return;
    }
    // First learn the regions created at runtime on the others, then image every region.
    this.imagesOutstanding = providers.length;
    for (const provider of providers) this.learnRegions(generation, provider.info, view.id);
  }

  /** A provider counts while it is in the view and older than us. */
  private providerGone(provider: MemberInfo): boolean {
    const current = findMember(this.view, provider.id);
    const me = this.infoValue === undefined ? undefined : findMember(this.view, this.infoValue.id);
    return current === undefined || me === undefined || current.joinSeq > me.joinSeq;
  }

  private learnRegions(generation: number, provider: MemberInfo, viewId: number): void {
    if (generation !== this.imageGeneration || this.state !== 'initializing') return;
    if (this.providerGone(provider)) {
      this.providerDone(generation);
      return;
    }
    this.pool.get(provider.address).request('listRegions', {}, (error, response) => {
      if (generation !== this.imageGeneration) return;
      if (error !== undefined || response === undefined) {
        this.runtime.setTimer(IMAGE_RETRY_MS, () => this.learnRegions(generation, provider, viewId));
        return;
      }
      for (const { spec } of response.regions) {
        if (!this.regions.has(spec.name)) this.openRegion(spec);
      }
      const names = [...this.regions.keys()];
      let remaining = names.length;
      if (remaining === 0) {
        this.providerDone(generation);
        return;
      }
      for (const name of names) {
        this.imagePage(generation, provider, viewId, name, null, () => {
          remaining -= 1;
          if (remaining === 0) this.providerDone(generation);
        });
      }
    });
  }

  private imagePage(generation: number, provider: MemberInfo, viewId: number, regionName: string, after: string | null, done: () => void): void {
    if (generation !== this.imageGeneration || this.state !== 'initializing') return;
    if (this.providerGone(provider)) {
      done();
      return;
    }
    this.pool.get(provider.address).request('image', { region: regionName, viewId, after, limit: IMAGE_PAGE_ENTRIES }, (error, response) => {
      if (generation !== this.imageGeneration) return;
      if (error !== undefined && error.code === 'STRAIT_REGION_NOT_FOUND') {
        done();
        return;
      }
      if (error !== undefined || response === undefined) {
        // Not ready yet, lagging view, or connection trouble: ask again shortly. A provider
        // that died is dropped by the next view, which ends this loop above.
        this.runtime.setTimer(IMAGE_RETRY_MS, () => this.imagePage(generation, provider, viewId, regionName, after, done));
        return;
      }
      const region = this.regions.get(regionName);
      if (region === undefined) {
        done();
        return;
      }
      let last = after;
      let seen = this.imageSeen.get(regionName);
      if (seen === undefined) {
        seen = new Set();
        this.imageSeen.set(regionName, seen);
      }
      for (const [key, value, tag] of response.entries) {
        last = key;
        seen.add(key);
        const local = region.entry(key);
        if (local !== undefined && compareTags(local.tag, tag) > 0) {
          this.markPushBack(regionName, key);
          continue;
        }
        this.applyAndNotify(region, key, value, tag);
        this.pushBack.get(regionName)?.delete(key);
      }
      if (response.done) done();
      else this.imagePage(generation, provider, viewId, regionName, last, done);
    });
  }

  private markPushBack(region: string, key: string): void {
    let keys = this.pushBack.get(region);
    if (keys === undefined) {
      keys = new Set();
      this.pushBack.set(region, keys);
    }
    keys.add(key);
  }

  private providerDone(generation: number): void {
    if (generation !== this.imageGeneration) return;
    this.imagesOutstanding -= 1;
    if (this.imagesOutstanding > 0) return;
    // Entries only this member had (from its disk, or kept while it was away) or where its
    // copy is newer go to the others, so every replica converges on the union.
    for (const [regionName, region] of this.regions) {
      const seen = this.imageSeen.get(regionName);
      const won = this.pushBack.get(regionName);
      for (const key of region.sortedKeys()) {
        if (seen?.has(key) === true && won?.has(key) !== true) continue;
        const entry = region.wireEntry(key);
        if (entry !== undefined) this.replicate(regionName, entry, undefined);
      }
    }
    this.pushBack.clear();
    this.imageSeen.clear();
    this.becomeReady();
  }

  private becomeReady(): void {
    if (this.state !== 'initializing') return;
    this.state = 'ready';
    let total = 0;
    for (const region of this.regions.values()) total += region.size;
    this.log.info({ regions: this.regions.size, entries: total }, `server ${this.config.name}: ready with ${this.regions.size} regions, ${total} entries`);
    const callback = this.startCallback;
    this.startCallback = undefined;
    callback?.({ ok: true, address: this.info.address });
    // Tell the coordinator at once rather than at the next heartbeat, so clients find us.
    this.agent?.tick();
    this.fetchCatalogue();
  }

  // ---- Connections and requests ----

  private accept(stream: import('../runtime/runtime.ts').Stream): void {
    const connection = Connection.accept(this.runtime, stream, this.connectionOptions, {
      onOpen: (opened) => {
        if (opened.peer?.role === 'client') {
          opened.context = { subscriptions: new Map() } satisfies ClientState;
          this.clientCount += 1;
          this.metrics.clients(this.clientCount);
        }
      },
      onRequest: (from, request, reply) => this.onRequest(from, request, reply),
      onPush: () => {},
      onClose: (closed) => {
        this.inbound.delete(closed);
        const client = closed.context as ClientState | undefined;
        if (client !== undefined) {
          this.clientCount -= 1;
          this.metrics.clients(this.clientCount);
          for (const subscription of client.subscriptions.values()) this.subscriptionsByRegion.get(subscription.region)?.delete(subscription);
        }
        for (const key of [...this.imageCursors.keys()]) if (key.startsWith(`${closed.number}:`)) this.imageCursors.delete(key);
      },
    });
    this.inbound.add(connection);
  }

  private onRequest(connection: Connection, request: IncomingRequest, reply: Reply<RequestOp>): void {
    const startedMs = this.runtime.clock.monotonic();
    const observed: Reply<RequestOp> = {
      ok: (body) => {
        this.metrics.operation(request.op, this.runtime.clock.monotonic() - startedMs, true);
        reply.ok(body);
      },
      fail: (error) => {
        this.metrics.operation(request.op, this.runtime.clock.monotonic() - startedMs, false);
        reply.fail(error);
      },
    };
    answering(observed, () => this.handle(connection, request, observed));
  }

  private handle(connection: Connection, request: IncomingRequest, reply: Reply<RequestOp>): void {
    switch (request.op) {
      case 'ping':
        reply.ok({});
        return;
      case 'memberInfo':
        reply.ok({ info: this.info, state: this.state, viewId: this.view?.id ?? 0 } satisfies ResponseBody<'memberInfo'>);
        return;
      case 'get': {
        this.requireReady();
        const body = request.body as RequestBody<'get'>;
        reply.ok({ value: this.requireRegion(body.region).get(body.key) ?? null } satisfies ResponseBody<'get'>);
        return;
      }
      case 'put': {
        this.requireReady();
        const body = request.body as RequestBody<'put'>;
        this.checkValue(body.value);
        this.write(this.requireRegion(body.region), [[body.key, body.value]], reply, () => reply.ok({}));
        return;
      }
      case 'putAll': {
        this.requireReady();
        const body = request.body as RequestBody<'putAll'>;
        for (const [, value] of body.entries) this.checkValue(value);
        this.write(this.requireRegion(body.region), body.entries, reply, () => reply.ok({}));
        return;
      }
      case 'remove': {
        this.requireReady();
        const body = request.body as RequestBody<'remove'>;
        const region = this.requireRegion(body.region);
        const existed = region.get(body.key) !== undefined;
        this.write(region, [[body.key, null]], reply, () => reply.ok({ existed } satisfies ResponseBody<'remove'>));
        return;
      }
      case 'keys': {
        this.requireReady();
        const body = request.body as RequestBody<'keys'>;
        reply.ok({ keys: this.requireRegion(body.region).keys() } satisfies ResponseBody<'keys'>);
        return;
      }
      case 'size': {
        this.requireReady();
        const body = request.body as RequestBody<'size'>;
        reply.ok({ size: this.requireRegion(body.region).size } satisfies ResponseBody<'size'>);
        return;
      }
      case 'subscribe':
        this.subscribe(connection, request.body as RequestBody<'subscribe'>, reply as Reply<'subscribe'>);
        return;
      case 'unsubscribe': {
        const body = request.body as RequestBody<'unsubscribe'>;
        const client = connection.context as ClientState | undefined;
        const subscription = client?.subscriptions.get(body.subscription);
        if (subscription !== undefined) {
          client!.subscriptions.delete(body.subscription);
          this.subscriptionsByRegion.get(subscription.region)?.delete(subscription);
        }
        reply.ok({});
        return;
      }
      case 'listRegions':
        reply.ok({ regions: [...this.regions.values()].map((region) => ({ spec: region.spec, size: region.size })) } satisfies ResponseBody<'listRegions'>);
        return;
      case 'createRegion': {
        const body = request.body as RequestBody<'createRegion'>;
        reply.ok(this.createRegion(body.spec, connection.peer?.role !== 'server'));
        return;
      }
      case 'replicate':
        this.onReplicate(request.body as RequestBody<'replicate'>, reply as Reply<'replicate'>);
        return;
      case 'image':
        this.onImage(connection, request.body as RequestBody<'image'>, reply as Reply<'image'>);
        return;
      case 'gatewayBatch':
        this.onGatewayBatch(connection, request.body as RequestBody<'gatewayBatch'>, reply as Reply<'gatewayBatch'>);
        return;
      case 'senderAck': {
        const body = request.body as RequestBody<'senderAck'>;
        const sender = this.senders.get(body.sender);
        if (sender !== undefined && body.ids.length > 0) sender.dropAcknowledged(body.ids);
        if (body.stopped !== undefined && connection.peer !== undefined) this.peerSenderState(body.sender, connection.peer.name, body.stopped);
        reply.ok({});
        return;
      }
      case 'senderHandoff': {
        const body = request.body as RequestBody<'senderHandoff'>;
        const sender = this.senders.get(body.sender);
        if (sender === undefined) throw new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: body.sender, member: this.config.name });
        reply.ok({ acknowledged: this.isPrimarySender(body.sender) ? sender.adopt(body.events) : [] } satisfies ResponseBody<'senderHandoff'>);
        return;
      }
      case 'senderStatus': {
        const body = request.body as RequestBody<'senderStatus'>;
        if (body.id !== undefined && !this.senders.has(body.id)) throw new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: body.id, member: this.config.name });
        const statuses: SenderStatus[] = [...this.senders.values()].filter((sender) => body.id === undefined || sender.spec.id === body.id).map((sender) => sender.status());
        reply.ok({ senders: statuses } satisfies ResponseBody<'senderStatus'>);
        return;
      }
      case 'senderControl':
        this.onSenderControl(request.body as RequestBody<'senderControl'>, reply as Reply<'senderControl'>);
        return;
      default:
        reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: connection.label, reason: `a server does not serve ${request.op}` }));
    }
  }

  private checkValue(value: Uint8Array): void {
    if (value.length > this.config.valueBytesMax) {
      throw new StraitError('STRAIT_VALUE_TOO_LARGE', { size: value.length, limit: this.config.valueBytesMax });
    }
  }

  /**
   * The next version tag of this member: wall clock, never going backwards within a member, and
   * always after the tag this member holds for the key, so a write supersedes every write this
   * member has seen for that key even when another member's clock runs ahead.
   */
  private nextTag(current: VersionTag | undefined): VersionTag {
    const now = Math.max(this.runtime.clock.now(), this.lastTimestampMs, current === undefined ? 0 : current[1] + 1);
    this.lastTimestampMs = now;
    this.counter += 1;
    return [this.info.site, now, this.info.id, this.counter];
  }

  /** Applies writes locally, replicates them, and calls `done` once every replica has them. */
  private write(region: Region, entries: readonly (readonly [string, Uint8Array | null])[], reply: Reply<RequestOp>, done: () => void): void {
    const pending = new PendingWrite((error) => {
      if (error !== undefined) reply.fail(error);
      else done();
    });
    for (const [key, value] of entries) {
      const tag = this.nextTag(region.entry(key)?.tag);
      this.applyAndNotify(region, key, value, tag);
      this.queueForGateways(region, [key, value, tag], false);
      this.replicate(region.spec.name, [key, value, tag], pending, true);
    }
    this.syncSenders(region, pending);
    region.sync((error) => {
      if (error !== undefined) {
        // The disk failed under an acknowledged-write path: this member can't keep its promise.
        throw new StraitError('STRAIT_STORAGE', { path: `region ${region.spec.name}`, reason: error.message }, { cause: error });
      }
      pending.settle();
    });
  }

  private replicate(regionName: string, entry: WireEntry, pending: PendingWrite | undefined, gateway = false): void {
    for (const channel of this.channels.values()) channel.enqueue(regionName, entry, pending, gateway);
  }

  private applyAndNotify(region: Region, key: string, value: Uint8Array | null, tag: VersionTag): void {
    if (region.apply(key, value, tag) !== 'applied') return;
    const subscriptions = this.subscriptionsByRegion.get(region.spec.name);
    if (subscriptions === undefined || subscriptions.size === 0) return;
    for (const subscription of subscriptions) {
      subscription.connection.push('event', { subscription: subscription.id, region: region.spec.name, key, value, tag });
    }
  }

  private onReplicate(body: RequestBody<'replicate'>, reply: Reply<'replicate'>): void {
    // Replicas accept writes while initializing: that is how a joiner gets writes made during
    // its initial image.
    if (this.state !== 'ready' && this.state !== 'initializing') {
      reply.fail(new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: this.state }));
      return;
    }
    const region = this.requireRegion(body.region);
    for (const entry of body.entries) {
      this.applyAndNotify(region, entry[0], entry[1], entry[2]);
      if (body.gateway === true) this.queueForGateways(region, entry, false);
    }
    const pending = new PendingWrite((error) => {
      if (error !== undefined) reply.fail(error);
      else reply.ok({});
    });
    if (body.gateway === true) this.syncSenders(region, pending);
    region.sync((error) => {
      if (error !== undefined) pending.abandon(new StraitError('STRAIT_STORAGE', { path: `region ${region.spec.name}`, reason: error.message }, { cause: error }));
      else pending.settle();
    });
  }

  private onImage(connection: Connection, body: RequestBody<'image'>, reply: Reply<'image'>): void {
    if (this.state !== 'ready') throw new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: this.state });
    if ((this.view?.id ?? 0) < body.viewId) throw new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: `view ${this.view?.id ?? 0} older than ${body.viewId}` });
    const region = this.requireRegion(body.region);
    const cursorKey = `${connection.number}:${body.region}`;
    let keys = this.imageCursors.get(cursorKey);
    if (body.after === null || keys === undefined) {
      keys = region.sortedKeys();
      this.imageCursors.set(cursorKey, keys);
    }
    let start = 0;
    if (body.after !== null) {
      // Binary search for the first key after the cursor.
      let low = 0;
      let high = keys.length;
      while (low < high) {
        const middle = (low + high) >>> 1;
        if (keys[middle]! <= body.after) low = middle + 1;
        else high = middle;
      }
      start = low;
    }
    const limit = Math.max(1, body.limit);
    const entries: WireEntry[] = [];
    let index = start;
    for (; index < keys.length && entries.length < limit; index++) {
      const entry = region.wireEntry(keys[index]!);
      if (entry !== undefined) entries.push(entry);
    }
    const done = index >= keys.length;
    if (done) this.imageCursors.delete(cursorKey);
    reply.ok({ entries, done });
  }

  // ---- WAN gateways ----

  private senderHost(senderId: string): SenderHost {
    return {
      memberName: this.config.name,
      site: this.site ?? 0,
      isPrimary: () => this.isPrimarySender(senderId),
      receivers: () => this.remoteReceivers(senderId),
      acknowledged: (ids) => this.announceSender(senderId, ids, undefined),
      stateChanged: () => {
        const sender = this.senders.get(senderId);
        this.announceSender(senderId, [], sender?.state === 'stopped');
        for (const candidate of this.senders.values()) candidate.tick();
      },
    };
  }

  /** The oldest ready server hosting the sender whose copy is not stopped dispatches. */
  private isPrimarySender(senderId: string): boolean {
    const view = this.view;
    const me = this.infoValue;
    const mine = this.senders.get(senderId);
    if (view === null || me === undefined || mine === undefined || mine.state === 'stopped' || this.state !== 'ready') return false;
    const stopped = this.stoppedSenderCopies.get(senderId);
    let oldest: { id: string; joinSeq: number } | undefined;
    for (const member of serversOf(view)) {
      if (!(member.info.senders ?? []).some((sender) => sender.id === senderId)) continue;
      if (member.info.id !== me.id && (!member.ready || stopped?.has(member.info.id) === true)) continue;
      if (oldest === undefined || member.joinSeq < oldest.joinSeq) oldest = { id: member.info.id, joinSeq: member.joinSeq };
    }
    return oldest?.id === me.id;
  }

  private peerSenderState(senderId: string, memberName: string, stopped: boolean): void {
    const member = serversOf(this.view).find((candidate) => candidate.info.name === memberName);
    if (member === undefined) return;
    let set = this.stoppedSenderCopies.get(senderId);
    if (set === undefined) {
      set = new Set();
      this.stoppedSenderCopies.set(senderId, set);
    }
    if (stopped) set.add(member.info.id);
    else set.delete(member.info.id);
    this.senders.get(senderId)?.tick();
  }

  /** Tells the other servers hosting the sender which events were acknowledged, or our state. */
  private announceSender(senderId: string, ids: readonly string[], stopped: boolean | undefined): void {
    const me = this.infoValue?.id;
    for (const member of serversOf(this.view)) {
      if (member.info.id === me || !(member.info.senders ?? []).some((sender) => sender.id === senderId)) continue;
      this.pool.get(member.info.address).request('senderAck', { sender: senderId, ids: [...ids], ...(stopped !== undefined ? { stopped } : {}) }, () => {});
    }
  }

  private remoteReceivers(senderId: string): { receivers: readonly Address[]; problem: string | null } {
    const sender = this.senders.get(senderId);
    const remoteSite = sender?.spec.remoteSiteId ?? 0;
    const entry = this.catalogue?.get(remoteSite);
    if (entry !== undefined && entry.receivers.length > 0) return { receivers: entry.receivers, problem: null };
    const locators = locatorsOf(this.view).map((member) => formatAddress(member.info.address)).join(', ') || this.config.locators.map(formatAddress).join(', ');
    const failures = this.catalogueFailures.map((failure) => `last exchange with ${formatAddress(failure.address)} failed: ${failure.error}`).join('; ');
    const what = entry === undefined
      ? `site ${remoteSite} is unknown to locator(s) ${locators}`
      : `site ${remoteSite} has no ready gateway receiver known to locator(s) ${locators} (its servers with a gateway-receiver are down, not ready, or declare none)`;
    const hint = failures ? `; ${failures}` : entry === undefined ? `; check remote-locators on the locators of both sites` : '';
    return { receivers: [], problem: `${this.config.name}: ${senderId} → site ${remoteSite}: ${what}${hint}` };
  }

  private gatewayTick(): void {
    const now = this.runtime.clock.monotonic();
    if (now - this.catalogueFetchedMs >= WAN_EXCHANGE_INTERVAL_MS) this.fetchCatalogue();
    if (now - this.handoffAtMs >= SENDER_HANDOFF_INTERVAL_MS) {
      this.handoffAtMs = now;
      for (const sender of this.senders.values()) this.handOff(sender);
    }
    for (const sender of this.senders.values()) sender.tick();
    // Re-announce stopped copies now and then: a peer that joined later must learn it.
    for (const sender of this.senders.values()) {
      if (sender.state === 'stopped' && this.runtime.random.int(10) === 0) this.announceSender(sender.spec.id, [], true);
    }
  }

  /**
   * Secondary: events held for long are either already acknowledged (an ack we missed while
   * down or partitioned) or were never seen by the primary; the primary sorts them out.
   */
  private handOff(sender: GatewaySender): void {
    if (sender.queuedEvents === 0 || this.isPrimarySender(sender.spec.id) || this.state !== 'ready') return;
    const primary = this.primaryOf(sender.spec.id);
    if (primary === undefined) return;
    const events = sender.staleEvents(SENDER_HANDOFF_INTERVAL_MS * 2, SENDER_HANDOFF_EVENTS_MAX);
    if (events.length === 0) return;
    this.pool.get(primary.address).request('senderHandoff', { sender: sender.spec.id, events }, (error, response) => {
      if (error === undefined && response !== undefined) sender.dropAcknowledged(response.acknowledged);
    });
  }

  private primaryOf(senderId: string): MemberInfo | undefined {
    const stopped = this.stoppedSenderCopies.get(senderId);
    let oldest: { info: MemberInfo; joinSeq: number } | undefined;
    for (const member of serversOf(this.view)) {
      if (!(member.info.senders ?? []).some((sender) => sender.id === senderId) || !member.ready || stopped?.has(member.info.id) === true) continue;
      if (oldest === undefined || member.joinSeq < oldest.joinSeq) oldest = { info: member.info, joinSeq: member.joinSeq };
    }
    return oldest?.info;
  }

  private fetchCatalogue(): void {
    if (this.catalogueInFlight || this.senders.size === 0 && this.config.gatewayReceiver === undefined) return;
    const locators = locatorsOf(this.view);
    if (locators.length === 0) return;
    const locator = locators[this.runtime.random.int(locators.length)]!;
    this.catalogueInFlight = true;
    this.catalogueFetchedMs = this.runtime.clock.monotonic();
    this.pool.get(locator.info.address).request('catalogue', {}, (error, response) => {
      this.catalogueInFlight = false;
      if (error !== undefined || response === undefined || this.catalogue === undefined) return;
      this.catalogue.replace(response.catalogue);
      this.catalogueFailures = response.failures;
      for (const sender of this.senders.values()) sender.tick();
    });
  }

  /** Queues a new change on every local sender whose remote site should get it from us. */
  private queueForGateways(region: Region, entry: WireEntry, possibleDuplicate: boolean): void {
    const senderIds = region.spec.gatewaySenderIds;
    if (senderIds === undefined || senderIds.length === 0 || this.catalogue === undefined) return;
    const origin = entry[2][0];
    const here = this.site ?? 0;
    for (const id of senderIds) {
      const sender = this.senders.get(id);
      if (sender === undefined) continue;
      if (!this.catalogue.forwards(origin, here, sender.spec.remoteSiteId)) continue;
      sender.enqueue([region.spec.name, entry[0], entry[1], entry[2], possibleDuplicate]);
    }
  }

  /** Persistent senders' queues are part of what a write's acknowledgement promises. */
  private syncSenders(region: Region, pending: PendingWrite): void {
    for (const id of region.spec.gatewaySenderIds ?? []) {
      const sender = this.senders.get(id);
      if (sender === undefined || !sender.spec.persistent) continue;
      pending.expect();
      sender.sync((error) => {
        if (error !== undefined) pending.abandon(new StraitError('STRAIT_STORAGE', { path: `sender ${id}`, reason: error.message }, { cause: error }));
        else pending.settle();
      });
    }
  }

  /** A batch from another site's gateway sender: apply, replicate here, forward, acknowledge. */
  private onGatewayBatch(connection: Connection, body: RequestBody<'gatewayBatch'>, reply: Reply<'gatewayBatch'>): void {
    if (connection.peer?.role !== 'gateway') throw new StraitError('STRAIT_MESSAGE_INVALID', { peer: connection.label, reason: 'gateway batches come from gateway senders' });
    this.requireReady();
    let events: readonly GatewayEvent[] = body.events;
    if (body.compressed !== undefined) {
      let decoded: unknown;
      try {
        decoded = gatewayPackr.unpack(zstdDecompressSync(body.compressed, { maxOutputLength: GATEWAY_BATCH_BYTES_MAX }));
      } catch (error) {
        throw new StraitError('STRAIT_MESSAGE_INVALID', { peer: connection.label, reason: `compressed batch ${body.batchId} is not readable` }, { cause: error });
      }
      events = parseGatewayEvents(decoded, connection.label);
    }
    const refused: { index: number; code: string; message: string }[] = [];
    const pending = new PendingWrite((error) => {
      if (error !== undefined) reply.fail(error);
      else reply.ok({ applied: events.length - refused.length, refused } satisfies ResponseBody<'gatewayBatch'>);
    });
    const touched = new Set<Region>();
    for (const [index, event] of events.entries()) {
      const [regionName, key, value, tag, possibleDuplicate] = event;
      const region = this.regions.get(regionName);
      if (region === undefined) {
        const error = new StraitError('STRAIT_REGION_NOT_FOUND', { region: regionName, member: `${this.config.name} (site ${this.site})` });
        refused.push({ index, code: error.code, message: error.message });
        continue;
      }
      touched.add(region);
      const held = region.entry(key)?.tag;
      if (held !== undefined && compareTags(held, tag) === 0) this.receiverStatistics.duplicates += 1;
      this.applyAndNotify(region, key, value, tag);
      this.queueForGateways(region, [key, value, tag], possibleDuplicate);
      this.replicate(regionName, [key, value, tag], pending, true);
    }
    for (const region of touched) {
      this.syncSenders(region, pending);
      pending.expect();
      region.sync((error) => {
        if (error !== undefined) pending.abandon(new StraitError('STRAIT_STORAGE', { path: `region ${region.spec.name}`, reason: error.message }, { cause: error }));
        else pending.settle();
      });
    }
    this.metrics.replicated(events.length - refused.length);
    this.receiverStatistics.batches += 1;
    this.receiverStatistics.events += events.length;
    this.receiverStatistics.refused += refused.length;
    pending.settle();
  }

  private onSenderControl(body: RequestBody<'senderControl'>, reply: Reply<'senderControl'>): void {
    const sender = this.senders.get(body.id);
    const results: { member: string; state: string }[] = [];
    const others = body.everyMember === true
      ? serversOf(this.view).filter((member) => member.info.id !== this.infoValue?.id && (member.info.senders ?? []).some((candidate) => candidate.id === body.id))
      : [];
    if (sender === undefined && others.length === 0) throw new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: body.id, member: this.config.name });
    let waiting = others.length + 1;
    const done = () => {
      waiting -= 1;
      if (waiting === 0) reply.ok({ members: results });
    };
    for (const member of others) {
      this.pool.get(member.info.address).request('senderControl', { ...body, everyMember: false }, (error, response) => {
        if (response !== undefined) results.push(...response.members);
        else results.push({ member: member.info.name, state: `error ${error?.code ?? 'STRAIT_INTERNAL'}` });
        done();
      });
    }
    if (sender === undefined) {
      done();
      return;
    }
    const local = () => results.push({ member: this.config.name, state: sender.state });
    switch (body.action) {
      case 'pause':
        sender.pause();
        break;
      case 'resume':
        sender.resume();
        break;
      case 'start':
        sender.start();
        break;
      case 'replayDeadLetters':
        sender.replayDeadLetters();
        break;
      case 'stop':
        sender.stop(body.drainTimeoutMs ?? 0, () => {
          local();
          done();
        });
        return;
    }
    local();
    done();
  }

  private subscribe(connection: Connection, body: RequestBody<'subscribe'>, reply: Reply<'subscribe'>): void {
    this.requireRegion(body.region);
    const client = connection.context as ClientState | undefined;
    if (client === undefined) throw new StraitError('STRAIT_MESSAGE_INVALID', { peer: connection.label, reason: 'only clients subscribe' });
    if (client.subscriptions.size >= SUBSCRIPTIONS_PER_CONNECTION_MAX) {
      throw new StraitError('STRAIT_TOO_MANY_IN_FLIGHT', { limit: SUBSCRIPTIONS_PER_CONNECTION_MAX, peer: connection.label });
    }
    const subscription: Subscription = { id: this.nextSubscriptionId++, region: body.region, connection };
    client.subscriptions.set(subscription.id, subscription);
    let set = this.subscriptionsByRegion.get(body.region);
    if (set === undefined) {
      set = new Set();
      this.subscriptionsByRegion.set(body.region, set);
    }
    set.add(subscription);
    reply.ok({ subscription: subscription.id });
  }
}

function parseGatewayEvents(decoded: unknown, peer: string): GatewayEvent[] {
  if (!Array.isArray(decoded)) throw new StraitError('STRAIT_MESSAGE_INVALID', { peer, reason: 'compressed batch is not a list of events' });
  for (const event of decoded) {
    const valid = Array.isArray(event) && event.length === 5 && typeof event[0] === 'string' && typeof event[1] === 'string'
      && (event[2] === null || event[2] instanceof Uint8Array) && Array.isArray(event[3]) && event[3].length === 4 && typeof event[4] === 'boolean';
    if (!valid) throw new StraitError('STRAIT_MESSAGE_INVALID', { peer, reason: 'compressed batch holds a malformed event' });
  }
  return decoded as GatewayEvent[];
}
