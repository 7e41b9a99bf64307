// The peers' decision: found → measure; missing and root → install (announced), then look again;
// missing and not root, or still missing after the install → stop with the exact command;
// --without-peers → skip without looking. The machine is a fake: no test runs apt-get.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ensurePeers, locateExecutable, planPeers,
  type Missing, type NatsTools, type PeerHost, type PeerName, type PeerSituation, type RedisTools,
} from './peers.ts';

const REDIS: RedisTools = {
  version: 'Redis server v=7.0.15',
  server: '/usr/bin/redis-server',
  benchmark: '/usr/bin/redis-benchmark',
  cli: '/usr/bin/redis-cli',
};
const NATS: NatsTools = { version: 'nats-server: v2.9.10', server: '/usr/sbin/nats-server' };

interface FakeMachine {
  readonly host: PeerHost;
  readonly ran: string[];
  readonly said: string[];
  readonly looked: string[];
}

/**
 * A machine where the peers in `installed` are present; running `apt-get install` installs the
 * packages it names when `installWorks` says so (and, for the second try, once `apt-get update`
 * ran when `needsUpdate`).
 */
interface FakeOptions {
  readonly installed: PeerName[];
  readonly root: boolean;
  readonly installWorks?: boolean;
  readonly needsUpdate?: boolean;
}

function fakeMachine(options: FakeOptions): FakeMachine {
  const installed = new Set(options.installed);
  let updated = false;
  const ran: string[] = [];
  const said: string[] = [];
  const looked: string[] = [];
  const host: PeerHost = {
    findRedis: async (): Promise<RedisTools | Missing> => {
      looked.push('redis');
      return installed.has('redis') ? REDIS : { missing: 'redis-server is not installed' };
    },
    findNats: async (): Promise<NatsTools | Missing> => {
      looked.push('nats');
      return installed.has('nats') ? NATS : { missing: 'nats-server is not installed' };
    },
    isRoot: () => options.root,
    run: async (command) => {
      ran.push(command.join(' '));
      if (command[1] === 'update') {
        updated = true;
        return true;
      }
      if (options.installWorks !== true || (options.needsUpdate === true && !updated)) return false;
      if (command.includes('redis-server')) installed.add('redis');
      if (command.includes('nats-server')) installed.add('nats');
      return true;
    },
    say: (line) => said.push(line),
  };
  return { host, ran, said, looked };
}

/** A situation: nothing missing, not root, no install tried, unless `changes` says otherwise. */
function situation(changes: Partial<PeerSituation>): PeerSituation {
  return { withoutPeers: false, missing: [], root: false, installAttempted: false, ...changes };
}

const ABSENT = (peer: PeerName) => ({ peer, why: 'absent' });

test('planPeers: found → measure; --without-peers → skip, whatever is missing', () => {
  assert.deepEqual(planPeers(situation({})), { action: 'measure' });
  assert.equal(planPeers(situation({ withoutPeers: true, missing: [ABSENT('redis')] })).action, 'skip');
});

test('planPeers: missing as root → the apt-get install command, with only the missing packages', () => {
  assert.deepEqual(planPeers(situation({ missing: [ABSENT('redis'), ABSENT('nats')], root: true })), {
    action: 'install',
    packages: ['redis-server', 'nats-server'],
    command: ['apt-get', 'install', '-y', 'redis-server', 'nats-server'],
  });
  const natsOnly = planPeers(situation({ missing: [ABSENT('nats')], root: true }));
  assert.deepEqual(natsOnly.action === 'install' ? natsOnly.command : undefined, ['apt-get', 'install', '-y', 'nats-server']);
});

test('planPeers: missing and not root → stop with the command to run; after a failed install → stop too', () => {
  const notRoot = planPeers(situation({ missing: [{ peer: 'redis', why: 'redis-server is not installed' }] }));
  assert.equal(notRoot.action, 'stop');
  assert.equal(notRoot.action === 'stop' ? notRoot.command : '', 'sudo apt-get install -y redis-server');
  assert.match(notRoot.action === 'stop' ? notRoot.reason : '', /redis-server is not installed.*not running as root/);
  const failed = planPeers(situation({ missing: [ABSENT('nats')], root: true, installAttempted: true }));
  assert.equal(failed.action === 'stop' ? failed.command : '', 'apt-get update && apt-get install -y nats-server');
});

test('ensurePeers: all found → ready with their tools, nothing run', async () => {
  const machine = fakeMachine({ installed: ['redis', 'nats'], root: false });
  const check = await ensurePeers(['redis', 'nats'], false, machine.host);
  assert.deepEqual(check, { kind: 'ready', tools: { redis: REDIS, nats: NATS } });
  assert.deepEqual(machine.ran, []);
});

test('ensurePeers: only the peers asked for are looked for', async () => {
  const machine = fakeMachine({ installed: ['redis'], root: false });
  assert.deepEqual(await ensurePeers(['redis'], false, machine.host), { kind: 'ready', tools: { redis: REDIS } });
  assert.deepEqual(machine.looked, ['redis']);
});

test('ensurePeers: missing as root → says so on a line of its own, installs, finds them', async () => {
  const machine = fakeMachine({ installed: ['redis'], root: true, installWorks: true });
  const check = await ensurePeers(['redis', 'nats'], false, machine.host);
  assert.deepEqual(check, { kind: 'ready', tools: { redis: REDIS, nats: NATS } });
  assert.deepEqual(machine.ran, ['apt-get install -y nats-server']);
  assert.equal(machine.said.length, 1);
  assert.match(machine.said[0]!, /missing NATS .*; running as root, so installing: apt-get install -y nats-server/);
});

test('ensurePeers: a fresh machine without package lists → apt-get update, then the install again', async () => {
  const machine = fakeMachine({ installed: [], root: true, installWorks: true, needsUpdate: true });
  const check = await ensurePeers(['redis', 'nats'], false, machine.host);
  assert.equal(check.kind, 'ready');
  const install = 'apt-get install -y redis-server nats-server';
  assert.deepEqual(machine.ran, [install, 'apt-get update', install]);
});

test('ensurePeers: the install fails → stop with the command, and no second install', async () => {
  const machine = fakeMachine({ installed: [], root: true, installWorks: false });
  const check = await ensurePeers(['redis'], false, machine.host);
  assert.equal(check.kind, 'stop');
  assert.match(check.kind === 'stop' ? check.message : '', /apt-get update && apt-get install -y redis-server/);
  assert.match(check.kind === 'stop' ? check.message : '', /--without-peers/);
  assert.deepEqual(machine.ran, ['apt-get install -y redis-server', 'apt-get update', 'apt-get install -y redis-server']);
});

test('ensurePeers: missing and not root → stop with the sudo command, nothing run', async () => {
  const machine = fakeMachine({ installed: ['redis'], root: false, installWorks: true });
  const check = await ensurePeers(['redis', 'nats'], false, machine.host);
  assert.equal(check.kind, 'stop');
  assert.match(check.kind === 'stop' ? check.message : '', /\n {2}sudo apt-get install -y nats-server\n/);
  assert.deepEqual(machine.ran, []);
});

test('ensurePeers: --without-peers → skipped, without looking or installing', async () => {
  const machine = fakeMachine({ installed: [], root: true, installWorks: true });
  const check = await ensurePeers(['redis', 'nats'], true, machine.host);
  assert.deepEqual(check, { kind: 'skipped', reason: 'skipped with --without-peers' });
  assert.deepEqual(machine.looked, []);
  assert.deepEqual(machine.ran, []);
});

test('locateExecutable: PATH first, only executable files', () => {
  const directory = mkdtempSync(join(tmpdir(), 'strait-peers-test-'));
  try {
    const tool = join(directory, 'strait-peer-tool');
    writeFileSync(tool, '#!/bin/sh\n');
    assert.equal(locateExecutable('strait-peer-tool', directory), undefined, 'not executable yet');
    chmodSync(tool, 0o755);
    assert.equal(locateExecutable('strait-peer-tool', directory), tool);
    assert.equal(locateExecutable('strait-peer-tool-absent', directory), undefined);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
