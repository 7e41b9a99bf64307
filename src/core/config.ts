// Validated configuration of the core state machines. The CLI builds these from flags and
// strait.yaml (src/config/member-config.ts); the simulator builds them directly.

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
  readonly timing: MembershipTiming;
  readonly frameBytesMax: number;
  readonly pid: number | undefined;
  readonly httpAddress: Address | undefined;
}

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
  readonly timing: MembershipTiming;
  readonly frameBytesMax: number;
  /** Largest value accepted in a put. */
  readonly valueBytesMax: number;
  readonly pid: number | undefined;
  readonly httpAddress: Address | undefined;
}

export const FRAME_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;
export const VALUE_BYTES_MAX_DEFAULT = 1024 * 1024;
