// The published package, as someone else's project gets it: `npm pack` (its prepack builds dist/),
// installed from the tarball into fresh temporary projects, once with every dependency and once
// client-only (`--omit=optional`). From there, plain JavaScript and type-checked TypeScript start
// an embedded locator and server (`strait/member`), connect a client (`strait`) and write and
// read; the installed `strait` command answers; and the client's import graph reaches no member
// dependency (docs/CLIENT.md, docs/DEPENDENCIES.md). The installed package runs on the repository's
// Node 24, as its engines field requires. Everything lives in one temporary directory, removed at
// the end; every process started is stopped by its pid.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const BIN_DIR = join(REPO, 'node_modules', '.bin');
/** Node 24, the repository's dev dependency: the system node may be older than engines allows. */
const NODE = join(BIN_DIR, 'node');
const TSC = join(BIN_DIR, 'tsc');

const PACK_TIMEOUT_MS = 120_000;
const INSTALL_TIMEOUT_MS = 120_000;
const SCRIPT_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;

/** What a member needs and the client must never load. */
const MEMBER_PACKAGES = [
  'lmdb', 'fastify', '@fastify/swagger', 'pino', 'pino-pretty', 'pg', 'prom-client', 'cytoscape', 'commander', 'yaml',
];
/** What the client may load: its two dependencies, and msgpackr's own optional native accelerator. */
const CLIENT_PACKAGES = new Set([
  'msgpackr', '@sinclair/typebox',
  'msgpackr-extract', 'node-gyp-build-optional-packages', 'detect-libc', '@msgpackr-extract/msgpackr-extract-linux-x64',
]);

/**
 * The environment of every child: Node 24 first on PATH (npm and the `strait` shebang use it), and
 * none of the npm_* variables of an enclosing `npm test`, which would point a nested npm at this
 * repository.
 */
function childEnvironment(): NodeJS.ProcessEnv {
  const environment: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.toLowerCase().startsWith('npm_') && name !== 'INIT_CWD') environment[name] = value;
  }
  return { ...environment, PATH: `${BIN_DIR}:${process.env['PATH'] ?? ''}`, CI: 'true', NO_COLOR: '1' };
}

interface Finished {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const children = new Set<ChildProcess>();

/** Runs a command to its end, no stdin; kills it (by its pid) past `timeoutMs`. */
function run(command: string, args: readonly string[], cwd: string, timeoutMs: number): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: childEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} took longer than ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ status, stdout, stderr });
    });
  });
}

/** Runs a command that must succeed; fails with its output otherwise. */
async function succeed(command: string, args: readonly string[], cwd: string, timeoutMs = SCRIPT_TIMEOUT_MS): Promise<string> {
  const finished = await run(command, args, cwd, timeoutMs);
  assert.equal(finished.status, 0, `${command} ${args.join(' ')} in ${cwd} exited ${finished.status}\n${finished.stdout}\n${finished.stderr}`);
  return finished.stdout;
}

/** The last line of a script's output, which the fixtures print as JSON. */
function lastJsonLine(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] ?? 'null') as Record<string, unknown>;
}

interface PackedFile {
  readonly path: string;
  readonly size: number;
}

interface Packed {
  readonly filename: string;
  readonly size: number;
  readonly unpackedSize: number;
  readonly files: readonly PackedFile[];
}

/** A fresh project that installed the tarball, with the fixtures copied in. */
function createProject(root: string, name: string): string {
  const project = join(root, name);
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), `${JSON.stringify({
    name: `strait-package-test-${name}`,
    private: true,
    type: 'module',
    // The prebuilt-binary selectors of lmdb and msgpackr, as the repository approves them.
    allowScripts: { lmdb: true, 'msgpackr-extract': true },
  }, null, 2)}\n`);
  for (const fixture of readdirSync(FIXTURES)) copyFileSync(join(FIXTURES, fixture), join(project, fixture));
  return project;
}

/** A tsconfig of a consumer: strict, Node's ESM resolution, and every .d.ts checked (no skipLibCheck). */
function writeConsumerTsconfig(project: string, files: readonly string[]): void {
  writeFileSync(join(project, 'tsconfig.json'), `${JSON.stringify({
    compilerOptions: {
      target: 'es2024',
      module: 'nodenext',
      moduleResolution: 'nodenext',
      lib: ['es2024'],
      types: ['node'],
      // A TypeScript user of a Node library has @types/node; here it is the repository's.
      typeRoots: [join(REPO, 'node_modules', '@types')],
      strict: true,
      exactOptionalPropertyTypes: true,
      noUncheckedIndexedAccess: true,
      verbatimModuleSyntax: true,
      erasableSyntaxOnly: true,
      skipLibCheck: false,
      noEmit: true,
    },
    files,
  }, null, 2)}\n`);
}

/** Packages at the top of a node_modules (scoped ones counted one by one). */
function topPackages(nodeModules: string): number {
  return readdirSync(nodeModules).filter((name) => !name.startsWith('.'))
    .reduce((count, name) => count + (name.startsWith('@') ? readdirSync(join(nodeModules, name)).length : 1), 0);
}

/** Bytes of the files in a directory tree (links not followed). */
function treeBytes(path: string): number {
  let total = 0;
  for (const entry of readdirSync(path, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name)).size;
  }
  return total;
}

describe('the strait package, packed and installed in a fresh project', { timeout: 240_000 }, () => {
  let root = '';
  let packed: Packed;
  let full = '';
  let clientOnly = '';

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'strait-package-'));
    const packOutput = await succeed('npm', ['pack', '--json', '--pack-destination', root], REPO, PACK_TIMEOUT_MS);
    // prepack's build prints its own lines first; npm's JSON report comes last.
    const report = JSON.parse(packOutput.slice(packOutput.lastIndexOf('\n[') + 1)) as Packed[];
    packed = report[0]!;
    const tarball = join(root, packed.filename);
    assert.ok(existsSync(tarball), `${tarball} was written`);
    full = createProject(root, 'full');
    clientOnly = createProject(root, 'client-only');
    const install = ['install', '--prefer-offline', '--no-audit', '--no-fund'];
    await Promise.all([
      succeed('npm', [...install, tarball], full, INSTALL_TIMEOUT_MS),
      succeed('npm', [...install, '--omit=optional', tarball], clientOnly, INSTALL_TIMEOUT_MS),
    ]);
    const measure = (project: string): string => {
      const nodeModules = join(project, 'node_modules');
      return `${topPackages(nodeModules)} packages, ${treeBytes(nodeModules)} bytes`;
    };
    console.log(`# tarball ${packed.size} bytes (${packed.files.length} files, ${packed.unpackedSize} unpacked); `
      + `node_modules: full ${measure(full)}, client-only ${measure(clientOnly)}`);
  });

  after(() => {
    for (const child of children) if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('holds the build, the command, README and LICENSE: no tests, no sources, no simulator', () => {
    const paths = packed.files.map((file) => file.path);
    for (const expected of [
      'package.json', 'README.md', 'LICENSE', 'bin/strait.js',
      'dist/package/client.js', 'dist/package/client.d.ts', 'dist/package/member.js', 'dist/package/member.d.ts',
      'dist/cli/main.js', 'dist/cli/embedded-member.js',
    ]) assert.ok(paths.includes(expected), `${expected} is packed`);
    const unexpected = paths.filter((path) => !/^(dist\/|bin\/|package\.json$|README\.md$|LICENSE$)/.test(path)
      || /\.test\.|test-support|test-suite|^dist\/sim\/|^dist\/lint\./.test(path)
      || (path.endsWith('.ts') && !path.endsWith('.d.ts')));
    assert.deepEqual(unexpected, []);
  });

  it('runs plain JavaScript: an embedded locator and server, a client, a region, put, get, subscribe', async () => {
    const result = lastJsonLine(await succeed(NODE, ['embedded-site.mjs'], full));
    assert.deepEqual(result['order'], { item: 'tea', quantity: 2 });
    assert.deepEqual(result['change'], { kind: 'change', key: 'order-1', value: { item: 'tea', quantity: 2 } });
    // The loader of strait.yaml validated the object: the same coded error, with its did-you-mean.
    assert.equal(result['configError'], 'STRAIT_CONFIG_UNKNOWN_KEY');
    assert.equal(result['site'], 1);
    for (const port of ['locatorPort', 'serverPort', 'httpPort']) assert.ok(Number(result[port]) > 0, `${port} was bound`);
  });

  it('type-checks TypeScript against the package\'s declarations, then runs it', async () => {
    writeConsumerTsconfig(full, ['typed-app.ts']);
    await succeed(TSC, ['-p', 'tsconfig.json'], full);
    const result = lastJsonLine(await succeed(NODE, ['typed-app.ts'], full));
    assert.deepEqual(result, {
      alice: { user: 'alice', hits: 3 },
      size: 1,
      missingCode: 'STRAIT_REGION_NOT_FOUND',
      misspeltCode: 'STRAIT_CONFIG_UNKNOWN_KEY',
    });
  });

  it('installs the strait command, which answers --version and --help', async () => {
    const strait = join(full, 'node_modules', '.bin', 'strait');
    assert.equal((await succeed(strait, ['--version'], full)).trim(), '0.1.0');
    const help = await succeed(strait, ['--help'], full);
    assert.match(help, /Usage: strait/);
    assert.match(help, /\bdemo\b/);
  });

  it('loads only msgpackr and @sinclair/typebox for the client, with every member dependency installed', async () => {
    for (const name of MEMBER_PACKAGES) assert.ok(existsSync(join(full, 'node_modules', name)), `${name} is installed`);
    const client = lastJsonLine(await succeed(NODE, ['loaded-packages.mjs', 'strait'], full));
    const packages = (client['packages'] as string[]).filter((name) => name !== 'strait');
    assert.deepEqual(packages.filter((name) => !CLIENT_PACKAGES.has(name)), [], `the client loaded ${packages.join(', ')}`);
    assert.ok(packages.includes('msgpackr') && packages.includes('@sinclair/typebox'), packages.join(', '));
    assert.ok((client['exports'] as string[]).includes('connect'));
    // The member entry does bring the member's packages: the check above can see them.
    const member = lastJsonLine(await succeed(NODE, ['loaded-packages.mjs', 'strait/member'], full));
    for (const name of ['lmdb', 'fastify', 'pino']) assert.ok((member['packages'] as string[]).includes(name), `strait/member loads ${name}`);
  });

  it('installs client-only with --omit=optional, and that client talks to an embedded site', async () => {
    const installed = readdirSync(join(clientOnly, 'node_modules')).filter((name) => !name.startsWith('.'));
    assert.deepEqual(installed.sort(), ['@sinclair', 'msgpackr', 'strait'],
      'every client installs what dependencies names: a package only members or the CLI use belongs in optionalDependencies (docs/DEPENDENCIES.md)');
    const loaded = lastJsonLine(await succeed(NODE, ['loaded-packages.mjs', 'strait'], clientOnly));
    assert.deepEqual((loaded['packages'] as string[]).filter((name) => name !== 'strait'), ['@sinclair/typebox', 'msgpackr']);

    // The client's declarations need no member package's types either.
    writeFileSync(join(clientOnly, 'typed-client.ts'), [
      "import { connect, StraitError, type StraitClient } from 'strait';",
      'export async function open(locators: string): Promise<StraitClient> {',
      "  try { return await connect({ locators, connectTimeoutMs: 1000 }); } catch (error) { throw error instanceof StraitError ? new Error(error.code) : error; }",
      '}',
      '',
    ].join('\n'));
    writeConsumerTsconfig(clientOnly, ['typed-client.ts']);
    await succeed(TSC, ['-p', 'tsconfig.json'], clientOnly);

    // The command says what is missing instead of a stack trace.
    const command = await run(join(clientOnly, 'node_modules', '.bin', 'strait'), ['--version'], clientOnly, SCRIPT_TIMEOUT_MS);
    assert.equal(command.status, 1, command.stderr);
    assert.match(command.stderr, /optional/);

    const site = spawn(NODE, ['serve-site.mjs'], { cwd: full, env: childEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(site);
    let siteOutput = '';
    let siteErrors = '';
    site.stderr.setEncoding('utf8').on('data', (chunk: string) => (siteErrors += chunk));
    const exited = new Promise<number | null>((resolve) => site.on('close', (status) => resolve(status)));
    try {
      const locator = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the site did not start in ${SCRIPT_TIMEOUT_MS} ms: ${siteErrors}`)), SCRIPT_TIMEOUT_MS);
        site.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          siteOutput += chunk;
          const line = siteOutput.split('\n').find((candidate) => candidate.startsWith('{"locator"'));
          if (line === undefined) return;
          clearTimeout(timer);
          resolve((JSON.parse(line) as { locator: string }).locator);
        });
        void exited.then((status) => reject(new Error(`the site exited ${status}: ${siteErrors}`)));
      });
      const result = lastJsonLine(await succeed(NODE, ['client-only.mjs', locator], clientOnly));
      assert.deepEqual(result, { value: { ok: true }, member: 'ERR_MODULE_NOT_FOUND' });
    } finally {
      if (site.pid !== undefined && site.exitCode === null) process.kill(site.pid, 'SIGTERM');
      const stopped = await Promise.race([exited, new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), STOP_TIMEOUT_MS).unref())]);
      if (stopped === 'late' && site.pid !== undefined) process.kill(site.pid, 'SIGKILL');
      children.delete(site);
      assert.equal(stopped, 0, `the site stopped cleanly on SIGTERM: ${siteErrors}`);
      assert.match(siteOutput, /"stopped":true/);
    }
  });
});
