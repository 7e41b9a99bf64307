// Parallel gateway senders' lanes: a lane is one bucket of one partitioned region
// (`region/bucket`), and its dispatcher is the first of the bucket's holders, primary first,
// that is ready, hosts the sender and whose copy of it is not stopped. Every copy computes the
// same answer from the same view (and the stopped copies it was told of), so each bucket's
// events leave from one member at a time, and stopping a copy hands its buckets to their other
// copies with no message. Pure.

import type { MemberInfo, View } from '../protocol/messages.ts';
import { mapOf } from './partition-map.ts';
import { findMember } from './views.ts';

/** A parallel sender's lane: one bucket of one region. */
export function laneOf(region: string, bucket: number): string {
  return `${region}/${bucket}`;
}

/** The member computing lanes: its id, and whether its copy may dispatch (serving, its copy not stopped). */
export interface LaneSelf {
  readonly id: string | undefined;
  readonly dispatches: boolean;
}

/** The dispatcher of `region`'s `bucket` for sender `senderId`, or undefined when no holder may dispatch it. */
export function dispatcherOf(view: View | null, senderId: string, region: string, bucket: number, self: LaneSelf, stopped: ReadonlySet<string> | undefined): MemberInfo | undefined {
  const assigned = mapOf(view?.partitions, region)?.buckets[bucket] ?? null;
  if (view === null || assigned === null) return undefined;
  for (const id of assigned.copies) {
    const member = findMember(view, id);
    if (member === undefined || !(member.info.senders ?? []).some((sender) => sender.id === senderId)) continue;
    // Readiness as the view says, for this member too: every copy decides from the same facts.
    if (!member.ready) continue;
    if (id === self.id) {
      if (self.dispatches) return member.info;
      continue;
    }
    if (stopped?.has(id) !== true) return member.info;
  }
  return undefined;
}

/**
 * The lanes `self` dispatches for sender `senderId` over `regions`, and of the buckets of the
 * `counted` regions (those naming the sender now; default all), how many it holds a ready copy of
 * and how many of those no holder may dispatch.
 */
export function lanesOf(
  view: View | null, senderId: string, regions: readonly string[], self: LaneSelf, stopped: ReadonlySet<string> | undefined, counted: ReadonlySet<string> = new Set(regions),
): { lanes: Set<string>; held: number; undispatched: number } {
  const lanes = new Set<string>();
  let held = 0;
  let undispatched = 0;
  if (self.id === undefined) return { lanes, held, undispatched };
  for (const region of regions) {
    for (const [bucket, assigned] of (mapOf(view?.partitions, region)?.buckets ?? []).entries()) {
      if (assigned === null || !assigned.copies.includes(self.id)) continue;
      const dispatcher = dispatcherOf(view, senderId, region, bucket, self, stopped);
      if (dispatcher?.id === self.id) lanes.add(laneOf(region, bucket));
      if (!counted.has(region)) continue;
      held += 1;
      if (dispatcher === undefined) undispatched += 1;
    }
  }
  return { lanes, held, undispatched };
}

/** A ready copy of the bucket other than `self` that hosts the sender (a queue source when no copy dispatches). */
export function holderOf(view: View | null, senderId: string, region: string, bucket: number, self: string | undefined): MemberInfo | undefined {
  const assigned = mapOf(view?.partitions, region)?.buckets[bucket] ?? null;
  if (view === null || assigned === null) return undefined;
  for (const id of assigned.copies) {
    const member = findMember(view, id);
    if (id !== self && member !== undefined && member.ready && (member.info.senders ?? []).some((sender) => sender.id === senderId)) return member.info;
  }
  return undefined;
}

/** True when `self` holds a ready copy of the bucket of `lane` (`region/bucket`) in `view`. */
export function holdsLane(view: View | null, lane: string, self: string | undefined): boolean {
  const slash = lane.lastIndexOf('/');
  const bucket = Number(lane.slice(slash + 1));
  const assigned = mapOf(view?.partitions, lane.slice(0, slash))?.buckets[bucket] ?? null;
  return self !== undefined && assigned !== null && assigned.copies.includes(self);
}
