// The simulator's source of randomness: a small, fast, seeded PRNG. Every random choice in a
// simulation (network delay, re-chunking, resets, disk latency, each process's `Random`) is drawn
// from a SeededRandom derived from the simulation's one seed, so a seed replays the same run.
//
// Generator: sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, 128-bit state with a
// counter, so no short cycles), seeded through splitmix32. Quality is ample for simulation and
// property tests; it is NOT cryptographic.

import { assert } from '../errors.ts';
import type { Random } from '../runtime/runtime.ts';

const TWO_POW_32 = 0x1_0000_0000;
const TWO_POW_53 = 2 ** 53;
/** sfc32 outputs discarded after seeding so that similar seeds diverge at once. */
const warmupRoundsCount = 12;

/** splitmix32's output function: a bijective avalanche of a 32-bit word. */
function mix32(word: number): number {
  let z = word | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** Hashes `text` into a 32-bit word, starting from `basis` (murmur-style per code unit). */
function hashText(text: string, basis: number): number {
  let hash = basis | 0;
  for (let index = 0; index < text.length; index++) {
    hash = Math.imul(hash ^ text.charCodeAt(index), 0x5bd1e995);
    hash ^= hash >>> 15;
  }
  return mix32(hash ^ text.length);
}

/** Splits a non-negative safe integer or bigint seed into two 32-bit words. */
function seedWords(seed: number | bigint): [number, number] {
  if (typeof seed === 'bigint') {
    const folded = BigInt.asUintN(64, seed);
    return [Number(folded & 0xffff_ffffn), Number(folded >> 32n)];
  }
  assert(Number.isSafeInteger(seed), `seed must be a safe integer, got ${seed}`);
  const magnitude = Math.abs(seed);
  const low = magnitude % TWO_POW_32;
  // A negative seed gets its own stream rather than aliasing its absolute value.
  const high = (Math.floor(magnitude / TWO_POW_32) ^ (seed < 0 ? 0x8000_0000 : 0)) >>> 0;
  return [low >>> 0, high];
}

/**
 * A deterministic `Random`. Guarantees: the same seed yields the same sequence on every
 * platform and Node version (only 32-bit integer arithmetic is used); `fork(label)` yields a
 * stream that depends only on this generator's seed and the label — not on how many values were
 * drawn before, nor on other forks — so adding a host or a draw in one component does not shift
 * the numbers another component sees.
 */
export class SeededRandom implements Random {
  /** The seed words this generator was created from; forks derive from them. */
  private readonly seedLow: number;
  private readonly seedHigh: number;
  private a: number;
  private b: number;
  private c: number;
  private counter: number;

  constructor(seed: number | bigint) {
    const [low, high] = seedWords(seed);
    this.seedLow = low;
    this.seedHigh = high;
    // splitmix32: walk a Weyl sequence from the seed and avalanche each step.
    let state = (low ^ mix32(high ^ 0x6a09e667)) | 0;
    const nextWord = (): number => {
      state = (state + 0x9e3779b9) | 0;
      return mix32(state);
    };
    this.a = nextWord();
    this.b = nextWord();
    this.c = nextWord();
    this.counter = nextWord();
    for (let round = 0; round < warmupRoundsCount; round++) this.uint32();
  }

  /** Uniform 32-bit unsigned integer. */
  uint32(): number {
    // sfc32
    const sum = (((this.a + this.b) | 0) + this.counter) | 0;
    this.counter = (this.counter + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + sum) | 0;
    return sum >>> 0;
  }

  /** Uniform in [0, 1), with 32 bits of precision. */
  next(): number {
    return this.uint32() / TWO_POW_32;
  }

  /** Uniform integer in [0, bound); `bound` a positive safe integer. Unbiased (rejection). */
  int(bound: number): number {
    assert(Number.isSafeInteger(bound) && bound > 0, `int bound must be a positive safe integer, got ${bound}`);
    if (bound <= TWO_POW_32) {
      const limit = TWO_POW_32 - (TWO_POW_32 % bound);
      let value = this.uint32();
      while (value >= limit) value = this.uint32();
      return value % bound;
    }
    const limit = TWO_POW_53 - (TWO_POW_53 % bound);
    let value = this.uint53();
    while (value >= limit) value = this.uint53();
    return value % bound;
  }

  /** True with probability `probability` (≤ 0 never, ≥ 1 always; neither draws). */
  chance(probability: number): boolean {
    if (probability <= 0) return false;
    if (probability >= 1) return true;
    return this.next() < probability;
  }

  /** Uniform integer in [min, max], both inclusive. */
  range(min: number, max: number): number {
    assert(Number.isSafeInteger(min) && Number.isSafeInteger(max) && min <= max, `range needs integers min <= max, got ${min}..${max}`);
    return min + this.int(max - min + 1);
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, 'pick from an empty array');
    return items[this.int(items.length)] as T;
  }

  /** Shuffles `items` in place (Fisher–Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let index = items.length - 1; index > 0; index--) {
      const other = this.int(index + 1);
      const held = items[index] as T;
      items[index] = items[other] as T;
      items[other] = held;
    }
    return items;
  }

  /**
   * An independent stream named `label`. Deterministic in (this generator's seed, label) only:
   * forking twice with the same label gives two identical streams, so give each consumer its
   * own label (e.g. `process:server1#2`).
   */
  fork(label: string): SeededRandom {
    const low = hashText(label, this.seedLow ^ 0x3c6ef372);
    const high = hashText(label, this.seedHigh ^ mix32(this.seedLow) ^ 0xa54ff53a);
    return new SeededRandom(BigInt(low) | (BigInt(high) << 32n));
  }

  private uint53(): number {
    return (this.uint32() >>> 5) * 67108864 + (this.uint32() >>> 6);
  }
}
