// Pure functions over membership views. A view is the coordinator's statement of who is in the
// site; views of one lineage have strictly increasing ids. The coordinator is the oldest
// locator in the view (the lowest join sequence), as Geode prefers locators as coordinators.

import { assert } from '../errors.ts';
import type { MemberInfo, View, ViewMember } from '../protocol/messages.ts';
import { nextPartitions, type PartitionChange } from './partition-map.ts';

export type Departure = View['departed'][number];

/** The locator that should coordinate `members`: the one that joined first. */
export function coordinatorOf(members: readonly ViewMember[]): ViewMember | undefined {
  let oldest: ViewMember | undefined;
  for (const member of members) {
    if (member.info.role !== 'locator') continue;
    if (oldest === undefined || member.joinSeq < oldest.joinSeq) oldest = member;
  }
  return oldest;
}

export function firstView(site: number, creator: MemberInfo, createdAtMs: number): View {
  return {
    site,
    id: 1,
    lineage: [createdAtMs, creator.id],
    coordinator: creator.id,
    members: [{ info: creator, joinSeq: 1, load: 0, ready: true }],
    departed: [],
  };
}

function maxJoinSeq(view: View): number {
  let max = 0;
  for (const member of view.members) max = Math.max(max, member.joinSeq);
  return max;
}

export interface ViewChange {
  readonly add?: readonly MemberInfo[];
  readonly remove?: readonly Departure[];
  /** Members whose `ready` flag or load changed, or whose info did (same id: a receiver created at runtime). */
  readonly update?: ReadonlyMap<string, { ready: boolean; load: number; info?: MemberInfo }>;
  /** Bucket creations, readiness and repairs of partitioned regions (partition-map.ts). */
  readonly partitions?: PartitionChange;
}

/** The view after `change`, with the next id; the coordinator is recomputed. */
export function nextView(view: View, change: ViewChange): View {
  const removed = new Set((change.remove ?? []).map((departure) => departure.id));
  let joinSeq = maxJoinSeq(view);
  const members: ViewMember[] = [];
  for (const member of view.members) {
    if (removed.has(member.info.id)) continue;
    const update = change.update?.get(member.info.id);
    members.push(update ? { ...member, ready: update.ready, load: update.load, ...(update.info?.id === member.info.id ? { info: update.info } : {}) } : member);
  }
  for (const info of change.add ?? []) {
    assert(!members.some((member) => member.info.id === info.id), `member ${info.id} added twice to the view`);
    joinSeq += 1;
    // Locators serve as soon as they are in the view; servers report ready after their images.
    members.push({ info, joinSeq, load: 0, ready: info.role === 'locator' });
  }
  const coordinator = coordinatorOf(members);
  assert(coordinator !== undefined, 'a view must keep at least one locator');
  const partitions = nextPartitions(view.partitions, view.members, members, change.partitions ?? {});
  return {
    site: view.site,
    id: view.id + 1,
    lineage: view.lineage,
    coordinator: coordinator.info.id,
    members,
    departed: [...(change.remove ?? [])],
    ...(partitions !== undefined ? { partitions } : {}),
  };
}

export function sameLineage(a: View, b: View): boolean {
  return a.lineage[0] === b.lineage[0] && a.lineage[1] === b.lineage[1];
}

/**
 * Which of two lineages survives a merge: the one created first, ties broken by creator id.
 * Returns true when `a` wins over `b`.
 */
export function lineageWins(a: View, b: View): boolean {
  if (a.lineage[0] !== b.lineage[0]) return a.lineage[0] < b.lineage[0];
  return a.lineage[1] < b.lineage[1];
}

export function findMember(view: View | null, id: string): ViewMember | undefined {
  return view?.members.find((member) => member.info.id === id);
}

export function findMemberByName(view: View | null, name: string): ViewMember | undefined {
  return view?.members.find((member) => member.info.name === name);
}

export function locatorsOf(view: View | null): ViewMember[] {
  return view ? view.members.filter((member) => member.info.role === 'locator') : [];
}

export function serversOf(view: View | null): ViewMember[] {
  return view ? view.members.filter((member) => member.info.role === 'server') : [];
}
