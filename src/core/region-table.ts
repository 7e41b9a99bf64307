// The regions a server hosts, by name: opening (with recovery from disk for persistent ones),
// lookup, and the coded error for a region this server does not host.

import { StraitError } from '../errors.ts';
import type { RegionSpec } from '../protocol/messages.ts';
import type { Logger, Storage } from '../runtime/runtime.ts';
import type { ConflictResolver } from './config.ts';
import type { RegionStatus } from './member-admin.ts';
import { Region } from './region.ts';
import { normalizeRegionSpec } from './partition-map.ts';

export class RegionTable {
  private readonly storage: Storage;
  private readonly memberName: string;
  private readonly resolver: ConflictResolver | undefined;
  private readonly log: Logger;
  private readonly regions = new Map<string, Region>();
  /** Regions the site configuration this server runs names (server-configuration.ts). */
  private configured = new Set<string>();
  /** Members known to host each region created at runtime (from the creation request). */
  private readonly expectedHosts = new Map<string, Set<string>>();

  constructor(storage: Storage, memberName: string, resolver: ConflictResolver | undefined, log: Logger) {
    this.storage = storage;
    this.memberName = memberName;
    this.resolver = resolver;
    this.log = log;
  }

  /**
   * Opens `spec` (recovering a persistent region from disk), or returns the region already open
   * under that name. Throws STRAIT_REGION_EXISTS when the open one has other settings.
   */
  open(declared: RegionSpec): Region {
    const spec = normalizeRegionSpec(declared);
    const existing = this.regions.get(spec.name);
    if (existing !== undefined) {
      if (existing.spec.type !== spec.type || existing.spec.persistent !== spec.persistent || JSON.stringify(existing.spec.partition) !== JSON.stringify(spec.partition)) {
        throw new StraitError('STRAIT_REGION_EXISTS', { region: spec.name, member: this.memberName });
      }
      return existing;
    }
    const store = spec.persistent ? this.storage.open(`region-${spec.name}`) : undefined;
    const assigned = spec.persistent && spec.partition !== undefined ? this.storage.open(`buckets-${spec.name}`) : undefined;
    const region = new Region(spec, store, this.resolver, assigned);
    this.regions.set(spec.name, region);
    if (region.size > 0) this.log.info({ region: spec.name, entries: region.size }, `server ${this.memberName}: region ${spec.name} recovered ${region.size} entries from disk`);
    return region;
  }

  /** Records that the members `hosts` host region `name` (a creation at runtime named them). */
  expectHosts(name: string, hosts: readonly string[]): void {
    let set = this.expectedHosts.get(name);
    if (set === undefined) {
      set = new Set();
      this.expectedHosts.set(name, set);
    }
    for (const host of hosts) set.add(host);
  }

  /** The members a runtime creation named as hosts of region `name` (none for a declared one). */
  expectedHostsOf(name: string): string[] {
    return [...(this.expectedHosts.get(name) ?? [])];
  }

  /** True when member `memberId` was named as a host of region `name` when it was created. */
  expectedOn(name: string, memberId: string): boolean {
    return this.expectedHosts.get(name)?.has(memberId) === true;
  }

  /** Closes region `name` and drops its entries, on disk too (destroyed by the site configuration). */
  drop(name: string): void {
    const region = this.regions.get(name);
    if (region === undefined) return;
    region.clear();
    this.regions.delete(name);
    this.expectedHosts.delete(name);
  }

  /** The regions the site configuration now names. */
  setConfigured(names: Iterable<string>): void {
    this.configured = new Set(names);
  }

  /** True when the site configuration names region `name`. */
  isConfigured(name: string): boolean {
    return this.configured.has(name);
  }

  has(name: string): boolean {
    return this.regions.has(name);
  }

  get(name: string): Region | undefined {
    return this.regions.get(name);
  }

  /** The region, or STRAIT_REGION_NOT_FOUND naming this server. */
  require(name: string): Region {
    const region = this.regions.get(name);
    if (region === undefined) throw new StraitError('STRAIT_REGION_NOT_FOUND', { region: name, member: this.memberName });
    return region;
  }

  names(): string[] {
    return [...this.regions.keys()];
  }

  all(): IterableIterator<Region> {
    return this.regions.values();
  }

  get count(): number {
    return this.regions.size;
  }

  statuses(): RegionStatus[] {
    return [...this.regions.values()].map((region) => ({ spec: region.spec, size: region.size }));
  }

  /** Entries of every region (tombstones excluded). */
  totalEntries(): number {
    let total = 0;
    for (const region of this.regions.values()) total += region.size;
    return total;
  }
}
