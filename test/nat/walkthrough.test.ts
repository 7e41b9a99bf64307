// The NAT.md walkthrough, typed as a new user would: its shell blocks run as written, in a
// network namespace of their own (so its fixed ports can't meet another test's), from a
// directory of this repository (where `npx strait` is this package). The one change: the chat
// member you would type into reads `hello` and `topo` from a pipe.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetnsLab } from './netns.ts';

const REPOSITORY = fileURLToPath(new URL('../../', import.meta.url));

function walkthroughScript(): string {
  const doc = readFileSync(join(REPOSITORY, 'docs', 'NAT.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Walkthrough'), doc.indexOf('## Discovery'));
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]!);
  assert.equal(blocks.length, 3, 'the walkthrough has its setup, chat and stop blocks');
  const typed = "npx strait chat --locator '127.0.0.1[10335]' --name Temp --region CHAT";
  assert.ok(blocks[1]!.includes(typed), 'the chat block names the member you type into');
  const chat = blocks[1]!.replace(typed, `(printf 'hello\\n'; sleep 4; printf 'topo\\n') | ${typed} > temp.chat 2>&1`);
  return ['set -eu', blocks[0], chat, blocks[2]].join('\n');
}

test('the NAT.md walkthrough: NYC and SFC through two routers, every chat member answers', async (t) => {
  const lab = new NetnsLab();
  const host = lab.publicHost('walk');
  mkdirSync(join(REPOSITORY, '.tmp'), { recursive: true });
  const dir = mkdtempSync(join(REPOSITORY, '.tmp', 'nat-walkthrough-'));
  t.after(async () => {
    // Whatever the script left running in the namespace goes with it.
    try {
      for (const pid of execFileSync('ip', ['netns', 'pids', host.namespace]).toString().split('\n').filter(Boolean)) lab.track(Number(pid));
    } catch {
      // The namespace is gone already.
    }
    await lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  writeFileSync(join(dir, 'walkthrough.sh'), walkthroughScript());
  const result = await lab.exec(host.namespace, 'bash', ['-c', `cd '${dir}' && bash walkthrough.sh`], 240_000);
  const output = `${result.stdout}\n${result.stderr}`;
  assert.equal(result.status, 0, output);
  assert.match(output, /^1\s+nyc-1\s+server\s+router-nyc,router-sfc/m, 'list routers shows a member on both routers');
  assert.match(output, /^router-sfc\s+127\.0\.0\.1\[12002\]\s+connected/m, 'list routers shows the mesh peer');
  const chat = readFileSync(join(dir, 'temp.chat'), 'utf8');
  assert.match(chat, /^<< hello from Temp$/m);
  for (const name of ['Temp:2', 'sfc-X:2', 'sfc-Y:2', 'sfc-Z:2', 'nyc-A:1', 'nyc-B:1', 'nyc-C:1', 'nyc-D:1', 'nyc-E:1']) {
    assert.match(chat, new RegExp(`^<< response from ${name}$`, 'm'), chat);
  }
  assert.match(chat, /site 1:[\s\S]*nyc-E[\s\S]*site master: nyc-1 \(primary of to-sfc\)[\s\S]*site 2:[\s\S]*Temp\s+\(me\)[\s\S]*site master: sfc-1 \(primary of to-nyc\)/, chat);
  assert.equal(execFileSync('ip', ['netns', 'pids', host.namespace]).toString().trim(), '', 'the walkthrough stopped everything it started');
});
