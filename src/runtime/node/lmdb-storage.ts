// Storage on disk with LMDB: one environment per member directory, one named sub-database per
// store. Keys are stored as their UTF-8 bytes, so LMDB's byte order is the key order; values
// are raw bytes.
//
// Why async writes plus an overlay: `putSync` commits (and fsyncs) one transaction per write,
// about 2,600 writes/s on the development machine, while lmdb-js's async `put` batches every
// write of an event-loop turn into one transaction: 100,000 puts of 100 bytes plus one sync take
// 0.4-0.6 s through this class (about 200,000 puts/s), overlay included. An async write is not
// visible to reads until its transaction commits, yet the Store contract says a write is
// visible at once, so each store keeps an overlay of writes whose commit has not landed; `get`
// and `entries` consult it first, and it is trimmed as commits land.

import { open, type Database, type RootDatabase } from 'lmdb';
import { assert, StraitError } from '../../errors.ts';
import type { Storage, Store } from '../runtime.ts';
import { checkStoreKey, compareStoreKeys } from '../memory-storage.ts';

export interface LmdbStorageOptions {
  /** The most named stores one environment can hold (LMDB fixes this when it opens). */
  readonly storesMax?: number;
}

const storesMaxDefault = 256;

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Storage in one LMDB environment at `directory` (created if missing). `put`/`remove` are
 * visible at once and durable after the next `sync` callback. After a write fails to commit the
 * store is broken: every later `sync` reports the failure (STRAIT_STORAGE) and the member
 * should stop.
 */
export class LmdbStorage implements Storage {
  readonly #directory: string;
  readonly #environment: RootDatabase<Uint8Array, Uint8Array>;
  readonly #stores = new Map<string, LmdbStore>();
  #closed = false;

  constructor(directory: string, options: LmdbStorageOptions = {}) {
    this.#directory = directory;
    try {
      this.#environment = open<Uint8Array, Uint8Array>({
        path: directory,
        compression: false,
        maxDbs: options.storesMax ?? storesMaxDefault,
        encoding: 'binary',
        keyEncoding: 'binary',
      });
    } catch (error) {
      throw new StraitError('STRAIT_STORAGE', { path: directory, reason: reasonOf(error) }, { cause: error });
    }
  }

  open(name: string): Store {
    assert(!this.#closed, `lmdb storage ${this.#directory}: open(${name}) after close`);
    const existing = this.#stores.get(name);
    if (existing !== undefined) return existing;
    const path = `${this.#directory}#${name}`;
    if (name.length === 0) throw new StraitError('STRAIT_STORAGE', { path, reason: 'store name is empty' });
    let database: Database<Uint8Array, Uint8Array>;
    try {
      database = this.#environment.openDB<Uint8Array, Uint8Array>({
        name,
        compression: false,
        encoding: 'binary',
        keyEncoding: 'binary',
      });
    } catch (error) {
      throw new StraitError('STRAIT_STORAGE', { path, reason: reasonOf(error) }, { cause: error });
    }
    const store = new LmdbStore(path, database);
    this.#stores.set(name, store);
    return store;
  }

  /**
   * Waits until every earlier write is on disk, then closes the environment. Calls back with
   * STRAIT_STORAGE when a write failed to commit (then not everything written is on disk).
   */
  close(callback: (error: Error | undefined) => void): void {
    assert(!this.#closed, `lmdb storage ${this.#directory}: closed twice`);
    this.#closed = true;
    const stores = [...this.#stores.values()];
    this.#stores.clear();
    let closing = false;
    const closeEnvironment = (flushError: unknown): void => {
      if (closing) return;
      closing = true;
      for (const store of stores) store.invalidate();
      const storeFailure = stores.find((store) => store.failure !== undefined)?.failure;
      const failure =
        flushError === undefined
          ? storeFailure
          : new StraitError('STRAIT_STORAGE', { path: this.#directory, reason: reasonOf(flushError) }, { cause: flushError });
      this.#environment.close().then(
        () => callback(failure),
        (error: unknown) =>
          callback(failure ?? new StraitError('STRAIT_STORAGE', { path: this.#directory, reason: reasonOf(error) }, { cause: error })),
      );
    };
    // A failed commit never settles `flushed`, so a store failure (now or while waiting) ends
    // the wait too.
    for (const store of stores) store.onFailure(() => closeEnvironment(undefined));
    if (stores.some((store) => store.failure !== undefined)) {
      closeEnvironment(undefined);
      return;
    }
    this.#environment.flushed.then(
      () => closeEnvironment(undefined),
      (error: unknown) => closeEnvironment(error),
    );
  }
}

/** A write whose transaction has not committed yet; `value` undefined is a removal. */
interface PendingWrite {
  readonly value: Uint8Array | undefined;
  readonly sequence: number;
}

/** Writes that lmdb-js put into the same transaction share one promise; one reaction each. */
interface CommitGroup {
  readonly promise: PromiseLike<boolean>;
  readonly keys: string[];
  readonly sequences: number[];
}

/** Sync callbacks waiting on one `flushed` reaction. */
interface SyncGroup {
  readonly callbacks: ((error: Error | undefined) => void)[];
}

/**
 * Values up to this size are copied into a shared slab rather than an ArrayBuffer of their own:
 * a queue's write per event then costs a view, not an allocation and lmdb-js's native address
 * lookup of a new buffer (it caches the address on the ArrayBuffer).
 */
const SLAB_VALUE_BYTES_MAX = 4096;
const SLAB_BYTES = 256 * 1024;

class LmdbStore implements Store {
  readonly #path: string;
  readonly #database: Database<Uint8Array, Uint8Array>;
  readonly #overlay = new Map<string, PendingWrite>();
  #sequence = 0;
  #group: CommitGroup | undefined;
  /** Sync callbacks not yet called, in call order, a group per microtask checkpoint. */
  readonly #syncGroups: SyncGroup[] = [];
  /** The group later syncs of this synchronous run join; its `flushed` reaction is not made yet. */
  #openSyncGroup: SyncGroup | undefined;
  #failure: StraitError | undefined;
  #failureListener: (() => void) | undefined;
  #valid = true;
  /**
   * Where the copies of small values go until it is full; each slab is never written again.
   * The overlay's views keep a slab alive until lmdb-js committed every write in it.
   */
  #slab: Uint8Array | undefined;
  #slabUsed = 0;

  constructor(path: string, database: Database<Uint8Array, Uint8Array>) {
    this.#path = path;
    this.#database = database;
  }

  get failure(): StraitError | undefined {
    return this.#failure;
  }

  invalidate(): void {
    this.#valid = false;
  }

  /** Calls `listener` (once) when a write of this store fails to commit. */
  onFailure(listener: () => void): void {
    this.#failureListener = listener;
  }

  #checkValid(): void {
    assert(this.#valid, `lmdb store ${this.#path} used after its storage closed`);
  }

  #storageError(error: unknown): StraitError {
    return new StraitError('STRAIT_STORAGE', { path: this.#path, reason: reasonOf(error) }, { cause: error });
  }

  get(key: string): Uint8Array | undefined {
    this.#checkValid();
    const pending = this.#overlay.get(key);
    // A copy: the caller may keep it, and a view would keep a whole slab alive.
    if (pending !== undefined) return pending.value?.slice();
    try {
      return this.#database.get(Buffer.from(key, 'utf8'));
    } catch (error) {
      throw this.#storageError(error);
    }
  }

  put(key: string, value: Uint8Array): void {
    this.#checkValid();
    checkStoreKey(key);
    // lmdb-js reads the value buffer later, on its write thread: hand it a private copy.
    const copy = this.#copyOf(value);
    let promise: PromiseLike<boolean>;
    try {
      promise = this.#database.put(Buffer.from(key, 'utf8'), copy);
    } catch (error) {
      throw this.#storageError(error);
    }
    this.#record(key, copy, promise);
  }

  #copyOf(value: Uint8Array): Uint8Array {
    if (value.length > SLAB_VALUE_BYTES_MAX) return new Uint8Array(value);
    if (this.#slab === undefined || this.#slabUsed + value.length > SLAB_BYTES) {
      this.#slab = new Uint8Array(SLAB_BYTES);
      this.#slabUsed = 0;
    }
    const copy = this.#slab.subarray(this.#slabUsed, this.#slabUsed + value.length);
    copy.set(value);
    // 8-byte aligned, as lmdb-js's own buffers are.
    this.#slabUsed += (value.length + 7) & ~7;
    return copy;
  }

  remove(key: string): void {
    this.#checkValid();
    checkStoreKey(key);
    let promise: PromiseLike<boolean>;
    try {
      promise = this.#database.remove(Buffer.from(key, 'utf8'));
    } catch (error) {
      throw this.#storageError(error);
    }
    this.#record(key, undefined, promise);
  }

  #record(key: string, value: Uint8Array | undefined, promise: PromiseLike<boolean>): void {
    const sequence = ++this.#sequence;
    this.#overlay.set(key, { value, sequence });
    let group = this.#group;
    if (group === undefined || group.promise !== promise) {
      const created: CommitGroup = { promise, keys: [], sequences: [] };
      promise.then(
        () => this.#committed(created),
        (error: unknown) => this.#failed(created, error),
      );
      this.#group = group = created;
    }
    group.keys.push(key);
    group.sequences.push(sequence);
  }

  /** The group's transaction committed: reads now see it, so its overlay entries can go. */
  #committed(group: CommitGroup): void {
    if (this.#group === group) this.#group = undefined;
    this.#trimOverlay(group);
  }

  #failed(group: CommitGroup, error: unknown): void {
    if (this.#group === group) this.#group = undefined;
    // lmdb-js rejects every write of a failed transaction with a generic error whose
    // `commitError` promise rejects with the real one; observe it so it is not unhandled.
    const detail = (error as { commitError?: PromiseLike<unknown> } | undefined)?.commitError;
    if (detail !== undefined) detail.then(undefined, () => {});
    // The writes never reached the disk; reads go back to what is there.
    this.#trimOverlay(group);
    this.#fail(error);
  }

  #trimOverlay(group: CommitGroup): void {
    for (let index = 0; index < group.keys.length; index++) {
      const key = group.keys[index] as string;
      if (this.#overlay.get(key)?.sequence === group.sequences[index]) this.#overlay.delete(key);
    }
  }

  /**
   * A snapshot in key (UTF-8 byte) order; writes during iteration do not affect it. Lazy: the
   * disk is read as the caller iterates (an LMDB read snapshot merged with a copy of the
   * uncommitted overlay), so streaming a store much larger than memory holds one entry at a time.
   */
  entries(): Iterable<readonly [string, Uint8Array]> {
    this.#checkValid();
    const overlay = [...this.#overlay.entries()].sort((left, right) => compareStoreKeys(left[0], right[0]));
    let range: Iterable<{ key: Uint8Array; value: Uint8Array }>;
    try {
      range = this.#database.getRange({ snapshot: true });
    } catch (error) {
      throw this.#storageError(error);
    }
    const storageError = (error: unknown) => this.#storageError(error);
    return {
      *[Symbol.iterator]() {
        let next = 0;
        const pendingBefore = function* (key: string | undefined) {
          while (next < overlay.length && (key === undefined || compareStoreKeys(overlay[next]![0], key) < 0)) {
            const [pendingKey, pending] = overlay[next++]!;
            if (pending.value !== undefined) yield [pendingKey, pending.value.slice()] as const;
          }
        };
        const iterator = range[Symbol.iterator]();
        for (;;) {
          let step: IteratorResult<{ key: Uint8Array; value: Uint8Array }>;
          try {
            step = iterator.next();
          } catch (error) {
            throw storageError(error);
          }
          if (step.done === true) break;
          const { key, value } = step.value;
          const text = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('utf8');
          yield* pendingBefore(text);
          if (next < overlay.length && overlay[next]![0] === text) {
            const pending = overlay[next++]![1];
            if (pending.value !== undefined) yield [text, pending.value.slice()] as const;
            continue;
          }
          yield [text, value] as const;
        }
        yield* pendingBefore(undefined);
      },
    };
  }

  /**
   * Calls back once every earlier write is flushed to disk, in the order of the `sync` calls:
   * lmdb-js may settle `flushed` promises out of order, but a later flush covers the writes of
   * every earlier sync, so it completes them first.
   */
  sync(callback: (error: Error | undefined) => void): void {
    this.#checkValid();
    const failure = this.#failure;
    if (failure !== undefined) {
      queueMicrotask(() => callback(failure));
      return;
    }
    // Every `flushed.then` costs lmdb-js a Promise.all, and a server syncs once per write: the
    // syncs of one synchronous run share one reaction, made when the run ends. Writes made
    // between a sync and that moment are covered too; a sync only ever waits for more.
    const open = this.#openSyncGroup;
    if (open !== undefined) {
      open.callbacks.push(callback);
      return;
    }
    const group: SyncGroup = { callbacks: [callback] };
    this.#openSyncGroup = group;
    this.#syncGroups.push(group);
    queueMicrotask(() => {
      if (this.#openSyncGroup === group) this.#openSyncGroup = undefined;
      // A failed commit never settles `flushed`; #fail completes the waiting syncs instead.
      if (this.#failure !== undefined || !this.#syncGroups.includes(group)) return;
      this.#database.flushed.then(
        () => this.#flushedThrough(group),
        (error: unknown) => this.#fail(error),
      );
    });
  }

  #flushedThrough(group: SyncGroup): void {
    const index = this.#syncGroups.indexOf(group);
    if (index < 0) return;
    for (const completed of this.#syncGroups.splice(0, index + 1)) {
      for (const callback of completed.callbacks) callback(undefined);
    }
  }

  /** Records the first failure; from now on every sync reports it. */
  #fail(error: unknown): void {
    this.#failure ??= this.#storageError(error);
    const failure = this.#failure;
    this.#openSyncGroup = undefined;
    for (const group of this.#syncGroups.splice(0)) {
      for (const callback of group.callbacks) callback(failure);
    }
    const listener = this.#failureListener;
    this.#failureListener = undefined;
    listener?.();
  }
}
