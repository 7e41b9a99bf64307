// A server: a member hosting replicated regions and serving clients.
//
// Lifecycle: listen (and the gateway receiver, if any) → learn the site id from a locator
// when not configured → join the view → take initial images of its regions from every older
// server → ready (serves clients, reported in heartbeats).
//
// The parts, each with its own narrow interface: the region table (region-table.ts), the write
// path with replication to the other servers (write-path.ts, replication.ts), initial images
// (initial-image.ts), client subscriptions (subscriptions.ts), the gateway receiver
// (gateway-receiver.ts) and the gateway senders it hosts (sender-hosting.ts). This class holds
// the lifecycle, the membership hooks and the table of request handlers.
//
// A state machine: handlers run to completion; time and I/O come through the Runtime.

import { StraitError, assert } from '../errors.ts';
import { answering, Connection, type ConnectionHandler, type ConnectionOptions, type IncomingRequest, type Reply } from '../protocol/connection.ts';
import type { MemberInfo, RequestBody, RequestOp, ResponseBody, SenderStatus, View } from '../protocol/messages.ts';
import type { Address, Listener, Logger, Runtime, Stream, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { learnSiteId } from './site-id.ts';
import type { GatewayReceiverSpec, ServerConfig } from './config.ts';
import { ServerConfiguration } from './server-configuration.ts';
import { forwardChange } from './config-service.ts';
import { siteSenders } from './site-senders.ts';
import { GatewayReceiver, type ReceiverStatistics } from './gateway-receiver.ts';
import { DialOutLinks, type DialOutLinkStatus } from './dial-out.ts';
import { RouterLinks, routedNetwork, withNetwork } from './router-links.ts';
import { dispatchRequest, reportingInternalErrors, reportingRefusals, type HandlerTable, type InternalErrorSink } from './handlers.ts';
import { InitialImage } from './initial-image.ts';
import { KeyPager } from './key-pager.ts';
import { regionRequestHandlers } from './region-requests.ts';
import { advertisedHost } from './locator.ts';
import { MemberAgent } from './member-agent.ts';
import type { MemberAdmin, MemberStartResult, MemberState, MetricsSink } from './member-admin.ts';
import { PeerPool } from './peer-pool.ts';
import type { Region } from './region.ts';
import { RegionTable } from './region-table.ts';
import { RegionCreation } from './region-creation.ts';
import { PartitionedRegions } from './partitioned-regions.ts';
import { SenderHosting } from './sender-hosting.ts';
import { Subscriptions } from './subscriptions.ts';
import { findMember } from './views.ts';
import { WritePath } from './write-path.ts';

/** Requests in flight per outgoing connection, at most. */
const REQUESTS_IN_FLIGHT_MAX = 10_000;
/** Requests from one peer awaiting our reply, at most; more are refused (STRAIT_TOO_MANY_IN_FLIGHT). */
export const INCOMING_REQUESTS_MAX = 10_000;
/**
 * Output a peer has not taken, at most, per connection: past it we stop reading its requests
 * until it drains, and subscriptions on it are cut off (STRAIT_SUBSCRIBER_TOO_SLOW).
 */
export const CONNECTION_BUFFERED_BYTES_MAX = 8 * 1024 * 1024;
/** Connections accepted and open at once (clients, peers, other sites' senders), at most. */
export const CONNECTIONS_MAX = 10_000;
/**
 * What a gateway receiver's port serves: other sites' batches, and the links of dial-out sites'
 * receivers (which attach there; the batches then flow the other way). Nothing else: the port
 * faces other sites, and often the internet.
 */
export const RECEIVER_PORT_OPERATIONS: ReadonlySet<RequestOp> = new Set<RequestOp>(['gatewayBatch', 'gatewayAttach', 'ping']);
/** Tombstones are kept this long so late writes can't resurrect deleted keys. */
export const TOMBSTONE_TIMEOUT_MS = 10 * 60 * 1000;
/** Tombstones looked at per tick by the sweep, at most. */
const TOMBSTONE_PURGE_PER_TICK = 10_000;

export class Server {
  private readonly runtime: Runtime;
  private readonly config: ServerConfig;
  private readonly metrics: MetricsSink;
  private readonly log: Logger;
  private connectionOptions: ConnectionOptions;
  private readonly pool: PeerPool;
  private agent: MemberAgent | undefined;
  private listener: Listener | undefined;
  private tickTimer: Timer | undefined;
  private state: MemberState = 'starting';
  private site: number | undefined;
  private infoValue: MemberInfo | undefined;
  private readonly inbound = new Set<Connection>();
  private clientCount = 0;
  private startCallback: ((result: MemberStartResult) => void) | undefined;
  private readonly regions: RegionTable;
  private readonly subscriptions: Subscriptions;
  private readonly senders: SenderHosting;
  private readonly writes: WritePath;
  private readonly images: InitialImage;
  private readonly creation: RegionCreation;
  /** Partitioned regions: routing to bucket primaries, bucket images, recovery (partitioned-regions.ts). */
  private readonly partitions: PartitionedRegions;
  /** Sorted key snapshots for paged replies (images, keys). */
  private readonly pager = new KeyPager();
  /** The gateway receiver: from strait.yaml, or created by the site configuration. */
  private receiver: GatewayReceiver | undefined;
  private receiverSpec: GatewayReceiverSpec | undefined;
  /** This server's links to the routers, when it has `routers` (router-links.ts). */
  private readonly routerLinks: RouterLinks | undefined;
  /** The gateway receiver's links, when it dials out instead of listening (dial-out.ts). */
  private dialOut: DialOutLinks | undefined;
  /** The site configuration this server runs beside its strait.yaml (server-configuration.ts). */
  private readonly configuration: ServerConfiguration;
  private bound: Address | undefined;
  private fatalError: StraitError | undefined;
  private fatalListener: ((error: StraitError) => void) | undefined;

  readonly admin: MemberAdmin;

  constructor(baseRuntime: Runtime, config: ServerConfig, metrics: MetricsSink) {
    const routers = config.routers;
    this.routerLinks = routers === undefined || routers.addresses.length === 0
      ? undefined
      : new RouterLinks(baseRuntime, routers.addresses, routers.secret, { accept: (stream) => this.accept(stream) }, baseRuntime.log.child({ member: config.name, role: 'server' }));
    // Connections to `router:...` addresses (other sites' receivers) go through the routers.
    const runtime = this.routerLinks === undefined ? baseRuntime : withNetwork(baseRuntime, routedNetwork(baseRuntime.network, this.routerLinks));
    this.runtime = runtime;
    this.config = config;
    this.metrics = metrics;
    this.site = config.site;
    this.log = runtime.log.child({ member: config.name, role: 'server' });
    this.regions = new RegionTable(runtime.storage, config.name, config.conflictResolver, this.log);
    this.subscriptions = new Subscriptions(config.name, CONNECTION_BUFFERED_BYTES_MAX, (cut) => {
      metrics.subscriberCut();
      this.log.warn({ code: 'STRAIT_SUBSCRIBER_TOO_SLOW', client: cut.connection, region: cut.region, bufferedBytes: cut.bytes }, `server ${config.name}: ended the subscription of ${cut.connection} to ${cut.region}: ${cut.bytes} bytes of its events not taken (limit ${CONNECTION_BUFFERED_BYTES_MAX}); it may subscribe again`);
    });
    this.internalError = reportingInternalErrors(this.log, `server ${config.name}`, metrics);
    this.connectionOptions = this.makeConnectionOptions();
    this.pool = this.makePool();
    this.senders = new SenderHosting(runtime, this.pool, {
      memberName: config.name,
      locators: config.locators,
      hasReceiver: () => this.receiverSpec !== undefined,
      routed: this.routerLinks !== undefined,
      view: () => this.view,
      info: () => this.infoValue,
      ready: () => this.state === 'ready',
      storageFailed: (error) => this.storageFailed(error),
      bucketOf: (region, key) => {
        const found = this.regions.get(region);
        return found?.spec.partition === undefined ? undefined : found.bucketOf(key);
      },
      holdsBucket: (region, bucket) => this.partitions.mayHold(region, bucket),
      eventFilter: (path) => config.eventFilters?.get(path),
      partitionedRegions: () => [...this.regions.all()].filter((region) => region.spec.partition !== undefined).map((region) => region.spec.name),
      regionsUsing: (senderId) => [...this.regions.all()].filter((region) => region.spec.partition !== undefined && (region.spec.gatewaySenderIds ?? []).includes(senderId)).map((region) => region.spec.name),
    }, this.log);
    this.writes = new WritePath(runtime, this.pool, {
      memberName: config.name,
      info: () => this.info,
      state: () => this.state,
      storageFailed: (error) => this.storageFailed(error),
    }, { regions: this.regions, subscriptions: this.subscriptions, gateways: this.senders }, metrics, this.log);
    this.images = new InitialImage(runtime, this.pool, {
      memberName: config.name,
      view: () => this.view,
      memberId: () => this.infoValue?.id,
      initializing: () => this.state === 'initializing',
      ready: () => this.state === 'ready',
      imagesComplete: () => this.regionsImaged(),
    }, this.regions, this.writes, this.pager);
    this.creation = new RegionCreation(runtime, this.pool, {
      memberName: config.name,
      memberId: () => this.infoValue?.id,
      view: () => this.view,
      running: () => this.state !== 'stopped' && this.state !== 'leaving',
    }, this.regions, this.log);
    this.partitions = new PartitionedRegions(runtime, this.pool, {
      memberName: config.name,
      memberId: () => this.infoValue?.id,
      view: () => this.view,
      ready: () => this.state === 'ready',
      offerView: (view) => this.agent?.offerView(view),
      requestTimeoutMs: config.timing.requestTimeoutMs,
      bucketQueues: (region, bucket, viewId, stillPending, done) => this.senders.takeBucketQueues(region, bucket, viewId, stillPending, done),
    }, { regions: this.regions, writes: this.writes, pager: this.pager }, this.log);
    this.writes.buckets = this.partitions;
    this.handlers = this.makeHandlers(regionRequestHandlers({
      memberName: config.name, valueBytesMax: config.valueBytesMax, requireReady: () => this.requireReady(),
      regions: this.regions, writes: this.writes, pager: this.pager, subscriptions: this.subscriptions, creation: this.creation,
      partitions: this.partitions,
    }));
    if (config.gatewayReceiver !== undefined) this.makeReceiver(config.gatewayReceiver);
    this.configuration = new ServerConfiguration(runtime, this.pool, {
      memberName: config.name,
      locators: config.locators,
      stopped: () => this.state === 'stopped',
      receiver: () => this.receiverSpec,
      startReceiver: (spec, done) => {
        this.makeReceiver(spec);
        this.startReceiver(done);
      },
      stopReceiver: () => this.stopReceiver(),
      infoChanged: () => this.refreshInfo(),
    }, { regions: config.regions, senders: config.gatewaySenders, receiver: config.gatewayReceiver }, { regions: this.regions, senders: this.senders }, this.log);
    this.admin = {
      status: () => ({ info: this.infoValue ?? this.placeholderInfo(), state: this.state, viewId: this.view?.id ?? 0, coordinator: this.view?.coordinator ?? null }),
      view: () => this.view,
      regions: () => this.regions.statuses(),
      createRegion: (spec, callback) => this.creation.createEverywhere(spec, callback),
      senders: () => this.senders.statuses(),
      receiver: () => this.receiver?.address ?? null,
      gatewayLinks: () => ({ dialOut: this.dialOutLinks(), dialIn: this.senders.dialInLinks() }),
      controlSender: (request, callback) => {
        const reply: Reply<'senderControl'> = {
          ok: (body) => callback(undefined, body.members),
          fail: (error) => callback(error, undefined),
        };
        answering(reply as Reply<RequestOp>, () => this.senders.onControl(request, reply));
      },
      siteSenders: (callback) => siteSenders(this.pool, this.view, callback),
      catalogue: () => this.senders.catalogueEntries(),
      siteConfig: () => (this.configuration.version === 0 && this.state === 'starting' ? null : this.configuration.current),
      // A server passes a change on to a locator of its view, which runs it (config-service.ts).
      changeConfig: (change, callback) => {
        const locator = this.view?.members.find((member) => member.info.role === 'locator')?.info.address ?? this.config.locators[0]!;
        forwardChange(this.runtime, locator, this.connectionOptions, { change }, callback);
      },
    };
  }

  /** The receiver part for `spec`: listening, or dialing out (dial-out.ts). */
  private makeReceiver(spec: GatewayReceiverSpec): void {
    this.receiverSpec = spec;
    this.receiver = new GatewayReceiver(this.runtime, spec, {
      memberName: this.config.name,
      site: () => this.site,
      requireReady: () => this.requireReady(),
    }, { regions: this.regions, writes: this.writes, gateways: this.senders, partitions: this.partitions }, this.metrics, this.log);
    this.dialOut = spec.dialOut === true ? new DialOutLinks(this.runtime, {
      memberName: this.config.name,
      frameBytesMax: this.config.frameBytesMax,
      site: () => this.site,
      ready: () => this.state === 'ready',
      catalogue: () => this.senders.catalogueEntries(),
      serve: (connection, request, reply) => this.onRequest(connection, request, reply),
    }, this.log) : undefined;
  }

  /** Starts the receiver made by makeReceiver (a dial-out one opens its links once the server is ready). */
  private startReceiver(done: (error: StraitError | undefined) => void): void {
    const receiver = this.receiver;
    const spec = this.receiverSpec;
    if (receiver === undefined || spec === undefined || spec.manualStart || this.dialOut !== undefined) {
      done(undefined);
      return;
    }
    const advertise = (bound: Address): Address => ({
      host: spec.hostnameForClients ?? this.config.hostnameForClients ?? advertisedHost(bound.host),
      port: bound.port,
    });
    receiver.start(this.config.bind.host, advertise, (stream) => this.accept(stream, RECEIVER_PORT_OPERATIONS), (error) => {
      if (error !== undefined) {
        receiver.close();
        if (this.receiver === receiver) {
          this.receiver = undefined;
          this.receiverSpec = undefined;
          this.dialOut = undefined;
        }
      }
      done(error);
    });
  }

  private stopReceiver(): void {
    this.receiver?.close();
    this.dialOut?.stop();
    this.receiver = undefined;
    this.receiverSpec = undefined;
    this.dialOut = undefined;
    this.log.info({}, `server ${this.config.name}: gateway receiver destroyed by the site configuration`);
  }

  private makeConnectionOptions(): ConnectionOptions {
    return {
      local: { role: 'server', name: this.config.name, site: this.site ?? null },
      frameBytesMax: this.config.frameBytesMax,
      requestTimeoutMs: this.config.timing.requestTimeoutMs,
      requestsInFlightMax: REQUESTS_IN_FLIGHT_MAX,
      incomingRequestsMax: INCOMING_REQUESTS_MAX,
      bufferedBytesMax: CONNECTION_BUFFERED_BYTES_MAX,
      ...(this.site !== undefined ? { expectedSite: this.site } : {}),
      ...(this.config.security === undefined ? {} : { security: this.config.security }),
      onRefusal: reportingRefusals(this.log, `server ${this.config.name}`, this.metrics),
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

  /** What the gateway receiver took in (zeros when there is none). */
  get receiverStatistics(): ReceiverStatistics {
    return this.receiver?.statistics ?? { batches: 0, events: 0, duplicates: 0, unflaggedDuplicates: 0, refused: 0 };
  }

  /** Sites this server's copy of the WAN catalogue knows, with their edges (tests, status). */
  knownSites(): { site: number; edges: readonly number[]; receivers: number }[] {
    return this.senders.knownSites();
  }

  /** The dial-out receiver's links (empty unless `gateway-receiver: { dial-out: true }`). */
  dialOutLinks(): DialOutLinkStatus[] {
    return this.dialOut?.statuses() ?? [];
  }

  /** Status of every gateway sender hosted here. */
  senderStatuses(): SenderStatus[] {
    return this.senders.statuses();
  }

  /** Test and simulator access to a region's contents. */
  region(name: string): Region | undefined {
    return this.regions.get(name);
  }

  // ---- Lifecycle ----

  start(callback: (result: MemberStartResult) => void): void {
    this.startCallback = callback;
    try {
      for (const spec of this.config.regions) this.regions.open(spec);
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
        this.startReceiver((error) => {
          if (error !== undefined) this.fail(error);
          else this.resolveSite(result.address);
        });
      },
    );
  }

  /** A server without --site-id takes its locator's (site-id.ts). */
  private resolveSite(bound: Address): void {
    if (this.state === 'stopped') return;
    if (this.site !== undefined) {
      this.begin(bound);
      return;
    }
    const search = { memberName: this.config.name, locators: this.config.locators, options: this.connectionOptions, stopped: () => this.state === 'stopped' };
    learnSiteId(this.runtime, search, this.log, (site) => {
      if (site instanceof StraitError) {
        this.fail(site);
        return;
      }
      this.site = site;
      this.connectionOptions = this.makeConnectionOptions();
      this.pool.reconfigure(this.connectionOptions);
      this.begin(bound);
    });
  }

  /**
   * The site is known: open the declared senders, then fetch and run the site configuration
   * (server-configuration.ts) before joining, so the server serves with it from the start.
   */
  private begin(bound: Address): void {
    assert(this.site !== undefined, 'site resolved before joining');
    this.bound = bound;
    const refused = this.senders.open(this.site, this.config.gatewaySenders);
    if (refused !== undefined) {
      this.fail(refused);
      return;
    }
    this.configuration.fetch((siteConfig) => {
      this.configuration.apply(siteConfig, (error) => {
        if (this.state === 'stopped') return;
        if (error !== undefined) this.fail(error);
        else this.join();
      });
    });
  }

  /** What the view says of this server: its address, regions, receiver and senders as running now. */
  private describe(id: string): MemberInfo {
    assert(this.site !== undefined && this.bound !== undefined, 'site and port known before describing the member');
    const host = this.config.hostnameForClients ?? advertisedHost(this.bound.host);
    const receiver = this.receiver?.address;
    const senders = this.senders.specs();
    return {
      id,
      name: this.config.name,
      role: 'server',
      site: this.site,
      address: { host, port: this.bound.port },
      regions: this.regions.names(),
      ...(receiver ? { receiver } : {}),
      ...(this.dialOut !== undefined ? { dialOut: true } : {}),
      ...(this.routerLinks !== undefined ? { routed: true } : {}),
      ...(senders.length > 0 ? { senders: senders.map((sender) => ({ id: sender.id, remoteSite: sender.remoteSiteId })) } : {}),
      ...(this.config.httpAddress ? { httpAddress: this.config.httpAddress } : {}),
      ...(this.config.pid !== undefined ? { pid: this.config.pid } : {}),
    };
  }

  /** Regions, senders or the receiver changed at runtime: the next heartbeat carries the new info. */
  private refreshInfo(): void {
    if (this.infoValue === undefined) return;
    this.infoValue = this.describe(this.infoValue.id);
    this.agent?.tick();
    if (this.state === 'ready') {
      this.dialOut?.tick();
      this.senders.fetchCatalogue();
    }
  }

  private join(): void {
    assert(this.site !== undefined, 'site resolved before joining');
    this.infoValue = this.describe(this.newMemberId());
    this.log.info({ site: this.site }, `server ${this.config.name}: site ${this.site}; joining`);
    this.routerLinks?.start({ site: this.site, name: this.config.name, role: 'server' });
    this.agent = new MemberAgent(this.runtime, this.pool, this.config.locators, this.config.timing, {
      info: () => this.info,
      load: () => this.clientCount,
      ready: () => this.state === 'ready',
      configVersion: () => this.configuration.version,
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
      this.receiver?.close();
      this.dialOut?.stop();
      this.routerLinks?.stop();
      this.senders.close();
      this.writes.abandonAll(new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: 'stopping' }));
      this.pool.closeAll();
      for (const connection of [...this.inbound]) connection.close();
      let syncing = this.regions.count;
      if (syncing === 0) {
        callback();
        return;
      }
      for (const region of this.regions.all()) region.sync(() => {
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

  /** Called once if the member stops on its own after it started (its disk failed). */
  onFatal(listener: (error: StraitError) => void): void {
    this.fatalListener = listener;
  }

  /**
   * This member's disk refused a commit. Its memory may now hold writes its disk does not, so
   * it stops serving and leaves the view: the writes waiting on that commit failed
   * (STRAIT_STORAGE), every write acknowledged earlier is on the other replicas, and a restart
   * once the disk is fixed recovers from disk and images.
   */
  private storageFailed(error: StraitError): void {
    if (this.fatalError !== undefined || this.state === 'stopped') return;
    this.fatalError = error;
    this.log.error({ code: error.code }, `server ${this.config.name}: ${error.message}; stopping this member — its memory may hold writes its disk lacks. Fix the disk, then start it again: it recovers from disk and from the other servers`);
    this.stop(() => this.fatalListener?.(error));
  }

  private fail(error: StraitError): void {
    this.log.error({ code: error.code }, `server ${this.config.name}: ${error.message}`);
    this.state = 'stopped';
    this.agent?.stop();
    this.tickTimer?.cancel();
    this.listener?.close();
    this.receiver?.close();
    this.dialOut?.stop();
    this.routerLinks?.stop();
    this.senders.close();
    this.pool.closeAll();
    const callback = this.startCallback;
    this.startCallback = undefined;
    callback?.({ ok: false, error });
  }

  private scheduleTick(): void {
    this.tickTimer = this.runtime.setTimer(this.config.timing.heartbeatIntervalMs, () => {
      if (this.state === 'stopped') return;
      this.agent?.tick();
      this.senders.tick();
      this.dialOut?.tick();
      const cutoff = this.runtime.clock.now() - TOMBSTONE_TIMEOUT_MS;
      for (const region of this.regions.all()) region.purgeTombstones(cutoff, TOMBSTONE_PURGE_PER_TICK);
      this.scheduleTick();
    });
  }

  // ---- Regions ----

  private requireReady(): void {
    if (this.state !== 'ready') throw new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: this.state });
  }

  // ---- Views ----

  private installed(view: View, previous: View | null): void {
    this.metrics.viewInstalled(view.id, view.members.length);
    this.writes.viewInstalled(view);
    this.senders.viewInstalled(view);
    this.partitions.viewInstalled(view);
    if (previous === null || this.state === 'joining') {
      this.log.info({ viewId: view.id, members: view.members.length }, `server ${this.config.name}: joined view ${view.id} of site ${view.site}`);
      this.state = 'initializing';
      this.images.take(view);
    }
  }

  private removed(reason: string): void {
    if (this.state === 'stopped' || this.state === 'leaving') return;
    this.log.warn({ reason }, `server ${this.config.name}: removed from the view (${reason}); rejoining as a new member and taking fresh images`);
    this.writes.abandonAll(new StraitError('STRAIT_NOT_MEMBER', { member: this.config.name, site: this.info.site }));
    // Keep the data: it may hold acknowledged writes the others lost while we were out. The
    // fresh images bring what we missed (tombstones included) and we push back what they lack.
    this.infoValue = { ...this.info, id: this.newMemberId() };
    this.state = 'joining';
    this.agent?.join();
  }

  /**
   * The regions are imaged; the gateway senders' queues come next, so that this member holds
   * every queued event before it counts as a copy that can take over.
   */
  private regionsImaged(): void {
    const view = this.view;
    if (this.state !== 'initializing' || view === null) return;
    const joinedIn = view.id;
    const member = this.infoValue?.id;
    const current = () => this.state === 'initializing' && this.infoValue?.id === member;
    // Buckets of partitioned regions this server holds are offered before it serves.
    this.partitions.recover(() => {
      if (current()) this.senders.takeImages(joinedIn, current, () => this.becomeReady());
    });
  }

  private becomeReady(): void {
    if (this.state !== 'initializing') return;
    this.state = 'ready';
    this.log.info({ regions: this.regions.count, entries: this.regions.totalEntries() }, `server ${this.config.name}: ready with ${this.regions.count} regions, ${this.regions.totalEntries()} entries`);
    // Now serving: buckets assigned elsewhere meanwhile are dropped here.
    if (this.view !== null) this.partitions.viewInstalled(this.view);
    const callback = this.startCallback;
    this.startCallback = undefined;
    callback?.({ ok: true, address: this.info.address });
    // Tell the coordinator at once rather than at the next heartbeat, so clients find us.
    this.agent?.tick();
    this.senders.fetchCatalogue();
  }

  // ---- Connections and requests ----

  /** Takes a stream accepted on the server port (every operation), or the receiver's (`served` only). */
  private accept(stream: Stream, served?: ReadonlySet<RequestOp>): void {
    if (this.inbound.size >= CONNECTIONS_MAX) {
      Connection.refuse(stream, new StraitError('STRAIT_TOO_MANY_CONNECTIONS', { member: this.config.name, limit: CONNECTIONS_MAX }));
      return;
    }
    const options = served === undefined ? this.connectionOptions : { ...this.connectionOptions, servedOperations: served };
    const connection = Connection.accept(this.runtime, stream, options, {
      onOpen: (opened) => {
        if (opened.peer?.role === 'client' || opened.peer?.role === 'admin') {
          this.subscriptions.attach(opened);
          this.clientCount += 1;
          this.metrics.clients(this.clientCount);
        }
      },
      onRequest: (from, request, reply) => this.onRequest(from, request, reply),
      onPush: () => {},
      onClose: (closed, error) => {
        this.inbound.delete(closed);
        this.senders.connectionClosed(closed, error);
        if (this.subscriptions.detach(closed)) {
          this.clientCount -= 1;
          this.metrics.clients(this.clientCount);
        }
        this.pager.connectionClosed(closed.number);
      },
    });
    this.inbound.add(connection);
  }

  private onRequest(connection: Connection, request: IncomingRequest, reply: Reply<RequestOp>): void {
    const startedMs = this.runtime.clock.monotonic();
    // A client's batch counts as the gets or puts it carries, refused entries as failed ones.
    const batch = batchedOperations(request);
    const observed: Reply<RequestOp> = {
      ok: (body) => {
        const elapsedMs = this.runtime.clock.monotonic() - startedMs;
        if (batch === undefined) {
          this.metrics.operation(request.op, elapsedMs, true);
        } else {
          const refused = (body as ResponseBody<'putBatch'>).refused.length;
          if (batch.count > refused) this.metrics.operation(batch.op, elapsedMs, true, batch.count - refused);
          if (refused > 0) this.metrics.operation(batch.op, elapsedMs, false, refused);
        }
        reply.ok(body);
      },
      fail: (error) => {
        this.metrics.operation(batch?.op ?? request.op, this.runtime.clock.monotonic() - startedMs, false, batch?.count ?? 1);
        reply.fail(error);
      },
    };
    dispatchRequest(this.handlers, 'server', connection, request, observed, this.internalError);
  }

  private readonly internalError: InternalErrorSink;
  private readonly handlers: HandlerTable;

  /** One handler per operation: the region operations (region-requests.ts), then the members'. */
  private makeHandlers(regionRequests: HandlerTable): HandlerTable {
    return {
      ping: (_connection, _body, reply) => reply.ok({}),
      memberInfo: (_connection, _body, reply) => reply.ok({ info: this.info, state: this.state, viewId: this.view?.id ?? 0 }),
      ...regionRequests,
      replicate: (connection, body, reply) => this.writes.onReplicate(body, reply, connection.peer?.name),
      image: (connection, body, reply) => this.images.serve(connection, body, reply),
      gatewayBatch: (connection, body, reply) => {
        if (this.receiver === undefined) throw new StraitError('STRAIT_MESSAGE_INVALID', { peer: connection.label, reason: `${this.config.name} runs no gateway receiver` });
        this.receiver.onBatch(connection, body, reply);
      },
      gatewayAttach: (connection, body, reply) => reply.ok(this.senders.onAttach(connection, body)),
      senderAck: (connection, body, reply) => this.senders.onAck(connection.peer?.name, body, reply),
      senderHandoff: (_connection, body, reply) => this.senders.onHandoff(body, reply),
      senderImage: (_connection, body, reply) => this.senders.onImage(body, reply),
      senderStatus: (_connection, body, reply) => this.senders.onStatus(body, reply),
      senderControl: (_connection, body, reply) => this.senders.onControl(body, reply),
      configApply: (_connection, body, reply) => this.configuration.apply(body.config, (error) => {
        if (error !== undefined) reply.fail(error);
        else reply.ok({ version: this.configuration.version });
      }),
    };
  }
}

/** The operation a client's batch carries and how many, or undefined for any other request. */
function batchedOperations(request: IncomingRequest): { op: 'put' | 'get'; count: number } | undefined {
  // The body was parsed against the operation's schema before a handler sees it.
  if (request.op === 'putBatch') return { op: 'put', count: (request.body as RequestBody<'putBatch'>).entries.length };
  if (request.op === 'getBatch') return { op: 'get', count: (request.body as RequestBody<'getBatch'>).keys.length };
  return undefined;
}
