// Exponential backoff with full jitter, drawn from the injected random source so the
// simulator replays it exactly.

import type { Random } from '../runtime/runtime.ts';

export interface BackoffOptions {
  readonly initialDelayMs: number;
  readonly maximumDelayMs: number;
}

export class Backoff {
  private readonly random: Random;
  private readonly options: BackoffOptions;
  private attempt = 0;

  constructor(random: Random, options: BackoffOptions) {
    this.random = random;
    this.options = options;
  }

  /** The delay before the next attempt; grows until `reset`. */
  nextDelayMs(): number {
    const ceiling = Math.min(this.options.maximumDelayMs, this.options.initialDelayMs * 2 ** Math.min(this.attempt, 20));
    this.attempt += 1;
    // Half fixed, half random: never zero, and members retrying together spread out.
    return Math.round(ceiling / 2 + this.random.next() * (ceiling / 2));
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
