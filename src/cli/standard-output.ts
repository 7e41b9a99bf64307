// The CLI's standard output and standard error, written so that a reader going away never costs
// more than the output. `strait status | head` closes the pipe early: the command has nothing
// more to say and exits quietly. `strait demo | tee demo.log` then Ctrl-C stops tee as well,
// and a terminal that hangs up takes both streams: a command with members to stop (the demo)
// must keep going without its output — an EPIPE or EIO must neither exit nor throw.

import type { Output } from './client-commands.ts';

let stdoutGone = false;
let stderrGone = false;
let keepRunning = false;
let installed = false;
const stdoutGoneListeners: (() => void)[] = [];

/** Write errors that mean the reader went away (a closed pipe, a terminal that hung up). */
const CLOSED_READER_CODES: ReadonlySet<string | undefined> = new Set(['EPIPE', 'EIO', 'ECONNRESET', 'ERR_STREAM_DESTROYED']);

function isClosedReader(error: NodeJS.ErrnoException): boolean {
  return CLOSED_READER_CODES.has(error.code);
}

/** Handles write errors on both streams; called once when the CLI starts. */
export function installStandardOutput(): void {
  if (installed) return;
  installed = true;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    const first = !stdoutGone;
    stdoutGone = true;
    if (keepRunning) {
      if (first) for (const listener of stdoutGoneListeners.splice(0)) listener();
      return;
    }
    if (isClosedReader(error)) process.exit(process.exitCode ?? 0);
    throw error;
  });
  // Nothing to report a failing standard error on: stop writing to it, carry on.
  process.stderr.on('error', () => {
    stderrGone = true;
  });
}

/**
 * From now on a closed standard output no longer ends the process: the caller has work left
 * that matters more than its output (stopping the members it started).
 */
export function keepRunningWithoutOutput(): void {
  keepRunning = true;
}

/** Calls `listener` once when standard output fails (its reader went away), if it keeps running. */
export function onStdoutGone(listener: () => void): void {
  if (stdoutGone) queueMicrotask(listener);
  else stdoutGoneListeners.push(listener);
}

/** Writes `text` as it is (no newline added) unless standard output is gone. */
export function writeOut(text: string): void {
  if (stdoutGone || process.stdout.destroyed) return;
  process.stdout.write(text);
}

export function writeErr(text: string): void {
  if (stderrGone || process.stderr.destroyed) return;
  process.stderr.write(text);
}

/** Lines to standard output and standard error, each dropped once its reader is gone. */
export const standardOutput: Output = {
  out: (text) => writeOut(`${text}\n`),
  err: (text) => writeErr(`${text}\n`),
};
