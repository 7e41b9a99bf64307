// A locator: discovery and the membership coordinator of one site.
//
// Every locator is a member of the site's view. The oldest locator in the view coordinates:
// it admits joins, issues views with increasing ids, and removes members silent for longer
// than the member timeout (crashed) or that asked to leave (left) — coordinator.ts. Other
// locators answer discovery and `locate` from their copy of the view, forward joins to the
// coordinator, and take over when every older locator has been silent for the member timeout.
// This class holds the lifecycle, finding (or creating) the site's view at start and after a
// partition, and the table of request handlers; WAN discovery is wan-discovery.ts.
//
// A state machine: handlers run to completion; time and I/O come through the Runtime.

import { StraitError } from '../errors.ts';
import { answering, Connection, type ConnectionHandler, type ConnectionOptions, type IncomingRequest, type Reply } from '../protocol/connection.ts';
import type { MemberInfo, RequestOp, View } from '../protocol/messages.ts';
import type { Address, Listener, Logger, Runtime, Stream, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import type { LocatorConfig } from './config.ts';
import { RouterLinks, routedAddress, routedNetwork, withNetwork } from './router-links.ts';
import { WanDiscovery } from './wan-discovery.ts';
import { ConfigService, mergedRemoteLocators } from './config-service.ts';
import { siteSenders } from './site-senders.ts';
import { Coordinator } from './coordinator.ts';
import { dispatchRequest, reportingInternalErrors, reportingRefusals, type HandlerTable, type InternalErrorSink } from './handlers.ts';
import { MemberAgent } from './member-agent.ts';
import type { MemberAdmin, MemberStartResult, MemberState, MetricsSink, RegionStatus } from './member-admin.ts';
import { addressKey, PeerPool } from './peer-pool.ts';
import { findMember, firstView, locatorsOf, nextView, sameLineage, lineageWins } from './views.ts';

/** Requests in flight per connection, at most, each way. */
const REQUESTS_IN_FLIGHT_MAX = 10_000;
/** Output a peer has not taken, at most, per connection: past it we stop reading its requests. */
const CONNECTION_BUFFERED_BYTES_MAX = 8 * 1024 * 1024;
/** Connections accepted and open at once, at most. */
const CONNECTIONS_MAX = 10_000;
/** Every this many ticks the coordinator looks for other lineages at the configured locators. */
const MERGE_CHECK_TICKS = 5;

export class Locator {
  private readonly runtime: Runtime;
  private readonly config: LocatorConfig;
  private readonly metrics: MetricsSink;
  private readonly log: Logger;
  private readonly connectionOptions: ConnectionOptions;
  private readonly pool: PeerPool;
  private readonly agent: MemberAgent;
  private listener: Listener | undefined;
  private tickTimer: Timer | undefined;
  private infoValue: MemberInfo | undefined;
  private state: MemberState = 'starting';
  private discoveryStartedMs = 0;
  private discoveryInFlight = 0;
  private joinStartedMs = 0;
  private ticks = 0;
  /** Admissions, views, crash detection and takeover (coordinator.ts). */
  private readonly coordinator: Coordinator;
  private readonly inbound = new Set<Connection>();
  private startCallback: ((result: MemberStartResult) => void) | undefined;
  /** WAN discovery: the catalogue of every site, exchanged with the other sites' locators. */
  private readonly discovery: WanDiscovery;
  /** This locator's links to the routers, when it has `routers` (router-links.ts). */
  private readonly routerLinks: RouterLinks | undefined;
  /** Other sites' locators registered on the routers, as last listed. */
  private routedLocators: Address[] = [];
  private routerListInFlight = false;
  /** The site configuration this locator holds with the others (config-service.ts). */
  private readonly configuration: ConfigService;
  /** remote-locators of strait.yaml and of the site configuration. */
  private remoteLocators: readonly Address[];

  readonly admin: MemberAdmin;

  constructor(baseRuntime: Runtime, config: LocatorConfig, metrics: MetricsSink) {
    const routers = config.routers;
    this.routerLinks = routers === undefined || routers.addresses.length === 0
      ? undefined
      : new RouterLinks(baseRuntime, routers.addresses, routers.secret, { accept: (stream) => this.accept(stream) }, baseRuntime.log.child({ member: config.name, role: 'locator', site: config.site }));
    // Everything this locator connects to goes through the routers when addressed `router:...`.
    const runtime = this.routerLinks === undefined ? baseRuntime : withNetwork(baseRuntime, routedNetwork(baseRuntime.network, this.routerLinks));
    this.runtime = runtime;
    this.config = config;
    this.metrics = metrics;
    this.log = runtime.log.child({ member: config.name, role: 'locator', site: config.site });
    this.internalError = reportingInternalErrors(this.log, `locator ${config.name}`, metrics);
    this.connectionOptions = {
      local: { role: 'locator', name: config.name, site: config.site },
      frameBytesMax: config.frameBytesMax,
      requestTimeoutMs: config.timing.requestTimeoutMs,
      requestsInFlightMax: REQUESTS_IN_FLIGHT_MAX,
      incomingRequestsMax: REQUESTS_IN_FLIGHT_MAX,
      bufferedBytesMax: CONNECTION_BUFFERED_BYTES_MAX,
      expectedSite: config.site,
      ...(config.security === undefined ? {} : { security: config.security }),
      onRefusal: reportingRefusals(this.log, `locator ${config.name}`, metrics),
    };
    const handler: ConnectionHandler = {
      onOpen: () => {},
      onRequest: (connection, request, reply) => this.onRequest(connection, request, reply),
      onPush: (_connection, op, body) => {
        if (op === 'view') this.agent.offerView((body as { view: View }).view);
      },
      onClose: () => {},
    };
    this.pool = new PeerPool(runtime, { ...this.connectionOptions, requestTimeoutMs: Math.min(config.timing.requestTimeoutMs, config.timing.memberTimeoutMs) }, handler);
    this.remoteLocators = config.remoteLocators;
    const locator = this;
    this.configuration = new ConfigService(runtime, this.pool, this.connectionOptions, runtime.storage.open('site-config'), {
      name: config.name,
      site: config.site,
      get knownLocators() {
        const known = new Set(config.locators.map(addressKey));
        if (locator.infoValue !== undefined) known.add(addressKey(locator.infoValue.address));
        return Math.max(1, known.size);
      },
      memberId: () => this.infoValue?.id,
      view: () => this.agent.view,
      isCoordinator: () => this.isCoordinator,
      changed: (siteConfig) => {
        this.remoteLocators = mergedRemoteLocators(config.remoteLocators, siteConfig);
      },
    }, this.log);
    this.discovery = new WanDiscovery(runtime, {
      name: config.name,
      site: config.site,
      get remoteLocators() {
        return locator.remoteLocators;
      },
      routed: this.routerLinks !== undefined,
      routedLocators: () => this.routedLocators,
      memberId: () => this.infoValue?.id,
      view: () => this.agent.view,
      ready: () => this.state === 'ready',
    }, this.connectionOptions, handler, this.log);
    this.agent = new MemberAgent(runtime, this.pool, config.locators, config.timing, {
      info: () => this.info,
      load: () => 0,
      ready: () => true,
      onView: (view, previous) => this.installed(view, previous),
      onRemoved: (reason) => this.removed(reason),
      onIsolated: () => {},
      onJoinRefused: (error) => this.fail(error),
    }, this.log);
    this.coordinator = new Coordinator(runtime, this.pool, {
      name: config.name,
      site: config.site,
      timing: config.timing,
      agent: this.agent,
      memberId: () => this.infoValue?.id,
      info: () => this.info,
      state: () => this.state,
      isCoordinator: () => this.isCoordinator,
      installed: (view, previous) => this.installed(view, previous),
    }, this.log);
    this.admin = {
      status: () => ({ info: this.infoValue ?? this.placeholderInfo(), state: this.state, viewId: this.agent.view?.id ?? 0, coordinator: this.agent.view?.coordinator ?? null }),
      view: () => this.agent.view,
      regions: (): RegionStatus[] => [],
      createRegion: (spec, callback) => callback(new StraitError('STRAIT_REGION_INVALID', { region: spec.name, reason: 'regions live on servers; create it through a server' }), undefined),
      senders: () => [],
      receiver: () => null,
      gatewayLinks: () => ({ dialOut: [], dialIn: [] }),
      controlSender: (request, callback) => callback(new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: request.id, member: `${config.name} (a locator; senders run on servers)` }), undefined),
      siteConfig: () => this.configuration.current,
      siteSenders: (callback) => siteSenders(this.pool, this.agent.view, callback),
      catalogue: () => this.discovery.onCatalogue().catalogue,
      changeConfig: (change, callback) => {
        const reply: Reply<'configChange'> = {
          ok: (body) => callback(undefined, body),
          fail: (error) => callback(error, undefined),
        };
        answering(reply as Reply<RequestOp>, () => this.configuration.onChange({ change }, reply));
      },
    };
  }

  /** What status shows before the member has bound its port. */
  private placeholderInfo(): MemberInfo {
    return { id: this.config.name, name: this.config.name, role: 'locator', site: this.config.site, address: this.config.bind, regions: [] };
  }

  get info(): MemberInfo {
    if (this.infoValue === undefined) throw new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: this.state });
    return this.infoValue;
  }

  get isCoordinator(): boolean {
    return this.agent.view !== null && this.infoValue !== undefined && this.agent.view.coordinator === this.infoValue.id;
  }

  /** A stream from the listener, or a tunnel another site's member opened through a router. */
  private accept(stream: Stream): void {
    if (this.inbound.size >= CONNECTIONS_MAX) {
      Connection.refuse(stream, new StraitError('STRAIT_TOO_MANY_CONNECTIONS', { member: this.config.name, limit: CONNECTIONS_MAX }));
      return;
    }
    const connection = Connection.accept(this.runtime, stream, this.connectionOptions, {
      onOpen: () => {},
      onRequest: (from, request, reply) => this.onRequest(from, request, reply),
      onPush: () => {},
      onClose: (closed) => {
        this.inbound.delete(closed);
        this.discovery.connectionClosed(closed);
      },
    });
    this.inbound.add(connection);
  }

  /** Refreshes the other sites' locators the routers hold (a locator with routers needs no remote-locators). */
  private listRouters(): void {
    const links = this.routerLinks;
    if (links === undefined || this.routerListInFlight || !links.registered) return;
    this.routerListInFlight = true;
    links.list((error, response) => {
      this.routerListInFlight = false;
      if (error !== undefined || response === undefined) return;
      this.routedLocators = response.registrations
        .filter((registration) => registration.role === 'locator' && registration.site !== this.config.site)
        .map((registration) => routedAddress(registration.site, registration.name));
    });
  }

  start(callback: (result: MemberStartResult) => void): void {
    this.startCallback = callback;
    const unreadable = this.configuration.load();
    if (unreadable !== undefined) {
      this.fail(unreadable);
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
        const host = this.config.hostnameForClients ?? advertisedHost(result.address.host);
        const suffix = this.runtime.random.int(0x7fffffff).toString(36);
        this.infoValue = {
          id: `${this.config.name}#${suffix}`,
          name: this.config.name,
          role: 'locator',
          site: this.config.site,
          address: { host, port: result.address.port },
          regions: [],
          ...(this.routerLinks !== undefined ? { routed: true } : {}),
          ...(this.config.httpAddress ? { httpAddress: this.config.httpAddress } : {}),
          ...(this.config.pid !== undefined ? { pid: this.config.pid } : {}),
        };
        this.state = 'joining';
        this.discoveryStartedMs = this.runtime.clock.monotonic();
        this.log.info({ address: formatAddress(result.address), advertised: formatAddress(this.info.address) }, `locator ${this.config.name} listening on ${formatAddress(result.address)}; looking for the site's view`);
        this.routerLinks?.start({ site: this.config.site, name: this.config.name, role: 'locator' });
        this.discover();
        this.scheduleTick();
      },
    );
  }

  /** Leaves the view cleanly (the coordinator hands over by issuing a view without it). */
  stop(callback: () => void): void {
    if (this.state === 'stopped') {
      callback();
      return;
    }
    const finish = () => {
      this.state = 'stopped';
      this.agent.stop();
      this.tickTimer?.cancel();
      this.listener?.close();
      this.pool.closeAll();
      this.discovery.stop();
      this.routerLinks?.stop();
      for (const connection of [...this.inbound]) connection.close();
      callback();
    };
    const view = this.agent.view;
    if (view === null || this.infoValue === undefined) {
      finish();
      return;
    }
    this.state = 'leaving';
    const me = this.info.id;
    if (this.isCoordinator) {
      const remaining = locatorsOf(view).filter((locator) => locator.info.id !== me);
      if (remaining.length === 0) {
        finish();
        return;
      }
      // Hand over: issue the view without us; the next oldest locator becomes coordinator.
      const handover = nextView(view, { remove: [{ id: me, name: this.config.name, reason: 'left' }] });
      this.coordinator.broadcast(handover);
      finish();
      return;
    }
    const coordinator = findMember(view, view.coordinator);
    if (coordinator === undefined) {
      finish();
      return;
    }
    this.pool.get(coordinator.info.address).request('leave', { id: me }, () => finish());
  }

  private fail(error: StraitError): void {
    this.log.error({ code: error.code }, `locator ${this.config.name}: ${error.message}`);
    this.state = 'stopped';
    this.agent.stop();
    this.tickTimer?.cancel();
    this.listener?.close();
    this.routerLinks?.stop();
    this.pool.closeAll();
    const callback = this.startCallback;
    this.startCallback = undefined;
    callback?.({ ok: false, error });
  }

  private scheduleTick(): void {
    this.tickTimer = this.runtime.setTimer(this.config.timing.heartbeatIntervalMs, () => {
      if (this.state === 'stopped') return;
      this.tick();
      this.scheduleTick();
    });
  }

  private tick(): void {
    this.ticks += 1;
    if (this.agent.view === null) {
      this.discover();
      return;
    }
    if (this.isCoordinator) {
      this.coordinator.detectCrashes();
      if (this.ticks % MERGE_CHECK_TICKS === 0) this.lookForOtherLineages();
    } else {
      this.agent.tick();
      this.coordinator.maybeTakeOver();
    }
    this.listRouters();
    this.discovery.tick();
  }

  // ---- Discovery: find an existing view, or create the first one ----

  private discover(): void {
    if (this.agent.state === 'joining') {
      // Joining through a view whose coordinator is gone (every locator restarted, say) can
      // never succeed: after a while, look again, and create the view if nobody has one.
      const joiningMs = this.runtime.clock.monotonic() - this.joinStartedMs;
      if (joiningMs < Math.max(2 * this.config.timing.memberTimeoutMs, 3 * this.config.timing.discoveryTimeoutMs)) {
        this.agent.tick();
        return;
      }
      this.log.warn({ joiningMs }, `locator ${this.config.name}: no coordinator admitted us for ${Math.round(joiningMs)} ms; looking for the site's view again`);
      this.agent.state = 'idle';
      this.discoveryStartedMs = this.runtime.clock.monotonic();
    }
    if (this.agent.state === 'member' || this.discoveryInFlight > 0) return;
    const self = addressKey(this.info.address);
    const peers = this.config.locators.filter((address) => addressKey(address) !== self);
    const elapsed = this.runtime.clock.monotonic() - this.discoveryStartedMs;
    if (peers.length === 0) {
      this.createView();
      return;
    }
    let youngerOnly = true;
    let answered = 0;
    let foundView: { view: View; from: Address } | undefined;
    this.discoveryInFlight = peers.length;
    for (const peer of peers) {
      this.pool.get(peer).request('getView', {}, (error, response) => {
        this.discoveryInFlight -= 1;
        if (error === undefined && response !== undefined) {
          answered += 1;
          if (response.view !== null) foundView ??= { view: response.view, from: peer };
          else if (addressKey(response.self.address) < self) youngerOnly = false;
        }
        if (this.discoveryInFlight > 0 || this.agent.view !== null || this.state !== 'joining') return;
        if (foundView !== undefined) {
          this.log.info({ via: formatAddress(foundView.from), viewId: foundView.view.id }, `locator ${this.config.name}: found the site's view at ${formatAddress(foundView.from)}; joining`);
          this.joinStartedMs = this.runtime.clock.monotonic();
          this.agent.join();
          return;
        }
        // Nobody has a view. The locator with the lowest address among those answering
        // creates it, so locators started together agree on one; after the discovery
        // timeout a locator that hears from no one creates its own.
        if ((answered > 0 && youngerOnly) || (answered === 0 && elapsed >= this.config.timing.discoveryTimeoutMs)) {
          this.createView();
        }
      });
    }
  }

  private createView(): void {
    if (this.agent.view !== null) return;
    const view = firstView(this.config.site, this.info, this.runtime.clock.now());
    this.log.info({ viewId: view.id }, `locator ${this.config.name}: no view found at ${this.config.locators.map(formatAddress).join(', ') || 'any configured locator'}; created view 1 of site ${this.config.site} as coordinator`);
    this.agent.state = 'member';
    this.agent.view = view;
    this.installed(view, null);
  }

  // ---- Views ----

  private installed(view: View, previous: View | null): void {
    this.coordinator.viewInstalled(view);
    this.metrics.viewInstalled(view.id, view.members.length);
    this.discovery.viewInstalled(view);
    if (previous === null || previous.coordinator !== view.coordinator || !sameLineage(previous, view)) {
      this.log.info({ viewId: view.id, coordinator: view.coordinator, members: view.members.length }, `locator ${this.config.name}: installed view ${view.id} with ${view.members.length} members; coordinator ${view.coordinator}`);
    }
    if (this.state === 'joining') {
      this.state = 'ready';
      const callback = this.startCallback;
      this.startCallback = undefined;
      callback?.({ ok: true, address: this.info.address });
    }
  }

  private removed(reason: string): void {
    if (this.state === 'stopped' || this.state === 'leaving') return;
    this.log.warn({ reason }, `locator ${this.config.name}: removed from the view (${reason}); rejoining`);
    this.agent.view = null;
    this.state = 'joining';
    this.discoveryStartedMs = this.runtime.clock.monotonic();
    this.joinStartedMs = this.discoveryStartedMs;
    this.agent.state = 'idle';
    this.agent.join();
  }

  /** Coordinator: if a configured locator coordinates an older lineage (after a partition), join it. */
  private lookForOtherLineages(): void {
    const view = this.agent.view;
    if (view === null) return;
    const inView = new Set(view.members.map((member) => addressKey(member.info.address)));
    for (const address of this.config.locators) {
      if (inView.has(addressKey(address))) continue;
      this.pool.get(address).request('getView', {}, (error, response) => {
        const current = this.agent.view;
        if (error !== undefined || response === undefined || response.view === null || current === null || !this.isCoordinator) return;
        if (sameLineage(response.view, current) || !lineageWins(response.view, current)) return;
        this.log.warn({ other: formatAddress(address), lineage: response.view.lineage }, `coordinator ${this.config.name}: locator at ${formatAddress(address)} coordinates an older view lineage of site ${this.config.site}; merging into it`);
        // Our members stop hearing from a coordinator and rejoin through the locators, which
        // forward to the surviving coordinator.
        this.agent.view = null;
        this.state = 'joining';
        this.joinStartedMs = this.runtime.clock.monotonic();
        this.agent.state = 'idle';
        this.agent.join();
      });
    }
  }

  // ---- Requests ----

  private onRequest(connection: Connection, request: IncomingRequest, reply: Reply<RequestOp>): void {
    dispatchRequest(this.handlers, 'locator', connection, request, reply, this.internalError);
  }

  private readonly internalError: InternalErrorSink;

  private readonly handlers: HandlerTable = {
    ping: (_connection, _body, reply) => reply.ok({}),
    memberInfo: (_connection, _body, reply) => reply.ok({ info: this.info, state: this.state, viewId: this.agent.view?.id ?? 0 }),
    getView: (_connection, _body, reply) => reply.ok({ view: this.agent.view, self: this.info, state: this.state }),
    join: (connection, body, reply) => this.coordinator.onJoin(connection, body, reply),
    leave: (_connection, body, reply) => this.coordinator.onLeave(body, reply),
    heartbeat: (connection, body, reply) => {
      this.coordinator.onHeartbeat(connection, body, reply);
      const member = findMember(this.agent.view, body.id);
      if (member !== undefined) this.configuration.heard(member, body.configVersion);
    },
    siteConfig: (_connection, _body, reply) => reply.ok(this.configuration.onGet()),
    configChange: (_connection, body, reply) => this.configuration.onChange(body, reply),
    configCommit: (_connection, body, reply) => this.configuration.onCommit(body, reply),
    locate: (_connection, body, reply) => reply.ok(this.coordinator.locate(body)),
    bucketsCreate: (_connection, body, reply) => this.coordinator.onPartitionRequest('bucketsCreate', body, reply),
    bucketReady: (_connection, body, reply) => this.coordinator.onPartitionRequest('bucketReady', body, reply),
    rebalance: (_connection, body, reply) => this.coordinator.onRebalance(body, reply),
    wanExchange: (connection, body, reply) => reply.ok(this.discovery.onExchange(connection, body)),
    catalogue: (_connection, _body, reply) => reply.ok(this.discovery.onCatalogue()),
  };

}

/** The host to advertise when none is configured: a wildcard bind advertises loopback. */
export function advertisedHost(boundHost: string): string {
  if (boundHost === '0.0.0.0' || boundHost === '::' || boundHost === '') return '127.0.0.1';
  return boundHost;
}
