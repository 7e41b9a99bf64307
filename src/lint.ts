// The architecture's lint rules (docs/ARCHITECTURE.md, "Modules and dependency direction"), one engine
// for `src/lint.test.ts` (every `npm test`) and `npm run lint` (this file as a script):
// - the seam: outside the runtime edge nothing touches real time, timers, randomness, files, sockets
//   or compression; the core gets them through the injected Runtime (CONVENTIONS.md 1);
// - the layers: every source file belongs to a layer, and imports only its own layer and the ones
//   its LAYERS entry names, so nothing imports upward or sideways;
// - outside the edge every dependency is a static import, which the layer rule can see.
// Test files (*.test.ts, *-test-suite.ts, *.test-support.ts) are exempt: tests run the real runtime.
//
// Sources are parsed with the TypeScript compiler rather than matched with regular expressions, so
// a comment or a string that mentions `Date.now()` is not a violation, a method named `setTimeout`
// on the Runtime is not a timer, and an import is seen whatever its quotes or line breaks.
import ts from 'typescript';
import { readdirSync, readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One broken rule at one place. `what` is stable (no line number), so KNOWN_PENDING can name it. */
export type Violation = { path: string; line: number; rule: RuleName; what: string };
type RuleName = 'runtime-edge' | 'dynamic-import' | 'layering' | 'no-layer' | 'stale-pending';

const ERRORS = 'src/errors.ts';
const RUNTIME = 'src/runtime/runtime.ts';
const MEMORY_STORAGE = 'src/runtime/memory-storage.ts';
const PROTOCOL = 'src/protocol/';
const CORE = 'src/core/';
const CONFIG = 'src/config/';
const CLIENT = 'src/client/';
const ADMIN = 'src/admin/';
const CONTROLLER = 'src/controller/';
const RUNTIME_NODE = 'src/runtime/node/';
const TOOLS = 'src/tools/';
const SIM = 'src/sim/';
const CLI = 'src/cli/';

/**
 * Layer (a folder ending in `/` or one file) → what else its files may import by relative path; a
 * layer may always import itself. A file belongs to the longest layer that is a prefix of its path.
 * In this order every layer imports only (some of) the layers before it, so nothing imports upward:
 * errors, runtime interface, {protocol, memory storage}, core, config, {client, admin, runtime/node,
 * tools}, {sim, cli}, {the package's entries, bench, bin}. Keep the table in docs/ARCHITECTURE.md in step.
 */
export const LAYERS: Readonly<Record<string, readonly string[]>> = {
  [ERRORS]: [],
  [RUNTIME]: [ERRORS],
  [PROTOCOL]: [ERRORS, RUNTIME],
  [MEMORY_STORAGE]: [ERRORS, RUNTIME],
  [CORE]: [ERRORS, RUNTIME, PROTOCOL],
  // The core's configuration types (gateway senders, regions), which the YAML loader fills in.
  [CONFIG]: [ERRORS, RUNTIME, PROTOCOL, 'src/core/config.ts'],
  // The client knows a Runtime, not which one: an application or the simulator passes it in.
  [CLIENT]: [ERRORS, RUNTIME, PROTOCOL, 'src/config/address.ts'],
  // ...except `connect()`, the one client module that brings the Node runtime for applications.
  'src/client/connect.ts': [CLIENT, ERRORS, RUNTIME, PROTOCOL, 'src/config/address.ts', 'src/runtime/node/client-runtime.ts'],
  // The control plane: topologies, plans and their journaled runs. It changes sites only through
  // the site configuration's values (what a change does), never a member's internals.
  [CONTROLLER]: [ERRORS, RUNTIME, PROTOCOL, 'src/core/site-config.ts', 'src/core/config.ts'],
  // The admin API sees a member only through the core's narrow MemberAdmin interface, and
  // serves the controller's REST API and dashboard.
  [ADMIN]: [ERRORS, RUNTIME, PROTOCOL, 'src/core/member-admin.ts', CONTROLLER],
  [RUNTIME_NODE]: [ERRORS, RUNTIME, MEMORY_STORAGE],
  [TOOLS]: [ERRORS, RUNTIME],
  [SIM]: [ERRORS, RUNTIME, MEMORY_STORAGE, PROTOCOL, CORE, CLIENT, CONTROLLER],
  [CLI]: [ERRORS, RUNTIME, MEMORY_STORAGE, PROTOCOL, CORE, CONFIG, CLIENT, ADMIN, RUNTIME_NODE, TOOLS, CONTROLLER],
  // The npm package's entries (package.json "exports"): each only says what is public. The
  // client's reaches no member code, so `import 'strait'` loads no member dependency.
  'src/package/client.ts': [ERRORS, RUNTIME, PROTOCOL, CLIENT],
  'src/package/member.ts': [ERRORS, RUNTIME, 'src/cli/member-api.ts'],
  'src/lint.ts': [],
  'bench/': ['src/'],
  'soak/': ['src/', 'bench/'],
  'bin/': ['src/cli/main.ts'],
};

/**
 * The runtime edge: the only places that may use real time, timers, randomness, files, sockets,
 * compression, I/O packages and dynamic `import()`. The simulator's driver is here because it
 * yields to the real event loop between simulated steps (`setImmediate` from node:timers/promises).
 */
export const EDGE: readonly string[] = [
  RUNTIME_NODE, CLI, ADMIN, TOOLS, 'src/sim/drive.ts', 'src/lint.ts', 'bench/', 'soak/', 'bin/',
];

/** Node built-ins that only compute; outside the edge a built-in import must be one of these. */
export const PURE_BUILTINS: ReadonlySet<string> = new Set([
  'assert', 'buffer', 'events', 'path', 'string_decoder', 'url', 'util',
]);

/** Packages that do I/O (disk, stdout, HTTP) or read process state; outside the edge, forbidden. */
export const IO_PACKAGES: ReadonlySet<string> = new Set(['lmdb', 'pino', 'pino-pretty', 'fastify', 'prom-client', 'pg']);

/**
 * Violations known and being fixed elsewhere, so `npm test` stays green meanwhile. Each entry must
 * still match a violation: when the code is fixed, the lint fails until the entry is removed.
 */
export const KNOWN_PENDING: readonly { path: string; what: string; why: string }[] = [
];

export const RULES: Readonly<Record<RuleName, string>> = {
  'runtime-edge': 'only the runtime edge touches real time, timers, randomness, files, sockets or compression; '
    + 'elsewhere they come from the injected Runtime',
  'dynamic-import': 'outside the runtime edge every dependency is a static import, visible to the layer rule',
  'layering': 'a layer imports only itself and the layers its LAYERS entry in src/lint.ts names',
  'no-layer': 'every source file belongs to a layer: add it to LAYERS in src/lint.ts and to docs/ARCHITECTURE.md',
  'stale-pending': 'this KNOWN_PENDING entry in src/lint.ts matches nothing any more: remove it',
};

const TIMERS = new Set(['setTimeout', 'setInterval', 'setImmediate']);

/** Whether a file is linted at all: sources under src/, bench/ and bin/, but not tests. */
export function isLinted(path: string): boolean {
  if (!/^(src|bench|soak|bin)\//.test(path) || !/\.(ts|js)$/.test(path)) return false;
  return !/(\.test\.ts|-test-suite\.ts|\.test-support\.ts)$/.test(path);
}

export function layerOf(path: string): string | undefined {
  let found: string | undefined;
  for (const layer of Object.keys(LAYERS)) {
    const contains = layer.endsWith('/') ? path.startsWith(layer) : path === layer;
    if (contains && (found === undefined || layer.length > found.length)) found = layer;
  }
  return found;
}

/** dist/ is src/ compiled (tsconfig.build.json): importing a file there depends on its source. */
function sourceOf(target: string): string {
  return /^dist\/.*\.js$/.test(target) ? `src/${target.slice('dist/'.length, -'.js'.length)}.ts` : target;
}

function isEdge(path: string): boolean {
  return EDGE.some((edge) => (edge.endsWith('/') ? path.startsWith(edge) : path === edge));
}

/** The rules applied to one source file; `path` is relative to the repository root, with `/`. */
export function lintSource(path: string, text: string): Violation[] {
  const violations: Violation[] = [];
  const edge = isEdge(path);
  const layer = layerOf(path);
  const kind = path.endsWith('.js') ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, kind);
  const report = (node: ts.Node, rule: RuleName, what: string): void => {
    const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
    violations.push({ path, line, rule, what });
  };
  if (layer === undefined) report(source, 'no-layer', 'is in no layer');

  const checkSpecifier = (node: ts.Node, specifier: string): void => {
    if (specifier.startsWith('.')) {
      if (layer === undefined) return;
      const target = sourceOf(posix.normalize(posix.join(posix.dirname(path), specifier)));
      const allowed = [layer, ...LAYERS[layer]!];
      if (!allowed.some((prefix) => (prefix.endsWith('/') ? target.startsWith(prefix) : target === prefix))) {
        report(node, 'layering', `imports ${target}`);
      }
    } else if (edge) {
      return;
    } else if (isBuiltin(specifier)) {
      const name = specifier.replace(/^node:/, '').split('/')[0]!;
      if (!PURE_BUILTINS.has(name)) report(node, 'runtime-edge', `imports ${specifier}`);
    } else {
      const name = specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');
      if (IO_PACKAGES.has(name)) report(node, 'runtime-edge', `imports ${specifier}`);
    }
  };

  const checkGlobal = (node: ts.Expression, name: string): void => {
    const parent = node.parent;
    const member = ts.isPropertyAccessExpression(parent) && parent.expression === node ? parent.name.text : undefined;
    const called = (ts.isCallExpression(parent) || ts.isNewExpression(parent)) && parent.expression === node;
    if (TIMERS.has(name)) report(node, 'runtime-edge', `uses ${name}, a real timer`);
    else if (name === 'Date' && member === 'now') report(node, 'runtime-edge', 'calls Date.now()');
    // Even with an argument: a Date's local-time methods depend on the machine's time zone.
    else if (name === 'Date' && called) report(node, 'runtime-edge', 'calls new Date()');
    else if (name === 'Math' && member === 'random') report(node, 'runtime-edge', 'calls Math.random()');
    else if (name === 'performance') {
      report(node, 'runtime-edge', `uses performance${member === undefined ? '' : `.${member}`}, the real clock`);
    }
    else if (name === 'process' && (member === 'nextTick' || member === 'hrtime')) {
      report(node, 'runtime-edge', `uses process.${member}`);
    } else if (name === 'crypto') report(node, 'runtime-edge', 'uses the global crypto, a real random source');
  };

  const visit = (node: ts.Node, inType: boolean): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined) {
      if (ts.isStringLiteral(node.moduleSpecifier)) checkSpecifier(node, node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const expression = node.moduleReference.expression;
      if (ts.isStringLiteral(expression)) checkSpecifier(node, expression.text);
    } else if (ts.isImportTypeNode(node)) {
      // `import('../runtime/runtime.ts').Stream` in a type: a dependency, but no run-time loading.
      const argument = node.argument;
      if (ts.isLiteralTypeNode(argument) && ts.isStringLiteral(argument.literal)) {
        checkSpecifier(node, argument.literal.text);
      }
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      if (!edge) report(node, 'dynamic-import', 'uses a dynamic import()');
      const specifier = node.arguments[0];
      if (specifier !== undefined && ts.isStringLiteralLike(specifier)) checkSpecifier(node, specifier.text);
    }
    const typePosition = inType || ts.isTypeNode(node);
    if (!edge && !typePosition) {
      if (ts.isIdentifier(node) && isValueReference(node)) checkGlobal(node, node.text);
      else if (ts.isPropertyAccessExpression(node) && isGlobalThis(node.expression)) checkGlobal(node, node.name.text);
    }
    ts.forEachChild(node, (child) => visit(child, typePosition));
  };
  visit(source, false);
  return violations;
}

/** Whether an identifier reads a variable, rather than naming a property, member or declaration. */
function isValueReference(identifier: ts.Identifier): boolean {
  const parent = identifier.parent;
  if (ts.isShorthandPropertyAssignment(parent)) return true; // `{ setTimeout }` reads the variable
  if (ts.isPropertyAccessExpression(parent)) return parent.expression === identifier;
  if (ts.isQualifiedName(parent) || ts.isLabeledStatement(parent) || ts.isBreakOrContinueStatement(parent)) {
    return false;
  }
  const named = parent as { name?: ts.Node; propertyName?: ts.Node };
  return named.name !== identifier && named.propertyName !== identifier;
}

function isGlobalThis(expression: ts.Expression): boolean {
  return ts.isIdentifier(expression) && expression.text === 'globalThis';
}

function sourceFiles(root: string, directory: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(join(root, directory), { withFileTypes: true })) {
    const path = posix.join(directory, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(root, path));
    else if (isLinted(path)) files.push(path);
  }
  return files;
}

/** Lints the tree: violations not known as pending, then the pending ones that were found. */
export function lintTree(root: string): { violations: Violation[]; pending: Violation[] } {
  const found: Violation[] = [];
  for (const top of ['src', 'bench', 'soak', 'bin']) {
    for (const path of sourceFiles(root, top)) found.push(...lintSource(path, readFileSync(join(root, path), 'utf8')));
  }
  const isPending = (violation: Violation): boolean =>
    KNOWN_PENDING.some((entry) => entry.path === violation.path && entry.what === violation.what);
  const violations = found.filter((violation) => !isPending(violation));
  for (const entry of KNOWN_PENDING) {
    if (!found.some((violation) => violation.path === entry.path && violation.what === entry.what)) {
      violations.push({ path: 'src/lint.ts', line: 1, rule: 'stale-pending', what: `${entry.path} ${entry.what}` });
    }
  }
  return { violations, pending: found.filter(isPending) };
}

export function formatViolation(violation: Violation): string {
  const layer = layerOf(violation.path);
  const why = violation.rule === 'layering' && layer !== undefined
    ? `${layer} may import only itself and ${LAYERS[layer]!.join(', ') || 'nothing else'}`
    : RULES[violation.rule];
  return `${violation.path}:${violation.line}: ${violation.what} (${violation.rule}: ${why})`;
}

// `npm run lint`: prints each violation as file:line and exits 1 if there is any.
if (import.meta.main) {
  const { violations, pending } = lintTree(fileURLToPath(new URL('..', import.meta.url)));
  for (const violation of pending) console.log(`${formatViolation(violation)} [known, pending]`);
  for (const violation of violations) console.log(formatViolation(violation));
  console.log(`${violations.length} violation(s), ${pending.length} known and pending`);
  process.exitCode = violations.length > 0 ? 1 : 0;
}
