// Replication behind real NAT: sites in network namespaces joined by a bridge (the "public"
// network), some behind iptables NATs, every member a real `strait` process started as a user
// starts it. Each scenario writes at every site and asserts that every acknowledged write
// reached every other site with the value last written (each key is written 1 then 2, so an
// old write applied again after the new one would show as 1).
//
//   1. flat: both sites on the public network.
//   2. site 2 behind a NAT that forwards its locator and receiver ports, advertising a
//      split-horizon name (private inside, the NAT's public address outside).
//   3. site 2 behind a masquerading NAT with no inbound port: its receivers dial out.
//   6 (without routers). three sites in a mesh mixing 1–3: public, forwarded and dial-out.
//
// Needs root, iproute2 and iptables (.ci/run installs them). Namespaces, /etc/netns files and
// processes are removed when each test ends, passed or failed.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsLab, type SiteKind } from './netns.ts';
import { awaitReplicated, FORWARDED_PORTS, startSite, stopSites, writeAt, type StartedSite } from './nat-sites.ts';

/** Keys each site writes (twice each). */
const KEYS_PER_SITE = 1000;
/** How long replication may take to catch up once the writes are acknowledged. */
const REPLICATION_TIMEOUT_MS = 90_000;

async function scenario(t: TestContext, kinds: readonly SiteKind[]): Promise<void> {
  const lab = new NetnsLab();
  const root = mkdtempSync(join(tmpdir(), 'strait-nat-'));
  const sites: StartedSite[] = [];
  t.after(async () => {
    try {
      await stopSites(lab, sites);
    } finally {
      await lab.destroy();
      rmSync(root, { recursive: true, force: true });
    }
  });
  const networks = kinds.map((kind, index) => lab.site(index + 1, kind, kind === 'forwarded' ? FORWARDED_PORTS : []));
  lab.writeHosts();
  for (const network of networks) sites.push(await startSite(lab, root, network, networks));

  const writes = await Promise.all(sites.map((site) => writeAt(lab, site, `site${site.network.id}`, KEYS_PER_SITE)));
  for (const acknowledged of writes) assert.equal(acknowledged, 2 * KEYS_PER_SITE);
  for (const writer of sites) await awaitReplicated(lab, sites, writer, `site${writer.network.id}`, KEYS_PER_SITE, REPLICATION_TIMEOUT_MS);
}

test('NAT 1: two sites on a flat network replicate both ways', async (t) => {
  await scenario(t, ['public', 'public']);
});

test('NAT 2: a site behind a port-forwarding NAT with a split-horizon advertised name replicates both ways', async (t) => {
  await scenario(t, ['public', 'forwarded']);
});

test('NAT 3: a site behind a masquerading NAT with no inbound port replicates both ways over links it dials out', async (t) => {
  await scenario(t, ['public', 'masquerade']);
});

test('NAT 6 (no routers yet): three sites in a mesh — public, port-forwarded, dial-out — all converge', async (t) => {
  await scenario(t, ['public', 'forwarded', 'masquerade']);
});
