// Other sites' events for a partitioned region: a gateway receiver hands each bucket's events to
// the bucket's primary — here, or on another server of the site (`bucketAdmit`) — which applies
// them with their version tags, queues them for this site's own senders and replicates them to
// the bucket's copies, answering once all of that is done. A duplicate (a tag already held) has
// no second effect; it is counted, and so is one its sender did not flag possible-duplicate.
//
// A state machine: callbacks run to completion; I/O comes through the peer pool.

import { StraitError } from '../errors.ts';
import type { Reply } from '../protocol/connection.ts';
import type { BucketAssignment, RequestBody, VersionTag } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';
import type { PeerPool } from './peer-pool.ts';
import { holdersBut } from './partition-map.ts';
import { compareTags, type Region } from './region.ts';
import { PendingWrite } from './replication.ts';
import type { WritePath } from './write-path.ts';

/** Another site's event for a partitioned region, with its index in the batch that brought it. */
export interface RemoteEvent {
  readonly index: number;
  readonly key: string;
  readonly value: Uint8Array | null;
  readonly tag: VersionTag;
  readonly possibleDuplicate: boolean;
  /** How often it was passed on between this site's servers already. */
  readonly hops?: number;
}

/** An event refused, by its index in the batch, with the coded reason. */
export interface Refusal {
  readonly index: number;
  readonly code: string;
  readonly message: string;
}

/**
 * What became of other sites' events: those refused, those whose version was already here
 * (duplicates: no second effect), and among them those their sender did not flag
 * possible-duplicate (a sender that resent without knowing — a bug the simulations check for).
 */
export interface AdmitOutcome {
  readonly refused: Refusal[];
  duplicates: number;
  unflaggedDuplicates: number;
}

/** How often an operation may be passed on to a bucket's primary before it is refused (maps changing). */
export const MAX_HOPS = 3;

/** `items` by `keyOf`, each group in the items' order. */
export function groupBy<T, K>(items: Iterable<T>, keyOf: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) {
    const key = keyOf(item);
    let group = groups.get(key);
    if (group === undefined) {
      group = [];
      groups.set(key, group);
    }
    group.push(item);
  }
  return groups;
}

/** What the admission needs of partitioned regions. */
export interface AdmissionHost {
  readonly memberName: string;
  memberId(): string | undefined;
  /** Runs `run` with the bucket's assignment, creating the bucket first if needed. */
  withBucket(region: Region, bucket: number, reply: { fail(error: StraitError): void }, run: (assigned: BucketAssignment) => void): void;
  primaryAddress(assigned: BucketAssignment): Address | undefined;
}

export class BucketAdmission {
  private readonly pool: PeerPool;
  private readonly host: AdmissionHost;
  private readonly writes: WritePath;

  constructor(pool: PeerPool, host: AdmissionHost, writes: WritePath) {
    this.pool = pool;
    this.host = host;
    this.writes = writes;
  }

  /**
   * Other sites' events for this partitioned region, taken by this server's gateway receiver:
   * each bucket's events go to its primary (here, or passed on with `bucketAdmit`), which applies
   * them with their tags, queues them for this site's senders and replicates them to the
   * bucket's copies. `pending` waits for all of it; `outcome` has the refusals (by index in
   * the batch) and duplicates before it settles.
   */
  admitRemote(region: Region, events: readonly RemoteEvent[], pending: PendingWrite, outcome: AdmitOutcome): void {
    for (const [bucket, group] of groupBy(events, (event) => region.bucketOf(event.key))) {
      pending.expect();
      this.host.withBucket(region, bucket, { fail: (error) => pending.abandon(error) }, (assigned) => {
        const me = this.host.memberId();
        if (me !== undefined && assigned.primary === me) {
          this.admitHere(region, assigned, group, pending, outcome);
          pending.settle();
          return;
        }
        const address = this.host.primaryAddress(assigned);
        const hops = (group[0]!.hops ?? 0) + 1;
        if (address === undefined || hops > MAX_HOPS) {
          pending.abandon(new StraitError('STRAIT_BUCKET_UNAVAILABLE', { bucket, region: region.spec.name, member: this.host.memberName, reason: address === undefined ? `its primary ${assigned.primary} is not in the view` : 'its primary is moving' }));
          return;
        }
        const body = { region: region.spec.name, events: group.map((event) => [event.key, event.value, event.tag, event.possibleDuplicate] as [string, Uint8Array | null, VersionTag, boolean]), hops };
        this.pool.get(address).request('bucketAdmit', body, (error, response) => {
          if (error !== undefined || response === undefined) {
            pending.abandon(error ?? new StraitError('STRAIT_INTERNAL', { reason: 'empty bucketAdmit response' }));
            return;
          }
          for (const refusal of response.refused) {
            const event = group[refusal.index];
            if (event !== undefined) outcome.refused.push({ ...refusal, index: event.index });
          }
          outcome.duplicates += response.duplicates;
          outcome.unflaggedDuplicates += response.unflaggedDuplicates;
          pending.settle();
        });
      });
    }
  }

  /** Another server of the site passes on other sites' events of one bucket (see admitRemote). */
  onBucketAdmit(region: Region, body: RequestBody<'bucketAdmit'>, reply: Reply<'bucketAdmit'>): void {
    if (region.spec.partition === undefined) throw new StraitError('STRAIT_UNSUPPORTED', { what: `bucketAdmit for the replicate region ${region.spec.name}`, reason: 'only partitioned regions have buckets' });
    const outcome: AdmitOutcome = { refused: [], duplicates: 0, unflaggedDuplicates: 0 };
    const pending = new PendingWrite((error) => (error !== undefined ? reply.fail(error) : reply.ok(outcome)));
    const events = body.events.map(([key, value, tag, possibleDuplicate], index) => ({ index, key, value, tag, possibleDuplicate, ...(body.hops !== undefined ? { hops: body.hops } : {}) }));
    this.admitRemote(region, events, pending, outcome);
    pending.settle();
  }

  /** The primary's part of admitRemote: apply, queue, replicate to the holders. */
  private admitHere(region: Region, assigned: BucketAssignment, events: readonly RemoteEvent[], pending: PendingWrite, outcome: AdmitOutcome): void {
    const targets = holdersBut(assigned, this.host.memberId());
    for (const event of events) {
      const held = region.entry(event.key)?.tag;
      const duplicate = held !== undefined && compareTags(held, event.tag) === 0;
      try {
        this.writes.admit(region, [event.key, event.value, event.tag], event.possibleDuplicate, pending, undefined, targets);
      } catch (error) {
        // One event this site can't take is refused alone (a dead letter at the sender).
        if (!(error instanceof StraitError)) throw error;
        outcome.refused.push({ index: event.index, code: error.code, message: error.message });
        continue;
      }
      if (duplicate) {
        outcome.duplicates += 1;
        if (!event.possibleDuplicate) outcome.unflaggedDuplicates += 1;
      }
    }
    this.writes.gatewaySync(region, pending);
    this.writes.awaitRegion(region, pending);
  }
}
