// Validated configuration of the core state machines. The CLI builds these from flags and
// strait.yaml (src/config/member-config.ts); the simulator builds them directly.

import type { SecurityPolicy } from '../protocol/authentication.ts';
import type { RegionSpec } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';

export interface MembershipTiming {
  /** A member silent for this long is declared crashed and removed from the view. */
  readonly memberTimeoutMs: number;
  /** How often members heartbeat the coordinator (and the coordinator checks for silence). */
  readonly heartbeatIntervalMs: number;
  /** How long a starting locator looks for an existing view before it creates one. */
  readonly discoveryTimeoutMs: number;
  /** How long one request waits for its response. */
  readonly requestTimeoutMs: number;
}

/** How often locators exchange the WAN catalogue with other sites' locators. */
export const WAN_EXCHANGE_INTERVAL_MS = 2000;

export const DEFAULT_TIMING: MembershipTiming = {
  memberTimeoutMs: 5000,
  heartbeatIntervalMs: 1000,
  discoveryTimeoutMs: 2000,
  requestTimeoutMs: 10_000,
};

export interface LocatorConfig {
  readonly name: string;
  /** site-id, 1..255. */
  readonly site: number;
  /** Where to listen (port 0 = any free port). */
  readonly bind: Address;
  /** Host advertised to peers and clients (`hostname-for-clients`); default: the bind host. */
  readonly hostnameForClients: string | undefined;
  /** The other locators of this site (may include this locator's own address). */
  readonly locators: readonly Address[];
  /** Locators of other sites to exchange the WAN catalogue with (`remote-locators`). */
  readonly remoteLocators: readonly Address[];
  /** Routers to register with (`routers`), and the mesh's secret (router.ts). */
  readonly routers?: RouterSettings;
  /** What clients and admins must show (protocol/authentication.ts); default: nothing. */
  readonly security?: SecurityPolicy;
  readonly timing: MembershipTiming;
  readonly frameBytesMax: number;
  readonly pid: number | undefined;
  readonly httpAddress: Address | undefined;
}

export const ROUTER_PORT_DEFAULT = 12001;

/** A router (router.ts): where it listens, the other routers of its mesh, the mesh's secret. */
export interface RouterConfig {
  readonly name: string;
  readonly bind: Address;
  /** Host advertised to members and the other routers; default: the bind host. */
  readonly hostnameForClients: string | undefined;
  /** Other routers of the mesh to dial. */
  readonly routers: readonly Address[];
  /** The mesh's shared secret; never logged. */
  readonly secret: string;
}

/** The routers a member registers with, and the secret they share. */
export interface RouterSettings {
  readonly addresses: readonly Address[];
  readonly secret: string;
}

export type OrderPolicy = 'key' | 'thread' | 'partition';

/** A gateway sender hosted by a server (`gateway-senders.<id>` in strait.yaml). */
export interface GatewaySenderSpec {
  readonly id: string;
  readonly remoteSiteId: number;
  readonly parallel: boolean;
  /** Events per batch, at most. */
  readonly batchSize: number;
  /** A partly filled batch goes out after this long (at once when no batch is in flight). */
  readonly batchTimeIntervalMs: number;
  /** Queue memory; events beyond it wait on disk. */
  readonly maximumQueueMemoryMegabytes: number;
  /**
   * Queue on disk beyond memory, at most (default GATEWAY_QUEUE_DISK_MEGABYTES_DEFAULT): past it
   * new writes routed to this sender are refused with STRAIT_QUEUE_FULL, never dropped later.
   */
  readonly maximumQueueDiskMegabytes?: number;
  /** Keep the queue on disk so a restarted member resumes from the first unacknowledged event. */
  readonly persistent: boolean;
  readonly dispatcherThreads: number;
  readonly orderPolicy: OrderPolicy;
  readonly batchConflation: boolean;
  /** Created stopped; `strait start gateway-sender` starts it. */
  readonly manualStart: boolean;
  /** zstd-compress batches. */
  readonly compression: boolean;
  /** `gateway-event-filters`: paths of the filter modules (strait.yaml only), loaded by the process. */
  readonly eventFilters?: readonly string[];
}

/**
 * What a gateway event filter sees of an event (a `gateway-event-filters` module). `value` is
 * decoded when read; `removed` is true for a remove.
 */
export interface GatewayEventView {
  readonly region: string;
  readonly key: string;
  readonly value: unknown;
  readonly removed: boolean;
  /** The site where the change was made. */
  readonly originSite: number;
  /** Resent after a failover or a lost batch: it may have reached the remote site already. */
  readonly possibleDuplicate: boolean;
}

/**
 * A `gateway-event-filters` module's export: hooks a sender calls on every copy. They must be
 * quick, and give the same answer on every server (copies queue independently). A hook that
 * throws is logged with STRAIT_FILTER_FAILED and counted, and the event goes on as if the hook
 * were absent: a broken filter never loses an event.
 */
export interface GatewayEventFilter {
  /** false: the event is not queued for this sender. */
  beforeEnqueue?(event: GatewayEventView): boolean;
  /** false: the event is not sent (it is acknowledged as if it had been). */
  beforeTransmit?(event: GatewayEventView): boolean;
  /** The remote site applied the event. */
  afterAcknowledgement?(event: GatewayEventView): void;
}

/** The gateway receiver of a server (`gateway-receiver` in strait.yaml). */
export interface GatewayReceiverSpec {
  readonly startPort: number;
  readonly endPort: number;
  readonly bindAddress: string | undefined;
  readonly hostnameForClients: string | undefined;
  readonly manualStart: boolean;
  /**
   * The receiver listens on no port: it opens the gateway links itself, to the servers of the
   * sites that send here, and takes their batches over them (a site behind a NAT that only lets
   * connections out). Default false.
   */
  readonly dialOut?: boolean;
}

/**
 * Decides a conflict between the entry a replica holds and an incoming write to the same key.
 * It must give the same answer whatever the arrival order (a total order on writes), or
 * replicas diverge. Values are decoded; `undefined` is a delete.
 */
export type ConflictResolver = (
  key: string,
  existing: { readonly value: unknown; readonly tag: readonly [number, number, string, number] },
  incoming: { readonly value: unknown; readonly tag: readonly [number, number, string, number] },
) => 'existing' | 'incoming';

export interface ServerConfig {
  readonly name: string;
  /** site-id; undefined = take the locator's. */
  readonly site: number | undefined;
  readonly bind: Address;
  readonly hostnameForClients: string | undefined;
  /** The site's locators; at least one. */
  readonly locators: readonly Address[];
  /** Regions declared in strait.yaml. */
  readonly regions: readonly RegionSpec[];
  /** Routers to register with: other sites' senders reach this server's receiver through them. */
  readonly routers?: RouterSettings;
  /** What clients and admins must show (protocol/authentication.ts); default: nothing. */
  readonly security?: SecurityPolicy;
  readonly timing: MembershipTiming;
  readonly frameBytesMax: number;
  /** Largest value accepted in a put. */
  readonly valueBytesMax: number;
  readonly gatewaySenders: readonly GatewaySenderSpec[];
  readonly gatewayReceiver: GatewayReceiverSpec | undefined;
  /** Default: last writer wins by version tag. */
  readonly conflictResolver: ConflictResolver | undefined;
  /** The loaded `gateway-event-filters` modules, by path (GatewaySenderSpec.eventFilters names them). */
  readonly eventFilters?: ReadonlyMap<string, GatewayEventFilter>;
  readonly pid: number | undefined;
  readonly httpAddress: Address | undefined;
}

export const GATEWAY_RECEIVER_START_PORT_DEFAULT = 5000;
export const GATEWAY_RECEIVER_END_PORT_DEFAULT = 5500;
export const GATEWAY_BATCH_SIZE_DEFAULT = 100;
export const GATEWAY_BATCH_SIZE_MAX = 100_000;
export const GATEWAY_BATCH_TIME_INTERVAL_MS_DEFAULT = 1000;
export const GATEWAY_QUEUE_MEMORY_MEGABYTES_DEFAULT = 100;
export const GATEWAY_DISPATCHER_THREADS_DEFAULT = 1;
export const FRAME_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;
/** A gateway sender's overflow on disk, at most, by default (10 GiB). */
export const GATEWAY_QUEUE_DISK_MEGABYTES_DEFAULT = 10 * 1024;
export const VALUE_BYTES_MAX_DEFAULT = 1024 * 1024;

/**
 * A partitioned region's defaults. One redundant copy, and redundancy restored as soon as a
 * server's loss is in the view (recovery-delay 0) and given to a server that joins at once
 * (startup-recovery-delay 0): Geode's defaults (no copy; never restore after a loss) lose data
 * on the second failure of a site that looked redundant. A loss is in the view only after the
 * member timeout, so restarts shorter than that move nothing.
 */
export const PARTITION_DEFAULTS = {
  totalNumBuckets: 113,
  redundantCopies: 1,
  recoveryDelayMs: 0,
  startupRecoveryDelayMs: 0,
} as const;

/** Why a sender (parallel or serial) can't order its events by `policy`, or undefined when it can. */
export function orderPolicyMismatch(policy: OrderPolicy, parallel: boolean): string | undefined {
  if (policy === 'partition' && !parallel) return 'partition orders the events of each bucket, and only parallel senders have buckets; use key or thread';
  if (policy === 'thread' && parallel) return 'thread orders the events each server tagged, across buckets; a parallel sender sends each bucket from its own primary — use key or partition';
  return undefined;
}

/** Why sender `id` can't carry a region of `type`, or undefined when it can. */
export function senderMismatch(type: 'replicate' | 'partition', region: string, id: string, parallel: boolean): string | undefined {
  if (type === 'partition' && !parallel) return `sender ${id} is serial; the partitioned region ${region} needs parallel senders (parallel: true), one queue per bucket on the bucket's holders`;
  if (type !== 'partition' && parallel) return `sender ${id} is parallel; the replicate region ${region} can only use serial senders (parallel senders queue per bucket, and a replicate region has none)`;
  return undefined;
}
