// A member's side of the routers (router.ts): one connection to every router it is given,
// registered with the mesh's secret, kept alive by a ping every ROUTER_PING_INTERVAL_MS and
// redialed with jittered backoff when it fails; and tunnels over them.
//
// A tunnel is a Stream (the Runtime's byte-stream interface) relayed by the routers to a member
// addressed by site and name. `routedNetwork` makes `router:<site>/<name>` addresses connect
// through a tunnel, so Strait's own connections — the WAN exchange between locators, a sender's
// batches — run unchanged over a router, with their handshake, acks and timeouts end to end.
// Tunnels another member opens to us are handed to `accept` like a listener's streams.
//
// A tunnel goes over one router connection, the first registered one; when that connection
// fails, its tunnels close with the reason, and whoever owns them reconnects — over another
// router. The router never judges liveness: the ends do, by their requests' timeouts.
//
// A state machine: callbacks run to completion; time and I/O come through the Runtime.

import { StraitError } from '../errors.ts';
import { Connection } from '../protocol/connection.ts';
import type { PushBody, PushOp, ResponseBody } from '../protocol/messages.ts';
import type { Address, Logger, Network, Runtime, Stream, StreamHandler, StreamSecurity, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { Backoff } from './backoff.ts';
import { routedTarget } from './routed-address.ts';
import { ROUTER_FRAME_BYTES_MAX } from './router.ts';

export { routedAddress, routedTarget } from './routed-address.ts';

/** How often a member pings each router; three missed answers end the connection. */
const ROUTER_PING_INTERVAL_MS = 1000;
const ROUTER_PING_TIMEOUT_MS = 3000;
/** Tunnel bytes per push, at most. */
const TUNNEL_CHUNK_BYTES = 256 * 1024;
/** A tunnel's write returns false (wait for onDrain) past this many bytes queued to its router. */
const TUNNEL_HIGH_WATER_BYTES = 1024 * 1024;
/** Tunnels open at once, at most. */
export const TUNNELS_MAX = 4096;
/** Failures are logged at most this often per router. */
const FAILURE_LOG_INTERVAL_MS = 30_000;

export interface RouterIdentity {
  readonly site: number;
  readonly name: string;
  readonly role: 'locator' | 'server';
}

export interface RouterLinksHost {
  /** Takes a tunnel another member opened to us, as a listener takes an accepted stream. */
  accept(stream: Stream): void;
}

export type RouterLinkState = 'connecting' | 'registered' | 'waiting';

export interface RouterLinkStatus {
  readonly address: Address;
  readonly router: string | null;
  readonly state: RouterLinkState;
  readonly sinceMs: number;
  readonly error: string | null;
  readonly tunnels: number;
}

interface Link {
  readonly address: Address;
  readonly backoff: Backoff;
  connection: Connection | undefined;
  state: RouterLinkState;
  router: string | null;
  sinceMs: number;
  error: string | null;
  retry: Timer | undefined;
  pingInFlight: boolean;
  /** When the router last sent us anything (monotonic ms): liveness. */
  lastHeardMs: number;
  lastFailureLogMs: number;
  readonly tunnels: Set<TunnelStream>;
}

export class RouterLinks {
  private readonly runtime: Runtime;
  private readonly routers: readonly Address[];
  private readonly secret: string;
  private identity: RouterIdentity = { site: 1, name: '(not started)', role: 'server' };
  private started = false;
  private readonly host: RouterLinksHost;
  private readonly log: Logger;
  private readonly links: Link[] = [];
  private readonly tunnels = new Map<string, TunnelStream>();
  private readonly tag: string;
  private counter = 0;
  private pingTimer: Timer | undefined;
  private stopped = false;

  constructor(runtime: Runtime, routers: readonly Address[], secret: string, host: RouterLinksHost, log: Logger) {
    this.runtime = runtime;
    this.routers = routers;
    this.secret = secret;
    this.host = host;
    this.log = log;
    this.tag = runtime.random.int(0x7fffffff).toString(36);
  }

  /** Registers as `identity` (a server knows its site only once its locator told it). */
  start(identity: RouterIdentity): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.identity = identity;
    for (const address of this.routers) {
      const link: Link = {
        address, backoff: new Backoff(this.runtime.random, { initialDelayMs: 100, maximumDelayMs: 5000 }), connection: undefined,
        state: 'waiting', router: null, sinceMs: this.runtime.clock.now(), error: null, retry: undefined, pingInFlight: false, lastHeardMs: 0,
        lastFailureLogMs: -Infinity, tunnels: new Set(),
      };
      this.links.push(link);
      this.dial(link);
    }
    this.schedulePings();
  }

  stop(): void {
    this.stopped = true;
    this.pingTimer?.cancel();
    for (const link of this.links) {
      link.retry?.cancel();
      link.connection?.close();
    }
  }

  /** True once at least one router holds our registration. */
  get registered(): boolean {
    return this.links.some((link) => link.state === 'registered');
  }

  statuses(): RouterLinkStatus[] {
    return this.links.map((link) => ({ address: link.address, router: link.router, state: link.state, sinceMs: link.sinceMs, error: link.error, tunnels: link.tunnels.size }));
  }

  /** What the mesh holds, from the first registered router. */
  list(callback: (error: StraitError | undefined, response: ResponseBody<'routerList'> | undefined) => void): void {
    const link = this.links.find((candidate) => candidate.state === 'registered');
    if (link?.connection === undefined) {
      callback(new StraitError('STRAIT_ROUTER_UNREACHABLE', { target: 'the router mesh', reason: this.unreachableReason() }), undefined);
      return;
    }
    link.connection.request('routerList', { secret: this.secret }, callback);
  }

  private unreachableReason(): string {
    return this.links.map((link) => `${formatAddress(link.address)}: ${link.state}${link.error ? ` (${link.error})` : ''}`).join('; ') || 'no routers configured';
  }

  /** Opens a tunnel to `target` over the first registered router. */
  openTunnel(target: { site: number; name: string }, handler: StreamHandler): Stream {
    const link = this.links.find((candidate) => candidate.state === 'registered' && candidate.connection?.state === 'open');
    const id = `${this.identity.site}/${this.identity.name}/${this.tag}/${++this.counter}`;
    const remote = `${target.name} of site ${target.site} via ${link === undefined ? 'no router' : formatAddress(link.address)}`;
    const stream = new TunnelStream(this, id, link, remote, target.site, handler);
    if (link === undefined || this.tunnels.size >= TUNNELS_MAX) {
      const reason = link === undefined ? `no router is registered (${this.unreachableReason()})` : `${TUNNELS_MAX} tunnels open, the limit`;
      this.runtime.defer(() => stream.finish(new StraitError('STRAIT_ROUTER_UNREACHABLE', { target: remote, reason })));
      return stream;
    }
    this.tunnels.set(id, stream);
    link.tunnels.add(stream);
    link.connection!.push('tunnelOpen', { tunnel: id, from: { site: this.identity.site, name: this.identity.name }, to: target });
    this.runtime.defer(() => stream.opened());
    return stream;
  }

  // ---- Used by TunnelStream ----

  send(link: Link, id: string, bytes: Uint8Array): boolean {
    const connection = link.connection;
    if (connection === undefined || connection.state !== 'open') return false;
    for (let offset = 0; offset < bytes.length; offset += TUNNEL_CHUNK_BYTES) {
      connection.push('tunnelData', { tunnel: id, bytes: bytes.subarray(offset, Math.min(bytes.length, offset + TUNNEL_CHUNK_BYTES)) });
    }
    return connection.bufferedBytes <= TUNNEL_HIGH_WATER_BYTES;
  }

  bufferedBytes(link: Link): number {
    return link.connection?.bufferedBytes ?? 0;
  }

  sendClose(link: Link, id: string, reason: string): void {
    if (link.connection?.state === 'open') link.connection.push('tunnelClose', { tunnel: id, reason });
  }

  forget(stream: TunnelStream): void {
    this.tunnels.delete(stream.id);
    stream.link?.tunnels.delete(stream);
  }

  defer(callback: () => void): void {
    this.runtime.defer(callback);
  }

  // ---- Router connections ----

  private dial(link: Link): void {
    if (this.stopped) return;
    link.state = 'connecting';
    link.sinceMs = this.runtime.clock.now();
    const connection = Connection.open(this.runtime, link.address, {
      local: { role: this.identity.role, name: this.identity.name, site: this.identity.site },
      frameBytesMax: ROUTER_FRAME_BYTES_MAX,
      requestTimeoutMs: ROUTER_PING_TIMEOUT_MS,
      requestsInFlightMax: 16,
    }, {
      onOpen: (opened) => {
        opened.request('routerRegister', { secret: this.secret, kind: 'member', site: this.identity.site, name: this.identity.name }, (error, response) => {
          if (link.connection !== opened) {
            opened.close(); // a connection this link has given up on must not stay registered
            return;
          }
          if (error !== undefined || response === undefined) {
            // Forget it first, so its close does not count as a second failure.
            this.failed(link, error?.message ?? 'no answer to routerRegister');
            opened.close();
            return;
          }
          link.state = 'registered';
          link.lastHeardMs = this.runtime.clock.monotonic();
          link.router = response.router;
          link.sinceMs = this.runtime.clock.now();
          link.error = null;
          link.backoff.reset();
          this.log.info({ router: response.router, address: formatAddress(link.address) }, `${this.identity.role} ${this.identity.name}: registered with router ${response.router} at ${formatAddress(link.address)}`);
        });
      },
      onRequest: (_connection, _request, reply) => reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: formatAddress(link.address), reason: 'a member serves no requests from a router' })),
      onPush: (pushed, op, body) => {
        if (link.connection !== pushed) return; // a connection this link gave up on
        link.lastHeardMs = this.runtime.clock.monotonic();
        this.onPush(link, op, body);
      },
      onClose: (closed, error) => {
        if (link.connection !== closed) return;
        this.failed(link, error?.message ?? 'closed by the router');
      },
      onDrain: () => {
        for (const tunnel of link.tunnels) tunnel.drained();
      },
    });
    link.connection = connection;
  }

  private failed(link: Link, reason: string): void {
    link.connection = undefined;
    link.state = 'waiting';
    link.router = null;
    link.error = reason;
    link.sinceMs = this.runtime.clock.now();
    link.pingInFlight = false;
    for (const tunnel of [...link.tunnels]) tunnel.finish(new StraitError('STRAIT_CONNECTION_CLOSED', { peer: `router ${formatAddress(link.address)}`, type: `tunnel to ${tunnel.remote} (${reason})` }));
    if (this.stopped) return;
    const delayMs = link.backoff.nextDelayMs();
    const now = this.runtime.clock.monotonic();
    if (now - link.lastFailureLogMs > FAILURE_LOG_INTERVAL_MS) {
      link.lastFailureLogMs = now;
      this.log.warn({ router: formatAddress(link.address), reason }, `${this.identity.role} ${this.identity.name}: router ${formatAddress(link.address)} unavailable: ${reason}; redialing in ${delayMs} ms (with backoff); traffic uses the other routers`);
    }
    link.retry = this.runtime.setTimer(delayMs, () => {
      link.retry = undefined;
      this.dial(link);
    });
  }

  private schedulePings(): void {
    this.pingTimer = this.runtime.setTimer(ROUTER_PING_INTERVAL_MS, () => {
      if (this.stopped) return;
      for (const link of this.links) {
        const connection = link.connection;
        if (link.state !== 'registered' || connection === undefined || link.pingInFlight) continue;
        link.pingInFlight = true;
        connection.request('ping', {}, (error) => {
          link.pingInFlight = false;
          if (link.connection !== connection) return;
          const now = this.runtime.clock.monotonic();
          if (error === undefined) {
            link.lastHeardMs = now;
            return;
          }
          // A ping may wait behind a backlog of tunnel data either way: a router we still hear
          // from is alive. One silent for the whole timeout (a cut link leaves the socket open) is left.
          if (now - link.lastHeardMs < ROUTER_PING_TIMEOUT_MS) return;
          this.failed(link, `no answer to a ping and nothing heard within ${ROUTER_PING_TIMEOUT_MS} ms (${error.message})`);
          connection.close();
        });
      }
      this.schedulePings();
    });
  }

  private onPush(link: Link, op: PushOp, body: unknown): void {
    if (op === 'tunnelOpen') {
      const open = body as PushBody<'tunnelOpen'>;
      if (open.to.site !== this.identity.site || open.to.name !== this.identity.name || this.tunnels.has(open.tunnel) || this.tunnels.size >= TUNNELS_MAX) {
        this.sendClose(link, open.tunnel, `${this.identity.name} of site ${this.identity.site} refused the tunnel`);
        return;
      }
      const stream = new TunnelStream(this, open.tunnel, link, `${open.from.name} of site ${open.from.site} via ${formatAddress(link.address)}`, open.from.site, undefined);
      this.tunnels.set(open.tunnel, stream);
      link.tunnels.add(stream);
      this.host.accept(stream);
      if (!stream.hasHandler) stream.destroy(new Error('the member did not take the tunnel'));
    } else if (op === 'tunnelData') {
      const data = body as PushBody<'tunnelData'>;
      this.tunnels.get(data.tunnel)?.deliver(data.bytes);
    } else if (op === 'tunnelClose') {
      const close = body as PushBody<'tunnelClose'>;
      const tunnel = this.tunnels.get(close.tunnel);
      if (tunnel === undefined) return;
      tunnel.finish(close.reason === 'closed' ? undefined : new StraitError('STRAIT_CONNECTION_CLOSED', { peer: tunnel.remote, type: `tunnel (${close.reason})` }));
    }
  }
}

/** One tunnel, as a Stream. Exactly one onClose ends it. */
class TunnelStream implements Stream {
  readonly id: string;
  readonly remote: string;
  readonly link: Link | undefined;
  private readonly links: RouterLinks;
  private handler: StreamHandler | undefined;
  private closed = false;
  private paused = false;
  private held: Uint8Array[] = [];
  private waitingForDrain = false;

  /** The router vouches for the site of the member at the other end: it authenticated its registration. */
  readonly security: StreamSecurity;

  constructor(links: RouterLinks, id: string, link: Link | undefined, remote: string, site: number, handler: StreamHandler | undefined) {
    this.links = links;
    this.id = id;
    this.link = link;
    this.remote = remote;
    this.security = { kind: 'routed', site };
    this.handler = handler;
  }

  get hasHandler(): boolean {
    return this.handler !== undefined;
  }

  get bufferedBytes(): number {
    return this.link === undefined ? 0 : this.links.bufferedBytes(this.link);
  }

  setHandler(handler: StreamHandler): void {
    this.handler = handler;
  }

  opened(): void {
    if (!this.closed) this.handler?.onOpen();
  }

  write(bytes: Uint8Array): boolean {
    if (this.closed || this.link === undefined || bytes.length === 0) return !this.closed;
    const accepted = this.links.send(this.link, this.id, bytes);
    if (!accepted) this.waitingForDrain = true;
    return accepted;
  }

  drained(): void {
    if (!this.waitingForDrain || this.closed) return;
    this.waitingForDrain = false;
    this.handler?.onDrain();
  }

  deliver(bytes: Uint8Array): void {
    if (this.closed) return;
    if (this.paused) this.held.push(bytes);
    else this.handler?.onData(bytes);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const held = this.held;
    this.held = [];
    this.links.defer(() => {
      while (held.length > 0 && !this.closed) {
        if (this.paused) {
          this.held = [...held, ...this.held]; // paused again meanwhile: keep the rest in order
          return;
        }
        this.handler?.onData(held.shift()!);
      }
    });
  }

  close(): void {
    this.end(undefined);
  }

  destroy(error?: Error): void {
    this.end(error ?? new Error('destroyed'));
  }

  private end(error: Error | undefined): void {
    if (this.closed) return;
    if (this.link !== undefined) this.links.sendClose(this.link, this.id, error === undefined ? 'closed' : error.message.slice(0, 1000));
    this.links.defer(() => this.finish(error));
  }

  /** The tunnel ended (either side, or its router link): onClose, once, after any held data. */
  finish(error: Error | undefined): void {
    if (this.closed) return;
    const held = this.held;
    this.held = [];
    for (const bytes of held) this.handler?.onData(bytes);
    this.closed = true;
    this.links.forget(this);
    this.handler?.onClose(error);
  }
}

/** `base`, with `router:<site>/<name>` targets connected through `links`. */
export function routedNetwork(base: Network, links: RouterLinks): Network {
  return {
    listen: (bind, onStream, ready) => base.listen(bind, onStream, ready),
    connect: (target, handler) => {
      const routed = routedTarget(target);
      return routed === undefined ? base.connect(target, handler) : links.openTunnel(routed, handler);
    },
  };
}

/** `runtime` with another network; every other facility is the runtime's own. */
export function withNetwork(runtime: Runtime, network: Network): Runtime {
  return {
    clock: runtime.clock,
    random: runtime.random,
    setTimer: (delayMs, callback) => runtime.setTimer(delayMs, callback),
    defer: (callback) => runtime.defer(callback),
    network,
    storage: runtime.storage,
    compression: runtime.compression,
    log: runtime.log,
  };
}
