// The image's entrypoint without the image: `strait run` with no argument and no flag, every role
// configured by environment variables alone (STRAIT_ROLE, STRAIT_NAME, STRAIT_DIR, STRAIT_PORT,
// ...), as a container runs it — started, checked by the image's health check
// (deploy/healthcheck.mjs) while starting and once ready, and stopped by SIGTERM, which must end
// each with a clean exit 0. Real processes on loopback, free ports, temporary directories.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPOSITORY } from './kubernetes-schema.test-support.ts';

const BIN = join(REPOSITORY, 'bin', 'strait.js');
const HEALTHCHECK = join(REPOSITORY, 'deploy', 'healthcheck.mjs');
/** Generous: a slow CI machine must not turn a working start into a failure. */
const READY_WAIT_MS = 60_000;
const EXIT_WAIT_MS = 30_000;

const root = mkdtempSync(join(tmpdir(), 'strait-entrypoint-test-'));
const running = new Set<ChildProcess>();

after(() => {
  for (const child of running) child.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

/** This process's environment without any STRAIT_* variable, so a developer's own can't leak in. */
function baseEnvironment(): Record<string, string> {
  return Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => !entry[0].startsWith('STRAIT_') && entry[1] !== undefined));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

interface Member {
  readonly child: ChildProcess;
  readonly environment: Record<string, string>;
  readonly dir: string;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `node bin/strait.js run` — no role, no flag — with this environment. */
function runStrait(variables: Record<string, string>): Member {
  const environment = { ...baseEnvironment(), ...variables };
  const child = spawn(process.execPath, [BIN, 'run'], { env: environment, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => {
    running.delete(child);
    resolve({ code, signal });
  }));
  return { child, environment, dir: variables['STRAIT_DIR'] ?? '.', output: () => output, exited };
}

interface MemberRecord {
  role: string;
  name: string;
  pid: number;
  state: string;
  site?: number;
  address?: { host: string; port: number };
  httpAddress?: { host: string; port: number };
}

function record(member: Member): MemberRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(member.dir, 'member.json'), 'utf8')) as MemberRecord;
  } catch {
    return undefined;
  }
}

async function until<T>(what: string, member: Member, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + READY_WAIT_MS;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (member.child.exitCode !== null || member.child.signalCode !== null) assert.fail(`${what}: the process exited (${member.child.exitCode ?? member.child.signalCode}):\n${member.output()}`);
    if (Date.now() > deadline) assert.fail(`${what}: not within ${READY_WAIT_MS} ms:\n${member.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits for this process's member.json to say ready. */
function ready(member: Member): Promise<MemberRecord> {
  return until(`${member.environment['STRAIT_NAME']} ready`, member, () => {
    const current = record(member);
    return current?.pid === member.child.pid && current?.state === 'ready' ? current : undefined;
  });
}

/** Runs the image's health check with the member's environment: its exit status and line. */
function healthcheck(member: Member, ...args: string[]): Promise<{ code: number; line: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [HEALTHCHECK, ...args], { env: member.environment, timeout: 20_000 }, (error, stdout) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, line: stdout.trim() });
    });
  });
}

async function health(port: number): Promise<{ status: number; body: { state?: string; status?: string } } | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
    return { status: response.status, body: (await response.json()) as { state?: string } };
  } catch {
    return undefined;
  }
}

/** SIGTERM, then the exit: 0 after a clean leave, member.json `stopped`, the pid file gone. */
async function stopCleanly(member: Member, role: string): Promise<void> {
  member.child.kill('SIGTERM');
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), EXIT_WAIT_MS).unref());
  const exit = await Promise.race([member.exited, timeout]);
  assert.notEqual(exit, 'timeout', `${role} did not exit within ${EXIT_WAIT_MS} ms of SIGTERM:\n${member.output()}`);
  assert.deepEqual(exit, { code: 0, signal: null }, `${role} exit:\n${member.output()}`);
  assert.equal(record(member)?.state, 'stopped', `${role}: member.json after the stop`);
  assert.ok(!existsSync(join(member.dir, `${role}.pid`)), `${role}: its pid file is removed`);
}

describe('strait run, configured by environment variables alone (the container entrypoint)', () => {
  it('runs a locator, a server, a router and a controller, ready by the health check, each stopped cleanly by SIGTERM', async () => {
    const [locatorPort, locatorHttp, serverPort, serverHttp, routerPort, controllerPort] = await Promise.all([1, 2, 3, 4, 5, 6].map(() => freePort()));
    const common = { STRAIT_BIND_ADDRESS: '127.0.0.1', STRAIT_LOG_FORMAT: 'json', STRAIT_LOG_LEVEL: 'info' };

    // The server first: its locator is not there yet, so it stays starting — its /health answers
    // 200 all the same, and the health check must still say "not ready".
    const serverDir = join(root, 'server');
    const serverYaml = join(root, 'server.yaml');
    writeFileSync(serverYaml, 'regions:\n  ENTRYPOINT: { type: replicate }\nmember-timeout: ${MEMBER_TIMEOUT_MS:4000}\n');
    const server = runStrait({
      ...common,
      STRAIT_ROLE: 'server',
      STRAIT_NAME: 'env-server',
      STRAIT_DIR: serverDir,
      STRAIT_CONFIG: serverYaml,
      STRAIT_LOCATORS: `127.0.0.1[${locatorPort}]`,
      STRAIT_SERVER_PORT: String(serverPort),
      STRAIT_HTTP_PORT: String(serverHttp),
    });
    const starting = await until('the server\'s admin API answers', server, () => health(serverHttp!));
    assert.equal(starting.status, 200);
    assert.notEqual(starting.body.state, 'ready');
    const notReady = await healthcheck(server);
    assert.equal(notReady.code, 1, notReady.line);
    assert.match(notReady.line, /^not ready: server at .* is (starting|joining|initializing)$/);
    assert.equal((await healthcheck(server, '--live')).code, 0, 'alive while starting');

    const locator = runStrait({
      ...common,
      STRAIT_ROLE: 'locator',
      STRAIT_NAME: 'env-locator',
      STRAIT_DIR: join(root, 'locator'),
      STRAIT_SITE_ID: '7',
      STRAIT_PORT: String(locatorPort),
      STRAIT_HTTP_PORT: String(locatorHttp),
    });
    const locatorRecord = await ready(locator);
    assert.deepEqual([locatorRecord.role, locatorRecord.name, locatorRecord.site], ['locator', 'env-locator', 7]);
    assert.equal(locatorRecord.address?.port, locatorPort);
    assert.equal(locatorRecord.httpAddress?.port, locatorHttp);
    const serverRecord = await ready(server);
    assert.deepEqual([serverRecord.role, serverRecord.name, serverRecord.site], ['server', 'env-server', 7], 'the server joined the locator\'s site');
    assert.equal(serverRecord.address?.port, serverPort);
    for (const member of [locator, server]) {
      const check = await healthcheck(member);
      assert.equal(check.code, 0, check.line);
      assert.match(check.line, /^ready: (locator|server) at http:\/\/127\.0\.0\.1:\d+\/health is ready$/);
    }

    const router = runStrait({
      ...common,
      STRAIT_ROLE: 'router',
      STRAIT_NAME: 'env-router',
      STRAIT_DIR: join(root, 'router'),
      STRAIT_PORT: String(routerPort),
      STRAIT_ROUTER_SECRET: 'entrypoint-test-secret-0123456789',
    });
    const routerRecord = await ready(router);
    assert.equal(routerRecord.address?.port, routerPort);
    assert.equal((await healthcheck(router)).code, 0);

    const controller = runStrait({
      ...common,
      STRAIT_ROLE: 'controller',
      STRAIT_NAME: 'env-controller',
      STRAIT_DIR: join(root, 'controller'),
      STRAIT_PORT: String(controllerPort),
    });
    const controllerRecord = await ready(controller);
    assert.equal(controllerRecord.address?.port, controllerPort);
    assert.equal((await health(controllerPort!))?.status, 200);
    assert.equal((await healthcheck(controller)).code, 0);

    await stopCleanly(server, 'server');
    await stopCleanly(locator, 'locator');
    await stopCleanly(router, 'router');
    await stopCleanly(controller, 'controller');
    const stopped = await healthcheck(locator);
    assert.equal(stopped.code, 1, 'not ready once stopped');
    assert.match(stopped.line, /^not ready: GET http:\/\/127\.0\.0\.1:\d+\/health failed/);
  });

  it('refuses a bad or missing variable with a coded error naming it', async () => {
    const cases: { variables: Record<string, string>; status: number; error: RegExp }[] = [
      { variables: {}, status: 2, error: /^error STRAIT_USAGE: run needs a role: .*STRAIT_ROLE/m },
      { variables: { STRAIT_ROLE: 'gateway' }, status: 2, error: /^error STRAIT_CONFIG_INVALID: environment: STRAIT_ROLE: /m },
      {
        // What Kubernetes sets for a Service named `strait` when service links are on.
        variables: { STRAIT_ROLE: 'locator', STRAIT_NAME: 'bad-port', STRAIT_PORT: 'tcp://10.0.0.1:10334' },
        status: 2,
        error: /^error STRAIT_CONFIG_INVALID: environment: STRAIT_PORT: .*enableServiceLinks: false/m,
      },
      { variables: { STRAIT_ROLE: 'router', STRAIT_NAME: 'r', STRAIT_HTTP_PORT: '7070', STRAIT_ROUTER_SECRET: 'x'.repeat(16) }, status: 2, error: /^error STRAIT_CONFIG_INVALID: environment: STRAIT_HTTP_PORT: applies to /m },
      { variables: { STRAIT_ROLE: 'server', STRAIT_NAME: 's', STRAIT_CONFIG: join(root, 'missing.yaml') }, status: 2, error: /^error STRAIT_CONFIG_INVALID: environment: STRAIT_CONFIG: .* does not exist/m },
    ];
    for (const { variables, status, error } of cases) {
      const member = runStrait({ STRAIT_DIR: join(root, 'refused'), ...variables });
      const exit = await member.exited;
      assert.equal(exit.code, status, `${JSON.stringify(variables)}:\n${member.output()}`);
      assert.match(member.output(), error);
    }
  });
});
