// The shared test suite every Compression implementation passes (zstd in the Node runtime, the
// simulator's codec): round trips, the output limit, and garbage refused.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Compression } from './runtime.ts';

export function compressionTests(name: string, codec: Compression): void {
  test(`${name}: any bytes round-trip`, () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 4096 }), (bytes) => {
      assert.deepEqual([...codec.decompress(codec.compress(bytes), bytes.length)], [...bytes]);
    }));
  });

  test(`${name}: decompressing past the output limit throws`, () => {
    const bytes = new Uint8Array(10_000).fill(7);
    assert.throws(() => codec.decompress(codec.compress(bytes), 9_999));
  });

  test(`${name}: bytes that are not its output throw`, () => {
    assert.throws(() => codec.decompress(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), 1 << 20));
  });
}
