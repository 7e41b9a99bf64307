// A locator: discovery and the membership coordinator of one site.
//
// Every locator is a member of the site's view. The oldest locator in the view coordinates:
// it admits joins, issues views with increasing ids, and removes members silent for longer
// than the member timeout (crashed) or that asked to leave (left). Other locators answer
// discovery and `locate` from their copy of the view, forward joins to the coordinator, and
// take over when every older locator has been silent for the member timeout.
//
// A state machine: handlers run to completion; time and I/O come through the Runtime.

import { StraitError } from '../errors.ts';
import { Connection, type ConnectionHandler, type ConnectionOptions, type IncomingRequest, type Reply } from '../protocol/connection.ts';
import type { MemberInfo, RequestBody, RequestOp, ResponseBody, View } from '../protocol/messages.ts';
import type { Address, Listener, Logger, Runtime, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import type { LocatorConfig } from './config.ts';
import { WanDiscovery } from './wan-discovery.ts';
import { dispatchRequest, reportingInternalErrors, type HandlerTable, type InternalErrorSink } from './handlers.ts';
import { MemberAgent } from './member-agent.ts';
import type { MemberAdmin, MemberStartResult, MemberState, MetricsSink, RegionStatus } from './member-admin.ts';
import { addressKey, PeerPool } from './peer-pool.ts';
import { type Departure, findMember, firstView, locatorsOf, nextView, sameLineage, lineageWins } from './views.ts';

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
  /** Coordinator bookkeeping: last heartbeat per member id (monotonic ms). */
  private readonly lastHeard = new Map<string, number>();
  /** Latest load and ready flag reported by each member. */
  private readonly reported = new Map<string, { load: number; ready: boolean }>();
  /** Connection each member last spoke on, for pushing views. */
  private readonly memberConnections = new Map<string, Connection>();
  private readonly inbound = new Set<Connection>();
  private startCallback: ((result: MemberStartResult) => void) | undefined;
  /** WAN discovery: the catalogue of every site, exchanged with the other sites' locators. */
  private readonly discovery: WanDiscovery;

  readonly admin: MemberAdmin;

  constructor(runtime: Runtime, config: LocatorConfig, metrics: MetricsSink) {
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
    this.discovery = new WanDiscovery(runtime, {
      name: config.name,
      site: config.site,
      remoteLocators: config.remoteLocators,
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
    this.admin = {
      status: () => ({ info: this.infoValue ?? this.placeholderInfo(), state: this.state, viewId: this.agent.view?.id ?? 0, coordinator: this.agent.view?.coordinator ?? null }),
      view: () => this.agent.view,
      regions: (): RegionStatus[] => [],
      createRegion: (spec, callback) => callback(new StraitError('STRAIT_REGION_INVALID', { region: spec.name, reason: 'regions live on servers; create it through a server' }), undefined),
      senders: () => [],
      receiver: () => null,
      controlSender: (request, callback) => callback(new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: request.id, member: `${config.name} (a locator; senders run on servers)` }), undefined),
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

  start(callback: (result: MemberStartResult) => void): void {
    this.startCallback = callback;
    this.listener = this.runtime.network.listen(
      this.config.bind,
      (stream) => {
        if (this.inbound.size >= CONNECTIONS_MAX) {
          Connection.refuse(stream, new StraitError('STRAIT_TOO_MANY_CONNECTIONS', { member: this.config.name, limit: CONNECTIONS_MAX }));
          return;
        }
        const connection = Connection.accept(this.runtime, stream, this.connectionOptions, {
          onOpen: () => {},
          onRequest: (from, request, reply) => this.onRequest(from, request, reply),
          onPush: () => {},
          onClose: (closed) => this.inbound.delete(closed),
        });
        this.inbound.add(connection);
      },
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
          ...(this.config.httpAddress ? { httpAddress: this.config.httpAddress } : {}),
          ...(this.config.pid !== undefined ? { pid: this.config.pid } : {}),
        };
        this.state = 'joining';
        this.discoveryStartedMs = this.runtime.clock.monotonic();
        this.log.info({ address: formatAddress(result.address), advertised: formatAddress(this.info.address) }, `locator ${this.config.name} listening on ${formatAddress(result.address)}; looking for the site's view`);
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
      this.broadcast(handover);
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
      this.detectCrashes();
      if (this.ticks % MERGE_CHECK_TICKS === 0) this.lookForOtherLineages();
    } else {
      this.agent.tick();
      this.maybeTakeOver();
    }
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
    const now = this.runtime.clock.monotonic();
    for (const member of view.members) {
      if (!this.lastHeard.has(member.info.id)) this.lastHeard.set(member.info.id, now);
    }
    for (const id of [...this.lastHeard.keys()]) {
      if (findMember(view, id) === undefined) {
        this.lastHeard.delete(id);
        this.reported.delete(id);
        this.memberConnections.delete(id);
      }
    }
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

  /** Coordinator: make `view` current and send it to every member we can reach. */
  private issue(change: Parameters<typeof nextView>[1]): View {
    const current = this.agent.view;
    if (current === null) throw new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: this.state });
    const view = nextView(current, change);
    this.agent.view = view;
    this.installed(view, current);
    this.broadcast(view);
    return view;
  }

  private broadcast(view: View): void {
    const me = this.infoValue?.id;
    for (const member of view.members) {
      if (member.info.id === me) continue;
      const connection = this.memberConnections.get(member.info.id);
      if (connection !== undefined && connection.state === 'open') connection.push('view', { view });
      else if (member.info.role === 'locator') this.pool.get(member.info.address).push('view', { view });
    }
    for (const departed of view.departed) {
      // A member removed for silence may still be alive behind a partition; tell it if we can.
      this.memberConnections.get(departed.id)?.push('view', { view });
    }
  }

  private detectCrashes(): void {
    const view = this.agent.view;
    if (view === null) return;
    const now = this.runtime.clock.monotonic();
    const me = this.info.id;
    const crashed: Departure[] = [];
    for (const member of view.members) {
      if (member.info.id === me) continue;
      const heard = this.lastHeard.get(member.info.id) ?? now;
      if (now - heard > this.config.timing.memberTimeoutMs) {
        crashed.push({ id: member.info.id, name: member.info.name, reason: 'crashed' });
        this.log.warn({ member: member.info.name, silentMs: now - heard, address: formatAddress(member.info.address) }, `coordinator ${this.config.name}: ${member.info.name} at ${formatAddress(member.info.address)} silent for ${now - heard} ms (member timeout ${this.config.timing.memberTimeoutMs} ms); removing it as crashed`);
      }
    }
    const update = new Map<string, { ready: boolean; load: number }>();
    for (const member of view.members) {
      const report = this.reported.get(member.info.id);
      if (report !== undefined && report.ready !== member.ready) update.set(member.info.id, report);
    }
    if (crashed.length > 0 || update.size > 0) {
      this.issue({ remove: crashed, update });
    }
  }

  /** Non-coordinator: take over when the coordinator and every older locator went silent. */
  private maybeTakeOver(): void {
    const view = this.agent.view;
    if (view === null || this.state !== 'ready') return;
    const me = findMember(view, this.info.id);
    if (me === undefined) return;
    const now = this.runtime.clock.monotonic();
    const older = locatorsOf(view).filter((locator) => locator.joinSeq < me.joinSeq);
    const silent = older.filter((locator) => now - (this.agent.lastAck.get(locator.info.id) ?? now) > this.config.timing.memberTimeoutMs);
    if (older.length === 0 || silent.length < older.length) return;
    for (const member of view.members) this.lastHeard.set(member.info.id, now);
    this.log.warn({ previous: view.coordinator }, `locator ${this.config.name}: coordinator ${view.coordinator} and every older locator silent for over ${this.config.timing.memberTimeoutMs} ms; taking over as coordinator`);
    this.issue({ remove: older.map((locator) => ({ id: locator.info.id, name: locator.info.name, reason: 'crashed' as const })) });
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
    join: (connection, body, reply) => this.onJoin(connection, body, reply),
    leave: (_connection, body, reply) => this.onLeave(body, reply),
    heartbeat: (connection, body, reply) => this.onHeartbeat(connection, body, reply),
    locate: (_connection, body, reply) => reply.ok(this.locate(body)),
    wanExchange: (connection, body, reply) => reply.ok(this.discovery.onExchange(connection, body)),
    catalogue: (_connection, _body, reply) => reply.ok(this.discovery.onCatalogue()),
  };

  private onJoin(connection: Connection, body: RequestBody<'join'>, reply: Reply<'join'>): void {
    const view = this.agent.view;
    if (view === null || this.state !== 'ready') {
      reply.fail(new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: this.state }));
      return;
    }
    if (body.info.site !== this.config.site) {
      reply.fail(new StraitError('STRAIT_SITE_MISMATCH', { peer: body.info.name, peerSite: body.info.site, site: this.config.site }));
      return;
    }
    if (!this.isCoordinator) {
      const coordinator = findMember(view, view.coordinator);
      if (coordinator === undefined) {
        reply.fail(new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: 'no coordinator' }));
        return;
      }
      // Forward to the coordinator and relay its answer.
      this.pool.get(coordinator.info.address).request('join', body, (error, response) => {
        if (error !== undefined || response === undefined) reply.fail(error ?? new StraitError('STRAIT_INTERNAL', { reason: 'empty join response' }));
        else reply.ok(response);
      });
      return;
    }
    const info = body.info;
    const existing = findMember(view, info.id);
    this.lastHeard.set(info.id, this.runtime.clock.monotonic());
    this.memberConnections.set(info.id, connection);
    if (existing !== undefined) {
      reply.ok({ view });
      return;
    }
    const remove: Departure[] = [];
    const sameName = view.members.find((member) => member.info.name === info.name);
    if (sameName !== undefined) {
      // A member restarted under the same name on the same address is a new incarnation of it
      // (the port could not be held by two processes); anything else is a naming mistake.
      if (addressKey(sameName.info.address) !== addressKey(info.address)) {
        reply.fail(new StraitError('STRAIT_NAME_IN_USE', { name: info.name, site: this.config.site, address: formatAddress(sameName.info.address) }));
        return;
      }
      remove.push({ id: sameName.info.id, name: sameName.info.name, reason: 'crashed' });
    }
    const next = this.issue({ add: [info], remove });
    this.log.info({ joined: info.name, address: formatAddress(info.address), viewId: next.id }, `coordinator ${this.config.name}: ${info.role} ${info.name} at ${formatAddress(info.address)} joined; view ${next.id}`);
    reply.ok({ view: next });
  }

  private onLeave(body: RequestBody<'leave'>, reply: Reply<'leave'>): void {
    const view = this.agent.view;
    const member = findMember(view, body.id);
    if (view !== null && this.isCoordinator && member !== undefined) {
      this.issue({ remove: [{ id: member.info.id, name: member.info.name, reason: 'left' }] });
      this.log.info({ left: member.info.name }, `coordinator ${this.config.name}: ${member.info.name} left cleanly; view ${this.agent.view?.id}`);
    } else if (view !== null && !this.isCoordinator && member !== undefined) {
      const coordinator = findMember(view, view.coordinator);
      if (coordinator !== undefined) {
        this.pool.get(coordinator.info.address).request('leave', body, () => reply.ok({}));
        return;
      }
    }
    reply.ok({});
  }

  private onHeartbeat(connection: Connection, body: RequestBody<'heartbeat'>, reply: Reply<'heartbeat'>): void {
    const view = this.agent.view;
    const member = findMember(view, body.id);
    const now = this.runtime.clock.monotonic();
    if (member !== undefined) {
      this.lastHeard.set(body.id, now);
      this.memberConnections.set(body.id, connection);
      this.reported.set(body.id, { load: body.load, ready: body.ready });
      if (member.info.role === 'locator') this.agent.lastAck.set(body.id, now);
    }
    const coordinator = this.isCoordinator;
    reply.ok({ responder: this.infoValue?.id ?? '', viewId: view?.id ?? 0, member: member !== undefined, coordinator });
    if (coordinator && member !== undefined && member.ready !== body.ready) {
      // Readiness changes the set of servers clients are sent to: publish it at once.
      this.issue({ update: new Map([[body.id, { ready: body.ready, load: body.load }]]) });
    } else if (coordinator && member !== undefined && body.viewId < (view?.id ?? 0)) {
      connection.push('view', { view: view! });
    }
  }

  private locate(body: RequestBody<'locate'>): ResponseBody<'locate'> {
    const view = this.agent.view;
    if (view === null) throw new StraitError('STRAIT_NOT_READY', { member: this.config.name, state: this.state });
    const exclude = new Set(body.exclude ?? []);
    const candidates = view.members.filter((member) =>
      member.info.role === 'server' && member.ready && !exclude.has(member.info.name)
      && (body.region === undefined || member.info.regions.includes(body.region)));
    const load = (id: string) => this.reported.get(id)?.load ?? 0;
    // Least-loaded first; ties rotate by a random draw so idle servers share new clients.
    const order = candidates.map((member) => ({ member, load: load(member.info.id), draw: this.runtime.random.next() }));
    order.sort((a, b) => a.load - b.load || a.draw - b.draw);
    return { servers: order.map(({ member }) => ({ name: member.info.name, address: member.info.address })) };
  }
}

/** The host to advertise when none is configured: a wildcard bind advertises loopback. */
export function advertisedHost(boundHost: string): string {
  if (boundHost === '0.0.0.0' || boundHost === '::' || boundHost === '') return '127.0.0.1';
  return boundHost;
}
