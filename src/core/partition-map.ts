// Partitioned regions' bucket maps: which servers hold each bucket, which of them is its primary,
// and how the maps change with the view. Pure functions: the coordinator runs them inside
// nextView (views.ts), so every member installs the same assignment with the same view, and a
// locator that takes over continues from the maps of the last view.
//
// Rules:
// - A key's bucket is FNV-1a of its UTF-16 code units modulo the region's bucket count; clients
//   and servers compute the same bucket.
// - A bucket is created on first use (a write, or a server offering what it recovered from
//   disk) on 1 + redundant-copies servers that host the region and are ready, least loaded
//   first: fewest copies of this region's buckets, then fewest primaries, then the oldest. Never
//   two copies on one server. Its primary is the chosen server with the fewest primaries.
// - A copy that leaves the view (or stops hosting the region) is dropped; when it was the
//   primary, the copy with the fewest primaries takes over — every copy holds every
//   acknowledged write, since the primary acknowledges once every copy has it. A bucket left
//   with no copy is lost (more servers failed than it had copies) and is created anew on use.
// - Repair adds pending members to buckets short of copies; a pending member receives the
//   bucket's writes at once and its image from the primary, then becomes a copy (`ready`).

import { StraitError } from '../errors.ts';
import type { BucketAssignment, PartitionMap, PartitionSettings, RegionSpec, ViewMember } from '../protocol/messages.ts';
import { PARTITION_DEFAULTS } from './config.ts';

/** True when every copy of `bucket` is down with its disk (it waits for one of them). */
export function isOffline(map: PartitionMap | undefined, bucket: number): boolean {
  return map?.offline?.some((entry) => entry.bucket === bucket) === true;
}

/**
 * A region spec as members keep it: a partitioned one with every setting (defaults filled in),
 * a replicated one without partition settings.
 */
export function normalizeRegionSpec(spec: RegionSpec): RegionSpec {
  if (spec.type !== 'partition') {
    if (spec.partition === undefined) return spec;
    const { partition: _ignored, ...rest } = spec;
    return rest;
  }
  return { ...spec, partition: { ...PARTITION_DEFAULTS, ...spec.partition } };
}

export { bucketOf } from '../protocol/buckets.ts';

/** The servers that may take new copies of `region`'s buckets: ready, hosting it, oldest first. */
export function eligibleHosts(members: readonly ViewMember[], region: string): ViewMember[] {
  return members
    .filter((member) => member.info.role === 'server' && member.ready && member.info.regions.includes(region))
    .sort((a, b) => a.joinSeq - b.joinSeq);
}

/** What a view change asks of the bucket maps besides following the membership. */
export interface PartitionChange {
  /** Create these buckets (a write needs them), or with `held`, `member` offers what it recovered. */
  readonly create?: readonly { readonly region: string; readonly settings: PartitionSettings; readonly persistent: boolean; readonly buckets: readonly number[]; readonly member: string; readonly held?: boolean }[];
  /** `member` holds its image of the bucket: it becomes a copy. */
  readonly ready?: readonly { readonly region: string; readonly bucket: number; readonly member: string }[];
  /** Restore redundancy in these regions now (their recovery delay passed). */
  readonly repair?: readonly string[];
  /** Even out copies and primaries in these regions (`strait rebalance`). */
  readonly rebalance?: readonly string[];
}

/** Copies and primaries per member in one map. */
interface Load {
  copies: Map<string, number>;
  primaries: Map<string, number>;
}

function loadOf(map: PartitionMap): Load {
  const load: Load = { copies: new Map(), primaries: new Map() };
  for (const bucket of map.buckets) {
    if (bucket === null) continue;
    for (const id of [...bucket.copies, ...bucket.pending]) load.copies.set(id, (load.copies.get(id) ?? 0) + 1);
    load.primaries.set(bucket.primary, (load.primaries.get(bucket.primary) ?? 0) + 1);
  }
  return load;
}

function adjust(counts: Map<string, number>, id: string, delta: number): void {
  counts.set(id, (counts.get(id) ?? 0) + delta);
}

/**
 * `count` more holders for a bucket already held by `holders`: least loaded first, and among
 * equally loaded ones those sharing the fewest buckets with the holders already chosen, so a
 * lost server's buckets are spread over all the others rather than falling on one partner.
 */
function choose(map: PartitionMap, candidates: readonly ViewMember[], load: Load, holders: readonly string[], count: number): string[] {
  const chosen = [...holders];
  const picked: string[] = [];
  for (let round = 0; round < count; round++) {
    const remaining = candidates.filter((member) => !chosen.includes(member.info.id));
    if (remaining.length === 0) break;
    // Buckets each member shares with those chosen so far: one pass over the map per round.
    const shared = new Map<string, number>();
    if (chosen.length > 0) {
      for (const bucket of map.buckets) {
        if (bucket === null) continue;
        const together = chosen.filter((id) => holds(bucket, id)).length;
        if (together === 0) continue;
        for (const id of [...bucket.copies, ...bucket.pending]) adjust(shared, id, together);
      }
    }
    const next = [...remaining].sort((a, b) =>
      (load.copies.get(a.info.id) ?? 0) - (load.copies.get(b.info.id) ?? 0)
      || (shared.get(a.info.id) ?? 0) - (shared.get(b.info.id) ?? 0)
      || (load.primaries.get(a.info.id) ?? 0) - (load.primaries.get(b.info.id) ?? 0)
      || a.joinSeq - b.joinSeq)[0]!;
    chosen.push(next.info.id);
    picked.push(next.info.id);
  }
  return picked;
}

function fewestPrimaries(ids: readonly string[], load: Load, joinSeq: (id: string) => number): string {
  return [...ids].sort((a, b) => (load.primaries.get(a) ?? 0) - (load.primaries.get(b) ?? 0) || joinSeq(a) - joinSeq(b))[0]!;
}

/** The number of servers that should hold each bucket. */
export function copiesWanted(settings: PartitionSettings): number {
  return 1 + settings.redundantCopies;
}

/** True when some created bucket of `map` has fewer holders than it should. */
export function underRedundant(map: PartitionMap): boolean {
  const wanted = copiesWanted(map.settings);
  return map.buckets.some((bucket) => bucket !== null && bucket.copies.length + bucket.pending.length < wanted);
}

/** True when a repair would add a copy: a bucket short of holders and a server not holding it. */
export function repairable(map: PartitionMap, eligible: readonly ViewMember[]): boolean {
  const wanted = copiesWanted(map.settings);
  return map.buckets.some((bucket) => bucket !== null && bucket.copies.length + bucket.pending.length < wanted
    && eligible.some((member) => !holds(bucket, member.info.id)));
}

/**
 * The bucket maps after a view change: `members` is the new view's member list, `previous`
 * the old one's (to see who became eligible). Returns undefined when no map remains.
 */
export function nextPartitions(
  maps: readonly PartitionMap[] | undefined, previousMembers: readonly ViewMember[], members: readonly ViewMember[], change: PartitionChange,
): PartitionMap[] | undefined {
  const byRegion = new Map((maps ?? []).map((map) => [map.region, { ...map, buckets: [...map.buckets], ...(map.offline !== undefined ? { offline: [...map.offline] } : {}) }]));
  const names = new Map([...previousMembers, ...members].map((member) => [member.info.id, member.info.name]));
  for (const create of change.create ?? []) {
    if (!byRegion.has(create.region)) {
      byRegion.set(create.region, { region: create.region, settings: create.settings, persistent: create.persistent, buckets: new Array<BucketAssignment | null>(create.settings.totalNumBuckets).fill(null) });
    }
  }
  const joinSeqs = new Map(members.map((member) => [member.info.id, member.joinSeq]));
  const joinSeq = (id: string): number => joinSeqs.get(id) ?? Number.MAX_SAFE_INTEGER;
  const result: PartitionMap[] = [];
  for (const map of byRegion.values()) {
    const hosting = new Set(members.filter((member) => member.info.role === 'server' && member.info.regions.includes(map.region)).map((member) => member.info.id));
    const lost = dropDeparted(map, hosting, joinSeq, (id) => names.get(id) ?? id);
    for (const create of change.create ?? []) if (create.region === map.region) createBuckets(map, create, members, hosting, joinSeq, names.get(create.member) ?? create.member);
    for (const ready of change.ready ?? []) if (ready.region === map.region) markReady(map, ready.bucket, ready.member);
    const eligible = eligibleHosts(members, map.region);
    const before = new Set(eligibleHosts(previousMembers, map.region).map((member) => member.info.id));
    const gained = eligible.some((member) => !before.has(member.info.id));
    const { recoveryDelayMs, startupRecoveryDelayMs } = map.settings;
    // With no recovery delay a bucket short of copies gets them with any view change (a loss,
    // or a bucket an offer brought back with one copy).
    const short = (lost || (change.create ?? []).length > 0) && recoveryDelayMs === 0 && underRedundant(map);
    if (change.repair?.includes(map.region) === true || short || (gained && startupRecoveryDelayMs === 0)) repair(map, eligible);
    if (change.rebalance?.includes(map.region) === true) {
      repair(map, eligible);
      map.buckets = rebalance(map, eligible).buckets;
    }
    // A map nobody hosts and with nothing in it is forgotten (its region was destroyed).
    if (map.offline?.length === 0) delete map.offline;
    if (hosting.size > 0 || map.buckets.some((bucket) => bucket !== null) || map.offline !== undefined) result.push(map);
  }
  return result.length === 0 ? undefined : result;
}

/** Drops holders no longer in the view or hosting the region; true when any bucket lost one. */
function dropDeparted(map: PartitionMap, hosting: ReadonlySet<string>, joinSeq: (id: string) => number, nameOf: (id: string) => string): boolean {
  let lost = false;
  const load = loadOf(map);
  map.buckets = map.buckets.map((bucket, index) => {
    if (bucket === null) return null;
    const copies = bucket.copies.filter((id) => hosting.has(id));
    const pending = bucket.pending.filter((id) => hosting.has(id));
    if (copies.length === bucket.copies.length && pending.length === bucket.pending.length) return bucket;
    lost = true;
    if (copies.length === 0) {
      // Every copy is gone. In memory the bucket's entries are gone too; on disk they wait.
      if (map.persistent) map.offline = [...(map.offline ?? []), { bucket: index, last: bucket.copies.map(nameOf) }];
      return null;
    }
    const primary = copies.includes(bucket.primary) ? bucket.primary : fewestPrimaries(copies, load, joinSeq);
    if (primary !== bucket.primary) {
      adjust(load.primaries, bucket.primary, -1);
      adjust(load.primaries, primary, 1);
    }
    // A move whose replacement left is called off: the leaving copy stays.
    const leaving = (bucket.leaving ?? []).filter((id) => copies.includes(id) && pending.length > 0);
    return { primary, copies: [primary, ...copies.filter((id) => id !== primary)], pending, ...(leaving.length > 0 ? { leaving } : {}) };
  });
  return lost;
}

function createBuckets(
  map: PartitionMap, create: NonNullable<PartitionChange['create']>[number], members: readonly ViewMember[], hosting: ReadonlySet<string>, joinSeq: (id: string) => number,
  memberName: string,
): void {
  const load = loadOf(map);
  const wanted = copiesWanted(map.settings);
  const eligible = eligibleHosts(members, map.region);
  if (create.held === true && hosting.has(create.member)) releaseUnheld(map, new Set(create.buckets), memberName);
  for (const index of create.buckets) {
    if (index >= map.buckets.length) continue;
    const bucket = map.buckets[index]!;
    if (create.held === true) {
      // A server offering what it recovered from disk: the bucket is its if nobody holds it,
      // otherwise it joins as a pending copy when one is missing (its image merges by tag).
      if (!hosting.has(create.member)) continue;
      const offline = map.offline?.find((entry) => entry.bucket === index);
      // A bucket whose copies are all down comes back only from one of its last copies: any
      // other server's disk may lack writes they acknowledged.
      if (offline !== undefined && !offline.last.includes(memberName)) continue;
      if (bucket === null) {
        map.buckets[index] = { primary: create.member, copies: [create.member], pending: [] };
        if (offline !== undefined) map.offline = map.offline!.filter((entry) => entry.bucket !== index);
        adjust(load.copies, create.member, 1);
        adjust(load.primaries, create.member, 1);
      } else if (!holds(bucket, create.member) && bucket.copies.length + bucket.pending.length < wanted) {
        map.buckets[index] = { ...bucket, pending: [...bucket.pending, create.member] };
        adjust(load.copies, create.member, 1);
      }
      continue;
    }
    if (bucket !== null || eligible.length === 0 || map.offline?.some((entry) => entry.bucket === index) === true) continue;
    const chosen = choose(map, eligible, load, [], wanted);
    const primary = fewestPrimaries(chosen, load, joinSeq);
    map.buckets[index] = { primary, copies: [primary, ...chosen.filter((id) => id !== primary)], pending: [] };
    for (const id of chosen) adjust(load.copies, id, 1);
    adjust(load.primaries, primary, 1);
  }
}

/**
 * A server offering what it recovered names every bucket its disk holds: an offline bucket it
 * was a last copy of and does not offer is one it never held an acknowledged write of (a copy
 * has each on disk before the write is acknowledged). Once every last copy came back that way,
 * no acknowledged write of the bucket exists, and it is released — created anew on its next
 * write — instead of waiting forever (a bucket assigned to a server that never learned of it
 * before it died did exactly that).
 */
function releaseUnheld(map: PartitionMap, offered: ReadonlySet<number>, memberName: string): void {
  if (map.offline === undefined) return;
  map.offline = map.offline.flatMap((entry) => {
    if (offered.has(entry.bucket) || !entry.last.includes(memberName)) return [entry];
    const returned = [...new Set([...(entry.returned ?? []), memberName])];
    if (entry.last.every((name) => returned.includes(name))) return [];
    return [{ ...entry, returned }];
  });
}

function markReady(map: PartitionMap, index: number, member: string): void {
  const bucket = map.buckets[index];
  if (bucket === null || bucket === undefined || !bucket.pending.includes(member)) return;
  let copies = [...bucket.copies, member];
  let primary = bucket.primary;
  let leaving = bucket.leaving ?? [];
  // A copy a rebalance moves away leaves now that its replacement holds the bucket; a leaving
  // primary hands the bucket to the replacement, which received every write while pending.
  const gone = leaving.find((id) => copies.includes(id));
  if (gone !== undefined && copies.length > copiesWanted(map.settings)) {
    copies = copies.filter((id) => id !== gone);
    leaving = leaving.filter((id) => id !== gone);
    if (primary === gone) primary = member;
  }
  const pending = bucket.pending.filter((id) => id !== member);
  // No replacement left pending: nothing more can leave.
  if (pending.length === 0) leaving = [];
  map.buckets[index] = { primary, copies: [primary, ...copies.filter((id) => id !== primary)], pending, ...(leaving.length > 0 ? { leaving } : {}) };
}

/** One bucket's copy or primary moving from one member to another. */
export type BucketMove = readonly [bucket: number, from: string, to: string];

/**
 * Evens out `map` over `eligible`: copies first (a copy moves from the member holding the most
 * to the one holding the fewest, as a pending member replacing a leaving copy, until they differ
 * by at most one), then primaries among each bucket's ready copies. Returns the new buckets and
 * the moves; buckets already moving are left alone. Pure and deterministic.
 */
export function rebalance(map: PartitionMap, eligible: readonly ViewMember[]): { buckets: (BucketAssignment | null)[]; moves: BucketMove[]; primaryMoves: BucketMove[] } {
  const buckets = [...map.buckets];
  const ids = eligible.map((member) => member.info.id);
  const moves: BucketMove[] = [];
  const primaryMoves: BucketMove[] = [];
  if (ids.length < 2) return { buckets, moves, primaryMoves };
  const copies = new Map(ids.map((id) => [id, 0]));
  const primaries = new Map(ids.map((id) => [id, 0]));
  for (const bucket of buckets) {
    if (bucket === null) continue;
    for (const id of [...bucket.copies, ...bucket.pending]) if (copies.has(id)) adjust(copies, id, 1);
    if (primaries.has(bucket.primary)) adjust(primaries, bucket.primary, 1);
  }
  const order = (counts: Map<string, number>) => [...ids].sort((a, b) => (counts.get(a)! - counts.get(b)!) || ids.indexOf(a) - ids.indexOf(b));
  const settled = (bucket: BucketAssignment) => bucket.pending.length === 0 && (bucket.leaving ?? []).length === 0;
  for (let guard = 0; guard < buckets.length * 4; guard++) {
    const sorted = order(copies);
    const least = sorted[0]!;
    const most = sorted.at(-1)!;
    if (copies.get(most)! - copies.get(least)! <= 1) break;
    const index = buckets.findIndex((bucket) => bucket !== null && settled(bucket) && bucket.copies.includes(most) && !holds(bucket, least));
    if (index < 0) break;
    const bucket = buckets[index]!;
    buckets[index] = { ...bucket, pending: [...bucket.pending, least], leaving: [most] };
    moves.push([index, most, least]);
    adjust(copies, most, -1);
    adjust(copies, least, 1);
    if (bucket.primary === most) {
      // The replacement becomes primary when the move completes.
      adjust(primaries, most, -1);
      adjust(primaries, least, 1);
    }
  }
  // Primaries: hand a bucket's primary to one of its copies while that narrows the gap between
  // the two by more than one (a chain of such hand-overs reaches members sharing no bucket).
  for (let guard = 0; guard < buckets.length * 4; guard++) {
    let best: { index: number; from: string; to: string; gap: number } | undefined;
    for (const [index, bucket] of buckets.entries()) {
      if (bucket === null || !settled(bucket) || !primaries.has(bucket.primary)) continue;
      for (const copy of bucket.copies) {
        if (copy === bucket.primary || !primaries.has(copy)) continue;
        const gap = primaries.get(bucket.primary)! - primaries.get(copy)!;
        if (gap > 1 && (best === undefined || gap > best.gap)) best = { index, from: bucket.primary, to: copy, gap };
      }
    }
    if (best === undefined) break;
    const bucket = buckets[best.index]!;
    buckets[best.index] = { ...bucket, primary: best.to, copies: [best.to, ...bucket.copies.filter((id) => id !== best.to)] };
    primaryMoves.push([best.index, best.from, best.to]);
    adjust(primaries, best.from, -1);
    adjust(primaries, best.to, 1);
  }
  return { buckets, moves, primaryMoves };
}

/** Adds pending members to buckets short of copies, least loaded first. */
function repair(map: PartitionMap, eligible: readonly ViewMember[]): void {
  const load = loadOf(map);
  const wanted = copiesWanted(map.settings);
  map.buckets = map.buckets.map((bucket) => {
    if (bucket === null) return null;
    let next = bucket;
    while (next.copies.length + next.pending.length < wanted) {
      const current = next;
      const candidate = choose(map, eligible.filter((member) => !holds(current, member.info.id)), load, [...current.copies, ...current.pending], 1)[0];
      if (candidate === undefined) break;
      next = { ...next, pending: [...next.pending, candidate] };
      adjust(load.copies, candidate, 1);
    }
    return next;
  });
}

/** True when `member` holds the bucket or is taking its image. */
export function holds(bucket: BucketAssignment, member: string): boolean {
  return bucket.copies.includes(member) || bucket.pending.includes(member);
}

/** A region's map in a view's maps. */
export function mapOf(maps: readonly PartitionMap[] | undefined, region: string): PartitionMap | undefined {
  return maps?.find((map) => map.region === region);
}

/** The bucket's copies and pending members but `excluded`: where its writes go from its primary. */
export function holdersBut(assigned: BucketAssignment, ...excluded: (string | undefined)[]): Set<string> {
  return new Set([...assigned.copies, ...assigned.pending].filter((id) => !excluded.includes(id)));
}
