// The gateway links dial-out sites opened to this server: the receivers of a site behind a NAT
// that lets connections out only dial the servers hosting senders to them, and say so with
// `gatewayAttach`. This server's senders to that site then send their batches over those links
// instead of dialing (sender-dispatcher.ts), with the same batches, acks and ordering.
//
// The receiver repeats `gatewayAttach` every DIAL_OUT_HEARTBEAT_MS: a link silent for
// DIAL_IN_SILENCE_MS is closed here (a NAT that dropped its mapping leaves a socket that never
// errors), and the receiver redials. Links are bounded per site.
//
// A state machine: callbacks run to completion; time comes through the Runtime.

import { StraitError } from '../errors.ts';
import type { Connection } from '../protocol/connection.ts';
import type { RequestBody, ResponseBody } from '../protocol/messages.ts';
import type { Logger, Runtime } from '../runtime/runtime.ts';

/** How often a dial-out receiver repeats `gatewayAttach` on its link (the link's heartbeat). */
export const DIAL_OUT_HEARTBEAT_MS = 1000;
/** A link that heard no `gatewayAttach` for this long is closed. */
export const DIAL_IN_SILENCE_MS = 10_000;
/** Links one remote site may hold to this server, at most (receivers × their retries). */
export const DIAL_IN_LINKS_PER_SITE_MAX = 64;

export interface DialInLink {
  readonly connection: Connection;
  readonly site: number;
  readonly receiver: string;
  /** Wall-clock ms the link attached (status). */
  readonly sinceMs: number;
  lastHeardMs: number;
}

/** What status shows of one link. */
export interface DialInLinkStatus {
  readonly site: number;
  readonly receiver: string;
  readonly remote: string;
  readonly sinceMs: number;
}

export interface DialInHost {
  readonly memberName: string;
  site(): number | undefined;
  /** A site got its first link, or another one: its senders may dispatch now. */
  linkAttached(site: number): void;
  /** A link closed: the senders using it resend what was in flight on another. */
  linkClosed(connection: Connection, error: Error | undefined): void;
}

export class DialInLinks {
  private readonly runtime: Runtime;
  private readonly host: DialInHost;
  private readonly log: Logger;
  private readonly links = new Map<Connection, DialInLink>();

  constructor(runtime: Runtime, host: DialInHost, log: Logger) {
    this.runtime = runtime;
    this.host = host;
    this.log = log;
  }

  /** Open links from `site`, oldest first. */
  linksTo(site: number): Connection[] {
    const result: Connection[] = [];
    for (const link of this.links.values()) if (link.site === site && link.connection.state === 'open') result.push(link.connection);
    return result;
  }

  statuses(): DialInLinkStatus[] {
    return [...this.links.values()].map((link) => ({ site: link.site, receiver: link.receiver, remote: link.connection.stream.remote, sinceMs: link.sinceMs }));
  }

  onAttach(connection: Connection, body: RequestBody<'gatewayAttach'>, batchTimeoutMs: number): ResponseBody<'gatewayAttach'> {
    const peer = connection.peer;
    const own = this.host.site();
    if (peer?.role !== 'gateway' || peer.site !== body.site) {
      throw new StraitError('STRAIT_MESSAGE_INVALID', { peer: connection.label, reason: `gatewayAttach for site ${body.site} from a ${peer?.role ?? 'unknown'} peer of site ${peer?.site ?? 'none'}` });
    }
    if (body.site === own) {
      throw new StraitError('STRAIT_SITE_MISMATCH', { peer: connection.label, peerSite: body.site, site: `${own} (a dial-out receiver of our own site)` });
    }
    const now = this.runtime.clock.monotonic();
    const known = this.links.get(connection);
    if (known !== undefined) {
      known.lastHeardMs = now;
      return { member: this.host.memberName };
    }
    if (this.linksTo(body.site).length >= DIAL_IN_LINKS_PER_SITE_MAX) {
      throw new StraitError('STRAIT_TOO_MANY_CONNECTIONS', { member: `${this.host.memberName} (gateway links from site ${body.site})`, limit: DIAL_IN_LINKS_PER_SITE_MAX });
    }
    connection.extendRequestTimeout(batchTimeoutMs);
    this.links.set(connection, { connection, site: body.site, receiver: body.receiver, sinceMs: this.runtime.clock.now(), lastHeardMs: now });
    this.log.info({ site: body.site, receiver: body.receiver, link: connection.label }, `server ${this.host.memberName}: dial-out receiver ${body.receiver} of site ${body.site} attached a gateway link from ${connection.stream.remote}; senders to site ${body.site} use it`);
    this.host.linkAttached(body.site);
    return { member: this.host.memberName };
  }

  /** Any accepted connection closed; forget it if it was a link. */
  connectionClosed(connection: Connection, error: Error | undefined): void {
    const link = this.links.get(connection);
    if (link === undefined) return;
    this.links.delete(connection);
    this.log.info({ site: link.site, receiver: link.receiver }, `server ${this.host.memberName}: gateway link from ${link.receiver} of site ${link.site} closed (${error?.message ?? 'closed'}); senders to site ${link.site} move to another link`);
    this.host.linkClosed(connection, error);
  }

  /** Closes links that stopped sending heartbeats. */
  tick(): void {
    const now = this.runtime.clock.monotonic();
    for (const link of [...this.links.values()]) {
      if (now - link.lastHeardMs <= DIAL_IN_SILENCE_MS) continue;
      const silence = new StraitError('STRAIT_TIMEOUT', { operation: `gatewayAttach heartbeat from ${link.receiver} of site ${link.site}`, timeoutMs: DIAL_IN_SILENCE_MS });
      link.connection.closeWithError(silence);
    }
  }

  closeAll(): void {
    for (const link of [...this.links.values()]) link.connection.close();
  }
}
