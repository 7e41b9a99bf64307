// `strait demo` stops every member it started — on Ctrl-C (SIGINT), SIGTERM and SIGHUP, and when
// its output's reader goes away — also when its standard output is a pipe nobody reads any
// more (`strait demo | tee demo.log`, then Ctrl-C, which stops tee first). Each run starts the
// real demo (six member processes) in a directory of its own; the members' pids come from their
// member.json files. Whatever a test leaves running is killed by pid afterwards.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { isStraitProcessAlive, readMemberRecord } from './member-files.ts';

const BIN = fileURLToPath(new URL('../../bin/strait.js', import.meta.url));
/** Two sites of a locator and two servers each. */
const DEMO_MEMBERS = 6;
/** Generous bounds for a slow machine; a demo that misses one fails the test, never hangs it. */
const STARTUP_WAIT_MS_MAX = 90_000;
const EXIT_WAIT_MS_MAX = 90_000;

const root = mkdtempSync(join(tmpdir(), 'strait-demo-test-'));
/** Every pid a run started (the demo and its members), killed in `after` if still alive. */
const pids = new Set<number>();

after(() => {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone, as it should be.
    }
  }
  rmSync(root, { recursive: true, force: true });
});

type Demo = ChildProcessByStdio<null, Readable, Readable>;

/** Resolves once `stream` has carried text matching `pattern`; rejects after `timeoutMs`. */
function waitForOutput(stream: Readable, pattern: RegExp, timeoutMs: number, collected: { text: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`no ${pattern} within ${timeoutMs} ms; output so far:\n${collected.text}`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      collected.text += chunk.toString('utf8');
      if (!pattern.test(collected.text)) return;
      clearTimeout(timer);
      stream.off('data', onData);
      resolve();
    };
    stream.on('data', onData);
  });
}

function exited(demo: Demo, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    if (demo.exitCode !== null || demo.signalCode !== null) {
      resolve({ code: demo.exitCode, signal: demo.signalCode });
      return;
    }
    const timer = setTimeout(() => {
      reject(new Error(`the demo (pid ${demo.pid}) did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    demo.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}

/** The pid of each member the demo started, from the member.json in each of its directories. */
function memberPids(dir: string): number[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .flatMap((entry) => {
      const record = readMemberRecord(join(dir, entry.name));
      return record === undefined ? [] : [record.pid];
    });
}

/**
 * Starts the demo with its output into pipes, waits until both sites run and the first live
 * lines are out, closes the pipes (`closeStderr`: as a terminal that hangs up does), then stops
 * it with `signal` (or with nothing but the closed pipe), and checks that every member is gone.
 */
async function stopsEveryMember(signal: NodeJS.Signals | undefined, closeStderr: boolean): Promise<void> {
  const dir = mkdtempSync(join(root, `${signal ?? 'closed-pipe'}-`));
  const demo: Demo = spawn(process.execPath, [BIN, 'demo', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (demo.pid !== undefined) pids.add(demo.pid);
  const stdout = { text: '' };
  const stderr = { text: '' };
  demo.stderr.on('data', (chunk: Buffer) => {
    stderr.text += chunk.toString('utf8');
  });
  // Started, and the first live line of each direction printed: the next write is a while off,
  // so the signal (not a write failing) is what the demo hears first.
  await waitForOutput(demo.stdout, /site 1 → site 2:.*\n[^]*site 2 → site 1:.*\n/, STARTUP_WAIT_MS_MAX, stdout);
  const members = memberPids(dir);
  for (const pid of members) pids.add(pid);
  assert.equal(members.length, DEMO_MEMBERS, `member.json files in ${dir}:\n${stdout.text}`);
  assert.ok(members.every(isStraitProcessAlive), 'every member runs before the demo is stopped');

  demo.stdout.destroy();
  if (closeStderr) demo.stderr.destroy();
  if (signal !== undefined) demo.kill(signal);
  const { code } = await exited(demo, EXIT_WAIT_MS_MAX);

  const running = members.filter(isStraitProcessAlive);
  assert.deepEqual(running, [], `members still running after the demo exited (${code}); its stderr:\n${stderr.text}`);
  assert.equal(code, 0, `the demo's stderr:\n${stderr.text}`);
}

describe('strait demo stops every member it started, its output piped to a gone reader', { concurrency: 1 }, () => {
  it('on SIGINT (Ctrl-C, which stops `tee` as well)', () => stopsEveryMember('SIGINT', false));
  it('on SIGTERM', () => stopsEveryMember('SIGTERM', false));
  it('on SIGHUP (its terminal went away: standard error gone too)', () => stopsEveryMember('SIGHUP', true));
  it('when only its standard output goes away', () => stopsEveryMember(undefined, false));
});
