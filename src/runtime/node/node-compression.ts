// Compression of gateway batches for real processes: zstd, as Node ships it.

import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import type { Compression } from '../runtime.ts';

/** zstd, as Node ships it. */
export const ZSTD: Compression = {
  compress: (bytes) => zstdCompressSync(bytes),
  decompress: (bytes, outputBytesMax) => {
    // zlib refuses a maximum below 1; an empty output is within any limit.
    const output = zstdDecompressSync(bytes, { maxOutputLength: Math.max(1, outputBytesMax) });
    if (output.length > outputBytesMax) throw new RangeError(`zstd output exceeds ${outputBytesMax} bytes`);
    return output;
  },
};

