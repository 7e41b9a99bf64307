// Partitioned regions in the simulator: one site, real clients, virtual time. Buckets are
// created on use and spread over the servers, every key lives on 1 + redundant-copies servers,
// a lost server's buckets get their copies back, and a persistent region comes back from disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PartitionMap, PartitionSettings, RegionSpec } from '../protocol/messages.ts';
import { PARTITION_DEFAULTS } from './config.ts';
import { holds, mapOf } from './partition-map.ts';
import type { Server } from './server.ts';
import { SimSite } from './sim-site.test-support.ts';

const PARTITIONED = (persistent = false, settings: Partial<PartitionSettings> = {}): RegionSpec => ({
  name: 'P', type: 'partition', persistent, partition: { ...PARTITION_DEFAULTS, ...settings },
});

function liveServers(site: SimSite): Server[] {
  return site.serverHosts.filter((host) => host.alive).map((host) => site.server(host.name));
}

function currentMap(site: SimSite): PartitionMap {
  const map = mapOf(liveServers(site)[0]!.view?.partitions, 'P');
  assert.ok(map !== undefined, 'the view holds the bucket map of P');
  return map;
}

/** Every created bucket has `copies` ready copies, on distinct live servers, the primary among them. */
function redundant(site: SimSite, copies: number): boolean {
  const live = new Set(liveServers(site).map((server) => server.view === null ? '' : server.admin.status().info.id));
  const map = currentMap(site);
  return map.buckets.every((bucket) => bucket === null || (
    bucket.copies.length === copies && bucket.pending.length === 0 && new Set(bucket.copies).size === copies
    && bucket.copies.every((id) => live.has(id)) && bucket.copies[0] === bucket.primary));
}

/** Buckets each server is primary of, and holds a ready copy of. */
function perServer(map: PartitionMap): { primaries: Map<string, number>; copies: Map<string, number> } {
  const primaries = new Map<string, number>();
  const copies = new Map<string, number>();
  for (const bucket of map.buckets) {
    if (bucket === null) continue;
    primaries.set(bucket.primary, (primaries.get(bucket.primary) ?? 0) + 1);
    for (const id of bucket.copies) copies.set(id, (copies.get(id) ?? 0) + 1);
  }
  return { primaries, copies };
}

/** Which servers hold `key` in region P (by their own memory). */
function holders(site: SimSite, key: string): string[] {
  return liveServers(site).filter((server) => server.region('P')?.get(key) !== undefined).map((server) => server.admin.status().info.name);
}

test('a partitioned region spreads buckets over the servers, each key on two of them; reads, keys and size see the whole region', async () => {
  const site = new SimSite({ servers: 4, regions: [PARTITIONED()] });
  await site.waitFor('site ready', () => site.ready());
  const client = site.client();
  const region = client.region<string>('P');
  const keys = Array.from({ length: 1000 }, (_, index) => `key-${index}`);
  for (let start = 0; start < keys.length; start += 100) {
    await site.settle(Promise.all(keys.slice(start, start + 100).map((key) => region.put(key, `value of ${key}`))));
  }
  await site.settle(region.putAll(Array.from({ length: 200 }, (_, index) => [`bulk-${index}`, `bulk ${index}`] as const)));
  const map = currentMap(site);
  assert.equal(map.buckets.length, 113);
  assert.ok(map.buckets.filter((bucket) => bucket !== null).length > 100, 'almost every bucket was used by 1,200 keys');
  assert.ok(redundant(site, 2), 'every bucket on two distinct servers, primary first');
  // Balance: primaries and copies per server within a few of the mean.
  const { primaries, copies } = perServer(map);
  const used = map.buckets.filter((bucket) => bucket !== null).length;
  for (const count of primaries.values()) assert.ok(Math.abs(count - used / 4) <= 2, `primaries per server ${[...primaries.values()]}`);
  for (const count of copies.values()) assert.ok(Math.abs(count - (2 * used) / 4) <= 2, `copies per server ${[...copies.values()]}`);
  // Every key on exactly the two servers of its bucket, and nowhere else.
  for (const key of [...keys, 'bulk-7']) assert.equal(holders(site, key).length, 2, `${key} on ${holders(site, key)}`);
  for (const key of keys.slice(0, 50)) assert.equal(await site.settle(region.get(key)), `value of ${key}`);
  assert.equal(await site.settle(region.get('never-written')), undefined);
  assert.equal(await site.settle(region.size()), 1200);
  const listed = await site.settle(region.keys());
  assert.equal(listed.length, 1200);
  // Single-hop: once the client learned the map, its operations go straight to the primaries.
  await site.advance(11_000);
  await site.settle(region.get('key-0'));
  await site.advance(1000);
  const before = client.singleHopCounts.direct;
  for (const key of keys.slice(0, 200)) assert.equal(await site.settle(region.get(key)), `value of ${key}`);
  await site.settle(Promise.all(keys.slice(0, 200).map((key) => region.put(key, `value of ${key}`))));
  assert.ok(client.singleHopCounts.direct - before >= 380, `straight to the primary: ${JSON.stringify(client.singleHopCounts)}`);
  assert.ok(await site.settle(region.remove('key-3')));
  assert.equal(await site.settle(region.get('key-3')), undefined);
  assert.equal(await site.settle(region.size()), 1199);
  assert.deepEqual(site.failures, []);
  await client.close();
});

test('a crashed server loses no key: its buckets are served by their copies and get a second copy again', async () => {
  const site = new SimSite({ servers: 4, regions: [PARTITIONED()], seed: 3 });
  await site.waitFor('site ready', () => site.ready());
  const client = site.client();
  const region = client.region<string>('P');
  const keys = Array.from({ length: 600 }, (_, index) => `k${index}`);
  await site.settle(Promise.all(keys.map((key) => region.put(key, key))));
  // The client knows the map (single-hop): operations to the crashed server's buckets fall back.
  await site.advance(11_000);
  await site.settle(region.get('k0'));
  await site.advance(1000);
  await site.settle(Promise.all(keys.slice(0, 50).map((key) => region.get(key))));
  await site.advance(1000);
  await site.settle(Promise.all(keys.slice(0, 50).map((key) => region.get(key))));
  assert.ok(client.singleHopCounts.direct > 0, JSON.stringify(client.singleHopCounts));
  site.serverHosts[1]!.crash();
  await site.waitFor('the view drops the crashed server and every bucket has two copies again', () => {
    const live = liveServers(site);
    return live.every((server) => server.view?.members.filter((member) => member.info.role === 'server').length === 3) && redundant(site, 2);
  }, 60_000);
  for (const key of keys) assert.equal(holders(site, key).length, 2, `${key} held by ${holders(site, key)}`);
  const values = await site.settle(Promise.all(keys.map((key) => region.get(key))));
  assert.deepEqual(values, keys);
  // Single-hop relearns the map: with the new primaries known, reads go straight to them again.
  await site.advance(6000);
  await site.settle(region.get('k0'));
  await site.advance(1000);
  await site.settle(Promise.all(keys.map((key) => region.get(key))));
  const directBefore = client.singleHopCounts.direct;
  assert.deepEqual(await site.settle(Promise.all(keys.map((key) => region.get(key)))), keys);
  assert.equal(client.singleHopCounts.direct - directBefore, keys.length, `every read straight to a live primary: ${JSON.stringify(client.singleHopCounts)}`);
  // Writes go on through the new primaries.
  await site.settle(Promise.all(keys.slice(0, 100).map((key) => region.put(key, `${key}+`))));
  for (const key of keys.slice(0, 100)) assert.equal(holders(site, key).length, 2);
  assert.equal(await site.settle(region.size()), 600);
  assert.deepEqual(site.failures, []);
  await client.close();
});

test('with redundant-copies 0 a bucket lives on one server; a server that joins later takes new buckets', async () => {
  const site = new SimSite({ servers: 2, regions: [PARTITIONED(false, { redundantCopies: 0, totalNumBuckets: 16 })] });
  await site.waitFor('site ready', () => site.ready());
  const client = site.client();
  const region = client.region<string>('P');
  await site.settle(Promise.all(Array.from({ length: 4 }, (_, index) => region.put(`first-${index}`, 'v'))));
  const host = site.sim.host('server-3');
  site.serverHosts.push(host);
  site.startServer(host);
  await site.waitFor('three servers ready', () => site.ready());
  await site.settle(Promise.all(Array.from({ length: 200 }, (_, index) => region.put(`later-${index}`, 'v'))));
  assert.ok(redundant(site, 1));
  const third = site.server('server-3').admin.status().info.id;
  assert.ok(currentMap(site).buckets.some((bucket) => bucket?.primary === third), 'the newcomer is primary of some new buckets');
  assert.equal(await site.settle(region.size()), 204);
  await client.close();
});

test('a persistent partitioned region comes back from disk after every server restarts', async () => {
  const site = new SimSite({ servers: 2, regions: [PARTITIONED(true, { totalNumBuckets: 16 })], seed: 5 });
  await site.waitFor('site ready', () => site.ready());
  const client = site.client();
  const region = client.region<string>('P');
  const keys = Array.from({ length: 100 }, (_, index) => `d${index}`);
  await site.settle(Promise.all(keys.map((key) => region.put(key, key))));
  for (const host of site.serverHosts) host.crash();
  await site.advance(5000);
  for (const host of site.serverHosts) site.startServer(host);
  await site.waitFor('both servers back and every bucket on both', () => site.ready() && redundant(site, 2), 60_000);
  const values = await site.settle(Promise.all(keys.map((key) => region.get(key))));
  assert.deepEqual(values, keys);
  assert.equal(await site.settle(region.size()), 100);
  await client.close();
});

test('subscriptions to a partitioned region are refused with a coded error', async () => {
  const site = new SimSite({ servers: 1, regions: [PARTITIONED()] });
  await site.waitFor('site ready', () => site.ready());
  const client = site.client();
  const events = client.region<string>('P').subscribe();
  const refused = await site.settle(events.ready.then(() => undefined, (error: unknown) => error));
  assert.equal((refused as { code?: string }).code, 'STRAIT_UNSUPPORTED');
  await client.close();
});

test('a fifth server and a rebalance even out copies and primaries while writes go on; no key is lost', async () => {
  const site = new SimSite({ servers: 4, regions: [PARTITIONED()], seed: 7 });
  await site.waitFor('site ready', () => site.ready());
  const client = site.client();
  const region = client.region<string>('P');
  const keys = Array.from({ length: 800 }, (_, index) => `r${index}`);
  await site.settle(Promise.all(keys.map((key) => region.put(key, key))));
  const host = site.sim.host('server-5');
  site.serverHosts.push(host);
  site.startServer(host);
  await site.waitFor('five servers ready', () => site.ready());
  const fifth = site.server('server-5').admin.status().info.id;
  assert.ok(!currentMap(site).buckets.some((bucket) => bucket !== null && holds(bucket, fifth)), 'a newcomer takes no existing bucket before a rebalance');
  const plan = await site.settle(client.rebalance({ simulate: true }));
  const moves = plan.regions[0]!.moves.length;
  assert.ok(moves >= 40, `the plan moves about a fifth of 226 copies to server-5 (${moves})`);
  assert.ok(plan.regions[0]!.moves.every(([, , to]) => to === 'server-5'));
  assert.ok(!currentMap(site).buckets.some((bucket) => bucket !== null && holds(bucket, fifth)), 'a simulation changes nothing');
  await site.settle(client.rebalance());
  // Writes while buckets move: every one acknowledged must be there afterwards.
  const during = await site.settle(Promise.all(keys.map((key) => region.put(key, `${key}'`))));
  assert.equal(during.length, keys.length);
  await site.waitFor('the moves complete', () => redundant(site, 2), 60_000);
  // The primaries' round follows the copies' moves.
  await site.advance(2000);
  await site.waitFor('every copy settled', () => redundant(site, 2), 60_000);
  const map = currentMap(site);
  const { primaries, copies } = perServer(map);
  const spread = (counts: Map<string, number>) => Math.max(...counts.values()) - Math.min(...counts.values());
  assert.equal(copies.size, 5);
  assert.ok(spread(copies) <= 1, `copies per server ${[...copies.values()]}`);
  assert.ok(spread(primaries) <= 1, `primaries per server ${[...primaries.values()]}`);
  for (const key of keys) assert.equal(holders(site, key).length, 2, `${key} held by ${holders(site, key)}`);
  assert.deepEqual(await site.settle(Promise.all(keys.map((key) => region.get(key)))), keys.map((key) => `${key}'`));
  const again = await site.settle(client.rebalance({ simulate: true }));
  assert.equal(again.regions[0]!.moves.length, 0, 'balanced: nothing more to move');
  assert.deepEqual(site.failures, []);
  await client.close();
});
