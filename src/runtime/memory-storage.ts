// An in-memory Storage for the simulator and unit tests. It does no I/O, yet models what a disk
// does across a power cut: every store keeps the DURABLE contents plus the PENDING writes issued
// since; `sync` makes pending writes durable (through a scheduler the simulator controls) and
// `crash()` throws the pending writes away.
//
// The key rules (non-empty, well-formed, at most `storeKeyBytesMax` UTF-8 bytes) and the key
// order (UTF-8 byte order) are the ones the LMDB storage has, so code that passes in the
// simulator behaves the same on disk.

import { assert, StraitError } from '../errors.ts';
import type { Storage, Store } from './runtime.ts';

/** The longest key, in UTF-8 bytes, that every Storage accepts (LMDB's limit with 4 KiB pages). */
export const storeKeyBytesMax = 1978;

/** UTF-8 length of a well-formed string, without allocating. */
export function utf8ByteLength(text: string): number {
  let length = 0;
  for (let index = 0; index < text.length; index++) {
    const unit = text.charCodeAt(index);
    if (unit < 0x80) length += 1;
    else if (unit < 0x800) length += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff) {
      // A high surrogate starts a pair (the caller checked the string is well-formed): 4 bytes.
      length += 4;
      index++;
    } else length += 3;
  }
  return length;
}

/**
 * Rejects keys no Storage can hold. Keys must be non-empty (LMDB has no zero-length keys),
 * well-formed UTF-16 (a lone surrogate has no UTF-8 form and would be silently replaced) and
 * at most `storeKeyBytesMax` UTF-8 bytes. Returns the UTF-8 length.
 */
export function checkStoreKey(key: string): number {
  if (key.length === 0 || !key.isWellFormed()) {
    throw new StraitError('STRAIT_KEY_INVALID', { limit: storeKeyBytesMax });
  }
  const length = utf8ByteLength(key);
  if (length > storeKeyBytesMax) throw new StraitError('STRAIT_KEY_INVALID', { limit: storeKeyBytesMax });
  return length;
}

/**
 * Orders keys by their UTF-8 bytes (= Unicode code point order), which is the order LMDB keeps.
 * Plain `<` on JS strings compares UTF-16 code units and disagrees for keys that differ at a
 * character above U+FFFF versus one in U+E000..U+FFFF; this comparator corrects that case.
 */
export function compareStoreKeys(left: string, right: string): number {
  const length = Math.min(left.length, right.length);
  for (let index = 0; index < length; index++) {
    let leftUnit = left.charCodeAt(index);
    let rightUnit = right.charCodeAt(index);
    if (leftUnit === rightUnit) continue;
    if (leftUnit >= 0xd800 && rightUnit >= 0xd800) {
      // Surrogates (D800..DFFF) encode code points above FFFF, so they sort after E000..FFFF.
      leftUnit = leftUnit >= 0xe000 ? leftUnit - 0x800 : leftUnit + 0x2000;
      rightUnit = rightUnit >= 0xe000 ? rightUnit - 0x800 : rightUnit + 0x2000;
    }
    return leftUnit - rightUnit;
  }
  return left.length - right.length;
}

export interface MemoryStorageOptions {
  /**
   * Runs a `sync` or `close` callback later. The simulator passes its own to delay disk
   * flushes (and may crash before running them). Default: `queueMicrotask`.
   */
  readonly schedule?: (callback: () => void) => void;
}

/** One write not yet durable; `value` undefined is a removal. */
interface PendingWrite {
  readonly key: string;
  readonly value: Uint8Array | undefined;
}

/** The contents of one named store; outlives crashes, like a file on disk. */
class Table {
  durable = new Map<string, Uint8Array>();
  /** `durable` with every pending write applied: what `get` sees. */
  visible = new Map<string, Uint8Array>();
  pending: PendingWrite[] = [];
  /** Count of writes ever made durable; the sequence number of `pending[0]`. */
  durableSequence = 0;

  get writtenSequence(): number {
    return this.durableSequence + this.pending.length;
  }

  /** Makes every write with a sequence number below `sequence` durable. */
  makeDurable(sequence: number): void {
    const count = sequence - this.durableSequence;
    if (count <= 0) return;
    for (let index = 0; index < count; index++) {
      const write = this.pending[index];
      assert(write !== undefined, 'memory storage: made durable a write that was never issued');
      if (write.value === undefined) this.durable.delete(write.key);
      else this.durable.set(write.key, write.value);
    }
    this.pending.splice(0, count);
    this.durableSequence = sequence;
  }

  discardPending(): void {
    this.durableSequence += this.pending.length;
    this.pending = [];
    this.visible = new Map(this.durable);
  }
}

/**
 * Storage held in memory. `put`/`remove` are visible at once; a write becomes durable when the
 * scheduled callback of a later `sync` (or `close`) runs; `crash()` loses what is not durable.
 * Values are copied on `put`; the arrays `get` and `entries` return must not be modified.
 */
export class MemoryStorage implements Storage {
  readonly #schedule: (callback: () => void) => void;
  readonly #tables = new Map<string, Table>();
  /** Open handles by store name; emptied by `crash` and `close`, which invalidate them. */
  #handles = new Map<string, MemoryStore>();
  /** Bumped by `crash`: callbacks scheduled before a crash never run (the process died). */
  #lifetime = { crashed: false };
  /** While set, commits fail with this reason (see `failCommits`). */
  readonly #fault: { reason: string | undefined } = { reason: undefined };

  constructor(options: MemoryStorageOptions = {}) {
    this.#schedule = options.schedule ?? queueMicrotask;
  }

  open(name: string): Store {
    if (name.length === 0) throw new StraitError('STRAIT_STORAGE', { path: 'memory', reason: 'store name is empty' });
    const handle = this.#handles.get(name);
    if (handle !== undefined) return handle;
    let table = this.#tables.get(name);
    if (table === undefined) {
      table = new Table();
      this.#tables.set(name, table);
    }
    const opened = new MemoryStore(name, table, this.#schedule, this.#lifetime, this.#fault);
    this.#handles.set(name, opened);
    return opened;
  }

  /** Makes every write durable, invalidates the open stores and calls back via the scheduler. */
  close(callback: (error: Error | undefined) => void): void {
    for (const handle of this.#handles.values()) handle.invalidate();
    this.#handles = new Map();
    for (const table of this.#tables.values()) table.makeDurable(table.writtenSequence);
    const lifetime = this.#lifetime;
    this.#schedule(() => {
      if (!lifetime.crashed) callback(undefined);
    });
  }

  /**
   * Simulates a disk that refuses commits (full, I/O error), as LMDB reports one: from now on
   * every `sync` calls back with an Error naming `reason`, and the writes it would have made
   * durable are lost (reads go back to what is on disk). `undefined` ends the fault.
   */
  failCommits(reason: string | undefined): void {
    this.#fault.reason = reason;
  }

  /**
   * Simulates a power cut: every write not yet durable is lost, sync and close callbacks still
   * scheduled never run, and open stores become unusable (using one is an assertion failure).
   * `open` afterwards returns the durable contents, like a restarted process.
   */
  crash(): void {
    this.#lifetime.crashed = true;
    this.#lifetime = { crashed: false };
    for (const handle of this.#handles.values()) handle.invalidate();
    this.#handles = new Map();
    for (const table of this.#tables.values()) table.discardPending();
  }
}

class MemoryStore implements Store {
  readonly #name: string;
  readonly #table: Table;
  readonly #schedule: (callback: () => void) => void;
  readonly #lifetime: { crashed: boolean };
  readonly #fault: { reason: string | undefined };
  #valid = true;
  readonly #waitingSyncs: WaitingSync[] = [];

  constructor(name: string, table: Table, schedule: (callback: () => void) => void, lifetime: { crashed: boolean }, fault: { reason: string | undefined }) {
    this.#name = name;
    this.#table = table;
    this.#schedule = schedule;
    this.#lifetime = lifetime;
    this.#fault = fault;
  }

  invalidate(): void {
    this.#valid = false;
  }

  #checkValid(): void {
    assert(this.#valid, `memory store ${this.#name} used after its storage crashed or closed`);
  }

  get(key: string): Uint8Array | undefined {
    this.#checkValid();
    return this.#table.visible.get(key);
  }

  put(key: string, value: Uint8Array): void {
    this.#checkValid();
    checkStoreKey(key);
    // Copy, so a caller reusing its buffer cannot change what was stored (LMDB copies too).
    const copy = new Uint8Array(value);
    this.#table.visible.set(key, copy);
    this.#table.pending.push({ key, value: copy });
  }

  remove(key: string): void {
    this.#checkValid();
    checkStoreKey(key);
    this.#table.visible.delete(key);
    this.#table.pending.push({ key, value: undefined });
  }

  /** A snapshot in UTF-8 byte order of the keys; writes during iteration do not affect it. */
  entries(): Iterable<readonly [string, Uint8Array]> {
    this.#checkValid();
    const result = [...this.#table.visible.entries()];
    result.sort((left, right) => compareStoreKeys(left[0], right[0]));
    return result;
  }

  /**
   * Calls back once the scheduled flush has run. Callbacks come in the order of the `sync`
   * calls even when the scheduler runs flushes out of order: a later flush also makes the
   * writes of earlier syncs durable, so it completes them first.
   */
  sync(callback: (error: Error | undefined) => void): void {
    this.#checkValid();
    const table = this.#table;
    const waiting: WaitingSync = { sequence: table.writtenSequence, callback };
    this.#waitingSyncs.push(waiting);
    const lifetime = this.#lifetime;
    // Durability happens when the scheduled flush runs, not now: a crash in between loses it.
    this.#schedule(() => {
      if (lifetime.crashed) return;
      const index = this.#waitingSyncs.indexOf(waiting);
      if (index < 0) return;
      const reason = this.#fault.reason;
      if (reason !== undefined) {
        table.discardPending();
        const error = new Error(`memory store ${this.#name}: commit failed: ${reason}`);
        for (const failed of this.#waitingSyncs.splice(0, index + 1)) failed.callback(error);
        return;
      }
      table.makeDurable(waiting.sequence);
      for (const completed of this.#waitingSyncs.splice(0, index + 1)) completed.callback(undefined);
    });
  }
}

interface WaitingSync {
  /** Every write with a lower sequence number was issued before the `sync` call. */
  readonly sequence: number;
  readonly callback: (error: Error | undefined) => void;
}
