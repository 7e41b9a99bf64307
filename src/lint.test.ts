// The architecture's lint (src/lint.ts) over the tree, and its rules on small synthetic sources so
// that a rule which stops catching anything fails here instead of silently passing the tree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { EDGE, formatViolation, isLinted, KNOWN_PENDING, LAYERS, layerOf, lintSource, lintTree } from './lint.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

test('the tree keeps the seam and the layers (npm run lint prints the same)', () => {
  const { violations } = lintTree(root);
  assert.deepEqual(violations.map(formatViolation), []);
});

/** What the rules find in `text` as the file `path`: `line: what`, one per violation. */
function findings(path: string, text: string): string[] {
  return lintSource(path, text).map((violation) => `${violation.line}: ${violation.what}`);
}

const CORE = 'src/core/example.ts';

test('real time, timers and randomness are caught outside the edge', () => {
  const text = [
    'const a = Date.now();',
    'const b = new Date();',
    'const c = performance.now();',
    'setTimeout(() => {}, 1);',
    'const d = Math.random();',
    'process.nextTick(() => {});',
    'const e = new Date(0).getHours();',
    'globalThis.setImmediate(() => {});',
    'const f = { setInterval };',
    'const g = crypto.randomUUID();',
    'const h = process.hrtime.bigint();',
  ].join('\n');
  assert.deepEqual(findings(CORE, text), [
    '1: calls Date.now()',
    '2: calls new Date()',
    '3: uses performance.now, the real clock',
    '4: uses setTimeout, a real timer',
    '5: calls Math.random()',
    '6: uses process.nextTick',
    '7: calls new Date()',
    '8: uses setImmediate, a real timer',
    '9: uses setInterval, a real timer',
    '10: uses the global crypto, a real random source',
    '11: uses process.hrtime',
  ]);
});

test('comments, strings, types and members with those names are not violations', () => {
  const text = [
    '// Date.now() and setTimeout() are the runtime\'s business; so is `new Date(`.',
    '/* performance.now(), process.nextTick(), import(\'node:fs\') */',
    'const text = "Date.now() setTimeout( Math.random() new Date( import(\'node:zlib\')";',
    'const template = `performance.now() ${1} from \'node:fs/promises\'`;',
    'interface Timers { setTimeout(delayMs: number): void; now(): number }',
    'declare const runtime: { setTimeout(delayMs: number): void; clock: { now(): number } };',
    'runtime.setTimeout(5); runtime.clock.now();',
    'let when: Date | undefined; type Handle = ReturnType<typeof setTimeout>;',
    'const options = { setTimeout: 5, performance: 1 };',
    'const parsed = Date.parse("2024-01-01"); const utc = Date.UTC(2024, 0);',
    'queueMicrotask(() => {});',
  ].join('\n');
  assert.deepEqual(findings(CORE, text), []);
});

test('Node built-ins that do I/O are caught in every import form; pure ones are not', () => {
  const text = [
    "import { readFile } from 'node:fs/promises';",
    'import { zstdCompressSync } from "node:zlib";',
    "import { setTimeout as sleep } from 'node:timers/promises';",
    "import { setImmediate } from 'node:timers';",
    "import { Socket } from 'net';",
    "import type { Server } from 'node:http';",
    "export { connect } from 'node:tls';",
    'import {',
    '  spawn,',
    "} from 'node:child_process';",
    "import { open } from 'lmdb';",
    "import { parseArgs } from 'node:util';",
    "import { Buffer } from 'node:buffer';",
    "import assert from 'node:assert/strict';",
    "import { Type } from '@sinclair/typebox';",
    "import { pack } from 'msgpackr';",
  ].join('\n');
  assert.deepEqual(findings(CORE, text), [
    '1: imports node:fs/promises',
    '2: imports node:zlib',
    '3: imports node:timers/promises',
    '4: imports node:timers',
    '5: imports net',
    '6: imports node:http',
    '7: imports node:tls',
    '8: imports node:child_process',
    '11: imports lmdb',
  ]);
});

test('dynamic import() is caught outside the edge; a type-level import() is not one', () => {
  const text = [
    "const module = await import('./locator.ts');",
    "const fs = await import('node:fs/promises');",
    'const computed = await import(`./${name}.ts`);',
    "let stream: import('../runtime/runtime.ts').Stream;",
    "let upward: import('../cli/run.ts').Options;",
  ].join('\n');
  assert.deepEqual(findings(CORE, text), [
    '1: uses a dynamic import()',
    '2: uses a dynamic import()',
    '2: imports node:fs/promises',
    '3: uses a dynamic import()',
    '5: imports src/cli/run.ts',
  ]);
});

test('the edge may use real time, I/O and dynamic import(), but still only import downward', () => {
  const text = [
    "import { createServer } from 'node:net';",
    "import { open } from 'lmdb';",
    'const started = Date.now(); setTimeout(() => {}, performance.now());',
    "const { pack } = await import('msgpackr');",
    "import { Server } from '../../core/server.ts';",
  ].join('\n');
  assert.deepEqual(findings('src/runtime/node/example.ts', text), ['5: imports src/core/server.ts']);
});

test('each layer imports only itself and the layers below it that LAYERS names', () => {
  const cases: [path: string, text: string, expected: string[]][] = [
    [CORE, "import { connect } from '../client/client.ts';", ['1: imports src/client/client.ts']],
    [CORE, "import type { Stream } from '../runtime/runtime.ts';\nimport './region.ts';", []],
    [CORE, "import { x } from '../../../outside.ts';", ['1: imports ../outside.ts']],
    ['src/protocol/x.ts', "export * from '../core/server.ts';", ['1: imports src/core/server.ts']],
    ['src/admin/x.ts', "import type { MemberAdmin } from '../core/member-admin.ts';", []],
    ['src/admin/x.ts', "import { Server } from '../core/server.ts';", ['1: imports src/core/server.ts']],
    ['src/client/x.ts', "import { create } from '../runtime/node/client-runtime.ts';", [
      '1: imports src/runtime/node/client-runtime.ts',
    ]],
    ['src/runtime/runtime.ts', "import type { View } from '../protocol/messages.ts';", [
      '1: imports src/protocol/messages.ts',
    ]],
    ['src/errors.ts', "import { Runtime } from './runtime/runtime.ts';", ['1: imports src/runtime/runtime.ts']],
    ['src/cli/x.ts', "import { runSiteSeed } from '../sim/site-simulation.ts';", [
      '1: imports src/sim/site-simulation.ts',
    ]],
    ['src/cli/x.ts', "import { Server } from '../core/server.ts';\nimport '../runtime/node/logger.ts';", []],
    ['bench/x.ts', "import { connect } from '../src/client/client.ts';", []],
    // dist/ is src/ compiled: bin/ may load the built twin of the one source it may import.
    ['bin/x.js', "await import('../dist/cli/main.js');", []],
    ['bin/x.js', "await import('../dist/core/server.js');", ['1: imports src/core/server.ts']],
    // The package's client entry reaches no member code.
    ['src/package/client.ts', "export { startServer } from '../cli/member-api.ts';", ['1: imports src/cli/member-api.ts']],
    ['src/package/member.ts', "export { startServer } from '../cli/member-api.ts';", []],
  ];
  for (const [path, text, expected] of cases) assert.deepEqual(findings(path, text), expected, `${path}: ${text}`);
});

test('every source file belongs to a layer, the longest that contains it', () => {
  assert.deepEqual(findings('src/dashboard/page.ts', 'export const page = 1;'), ['1: is in no layer']);
  assert.equal(layerOf('src/runtime/node/node-runtime.ts'), 'src/runtime/node/');
  assert.equal(layerOf('src/runtime/runtime.ts'), 'src/runtime/runtime.ts');
  assert.equal(layerOf('src/runtime/memory-storage.ts'), 'src/runtime/memory-storage.ts');
  assert.equal(layerOf('src/runtime/runtime.test-helpers.ts'), undefined);
  // Every name in LAYERS and EDGE is a layer (or, for bench/, all of src/): no typo goes unnoticed.
  const fileIn = (prefix: string): string => (prefix.endsWith('/') ? `${prefix}x.ts` : prefix);
  for (const allowed of Object.values(LAYERS).flat()) {
    assert.ok(allowed === 'src/' || layerOf(fileIn(allowed)) !== undefined, allowed);
  }
  for (const edge of EDGE) assert.ok(layerOf(fileIn(edge)) !== undefined, edge);
});

test('test files are exempt; sources under src/, bench/ and bin/ are linted', () => {
  assert.equal(isLinted('src/core/server.test.ts'), false);
  assert.equal(isLinted('src/runtime/store-test-suite.ts'), false);
  assert.equal(isLinted('src/core/cluster.test-support.ts'), false);
  assert.equal(isLinted('src/lint.test.ts'), false);
  assert.equal(isLinted('src/core/server.ts'), true);
  assert.equal(isLinted('bench/wan/load.ts'), true);
  assert.equal(isLinted('bin/strait.js'), true);
  assert.equal(isLinted('docs/ARCHITECTURE.md'), false);
});

test('every known pending violation names its reason and still occurs', () => {
  const { pending } = lintTree(root);
  for (const entry of KNOWN_PENDING) {
    assert.ok(entry.why.length > 0);
    assert.ok(pending.some((violation) => violation.path === entry.path && violation.what === entry.what), entry.what);
  }
});
