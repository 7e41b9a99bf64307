import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StraitError } from '../errors.ts';
import { loadConflictResolver } from './run.ts';

test('a conflict resolver module written in TypeScript loads and decides', async (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'strait-resolver-'));
  t.after(() => rmSync(directory, { recursive: true, force: true }));
  const path = join(directory, 'resolver.ts');
  writeFileSync(path, "export default (_key: string, existing: { value: unknown }, incoming: { value: unknown }): 'existing' | 'incoming' => (Number(incoming.value) > Number(existing.value) ? 'incoming' : 'existing');\n");
  const resolver = await loadConflictResolver(path);
  assert.equal(resolver('k', { value: 1, tag: [1, 1, 'a', 1] }, { value: 2, tag: [1, 0, 'a', 2] }), 'incoming');
  assert.equal(resolver('k', { value: 3, tag: [1, 1, 'a', 1] }, { value: 2, tag: [1, 9, 'a', 2] }), 'existing');
});

test('a module without a resolver function is a coded configuration error', async (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'strait-resolver-'));
  t.after(() => rmSync(directory, { recursive: true, force: true }));
  const path = join(directory, 'nothing.ts');
  writeFileSync(path, 'export const value = 1;\n');
  await assert.rejects(loadConflictResolver(path), (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_CONFIG_INVALID');
});
