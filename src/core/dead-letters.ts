// The dead letters of one gateway sender on one server: events the remote site refused (for
// example, for a region it does not have, or too large for its frame limit), kept on disk with
// the refusal's code until an operator replays them. Every copy of the sender keeps them: the
// primary tells the secondaries which events became dead letters, with the events, so losing
// the primary's disk does not lose them.
//
// Guarantees: a dead letter is written to the store when it is added and read back (validated)
// at start; the store holds at most `bytesMax` bytes of events — `add` refuses beyond it and
// the caller keeps the event (it never drops one); `takeAll` empties the store and hands the
// letters back in the order they came.

import type { GatewayEvent } from '../protocol/messages.ts';
import type { Store } from '../runtime/runtime.ts';
import { decodeEvent, eventBytes, eventId, eventPackr, queueStoreKey } from './sender-queue.ts';

/** Bytes of events a sender's dead-letter store holds, at most. */
export const DEAD_LETTER_BYTES_MAX = 64 * 1024 * 1024;

export interface DeadLetter {
  readonly event: GatewayEvent;
  readonly code: string;
  readonly message: string;
}

export class DeadLetterStore {
  private readonly store: Store;
  private readonly name: string;
  private readonly bytesMax: number;
  /** Key of the last dead letter written (its own sequence, recovered at start). */
  private sequence = 0;
  private letters: DeadLetter[] = [];
  /** The letters by event id, for a secondary asking what became of an event. */
  private readonly byId = new Map<string, DeadLetter>();
  private bytesHeld = 0;

  constructor(store: Store, name: string, bytesMax = DEAD_LETTER_BYTES_MAX) {
    this.store = store;
    this.name = name;
    this.bytesMax = bytesMax;
  }

  recover(): void {
    for (const [key, bytes] of this.store.entries()) {
      this.sequence = Math.max(this.sequence, Number.parseInt(key, 16));
      const record = eventPackr.unpack(bytes) as Partial<DeadLetter>;
      const event = decodeEvent(eventPackr.pack(record.event), `${this.name} dead letter ${key}`);
      const letter: DeadLetter = { event, code: String(record.code), message: String(record.message) };
      this.letters.push(letter);
      this.byId.set(eventId(event), letter);
      this.bytesHeld += eventBytes(event);
    }
  }

  /** The dead letter of event `id`, if it is one. */
  find(id: string): DeadLetter | undefined {
    return this.byId.get(id);
  }

  get count(): number {
    return this.letters.length;
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  /** True when `event` fits; false when the store is full (nothing is dropped to make room). */
  hasRoom(event: GatewayEvent): boolean {
    return this.bytesHeld + eventBytes(event) <= this.bytesMax || this.letters.length === 0;
  }

  /** Keeps `letter`; false (nothing written) when the store is full. */
  add(letter: DeadLetter): boolean {
    if (!this.hasRoom(letter.event)) return false;
    this.letters.push(letter);
    this.byId.set(eventId(letter.event), letter);
    this.bytesHeld += eventBytes(letter.event);
    this.store.put(queueStoreKey(++this.sequence), eventPackr.pack(letter));
    return true;
  }

  /** Removes every dead letter (from disk too) and returns them, oldest first. */
  takeAll(): DeadLetter[] {
    const letters = this.letters;
    this.letters = [];
    this.byId.clear();
    this.bytesHeld = 0;
    for (const [key] of [...this.store.entries()]) this.store.remove(key);
    return letters;
  }
}
