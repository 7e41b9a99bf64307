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
});
