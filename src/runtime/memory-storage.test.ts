import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AssertionFailure } from '../errors.ts';
import { compareStoreKeys, MemoryStorage, utf8ByteLength } from './memory-storage.ts';
import { storeTestSuite } from './store-test-suite.ts';

storeTestSuite('MemoryStorage', () => {
  const storage = new MemoryStorage();
  return {
    storage,
    // A restarted process sees only what was durable; `crash` models exactly that.
    reopen: () => {
      storage.crash();
      return storage;
    },
    cleanup: () => {},
  };
});

function text(value: string): Uint8Array {
  return new TextEncoder().encode(value);
}

/** A scheduler the test runs by hand, like the simulator delaying a disk flush. */
function manualScheduler(): { schedule: (callback: () => void) => void; runAll: () => void; readonly waiting: number } {
  const queue: Array<() => void> = [];
  return {
    schedule: (callback) => queue.push(callback),
    runAll: () => {
      for (let callback = queue.shift(); callback !== undefined; callback = queue.shift()) callback();
    },
    get waiting() {
      return queue.length;
    },
  };
}

describe('MemoryStorage crash', () => {
  test('unsynced writes are lost after crash(), synced ones kept', () => {
    const scheduler = manualScheduler();
    const storage = new MemoryStorage({ schedule: scheduler.schedule });
    const store = storage.open('regions');
    store.put('synced', text('one'));
    store.put('overwritten', text('old'));
    store.put('removed-later', text('x'));
    let synced = 0;
    store.sync((error) => {
      assert.equal(error, undefined);
      synced++;
    });
    scheduler.runAll();
    assert.equal(synced, 1);

    store.put('unsynced', text('two'));
    store.put('overwritten', text('new'));
    store.remove('removed-later');
    storage.crash();

    const reopened = storage.open('regions');
    assert.deepEqual(
      [...reopened.entries()].map(([key, value]) => [key, new TextDecoder().decode(value)]),
      [
        ['overwritten', 'old'],
        ['removed-later', 'x'],
        ['synced', 'one'],
      ],
    );
  });

  test('a sync whose flush has not run when the crash comes loses its writes and never calls back', () => {
    const scheduler = manualScheduler();
    const storage = new MemoryStorage({ schedule: scheduler.schedule });
    const store = storage.open('regions');
    store.put('k', text('v'));
    let called = false;
    store.sync(() => {
      called = true;
    });
    assert.equal(called, false, 'the callback waits for the scheduler');
    assert.deepEqual([...(store.get('k') ?? [])], [...text('v')], 'the write is visible before it is durable');
    storage.crash();
    scheduler.runAll();
    assert.equal(called, false);
    assert.equal(storage.open('regions').get('k'), undefined);
  });

  test('writes after a sync are not made durable by that sync', () => {
    const scheduler = manualScheduler();
    const storage = new MemoryStorage({ schedule: scheduler.schedule });
    const store = storage.open('regions');
    store.put('before', text('1'));
    store.sync(() => {});
    store.put('after', text('2'));
    scheduler.runAll();
    storage.crash();
    const reopened = storage.open('regions');
    assert.deepEqual(
      [...reopened.entries()].map(([key]) => key),
      ['before'],
    );
  });

  test('stores are independent across a crash: each keeps exactly its synced writes', () => {
    const scheduler = manualScheduler();
    const storage = new MemoryStorage({ schedule: scheduler.schedule });
    const first = storage.open('first');
    const second = storage.open('second');
    first.put('a', text('1'));
    second.put('a', text('2'));
    first.sync(() => {});
    scheduler.runAll();
    storage.crash();
    assert.deepEqual([...(storage.open('first').get('a') ?? [])], [...text('1')]);
    assert.equal(storage.open('second').get('a'), undefined);
  });

  test('using a store opened before the crash is an assertion failure', () => {
    const storage = new MemoryStorage();
    const stale = storage.open('regions');
    storage.crash();
    assert.throws(() => stale.put('k', text('v')), AssertionFailure);
    assert.throws(() => stale.get('k'), AssertionFailure);
  });

  test('close calls back through the scheduler and keeps every write', () => {
    const scheduler = manualScheduler();
    const storage = new MemoryStorage({ schedule: scheduler.schedule });
    storage.open('regions').put('k', text('v'));
    let closed = false;
    storage.close((error) => {
      assert.equal(error, undefined);
      closed = true;
    });
    assert.equal(scheduler.waiting, 1);
    scheduler.runAll();
    assert.equal(closed, true);
    storage.crash();
    assert.deepEqual([...(storage.open('regions').get('k') ?? [])], [...text('v')]);
  });
});

describe('store key helpers', () => {
  test('compareStoreKeys orders by UTF-8 bytes, unlike plain UTF-16 comparison', () => {
    // U+FFFF is EF BF BF in UTF-8; U+10000 is F0 90 80 80, so it sorts after.
    assert.ok(compareStoreKeys('\uffff', '\u{10000}') < 0);
    assert.ok('\uffff' > '\u{10000}', 'plain comparison disagrees, which is why the comparator exists');
    assert.ok(compareStoreKeys('a', 'ab') < 0);
    assert.equal(compareStoreKeys('same', 'same'), 0);
  });

  test('utf8ByteLength matches TextEncoder', () => {
    for (const value of ['', 'a', 'é', '日本', '😀', 'a\u0000😀\uffff']) {
      assert.equal(utf8ByteLength(value), new TextEncoder().encode(value).length);
    }
  });
});
