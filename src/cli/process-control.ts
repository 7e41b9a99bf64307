// `strait start` and `strait stop`: run a member in the background and stop it again, with the
// pid file and member.json in the member's directory as the only shared state.

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { StraitError, errorFromWire } from '../errors.ts';
import type { MemberConfig, MemberRole } from '../config/member-config.ts';
import { formatAddress } from '../runtime/runtime.ts';
import {
  isStraitProcessAlive,
  pidFileHolder,
  logFilePath,
  memberFilePath,
  pidFilePath,
  readMemberRecord,
  readPid,
  writePid,
  type ListeningMemberRecord,
  type MemberRecord,
} from './member-files.ts';
import { latestLoggedProblem } from './member-log.ts';

const BIN_PATH = fileURLToPath(new URL('../../bin/strait.js', import.meta.url));
/**
 * How a started member's Node runs. V8's default young generation (semi-spaces of 16 MiB and
 * more) keeps a busy server's heap far above what it holds live: with 8 MiB semi-spaces a 1M-event
 * backlog grew a server's anonymous memory by 206 MiB instead of 394 (docs/BENCHMARKS.md).
 * Left out when the operator's NODE_OPTIONS sets the same flag (the command line would win).
 */
export const MEMBER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];

/**
 * The Node flags of a started member: MEMBER_NODE_FLAGS, and --max-old-space-size from
 * `maximum-heap-memory`. V8 sizes its heap behaviour from its limit: with Node's default here
 * (about 4 GiB on 24 GiB) a server held 190 MiB more anonymous memory over the same backlog than
 * with 512 (docs/BENCHMARKS.md), garbage and pooled pages it had no reason to give back.
 */
export function memberNodeFlags(environment: NodeJS.ProcessEnv, maximumHeapMegabytes: number | undefined): string[] {
  const operator = environment.NODE_OPTIONS ?? '';
  const flags = maximumHeapMegabytes === undefined ? [...MEMBER_NODE_FLAGS] : [...MEMBER_NODE_FLAGS, `--max-old-space-size=${maximumHeapMegabytes}`];
  return flags.filter((flag) => !operator.includes(flag.split('=')[0]!));
}
/**
 * The environment a started member gets, below the operator's own: at most two glibc malloc
 * arenas, so memory freed on one thread (LMDB's writer) is reused rather than kept per thread
 * (181 MiB instead of 206 over the same backlog). An operator's MALLOC_ARENA_MAX wins.
 */
export const MEMBER_ENVIRONMENT: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };
/** How often start and stop look at the member's files and process. */
const POLL_INTERVAL_MS = 100;
export const START_TIMEOUT_MS_DEFAULT = 60_000;
export const STOP_TIMEOUT_MS_DEFAULT = 30_000;
/** While a member is not ready, `start` says why this often. */
export const START_PROGRESS_INTERVAL_MS = 5000;

export interface StartRequest {
  readonly role: MemberRole;
  readonly dir: string;
  readonly config: MemberConfig;
  /** Arguments for `strait run <role>` (flags in their command-line spelling). */
  readonly runArguments: readonly string[];
  readonly timeoutMs: number;
  /**
   * Environment variables the member must not inherit: those `run` would read as flags, already
   * resolved into runArguments, so the member runs the configuration that was checked here.
   */
  readonly withheldEnvironment?: readonly string[];
}

export type StartOutcome =
  | { readonly ok: true; readonly record: ListeningMemberRecord; readonly logFile: string }
  | {
      readonly ok: false;
      /** What went wrong, with the last problem the member logged when it did not say itself. */
      readonly error: StraitError;
      /** What the operator can do about it, when there is more to say than the error does. */
      readonly nextStep: string | undefined;
      readonly logFile: string;
    };

/** Receives one line, in words, each time `start` reports on a member that is not ready yet. */
export type StartProgress = (line: string) => void;

/** "s1: still starting after 5 s — no locator answered at ...": said while waiting. */
export function progressLine(name: string, elapsedMs: number, problem: string | undefined): string {
  const waited = `${name}: still starting after ${Math.round(elapsedMs / 1000)} s`;
  return problem === undefined ? `${waited}; it has logged no problem` : `${waited} — ${problem}`;
}

/**
 * What to do about a member that was not ready in time. A server waits for its locators (to
 * join the site), so a problem naming locators, or none at all, points there.
 */
export function nextStepAfterTimeout(config: MemberConfig, problem: string | undefined): string {
  const locators = config.role === 'router' || config.role === 'controller' ? [] : config.core.locators.map(formatAddress);
  const first = locators[0];
  if (config.role === 'server' && first !== undefined && (problem === undefined || /locator/i.test(problem))) {
    return `check that a locator runs at ${locators.join(', ')} and can be reached from here `
      + `(strait list members --locator '${first}'), then start ${config.name} again`;
  }
  return problem === undefined
    ? `look in the log for what ${config.name} waited on, then start it again`
    : `fix what the last problem names, then start ${config.name} again`;
}

/** Refuses when the pid file names a live Strait process; removes a stale one. */
export function checkNotRunning(dir: string, role: MemberRole): void {
  const pidFile = pidFilePath(dir, role);
  if (readPid(pidFile) === undefined) return;
  const pid = pidFileHolder(pidFile);
  if (pid !== undefined) throw new StraitError('STRAIT_ALREADY_RUNNING', { dir, pid });
  rmSync(pidFile, { force: true });
}

/**
 * Starts `strait run <role>` detached, its output appended to `<dir>/<name>.log`, and waits
 * until it reports ready or failed in member.json, exits, or the timeout passes (then it is
 * stopped so that a failed start leaves nothing running). Every START_PROGRESS_INTERVAL_MS
 * while it waits, `progress` hears the latest problem the member logged.
 */
function withhold(environment: NodeJS.ProcessEnv, names: readonly string[]): NodeJS.ProcessEnv {
  const kept = { ...environment };
  for (const name of names) delete kept[name];
  return kept;
}

export async function startInBackground(request: StartRequest, progress?: StartProgress): Promise<StartOutcome> {
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
  const child = spawn(process.execPath, [...memberNodeFlags(process.env, config.maximumHeapMegabytes), BIN_PATH, 'run', role, ...request.runArguments], {
    cwd: dir,
    detached: true,
    stdio: ['ignore', logDescriptor, logDescriptor],
    env: withhold({ ...MEMBER_ENVIRONMENT, ...process.env }, request.withheldEnvironment ?? []),
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
  const failure = (error: StraitError, nextStep?: string): StartOutcome => ({ ok: false, error, nextStep, logFile });
  const lastProblem = (): string | undefined => latestLoggedProblem(logFile, config.name);
  /** The error's reason, with the member's last logged problem when there is one. */
  const withLastProblem = (reason: string, problem: string | undefined): string =>
    problem === undefined ? reason : `${reason}; last problem: ${problem}`;
  if (pid === undefined) {
    return failure(new StraitError('STRAIT_START_FAILED', { member: config.name, reason: `could not run ${process.execPath}: ${spawnError?.message ?? 'unknown'}` }));
  }
  writePid(pidFilePath(dir, role), pid);
  child.unref();

  const startedAtMs = performance.now();
  const deadline = startedAtMs + request.timeoutMs;
  let nextProgressAtMs = startedAtMs + START_PROGRESS_INTERVAL_MS;
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
      const problem = lastProblem();
      return failure(
        new StraitError('STRAIT_START_FAILED', {
          member: config.name,
          reason: withLastProblem(`the process ${how} before it was ready`, problem),
        }),
        problem === undefined ? 'its log says why it stopped' : undefined,
      );
    }
    const now = performance.now();
    if (now >= deadline) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      const problem = lastProblem();
      return failure(
        new StraitError('STRAIT_START_FAILED', {
          member: config.name,
          reason: withLastProblem(`not ready after ${Math.round(request.timeoutMs / 1000)} s (pid ${pid} was stopped)`, problem),
        }),
        nextStepAfterTimeout(config, problem),
      );
    }
    if (progress !== undefined && now >= nextProgressAtMs) {
      nextProgressAtMs = now + START_PROGRESS_INTERVAL_MS;
      progress(progressLine(config.name, now - startedAtMs, lastProblem()));
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
  const killed = await stopProcess(pid, `the ${role} with pid ${pid}`, timeoutMs, force);
  rmSync(pidFile, { force: true });
  return { pid, name, killed };
}

/**
 * Sends SIGTERM to the Strait process `pid` (a member leaves cleanly) and waits until it is gone.
 * After `timeoutMs` it sends SIGKILL when `force` is set (and returns true), else fails with
 * STRAIT_TIMEOUT naming `what`.
 */
export async function stopProcess(pid: number, what: string, timeoutMs: number, force: boolean): Promise<boolean> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return false; // Gone already.
  }
  const deadline = performance.now() + timeoutMs;
  while (isStraitProcessAlive(pid)) {
    if (performance.now() >= deadline) {
      if (!force) {
        throw new StraitError('STRAIT_TIMEOUT', { operation: `stopping ${what} (use --force to kill it)`, timeoutMs });
      }
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        return false;
      }
      while (isStraitProcessAlive(pid)) await sleep(POLL_INTERVAL_MS);
      return true;
    }
    await sleep(POLL_INTERVAL_MS);
  }
  return false;
}
