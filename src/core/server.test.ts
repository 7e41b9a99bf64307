// Server-level scenarios in the simulator: one site, real clients, virtual time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../errors.ts';
import { decodeValue, encodeValue, type SubscriptionEvent } from '../client/client.ts';
import { CONNECTION_BUFFERED_BYTES_MAX } from './server.ts';
import { rawClient, sendRaw as send, SimSite } from './sim-site.test-support.ts';
import { NO_METRICS } from './member-admin.ts';

test('a subscriber that stops reading is cut off with STRAIT_SUBSCRIBER_TOO_SLOW; the server buffers a bounded amount', async () => {
  const site = new SimSite({ servers: 1 });
  await site.waitFor('site ready', () => site.ready());
  const subscriber = site.client();
  const writer = site.client();
  const events = subscriber.region<string>('R').subscribe({ bufferedEventsMax: 1_000_000 });
  await site.settle(events.ready);
  // The subscriber's process stops reading its socket (blocked event loop, stopped process).
  const server = site.server('server-1');
  const stream = (subscriber as unknown as { server: { stream: { pause(): void; resume(): void } } }).server.stream;
  stream.pause();
  const value = 'x'.repeat(64 * 1024);
  for (let round = 0; round < 40; round++) {
    await site.settle(Promise.all(Array.from({ length: 10 }, (_, index) => writer.region<string>('R').put(`k${round}-${index}`, value))));
  }
  assert.equal(server.admin.regions()[0]!.size, 400);
  const held = site.sim.network.stats().bytesInFlight;
  assert.ok(held < CONNECTION_BUFFERED_BYTES_MAX + 1024 * 1024, `the server held ${held} bytes for the stalled subscriber, not all 26 MB`);
  stream.resume();
  let failure: unknown;
  let received = 0;
  const consume = (async () => {
    try {
      for await (const _event of events) received += 1;
    } catch (error) {
      failure = error;
    }
  })();
  await site.waitFor('the subscriber hears that it was cut off', () => failure !== undefined);
  await consume;
  assert.ok(failure instanceof StraitError);
  assert.equal(failure.code, 'STRAIT_SUBSCRIBER_TOO_SLOW');
  assert.ok(received < 400, `it got what was sent before the cut (${received})`);
  await subscriber.close();
  await writer.close();
});

test('a resolver that throws refuses that write with STRAIT_RESOLVER_FAILED; the server keeps serving', async () => {
  const site = new SimSite({ servers: 2, server: () => ({ conflictResolver: () => { throw new Error('resolver bug'); } }) });
  await site.waitFor('site ready', () => site.ready());
  const client = site.client();
  const region = client.region<string>('R');
  await site.settle(region.put('k', 'first'));
  const refused = await site.settle(region.put('k', 'second').then(() => undefined, (error: unknown) => error));
  assert.ok(refused instanceof StraitError);
  assert.equal(refused.code, 'STRAIT_RESOLVER_FAILED');
  assert.equal(await site.settle(region.get('k')), 'first');
  await site.settle(region.put('other', 'fine'));
  assert.deepEqual(site.failures, []);
  await client.close();
});

test('a disk that refuses a commit fails the waiting write with STRAIT_STORAGE and stops that server; the site goes on', async () => {
  const site = new SimSite({ servers: 2, regions: [{ name: 'R', type: 'replicate', persistent: true }] });
  await site.waitFor('site ready', () => site.ready());
  const stopped: string[] = [];
  for (const [name, server] of site.servers) server.onFatal((error) => stopped.push(`${name}: ${error.code}`));
  const client = site.client();
  const region = client.region<string>('R');
  await site.settle(region.put('before', 'v'));
  site.serverHosts[0]!.storage.failCommits('ENOSPC: no space left on device');
  const outcome = await site.settle(region.put('during', 'v').then(() => 'ok', (error: unknown) => (error as StraitError).code));
  // Either the write failed with the disk's error, or (retried on the other server after the
  // failing one left) it succeeded there: never acknowledged by the broken member alone.
  assert.ok(outcome === 'STRAIT_STORAGE' || outcome === 'ok', outcome);
  await site.waitFor('the failing server stopped', () => stopped.length === 1);
  assert.deepEqual(stopped, ['server-1: STRAIT_STORAGE']);
  assert.equal(site.server('server-1').currentState, 'stopped');
  await site.settle(region.put('after', 'v'));
  assert.equal(await site.settle(region.get('before')), 'v');
  await client.close();
});

test('a region created at runtime is acknowledged only once every server has it; a write is never skipped on a server that should host it', async () => {
  const site = new SimSite({ servers: 2 });
  await site.waitFor('site ready', () => site.ready());
  // server-2 can't be reached while the region is created (shorter than the member timeout).
  site.sim.network.partition(['server-1'], ['server-2']);
  let created: { error?: string; created?: boolean } | undefined;
  site.server('server-1').admin.createRegion({ name: 'S', type: 'replicate', persistent: false }, (error, result) => {
    created = error === undefined ? { created: result!.created } : { error: error.code };
  });
  await site.advance(1000);
  assert.equal(created, undefined, 'not acknowledged while server-2 lacks it');
  site.sim.network.heal();
  await site.waitFor('creation acknowledged', () => created !== undefined);
  assert.deepEqual(created, { created: true });
  assert.ok(site.server('server-2').region('S') !== undefined);
  const client = site.client();
  for (let n = 0; n < 10; n++) await site.settle(client.region<number>('S').put(`k${n}`, n));
  for (const name of ['server-1', 'server-2']) assert.equal(site.server(name).region('S')!.size, 10, `${name} holds every write`);
  await client.close();
});

test('creating a region that exists elsewhere with other settings fails with that server\'s code', async () => {
  const site = new SimSite({ servers: 2, server: (name) => (name === 'server-2' ? { regions: [{ name: 'R', type: 'replicate', persistent: false }, { name: 'S', type: 'replicate', persistent: true }] } : {}) });
  await site.waitFor('site ready', () => site.ready());
  let outcome: string | undefined;
  site.server('server-1').admin.createRegion({ name: 'S', type: 'replicate', persistent: false }, (error) => { outcome = error?.code ?? 'ok'; });
  await site.waitFor('answered', () => outcome !== undefined);
  assert.equal(outcome, 'STRAIT_REGION_EXISTS');
});


test('a write retried on another server under the same request id is not applied again, so it cannot overwrite a newer write', async () => {
  const site = new SimSite({ servers: 2 });
  await site.waitFor('site ready', () => site.ready());
  const toFirst = rawClient(site, 'server-1');
  const toSecond = rawClient(site, 'server-2');
  const value = (text: string) => encodeValue(text);
  await send(site, toFirst, 'put', { region: 'R', key: 'k', value: value('first'), requestId: 'client-a:1' });
  // A newer write by someone else, then client A's retry of its first write (it timed out and
  // failed over): the retry must not win.
  await send(site, toSecond, 'put', { region: 'R', key: 'k', value: value('newer'), requestId: 'client-b:1' });
  await send(site, toSecond, 'put', { region: 'R', key: 'k', value: value('first'), requestId: 'client-a:1' });
  for (const name of ['server-1', 'server-2']) assert.equal(decodeValue(site.server(name).region('R')!.get('k')!), 'newer', name);
  // A retried remove reports what the first attempt found.
  const removed = await send(site, toFirst, 'remove', { region: 'R', key: 'k', requestId: 'client-a:2' });
  const retried = await send(site, toSecond, 'remove', { region: 'R', key: 'k', requestId: 'client-a:2' });
  assert.deepEqual([removed.existed, retried.existed], [true, true]);
  toFirst.close();
  toSecond.close();
});

/** A subscriber on region R collecting every event it sees, and a second client to write with. */
async function subscribeAndCollect(site: SimSite) {
  const subscriber = site.client();
  const writer = site.client();
  const events = subscriber.region<number>('R').subscribe();
  await site.settle(events.ready);
  const seen: SubscriptionEvent<number>[] = [];
  void (async () => {
    for await (const event of events) seen.push(event);
  })().catch(() => {});
  return { subscriber, writer, seen };
}

test('a subscription that fails over to another server says so with a gap event, then delivers every later change', async () => {
  const site = new SimSite({ servers: 2 });
  await site.waitFor('site ready', () => site.ready());
  const { subscriber, writer, seen } = await subscribeAndCollect(site);
  await site.settle(writer.region<number>('R').put('before', 1));
  await site.waitFor('the first change arrives', () => seen.length === 1);
  const victim = site.serverHosts.find((host) => host.name === subscriber.currentServer)!;
  victim.crash();
  await site.waitFor('the view drops the crashed server', () => site.ready());
  // The subscriber notices the lost connection and moves; changes from now on must arrive.
  await site.waitFor('the subscription moved', () => seen.some((event) => event.kind === 'gap'));
  for (let n = 0; n < 5; n++) await site.settle(writer.region<number>('R').put(`after-${n}`, n));
  await site.waitFor('the later changes arrive', () => seen.filter((event) => event.kind === 'change' && event.key.startsWith('after-')).length === 5);
  const gap = seen.find((event) => event.kind === 'gap');
  assert.equal(gap?.kind === 'gap' ? gap.code : undefined, 'STRAIT_SUBSCRIPTION_GAP');
  await subscriber.close();
  await writer.close();
});

test('keys come back in bounded pages, every live key once, tombstones excluded', async () => {
  const site = new SimSite({ servers: 1 });
  await site.waitFor('site ready', () => site.ready());
  const client = site.client();
  const region = client.region<number>('R');
  await site.settle(region.putAll(Array.from({ length: 25_000 }, (_, index) => [`k${String(index).padStart(5, '0')}`, index] as const)));
  await site.settle(region.remove('k00007'));
  const pages: number[] = [];
  const collected: string[] = [];
  await site.settle((async () => {
    for await (const page of region.keyPages({ pageKeys: 10_000 })) {
      pages.push(page.length);
      collected.push(...page);
    }
  })());
  assert.deepEqual(pages, [10_000, 10_000, 4999]);
  assert.equal(new Set(collected).size, 24_999);
  assert.ok(!collected.includes('k00007'));
  assert.equal((await site.settle(region.keys())).length, 24_999);
  await client.close();
});

test('a client closed while it is still connecting leaves no connection open behind it', async () => {
  for (const delayMs of [1, 4, 8]) {
    let clients = 0;
    const site = new SimSite({ servers: 1, metrics: { ...NO_METRICS, clients: (count) => { clients = count; } } });
    await site.waitFor('site ready', () => site.ready());
    const client = site.client();
    const opened = client.region('R').get('k').catch((error: unknown) => error);
    await site.advance(delayMs); // the server connection is still being opened
    await client.close();
    await site.settle(opened);
    await site.advance(1000);
    assert.equal(client.currentServer, undefined, `closed after ${delayMs} ms: no server connection kept`);
    assert.equal(clients, 0, `closed after ${delayMs} ms: the server sees no client left`);
  }
});

test('a subscription whose client is cut off from the whole site for a while comes back with a gap, then every later change', async () => {
  const site = new SimSite({ servers: 1 });
  await site.waitFor('site ready', () => site.ready());
  const { subscriber, writer, seen } = await subscribeAndCollect(site);
  site.sim.network.partition(['client-1'], ['locator-1', 'server-1']);
  await site.advance(8000); // longer than a reconnect attempt: the first ones fail
  site.sim.network.heal();
  await site.waitFor('the subscription came back', () => seen.some((event) => event.kind === 'gap'), 60_000);
  await site.settle(writer.region<number>('R').put('after', 1));
  await site.waitFor('a change after the outage arrives', () => seen.some((event) => event.kind === 'change' && event.key === 'after'));
  await subscriber.close();
  await writer.close();
});
