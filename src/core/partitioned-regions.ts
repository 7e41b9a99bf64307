// A server's side of partitioned regions: it sends each operation to the primary of the key's
// bucket (or serves it when it is that primary), asks the coordinator for buckets on first use,
// takes the images of buckets it is assigned as a pending copy, offers what it recovered from
// disk before it serves, and drops the buckets that moved away from it. The assignment itself
// is the view's (partition-map.ts), so every server acts on the same one.
//
// Writes: the primary tags and applies, replicates to the bucket's other copies and pending
// members, and answers once each has it (write-path.ts with `targets`). A server that is not the
// primary passes the operation on (at most MAX_HOPS times while maps change), and the client
// sees one answer.
//
// A state machine: callbacks run to completion; time and I/O come through the Runtime.

import { StraitError } from '../errors.ts';
import type { Connection, Reply } from '../protocol/connection.ts';
import type { BucketAssignment, EntryRefusal, PartitionMap, RequestBody, RequestOp, ResponseBody, VersionTag, View, WireEntry } from '../protocol/messages.ts';
import type { Address, Logger, Runtime } from '../runtime/runtime.ts';
import type { KeyPager } from './key-pager.ts';
import { holdersBut, holds, isOffline, mapOf } from './partition-map.ts';
import type { PeerPool } from './peer-pool.ts';
import { compareTags, type Region } from './region.ts';
import type { RegionTable } from './region-table.ts';
import { findMember } from './views.ts';
import type { BucketHooks, WritePath } from './write-path.ts';
import { BucketAdmission, groupBy, MAX_HOPS, type AdmitOutcome, type RemoteEvent } from './partitioned-admission.ts';
import { PendingWrite } from './replication.ts';

/** Delay before asking again for buckets, or for an image page, after a failure. */
const RETRY_MS = 100;
/** Entries per bucket image page. */
const BUCKET_IMAGE_PAGE_ENTRIES = 2000;

export interface PartitionHost {
  readonly memberName: string;
  memberId(): string | undefined;
  view(): View | null;
  /** True while the server serves (before it is ready, nothing is dropped: claims come first). */
  ready(): boolean;
  /** A view a locator answered with: installed if it is newer. */
  offerView(view: View): void;
  readonly requestTimeoutMs: number;
  /**
   * A new copy of a bucket took the region's image: copy the bucket's parallel sender queues
   * from their dispatchers, then `done` (before the copy reports ready).
   */
  bucketQueues(region: string, bucket: number, viewId: number, stillPending: () => boolean, done: () => void): void;
}

type Done<T> = (error: StraitError | undefined, result?: T) => void;

export class PartitionedRegions implements BucketHooks {
  private readonly runtime: Runtime;
  private readonly pool: PeerPool;
  private readonly host: PartitionHost;
  private readonly regions: RegionTable;
  private readonly writes: WritePath;
  private readonly pager: KeyPager;
  private readonly log: Logger;
  private readonly admission: BucketAdmission;
  /** Buckets this server is taking an image of, as `region/bucket`. */
  private readonly imaging = new Set<string>();
  /**
   * Buckets kept here until this server installs the view (id) under which a primary sent it
   * their writes, as `region/bucket`: the views before it may not name this server yet.
   */
  private readonly keepUntil = new Map<string, number>();

  constructor(runtime: Runtime, pool: PeerPool, host: PartitionHost, parts: { regions: RegionTable; writes: WritePath; pager: KeyPager }, log: Logger) {
    this.runtime = runtime;
    this.pool = pool;
    this.host = host;
    this.regions = parts.regions;
    this.writes = parts.writes;
    this.pager = parts.pager;
    this.log = log;
    this.admission = new BucketAdmission(pool, {
      memberName: host.memberName,
      memberId: () => host.memberId(),
      withBucket: (region, bucket, reply, run) => this.withBucket(region, bucket, reply, run),
      primaryAddress: (assigned) => this.primaryAddress(assigned),
    }, this.writes);
  }

  private map(region: string): PartitionMap | undefined {
    return mapOf(this.host.view()?.partitions, region);
  }

  private assignment(region: Region, key: string): { bucket: number; assigned: BucketAssignment | null } {
    const bucket = region.bucketOf(key);
    return { bucket, assigned: this.map(region.spec.name)?.buckets[bucket] ?? null };
  }

  private primaryAddress(assigned: BucketAssignment): Address | undefined {
    return findMember(this.host.view(), assigned.primary)?.info.address;
  }

  // ---- Operations ----

  get(region: Region, body: RequestBody<'get'>, reply: Reply<'get'>): void {
    const { bucket, assigned } = this.assignment(region, body.key);
    const me = this.host.memberId();
    if (this.offline(region, bucket, reply)) return;
    if (assigned === null) {
      reply.ok({ value: null });
      return;
    }
    if (me !== undefined && assigned.copies.includes(me)) {
      reply.ok({ value: region.get(body.key) ?? null });
      return;
    }
    this.forward('get', body, region, bucket, assigned, reply);
  }

  /** A put, remove or putAll of keys in one bucket. */
  write<Op extends 'put' | 'remove' | 'putAll'>(
    op: Op, region: Region, body: RequestBody<Op>, entries: readonly (readonly [string, Uint8Array | null])[], reply: Reply<Op>,
    answer: (existed: boolean) => ResponseBody<Op>,
  ): void {
    const bucket = region.bucketOf(entries[0]![0]);
    this.withBucket(region, bucket, reply, (assigned) => {
      const me = this.host.memberId();
      if (me === undefined || assigned.primary !== me) {
        this.forward(op, body, region, bucket, assigned, reply);
        return;
      }
      const targets = holdersBut(assigned, me);
      this.writes.write(region, entries, body.requestId, (error, existed) => (error === undefined ? reply.ok(answer(existed)) : reply.fail(error)), targets);
    });
  }

  /**
   * A client's coalesced puts: entry i is a put of its own, with the request id `<id>#<i>` (an id
   * too long to extend is left out: a retry is applied again), answered once every entry is,
   * with those refused.
   */
  putBatch(region: Region, body: RequestBody<'putBatch'>, check: (value: Uint8Array) => void, reply: Reply<'putBatch'>): void {
    const id = body.requestId !== undefined && body.requestId.length <= 120 ? body.requestId : undefined;
    eachEntry(body.entries, (entry, index, answer) => {
      const [key, value] = entry;
      check(value);
      const put = { region: body.region, key, value, ...(id !== undefined ? { requestId: `${id}#${index}` } : {}) };
      this.write('put', region, put, [entry], { ok: () => answer(undefined), fail: answer }, () => ({}));
    }, (refused) => reply.ok({ refused }));
  }

  /** A client's coalesced gets, each a get of its own (from this member's copy, or its bucket's primary). */
  getBatch(region: Region, body: RequestBody<'getBatch'>, reply: Reply<'getBatch'>): void {
    const values: (Uint8Array | null)[] = body.keys.map(() => null);
    eachEntry(body.keys, (key, index, answer) => {
      this.get(region, { region: body.region, key }, {
        ok: (response) => {
          values[index] = response.value;
          answer(undefined);
        },
        fail: answer,
      });
    }, (refused) => reply.ok({ values, refused }));
  }

  /** A putAll: one write per bucket (each with its own request id), answered when all are. */
  putAll(region: Region, body: RequestBody<'putAll'>, reply: Reply<'putAll'>): void {
    const groups = groupBy(body.entries, ([key]) => region.bucketOf(key));
    if (groups.size === 1) {
      this.write('putAll', region, body, body.entries, reply, () => ({}));
      return;
    }
    // Buckets no view assigns yet are asked for in one request (one new view, not one each).
    const map = this.map(region.spec.name);
    const unassigned = [...groups.keys()].filter((bucket) => (map?.buckets[bucket] ?? null) === null && !isOffline(map, bucket));
    if (unassigned.length > 1) this.createBuckets(region, unassigned, () => this.putAllBuckets(region, body, groups, reply));
    else this.putAllBuckets(region, body, groups, reply);
  }

  private putAllBuckets(region: Region, body: RequestBody<'putAll'>, groups: ReadonlyMap<number, [string, Uint8Array][]>, reply: Reply<'putAll'>): void {
    let remaining = groups.size;
    let failed = false;
    for (const [bucket, entries] of groups) {
      // A bucket's part keeps a request id derived from the whole one, so a retry of the
      // putAll is recognised bucket by bucket (an id too long to extend is left out: applied again).
      const requestId = body.requestId !== undefined && body.requestId.length <= 120 ? `${body.requestId}#${bucket}` : undefined;
      const part = { region: body.region, entries, ...(requestId !== undefined ? { requestId } : {}), ...(body.hops !== undefined ? { hops: body.hops } : {}) };
      this.write('putAll', region, part, entries, {
        ok: () => {
          remaining -= 1;
          if (remaining === 0 && !failed) reply.ok({});
        },
        fail: (error) => {
          if (failed) return;
          failed = true;
          reply.fail(error);
        },
      }, () => ({}));
    }
  }

  /** Other sites' events for this partitioned region, taken by this server's gateway receiver (partitioned-admission.ts). */
  admitRemote(region: Region, events: readonly RemoteEvent[], pending: PendingWrite, outcome: AdmitOutcome): void {
    this.admission.admitRemote(region, events, pending, outcome);
  }

  /** Another server of the site passes on other sites' events of one bucket. */
  onBucketAdmit(region: Region, body: RequestBody<'bucketAdmit'>, reply: Reply<'bucketAdmit'>): void {
    this.admission.onBucketAdmit(region, body, reply);
  }

  /** Live entries of the whole region, counted by each bucket's primary. */
  size(region: Region, reply: Reply<'size'>): void {
    this.gather(region, true, (error, result) => (error !== undefined ? reply.fail(error) : reply.ok({ size: result!.size })));
  }

  /** A page of the region's live keys; the first page gathers them from every bucket's primary. */
  keys(connection: Connection, region: Region, body: RequestBody<'keys'>, reply: Reply<'keys'>, limit: number): void {
    const page = (keys: () => string[]) => {
      const result = this.pager.page(connection.number, 'keys', body.region, keys, body.after ?? null, limit);
      reply.ok({ keys: result.keys, next: result.done ? null : result.keys.at(-1) ?? null });
    };
    if (body.after !== undefined && body.after !== null && this.pager.has(connection.number, 'keys', body.region)) {
      page(() => []);
      return;
    }
    this.gather(region, false, (error, result) => (error !== undefined ? reply.fail(error) : page(() => result!.keys)));
  }

  /** Asks each bucket's primary for its buckets' keys (or counts). */
  private gather(region: Region, countOnly: boolean, done: Done<{ keys: string[]; size: number }>): void {
    const created = (this.map(region.spec.name)?.buckets ?? []).flatMap((assigned, bucket) => (assigned === null ? [] : [{ bucket, primary: assigned.primary }]));
    const byPrimary = new Map([...groupBy(created, (entry) => entry.primary)].map(([primary, entries]) => [primary, entries.map((entry) => entry.bucket)]));
    const keys: string[] = [];
    let size = 0;
    let remaining = byPrimary.size;
    let failed = false;
    if (remaining === 0) {
      done(undefined, { keys, size });
      return;
    }
    const me = this.host.memberId();
    for (const [primary, buckets] of byPrimary) {
      const collect = (error: StraitError | undefined, response: ResponseBody<'bucketKeys'> | undefined) => {
        if (failed) return;
        if (error !== undefined || response === undefined) {
          failed = true;
          done(error ?? new StraitError('STRAIT_INTERNAL', { reason: 'empty bucketKeys response' }));
          return;
        }
        for (const key of response.keys) keys.push(key);
        size += response.size;
        remaining -= 1;
        if (remaining === 0) done(undefined, { keys, size });
      };
      if (primary === me) {
        collect(undefined, this.bucketKeys(region, buckets, countOnly));
        continue;
      }
      const address = findMember(this.host.view(), primary)?.info.address;
      if (address === undefined) collect(new StraitError('STRAIT_BUCKET_UNAVAILABLE', { bucket: buckets[0]!, region: region.spec.name, member: this.host.memberName, reason: `its primary ${primary} left the view` }), undefined);
      else this.pool.get(address).request('bucketKeys', { region: region.spec.name, buckets, ...(countOnly ? { countOnly } : {}) }, collect);
    }
  }

  /** The live keys (or only their count) of `buckets` held here. */
  bucketKeys(region: Region, buckets: readonly number[], countOnly: boolean): ResponseBody<'bucketKeys'> {
    const keys: string[] = [];
    let size = 0;
    for (const bucket of buckets) {
      const live = region.bucketLiveKeys(bucket);
      size += live.length;
      if (!countOnly) for (const key of live) keys.push(key);
    }
    return { keys, size };
  }

  /** Passes an operation on to the bucket's primary and relays its answer. */
  private forward<Op extends RequestOp & ('get' | 'put' | 'remove' | 'putAll')>(
    op: Op, body: RequestBody<Op>, region: Region, bucket: number, assigned: BucketAssignment, reply: Reply<Op>,
  ): void {
    const hops = (body.hops ?? 0) + 1;
    const address = this.primaryAddress(assigned);
    if (hops > MAX_HOPS || address === undefined) {
      reply.fail(new StraitError('STRAIT_BUCKET_UNAVAILABLE', { bucket, region: region.spec.name, member: this.host.memberName, reason: address === undefined ? `its primary ${assigned.primary} is not in the view` : 'its primary is moving' }));
      return;
    }
    this.pool.get(address).request(op, { ...body, hops } as RequestBody<Op>, (error, response) => {
      if (error !== undefined || response === undefined) reply.fail(error ?? new StraitError('STRAIT_INTERNAL', { reason: `empty ${op} response` }));
      else reply.ok(response);
    });
  }

  /**
   * Runs `run` with the bucket's assignment, asking the coordinator to create the bucket first
   * when it has none; fails with STRAIT_BUCKET_UNAVAILABLE when no view assigns it within the
   * request timeout (no server hosting the region is ready).
   */
  private withBucket(region: Region, bucket: number, reply: { fail(error: StraitError): void }, run: (assigned: BucketAssignment) => void): void {
    if (this.offline(region, bucket, reply)) return;
    const assigned = this.map(region.spec.name)?.buckets[bucket] ?? null;
    if (assigned !== null) {
      run(assigned);
      return;
    }
    const deadline = this.runtime.clock.monotonic() + this.host.requestTimeoutMs;
    const attempt = (): void => {
      const now = this.map(region.spec.name)?.buckets[bucket] ?? null;
      if (now !== null) {
        run(now);
        return;
      }
      if (this.offline(region, bucket, reply)) return;
      if (this.runtime.clock.monotonic() > deadline) {
        reply.fail(new StraitError('STRAIT_BUCKET_UNAVAILABLE', { bucket, region: region.spec.name, member: this.host.memberName, reason: 'no server hosting the region could take it' }));
        return;
      }
      this.createBuckets(region, [bucket], () => {
        // Assigned: go on now. Not (no host ready yet, a coordinator change): ask again shortly.
        if ((this.map(region.spec.name)?.buckets[bucket] ?? null) !== null) attempt();
        else this.runtime.setTimer(RETRY_MS, attempt);
      });
    };
    attempt();
  }

  /** Refuses an operation on a bucket whose every copy is down with its disk (true when refused). */
  private offline(region: Region, bucket: number, reply: { fail(error: StraitError): void }): boolean {
    const offline = this.map(region.spec.name)?.offline?.find((entry) => entry.bucket === bucket);
    if (offline === undefined) return false;
    reply.fail(new StraitError('STRAIT_BUCKET_UNAVAILABLE', { bucket, region: region.spec.name, member: this.host.memberName, reason: `every server holding it is down; it comes back when one of ${offline.last.join(', ')} restarts with its disk` }));
    return true;
  }

  /** Asks the coordinator to create `buckets`, installs the view it answers with, then `then` (also when it failed). */
  private createBuckets(region: Region, buckets: number[], then: () => void): void {
    const view = this.host.view();
    const me = this.host.memberId();
    const coordinator = view === null ? undefined : findMember(view, view.coordinator);
    const settings = region.spec.partition;
    if (coordinator === undefined || me === undefined || settings === undefined) {
      this.runtime.setTimer(RETRY_MS, then);
      return;
    }
    this.pool.get(coordinator.info.address).request('bucketsCreate', { region: region.spec.name, settings, persistent: region.persistent, buckets, member: me }, (_error, response) => {
      if (response !== undefined) this.host.offerView(response.view);
      then();
    });
  }

  /**
   * Whether to apply an entry another server replicated here under its view `viewId`. This
   * server's view may lag the sender's: the bucket is then kept until it installs that view,
   * even through views that do not assign it here yet (a copy of a bucket just created, a
   * pending member). With a view as new, only a holder of the bucket applies it: the entry of a
   * bucket that moved away would otherwise linger here unassigned.
   */
  accepts(region: Region, key: string, viewId: number | undefined): boolean {
    const view = this.host.view();
    const me = this.host.memberId();
    if (viewId === undefined || view === null || me === undefined) return true;
    const bucket = region.bucketOf(key);
    if (view.id < viewId) {
      const cursor = `${region.spec.name}/${bucket}`;
      this.keepUntil.set(cursor, Math.max(viewId, this.keepUntil.get(cursor) ?? 0));
      return true;
    }
    const assigned = mapOf(view.partitions, region.spec.name)?.buckets[bucket] ?? null;
    return assigned !== null && holds(assigned, me);
  }

  staleWriter(region: Region, entries: readonly WireEntry[], viewId: number | undefined, from: string | undefined): StraitError | undefined {
    const view = this.host.view();
    const me = this.host.memberId();
    if (viewId === undefined || view === null || me === undefined || view.id <= viewId) return undefined;
    const sender = view.members.find((member) => member.info.name === from)?.info.id;
    const map = mapOf(view.partitions, region.spec.name);
    for (const [key] of entries) {
      const bucket = region.bucketOf(key);
      const assigned = map?.buckets[bucket] ?? null;
      // No bucket (lost) or not ours: `accepts` ignores the entry. The primary now, or us as
      // the primary (we pass it on to the holders): a write of the bucket's primary.
      if (assigned === null || !holds(assigned, me) || assigned.primary === me || assigned.primary === sender) continue;
      return new StraitError('STRAIT_BUCKET_MOVED', { member: this.host.memberName, bucket, region: region.spec.name, primary: findMember(view, assigned.primary)?.info.name ?? assigned.primary, viewId });
    }
    return undefined;
  }

  /**
   * Entries another member replicated here and that were new here. When this server is the
   * bucket's primary, they came from a previous primary (a write it made before it learned of
   * the change) or a copy's push-back: the bucket's other holders get them from here, and the
   * sender's answer waits for them — so a write the old primary acknowledged is also on the
   * holders only the new view names.
   */
  onwards(region: Region, entries: readonly WireEntry[], from: string | undefined, pending: PendingWrite): void {
    const me = this.host.memberId();
    const map = this.map(region.spec.name);
    if (me === undefined || map === undefined) return;
    const sender = this.host.view()?.members.find((member) => member.info.name === from)?.info.id;
    for (const entry of entries) {
      const assigned = map.buckets[region.bucketOf(entry[0])] ?? null;
      if (assigned === null || assigned.primary !== me) continue;
      const targets = holdersBut(assigned, me, sender);
      if (targets.size > 0) this.writes.replicate(region.spec.name, entry, pending, false, undefined, targets);
    }
  }

  // ---- Membership ----

  /**
   * A new view: take the images of buckets this server is now pending for, and (once it
   * serves) drop the entries of buckets that are no longer assigned to it.
   */
  viewInstalled(view: View): void {
    const me = this.host.memberId();
    if (me === undefined) return;
    for (const [cursor, until] of this.keepUntil) if (until <= view.id) this.keepUntil.delete(cursor);
    for (const region of this.regions.all()) {
      if (region.spec.partition === undefined) continue;
      const map = mapOf(view.partitions, region.spec.name);
      for (const [bucket, assigned] of (map?.buckets ?? []).entries()) {
        if (assigned === null || !holds(assigned, me)) continue;
        region.markAssigned(bucket);
        if (assigned.pending.includes(me)) this.takeImage(region.spec.name, bucket);
      }
      if (!this.host.ready()) continue;
      for (const bucket of region.heldBuckets()) {
        const assigned = map?.buckets[bucket] ?? null;
        if (assigned !== null && holds(assigned, me)) continue;
        // A bucket waiting for its last copies' disks: what this server holds of it is kept.
        if (isOffline(map, bucket)) continue;
        // A primary wrote to it here under a view not installed yet, which assigns it here.
        if (this.keepUntil.has(`${region.spec.name}/${bucket}`)) continue;
        const dropped = region.dropBucket(bucket);
        this.log.info({ region: region.spec.name, bucket, entries: dropped }, `server ${this.host.memberName}: bucket ${bucket} of ${region.spec.name} is held elsewhere now; dropped its ${dropped} entries here`);
      }
    }
  }

  /** Pages through the bucket's image from its primary, then reports the bucket ready. */
  private takeImage(regionName: string, bucket: number): void {
    const cursor = `${regionName}/${bucket}`;
    if (this.imaging.has(cursor)) return;
    this.imaging.add(cursor);
    const stillPending = (): BucketAssignment | undefined => {
      const assigned = this.map(regionName)?.buckets[bucket] ?? null;
      const me = this.host.memberId();
      return assigned !== null && me !== undefined && assigned.pending.includes(me) ? assigned : undefined;
    };
    const stop = () => this.imaging.delete(cursor);
    // The tag of each key the image had: entries this server holds newer, or that the image
    // lacked (kept on its disk, or while it was away), go back to the bucket's other holders.
    const seen = new Map<string, string>();
    const page = (after: string | null): void => {
      const assigned = stillPending();
      const region = this.regions.get(regionName);
      const view = this.host.view();
      const provider = assigned === undefined ? undefined : this.primaryAddress(assigned);
      if (assigned === undefined || region === undefined || view === null || provider === undefined) {
        stop();
        return;
      }
      this.pool.get(provider).request('image', { region: regionName, bucket, viewId: view.id, after, limit: BUCKET_IMAGE_PAGE_ENTRIES }, (error, response) => {
        if (error !== undefined || response === undefined) {
          // Not there yet (the primary lags a view, or moved): ask the current primary shortly.
          this.runtime.setTimer(RETRY_MS, () => page(after));
          return;
        }
        let last = after;
        for (const [key, value, tag] of response.entries) {
          last = key;
          seen.set(key, tag.join('/'));
          this.writes.applyReplicated(region, key, value, tag);
        }
        if (!response.done) {
          page(last);
          return;
        }
        const targets = holdersBut(assigned, this.host.memberId());
        for (const key of region.bucketKeys(bucket)) {
          const entry = region.wireEntry(key);
          if (entry !== undefined && seen.get(key) !== entry[2].join('/')) this.writes.replicate(regionName, entry, undefined, false, undefined, targets);
        }
        // The bucket's parallel sender queues too, before this copy counts: its events not yet
        // acknowledged by the remote site survive the loss of their dispatcher.
        this.host.bucketQueues(regionName, bucket, view.id, () => stillPending() !== undefined, () => {
          if (stillPending() !== undefined) this.reportReady(regionName, bucket, stop);
          else stop();
        });
      });
    };
    page(null);
  }

  private reportReady(regionName: string, bucket: number, stop: () => void): void {
    const view = this.host.view();
    const me = this.host.memberId();
    const coordinator = view === null ? undefined : findMember(view, view.coordinator);
    if (coordinator === undefined || me === undefined) {
      stop();
      return;
    }
    this.pool.get(coordinator.info.address).request('bucketReady', { region: regionName, bucket, member: me }, (error, response) => {
      stop();
      if (response !== undefined) this.host.offerView(response.view);
      // Unanswered: the next view that still names us pending starts the image again.
      else if (error !== undefined) this.runtime.setTimer(RETRY_MS, () => {
        const current = this.host.view();
        if (current !== null) this.viewInstalled(current);
      });
    });
  }

  /**
   * Before the server serves: offers the coordinator every bucket it holds entries of (from
   * disk, or kept while it was out of the view). Buckets nobody holds become its own; the
   * others it joins as a pending copy if one is missing, or drops once it serves.
   */
  recover(done: () => void): void {
    // Every partitioned region, even one with nothing on disk: an offer names all a server holds,
    // so the coordinator also learns which offline buckets it does not hold.
    const offers = [...this.regions.all()].filter((region) => region.spec.partition !== undefined && (region.heldBuckets().length > 0 || region.persistent));
    let remaining = offers.length;
    if (remaining === 0) {
      done();
      return;
    }
    for (const region of offers) {
      const offer = (): void => {
        const view = this.host.view();
        const me = this.host.memberId();
        const coordinator = view === null ? undefined : findMember(view, view.coordinator);
        if (coordinator === undefined || me === undefined) {
          this.runtime.setTimer(RETRY_MS, offer);
          return;
        }
        const buckets = region.heldBuckets();
        this.pool.get(coordinator.info.address).request('bucketsCreate', { region: region.spec.name, settings: region.spec.partition!, persistent: region.persistent, buckets, member: me, held: true }, (error, response) => {
          if (error !== undefined || response === undefined) {
            this.runtime.setTimer(RETRY_MS, offer);
            return;
          }
          this.host.offerView(response.view);
          this.log.info({ region: region.spec.name, buckets: buckets.length }, `server ${this.host.memberName}: offered the ${buckets.length} buckets of ${region.spec.name} it recovered`);
          remaining -= 1;
          if (remaining === 0) done();
        });
      };
      offer();
    }
  }

  /**
   * Whether this server holds the bucket or is about to (assigned in its view, or kept until
   * a newer view): parallel sender queues keep the events of such buckets.
   */
  mayHold(regionName: string, bucket: number): boolean {
    const me = this.host.memberId();
    const assigned = this.map(regionName)?.buckets[bucket] ?? null;
    if (me !== undefined && assigned !== null && holds(assigned, me)) return true;
    // Offline: what this server holds of it is kept (viewInstalled), its queued events too.
    return this.keepUntil.has(`${regionName}/${bucket}`) || !this.host.ready() || isOffline(this.map(regionName), bucket);
  }

  /** For status: the buckets of `region` this server holds, as primary or copy. */
  held(region: string): { primary: number[]; copies: number[]; pending: number[] } {
    const me = this.host.memberId();
    const result = { primary: [] as number[], copies: [] as number[], pending: [] as number[] };
    for (const [bucket, assigned] of (this.map(region)?.buckets ?? []).entries()) {
      if (assigned === null || me === undefined) continue;
      if (assigned.primary === me) result.primary.push(bucket);
      else if (assigned.copies.includes(me)) result.copies.push(bucket);
      else if (assigned.pending.includes(me)) result.pending.push(bucket);
    }
    return result;
  }
}

/**
 * Runs `start` for every item of a batch, each answering once (an error refuses that item alone,
 * thrown or answered), then `done` with the refusals in index order.
 */
function eachEntry<T>(items: readonly T[], start: (item: T, index: number, answer: (error: StraitError | undefined) => void) => void, done: (refused: EntryRefusal[]) => void): void {
  const refused: EntryRefusal[] = [];
  let remaining = items.length + 1;
  const settle = (): void => {
    remaining -= 1;
    if (remaining > 0) return;
    refused.sort((a, b) => a.index - b.index);
    done(refused);
  };
  for (const [index, item] of items.entries()) {
    let answered = false;
    const answer = (error: StraitError | undefined): void => {
      if (answered) return;
      answered = true;
      if (error !== undefined) refused.push({ index, code: error.code, message: error.message, retryable: error.retryable });
      settle();
    };
    try {
      start(item, index, answer);
    } catch (error) {
      if (!(error instanceof StraitError)) throw error;
      answer(error);
    }
  }
  settle();
}
