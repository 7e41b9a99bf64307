// A router: the relay for sites that can't reach each other (JGroups' GossipRouter + TUNNEL
// role). Members (locators and servers configured with `routers:`) open connections to every
// router, register with the mesh's shared secret, and open tunnels — byte streams addressed by
// site and member name — through them; Strait's own protocol then runs inside a tunnel as on a
// TCP connection (router-links.ts), so acks, ordering and durability are the same end to end.
//
// Routers form a mesh: each dials the routers it is given (`--routers`) and every router it
// learns of from their tables, and pushes its table of registrations to every peer whenever it
// changes (and every ROUTER_TABLE_INTERVAL_MS). A tunnel to a member registered only on another
// router goes one hop through the mesh. So a member reachable on any router is reachable through
// every router: JGroups' partial-partition trap (routers that don't talk to each other, a member
// connected to only some of them) can't happen while the mesh holds. A router never judges a
// site's liveness: a tunnel ends only when a link under it does, and members judge each other
// end to end by their own requests' timeouts.
//
// Bounded: connections, registrations, tunnels per connection, and bytes queued towards one
// connection (past ROUTER_CONNECTION_BUFFERED_BYTES_MAX the connections feeding it stop being
// read until it drains: backpressure, not growth). A connection that sends anything but a
// registration first, or a wrong secret, or does not register within REGISTER_TIMEOUT_MS, gets
// a coded error and is closed; the router keeps serving the others.
//
// A state machine: callbacks run to completion; time and I/O come through the Runtime.

import { StraitError } from '../errors.ts';
import { Connection, type ConnectionHandler, type ConnectionOptions, type IncomingRequest, type Reply } from '../protocol/connection.ts';
import type { PushBody, PushOp, RequestBody, RequestOp, ResponseBody, RouterRegistration } from '../protocol/messages.ts';
import type { Address, Listener, Logger, Runtime, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { Backoff } from './backoff.ts';
import type { RouterConfig } from './config.ts';
import type { MemberStartResult } from './member-admin.ts';
import { addressKey } from './peer-pool.ts';
import { dispatchRequest, type HandlerTable, type InternalErrorSink } from './handlers.ts';

export { ROUTER_PORT_DEFAULT } from './config.ts';

/** Connections open at once, at most (members, peers, and ones still registering). */
export const ROUTER_CONNECTIONS_MAX = 10_000;
/** Members registered on this router, at most. */
export const ROUTER_REGISTRATIONS_MAX = 10_000;
/** Tunnels one connection may have open through this router, at most. */
export const ROUTER_TUNNELS_PER_CONNECTION_MAX = 4096;
/** Bytes queued towards one connection before its sources stop being read. */
export const ROUTER_CONNECTION_BUFFERED_BYTES_MAX = 8 * 1024 * 1024;
/** Frames a router takes: tunnel data comes in chunks of at most 256 KiB. */
export const ROUTER_FRAME_BYTES_MAX = 2 * 1024 * 1024;
/** A connection must register within this long. */
const REGISTER_TIMEOUT_MS = 5000;
/** Routers of one mesh, at most. */
const ROUTER_PEERS_MAX = 64;
/** Tables are pushed at least this often even without changes (heals a lost push). */
const ROUTER_TABLE_INTERVAL_MS = 5000;
/** Changes are pushed this soon (bursts coalesce). */
const ROUTER_TABLE_SOON_MS = 20;
const REQUEST_TIMEOUT_MS = 10_000;
/** A registered member that sent nothing (it pings every second) for this long is gone. */
const MEMBER_SILENCE_MS = 10_000;

/** Constant-time comparison, so the time a refusal takes says nothing about the secret. */
export function secretsEqual(a: string, b: string): boolean {
  const length = Math.max(a.length, b.length);
  let difference = a.length ^ b.length;
  for (let index = 0; index < length; index++) difference |= (a.charCodeAt(index) || 0) ^ (b.charCodeAt(index) || 0);
  return difference === 0;
}

function memberKey(site: number, name: string): string {
  return `${site}/${name}`;
}

type Registration =
  | { readonly kind: 'member'; readonly site: number; readonly name: string; readonly role: 'locator' | 'server'; readonly sinceMs: number }
  | { readonly kind: 'router'; readonly name: string; readonly address: Address | undefined; readonly sinceMs: number };

interface LinkState {
  registration: Registration | undefined;
  readonly tunnels: Set<string>;
  /** Connections whose reading stopped because this one is backlogged. */
  readonly pausedSources: Set<Connection>;
  /** Set while this connection's reading is stopped. */
  paused: boolean;
  registerTimer: Timer | undefined;
  /** When this connection last sent anything (monotonic ms): a member pings every second. */
  lastHeardMs: number;
}

interface Tunnel {
  readonly a: Connection;
  readonly b: Connection;
}

/** A router this one dials: the mesh is made of these and the ones that dial us. */
interface PeerDial {
  readonly address: Address;
  readonly backoff: Backoff;
  connection: Connection | undefined;
  state: 'connecting' | 'connected' | 'waiting';
  sinceMs: number;
  error: string | null;
  retry: Timer | undefined;
}

export class Router {
  private readonly runtime: Runtime;
  private readonly config: RouterConfig;
  private readonly log: Logger;
  private listener: Listener | undefined;
  private advertised: Address | undefined;
  private readonly links = new Map<Connection, LinkState>();
  private readonly members = new Map<string, Connection>();
  private readonly tunnels = new Map<string, Tunnel>();
  /** What each mesh peer connection last told us it holds, by member key. */
  private readonly peerTables = new Map<Connection, { router: string; registrations: Map<string, RouterRegistration>; routers: Address[] }>();
  private readonly dials = new Map<string, PeerDial>();
  private tableTimer: Timer | undefined;
  private tableSoon: Timer | undefined;
  private stopped = false;
  private readonly handlers: HandlerTable;
  private readonly internalError: InternalErrorSink;

  constructor(runtime: Runtime, config: RouterConfig) {
    this.runtime = runtime;
    this.config = config;
    this.log = runtime.log.child({ member: config.name, role: 'router' });
    this.internalError = (where, error) => this.log.error({ where }, `router ${config.name}: internal error in ${where}: ${error instanceof Error ? error.message : String(error)}`);
    this.handlers = {
      ping: (_connection, _body, reply) => reply.ok({}),
      routerRegister: (connection, body, reply) => reply.ok(this.register(connection, body)),
      routerList: (connection, body, reply) => reply.ok(this.list(connection, body)),
    };
  }

  get address(): Address | undefined {
    return this.advertised;
  }

  private options(): ConnectionOptions {
    return {
      local: { role: 'router', name: this.config.name, site: null },
      frameBytesMax: ROUTER_FRAME_BYTES_MAX,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      requestsInFlightMax: 64,
      incomingRequestsMax: 64,
    };
  }

  private handler(): ConnectionHandler {
    return {
      onOpen: () => {},
      onRequest: (connection, request, reply) => this.onRequest(connection, request, reply),
      onPush: (connection, op, body) => this.onPush(connection, op, body),
      onClose: (connection, error) => this.closed(connection, error),
      onDrain: (connection) => this.drained(connection),
    };
  }

  start(callback: (result: MemberStartResult) => void): void {
    this.listener = this.runtime.network.listen(this.config.bind, (stream) => {
      if (this.links.size >= ROUTER_CONNECTIONS_MAX) {
        Connection.refuse(stream, new StraitError('STRAIT_TOO_MANY_CONNECTIONS', { member: `router ${this.config.name}`, limit: ROUTER_CONNECTIONS_MAX }));
        return;
      }
      const connection = Connection.accept(this.runtime, stream, this.options(), this.handler());
      this.track(connection);
    }, (result) => {
      if (!result.ok) {
        this.log.error({ code: result.error.code }, `router ${this.config.name}: ${result.error.message}`);
        callback({ ok: false, error: result.error });
        return;
      }
      const wildcard = result.address.host === '0.0.0.0' || result.address.host === '::';
      this.advertised = { host: this.config.hostnameForClients ?? (wildcard ? '127.0.0.1' : result.address.host), port: result.address.port };
      this.log.info({ address: formatAddress(result.address), advertised: formatAddress(this.advertised) }, `router ${this.config.name} listening on ${formatAddress(result.address)}, advertised as ${formatAddress(this.advertised)}; mesh peers: ${this.config.routers.map(formatAddress).join(', ') || 'none configured'}`);
      for (const address of this.config.routers) this.dialPeer(address);
      this.scheduleTablePushes();
      callback({ ok: true, address: result.address });
    });
  }

  stop(callback: () => void): void {
    this.stopped = true;
    this.listener?.close();
    this.tableTimer?.cancel();
    this.tableSoon?.cancel();
    for (const dial of this.dials.values()) dial.retry?.cancel();
    for (const connection of [...this.links.keys()]) connection.close();
    callback();
  }

  private track(connection: Connection): void {
    const state: LinkState = { registration: undefined, tunnels: new Set(), pausedSources: new Set(), paused: false, registerTimer: undefined, lastHeardMs: this.runtime.clock.monotonic() };
    state.registerTimer = this.runtime.setTimer(REGISTER_TIMEOUT_MS, () => {
      state.registerTimer = undefined;
      if (state.registration === undefined && connection.state !== 'closed') {
        connection.closeWithError(new StraitError('STRAIT_TIMEOUT', { operation: `registration of ${connection.label} with router ${this.config.name}`, timeoutMs: REGISTER_TIMEOUT_MS }));
      }
    });
    this.links.set(connection, state);
  }

  // ---- Requests ----

  private onRequest(connection: Connection, request: IncomingRequest, reply: Reply<RequestOp>): void {
    const state = this.links.get(connection);
    if (state !== undefined) state.lastHeardMs = this.runtime.clock.monotonic();
    dispatchRequest(this.handlers, 'router', connection, request, reply, this.internalError);
  }

  private refuseSecret(connection: Connection, secret: string): void {
    if (secretsEqual(secret, this.config.secret)) return;
    const error = new StraitError('STRAIT_ROUTER_AUTH_FAILED', { router: this.config.name, peer: connection.stream.remote });
    this.log.warn({ code: error.code, peer: connection.stream.remote }, error.message);
    // Answer first, then close: the peer learns why.
    this.runtime.defer(() => connection.closeWithError(error));
    throw error;
  }

  private register(connection: Connection, body: RequestBody<'routerRegister'>): ResponseBody<'routerRegister'> {
    this.refuseSecret(connection, body.secret);
    const state = this.links.get(connection);
    if (state === undefined) throw new StraitError('STRAIT_CONNECTION_CLOSED', { peer: connection.label, type: 'routerRegister' });
    if (state.registration !== undefined) return { router: this.config.name };
    // A refusal below throws before the registration timer is cancelled: a connection refused
    // here is still closed when that timer fires.
    const registered = () => {
      state.registerTimer?.cancel();
      state.registerTimer = undefined;
    };
    const sinceMs = this.runtime.clock.now();
    if (body.kind === 'router') {
      if (this.peerTables.size >= ROUTER_PEERS_MAX) throw new StraitError('STRAIT_TOO_MANY_CONNECTIONS', { member: `router ${this.config.name} (mesh peers)`, limit: ROUTER_PEERS_MAX });
      registered();
      state.registration = { kind: 'router', name: body.name, address: body.address, sinceMs };
      this.peerTables.set(connection, { router: body.name, registrations: new Map(), routers: [] });
      this.log.info({ peer: body.name }, `router ${this.config.name}: router ${body.name}${body.address ? ` (${formatAddress(body.address)})` : ''} joined the mesh`);
      if (body.address !== undefined) this.dialPeer(body.address);
      this.runtime.defer(() => this.pushTable(connection));
      return { router: this.config.name };
    }
    const peerRole = connection.peer?.role;
    if (body.site === null || (peerRole !== 'locator' && peerRole !== 'server')) {
      throw new StraitError('STRAIT_MESSAGE_INVALID', { peer: connection.label, reason: 'only locators and servers of a site register as members' });
    }
    if (this.members.size >= ROUTER_REGISTRATIONS_MAX) throw new StraitError('STRAIT_TOO_MANY_CONNECTIONS', { member: `router ${this.config.name} (registrations)`, limit: ROUTER_REGISTRATIONS_MAX });
    registered();
    state.registration = { kind: 'member', site: body.site, name: body.name, role: peerRole, sinceMs };
    // A member that reconnects registers again: the newest connection is the one that works.
    this.members.set(memberKey(body.site, body.name), connection);
    this.log.info({ site: body.site, registered: body.name }, `router ${this.config.name}: ${peerRole} ${body.name} of site ${body.site} registered from ${connection.stream.remote}`);
    this.tableChanged();
    return { router: this.config.name };
  }

  private list(connection: Connection, body: RequestBody<'routerList'>): ResponseBody<'routerList'> {
    this.refuseSecret(connection, body.secret);
    const holders = new Map<string, { registration: RouterRegistration; routers: string[] }>();
    for (const registration of this.localRegistrations()) {
      holders.set(memberKey(registration.site, registration.name), { registration, routers: [this.config.name] });
    }
    for (const table of this.peerTables.values()) {
      for (const [key, registration] of table.registrations) {
        const holder = holders.get(key);
        if (holder === undefined) holders.set(key, { registration, routers: [table.router] });
        else if (!holder.routers.includes(table.router)) holder.routers.push(table.router);
      }
    }
    const peers: ResponseBody<'routerList'>['peers'] = [...this.dials.values()].map((dial) => {
      const table = dial.connection === undefined ? undefined : this.peerTables.get(dial.connection);
      return { name: table?.router ?? null, address: dial.address, state: dial.state, sinceMs: dial.sinceMs, error: dial.error, registrations: table?.registrations.size ?? 0 };
    });
    // Peers that dialed us without our dialing them (we don't know their address, or not yet).
    const listed = new Set(peers.map((peer) => peer.name));
    for (const [peerConnection, table] of this.peerTables) {
      if ([...this.dials.values()].some((dial) => dial.connection === peerConnection) || listed.has(table.router)) continue;
      listed.add(table.router);
      const registration = this.links.get(peerConnection)?.registration;
      peers.push({ name: table.router, address: registration?.kind === 'router' ? registration.address ?? null : null, state: 'connected', sinceMs: registration?.sinceMs ?? 0, error: null, registrations: table.registrations.size });
    }
    return {
      router: this.config.name,
      address: this.advertised ?? this.config.bind,
      registrations: [...holders.values()].map(({ registration, routers }) => ({ ...registration, routers: routers.sort() })),
      peers,
    };
  }

  private localRegistrations(): RouterRegistration[] {
    const result: RouterRegistration[] = [];
    for (const [key, connection] of this.members) {
      const registration = this.links.get(connection)?.registration;
      if (registration?.kind !== 'member' || memberKey(registration.site, registration.name) !== key) continue;
      result.push({ site: registration.site, name: registration.name, role: registration.role, sinceMs: registration.sinceMs });
    }
    return result;
  }

  // ---- Pushes: tunnels and tables ----

  private onPush(connection: Connection, op: PushOp, body: unknown): void {
    const state = this.links.get(connection);
    if (state === undefined) return;
    state.lastHeardMs = this.runtime.clock.monotonic();
    if (state.registration === undefined) {
      connection.closeWithError(new StraitError('STRAIT_ROUTER_NOT_REGISTERED', { router: this.config.name, peer: connection.stream.remote, type: op }));
      return;
    }
    switch (op) {
      case 'tunnelOpen': this.openTunnel(connection, state, body as PushBody<'tunnelOpen'>); return;
      case 'tunnelData': this.relay(connection, body as PushBody<'tunnelData'>); return;
      case 'tunnelClose': this.closeTunnel((body as PushBody<'tunnelClose'>).tunnel, connection, (body as PushBody<'tunnelClose'>).reason); return;
      case 'routerTable': this.tableReceived(connection, body as PushBody<'routerTable'>); return;
      default:
        connection.closeWithError(new StraitError('STRAIT_MESSAGE_INVALID', { peer: connection.label, reason: `a router takes no ${op} push` }));
    }
  }

  private openTunnel(from: Connection, state: LinkState, body: PushBody<'tunnelOpen'>): void {
    const refuse = (reason: string) => from.push('tunnelClose', { tunnel: body.tunnel, reason });
    const registration = state.registration!;
    // A member opens tunnels in its own name only; a peer router relays anyone's.
    if (registration.kind === 'member' && (registration.site !== body.from.site || registration.name !== body.from.name || body.relayed === true)) {
      refuse(`router ${this.config.name}: a member opens tunnels as itself (${registration.name} of site ${registration.site})`);
      return;
    }
    if (this.tunnels.has(body.tunnel)) {
      refuse(`router ${this.config.name}: tunnel ${body.tunnel} is already open`);
      return;
    }
    if (state.tunnels.size >= ROUTER_TUNNELS_PER_CONNECTION_MAX) {
      refuse(`router ${this.config.name}: ${ROUTER_TUNNELS_PER_CONNECTION_MAX} tunnels already open on this connection, its limit`);
      return;
    }
    const key = memberKey(body.to.site, body.to.name);
    let target = this.members.get(key);
    let forward: PushBody<'tunnelOpen'> = body;
    if (target === undefined && registration.kind === 'member') {
      // One hop through the mesh, to a router that holds the member.
      for (const [peer, table] of this.peerTables) {
        if (table.registrations.has(key) && peer.state === 'open') {
          target = peer;
          forward = { ...body, relayed: true };
          break;
        }
      }
    }
    if (target === undefined || target.state !== 'open') {
      refuse(`no router of the mesh holds a registration of ${body.to.name} of site ${body.to.site} (asked router ${this.config.name})`);
      return;
    }
    const targetState = this.links.get(target);
    if (targetState === undefined || targetState.tunnels.size >= ROUTER_TUNNELS_PER_CONNECTION_MAX) {
      refuse(`router ${this.config.name}: ${body.to.name} of site ${body.to.site} has too many tunnels open`);
      return;
    }
    this.tunnels.set(body.tunnel, { a: from, b: target });
    state.tunnels.add(body.tunnel);
    targetState.tunnels.add(body.tunnel);
    target.push('tunnelOpen', forward);
  }

  private relay(from: Connection, body: PushBody<'tunnelData'>): void {
    const tunnel = this.tunnels.get(body.tunnel);
    if (tunnel === undefined) return; // closed meanwhile; the close is on its way to the sender
    const to = tunnel.a === from ? tunnel.b : tunnel.b === from ? tunnel.a : undefined;
    if (to === undefined) {
      from.closeWithError(new StraitError('STRAIT_MESSAGE_INVALID', { peer: from.label, reason: `data for tunnel ${body.tunnel}, which is not this connection's` }));
      return;
    }
    to.push('tunnelData', body);
    if (to.bufferedBytes > ROUTER_CONNECTION_BUFFERED_BYTES_MAX) {
      // Backpressure: stop reading the source until the backlogged connection drains.
      const target = this.links.get(to);
      const source = this.links.get(from);
      if (target !== undefined && source !== undefined && !source.paused) {
        source.paused = true;
        from.stream.pause();
        target.pausedSources.add(from);
      }
    }
  }

  private drained(connection: Connection): void {
    const state = this.links.get(connection);
    if (state === undefined || state.pausedSources.size === 0) return;
    for (const source of state.pausedSources) {
      const sourceState = this.links.get(source);
      if (sourceState !== undefined) sourceState.paused = false;
      source.stream.resume();
    }
    state.pausedSources.clear();
  }

  /** Ends a tunnel; the end other than `from` (both when `from` is undefined) is told why. */
  private closeTunnel(id: string, from: Connection | undefined, reason: string): void {
    const tunnel = this.tunnels.get(id);
    if (tunnel === undefined) return;
    if (from !== undefined && from !== tunnel.a && from !== tunnel.b) return;
    this.tunnels.delete(id);
    for (const end of [tunnel.a, tunnel.b]) {
      this.links.get(end)?.tunnels.delete(id);
      if (end !== from && end.state === 'open') end.push('tunnelClose', { tunnel: id, reason });
    }
  }

  private tableReceived(connection: Connection, body: PushBody<'routerTable'>): void {
    const table = this.peerTables.get(connection);
    if (table === undefined) {
      connection.closeWithError(new StraitError('STRAIT_MESSAGE_INVALID', { peer: connection.label, reason: 'only routers of the mesh send tables' }));
      return;
    }
    table.registrations = new Map(body.registrations.map((registration) => [memberKey(registration.site, registration.name), registration]));
    table.routers = body.routers;
    // Routers it knows that we don't dial yet: the mesh closes transitively.
    for (const address of body.routers) this.dialPeer(address);
  }

  private tableChanged(): void {
    if (this.tableSoon !== undefined || this.stopped) return;
    this.tableSoon = this.runtime.setTimer(ROUTER_TABLE_SOON_MS, () => {
      this.tableSoon = undefined;
      for (const peer of this.peerTables.keys()) this.pushTable(peer);
    });
  }

  private scheduleTablePushes(): void {
    this.tableTimer = this.runtime.setTimer(ROUTER_TABLE_INTERVAL_MS, () => {
      if (this.stopped) return;
      this.closeSilentMembers();
      for (const peer of this.peerTables.keys()) this.pushTable(peer);
      this.scheduleTablePushes();
    });
  }

  /**
   * A member pings every second; one silent for MEMBER_SILENCE_MS is gone (a host that lost
   * power leaves an idle socket open for ever): its registration goes, its tunnels close.
   */
  private closeSilentMembers(): void {
    const now = this.runtime.clock.monotonic();
    for (const [connection, state] of this.links) {
      // A member whose reading we paused (backpressure) may be talking: we just don't read it.
      if (state.registration?.kind !== 'member' || state.paused || now - state.lastHeardMs <= MEMBER_SILENCE_MS) continue;
      connection.closeWithError(new StraitError('STRAIT_TIMEOUT', { operation: `pings from ${state.registration.name} of site ${state.registration.site} to router ${this.config.name}`, timeoutMs: MEMBER_SILENCE_MS }));
    }
  }

  private pushTable(peer: Connection): void {
    if (peer.state !== 'open') return;
    // Only routers that answer: an address that never connected is not passed around the mesh.
    const routers = [...this.dials.values()].filter((dial) => dial.state === 'connected').map((dial) => dial.address);
    if (this.advertised !== undefined) routers.push(this.advertised);
    peer.push('routerTable', { router: this.config.name, registrations: this.localRegistrations(), routers });
  }

  // ---- Closing ----

  private closed(connection: Connection, error: Error | undefined): void {
    const state = this.links.get(connection);
    if (state === undefined) return;
    this.links.delete(connection);
    state.registerTimer?.cancel();
    for (const id of [...state.tunnels]) this.closeTunnel(id, connection, `router ${this.config.name}: the link of the other end closed (${error?.message ?? 'closed'})`);
    for (const source of state.pausedSources) {
      const sourceState = this.links.get(source);
      if (sourceState !== undefined) sourceState.paused = false;
      source.stream.resume();
    }
    const registration = state.registration;
    if (registration?.kind === 'member') {
      const key = memberKey(registration.site, registration.name);
      if (this.members.get(key) === connection) {
        this.members.delete(key);
        this.log.info({ site: registration.site, registered: registration.name }, `router ${this.config.name}: ${registration.name} of site ${registration.site} is no longer registered (${error?.message ?? 'closed'})`);
        this.tableChanged();
      }
    } else if (registration?.kind === 'router') {
      this.peerTables.delete(connection);
      this.log.info({ peer: registration.name }, `router ${this.config.name}: mesh link with router ${registration.name} closed (${error?.message ?? 'closed'})`);
    }
    for (const dial of this.dials.values()) if (dial.connection === connection) this.peerLost(dial, error?.message ?? 'closed');
  }

  // ---- The mesh: routers we dial ----

  private dialPeer(address: Address): void {
    if (this.stopped || this.dials.size >= ROUTER_PEERS_MAX) return;
    const own = this.advertised;
    if (own !== undefined && addressKey(own) === addressKey(address)) return;
    const key = addressKey(address);
    if (this.dials.has(key)) return;
    const dial: PeerDial = { address, backoff: new Backoff(this.runtime.random, { initialDelayMs: 100, maximumDelayMs: 5000 }), connection: undefined, state: 'waiting', sinceMs: this.runtime.clock.now(), error: null, retry: undefined };
    this.dials.set(key, dial);
    this.connectPeer(dial);
  }

  private connectPeer(dial: PeerDial): void {
    if (this.stopped) return;
    dial.state = 'connecting';
    dial.sinceMs = this.runtime.clock.now();
    const connection = Connection.open(this.runtime, dial.address, this.options(), {
      ...this.handler(),
      onOpen: (opened) => {
        opened.request('routerRegister', { secret: this.config.secret, kind: 'router', site: null, name: this.config.name, ...(this.advertised ? { address: this.advertised } : {}) }, (error) => {
          if (error !== undefined) {
            this.log.warn({ code: error.code, peer: formatAddress(dial.address) }, `router ${this.config.name}: router ${formatAddress(dial.address)} refused to join the mesh: ${error.message}`);
            opened.close();
            return;
          }
          dial.state = 'connected';
          dial.sinceMs = this.runtime.clock.now();
          dial.error = null;
          dial.backoff.reset();
          // Our dial is their registration with us as well: the link is a mesh peer both ways.
          const state = this.links.get(opened);
          if (state !== undefined && state.registration === undefined) {
            state.registerTimer?.cancel();
            state.registerTimer = undefined;
            state.registration = { kind: 'router', name: opened.peer?.name ?? formatAddress(dial.address), address: dial.address, sinceMs: dial.sinceMs };
            this.peerTables.set(opened, { router: opened.peer?.name ?? formatAddress(dial.address), registrations: new Map(), routers: [] });
          }
          this.pushTable(opened);
        });
      },
    });
    this.track(connection);
    dial.connection = connection;
  }

  private peerLost(dial: PeerDial, reason: string): void {
    dial.connection = undefined;
    dial.state = 'waiting';
    dial.sinceMs = this.runtime.clock.now();
    dial.error = reason;
    if (this.stopped) return;
    dial.retry = this.runtime.setTimer(dial.backoff.nextDelayMs(), () => {
      dial.retry = undefined;
      this.connectPeer(dial);
    });
  }
}
