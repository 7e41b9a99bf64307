// The client write requests a server applied recently, by request id, so that a retry is not
// applied a second time: a client that timed out, or failed over to another server, sends the
// same write again under the same id. Every server of the site learns the ids with the
// replicated entries, so a retry that lands on another server is recognised there too.
//
// Bounded: at most REQUEST_IDS_REMEMBERED_MAX ids (the oldest forgotten first) and none older
// than REQUEST_IDS_REMEMBERED_MS — far longer than any client keeps retrying.

/** Request ids remembered, at most. */
export const REQUEST_IDS_REMEMBERED_MAX = 200_000;
/** How long a request id is remembered. */
export const REQUEST_IDS_REMEMBERED_MS = 5 * 60 * 1000;

interface Remembered {
  /** For a remove: whether the key held a value when the write was first applied. */
  readonly existed: boolean;
  readonly atMs: number;
}

export class RequestLog {
  private readonly entries = new Map<string, Remembered>();
  /** Ids in the order they were remembered, a ring naming the one to forget next. */
  private readonly ring: (string | undefined)[] = [];
  private next = 0;
  private readonly capacity: number;
  private readonly maximumAgeMs: number;

  constructor(capacity = REQUEST_IDS_REMEMBERED_MAX, maximumAgeMs = REQUEST_IDS_REMEMBERED_MS) {
    this.capacity = capacity;
    this.maximumAgeMs = maximumAgeMs;
  }

  remember(id: string, existed: boolean, nowMs: number): void {
    if (this.entries.has(id)) return;
    const evicted = this.ring[this.next];
    if (evicted !== undefined) this.entries.delete(evicted);
    this.ring[this.next] = id;
    this.next = (this.next + 1) % this.capacity;
    this.entries.set(id, { existed, atMs: nowMs });
  }

  /** The remembered write, unless it is unknown or older than the maximum age. */
  lookup(id: string, nowMs: number): { existed: boolean } | undefined {
    const found = this.entries.get(id);
    if (found === undefined || nowMs - found.atMs > this.maximumAgeMs) return undefined;
    return found;
  }

  get size(): number {
    return this.entries.size;
  }
}
