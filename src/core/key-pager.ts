// Paging through a region's keys in sorted order, for replies that must stay bounded: the
// initial image (entries, tombstones included) and `keys` (live keys). A requester's first
// page takes a sorted snapshot of the keys; later pages continue after the last key it got, so
// keys written or removed meanwhile neither shift nor repeat a page. Snapshots are per
// connection and purpose, and dropped when the last page is served or the connection closes.

/** Keys per page, at most. */
export const KEY_PAGE_KEYS_MAX = 10_000;
/** Characters of keys per page, about, at most (at least one key): well below any frame limit. */
export const KEY_PAGE_CHARACTERS_MAX = 1024 * 1024;

export class KeyPager {
  /** Sorted key snapshots by `connection:purpose:region`. */
  private readonly snapshots = new Map<string, string[]>();

  /**
   * The next page after `after` (null: a new snapshot from `keys()`), at most `limit` keys and
   * about KEY_PAGE_CHARACTERS_MAX characters. `done` when it reached the end.
   */
  page(connection: number, purpose: string, region: string, keys: () => string[], after: string | null, limit: number): { keys: string[]; done: boolean } {
    const cursor = `${connection}:${purpose}:${region}`;
    let snapshot = this.snapshots.get(cursor);
    if (after === null || snapshot === undefined) {
      snapshot = keys().sort();
      this.snapshots.set(cursor, snapshot);
    }
    const page: string[] = [];
    let characters = 0;
    let index = after === null ? 0 : firstAfter(snapshot, after);
    const most = Math.max(1, Math.min(limit, KEY_PAGE_KEYS_MAX));
    for (; index < snapshot.length && page.length < most; index++) {
      const key = snapshot[index]!;
      if (page.length > 0 && characters + key.length > KEY_PAGE_CHARACTERS_MAX) break;
      page.push(key);
      characters += key.length;
    }
    const done = index >= snapshot.length;
    if (done) this.snapshots.delete(cursor);
    return { keys: page, done };
  }

  /** True while the connection has a snapshot for `purpose` and `region` (pages remain). */
  has(connection: number, purpose: string, region: string): boolean {
    return this.snapshots.has(`${connection}:${purpose}:${region}`);
  }

  /** The connection closed: forget its snapshots. */
  connectionClosed(connection: number): void {
    const prefix = `${connection}:`;
    for (const cursor of [...this.snapshots.keys()]) if (cursor.startsWith(prefix)) this.snapshots.delete(cursor);
  }
}

/** Index of the first key greater than `after` in sorted `keys` (binary search). */
function firstAfter(keys: readonly string[], after: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (keys[middle]! <= after) low = middle + 1;
    else high = middle;
  }
  return low;
}
