// The dead letters of one gateway sender on one server: events the remote site refused (for
// example, for a region it does not have), kept on disk with the refusal's code until an
// operator replays them.
//
// Guarantees: a dead letter is written to the store when it is added and read back (validated)
// at start; `takeAll` empties the store and hands the letters back in the order they came.

import type { GatewayEvent } from '../protocol/messages.ts';
import type { Logger, Store } from '../runtime/runtime.ts';
import { eventId, eventPackr, queueStoreKey } from './sender-queue.ts';

/** Events kept in the dead-letter list, at most (the oldest are dropped beyond it, logged). */
export const DEAD_LETTERS_MAX = 100_000;

export interface DeadLetter {
  readonly event: GatewayEvent;
  readonly code: string;
  readonly message: string;
}

export class DeadLetterStore {
  private readonly store: Store;
  private readonly log: Logger;
  private readonly name: string;
  /** Key of the last dead letter written (its own sequence, recovered at start). */
  private sequence = 0;
  private letters: DeadLetter[] = [];

  constructor(store: Store, name: string, log: Logger) {
    this.store = store;
    this.name = name;
    this.log = log;
  }

  recover(): void {
    for (const [key, bytes] of this.store.entries()) {
      this.sequence = Math.max(this.sequence, Number.parseInt(key, 16));
      this.letters.push(eventPackr.unpack(bytes) as DeadLetter);
    }
  }

  get count(): number {
    return this.letters.length;
  }

  add(letter: DeadLetter): void {
    if (this.letters.length >= DEAD_LETTERS_MAX) {
      this.log.error({ dropped: eventId(letter.event) }, `${this.name}: dead-letter list full (${DEAD_LETTERS_MAX}); dropping the oldest`);
      this.letters.shift();
    }
    this.letters.push(letter);
    this.store.put(queueStoreKey(++this.sequence), eventPackr.pack(letter));
  }

  /** Removes every dead letter (from disk too) and returns them, oldest first. */
  takeAll(): DeadLetter[] {
    const letters = this.letters;
    this.letters = [];
    for (const [key] of [...this.store.entries()]) this.store.remove(key);
    return letters;
  }
}
