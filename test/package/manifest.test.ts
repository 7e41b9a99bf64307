// The package manifest's dependency lists stay in the shape docs/DEPENDENCIES.md explains: the
// client's packages in `dependencies`, a member's in `optionalDependencies`, and each of those
// also in `devDependencies` with the same range, so this repository's own install can never
// silently drop one (npm skips an optional package, and its subtree, on any failure or engine
// mismatch of the Node running npm).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  dependencies: Record<string, string>;
  optionalDependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

test('every member dependency is also a dev dependency with the same range; the client needs only msgpackr and TypeBox', () => {
  assert.deepEqual(Object.keys(manifest.dependencies).sort(), ['@sinclair/typebox', 'msgpackr']);
  for (const [name, range] of Object.entries(manifest.optionalDependencies)) {
    assert.equal(manifest.devDependencies[name], range, `${name}: optionalDependencies says ${range}, devDependencies ${manifest.devDependencies[name] ?? 'nothing'}`);
    assert.equal(manifest.dependencies[name], undefined, `${name} is in both dependencies and optionalDependencies`);
  }
});
