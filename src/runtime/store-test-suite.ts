// The tests every Storage implementation must pass (memory and LMDB). Each implementation's
// test file calls `storeTestSuite` with a factory; every test gets a fresh storage.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { Storage, Store } from './runtime.ts';
import { storeKeyBytesMax } from './memory-storage.ts';

export interface StorageUnderTest {
  readonly storage: Storage;
  /** Returns a storage over the same data, after `storage` (or the previous reopen) was closed. */
  readonly reopen: () => Storage;
  readonly cleanup: () => void | Promise<void>;
}

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

function text(value: string): Uint8Array {
  return new TextEncoder().encode(value);
}

function syncStore(store: Store): Promise<void> {
  return new Promise((resolve, reject) => {
    store.sync((error) => (error === undefined ? resolve() : reject(error)));
  });
}

function closeStorage(storage: Storage): Promise<void> {
  return new Promise((resolve, reject) => {
    storage.close((error) => (error === undefined ? resolve() : reject(error)));
  });
}

/** Entries as plain arrays, so `deepEqual` compares bytes and ignores Buffer vs Uint8Array. */
function entriesOf(store: Store): Array<[string, number[]]> {
  return [...store.entries()].map(([key, value]) => [key, [...value]]);
}

function valueOf(store: Store, key: string): number[] | undefined {
  const value = store.get(key);
  return value === undefined ? undefined : [...value];
}

/** The order every Storage keeps: by the keys' UTF-8 bytes. */
function compareUtf8(left: string, right: string): number {
  const leftBytes = text(left);
  const rightBytes = text(right);
  const length = Math.min(leftBytes.length, rightBytes.length);
  for (let index = 0; index < length; index++) {
    const difference = (leftBytes[index] ?? 0) - (rightBytes[index] ?? 0);
    if (difference !== 0) return difference;
  }
  return leftBytes.length - rightBytes.length;
}

function expectCode(code: string): (error: unknown) => boolean {
  return (error) => {
    assert.equal((error as { code?: unknown }).code, code);
    return true;
  };
}

export function storeTestSuite(name: string, makeStorage: () => StorageUnderTest): void {
  describe(`Storage contract: ${name}`, () => {
    async function withStorage(body: (subject: StorageUnderTest) => Promise<void> | void): Promise<void> {
      const subject = makeStorage();
      try {
        await body(subject);
      } finally {
        await subject.cleanup();
      }
    }

    test('put, get and remove', () =>
      withStorage(async ({ storage }) => {
        const store = storage.open('things');
        assert.equal(store.get('a'), undefined);
        store.put('a', bytes(1, 2, 3));
        assert.deepEqual(valueOf(store, 'a'), [1, 2, 3]);
        store.remove('a');
        assert.equal(store.get('a'), undefined);
        store.remove('never-written');
        assert.equal(store.get('never-written'), undefined);
        await syncStore(store);
        assert.equal(store.get('a'), undefined);
        await closeStorage(storage);
      }));

    test('a later put overwrites an earlier one, before and after sync', () =>
      withStorage(async ({ storage }) => {
        const store = storage.open('things');
        store.put('k', text('first'));
        store.put('k', text('second'));
        assert.deepEqual(valueOf(store, 'k'), [...text('second')]);
        await syncStore(store);
        assert.deepEqual(valueOf(store, 'k'), [...text('second')]);
        store.put('k', text('third'));
        assert.deepEqual(valueOf(store, 'k'), [...text('third')]);
        assert.deepEqual(entriesOf(store), [['k', [...text('third')]]]);
        await syncStore(store);
        assert.deepEqual(entriesOf(store), [['k', [...text('third')]]]);
        await closeStorage(storage);
      }));

    test('entries come in key order and merge synced with unsynced writes', () =>
      withStorage(async ({ storage }) => {
        const store = storage.open('ordered');
        for (const key of ['m', 'b', 'z', 'a', 'ab', 'aa', 'B']) store.put(key, text(key));
        await syncStore(store);
        store.remove('z');
        store.put('c', text('c'));
        store.put('a', text('A'));
        const expected: Array<[string, number[]]> = [
          ['B', [...text('B')]],
          ['a', [...text('A')]],
          ['aa', [...text('aa')]],
          ['ab', [...text('ab')]],
          ['b', [...text('b')]],
          ['c', [...text('c')]],
          ['m', [...text('m')]],
        ];
        assert.deepEqual(entriesOf(store), expected);
        await syncStore(store);
        assert.deepEqual(entriesOf(store), expected);
        await closeStorage(storage);
      }));

    test('entries with many keys', () =>
      withStorage(async ({ storage }) => {
        const store = storage.open('many');
        const count = 5000;
        const keys: string[] = [];
        // Written in reverse so the store, not the insertion order, produces the order.
        for (let index = count - 1; index >= 0; index--) {
          const key = `key-${index}`;
          keys.push(key);
          store.put(key, text(`value-${index}`));
          if (index === count / 2) await syncStore(store);
        }
        keys.sort(compareUtf8);
        const entries = [...store.entries()];
        assert.equal(entries.length, count);
        assert.deepEqual(
          entries.map(([key]) => key),
          keys,
        );
        for (const [key, value] of entries) {
          assert.deepEqual([...value], [...text(key.replace('key', 'value'))]);
        }
        await syncStore(store);
        assert.equal([...store.entries()].length, count);
        await closeStorage(storage);
      }));

    test('writes and removals during an iteration do not change what it lists', () =>
      withStorage(async ({ storage }) => {
        const store = storage.open('snapshot');
        for (let index = 0; index < 100; index++) store.put(`key-${String(index).padStart(3, '0')}`, text(`v${index}`));
        await syncStore(store);
        store.put('key-050', text('pending'));
        const seen: string[] = [];
        for (const [key, value] of store.entries()) {
          seen.push(`${key}=${new TextDecoder().decode(value)}`);
          if (seen.length === 10) {
            store.remove('key-020');
            store.put('key-030', text('changed'));
            store.put('key-999', text('new'));
          }
        }
        assert.equal(seen.length, 100);
        assert.ok(seen.includes('key-020=v20') && seen.includes('key-030=v30') && seen.includes('key-050=pending'));
        assert.ok(!seen.some((entry) => entry.startsWith('key-999')));
        await closeStorage(storage);
      }));

    test('values are byte-exact, including zero bytes and empty values', () =>
      withStorage(async ({ storage, reopen }) => {
        const store = storage.open('binary');
        const large = new Uint8Array(256 * 1024);
        for (let index = 0; index < large.length; index++) large[index] = (index * 7) & 0xff;
        const values: Record<string, Uint8Array> = {
          zeros: new Uint8Array(16),
          mixed: bytes(0, 255, 0, 1, 0, 128, 0),
          empty: new Uint8Array(0),
          large,
        };
        for (const [key, value] of Object.entries(values)) store.put(key, value);
        for (const [key, value] of Object.entries(values)) assert.deepEqual(valueOf(store, key), [...value]);
        await syncStore(store);
        // Hold every result before comparing: a value must not be a view that a later read reuses.
        const held = Object.keys(values).map((key) => [key, store.get(key)] as const);
        const listed = [...store.entries()];
        for (const [key, stored] of held) {
          assert.ok(stored instanceof Uint8Array);
          assert.deepEqual([...stored], [...(values[key] ?? [])]);
        }
        for (const [key, stored] of listed) assert.deepEqual([...stored], [...(values[key] ?? [])]);
        await closeStorage(storage);
        const reopened = reopen();
        const again = reopened.open('binary');
        for (const [key, value] of Object.entries(values)) assert.deepEqual(valueOf(again, key), [...value]);
        await closeStorage(reopened);
      }));

    test('put copies the value: changing the caller buffer afterwards changes nothing', () =>
      withStorage(async ({ storage }) => {
        const store = storage.open('copies');
        const buffer = bytes(1, 2, 3);
        store.put('k', buffer);
        buffer[0] = 9;
        assert.deepEqual(valueOf(store, 'k'), [1, 2, 3]);
        await syncStore(store);
        assert.deepEqual(valueOf(store, 'k'), [1, 2, 3]);
        await closeStorage(storage);
      }));

    test('sync calls back once, without error, after earlier writes; syncs complete in order', () =>
      withStorage(async ({ storage }) => {
        const store = storage.open('synced');
        const completed: number[] = [];
        await new Promise<void>((resolve, reject) => {
          store.sync((error) => {
            if (error !== undefined) reject(error);
            completed.push(0);
          });
          store.put('a', text('a'));
          store.sync((error) => {
            if (error !== undefined) reject(error);
            completed.push(1);
          });
          store.put('b', text('b'));
          store.remove('a');
          store.sync((error) => {
            if (error !== undefined) reject(error);
            completed.push(2);
            resolve();
          });
        });
        assert.deepEqual(completed, [0, 1, 2]);
        await closeStorage(storage);
      }));

    test('synced writes are there after close and reopen; removals stay removed', () =>
      withStorage(async ({ storage, reopen }) => {
        const store = storage.open('durable');
        store.put('kept', text('kept'));
        store.put('removed', text('removed'));
        store.put('changed', text('old'));
        await syncStore(store);
        store.remove('removed');
        store.put('changed', text('new'));
        await syncStore(store);
        await closeStorage(storage);
        const reopened = reopen();
        const again = reopened.open('durable');
        assert.deepEqual(entriesOf(again), [
          ['changed', [...text('new')]],
          ['kept', [...text('kept')]],
        ]);
        await closeStorage(reopened);
      }));

    test('close makes every earlier write durable', () =>
      withStorage(async ({ storage, reopen }) => {
        const store = storage.open('closed');
        store.put('unsynced', text('value'));
        await closeStorage(storage);
        const reopened = reopen();
        assert.deepEqual(valueOf(reopened.open('closed'), 'unsynced'), [...text('value')]);
        await closeStorage(reopened);
      }));

    test('named stores are independent', () =>
      withStorage(async ({ storage, reopen }) => {
        const first = storage.open('first');
        const second = storage.open('second');
        first.put('shared-key', text('one'));
        second.put('shared-key', text('two'));
        second.put('only-second', text('x'));
        first.remove('only-second');
        assert.deepEqual(valueOf(first, 'shared-key'), [...text('one')]);
        assert.deepEqual(valueOf(second, 'shared-key'), [...text('two')]);
        assert.deepEqual(valueOf(second, 'only-second'), [...text('x')]);
        await syncStore(first);
        await syncStore(second);
        assert.deepEqual(
          entriesOf(first).map(([key]) => key),
          ['shared-key'],
        );
        await closeStorage(storage);
        const reopened = reopen();
        assert.deepEqual(valueOf(reopened.open('first'), 'shared-key'), [...text('one')]);
        assert.deepEqual(valueOf(reopened.open('second'), 'shared-key'), [...text('two')]);
        assert.equal(reopened.open('first').get('only-second'), undefined);
        assert.equal(reopened.open('never-opened-before').get('shared-key'), undefined);
        await closeStorage(reopened);
      }));

    test('opening a store twice gives the same contents', () =>
      withStorage(async ({ storage }) => {
        const first = storage.open('twice');
        first.put('k', text('v'));
        assert.deepEqual(valueOf(storage.open('twice'), 'k'), [...text('v')]);
        await syncStore(first);
        assert.deepEqual(valueOf(storage.open('twice'), 'k'), [...text('v')]);
        await closeStorage(storage);
      }));

    test('unicode and binary-looking keys round-trip and sort by UTF-8 bytes', () =>
      withStorage(async ({ storage, reopen }) => {
        const store = storage.open('unicode');
        const keys = ['a\u0000b', 'a', '\u0001', 'é', '日本', '😀', '\uffff', '\ue000', '\u{10000}', 'Z', '\u007f', '\u0080', 'x'.repeat(storeKeyBytesMax)];
        keys.forEach((key, index) => store.put(key, bytes(index)));
        keys.forEach((key, index) => assert.deepEqual(valueOf(store, key), [index]));
        const expected = [...keys].sort(compareUtf8);
        assert.deepEqual(
          [...store.entries()].map(([key]) => key),
          expected,
        );
        await syncStore(store);
        await closeStorage(storage);
        const reopened = reopen();
        const again = reopened.open('unicode');
        assert.deepEqual(
          [...again.entries()].map(([key]) => key),
          expected,
        );
        keys.forEach((key, index) => assert.deepEqual(valueOf(again, key), [index]));
        await closeStorage(reopened);
      }));

    test('keys that no storage can hold are rejected with STRAIT_KEY_INVALID', () =>
      withStorage(async ({ storage }) => {
        const store = storage.open('bad-keys');
        for (const key of ['', '\ud800', 'a\udc00b', 'x'.repeat(storeKeyBytesMax + 1), 'é'.repeat(storeKeyBytesMax / 2 + 1)]) {
          assert.throws(() => store.put(key, bytes(1)), expectCode('STRAIT_KEY_INVALID'));
          assert.throws(() => store.remove(key), expectCode('STRAIT_KEY_INVALID'));
        }
        assert.deepEqual(entriesOf(store), []);
        await closeStorage(storage);
      }));

    test('random operations with syncs in between match a Map model', () =>
      withStorage(async ({ storage }) => {
        let run = 0;
        const operation = fc.oneof(
          fc.record({ kind: fc.constant('put' as const), key: fc.integer({ min: 0, max: 20 }), value: fc.uint8Array({ maxLength: 8 }) }),
          fc.record({ kind: fc.constant('remove' as const), key: fc.integer({ min: 0, max: 20 }) }),
          fc.record({ kind: fc.constant('sync' as const) }),
          fc.record({ kind: fc.constant('yield' as const) }),
        );
        await fc.assert(
          fc.asyncProperty(fc.array(operation, { maxLength: 60 }), async (operations) => {
            // One store for every run (storage may limit how many stores exist); each run
            // has its own key prefix and looks only at its own keys.
            const store = storage.open('model');
            const prefix = `run${String(run++).padStart(5, '0')}-`;
            const model = new Map<string, number[]>();
            const ownEntries = () => entriesOf(store).filter(([key]) => key.startsWith(prefix));
            for (const step of operations) {
              if (step.kind === 'put') {
                store.put(`${prefix}${step.key}`, step.value);
                model.set(`${prefix}${step.key}`, [...step.value]);
              } else if (step.kind === 'remove') {
                store.remove(`${prefix}${step.key}`);
                model.delete(`${prefix}${step.key}`);
              } else if (step.kind === 'sync') {
                await syncStore(store);
              } else {
                // Lets commits land between writes without waiting for them.
                await new Promise<void>((resolve) => setImmediate(resolve));
              }
              for (const key of [0, 1, 2].map((index) => `${prefix}${index}`)) assert.deepEqual(valueOf(store, key), model.get(key));
            }
            const expected = [...model.entries()].sort((left, right) => compareUtf8(left[0], right[0]));
            assert.deepEqual(ownEntries(), expected);
            await syncStore(store);
            assert.deepEqual(ownEntries(), expected);
          }),
          { numRuns: 40 },
        );
        await closeStorage(storage);
      }));
  });
}
