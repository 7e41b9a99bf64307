// The client's batching of the gets and puts of one turn (batching.ts) and the servers' answer to
// a batch (putBatch / getBatch), in the simulator: one request per turn, the order of calls kept,
// refusals entry by entry, a retried batch applied once and answered as the first attempt was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../errors.ts';
import { decodeValue, encodeValue } from './client.ts';
import { PARTITION_DEFAULTS } from '../core/config.ts';
import { rawClient, sendRaw as send, SimSite } from '../core/sim-site.test-support.ts';
import { NO_METRICS } from '../core/member-admin.ts';
import { OperationBatcher } from './batching.ts';

/** A resolver that throws for the key `bad` (an application's bug) and otherwise takes the newer write. */
const throwsOnBad = (key: string): 'existing' | 'incoming' => {
  if (key === 'bad') throw new Error('resolver bug');
  return 'incoming';
};

test('the puts and gets of one turn go as one request each, answered entry by entry, in the order they were made', async () => {
  const site = new SimSite({ servers: 2 });
  await site.waitFor('site ready', () => site.ready());
  const client = site.client();
  const region = client.region<number>('R');
  const before = client.batchCounts;
  await site.settle(Promise.all(Array.from({ length: 200 }, (_, index) => region.put(`k${index}`, index))));
  assert.deepEqual({ batches: client.batchCounts.batches - before.batches, operations: client.batchCounts.operations - before.operations }, { batches: 1, operations: 200 });
  for (const name of ['server-1', 'server-2']) assert.equal(site.server(name).region('R')!.size, 200, `${name} holds every put`);
  const values = await site.settle(Promise.all([...Array.from({ length: 50 }, (_, index) => region.get(`k${index}`)), region.get('never')]));
  assert.deepEqual(values, [...Array.from({ length: 50 }, (_, index) => index), undefined]);
  // One turn mixing operations: each call is sent after the ones made before it. A remove sent
  // ahead of the batched puts before it would find nothing; a get ahead of the remove, a value.
  const [, , removed, seen] = await site.settle(Promise.all([region.put('x', 1), region.put('x', 2), region.remove('x'), region.get('x')]));
  assert.equal(removed, true, 'the remove came after the puts before it');
  assert.equal(seen, undefined, 'the get came after the remove before it');
  const [, size] = await site.settle(Promise.all([region.put('y', 1), region.size()]));
  assert.equal(size, 201, 'the size came after the put before it');
  await client.close();
});

test('a put the server refuses alone fails alone with its code; the others of its batch are applied', async () => {
  const site = new SimSite({ servers: 2, server: () => ({ conflictResolver: throwsOnBad }) });
  await site.waitFor('site ready', () => site.ready());
  const client = site.client();
  const region = client.region<string>('R');
  await site.settle(region.put('bad', 'first'));
  const outcomes = await site.settle(Promise.all(['a', 'bad', 'b'].map((key) => region.put(key, `second ${key}`).then(() => 'ok', (error: unknown) => (error as StraitError).code))));
  assert.deepEqual(outcomes, ['ok', 'STRAIT_RESOLVER_FAILED', 'ok']);
  for (const name of ['server-1', 'server-2']) {
    const stored = site.server(name).region('R')!;
    assert.deepEqual(['a', 'bad', 'b'].map((key) => decodeValue(stored.get(key)!)), ['second a', 'first', 'second b'], name);
  }
  await client.close();
});

test('a batch retried on another server under its request id is not applied again and hears the same refusals', async () => {
  const site = new SimSite({ servers: 2, server: () => ({ conflictResolver: throwsOnBad }) });
  await site.waitFor('site ready', () => site.ready());
  const toFirst = rawClient(site, 'server-1');
  const toSecond = rawClient(site, 'server-2');
  await send(site, toFirst, 'put', { region: 'R', key: 'bad', value: encodeValue('before'), requestId: 'setup:1' });
  const batch = { region: 'R', entries: [['k', encodeValue('first')], ['bad', encodeValue('x')]] as [string, Uint8Array][], requestId: 'client-a:7' };
  const first = await send(site, toFirst, 'putBatch', batch);
  assert.deepEqual(first.refused.map((refusal) => [refusal.index, refusal.code]), [[1, 'STRAIT_RESOLVER_FAILED']]);
  // A newer write by someone else, then client A's retry (its answer was lost; it failed over).
  await send(site, toSecond, 'put', { region: 'R', key: 'k', value: encodeValue('newer'), requestId: 'client-b:1' });
  const retried = await send(site, toSecond, 'putBatch', batch);
  assert.deepEqual(retried.refused, first.refused, 'the retry is answered as the first attempt was');
  for (const name of ['server-1', 'server-2']) {
    assert.equal(decodeValue(site.server(name).region('R')!.get('k')!), 'newer', `${name}: the retry did not overwrite the newer write`);
  }
  toFirst.close();
  toSecond.close();
});

test('a partitioned region takes batched puts and gets through each key\'s primary', async () => {
  const site = new SimSite({ servers: 3, regions: [{ name: 'P', type: 'partition', persistent: false, partition: { ...PARTITION_DEFAULTS } }] });
  await site.waitFor('site ready', () => site.ready());
  const client = site.client();
  const region = client.region<string>('P');
  const keys = Array.from({ length: 300 }, (_, index) => `key-${index}`);
  await site.settle(Promise.all(keys.map((key) => region.put(key, `value of ${key}`))));
  assert.ok(client.batchCounts.operations >= 300, `the puts went in batches (${JSON.stringify(client.batchCounts)})`);
  const read = await site.settle(Promise.all(keys.map((key) => region.get(key))));
  assert.deepEqual(read, keys.map((key) => `value of ${key}`));
  assert.equal(await site.settle(region.size()), 300);
  // Once the client learned the primaries (single-hop), a batch goes in parts, each straight to
  // the primary of its keys: one request per primary, not one per key.
  await site.advance(11_000);
  await site.settle(region.get('key-0'));
  await site.advance(1000);
  // (The connection to each primary opens on its first use; that batch takes the usual path.)
  await site.settle(Promise.all(keys.map((key) => region.get(key))));
  await site.advance(1000);
  const before = { ...client.singleHopCounts, ...client.batchCounts };
  await site.settle(Promise.all(keys.map((key) => region.put(key, `second ${key}`))));
  assert.deepEqual(await site.settle(Promise.all(keys.map((key) => region.get(key)))), keys.map((key) => `second ${key}`));
  assert.equal(client.singleHopCounts.direct - before.direct, 600, `every put and get straight to its primary: ${JSON.stringify(client.singleHopCounts)}`);
  assert.ok(client.batchCounts.batches - before.batches <= 6, `in one part per primary each (${client.batchCounts.batches - before.batches} batches)`);
  await client.close();
});

test('with batching off every operation is a request of its own', async () => {
  const site = new SimSite({ servers: 1 });
  await site.waitFor('site ready', () => site.ready());
  const client = site.client(10_000, { batching: false });
  const region = client.region<number>('R');
  await site.settle(Promise.all(Array.from({ length: 20 }, (_, index) => region.put(`k${index}`, index))));
  assert.deepEqual(client.batchCounts, { batches: 0, operations: 0 });
  assert.equal(site.server('server-1').region('R')!.size, 20);
  await client.close();
});

test('a server counts a batch as the puts or gets it carries, refused entries as failed ones', async () => {
  const counted = new Map<string, number>();
  const metrics = { ...NO_METRICS, operation: (op: string, _ms: number, ok: boolean, count = 1) => counted.set(`${op} ${ok ? 'ok' : 'error'}`, (counted.get(`${op} ${ok ? 'ok' : 'error'}`) ?? 0) + count) };
  const site = new SimSite({ servers: 1, metrics, server: () => ({ conflictResolver: throwsOnBad }) });
  await site.waitFor('site ready', () => site.ready());
  const client = site.client();
  const region = client.region<string>('R');
  await site.settle(region.put('bad', 'first'));
  counted.clear();
  await site.settle(Promise.all(['a', 'bad', 'b'].map((key) => region.put(key, 'v').catch(() => undefined))));
  await site.settle(Promise.all(['a', 'b', 'c', 'd'].map((key) => region.get(key))));
  assert.deepEqual(Object.fromEntries(counted), { 'put ok': 2, 'put error': 1, 'get ok': 4 });
  await client.close();
});

test('the batcher keeps the process alive per batch, not per operation, until every operation settles', async () => {
  let holds = 0;
  let outstanding = 0;
  const answers: (() => void)[] = [];
  const deferred: (() => void)[] = [];
  const batcher = new OperationBatcher({
    send: (op, body) => new Promise((resolve) => answers.push(() => resolve((op === 'getBatch'
      ? { values: (body as { keys: string[] }).keys.map(() => null), refused: [] }
      : op === 'putBatch' ? { refused: [] } : { value: null }) as never))),
    routes: () => false,
    primaryOf: () => undefined,
    nextRequestId: () => `test:${holds}`,
    defer: (callback) => deferred.push(callback),
    hold: () => {
      holds += 1;
      outstanding += 1;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        outstanding -= 1;
      };
    },
  });
  const gets = Array.from({ length: 64 }, (_, index) => batcher.get('R', `k${index}`));
  assert.equal(outstanding, 1, 'batched, not yet sent: one hold');
  for (const callback of deferred.splice(0)) callback();
  assert.equal(answers.length, 1, 'one getBatch request');
  assert.equal(outstanding, 1, 'sent: the request holds, the run released');
  assert.equal(holds, 2);
  answers.shift()!();
  assert.deepEqual(await Promise.all(gets), Array.from({ length: 64 }, () => null));
  assert.equal(outstanding, 0, 'released once every get settled');
  // A lone put goes as a plain put, held the same way.
  const put = batcher.put('R', 'k', new Uint8Array([1]));
  for (const callback of deferred.splice(0)) callback();
  assert.equal(outstanding, 1);
  answers.shift()!();
  await put;
  assert.equal(outstanding, 0);
  assert.equal(holds, 4, 'two holds per batch, whatever it carries');
});
