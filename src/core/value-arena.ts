// A region's small values, copied into shared slabs instead of an ArrayBuffer each.
//
// Why: a value decoded off the wire with its own ArrayBuffer costs ~1.1 µs to allocate and
// collect on this machine (V8 keeps every ArrayBuffer's backing store off its heap and tracks
// each one); at a gateway receiver that was 13% of the CPU of a drain, its largest cost after
// the garbage collector. A copy into a slab is a view: a few tens of nanoseconds.
//
// The danger of views is memory a value pins: a slab stays allocated while any value in it is
// live. A slab none of whose values is held any more is let go. And once the slabs hold more
// than SLAB_BUDGET_FACTOR times what is live (plus two slabs), the sparsest are compacted —
// their live values copied into the current slab, the region's entries pointed at the copies.
// A slab's memory is freed by the garbage collector when the last view of it goes (a queued
// event or a reply may still hold one: slabs are never written twice, so a view never
// changes).
//
// Why a budget, not a per-slab threshold: keys overwritten in about the order they were
// written (the common case) empty whole slabs on their own. Compacting each slab at half live
// moved every value about once more, and looking up a slab's keys cost more than the
// ArrayBuffers saved (measured in a drain profile: 15% of the receiver's CPU). Under the
// budget such a workload is never compacted; a workload that leaves scattered survivors is.
//
// Values larger than ARENA_VALUE_BYTES_MAX get their own copy, as before.
//
// Pure: no I/O.

/** Values up to this size go into slabs; larger ones get an ArrayBuffer of their own. */
export const ARENA_VALUE_BYTES_MAX = 2048;
/** A region's first slab; each next one is twice as large, up to SLAB_BYTES_MAX. */
export const SLAB_BYTES_MIN = 4096;
export const SLAB_BYTES_MAX = 64 * 1024;
/** The slabs may hold this many times the bytes of the values live in them (plus two slabs). */
export const SLAB_BUDGET_FACTOR = 3;

interface Slab {
  readonly bytes: Uint8Array;
  /** Bytes written into it (copies, live or not). */
  used: number;
  /** Bytes of it the region holds. */
  live: number;
  /** Keys whose values were held in it (some since replaced): what a compaction looks at. */
  readonly keys: string[];
  /** In the sparse list: live under 1/SLAB_BUDGET_FACTOR of its size. */
  sparse: boolean;
}

/** What the arena needs of its region to compact a slab. */
export interface ArenaOwner {
  /** The value the region holds for `key`, if any. */
  valueOf(key: string): Uint8Array | null | undefined;
  /** The region's value for `key` moves to `value` (the same bytes, in another slab). */
  moved(key: string, value: Uint8Array): void;
}

export class ValueArena {
  private readonly owner: ArenaOwner;
  private current: Slab | undefined;
  private readonly slabs = new Map<ArrayBufferLike, Slab>();
  private nextSlabBytes = SLAB_BYTES_MIN;
  /** Slabs no longer written into whose live bytes fell under 1/SLAB_BUDGET_FACTOR of their size. */
  private readonly sparse = new Set<Slab>();
  private compacting = false;
  private liveBytes = 0;
  private slabBytes = 0;
  /** Compactions done (tests and metrics look). */
  compactions = 0;

  constructor(owner: ArenaOwner) {
    this.owner = owner;
  }

  /** Bytes of the slabs the arena still tracks (the current one, and those not compacted). */
  get bytes(): number {
    return this.slabBytes;
  }

  /** Bytes of values the region holds in slabs. */
  get held(): number {
    return this.liveBytes;
  }

  /** A copy of `value` to hold: in the current slab when small, else one of its own. Not held until `hold`. */
  copy(value: Uint8Array): Uint8Array {
    const length = value.length;
    if (length === 0 || length > ARENA_VALUE_BYTES_MAX) return value.slice();
    let slab = this.current;
    if (slab === undefined || slab.used + length > slab.bytes.length) slab = this.newSlab();
    const start = slab.used;
    slab.bytes.set(value, start);
    slab.used = start + length;
    return slab.bytes.subarray(start, start + length);
  }

  /** The slab `value` is in; undefined for a value from elsewhere. */
  private slabOf(value: Uint8Array): Slab | undefined {
    // Slab values never start at offset 0 (a slab's first byte is left out), so a value that
    // does is not looked up: for a small typed array V8 keeps on its heap, reading `buffer`
    // would move it off the heap.
    return value.byteOffset === 0 || this.slabs.size === 0 ? undefined : this.slabs.get(value.buffer);
  }

  /** The region now holds `value` for `key` (a value from elsewhere is not the arena's: ignored). */
  hold(key: string, value: Uint8Array): void {
    const slab = this.slabOf(value);
    if (slab === undefined) return;
    slab.live += value.length;
    this.liveBytes += value.length;
    slab.keys.push(key);
  }

  /** The region no longer holds `value` (replaced or dropped). */
  release(value: Uint8Array): void {
    const slab = this.slabOf(value);
    if (slab === undefined) return;
    slab.live -= value.length;
    this.liveBytes -= value.length;
    if (slab !== this.current) this.check(slab);
  }

  /** Forgets every slab (the region was cleared). */
  clear(): void {
    this.slabs.clear();
    this.current = undefined;
    this.sparse.clear();
    this.liveBytes = 0;
    this.slabBytes = 0;
  }

  private newSlab(): Slab {
    const previous = this.current;
    const slab: Slab = { bytes: new Uint8Array(this.nextSlabBytes), used: 1, live: 0, keys: [], sparse: false };
    this.nextSlabBytes = Math.min(SLAB_BYTES_MAX, this.nextSlabBytes * 2);
    this.slabs.set(slab.bytes.buffer, slab);
    this.slabBytes += slab.bytes.length;
    this.current = slab;
    if (previous !== undefined) this.check(previous);
    return slab;
  }

  /** A slab no longer written into: let go when nothing in it is held, listed when sparse; then the budget. */
  private check(slab: Slab): void {
    if (!this.slabs.has(slab.bytes.buffer)) return;
    if (slab.live === 0) this.retire(slab);
    else if (!slab.sparse && slab.live * SLAB_BUDGET_FACTOR < slab.bytes.length) {
      slab.sparse = true;
      this.sparse.add(slab);
    }
    if (this.slabBytes > SLAB_BUDGET_FACTOR * this.liveBytes + 2 * SLAB_BYTES_MAX) this.compact();
  }

  private retire(slab: Slab): void {
    this.slabs.delete(slab.bytes.buffer);
    this.sparse.delete(slab);
    this.slabBytes -= slab.bytes.length;
  }

  /**
   * Moves the held values of sparse slabs into the current one until the slabs are within the
   * budget. Over it, some slab no longer written into is sparse (they can't all hold a third).
   */
  private compact(): void {
    if (this.compacting) return;
    this.compacting = true;
    try {
      while (this.slabBytes > SLAB_BUDGET_FACTOR * this.liveBytes + 2 * SLAB_BYTES_MAX) {
        const slab = this.sparse.values().next().value;
        if (slab === undefined) break;
        for (const key of slab.keys) {
          const value = this.owner.valueOf(key);
          if (value == null || this.slabOf(value) !== slab) continue;
          const moved = this.copy(value);
          slab.live -= value.length;
          this.liveBytes -= value.length;
          this.hold(key, moved);
          this.owner.moved(key, moved);
        }
        this.retire(slab);
        this.compactions += 1;
      }
    } finally {
      this.compacting = false;
    }
  }
}
