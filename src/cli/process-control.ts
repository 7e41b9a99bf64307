// `strait start` and `strait stop`: run a member in the background and stop it again, with the
// pid file and member.json in the member's directory as the only shared state.

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { StraitError, errorFromWire } from '../errors.ts';
import type { MemberConfig, MemberRole } from '../config/member-config.ts';
import {
  isStraitProcessAlive,
  logFilePath,
  memberFilePath,
  pidFilePath,
  readMemberRecord,
  readPid,
  tailOfFile,
  writePid,
  type ListeningMemberRecord,
  type MemberRecord,
} from './member-files.ts';

const BIN_PATH = fileURLToPath(new URL('../../bin/strait.js', import.meta.url));
/** How often start and stop look at the member's files and process. */
const POLL_INTERVAL_MS = 100;
export const START_TIMEOUT_MS_DEFAULT = 60_000;
export const STOP_TIMEOUT_MS_DEFAULT = 30_000;
/** Lines of the member's log printed when it failed to start. */
export const LOG_TAIL_LINES = 20;

export interface StartRequest {
  readonly role: MemberRole;
  readonly dir: string;
  readonly config: MemberConfig;
  /** Arguments for `strait run <role>` (flags in their command-line spelling). */
  readonly runArguments: readonly string[];
  readonly timeoutMs: number;
}

export type StartOutcome =
  | { readonly ok: true; readonly record: ListeningMemberRecord; readonly logFile: string }
  | { readonly ok: false; readonly error: StraitError; readonly logFile: string; readonly logTail: string };

/** Refuses when the pid file names a live Strait process; removes a stale one. */
export function checkNotRunning(dir: string, role: MemberRole): void {
  const pidFile = pidFilePath(dir, role);
  const pid = readPid(pidFile);
  if (pid === undefined) return;
  if (isStraitProcessAlive(pid)) throw new StraitError('STRAIT_ALREADY_RUNNING', { dir, pid });
  rmSync(pidFile, { force: true });
}

/**
 * Starts `strait run <role>` detached, its output appended to `<dir>/<name>.log`, and waits
 * until it reports ready or failed in member.json, exits, or the timeout passes (then it is
 * stopped so that a failed start leaves nothing running).
 */
export async function startInBackground(request: StartRequest): Promise<StartOutcome> {
  const { dir, role, config } = request;
  mkdirSync(dir, { recursive: true });
  checkNotRunning(dir, role);
  // A member.json from an earlier run would be mistaken for this one's report.
  rmSync(memberFilePath(dir), { force: true });

  const logFile = logFilePath(dir, config.name);
  const logDescriptor = openSync(logFile, 'a');
  let exitCode: number | null | undefined;
  let exitSignal: NodeJS.Signals | null = null;
  let spawnError: Error | undefined;
  const child = spawn(process.execPath, [BIN_PATH, 'run', role, ...request.runArguments], {
    cwd: dir,
    detached: true,
    stdio: ['ignore', logDescriptor, logDescriptor],
    env: process.env,
  });
  closeSync(logDescriptor);
  child.on('error', (error) => {
    spawnError = error;
  });
  child.on('exit', (code, signal) => {
    exitCode = code;
    exitSignal = signal;
  });
  const pid = child.pid;
  const failure = (error: StraitError): StartOutcome => ({ ok: false, error, logFile, logTail: tailOfFile(logFile, LOG_TAIL_LINES) });
  if (pid === undefined) {
    return failure(new StraitError('STRAIT_START_FAILED', { member: config.name, reason: `could not run ${process.execPath}: ${spawnError?.message ?? 'unknown'}` }));
  }
  writePid(pidFilePath(dir, role), pid);
  child.unref();

  const deadline = performance.now() + request.timeoutMs;
  for (;;) {
    const record = readMemberRecord(dir);
    if (record !== undefined && record.pid === pid) {
      if (record.state === 'ready') return { ok: true, record, logFile };
      if (record.state === 'failed') {
        // The member's own code and message, so the CLI exits the way the member reported.
        return failure(errorFromWire({ code: record.error.code, message: record.error.message, retryable: false }));
      }
    }
    if (exitCode !== undefined) {
      const how = exitSignal === null ? `exited with status ${exitCode}` : `was killed by ${exitSignal}`;
      return failure(new StraitError('STRAIT_START_FAILED', { member: config.name, reason: `the process ${how} before it was ready; see ${logFile}` }));
    }
    if (performance.now() >= deadline) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      return failure(
        new StraitError('STRAIT_START_FAILED', {
          member: config.name,
          reason: `not ready after ${Math.round(request.timeoutMs / 1000)} s (pid ${pid} was stopped); see ${logFile}`,
        }),
      );
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

export interface StopOutcome {
  readonly pid: number;
  readonly name: string | undefined;
  readonly killed: boolean;
}

/**
 * Sends SIGTERM to the member named by `<dir>/<role>.pid` (a clean leave) and waits until the
 * process is gone. After the timeout it sends SIGKILL when `force` is set, else fails.
 */
export async function stopMember(dir: string, role: MemberRole, timeoutMs: number, force: boolean): Promise<StopOutcome> {
  const pidFile = pidFilePath(dir, role);
  const pid = readPid(pidFile);
  if (pid === undefined) throw new StraitError('STRAIT_NOT_RUNNING', { dir, reason: `no ${role} pid file (${pidFile})` });
  const name = readMemberRecord(dir)?.name;
  if (!isStraitProcessAlive(pid)) {
    rmSync(pidFile, { force: true });
    throw new StraitError('STRAIT_NOT_RUNNING', { dir, reason: `the ${role} with pid ${pid} is not running (removed the stale pid file)` });
  }
  process.kill(pid, 'SIGTERM');
  const deadline = performance.now() + timeoutMs;
  while (isStraitProcessAlive(pid)) {
    if (performance.now() >= deadline) {
      if (!force) throw new StraitError('STRAIT_TIMEOUT', { operation: `stopping the ${role} with pid ${pid} (use --force to kill it)`, timeoutMs });
      process.kill(pid, 'SIGKILL');
      while (isStraitProcessAlive(pid)) await sleep(POLL_INTERVAL_MS);
      rmSync(pidFile, { force: true });
      return { pid, name, killed: true };
    }
    await sleep(POLL_INTERVAL_MS);
  }
  rmSync(pidFile, { force: true });
  return { pid, name, killed: false };
}
