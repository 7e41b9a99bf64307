import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  isStraitProcessAlive,
  memberFilePath,
  pidFileHolder,
  pidFilePath,
  readMemberRecord,
  readPid,
  removePidIfOwned,
  tailOfFile,
  writeMemberRecord,
  writePid,
} from './member-files.ts';

const dir = mkdtempSync(join(tmpdir(), 'strait-member-files-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('member files', () => {
  it('round-trips a pid file and removes it only for its owner', () => {
    const path = pidFilePath(dir, 'server');
    assert.equal(readPid(path), undefined);
    writePid(path, 4242);
    assert.equal(readPid(path), 4242);
    removePidIfOwned(path, 1);
    assert.equal(readPid(path), 4242);
    removePidIfOwned(path, 4242);
    assert.equal(existsSync(path), false);
  });

  it('ignores a pid file that does not hold a pid', () => {
    const path = pidFilePath(dir, 'locator');
    for (const content of ['', 'abc', '-5', '0', '12 34']) {
      writeFileSync(path, content);
      assert.equal(readPid(path), undefined, JSON.stringify(content));
    }
  });

  it('writes member.json atomically and reads it back', () => {
    const record = {
      role: 'locator' as const,
      name: 'locator-1',
      pid: 7,
      site: 1,
      address: { host: '127.0.0.1', port: 10334 },
      httpAddress: { host: '127.0.0.1', port: 7070 },
      state: 'ready' as const,
      startedAt: '2026-01-01T00:00:00.000Z',
    };
    writeMemberRecord(dir, record);
    assert.deepEqual(readMemberRecord(dir), record);
    assert.deepEqual(
      readdirSync(dir).filter((name) => name.includes('.tmp-')),
      [],
      'no temporary file is left behind',
    );
    writeFileSync(memberFilePath(dir), '{"state": "rea');
    assert.equal(readMemberRecord(dir), undefined);
  });

  it('tells a finished process from a running one', () => {
    const finished = spawnSync(process.execPath, ['-e', '0']);
    assert.equal(isStraitProcessAlive(finished.pid), false);
    assert.equal(isStraitProcessAlive(2 ** 22 + 1), false);
  });

  it('a pid file names its holder only while a Strait process that can have written it runs', async () => {
    const pidFile = join(dir, 'holder.pid');
    // A live process whose command line says strait (as a member's does).
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)', 'strait-holder-probe'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => child.once('spawn', resolve));
      writePid(pidFile, child.pid!);
      assert.equal(pidFileHolder(pidFile), child.pid, 'written after the process started: it holds the file');
      // The same pid in a file written long before that process started: the pid was reused.
      const anHourAgo = new Date(Date.now() - 3_600_000);
      utimesSync(pidFile, anHourAgo, anHourAgo);
      assert.equal(pidFileHolder(pidFile), undefined, 'a file older than the process is stale');
      // A process's parent (tini as pid 1 in a container) never holds its pid file: a parent whose
      // command line says strait starts a child that asks about a file naming that parent.
      const moduleUrl = new URL('./member-files.ts', import.meta.url).href;
      const check = `import { pidFileHolder, writePid } from ${JSON.stringify(moduleUrl)}; writePid(${JSON.stringify(pidFile)}, process.ppid); console.log(String(pidFileHolder(${JSON.stringify(pidFile)})));`;
      const parent = spawnSync(process.execPath, ['-e', `const r = require('node:child_process').spawnSync(process.execPath, ['--input-type=module', '-e', ${JSON.stringify(check)}], { encoding: 'utf8' }); process.stdout.write(r.stdout + r.stderr);`, 'strait-parent-probe'], { encoding: 'utf8' });
      assert.equal(parent.stdout.trim(), 'undefined', parent.stdout);
      writePid(pidFile, process.pid);
      assert.equal(pidFileHolder(pidFile), undefined, 'this process is not another holder');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('tails a log file', () => {
    const path = join(dir, 'x.log');
    writeFileSync(path, Array.from({ length: 50 }, (_, index) => `line ${index}`).join('\n') + '\n');
    assert.equal(tailOfFile(path, 3), 'line 47\nline 48\nline 49');
    assert.equal(tailOfFile(join(dir, 'missing.log'), 3), '');
  });
});
