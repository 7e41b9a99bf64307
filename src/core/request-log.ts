// The client write requests a server applied recently, by request id, so that a retry is not
// applied a second time: a client that timed out, or failed over to another server, sends the
// same write again under the same id. Every server of the site learns the ids with the
// replicated entries, so a retry that lands on another server is recognised there too.
//
// Bounded: at most REQUEST_IDS_REMEMBERED_MAX ids (the oldest forgotten first; ~168 bytes an id
// as decoded from the wire, measured: about 16 MiB) and none older than REQUEST_IDS_REMEMBERED_MS,
// far longer than a client keeps retrying. At 10,000 writes/s a server remembers the last 10 s;
// at its peak rate here (~60,000/s) under 2 s: a retry later than that is applied again, as before
// ids existed — a duplicate with the same value, never a loss.

import type { EntryRefusal } from '../protocol/messages.ts';

/** Request ids remembered, at most. */
export const REQUEST_IDS_REMEMBERED_MAX = 100_000;
/** How long a request id is remembered. */
export const REQUEST_IDS_REMEMBERED_MS = 5 * 60 * 1000;


export class RequestLog {
  /**
   * id → (whole seconds of `nowMs`) × 2 + existed: a small integer V8 keeps unboxed, so an
   * entry costs the id string and the map slot, not another object.
   */
  private readonly entries = new Map<string, number>();
  /** Ids in the order they were remembered, a ring naming the one to forget next. */
  private readonly ring: (string | undefined)[] = [];
  private next = 0;
  /**
   * The entries a remembered `putBatch` refused (rare: a resolver that threw, a value too large),
   * so a retry is answered as the first attempt was; dropped with their id.
   */
  private readonly refusals = new Map<string, readonly EntryRefusal[]>();
  private readonly capacity: number;
  private readonly maximumAgeMs: number;

  constructor(capacity = REQUEST_IDS_REMEMBERED_MAX, maximumAgeMs = REQUEST_IDS_REMEMBERED_MS) {
    this.capacity = capacity;
    this.maximumAgeMs = maximumAgeMs;
  }

  /** `refused`: the entries of a batch not applied, answered again to a retry. */
  remember(id: string, existed: boolean, nowMs: number, refused?: readonly EntryRefusal[]): void {
    if (this.entries.has(id)) return;
    const evicted = this.ring[this.next];
    if (evicted !== undefined) {
      this.entries.delete(evicted);
      if (this.refusals.size > 0) this.refusals.delete(evicted);
    }
    this.ring[this.next] = id;
    this.next = (this.next + 1) % this.capacity;
    this.entries.set(id, Math.floor(nowMs / 1000) * 2 + (existed ? 1 : 0));
    if (refused !== undefined && refused.length > 0) this.refusals.set(id, refused);
  }

  /** What a remembered batch refused (none for most). */
  refusedOf(id: string): readonly EntryRefusal[] {
    return this.refusals.get(id) ?? [];
  }

  /** The remembered write, unless it is unknown or older than the maximum age. */
  lookup(id: string, nowMs: number): { existed: boolean } | undefined {
    const found = this.entries.get(id);
    if (found === undefined || nowMs - Math.floor(found / 2) * 1000 > this.maximumAgeMs) return undefined;
    return { existed: found % 2 === 1 };
  }

  get size(): number {
    return this.entries.size;
  }
}
