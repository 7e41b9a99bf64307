import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { storeTestSuite } from '../store-test-suite.ts';
import { LmdbStorage } from './lmdb-storage.ts';

storeTestSuite('LmdbStorage', () => {
  const directory = mkdtempSync(join(tmpdir(), 'strait-lmdb-'));
  return {
    storage: new LmdbStorage(directory),
    reopen: () => new LmdbStorage(directory),
    cleanup: () => rmSync(directory, { recursive: true, force: true }),
  };
});

describe('LmdbStorage', () => {
  test('a directory that cannot hold an environment is STRAIT_STORAGE', () => {
    const parent = mkdtempSync(join(tmpdir(), 'strait-lmdb-'));
    try {
      // A regular file where the environment directory should be.
      const blocked = join(parent, 'file');
      writeFileSync(blocked, 'not a directory');
      assert.throws(
        () => new LmdbStorage(join(blocked, 'data')),
        (error: unknown) => (error as { code?: unknown }).code === 'STRAIT_STORAGE',
      );
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  test('opening more stores than storesMax is STRAIT_STORAGE', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'strait-lmdb-'));
    const storage = new LmdbStorage(directory, { storesMax: 2 });
    try {
      storage.open('one');
      storage.open('two');
      assert.throws(
        () => storage.open('three'),
        (error: unknown) => (error as { code?: unknown }).code === 'STRAIT_STORAGE',
      );
    } finally {
      await new Promise<void>((resolve) => storage.close(() => resolve()));
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test('small values share slabs: each write keeps its own bytes across slab ends, whatever the caller does with its buffer or a read', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'strait-lmdb-'));
    const storage = new LmdbStorage(directory);
    try {
      const store = storage.open('queue');
      // 8,000 values of 100-130 bytes: several 256 KiB slabs, their ends falling mid-run.
      const valueOf = (n: number) => new Uint8Array(100 + (n % 31)).fill(n % 251);
      const source = new Uint8Array(200);
      for (let n = 0; n < 8000; n++) {
        const value = valueOf(n);
        source.set(value);
        store.put(`k${String(n).padStart(5, '0')}`, source.subarray(0, value.length));
        source.fill(0xff); // the caller reuses its buffer at once
      }
      const early = store.get('k00007')!;
      early.fill(0); // a reader scribbling on what it got changes nothing stored
      for (let n = 0; n < 8000; n += 7) assert.deepEqual(new Uint8Array(store.get(`k${String(n).padStart(5, '0')}`)!), valueOf(n), `before the commit, value ${n}`);
      await new Promise<void>((resolve, reject) => store.sync((error) => (error === undefined ? resolve() : reject(error))));
      for (let n = 0; n < 8000; n += 7) assert.deepEqual(new Uint8Array(store.get(`k${String(n).padStart(5, '0')}`)!), valueOf(n), `after the commit, value ${n}`);
      assert.equal([...store.entries()].length, 8000);
    } finally {
      await new Promise<void>((resolve) => storage.close(() => resolve()));
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test('syncs of one run share a flush, complete in call order, and cover the writes up to the end of the run', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'strait-lmdb-'));
    const storage = new LmdbStorage(directory);
    const order: number[] = [];
    try {
      const store = storage.open('queue');
      const done = (n: number) => new Promise<void>((resolve) => store.sync((error) => { assert.equal(error, undefined); order.push(n); resolve(); }));
      const waits: Promise<void>[] = [];
      for (let n = 0; n < 500; n++) {
        store.put(`k${String(n).padStart(4, '0')}`, new Uint8Array([n & 0xff]));
        waits.push(done(n));
      }
      // Written after the run's last sync, before its flush is asked for: covered by it.
      store.put('late', new Uint8Array([1]));
      await Promise.resolve();
      store.put('next-run', new Uint8Array([2]));
      waits.push(done(500));
      await Promise.all(waits);
      assert.deepEqual(order, Array.from({ length: 501 }, (_, n) => n));
    } finally {
      await new Promise<void>((resolve) => storage.close(() => resolve()));
    }
    const reopened = new LmdbStorage(directory);
    try {
      const store = reopened.open('queue');
      assert.equal([...store.entries()].length, 502, 'every write of both runs is on disk');
    } finally {
      await new Promise<void>((resolve) => reopened.close(() => resolve()));
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
