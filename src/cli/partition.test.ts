// Partitioned regions as a user runs them with the real `strait` command: four servers with a
// partitioned region of one redundant copy, 20,000 keys; kill -9 of a server loses no key and
// redundancy comes back; a fifth server and `strait rebalance` even the buckets out. Bad
// settings are coded errors. Waiting is by polling with a deadline; nothing asserts on timing.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../client/connect.ts';
import { assertOk, cleanupWorkspace, freePort, memberDir, start, strait, until as pollUntil, type Started } from './cli-process.test-support.ts';

after(cleanupWorkspace);

const KEYS = 20_000;
const WAIT_MS = 60_000;
const YAML = 'regions:\n  orders: { type: partition, redundant-copies: 1 }\n';

interface Report {
  bucketsCreated: number;
  bucketsUnderRedundant: number;
  bucketsMoving: number;
  size: number;
  members: { member: string; primaries: number; copies: number; pending: number }[];
}

async function startServer(name: string, locator: string, yaml = YAML, port = 0): Promise<Started> {
  writeFileSync(join(memberDir(name), 'strait.yaml'), yaml);
  return start('server', name, ['--server-port', String(port), '--http-port', '0', '--locators', locator]);
}

async function report(locator: string): Promise<Report> {
  const result = await strait(['status', 'region', 'orders', '--json', '--locator', locator]);
  assertOk(result, 'status region orders');
  return JSON.parse(result.stdout) as Report;
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  await pollUntil(what, check, WAIT_MS);
}

/** Entries of `orders` each server holds itself (its copies), from its admin API. */
async function localSizes(servers: readonly Started[]): Promise<number[]> {
  return Promise.all(servers.map(async (server) => {
    const response = await fetch(`http://${server.httpAddress.host}:${server.httpAddress.port}/regions`);
    const body = await response.json() as { regions: { spec: { name: string }; size: number }[] };
    return body.regions.find((region) => region.spec.name === 'orders')?.size ?? 0;
  }));
}

async function missingKeys(port: number): Promise<number> {
  const client = await connect({ locators: [{ host: '127.0.0.1', port }], name: 'checker' });
  try {
    const region = client.region<string>('orders');
    let missing = 0;
    for (let first = 0; first < KEYS; first += 1000) {
      const values = await Promise.all(Array.from({ length: 1000 }, (_, index) => region.get(`key-${first + index}`)));
      values.forEach((value, index) => { if (value !== `value-${first + index}`) missing += 1; });
    }
    return missing;
  } finally {
    await client.close();
  }
}

describe('partitioned regions through the CLI', () => {
  it('kill -9 of a server loses no key and redundancy comes back; a fifth server and strait rebalance even the buckets', async () => {
    const port = await freePort();
    const locator = `127.0.0.1[${port}]`;
    await start('locator', 'p-locator', ['--port', String(port), '--http-port', '0']);
    const servers: Started[] = [];
    for (let index = 1; index <= 4; index++) servers.push(await startServer(`p-server-${index}`, locator));
    const client = await connect({ locators: [{ host: '127.0.0.1', port }], name: 'loader' });
    const region = client.region<string>('orders');
    for (let first = 0; first < KEYS; first += 1000) {
      await region.putAll(Array.from({ length: 1000 }, (_, index) => [`key-${first + index}`, `value-${first + index}`] as const));
    }
    await client.close();
    const loaded = await report(locator);
    assert.equal(loaded.bucketsCreated, 113);
    assert.equal(loaded.bucketsUnderRedundant, 0);
    assert.equal(loaded.size, KEYS);
    assert.equal(loaded.members.length, 4);
    for (const member of loaded.members) assert.ok(member.copies >= 55 && member.copies <= 58, `copies of 226 per server: ${JSON.stringify(loaded.members)}`);
    // Every key on both of its copies (reads go to primaries, so a copy lacking keys shows only here).
    const sizes = await localSizes(servers);
    assert.equal(sizes.reduce((sum, size) => sum + size, 0), 2 * KEYS, `entries per server ${sizes}`);

    process.kill(servers[1]!.pid, 'SIGKILL');
    await until('the view drops the killed server and every bucket has two copies again', async () => {
      const now = await report(locator);
      return now.members.length === 3 && now.bucketsUnderRedundant === 0 && now.bucketsMoving === 0;
    });
    assert.equal(await missingKeys(port), 0, 'no key lost to kill -9');
    assert.equal((await report(locator)).size, KEYS);

    const fifth = await startServer('p-server-5', locator);
    await until('the fifth server is in the view', async () => (await report(locator)).members.some((member) => member.member === 'p-server-5'));
    const simulated = await strait(['rebalance', '--simulate', '--json', '--locator', locator]);
    assertOk(simulated, 'rebalance --simulate');
    const plan = JSON.parse(simulated.stdout) as { regions: { moves: [number, string, string][] }[] };
    assert.ok(plan.regions[0]!.moves.length >= 40 && plan.regions[0]!.moves.every(([, , to]) => to === 'p-server-5'), simulated.stdout.slice(0, 400));
    assert.equal((await report(locator)).members.find((member) => member.member === 'p-server-5')?.copies, 0, 'a simulation moves nothing');
    const rebalanced = await strait(['rebalance', '--locator', locator]);
    assertOk(rebalanced, 'rebalance');
    assert.match(rebalanced.stdout, /Rebalanced in/);
    await until('primaries even out after the copies moved', async () => {
      const now = await report(locator);
      const spread = (values: number[]) => Math.max(...values) - Math.min(...values);
      return now.bucketsMoving === 0 && spread(now.members.map((member) => member.copies)) <= 1 && spread(now.members.map((member) => member.primaries)) <= 1;
    });
    assert.equal(await missingKeys(port), 0, 'no key lost to the rebalance');
    const moved = await localSizes([servers[0]!, servers[2]!, servers[3]!, fifth]);
    assert.equal(moved.reduce((sum, size) => sum + size, 0), 2 * KEYS, `entries per server after the rebalance ${moved} (each key on its two copies, none left behind)`);

    // The site configuration takes partitioned regions too, with their settings.
    assertOk(await strait(['create', 'region', '--name', 'sessions', '--type', 'partition', '--redundant-copies', '0', '--recovery-delay', '-1', '--locator', locator]), 'create region --type partition');
    const exported = await strait(['export', 'config', '--locator', locator]);
    assertOk(exported, 'export config');
    assert.match(exported.stdout, /sessions:\n\s+type: partition\n\s+persistent: false\n\s+total-num-buckets: 113\n\s+redundant-copies: 0\n\s+recovery-delay: -1/);

    for (const name of ['p-server-1', 'p-server-3', 'p-server-4', 'p-server-5']) assertOk(await strait(['stop', 'server', '--dir', memberDir(name)]), `stop ${name}`);
    assertOk(await strait(['stop', 'locator', '--dir', memberDir('p-locator')]), 'stop locator');
  });

  it('a persistent partitioned region comes back after kill -9 of every server; buckets wait offline for their disks', async () => {
    const port = await freePort();
    const locator = `127.0.0.1[${port}]`;
    await start('locator', 'q-locator', ['--port', String(port), '--http-port', '0']);
    const yaml = 'regions:\n  orders: { type: partition, persistent: true }\n';
    const first = [await startServer('q-server-1', locator, yaml), await startServer('q-server-2', locator, yaml)];
    const client = await connect({ locators: [{ host: '127.0.0.1', port }], name: 'loader' });
    const region = client.region<string>('orders');
    for (let chunk = 0; chunk < KEYS; chunk += 1000) {
      await region.putAll(Array.from({ length: 1000 }, (_, index) => [`key-${chunk + index}`, `value-${chunk + index}`] as const));
    }
    await client.close();
    for (const server of first) process.kill(server.pid, 'SIGKILL');
    // Server 1 back on its port replaces its old incarnation in the view at once, while server 2's
    // stays until the member timeout: server 2 is then the last copy of every bucket, and they
    // wait for it — server 1 may lack writes acknowledged after it left.
    await startServer('q-server-1', locator, yaml, first[0]!.address.port);
    await until('every bucket waits offline for server 2', async () => {
      const now = await report(locator) as Report & { bucketsOffline: number };
      return now.members.length === 1 && now.bucketsOffline > 0;
    });
    const text = await strait(['status', 'region', 'orders', '--locator', locator]);
    assert.match(text.stdout, /PROBLEM: \d+ buckets offline \(every copy down\); they come back when one of q-server-2 restarts with its disk/);
    await startServer('q-server-2', locator, yaml, first[1]!.address.port);
    await until('every bucket back on both servers', async () => {
      const now = await report(locator) as Report & { bucketsOffline: number };
      return now.members.length === 2 && now.bucketsOffline === 0 && now.bucketsCreated === 113 && now.bucketsUnderRedundant === 0 && now.bucketsMoving === 0;
    });
    assert.equal(await missingKeys(port), 0, 'every acknowledged key is back from disk');
    for (const name of ['q-server-1', 'q-server-2']) assertOk(await strait(['stop', 'server', '--dir', memberDir(name)]), `stop ${name}`);
    assertOk(await strait(['stop', 'locator', '--dir', memberDir('q-locator')]), 'stop locator');
  });

  it('refuses bad partition settings with coded errors', async () => {
    const dir = memberDir('p-bad');
    writeFileSync(join(dir, 'strait.yaml'), 'regions:\n  orders: { type: partition, redundant-copies: 9 }\n');
    const refused = await strait(['start', 'server', '--name', 'p-bad', '--dir', dir, '--bind-address', '127.0.0.1', '--server-port', '0', '--locators', '127.0.0.1[1]']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /STRAIT_CONFIG_INVALID: .*regions\.orders\.redundant-copies: expected an integer from 0 to 3, got 9/);
    const usage = await strait(['status', 'region', '--locator', '127.0.0.1[1]']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /STRAIT_USAGE: status region needs the region name/);
  });
});
