// The dial-out side of a gateway receiver (`gateway-receiver: { dial-out: true }`): for a site
// whose NAT lets connections out only, the receiver listens on nothing and opens the gateway
// links itself (the NATS leafnode idea). From the WAN catalogue it learns, for every other site,
// the servers hosting senders to this site (SiteEntry.senderHosts), and keeps one link open to
// each. On a link it sends `gatewayAttach` at once and then every DIAL_OUT_HEARTBEAT_MS; the
// remote server's sender sends its batches back over the same link, and they are applied and
// acknowledged exactly as on a receiver's own port — so ordering, acks and durability don't
// depend on which side opened the connection.
//
// A link that fails, closes or misses a heartbeat answer is redialed with jittered backoff;
// links to servers that no longer host senders here are closed.
//
// A state machine: callbacks run to completion; time and I/O come through the Runtime.

import { Connection, type IncomingRequest, type Reply } from '../protocol/connection.ts';
import type { RequestOp, SiteEntry } from '../protocol/messages.ts';
import type { Address, Logger, Runtime, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { Backoff } from './backoff.ts';
import { DIAL_OUT_HEARTBEAT_MS } from './dial-in.ts';
import { addressKey } from './peer-pool.ts';

/** How long a `gatewayAttach` (the heartbeat) may wait for its answer. */
const ATTACH_TIMEOUT_MS = 5000;
/**
 * Batches the remote senders may have in flight on one link, at most: every sender and dispatcher
 * thread of that server to this site shares the link. A sender's send window learns the limit
 * from the refusal (STRAIT_TOO_MANY_IN_FLIGHT) and stays below it; it does not reconnect.
 */
const LINK_INCOMING_REQUESTS_MAX = 256;
/** Acknowledgements queued towards a remote sender that does not read them, at most. */
const LINK_BUFFERED_BYTES_MAX = 8 * 1024 * 1024;
/** Remote servers this receiver keeps links to, at most. */
export const DIAL_OUT_LINKS_MAX = 256;
/** Failures are logged at most this often per link. */
const FAILURE_LOG_INTERVAL_MS = 30_000;

export interface DialOutHost {
  readonly memberName: string;
  readonly frameBytesMax: number;
  site(): number | undefined;
  /** True while the server serves (it can apply batches). */
  ready(): boolean;
  /** The WAN catalogue as this server last fetched it. */
  catalogue(): readonly SiteEntry[];
  /** Serves a request the remote server sent over a link (its batches). */
  serve(connection: Connection, request: IncomingRequest, reply: Reply<RequestOp>): void;
}

export type DialOutLinkState = 'connecting' | 'attached' | 'waiting';

export interface DialOutLinkStatus {
  readonly site: number;
  readonly address: Address;
  readonly state: DialOutLinkState;
  /** Wall-clock ms of the last state change. */
  readonly sinceMs: number;
  /** Why the last attempt failed, while waiting. */
  readonly error: string | null;
  /** The remote server's name, once attached. */
  readonly member: string | null;
}

interface Link {
  readonly site: number;
  readonly address: Address;
  readonly backoff: Backoff;
  state: DialOutLinkState;
  sinceMs: number;
  connection: Connection | undefined;
  retry: Timer | undefined;
  error: string | null;
  member: string | null;
  attachInFlight: boolean;
  lastAttachMs: number;
  lastFailureLogMs: number;
}

export class DialOutLinks {
  private readonly runtime: Runtime;
  private readonly host: DialOutHost;
  private readonly log: Logger;
  private readonly links = new Map<string, Link>();
  private stopped = false;

  constructor(runtime: Runtime, host: DialOutHost, log: Logger) {
    this.runtime = runtime;
    this.host = host;
    this.log = log;
  }

  statuses(): DialOutLinkStatus[] {
    return [...this.links.values()].map(({ site, address, state, sinceMs, error, member }) => ({ site, address, state, sinceMs, error, member }));
  }

  /** Called on the server's tick and when the catalogue changes. */
  tick(): void {
    const own = this.host.site();
    if (this.stopped || own === undefined || !this.host.ready()) return;
    const wanted = this.targets(own);
    for (const [key, link] of this.links) if (!wanted.has(key)) this.drop(key, link);
    for (const [key, target] of wanted) {
      if (!this.links.has(key)) {
        if (this.links.size >= DIAL_OUT_LINKS_MAX) break;
        this.links.set(key, this.newLink(target.site, target.address));
      }
      const link = this.links.get(key)!;
      if (link.state === 'attached') this.heartbeat(link);
      else if (link.connection === undefined && link.retry === undefined) this.dial(link);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const [key, link] of this.links) this.drop(key, link);
  }

  /** Every server of another site that hosts a sender to us, by address. */
  private targets(own: number): Map<string, { site: number; address: Address }> {
    const wanted = new Map<string, { site: number; address: Address }>();
    for (const entry of this.host.catalogue()) {
      if (entry.site === own) continue;
      for (const senderHost of entry.senderHosts ?? []) {
        if (senderHost.sites.includes(own)) wanted.set(addressKey(senderHost.address), { site: entry.site, address: senderHost.address });
      }
    }
    return wanted;
  }

  private newLink(site: number, address: Address): Link {
    return {
      site, address, backoff: new Backoff(this.runtime.random, { initialDelayMs: 100, maximumDelayMs: 5000 }),
      state: 'waiting', sinceMs: this.runtime.clock.now(), connection: undefined, retry: undefined, error: null, member: null,
      attachInFlight: false, lastAttachMs: -Infinity, lastFailureLogMs: -Infinity,
    };
  }

  private drop(key: string, link: Link): void {
    this.links.delete(key);
    link.retry?.cancel();
    link.retry = undefined;
    const connection = link.connection;
    link.connection = undefined;
    connection?.close();
  }

  private setState(link: Link, state: DialOutLinkState): void {
    link.state = state;
    link.sinceMs = this.runtime.clock.now();
  }

  private dial(link: Link): void {
    const own = this.host.site();
    if (own === undefined) return;
    this.setState(link, 'connecting');
    const connection = Connection.open(this.runtime, link.address, {
      local: { role: 'gateway', name: this.host.memberName, site: own },
      frameBytesMax: this.host.frameBytesMax,
      requestTimeoutMs: ATTACH_TIMEOUT_MS,
      requestsInFlightMax: 4,
      incomingRequestsMax: LINK_INCOMING_REQUESTS_MAX,
      bufferedBytesMax: LINK_BUFFERED_BYTES_MAX,
    }, {
      onOpen: () => {
        if (link.connection === connection) this.heartbeat(link);
      },
      onRequest: (from, request, reply) => this.host.serve(from, request, reply),
      onPush: () => {},
      onClose: (_closed, error) => {
        if (link.connection !== connection) return;
        this.failed(link, error?.message ?? 'closed by the remote server');
      },
    });
    link.connection = connection;
  }

  private heartbeat(link: Link): void {
    const connection = link.connection;
    const own = this.host.site();
    if (connection === undefined || own === undefined || link.attachInFlight) return;
    if (link.state === 'attached' && this.runtime.clock.monotonic() - link.lastAttachMs < DIAL_OUT_HEARTBEAT_MS) return;
    link.attachInFlight = true;
    link.lastAttachMs = this.runtime.clock.monotonic();
    connection.request('gatewayAttach', { site: own, receiver: this.host.memberName }, (error, response) => {
      link.attachInFlight = false;
      if (link.connection !== connection) return;
      if (error !== undefined || response === undefined) {
        connection.close();
        this.failed(link, error?.message ?? 'no answer to gatewayAttach');
        return;
      }
      if (link.state !== 'attached') {
        this.setState(link, 'attached');
        link.member = response.member;
        link.error = null;
        link.backoff.reset();
        this.log.info({ site: link.site, remote: formatAddress(link.address) }, `server ${this.host.memberName}: dial-out gateway link to ${response.member} of site ${link.site} at ${formatAddress(link.address)} attached; its senders to us use it`);
      }
    });
  }

  private failed(link: Link, reason: string): void {
    link.connection = undefined;
    link.attachInFlight = false;
    link.member = null;
    link.error = reason;
    this.setState(link, 'waiting');
    if (this.stopped || this.links.get(addressKey(link.address)) !== link) return;
    const delayMs = link.backoff.nextDelayMs();
    const now = this.runtime.clock.monotonic();
    if (now - link.lastFailureLogMs > FAILURE_LOG_INTERVAL_MS) {
      link.lastFailureLogMs = now;
      this.log.warn({ site: link.site, remote: formatAddress(link.address), reason }, `server ${this.host.memberName}: dial-out gateway link to site ${link.site} at ${formatAddress(link.address)} failed: ${reason}; redialing in ${delayMs} ms (with backoff)`);
    }
    link.retry = this.runtime.setTimer(delayMs, () => {
      link.retry = undefined;
      if (!this.stopped && this.links.get(addressKey(link.address)) === link && link.connection === undefined) this.dial(link);
    });
  }
}
