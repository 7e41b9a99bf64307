// Every discovery plugin against a real store: a shared directory, a PostgreSQL server the test
// starts, a dnsmasq on a loopback port, and an HTTPS server with the Kubernetes API's pod-list
// shape (no cluster is available here). Plus what only some plugins do.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { directoryDiscovery, dnsDiscovery, kubernetesDiscovery, postgresDiscovery, type PublishedLocator } from './discovery.ts';
import { discoveryTestSuite } from './discovery-test-suite.ts';
import { pod, startDns, startKubernetesApi, startPostgres } from './discovery-fixtures.test-support.ts';

/** Publishing plugins are seeded by unpublishing what they held, then publishing the rest. */
function publishingSeed(discovery: { publish(locator: PublishedLocator): Promise<void>; unpublish(locator: PublishedLocator): Promise<void> }) {
  let held: PublishedLocator[] = [];
  return async (locators: readonly PublishedLocator[]) => {
    for (const locator of held) await discovery.unpublish(locator);
    for (const locator of locators) await discovery.publish(locator);
    held = [...locators];
  };
}

discoveryTestSuite('directory', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'strait-discovery-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const discovery = directoryDiscovery(dir);
  return { discovery, seed: publishingSeed(discovery), knowsSites: true };
});

discoveryTestSuite('postgres', async (t) => {
  const database = await startPostgres();
  const discovery = postgresDiscovery(database.url, 'strait_members');
  t.after(async () => {
    await discovery.close();
    database.stop();
  });
  return { discovery, seed: publishingSeed(discovery), knowsSites: true };
});

discoveryTestSuite('dns SRV', async (t) => {
  const dns = await startDns('_locator._tcp.site1.strait.test', 'locators.site1.strait.test');
  t.after(() => dns.stop());
  const discovery = dnsDiscovery('_locator._tcp.site1.strait.test', 'srv', 10334, [{ host: '127.0.0.1', port: dns.port }]);
  // SRV records name a host per locator (resolved by whoever connects) and carry its port.
  const expected = (locators: readonly PublishedLocator[]) => locators.map((locator) => ({ host: `${locator.name}.locators.site1.strait.test`, port: locator.address.port }));
  return { discovery, seed: (locators) => dns.serve(locators), knowsSites: false, expected };
});

discoveryTestSuite('dns A', async (t) => {
  const dns = await startDns('_locator._tcp.site1.strait.test', 'locators.site1.strait.test');
  t.after(() => dns.stop());
  const discovery = dnsDiscovery('locators.site1.strait.test', 'a', 10334, [{ host: '127.0.0.1', port: dns.port }]);
  // A records carry no port: every locator is taken to listen on the configured one.
  const expected = (locators: readonly PublishedLocator[]) => locators.map((locator) => ({ host: locator.address.host, port: 10334 }));
  return { discovery, seed: (locators) => dns.serve(locators), knowsSites: false, expected };
});

discoveryTestSuite('kubernetes', async (t) => {
  const api = await startKubernetesApi('nyc');
  t.after(() => api.stop());
  const discovery = kubernetesDiscovery({ type: 'kubernetes', namespace: 'nyc', labelSelector: 'app=strait-locator', portName: 'locator', apiUrl: api.apiUrl, tokenFile: api.tokenFile, caFile: api.caFile });
  return { discovery, seed: async (locators) => api.serve(locators), knowsSites: false };
});

test('directory discovery ignores entries not refreshed within the staleness limit (a crashed locator)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'strait-discovery-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const discovery = directoryDiscovery(dir);
  await discovery.publish({ site: 1, name: 'old', address: { host: '10.0.0.1', port: 1 } });
  const longAgo = new Date(Date.now() - 3600_000);
  utimesSync(join(dir, 'site-1', 'old.json'), longAgo, longAgo);
  await discovery.publish({ site: 1, name: 'fresh', address: { host: '10.0.0.2', port: 2 } });
  assert.deepEqual(await discovery.find(1), [{ host: '10.0.0.2', port: 2 }]);
});

test('kubernetes discovery sends the token and selector, and skips pods not running or without the port', async (t) => {
  const api = await startKubernetesApi('nyc');
  t.after(() => api.stop());
  const locator = (name: string, host: string) => ({ site: 1, name, address: { host, port: 10334 } });
  api.serve([locator('nyc-0', '10.244.0.5')], [
    pod('nyc', locator('nyc-pending', '10.244.0.6'), 'Pending'),
    { metadata: { name: 'other' }, spec: { containers: [{ name: 'x', ports: [{ name: 'http', containerPort: 80 }] }] }, status: { phase: 'Running', podIP: '10.244.0.7' } },
  ]);
  const discovery = kubernetesDiscovery({ type: 'kubernetes', namespace: 'nyc', labelSelector: 'app=strait-locator', portName: 'locator', apiUrl: api.apiUrl, tokenFile: api.tokenFile, caFile: api.caFile });
  assert.deepEqual(await discovery.find(undefined), [{ host: '10.244.0.5', port: 10334 }]);
  assert.deepEqual(api.requests.at(-1), { path: '/api/v1/namespaces/nyc/pods', labelSelector: 'app=strait-locator', authorized: true });
  const wrongTokenFile = join(mkdtempSync(join(tmpdir(), 'strait-token-')), 'token');
  writeFileSync(wrongTokenFile, 'not-the-token\n');
  t.after(() => rmSync(wrongTokenFile, { force: true }));
  const wrongToken = kubernetesDiscovery({ type: 'kubernetes', namespace: 'nyc', labelSelector: 'app=x', portName: 'locator', apiUrl: api.apiUrl, tokenFile: wrongTokenFile, caFile: api.caFile });
  await assert.rejects(wrongToken.find(undefined), /answered 401/);
});

test('a server started with no locators list joins its site through directory discovery', async (t) => {
  const { Cleanup } = await import('../../bench/processes.ts');
  const { startMember, strait } = await import('../../bench/strait-site.ts');
  const root = mkdtempSync(join(tmpdir(), 'strait-discovery-site-'));
  const cleanup = new Cleanup('discovery test');
  t.after(async () => {
    await cleanup.stopAll();
    rmSync(root, { recursive: true, force: true });
  });
  const shared = join(root, 'shared');
  const yaml = `discovery: { type: directory, path: ${shared} }\n`;
  for (const name of ['locator-1', 'server-1']) {
    mkdirSync(join(root, name), { recursive: true });
    writeFileSync(join(root, name, 'strait.yaml'), name === 'server-1' ? `${yaml}site-id: 1\nregions:\n  R: { type: replicate }\n` : yaml);
  }
  const locator = await startMember(cleanup, 'locator', 'locator-1', join(root, 'locator-1'), ['--port', '0']);
  assert.deepEqual(await directoryDiscovery(shared).find(1), [{ host: '127.0.0.1', port: Number(/\[(\d+)\]/.exec(locator.address)![1]) }]);
  await startMember(cleanup, 'server', 'server-1', join(root, 'server-1'), ['--server-port', '0']);
  const members = await strait(['list', 'members', '--locator', locator.address, '--json']);
  assert.equal(members.status, 0, members.stderr);
  assert.deepEqual((JSON.parse(members.stdout) as { name: string }[]).map((member) => member.name).sort(), ['locator-1', 'server-1']);
});
