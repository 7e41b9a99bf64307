// Child processes of the benchmark (and of the soak, which reuses them): running a command to
// completion, finding free ports, and the cleanup list that stops every process the benchmark
// started — on success, on failure, on Ctrl-C, and (as a last resort, synchronously) when the
// bench process exits.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface CommandResult {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** How long one command may run before it is killed, unless the caller says otherwise. */
const COMMAND_TIMEOUT_MS_DEFAULT = 120_000;
/** How often a process is checked while waiting for it to exit. */
const EXIT_POLL_INTERVAL_MS = 20;

/** Runs `file args` to completion and collects its output; never rejects on a non-zero exit. */
export function runCommand(file: string, args: readonly string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? COMMAND_TIMEOUT_MS_DEFAULT);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') });
    });
  });
}

/** Describes a failed command for an error message: its status and the end of its stderr. */
export function describeFailure(what: string, result: CommandResult): string {
  const how = result.signal === null ? `exited with status ${result.status}` : `was killed by ${result.signal}`;
  const tail = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-20).join('\n');
  return `${what} ${how}${tail.length > 0 ? `:\n${tail}` : ''}`;
}

/** A TCP port nobody listens on right now, on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not find a free port'))));
    });
  });
}

/**
 * True while `pid` runs. A zombie (exited, not yet reaped — the fate of every member `strait
 * start` detached, under a container init that does not reap orphans) counts as gone.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    // No /proc (not Linux), or it vanished between the two looks: trust kill(0).
    return existsSync('/proc') ? false : true;
  }
}

/** Waits until `pid` has exited; false when it is still alive after `timeoutMs`. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (isAlive(pid)) {
    if (performance.now() >= deadline) return false;
    await sleep(EXIT_POLL_INTERVAL_MS);
  }
  return true;
}

interface Started {
  readonly label: string;
  readonly pid: number;
  readonly stop: () => Promise<void>;
}

/**
 * Everything the benchmark started, stopped in reverse order by `stopAll` (each by its own
 * stop action: `strait stop`, or SIGTERM to a Redis pid). If the process exits without that —
 * an uncaught error, `process.exit` — the 'exit' handler sends SIGTERM to every pid still
 * listed, synchronously, so nothing is left running.
 */
export class Cleanup {
  private readonly started: Started[] = [];
  private stopping: Promise<void> | undefined;
  /** Names the program in its messages on standard error. */
  private readonly program: string;

  constructor(program = 'bench') {
    this.program = program;
    process.on('exit', () => this.killRemaining());
  }

  add(label: string, pid: number, stop: () => Promise<void>): void {
    this.started.push({ label, pid, stop });
  }

  /** Stops one process now (its stop action) and forgets it. */
  async stop(pid: number): Promise<void> {
    const index = this.started.findIndex((entry) => entry.pid === pid);
    if (index < 0) return;
    const [entry] = this.started.splice(index, 1);
    await this.stopEntry(entry!);
  }

  /**
   * Forgets a process without stopping it: one that is already gone (killed on purpose). Its
   * stop action must not run later — it may act on the member's directory, which by then
   * belongs to the process restarted in it.
   */
  forget(pid: number): void {
    const index = this.started.findIndex((entry) => entry.pid === pid);
    if (index >= 0) this.started.splice(index, 1);
  }

  /** Stops everything still listed, newest first. Safe to call more than once. */
  stopAll(): Promise<void> {
    this.stopping ??= (async () => {
      while (this.started.length > 0) await this.stopEntry(this.started.pop()!);
    })().finally(() => {
      this.stopping = undefined;
    });
    return this.stopping;
  }

  private async stopEntry(entry: Started): Promise<void> {
    try {
      await entry.stop();
    } catch (error) {
      process.stderr.write(`${this.program}: stopping ${entry.label} (pid ${entry.pid}) failed: ${error instanceof Error ? error.message : String(error)}; sending SIGKILL\n`);
      try {
        process.kill(entry.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }

  private killRemaining(): void {
    for (const entry of this.started) {
      try {
        process.kill(entry.pid, 'SIGTERM');
        process.stderr.write(`${this.program}: sent SIGTERM to ${entry.label} (pid ${entry.pid}) on exit\n`);
      } catch {
        // Already gone.
      }
    }
    this.started.length = 0;
  }
}
