// Test support for the tests that drive the real `strait` command as a user would: running it,
// member directories in one temporary workspace per test file, and killing by pid whatever a
// test left running. Test code: it may use real time, processes and files.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { createServer, type Server as NetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/strait.js', import.meta.url));
/** Generous: a slow CI machine must not turn a working start into a failure. */
export const COMMAND_TIMEOUT_MS = 90_000;

export interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Exit code reported for a command killed at its timeout (or by a signal). */
export const KILLED = -1;

export function strait(args: readonly string[], env: NodeJS.ProcessEnv = {}, timeoutMs = COMMAND_TIMEOUT_MS): Promise<Result> {
  return new Promise((resolve) => {
    const options = { timeout: timeoutMs, killSignal: 'SIGKILL' as const, env: { ...process.env, ...env } };
    execFile(process.execPath, [BIN, ...args], options, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : KILLED;
      resolve({ code, stdout, stderr });
    });
  });
}

export const root = mkdtempSync(join(tmpdir(), 'strait-cli-test-'));
/** Member directories whose pid files `after` checks. */
export const memberDirs: string[] = [];

export function memberDir(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  memberDirs.push(dir);
  return dir;
}

/** SIGKILLs the member named by each pid file left in the member directories (of one suite: `prefix`). */
export function killLeftovers(prefix = ''): void {
  for (const dir of memberDirs.filter((candidate) => candidate.startsWith(join(root, prefix)))) {
    for (const role of ['locator', 'server', 'controller', 'router']) {
      const pidFile = join(dir, `${role}.pid`);
      if (!existsSync(pidFile)) continue;
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 0) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}

/** Kills every member left and removes the workspace (a test file's `after`). */
export function cleanupWorkspace(): void {
  killLeftovers();
  rmSync(root, { recursive: true, force: true });
}

export function assertOk(result: Result, what: string): void {
  assert.equal(result.code, 0, `${what} failed (${result.code}):\n${result.stdout}\n${result.stderr}`);
}

export interface Started {
  readonly address: { host: string; port: number };
  readonly httpAddress: { host: string; port: number };
  readonly pid: number;
  readonly site: number;
}

export async function start(role: 'locator' | 'server' | 'controller', name: string, args: readonly string[]): Promise<Started> {
  const dir = memberDir(name);
  const result = await strait(['start', role, '--name', name, '--dir', dir, '--bind-address', '127.0.0.1', '--json', ...args]);
  assertOk(result, `start ${role} ${name}`);
  return JSON.parse(result.stdout) as Started;
}

/** A port nothing listens on right now (another process may still take it first). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe: NetServer = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const port = (probe.address() as AddressInfo).port;
      probe.close(() => resolve(port));
    });
  });
}

/** Polls `strait get` until it finds the key; the value, or undefined after `timeoutMs`. */
export async function eventuallyGet(locator: string, key: string, timeoutMs: number, region = 'TEST'): Promise<string | undefined> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const got = await strait(['get', '--locator', locator, '--region', region, '--key', key]);
    if (got.code === 0) return got.stdout.trimEnd();
    if (performance.now() > deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Polls `check` every 250 ms until it holds; throws naming `what` after `waitMs`. Nothing asserts on timing. */
export async function until(what: string, check: () => Promise<boolean>, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${what}: not within ${waitMs} ms`);
}
