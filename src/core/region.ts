// One region's entries on one server: an in-memory map from key to (value, version tag), with
// deletes kept as tombstones so an older write arriving late cannot resurrect a key. Optional
// persistence writes every applied change through to a Store.
//
// Applying is commutative: every replica applies the same set of writes in any order and ends
// with the same winner per key (last writer wins by version tag, see compareTags). That is what
// lets replication, initial images and retries race safely.

import { Packr } from 'msgpackr';
import { StraitError, assert } from '../errors.ts';
import type { RegionSpec, VersionTag, WireEntry } from '../protocol/messages.ts';
import type { Store } from '../runtime/runtime.ts';
import type { ConflictResolver } from './config.ts';
import { bucketOf } from '../protocol/buckets.ts';
import { ValueArena } from './value-arena.ts';

export interface Entry {
  /** null for a tombstone. */
  readonly value: Uint8Array | null;
  readonly tag: VersionTag;
}

/**
 * Total order on writes: timestamp, then site id, then member id, then the member's counter.
 * Positive when `a` is newer than `b`.
 */
export function compareTags(a: VersionTag, b: VersionTag): number {
  if (a[1] !== b[1]) return a[1] - b[1];
  if (a[0] !== b[0]) return a[0] - b[0];
  if (a[2] !== b[2]) return a[2] < b[2] ? -1 : 1;
  return a[3] - b[3];
}

const recordPackr = new Packr({ useRecords: false, mapsAsObjects: true });

/** Durable record: [format version, value or null, tag]. */
const RECORD_FORMAT = 1;

function encodeRecord(entry: Entry): Uint8Array {
  return recordPackr.pack([RECORD_FORMAT, entry.value, entry.tag]);
}

function decodeRecord(key: string, bytes: Uint8Array, path: string): Entry {
  let record: unknown;
  try {
    record = recordPackr.unpack(bytes);
  } catch (error) {
    throw new StraitError('STRAIT_STORAGE', { path, reason: `record for key ${key} is not readable` }, { cause: error });
  }
  if (!Array.isArray(record) || record.length !== 3 || record[0] !== RECORD_FORMAT) {
    throw new StraitError('STRAIT_STORAGE', { path, reason: `record for key ${key} has an unknown format` });
  }
  const [, value, tag] = record as [number, unknown, unknown];
  const tagValid = Array.isArray(tag) && tag.length === 4 && typeof tag[0] === 'number' && typeof tag[1] === 'number'
    && typeof tag[2] === 'string' && typeof tag[3] === 'number';
  if (!tagValid || !(value === null || value instanceof Uint8Array)) {
    throw new StraitError('STRAIT_STORAGE', { path, reason: `record for key ${key} is corrupt` });
  }
  return { value, tag: tag as VersionTag };
}

export type ApplyResult = 'applied' | 'stale';

export class Region {
  private specValue: RegionSpec;
  private readonly entries = new Map<string, Entry>();
  private readonly tombstones = new Set<string>();
  private liveCount = 0;
  private readonly store: Store | undefined;
  private readonly resolver: ConflictResolver | undefined;
  /** A partitioned region's keys (tombstones too) by bucket: images, drops and counts per bucket. */
  private readonly buckets: Map<number, Set<string>> | undefined;
  /**
   * The buckets this server was assigned (copy or pending), kept on disk for a persistent
   * region: after a restart it offers them even when they hold no entry (partitioned-regions.ts).
   */
  private readonly assigned = new Set<number>();
  private readonly assignedStore: Store | undefined;
  /** Small values copied in by keepValue (a gateway receiver's), in shared slabs (value-arena.ts). */
  private readonly arena = new ValueArena({
    valueOf: (key) => this.entries.get(key)?.value,
    moved: (key, value) => {
      const entry = this.entries.get(key)!;
      this.entries.set(key, { value, tag: entry.tag });
    },
  });

  constructor(spec: RegionSpec, store: Store | undefined, resolver?: ConflictResolver, assignedStore?: Store) {
    this.specValue = spec;
    this.store = store;
    this.resolver = resolver;
    this.buckets = spec.partition === undefined ? undefined : new Map();
    this.assignedStore = assignedStore;
    for (const [key] of assignedStore?.entries() ?? []) {
      const bucket = Number(key);
      if (Number.isInteger(bucket) && bucket >= 0) this.assigned.add(bucket);
    }
    if (store !== undefined) {
      for (const [key, bytes] of store.entries()) {
        this.setEntry(key, decodeRecord(key, bytes, `region ${spec.name}`));
      }
    }
  }

  get spec(): RegionSpec {
    return this.specValue;
  }

  /** The gateway senders new changes are queued on (`alter region --gateway-sender-id`). */
  setGatewaySenders(ids: readonly string[]): void {
    const { gatewaySenderIds: _previous, ...rest } = this.specValue;
    this.specValue = ids.length === 0 ? rest : { ...rest, gatewaySenderIds: [...ids] };
  }

  /** Removes every entry, from memory and disk (the region is destroyed). */
  clear(): void {
    if (this.store !== undefined) for (const [key] of [...this.store.entries()]) this.store.remove(key);
    this.entries.clear();
    this.arena.clear();
    this.tombstones.clear();
    this.buckets?.clear();
    for (const bucket of this.assigned) this.assignedStore?.remove(String(bucket));
    this.assigned.clear();
    this.liveCount = 0;
  }

  /** Records that this server holds (or is taking) `bucket`, on disk for a persistent region. */
  markAssigned(bucket: number): void {
    if (this.assigned.has(bucket)) return;
    this.assigned.add(bucket);
    if (this.assignedStore !== undefined) {
      this.assignedStore.put(String(bucket), new Uint8Array([1]));
      // Made durable with the bucket's first writes at the latest (those wait for their own sync).
      this.assignedStore.sync(() => {});
    }
  }

  /** The bucket of `key` in this partitioned region. */
  bucketOf(key: string): number {
    assert(this.specValue.partition !== undefined, `region ${this.specValue.name} is not partitioned`);
    return bucketOf(key, this.specValue.partition.totalNumBuckets);
  }

  /** A partitioned region's buckets that hold any entry here, or that were assigned here. */
  heldBuckets(): number[] {
    return [...new Set([...(this.buckets?.keys() ?? []), ...this.assigned])].sort((a, b) => a - b);
  }

  /** Every key of `bucket` held here, tombstones included, sorted (a bucket image's order). */
  bucketKeys(bucket: number): string[] {
    return [...(this.buckets?.get(bucket) ?? [])].sort();
  }

  /** The live keys of `bucket` held here. */
  bucketLiveKeys(bucket: number): string[] {
    const keys: string[] = [];
    for (const key of this.buckets?.get(bucket) ?? []) if (this.entries.get(key)?.value != null) keys.push(key);
    return keys;
  }

  /** Drops every entry of `bucket` here, from memory and disk (the bucket moved elsewhere). */
  dropBucket(bucket: number): number {
    if (this.assigned.delete(bucket)) this.assignedStore?.remove(String(bucket));
    const keys = this.buckets?.get(bucket);
    if (keys === undefined) return 0;
    for (const key of keys) {
      const entry = this.entries.get(key);
      if (entry !== undefined && entry.value !== null) this.liveCount -= 1;
      this.entries.delete(key);
      if (entry?.value != null) this.arena.release(entry.value);
      this.tombstones.delete(key);
      this.store?.remove(key);
    }
    this.buckets!.delete(bucket);
    return keys.size;
  }

  get size(): number {
    return this.liveCount;
  }

  get persistent(): boolean {
    return this.store !== undefined;
  }

  get(key: string): Uint8Array | undefined {
    return this.entries.get(key)?.value ?? undefined;
  }

  entry(key: string): Entry | undefined {
    return this.entries.get(key);
  }

  /**
   * A copy of `value` for this region to hold, in its arena when small (value-arena.ts): for a
   * value that is a view of bytes the region must not pin (a gateway batch's).
   */
  keepValue(value: Uint8Array | null): Uint8Array | null {
    return value === null ? null : this.arena.copy(value);
  }

  /** Bytes of the region's value slabs, and of the values it holds in them. */
  get arenaBytes(): { slabs: number; held: number; compactions: number } {
    return { slabs: this.arena.bytes, held: this.arena.held, compactions: this.arena.compactions };
  }

  /**
   * Applies a write if it wins over what the key holds: the newer tag, or the configured
   * resolver's choice. All or nothing: a write the store refuses (STRAIT_KEY_INVALID for a key
   * it can't hold, STRAIT_STORAGE) changes nothing, and a resolver that throws, or a value it
   * can't decode, is STRAIT_RESOLVER_FAILED with nothing changed. With `lastWriterWins` the
   * resolver is not consulted (a replica falling back after the resolver failed on it).
   */
  apply(key: string, value: Uint8Array | null, tag: VersionTag, lastWriterWins = false): ApplyResult {
    const current = this.entries.get(key);
    if (current !== undefined) {
      if (this.resolver !== undefined && !lastWriterWins) {
        if (compareTags(tag, current.tag) === 0) return 'stale';
        if (this.resolve(key, current, value, tag) !== 'incoming') return 'stale';
      } else if (compareTags(tag, current.tag) <= 0) {
        return 'stale';
      }
    }
    const entry: Entry = { value, tag };
    // Disk first: if the store refuses, memory still agrees with it.
    this.store?.put(key, encodeRecord(entry));
    this.setEntry(key, entry, current);
    return 'applied';
  }

  private resolve(key: string, current: Entry, value: Uint8Array | null, tag: VersionTag): 'existing' | 'incoming' {
    try {
      return this.resolver!(
        key,
        { value: current.value === null ? undefined : recordPackr.unpack(current.value), tag: current.tag },
        { value: value === null ? undefined : recordPackr.unpack(value), tag },
      );
    } catch (error) {
      throw new StraitError('STRAIT_RESOLVER_FAILED', { region: this.spec.name, key, reason: error instanceof Error ? error.message : String(error) }, { cause: error });
    }
  }

  /** `current` is what the key holds now, when the caller looked it up already. */
  private setEntry(key: string, entry: Entry, current = this.entries.get(key)): void {
    const wasLive = current !== undefined && current.value !== null;
    const isLive = entry.value !== null;
    if (current === undefined && this.buckets !== undefined) {
      const bucket = this.bucketOf(key);
      let keys = this.buckets.get(bucket);
      if (keys === undefined) {
        keys = new Set();
        this.buckets.set(bucket, keys);
      }
      keys.add(key);
    }
    this.entries.set(key, entry);
    // Held before the old value goes: letting it go may compact the slab both are in.
    if (entry.value !== null) this.arena.hold(key, entry.value);
    if (current?.value != null) this.arena.release(current.value);
    // Only a key that held a tombstone is in the set (a probe of it per write cost a cache miss).
    if (isLive) {
      if (current !== undefined && current.value === null) this.tombstones.delete(key);
    } else this.tombstones.add(key);
    this.liveCount += (isLive ? 1 : 0) - (wasLive ? 1 : 0);
    assert(this.liveCount >= 0 && this.liveCount <= this.entries.size, `region ${this.spec.name}: live count out of range`);
  }

  /** Live keys (tombstones excluded). */
  keys(): string[] {
    const keys: string[] = [];
    for (const [key, entry] of this.entries) if (entry.value !== null) keys.push(key);
    return keys;
  }

  /** All keys including tombstones, sorted: the order initial images are served in. */
  sortedKeys(): string[] {
    return [...this.entries.keys()].sort();
  }

  wireEntry(key: string): WireEntry | undefined {
    const entry = this.entries.get(key);
    return entry === undefined ? undefined : [key, entry.value, entry.tag];
  }

  /**
   * Drops tombstones older than `olderThanMs` (wall clock of the writing site), looking at no
   * more than `limit` tombstones per call so a sweep never stalls the member (tombstones are
   * roughly in write order, so the old ones come first). Returns how many were dropped.
   */
  purgeTombstones(olderThanMs: number, limit: number): number {
    let purged = 0;
    let examined = 0;
    for (const key of this.tombstones) {
      if (examined >= limit) break;
      examined += 1;
      const entry = this.entries.get(key);
      if (entry === undefined || entry.value !== null) {
        this.tombstones.delete(key);
        continue;
      }
      if (entry.tag[1] >= olderThanMs) continue;
      this.entries.delete(key);
      this.tombstones.delete(key);
      this.store?.remove(key);
      if (this.buckets !== undefined) {
        const bucket = this.bucketOf(key);
        const keys = this.buckets.get(bucket);
        keys?.delete(key);
        if (keys?.size === 0) this.buckets.delete(bucket);
      }
      purged += 1;
    }
    return purged;
  }

  sync(callback: (error: Error | undefined) => void): void {
    if (this.store === undefined) callback(undefined);
    else this.store.sync(callback);
  }
}
