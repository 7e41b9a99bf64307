// The latest problem a member logged, as `strait start` reports it while waiting and on failure.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { latestLoggedProblem, latestProblem } from './member-log.ts';

const json = (level: number, msg: string): string => JSON.stringify({ level, time: 1, pid: 7, name: 's1', msg });

describe('latestProblem', () => {
  it('is the message of the latest warn, error or fatal line, without the member\'s own name', () => {
    const lines = [
      json(30, 'server s1 listening on 0.0.0.0[40404]; joining through 127.0.0.1[1]'),
      json(40, 'server s1: no locator answered at 127.0.0.1[1] (connection to 127.0.0.1[1] failed: ECONNREFUSED); retrying'),
      json(50, 's1: join through locator 127.0.0.1[1] failed: refused; retrying with the next locator'),
      json(30, 'still here'),
      json(20, 'debug detail'),
    ];
    assert.equal(latestProblem(lines, 's1'), 'join through locator 127.0.0.1[1] failed: refused; retrying with the next locator');
    assert.equal(latestProblem(lines.slice(0, 2), 's1'), 'no locator answered at 127.0.0.1[1] (connection to 127.0.0.1[1] failed: ECONNREFUSED); retrying');
  });

  it('keeps a prefix naming someone else, and strips a locator\'s "(site N)" prefix', () => {
    assert.equal(latestProblem([json(40, 'server s10: something')], 's1'), 'server s10: something');
    assert.equal(latestProblem([json(40, 'locator l.1 (site 2): WAN exchange failed')], 'l.1'), 'WAN exchange failed');
  });

  it('reads pretty lines too, coloured or not', () => {
    const pretty = '[12:00:00.000] \x1b[33mWARN\x1b[39m (s1/7 on host): \x1b[36mserver s1: no locator answered at h[1] (ECONNREFUSED); retrying\x1b[39m';
    assert.equal(latestProblem(['[12:00:00.000] INFO (s1/7 on host): starting', pretty], 's1'), 'no locator answered at h[1] (ECONNREFUSED); retrying');
  });

  it('is undefined without a problem; torn or foreign lines are no problem', () => {
    assert.equal(latestProblem([json(30, 'ready'), '{"level":50,"msg":"torn', 'Node.js v24', ''], 's1'), undefined);
    assert.equal(latestProblem([], 's1'), undefined);
  });

  it('cuts a huge message to one readable sentence', () => {
    const problem = latestProblem([json(50, 'x'.repeat(10_000))], 's1');
    assert.ok(problem !== undefined && problem.length < 1000);
  });
});

describe('latestLoggedProblem', () => {
  it('reads the end of the log file; a missing file has none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'strait-member-log-'));
    try {
      const file = join(dir, 's1.log');
      writeFileSync(file, `${json(40, 's1: first')}\n${json(40, 's1: second')}\n`);
      assert.equal(latestLoggedProblem(file, 's1'), 'second');
      assert.equal(latestLoggedProblem(join(dir, 'missing.log'), 's1'), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
