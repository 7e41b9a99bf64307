// The files a member keeps in its directory, shared by `strait start`, `run` and `stop`:
//   <dir>/<role>.pid    the pid of the running member process
//   <dir>/member.json   what the member reported last: ready (where it listens) or failed (why)
//   <dir>/<name>.log    its log when started in the background
//   <dir>/strait.yaml   its configuration (read by src/config/member-config.ts)
//   <dir>/data/         a server's persistent regions

import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MemberRole } from '../config/member-config.ts';
import type { Address } from '../runtime/runtime.ts';

export const CONFIG_FILE_NAME = 'strait.yaml';
export const MEMBER_FILE_NAME = 'member.json';
export const DATA_DIRECTORY_NAME = 'data';

export function pidFilePath(dir: string, role: MemberRole): string {
  return join(dir, `${role}.pid`);
}

export function memberFilePath(dir: string): string {
  return join(dir, MEMBER_FILE_NAME);
}

export function logFilePath(dir: string, name: string): string {
  return join(dir, `${name}.log`);
}

/** member.json of a member that started: where it listens. */
export interface ListeningMemberRecord {
  readonly role: MemberRole;
  readonly name: string;
  readonly pid: number;
  /** The member's site (0 for a router, which belongs to none). */
  readonly site: number;
  readonly address: Address;
  /** The admin HTTP API (a router's is its own address: it runs none). */
  readonly httpAddress: Address;
  /** The admin API (a controller's API) serves HTTPS: the member runs with `tls`. */
  readonly https?: boolean;
  readonly state: 'ready' | 'stopped';
  readonly startedAt: string;
}

/** member.json of a member that could not start or stopped on a fatal error: why. */
export interface FailedMemberRecord {
  readonly role: MemberRole;
  readonly name: string;
  readonly pid: number;
  readonly state: 'failed';
  readonly error: { readonly code: string; readonly message: string };
  readonly startedAt: string;
}

export type MemberRecord = ListeningMemberRecord | FailedMemberRecord;

/** Writes a file so that readers see the old or the new content, never a partial one. */
export function writeFileAtomically(path: string, content: string): void {
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, content, { mode: 0o644 });
  renameSync(temporary, path);
}

export function writeMemberRecord(dir: string, record: MemberRecord): void {
  writeFileAtomically(memberFilePath(dir), `${JSON.stringify(record, null, 2)}\n`);
}

/** The member record, or undefined when there is none or it can't be read (being replaced). */
export function readMemberRecord(dir: string): MemberRecord | undefined {
  try {
    const record: unknown = JSON.parse(readFileSync(memberFilePath(dir), 'utf8'));
    if (typeof record !== 'object' || record === null || !('state' in record) || !('pid' in record)) return undefined;
    return record as MemberRecord;
  } catch {
    return undefined;
  }
}

export function readPid(path: string): number | undefined {
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (!/^[0-9]{1,10}$/.test(text)) return undefined;
    const pid = Number(text);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function writePid(path: string, pid: number): void {
  writeFileAtomically(path, `${pid}\n`);
}

/** Removes the pid file only if it still names `pid`, so a newer member's file survives. */
export function removePidIfOwned(path: string, pid: number): void {
  if (readPid(path) === pid) rmSync(path, { force: true });
}

/**
 * True when `pid` is a running Strait process. A pid file can outlive its process and the pid
 * be reused, so on Linux the command line must mention strait; a zombie (exited, not yet reaped,
 * as happens under a container init that doesn't reap) counts as not running.
 */
export function isStraitProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists but belongs to someone else, so it is not ours.
    return false;
  }
  const proc = `/proc/${pid}`;
  if (!existsSync(proc)) return true;
  try {
    const stat = readFileSync(`${proc}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const commandLine = readFileSync(`${proc}/cmdline`, 'utf8');
    return commandLine.includes('strait');
  } catch {
    return false;
  }
}

/** Clock ticks per second in /proc/<pid>/stat (Linux's USER_HZ, 100 on every architecture Node runs on). */
const PROC_TICKS_PER_SECOND = 100;
/** /proc/stat's boot time has whole seconds: a start this much after the pid file is still "before". */
const START_TIME_SLACK_MS = 2000;

/** When process `pid` started (ms since the epoch), from /proc; undefined where /proc can't say. */
function processStartMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startTicks = Number(fields[19]); // field 22 of the whole line: starttime
    const bootSeconds = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!Number.isFinite(startTicks) || !Number.isFinite(bootSeconds)) return undefined;
    return bootSeconds * 1000 + (startTicks / PROC_TICKS_PER_SECOND) * 1000;
  } catch {
    return undefined;
  }
}

/**
 * The pid of the live Strait process holding `pidFile` (another than this one), or undefined when
 * the file is absent or stale. Stale also when the pid was reused by a process that can't have
 * written it: this process's parent (tini as pid 1 in a container, after an earlier container
 * whose member was pid 1 left the file on the data volume), or one started after the file was
 * written.
 */
export function pidFileHolder(pidFile: string): number | undefined {
  const pid = readPid(pidFile);
  if (pid === undefined || pid === process.pid || pid === process.ppid || !isStraitProcessAlive(pid)) return undefined;
  const startedMs = processStartMs(pid);
  let writtenMs: number | undefined;
  try {
    writtenMs = statSync(pidFile).mtimeMs;
  } catch {
    writtenMs = undefined;
  }
  if (startedMs !== undefined && writtenMs !== undefined && startedMs > writtenMs + START_TIME_SLACK_MS) return undefined;
  return pid;
}

/** The last `lines` lines of a log file, for printing why a start failed. */
export function tailOfFile(path: string, lines: number, bytesMax = 64 * 1024): string {
  try {
    const content = readFileSync(path);
    const text = content.subarray(Math.max(0, content.length - bytesMax)).toString('utf8');
    return text.split('\n').filter((line) => line.length > 0).slice(-lines).join('\n');
  } catch {
    return '';
  }
}
