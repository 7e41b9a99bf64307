// What a running member (locator or server) exposes to the admin HTTP API, the CLI and metrics.
// The core implements these; src/admin and src/cli consume them. Nothing here does I/O.

import type { DialOutLinkStatus } from './dial-out.ts';
import type { DialInLinkStatus } from './dial-in.ts';
import type { StraitError } from '../errors.ts';
import type { ConfigChange, ConfigChangeResult, MemberInfo, RegionSpec, RequestBody, SenderStatus, SiteConfig, SiteEntry, VersionTag, View } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';

/** Lifecycle of a member, published as a typed union. */
export type MemberState = 'starting' | 'joining' | 'initializing' | 'ready' | 'leaving' | 'stopped';

export interface MemberStatus {
  readonly info: MemberInfo;
  readonly state: MemberState;
  readonly viewId: number;
  readonly coordinator: string | null;
}

export interface RegionStatus {
  readonly spec: RegionSpec;
  readonly size: number;
}

export interface MemberAdmin {
  status(): MemberStatus;
  view(): View | null;
  regions(): readonly RegionStatus[];
  /**
   * Creates a region on this member and every other server of the site (servers only); calls
   * back once every one of them has it (or left the view), or with the coded error of the first
   * that refused (REGION_EXISTS with other settings, REGION_INVALID).
   */
  createRegion(spec: RegionSpec, callback: (error: StraitError | undefined, result: { created: boolean } | undefined) => void): void;
  /** This member's copies of gateway senders (servers; empty on locators). */
  senders(): readonly SenderStatus[];
  /** This member's gateway receiver, advertised address, if it runs one. */
  receiver(): Address | null;
  /**
   * The gateway links of this member: those its dial-out receiver opened (`dialOut`), and those
   * dial-out receivers of other sites opened to it (`dialIn`).
   */
  gatewayLinks(): { readonly dialOut: readonly DialOutLinkStatus[]; readonly dialIn: readonly DialInLinkStatus[] };
  /**
   * pause | resume | stop | start | replayDeadLetters on a sender, here or (everyMember) on every
   * server of the site hosting it. Calls back with each member's resulting state.
   */
  controlSender(
    request: RequestBody<'senderControl'>,
    callback: (error: StraitError | undefined, result: { member: string; state: string }[] | undefined) => void,
  ): void;
  /**
   * The site configuration this member holds (locators; servers: the one they run), or null
   * for a member that holds none yet.
   */
  siteConfig(): SiteConfig | null;
  /**
   * Changes the site configuration (locators: on every locator and server of the site, see
   * config-service.ts); servers refuse with STRAIT_CONFIG_NOT_FOUND pointing at a locator.
   */
  changeConfig(change: ConfigChange, callback: (error: StraitError | undefined, result: ConfigChangeResult | undefined) => void): void;
  /** Every copy of every gateway sender of the site, from the servers the view says host one. */
  siteSenders(callback: (senders: SenderStatus[]) => void): void;
  /** The WAN catalogue: every site this member knows of, with its edges (a locator's own; a server's last fetched). */
  catalogue(): readonly SiteEntry[];
}

/**
 * Observations the core reports; the Node process maps them onto Prometheus metrics
 * (src/admin/metrics.ts), the simulator ignores them.
 */
export interface MetricsSink {
  /** A client-facing operation finished (get, put, ...); `count` of them (a batch's entries). */
  operation(op: string, durationMs: number, ok: boolean, count?: number): void;
  /** Replication traffic between servers. */
  replicated(entries: number): void;
  /** The member installed a view of this many members. */
  viewInstalled(viewId: number, members: number): void;
  /** Connections currently open from clients. */
  clients(count: number): void;
  /**
   * A bug: an exception that was not a coded error escaped `where` (a request handler). The
   * member answered STRAIT_INTERNAL and keeps serving; the simulator fails the seed on it.
   */
  internalError(where: string, error: unknown): void;
  /** A subscription was cut off because its subscriber did not keep up. */
  subscriberCut(): void;
  /**
   * A peer was refused for its credentials or for what it asked (STRAIT_TLS_REFUSED,
   * STRAIT_UNAUTHENTICATED, STRAIT_FORBIDDEN): `code` says which.
   */
  securityRefusal(code: string): void;
  /**
   * The gateway receiver took a batch: events applied, those among them this server already
   * held at the same version (a resend after a failover), events refused (dead letters), and
   * among the duplicates those their sender did not flag possible-duplicate (should be none).
   */
  receiverBatch(applied: number, duplicates: number, refused: number, unflaggedDuplicates?: number): void;
  /**
   * Every event a gateway receiver took, with its sender's possible-duplicate flag (the
   * simulations check that no event arrives unflagged twice at a site); absent in production.
   */
  receiverEvent?(region: string, key: string, tag: VersionTag, possibleDuplicate: boolean): void;
}

export const NO_METRICS: MetricsSink = {
  operation() {},
  replicated() {},
  viewInstalled() {},
  clients() {},
  internalError() {},
  subscriberCut() {},
  securityRefusal() {},
  receiverBatch() {},
};

export interface MemberStartResult {
  readonly ok: boolean;
  /** The address the member listens on (bound). */
  readonly address?: Address;
  readonly error?: Error;
}
