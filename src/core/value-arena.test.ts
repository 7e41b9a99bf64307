import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { VersionTag } from '../protocol/messages.ts';
import { Region } from './region.ts';
import { ARENA_VALUE_BYTES_MAX, SLAB_BUDGET_FACTOR, SLAB_BYTES_MAX } from './value-arena.ts';

const spec = { name: 'R', type: 'replicate' as const, persistent: false };

/** A value of `length` bytes that tells its key and write apart. */
function valueOf(key: number, write: number, length: number): Uint8Array {
  const value = new Uint8Array(length);
  for (let index = 0; index < length; index++) value[index] = (key * 31 + write * 7 + index) & 0xff;
  return value;
}

test('values kept in the arena read back as written through overwrites, deletes and compactions; the slabs stay within the budget', () => {
  const operation = fc.record({ key: fc.nat(200), length: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constant(ARENA_VALUE_BYTES_MAX + 1), fc.constant(0)), remove: fc.boolean() });
  fc.assert(fc.property(fc.array(operation, { minLength: 500, maxLength: 3000 }), (operations) => {
    const region = new Region(spec, undefined);
    const model = new Map<string, Uint8Array | null>();
    const handedOut: [Uint8Array, Uint8Array][] = [];
    let write = 0;
    for (const { key, length, remove } of operations) {
      write += 1;
      const tag: VersionTag = [1, write, 'server-1#a', write];
      const value = remove ? null : valueOf(key, write, length);
      // As a gateway receiver does: the region's copy of a view of the batch.
      assert.equal(region.apply(`k${key}`, region.keepValue(value), tag), 'applied');
      model.set(`k${key}`, value);
      const held = region.get(`k${key}`);
      if (held != null && write % 50 === 0) handedOut.push([held, Uint8Array.from(held)]);
      const { slabs, held: heldBytes } = region.arenaBytes;
      assert.ok(slabs <= SLAB_BUDGET_FACTOR * heldBytes + 2 * SLAB_BYTES_MAX, `${slabs} bytes of slabs for ${heldBytes} held`);
    }
    for (const [key, value] of model) assert.deepEqual(region.get(key) ?? null, value, key);
    // A value handed out (a reply, a queued event) keeps its bytes whatever moved since.
    for (const [view, bytes] of handedOut) assert.deepEqual(view, bytes);
  }), { numRuns: 60 });
});

test('keys overwritten in the order written empty their slabs with no compaction; survivors scattered by deletes are compacted; dropping everything lets every slab go', () => {
  const region = new Region({ name: 'P', type: 'partition' as const, persistent: false, partition: { totalNumBuckets: 1, redundantCopies: 0 } } as never, undefined);
  let write = 0;
  const put = (key: number, value: Uint8Array | null) => {
    write += 1;
    region.apply(`k${key}`, region.keepValue(value), [1, write, 'server-1#a', write]);
  };
  for (let round = 0; round < 20; round++) for (let key = 0; key < 10_000; key++) put(key, valueOf(key, write + 1, 100));
  assert.equal(region.arenaBytes.held, 1_000_000);
  assert.equal(region.arenaBytes.compactions, 0, 'whole slabs emptied by overwrites are let go, none compacted');
  assert.ok(region.arenaBytes.slabs <= 2 * 1_000_000 + 2 * SLAB_BYTES_MAX, `${region.arenaBytes.slabs} bytes of slabs`);
  // Nine keys in ten deleted: the rest are scattered across every slab.
  for (let key = 0; key < 10_000; key++) if (key % 10 !== 0) put(key, null);
  const { slabs, held, compactions } = region.arenaBytes;
  assert.equal(held, 100_000);
  assert.ok(compactions > 0, 'sparse slabs were compacted');
  assert.ok(slabs <= SLAB_BUDGET_FACTOR * held + 2 * SLAB_BYTES_MAX, `${slabs} bytes of slabs for ${held} held`);
  for (let key = 0; key < 10_000; key += 10) assert.deepEqual(region.get(`k${key}`), valueOf(key, 19 * 10_000 + key + 1, 100));
  region.dropBucket(0);
  assert.equal(region.arenaBytes.held, 0);
  assert.ok(region.arenaBytes.slabs <= SLAB_BYTES_MAX, 'only the current slab is left');
});
