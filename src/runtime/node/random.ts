// The Node runtime's random source: xoshiro128** (Blackman and Vigna), seeded from the
// operating system's entropy. Fast enough for jitter on every retry and timeout; not for
// secrets (tokens come from node:crypto directly).

import { randomBytes } from 'node:crypto';
import { assert } from '../../errors.ts';
import type { Random } from '../runtime.ts';

const twoToThe32 = 0x1_0000_0000;

function rotateLeft(value: number, shift: number): number {
  return (value << shift) | (value >>> (32 - shift));
}

/** xoshiro128** over a 128-bit state; the same seed always gives the same sequence. */
export class Xoshiro128StarStar implements Random {
  #state0: number;
  #state1: number;
  #state2: number;
  #state3: number;

  /** `seed` is four 32-bit words, not all zero (the all-zero state only ever yields zero). */
  constructor(seed: readonly [number, number, number, number]) {
    assert(seed.some((word) => word >>> 0 !== 0), 'xoshiro128** seed must not be all zero');
    [this.#state0, this.#state1, this.#state2, this.#state3] = seed.map((word) => word >>> 0) as [number, number, number, number];
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotateLeft(Math.imul(this.#state1, 5), 7), 9) >>> 0;
    const shifted = this.#state1 << 9;
    this.#state2 ^= this.#state0;
    this.#state3 ^= this.#state1;
    this.#state1 ^= this.#state2;
    this.#state0 ^= this.#state3;
    this.#state2 ^= shifted;
    this.#state3 = rotateLeft(this.#state3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits, like Math.random. */
  next(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67_108_864 + low) / 9_007_199_254_740_992;
  }

  /** Uniform integer in [0, bound); `bound` is a positive safe integer. Unbiased below 2^32. */
  int(bound: number): number {
    assert(Number.isSafeInteger(bound) && bound > 0, `random int bound must be a positive safe integer, got ${bound}`);
    if (bound > twoToThe32) return Math.floor(this.next() * bound);
    // Rejection sampling: drop the top sliver of 2^32 that would favour small results.
    const limit = twoToThe32 - (twoToThe32 % bound);
    let value = this.nextUint32();
    while (value >= limit) value = this.nextUint32();
    return value % bound;
  }
}

/** A generator seeded from the operating system's entropy. */
export function createSeededRandom(): Xoshiro128StarStar {
  for (;;) {
    const seed = randomBytes(16);
    const words: [number, number, number, number] = [seed.readUInt32LE(0), seed.readUInt32LE(4), seed.readUInt32LE(8), seed.readUInt32LE(12)];
    if (words.some((word) => word !== 0)) return new Xoshiro128StarStar(words);
  }
}
