// The site configuration as a user drives it with the real `strait` command: two sites started
// with no WAN settings in any strait.yaml are wired at runtime (create region, gateway receiver,
// gateway sender, alter remote-locators), replicate, keep their configuration across a restart
// of every member of a site and resume replicating, and are taken apart again.
// Waiting is by polling with a deadline; nothing asserts on timing.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { assertOk, cleanupWorkspace, eventuallyGet, freePort, memberDir, start, strait, type Started } from './cli-process.test-support.ts';

after(cleanupWorkspace);

const REPLICATION_WAIT_MS = 60_000;

function at(member: Started): string {
  return `${member.address.host}[${member.address.port}]`;
}

async function straitOk(args: readonly string[]): Promise<string> {
  const result = await strait(args);
  assertOk(result, `strait ${args.join(' ')}`);
  return result.stdout;
}

interface Site {
  readonly locatorPort: number;
  readonly locator: string;
  readonly servers: readonly string[];
}

async function startSite(site: number, servers: number, locatorPort: number): Promise<Site> {
  const locator = await start('locator', `locator-${site}`, ['--port', String(locatorPort), '--site-id', String(site), '--http-port', '0']);
  const names: string[] = [];
  for (let index = 1; index <= servers; index++) {
    const name = `server${site}-${index}`;
    await start('server', name, ['--server-port', '0', '--http-port', '0', '--locators', at(locator)]);
    names.push(name);
  }
  return { locatorPort, locator: at(locator), servers: names };
}

async function stopSite(site: number, servers: readonly string[]): Promise<void> {
  for (const name of servers) await straitOk(['stop', 'server', '--dir', memberDir(name)]);
  await straitOk(['stop', 'locator', '--dir', memberDir(`locator-${site}`)]);
}

describe('the site configuration through the CLI', () => {
  it('wires two sites at runtime; a restart of every member keeps the configuration and replication resumes', async () => {
    const site1 = await startSite(1, 2, await freePort());
    const site2 = await startSite(2, 1, await freePort());
    const receiverPort = await freePort();
    const on = (site: Site, ...args: string[]) => straitOk([...args, '--locator', site.locator]);

    // Site 2 receives into `orders`; site 1 ships `orders` there through a persistent sender.
    await on(site2, 'create', 'region', '--name', 'orders', '--persistent');
    await on(site2, 'create', 'gateway-receiver', '--start-port', String(receiverPort), '--end-port', String(receiverPort + 20));
    await on(site1, 'alter', 'remote-locators', site2.locator);
    const created = await on(site1, 'create', 'gateway-sender', '--id', 'to-2', '--remote-site-id', '2', '--persistent', '--batch-time-interval', '50');
    assert.match(created, /site configuration version \d+, running on server1-1, server1-2/);
    await on(site1, 'create', 'region', '--name', 'orders', '--persistent', '--gateway-sender-ids', 'to-2');
    // The same change again changes nothing.
    assert.match(await on(site1, 'create', 'region', '--name', 'orders', '--persistent', '--gateway-sender-ids', 'to-2'), /nothing to do/);

    await on(site1, 'put', '--region', 'orders', '--key', 'before', '--value', 'v1');
    assert.equal(await eventuallyGet(site2.locator, 'before', REPLICATION_WAIT_MS, 'orders'), 'v1', 'site 2 received the write');

    const exported = join(memberDir('exports'), 'site-1.yaml');
    await on(site1, 'export', 'config', '--file', exported);
    const declared = parse(readFileSync(exported, 'utf8')) as Record<string, Record<string, Record<string, unknown>>>;
    assert.deepEqual(declared['regions']?.['orders'], { type: 'replicate', persistent: true, 'gateway-sender-ids': ['to-2'] });
    assert.equal(declared['gateway-senders']?.['to-2']?.['remote-site-id'], 2);
    const versionBefore = JSON.parse(await on(site1, 'export', 'config', '--json')).version as number;

    // Every member of site 1 stops, then starts again with the same flags.
    await stopSite(1, site1.servers);
    const restarted = await startSite(1, 2, site1.locatorPort);
    const after = JSON.parse(await on(restarted, 'export', 'config', '--json'));
    assert.equal(after.version, versionBefore, 'the locator recovered the configuration from disk');
    assert.equal(await eventuallyGet(restarted.locator, 'before', REPLICATION_WAIT_MS, 'orders'), 'v1', 'the persistent region recovered its entry');
    await on(restarted, 'put', '--region', 'orders', '--key', 'after', '--value', 'v2');
    assert.equal(await eventuallyGet(site2.locator, 'after', REPLICATION_WAIT_MS, 'orders'), 'v2', 'replication resumed after the restart');

    // Taken apart: the sender is detached, drained and destroyed; the region goes with its data.
    const busy = await strait(['destroy', 'gateway-sender', '--id', 'to-2', '--locator', restarted.locator]);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /STRAIT_CONFIG_CONFLICT/, 'a region still ships through it');
    await on(restarted, 'alter', 'region', '--name', 'orders', '--gateway-sender-ids', '');
    await on(restarted, 'destroy', 'gateway-sender', '--id', 'to-2');
    await on(restarted, 'destroy', 'region', '--name', 'orders');
    const empty = JSON.parse(await on(restarted, 'export', 'config', '--json'));
    assert.deepEqual([empty.regions, empty.senders], [[], []]);
    const regions = JSON.parse(await on(restarted, 'list', 'regions', '--json')) as unknown[];
    assert.deepEqual(regions, [], 'no server hosts the region any more');
    const gateways = JSON.parse(await on(restarted, 'list', 'gateways', '--json')) as { senders: unknown[] };
    assert.deepEqual(gateways.senders, []);
  });

  it('refuses flags of another target and bad values with coded errors', async () => {
    const misplaced = await strait(['create', 'region', '--name', 'x', '--batch-size', '3', '--locator', 'localhost[1]']);
    assert.equal(misplaced.code, 2);
    assert.match(misplaced.stderr, /STRAIT_USAGE: create region takes no --batch-size/);
    const badValue = await strait(['create', 'gateway-sender', '--id', 's', '--remote-site-id', '999', '--locator', 'localhost[1]']);
    assert.equal(badValue.code, 2);
    assert.match(badValue.stderr, /STRAIT_CONFIG_INVALID: command line: gateway-senders.s.remote-site-id/);
    const unreachable = await strait(['export', 'config', '--locator', `127.0.0.1[${await freePort()}]`, '--request-timeout', '2000']);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /STRAIT_NO_LOCATOR/);
  });
});
