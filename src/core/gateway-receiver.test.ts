import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../errors.ts';
import type { Reply } from '../protocol/connection.ts';
import type { GatewayEvent, ResponseBody } from '../protocol/messages.ts';
import { SILENT_LOGGER } from '../runtime/runtime.ts';
import { Simulator } from '../sim/simulator.ts';
import { GatewayReceiver, type RemoteAdmission } from './gateway-receiver.ts';
import { encodeBatchEvents, eventPackr } from './sender-queue.ts';
import { NO_METRICS } from './member-admin.ts';
import { RecordingPool, recordingConnection, serverInfo, viewOf } from './parts.test-support.ts';
import { RegionTable } from './region-table.ts';
import { Subscriptions } from './subscriptions.ts';
import { WritePath } from './write-path.ts';

function setup() {
  const sim = new Simulator({ seed: 1, log: 'silent' });
  const runtime = sim.host('server-1').runtime();
  const pool = new RecordingPool();
  const regions = new RegionTable(runtime.storage, 'server-1', undefined, SILENT_LOGGER);
  regions.open({ name: 'R', type: 'replicate', persistent: true });
  regions.open({ name: 'P', type: 'partition', persistent: false });
  const info = serverInfo('server-1', { site: 2 });
  const forwarded: string[] = [];
  const gateways = { queue: (_region: unknown, entry: readonly unknown[]) => forwarded.push(entry[0] as string), sync: () => {}, admit: () => {} };
  const writes = new WritePath(runtime, pool.asPool(), { memberName: 'server-1', info: () => info, state: () => 'ready', storageFailed: () => {} },
    { regions, subscriptions: new Subscriptions('server-1', 1 << 20), gateways }, NO_METRICS, SILENT_LOGGER);
  writes.viewInstalled(viewOf([info]));
  // Partitioned regions' events go to their buckets' primaries: here, a stand-in that refuses
  // the key 'bad' and answers once the test says so.
  const admitted: { region: string; keys: string[]; finish: () => void }[] = [];
  const partitions: RemoteAdmission = {
    admitRemote: (region, events, pending, outcome) => {
      pending.expect();
      admitted.push({ region: region.spec.name, keys: events.map((event) => event.key), finish: () => {
        for (const event of events) if (event.key === 'bad') outcome.refused.push({ index: event.index, code: 'STRAIT_KEY_INVALID', message: 'bad key' });
        pending.settle();
      } });
    },
  };
  const receiver = new GatewayReceiver(runtime, { startPort: 5000, endPort: 5001, bindAddress: undefined, hostnameForClients: undefined, manualStart: false },
    { memberName: 'server-1', site: () => 2, requireReady: () => {} }, { regions, writes, gateways, partitions }, NO_METRICS, SILENT_LOGGER);
  return { sim, regions, receiver, forwarded, admitted };
}

function send(receiver: GatewayReceiver, events: GatewayEvent[], role: 'gateway' | 'client' = 'gateway', packed?: Uint8Array): () => ResponseBody<'gatewayBatch'> | string {
  let result: ResponseBody<'gatewayBatch'> | string = 'no reply';
  const reply: Reply<'gatewayBatch'> = { ok: (body) => { result = body; }, fail: (error) => { result = error.code; } };
  try {
    receiver.onBatch(recordingConnection('site-1/sender', role), { sender: '1/to-2', batchId: 1, events: packed === undefined ? events : [], ...(packed === undefined ? {} : { packed }) }, reply);
  } catch (error) {
    result = (error as StraitError).code;
  }
  return () => result;
}

const event = (region: string, key: string, counter: number): GatewayEvent => [region, key, new Uint8Array([counter]), [1, 1000 + counter, 'site1-server#1', counter], false];

test('events for a region this site lacks are refused one by one; the rest is applied and acknowledged after the disk', () => {
  const { sim, regions, receiver, forwarded } = setup();
  const result = send(receiver, [event('R', 'a', 1), event('MISSING', 'b', 2), event('R', 'c', 3)]);
  assert.equal(result(), 'no reply', 'the acknowledgement waits for the region on disk');
  sim.run();
  const answer = result();
  assert.ok(typeof answer !== 'string');
  assert.equal(answer.applied, 2);
  assert.deepEqual(answer.refused.map((refusal) => [refusal.index, refusal.code]), [[1, 'STRAIT_REGION_NOT_FOUND']]);
  assert.deepEqual(regions.require('R').keys().sort(), ['a', 'c']);
  assert.deepEqual(forwarded, ['a', 'c'], 'applied events go on to this site\'s gateway senders');
  assert.deepEqual(receiver.statistics, { batches: 1, events: 3, duplicates: 0, unflaggedDuplicates: 0, refused: 1 });
});

test('a resent event is counted as a duplicate and has no second effect', () => {
  const { sim, regions, receiver } = setup();
  send(receiver, [event('R', 'a', 1)]);
  sim.run();
  send(receiver, [[...event('R', 'a', 1).slice(0, 4), true] as GatewayEvent]);
  sim.run();
  assert.equal(receiver.statistics.duplicates, 1);
  assert.deepEqual(regions.require('R').get('a'), new Uint8Array([1]));
});

test('only gateway senders may send batches', () => {
  const { receiver } = setup();
  assert.equal(send(receiver, [event('R', 'a', 1)], 'client')(), 'STRAIT_MESSAGE_INVALID');
});

test('an event this site cannot store is refused alone; the others in the batch are applied', () => {
  const { sim, regions, receiver } = setup();
  const tooLong = 'k'.repeat(3000); // longer than the persistent region's storage allows
  const result = send(receiver, [event('R', 'a', 1), event('R', tooLong, 2), event('R', 'c', 3)]);
  sim.run();
  const answer = result();
  assert.ok(typeof answer !== 'string');
  assert.deepEqual(answer.refused.map((refusal) => [refusal.index, refusal.code]), [[1, 'STRAIT_KEY_INVALID']]);
  assert.deepEqual(regions.require('R').keys().sort(), ['a', 'c']);
});

test('events for a partitioned region go to their buckets\' primaries; the batch is answered once they applied, with their refusals', () => {
  const { sim, regions, receiver, admitted } = setup();
  const result = send(receiver, [event('P', 'a', 1), event('R', 'b', 2), event('P', 'bad', 3)]);
  sim.run();
  assert.deepEqual(admitted.map((entry) => [entry.region, entry.keys]), [['P', ['a', 'bad']]]);
  assert.equal(result(), 'no reply', 'waits for the partitioned region\'s primaries');
  assert.equal(regions.require('P').size, 0, 'never applied outside the bucket here');
  admitted[0]!.finish();
  sim.run();
  const answer = result();
  assert.ok(typeof answer !== 'string');
  assert.equal(answer.applied, 2);
  assert.deepEqual(answer.refused.map((refusal) => [refusal.index, refusal.code]), [[2, 'STRAIT_KEY_INVALID']]);
  assert.deepEqual(receiver.statistics, { batches: 1, events: 3, duplicates: 0, unflaggedDuplicates: 0, refused: 1 });
});

test('a batch of packed events (the bytes of the sender\'s queue records) is applied as its events are; its values are copied into the region\'s arena; garbage is refused', () => {
  const { sim, regions, receiver } = setup();
  const events = [event('R', 'a', 1), event('R', 'b', 2)];
  const packed = encodeBatchEvents(events.map((sent, index) => ({ event: sent, encoded: eventPackr.pack(sent), possibleDuplicate: index === 1 })));
  const result = send(receiver, [], 'gateway', packed);
  sim.run();
  const answer = result();
  assert.ok(typeof answer !== 'string', String(answer));
  assert.equal(answer.applied, 2);
  assert.deepEqual(regions.require('R').keys().sort(), ['a', 'b']);
  const value = regions.require('R').get('a')!;
  assert.deepEqual(regions.require('R').arenaBytes, { slabs: 4096, held: 2, compactions: 0 }, 'the values are held in the region\'s arena: they pin none of the batch they came in');
  // Well-formed MessagePack that is not a valid event: a 64-bit tag field, a member that is not a string.
  const bigTag = eventPackr.pack([['R', 'c', new Uint8Array([1]), [1, 2n ** 63n, 'site1-server#1', 9], false]]);
  const numberMember = eventPackr.pack([['R', 'c', new Uint8Array([1]), [1, 1009, 5, 9], false]]);
  for (const garbage of [new Uint8Array([0xc1]), new Uint8Array([0x92, 0x01]), eventPackr.pack(['not', 'events']), new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]), bigTag, numberMember]) {
    assert.equal(send(receiver, [], 'gateway', garbage)(), 'STRAIT_MESSAGE_INVALID');
  }
  assert.equal(regions.require('R').get('c'), undefined, 'nothing of a refused batch applied');
});
