// PartitionedRegions as a part, with views built by the test: a copy whose view lags the
// primary's keeps the writes the primary sent it under the newer view, through the views in
// between that do not name it yet; with a view as new, a server that holds no copy of the
// bucket ignores them. (The loss this guards against was seen with real processes: a bucket's
// first writes reached its copy before the copy installed the view that created the bucket,
// and the views in between dropped them.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Reply } from '../protocol/connection.ts';
import type { BucketAssignment, PartitionMap, View } from '../protocol/messages.ts';
import { SILENT_LOGGER } from '../runtime/runtime.ts';
import { Simulator } from '../sim/simulator.ts';
import { PARTITION_DEFAULTS } from './config.ts';
import { KeyPager } from './key-pager.ts';
import { NO_METRICS } from './member-admin.ts';
import { PartitionedRegions } from './partitioned-regions.ts';
import { RecordingPool, serverInfo, viewOf } from './parts.test-support.ts';
import { RegionTable } from './region-table.ts';
import { Subscriptions } from './subscriptions.ts';
import { WritePath } from './write-path.ts';

const SETTINGS = { ...PARTITION_DEFAULTS, totalNumBuckets: 4 };

function setup() {
  const sim = new Simulator({ seed: 1, log: 'silent' });
  const runtime = sim.host('server-1').runtime();
  const pool = new RecordingPool();
  const regions = new RegionTable(runtime.storage, 'server-1', undefined, SILENT_LOGGER);
  const region = regions.open({ name: 'P', type: 'partition', persistent: false, partition: SETTINGS });
  const members = ['server-1', 'server-2', 'server-3'].map((name) => serverInfo(name, { regions: ['P'] }));
  const me = members[0]!;
  const writes = new WritePath(runtime, pool.asPool(), { memberName: 'server-1', info: () => me, state: () => 'ready', storageFailed: () => {} },
    { regions, subscriptions: new Subscriptions('server-1', 1 << 20), gateways: { queue: () => {}, sync: () => {}, admit: () => {} } }, NO_METRICS, SILENT_LOGGER);
  let view: View | null = null;
  const partitions = new PartitionedRegions(runtime, pool.asPool(), {
    memberName: 'server-1', memberId: () => me.id, view: () => view, ready: () => true, offerView: () => {}, requestTimeoutMs: 3000, bucketQueues: (_region, _bucket, _view, _pending, done) => done(),
  }, { regions, writes, pager: new KeyPager() }, SILENT_LOGGER);
  writes.buckets = partitions;
  /** Installs view `id` whose map assigns each bucket as `buckets` says. */
  const install = (id: number, buckets: (BucketAssignment | null)[]) => {
    const map: PartitionMap = { region: 'P', settings: SETTINGS, persistent: false, buckets };
    view = { ...viewOf(members, id), partitions: [map] };
    writes.viewInstalled(view);
    partitions.viewInstalled(view);
  };
  const replicate = (key: string, viewId: number, counter: number) => {
    let answered = false;
    const reply: Reply<'replicate'> = { ok: () => { answered = true; }, fail: (error) => assert.fail(error.message) };
    writes.onReplicate({ region: 'P', entries: [[key, new Uint8Array([counter]), [1, counter, 'server-2#1', 1]]], viewId }, reply, 'server-2');
    sim.run();
    assert.ok(answered, 'answered');
  };
  return { region, install, replicate, members, writes, sim, pool };
}

test('a copy keeps writes sent under a view it has not installed yet, and drops the bucket once a view moves it away', () => {
  const { region, install, replicate, members } = setup();
  const [me, two, three] = members.map((member) => member.id) as [string, string, string];
  const key = 'k';
  const bucket = region.bucketOf(key);
  const none = (): (BucketAssignment | null)[] => [null, null, null, null];
  const assigned = (copies: string[]): (BucketAssignment | null)[] => none().map((_, index) => (index === bucket ? { primary: copies[0]!, copies, pending: [] } : null));
  install(1, none());
  // server-2 created the bucket in view 3 (server-2 primary, us the copy) and wrote to it.
  replicate(key, 3, 1);
  install(2, none());
  assert.deepEqual(region.get(key), new Uint8Array([1]), 'view 2 does not name the bucket yet: kept');
  install(3, assigned([two, me]));
  assert.deepEqual(region.get(key), new Uint8Array([1]), 'view 3 makes us its copy');
  // View 4 moves the bucket to server-3: dropped here.
  install(4, assigned([two, three]));
  assert.equal(region.get(key), undefined, 'dropped once the bucket is held elsewhere');
  // A late write under view 4 (or older) to a bucket not ours in view 4: ignored, still answered.
  replicate(key, 4, 2);
  assert.equal(region.get(key), undefined, 'not applied: no copy of the bucket here in a view as new');
  assert.deepEqual(region.heldBuckets(), []);
});

test('a write decided under an older view by a server no longer the bucket\'s primary is refused (STRAIT_BUCKET_MOVED), not acknowledged', () => {
  const { region, install, members, writes, sim, pool } = setup();
  const [me, two] = members.map((member) => member.id) as [string, string];
  const bucket = region.bucketOf('k');
  const assigned = (copies: string[]) => [null, null, null, null].map((_, index) => (index === bucket ? { primary: copies[0]!, copies, pending: [] } : null));
  install(5, assigned([two, me]));
  /** Replicates a new change of key k from `from` under `viewId`; what was answered, read later. */
  const send = (from: string, viewId: number, counter: number) => {
    const outcome = { value: 'no answer' };
    const reply: Reply<'replicate'> = { ok: () => { outcome.value = 'ok'; }, fail: (error) => { outcome.value = error.code; } };
    writes.onReplicate({ region: 'P', entries: [['k', new Uint8Array([counter]), [1, counter, `${from}#1`, counter]]], gateway: true, viewId }, reply, from);
    sim.run();
    return outcome;
  };
  assert.equal(send('server-3', 4, 1).value, 'STRAIT_BUCKET_MOVED', 'server-3 was primary in view 4; view 5 names server-2');
  assert.equal(region.get('k'), undefined, 'nothing applied');
  assert.equal(send('server-2', 4, 2).value, 'ok', 'the primary of view 5, lagging a view: its write stands');
  install(6, assigned([me, two]));
  const late = send('server-3', 5, 3);
  assert.deepEqual(region.get('k'), new Uint8Array([3]), 'this server is the primary now: it takes the late write');
  const onwards = pool.open('replicate');
  assert.equal(onwards.length, 1, 'and passes it on to the bucket\'s other holder');
  assert.equal(onwards[0]!.address.host, 'host-server-2');
  assert.equal(late.value, 'no answer', 'not before the holder has it');
  onwards[0]!.answer(undefined, {});
  sim.run();
  assert.equal(late.value, 'ok', 'answered once the holder has it');
});
