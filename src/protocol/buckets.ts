// A key's bucket in a partitioned region: FNV-1a of the key's UTF-16 code units modulo the
// region's bucket count. Part of the protocol because clients compute it too (single-hop: each
// operation goes straight to its bucket's primary), and every side must agree.

/** The bucket of `key` in a region of `total` buckets. */
export function bucketOf(key: string, total: number): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < key.length; index++) {
    hash ^= key.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % total;
}
