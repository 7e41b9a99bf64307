// The bucket maps' rules as properties: whatever sequence of creations, joins, losses, images
// completing and rebalances, a bucket's holders are distinct members of the view hosting the
// region, its primary is its first copy, a bucket keeps a copy while any of its copies lives,
// and once every image completed each bucket has as many copies as it wants and servers allow.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { MemberInfo, PartitionMap, PartitionSettings, View, ViewMember } from '../protocol/messages.ts';
import { bucketOf, copiesWanted, eligibleHosts, isOffline, rebalance, repairable, underRedundant } from './partition-map.ts';
import { firstView, nextView } from './views.ts';

const SETTINGS: PartitionSettings = { totalNumBuckets: 16, redundantCopies: 1, recoveryDelayMs: 0, startupRecoveryDelayMs: 0 };

function server(index: number, incarnation = 0): MemberInfo {
  return { id: incarnation === 0 ? `s${index}` : `s${index}#${incarnation}`, name: `s${index}`, role: 'server', site: 1, address: { host: `h${index}`, port: 1 }, regions: ['P'] };
}

const locator: MemberInfo = { id: 'l', name: 'l', role: 'locator', site: 1, address: { host: 'l', port: 1 }, regions: [] };

function ready(view: View, ids: readonly string[]): View {
  return nextView(view, { update: new Map(ids.map((id) => [id, { ready: true, load: 0 }])) });
}

function mapOfView(view: View): PartitionMap | undefined {
  return view.partitions?.find((map) => map.region === 'P');
}

function checkInvariants(view: View): void {
  const map = mapOfView(view);
  if (map === undefined) return;
  const hosting = new Set(view.members.filter((member) => member.info.regions.includes('P')).map((member) => member.info.id));
  for (const [index, bucket] of map.buckets.entries()) {
    if (bucket === null) continue;
    const all = [...bucket.copies, ...bucket.pending];
    assert.equal(new Set(all).size, all.length, `bucket ${index}: a member holds it twice: ${JSON.stringify(bucket)}`);
    assert.ok(all.every((id) => hosting.has(id)), `bucket ${index}: a holder outside the view: ${JSON.stringify(bucket)}`);
    assert.equal(bucket.copies[0], bucket.primary, `bucket ${index}: the primary is the first copy`);
    assert.ok(all.length <= copiesWanted(map.settings) + 1, `bucket ${index}: too many holders: ${JSON.stringify(bucket)}`);
  }
}

type Step =
  | { kind: 'create'; buckets: number[] }
  | { kind: 'join'; which: number }
  | { kind: 'crash'; which: number }
  | { kind: 'image'; which: number }
  | { kind: 'rebalance' }
  | { kind: 'offer'; which: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('create' as const), buckets: fc.array(fc.integer({ min: 0, max: 15 }), { minLength: 1, maxLength: 6 }) }),
  fc.record({ kind: fc.constant('join' as const), which: fc.nat() }),
  fc.record({ kind: fc.constant('crash' as const), which: fc.nat() }),
  fc.record({ kind: fc.constant('image' as const), which: fc.nat() }),
  fc.record({ kind: fc.constant('rebalance' as const) }),
  fc.record({ kind: fc.constant('offer' as const), which: fc.nat() }),
);

describe('bucket maps', () => {
  it('bucketOf is stable and spreads keys over the buckets', () => {
    assert.equal(bucketOf('key-1', 113), bucketOf('key-1', 113));
    const counts = new Array<number>(113).fill(0);
    for (let index = 0; index < 113_000; index++) counts[bucketOf(`key-${index}`, 113)]! += 1;
    assert.ok(Math.min(...counts) > 800 && Math.max(...counts) < 1200, `keys per bucket ${Math.min(...counts)}..${Math.max(...counts)}`);
  });

  it('keep their invariants through creations, joins, crashes, images and rebalances', () => {
    fc.assert(fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), fc.boolean(), (steps, persistent) => {
      let view = firstView(1, locator, 0);
      let next = 1;
      let incarnations = 0;
      const crashed: number[] = [];
      view = nextView(view, { add: [server(next++), server(next++)] });
      view = ready(view, ['s1', 's2']);
      for (const action of steps) {
        const servers = view.members.filter((member) => member.info.role === 'server');
        const before = mapOfView(view);
        if (action.kind === 'create') {
          view = nextView(view, { partitions: { create: [{ region: 'P', settings: SETTINGS, persistent, buckets: action.buckets, member: servers[0]?.info.id ?? 'none' }] } });
          for (const { bucket: index } of mapOfView(view)?.offline ?? []) assert.equal(mapOfView(view)!.buckets[index], null, `offline bucket ${index} was created anew`);
        } else if (action.kind === 'offer' && servers.length > 0 && (before?.offline ?? []).length > 0) {
          // A restarted server offers what its disk holds: the offline buckets whose last copies
          // it was among come back on it; the others stay offline.
          const offered = before!.offline!;
          const rightful = servers.filter((candidate) => offered.some((entry) => entry.last.includes(candidate.info.name)));
          const pool = rightful.length > 0 && action.which % 2 === 0 ? rightful : servers;
          const member = pool[action.which % pool.length]!.info;
          view = nextView(view, { partitions: { create: [{ region: 'P', settings: SETTINGS, persistent, buckets: offered.map((entry) => entry.bucket), member: member.id, held: true }] } });
          for (const entry of offered) {
            const mine = entry.last.includes(member.name);
            assert.equal(mapOfView(view)!.buckets[entry.bucket]?.primary === member.id, mine, `offer of ${entry.bucket} by ${member.name}, last ${entry.last}`);
            assert.equal(isOffline(mapOfView(view), entry.bucket), !mine);
          }
        } else if (action.kind === 'join') {
          // A new server, or a crashed one restarting under its name (a new member id).
          const awaited = crashed.findIndex((index) => (before?.offline ?? []).some((entry) => entry.last.includes(`s${index}`)));
          const pick = awaited >= 0 ? awaited : 0;
          const restarting = crashed.length > 0 && action.which % 2 === 0 ? crashed.splice(pick, 1)[0]! : undefined;
          const info = restarting === undefined ? server(next++) : server(restarting, ++incarnations);
          view = ready(nextView(view, { add: [info] }), [info.id]);
        } else if (action.kind === 'crash' && servers.length > 0) {
          const victim = servers[action.which % servers.length]!;
          crashed.push(Number(victim.info.name.slice(1)));
          view = nextView(view, { remove: [{ id: victim.info.id, name: victim.info.name, reason: 'crashed' }] });
          // A bucket with another copy keeps a copy; one without goes offline when persistent.
          for (const [index, bucket] of (before?.buckets ?? []).entries()) {
            if (bucket === null) continue;
            if (bucket.copies.every((id) => id === victim.info.id)) {
              assert.equal(isOffline(mapOfView(view), index), persistent, `bucket ${index} lost its last copy (persistent ${persistent})`);
              continue;
            }
            assert.ok(mapOfView(view)?.buckets[index] !== null, `bucket ${index} lost though a copy lived: ${JSON.stringify(bucket)}`);
          }
        } else if (action.kind === 'image') {
          const pending = (before?.buckets ?? []).flatMap((bucket, index) => (bucket === null ? [] : bucket.pending.map((member) => ({ index, member }))));
          const chosen = pending[action.which % Math.max(1, pending.length)];
          if (chosen !== undefined) view = nextView(view, { partitions: { ready: [{ region: 'P', bucket: chosen.index, member: chosen.member }] } });
        } else if (action.kind === 'rebalance' && before !== undefined) {
          view = nextView(view, { partitions: { rebalance: ['P'] } });
        }
        checkInvariants(view);
      }
      // Let every image complete: each bucket ends with the copies it wants (or every server).
      for (let round = 0; round < 64; round++) {
        const map = mapOfView(view);
        const pending = (map?.buckets ?? []).flatMap((bucket, index) => (bucket === null ? [] : bucket.pending.map((member) => ({ region: 'P', bucket: index, member }))));
        if (pending.length === 0) break;
        view = nextView(view, { partitions: { ready: pending } });
        checkInvariants(view);
      }
      const map = mapOfView(view);
      const servers = eligibleHosts(view.members, 'P').length;
      for (const bucket of map?.buckets ?? []) {
        if (bucket === null) continue;
        assert.equal(bucket.pending.length, 0);
        assert.equal(bucket.copies.length, Math.min(copiesWanted(SETTINGS), servers), JSON.stringify(bucket));
      }
    }), { numRuns: 1000 });
  });

  it('a rebalance of balanced buckets moves nothing', () => {
    let view = firstView(1, locator, 0);
    view = ready(nextView(view, { add: [server(1), server(2), server(3)] }), ['s1', 's2', 's3']);
    view = nextView(view, { partitions: { create: [{ region: 'P', settings: SETTINGS, persistent: false, buckets: Array.from({ length: 16 }, (_, index) => index), member: 's1' }] } });
    const plan = rebalance(mapOfView(view)!, eligibleHosts(view.members, 'P') as ViewMember[]);
    assert.deepEqual([plan.moves.length, plan.primaryMoves.length], [0, 0]);
  });

  it('an offline bucket none of whose last copies holds it on disk is released once they all came back; one that does hold it brings it back', () => {
    let view = firstView(1, locator, 0);
    view = ready(nextView(view, { add: [server(1), server(2)] }), ['s1', 's2']);
    view = nextView(view, { partitions: { create: [{ region: 'P', settings: SETTINGS, persistent: true, buckets: [0, 1], member: 's1' }] } });
    const holders = (index: number) => [...mapOfView(view)!.buckets[index]!.copies].sort();
    assert.deepEqual([holders(0), holders(1)], [['s1', 's2'], ['s1', 's2']]);
    view = nextView(view, { remove: [{ id: 's1', name: 's1', reason: 'crashed' }, { id: 's2', name: 's2', reason: 'crashed' }] });
    assert.ok(isOffline(mapOfView(view), 0) && isOffline(mapOfView(view), 1));
    const offer = (index: number, buckets: number[]) => {
      const info = server(index, 1);
      view = ready(nextView(view, { add: [info] }), [info.id]);
      view = nextView(view, { partitions: { create: [{ region: 'P', settings: SETTINGS, persistent: true, buckets, member: info.id, held: true }] } });
    };
    // s1 returns holding bucket 1 only: bucket 1 is its again; bucket 0 still waits for s2.
    offer(1, [1]);
    assert.equal(mapOfView(view)!.buckets[1]?.primary, 's1#1');
    assert.ok(isOffline(mapOfView(view), 0), 's2 may hold bucket 0');
    assert.deepEqual(mapOfView(view)!.offline![0]!.returned, ['s1']);
    // s2 returns without bucket 0 either: no acknowledged write of it existed; it is released.
    offer(2, []);
    assert.ok(!isOffline(mapOfView(view), 0));
    assert.equal(mapOfView(view)!.buckets[0], null, 'created anew on its next write');
  });

  it('a bucket short of copies is repairable only when some server does not hold it yet', () => {
    let view = firstView(1, locator, 0);
    view = ready(nextView(view, { add: [server(1)] }), ['s1']);
    view = nextView(view, { partitions: { create: [{ region: 'P', settings: SETTINGS, persistent: false, buckets: [0], member: 's1' }] } });
    assert.ok(underRedundant(mapOfView(view)!), 'one server: one copy of two');
    assert.ok(!repairable(mapOfView(view)!, eligibleHosts(view.members, 'P')), 'nobody else could take the second');
    const joined = nextView(view, { add: [server(2)] });
    assert.ok(repairable(mapOfView(joined)!, eligibleHosts(ready(joined, ['s2']).members, 'P')), 'a second server could');
  });
});
