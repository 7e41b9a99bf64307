// The architecture's lint rules, checked over the source tree:
// - only the Node runtime, the CLI and benchmarks touch real time, timers, randomness, sockets,
//   files or lmdb; the core gets them through the Runtime (CONVENTIONS.md 1);
// - nothing imports upward: protocol never imports core, core never imports client/cli/admin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

function sourceFiles(directory: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && !entry.name.endsWith('-test-suite.ts') && !entry.name.endsWith('.test-support.ts')) files.push(path);
  }
  return files;
}

const files = sourceFiles(join(root, 'src')).map((path) => ({ path: relative(root, path), text: readFileSync(path, 'utf8') }));

const EDGE = [/^src\/tools\//, /^src\/runtime\/node\//, /^src\/cli\//, /^src\/admin\//, /^src\/sim\/main\.ts$/, /^src\/sim\/site-simulation\.ts$/, /^src\/sim\/drive\.ts$/];
const FORBIDDEN = [
  { pattern: /\bDate\.now\(/, what: 'Date.now()' },
  { pattern: /\bsetTimeout\(|\bsetInterval\(|\bsetImmediate\(/, what: 'a Node timer' },
  { pattern: /\bMath\.random\(/, what: 'Math.random()' },
  { pattern: /from 'node:(net|tls|fs|dgram|http|https|child_process)'/, what: 'a Node I/O module' },
  { pattern: /from 'lmdb'/, what: 'lmdb' },
];

test('only the runtime edge uses real time, timers, randomness or I/O', () => {
  const violations: string[] = [];
  for (const file of files) {
    if (EDGE.some((edge) => edge.test(file.path))) continue;
    const code = file.text.replace(/\/\/.*$/gm, '');
    for (const rule of FORBIDDEN) if (rule.pattern.test(code)) violations.push(`${file.path} uses ${rule.what}`);
  }
  assert.deepEqual(violations, []);
});

const LAYERS: Record<string, string[]> = {
  'src/errors.ts': [],
  'src/protocol/': ['src/errors.ts', 'src/runtime/runtime.ts'],
  'src/runtime/runtime.ts': ['src/errors.ts'],
  'src/core/': ['src/errors.ts', 'src/protocol/', 'src/runtime/runtime.ts'],
};

test('nothing imports upward', () => {
  const violations: string[] = [];
  for (const file of files) {
    const layer = Object.keys(LAYERS).find((prefix) => file.path.startsWith(prefix));
    if (layer === undefined) continue;
    const allowed = [layer, ...LAYERS[layer]!];
    for (const match of file.text.matchAll(/from '(\.[^']+)'/g)) {
      const target = relative(root, join(root, file.path, '..', match[1]!));
      if (!allowed.some((prefix) => target.startsWith(prefix))) violations.push(`${file.path} imports ${target}`);
    }
  }
  assert.deepEqual(violations, []);
});
