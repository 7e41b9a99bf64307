// Initial image (Geode's GII): how a joining server gets its regions' contents, and how a
// ready server serves them.
//
// Joiner: asks each OLDER server (lower join sequence) for the regions it knows (creating
// runtime-created regions it lacks), then pages through each region's entries, tombstones
// included, while already receiving live writes; applying by version tag makes the merge
// order-free. Waiting only on older servers cannot deadlock: the oldest waits on no one.
// Entries where the joiner's own (persisted) copy wins, or that no image had, are pushed back
// to the others afterwards, so a full-site restart converges on the union.
//
// Provider: answers only once it is ready and has installed the view containing the joiner,
// so every write is either in its image or replicated to the joiner. Each requester pages
// through a sorted snapshot of the keys taken at its first page (key-pager.ts).
//
// A state machine: callbacks run to completion; time and I/O come through the Runtime.

import { StraitError, assert } from '../errors.ts';
import type { Connection, Reply } from '../protocol/connection.ts';
import type { MemberInfo, RequestBody, View, WireEntry } from '../protocol/messages.ts';
import type { Runtime } from '../runtime/runtime.ts';
import type { PeerPool } from './peer-pool.ts';
import { compareTags } from './region.ts';
import { mapOf } from './partition-map.ts';
import type { RegionTable } from './region-table.ts';
import { findMember, serversOf } from './views.ts';
import type { WritePath } from './write-path.ts';
import type { KeyPager } from './key-pager.ts';

/** Entries per initial-image page. */
const IMAGE_PAGE_ENTRIES = 2000;
/** Bytes of entries per image page, about, at most (well below any frame limit). */
const IMAGE_PAGE_BYTES_MAX = 4 * 1024 * 1024;
/** Delay before asking a provider that was not ready yet again. */
const IMAGE_RETRY_MS = 100;

export interface ImageHost {
  readonly memberName: string;
  view(): View | null;
  memberId(): string | undefined;
  /** True while this member takes its images (state 'initializing'). */
  initializing(): boolean;
  /** True when this member may serve images (state 'ready'). */
  ready(): boolean;
  /** Every provider delivered: the member may become ready. */
  imagesComplete(): void;
}

export class InitialImage {
  private readonly runtime: Runtime;
  private readonly pool: PeerPool;
  private readonly host: ImageHost;
  private readonly regions: RegionTable;
  private readonly writes: WritePath;
  /** Providers still owed in the current round. */
  private outstanding = 0;
  private generation = 0;
  /** Keys whose local copy beat the image, pushed back to the others once images complete. */
  private readonly pushBack = new Map<string, Set<string>>();
  /** Keys some provider's image listed, per region; local keys no image had are pushed back. */
  private readonly seen = new Map<string, Set<string>>();
  /** Sorted key snapshots served to image requesters (shared with `keys`). */
  private readonly pager: KeyPager;

  constructor(runtime: Runtime, pool: PeerPool, host: ImageHost, regions: RegionTable, writes: WritePath, pager: KeyPager) {
    this.runtime = runtime;
    this.pool = pool;
    this.host = host;
    this.regions = regions;
    this.writes = writes;
    this.pager = pager;
  }

  // ---- Joiner ----

  /** Starts a new round of images from every server older than us in `view`. */
  take(view: View): void {
    const generation = ++this.generation;
    const me = findMember(view, this.host.memberId() ?? '');
    assert(me !== undefined, 'a view being installed contains this member');
    const providers = serversOf(view).filter((member) => member.joinSeq < me.joinSeq);
    this.pushBack.clear();
    this.seen.clear();
    if (providers.length === 0) {
      this.host.imagesComplete();
      return;
    }
    // First learn the regions created at runtime on the others, then image every region.
    this.outstanding = providers.length;
    for (const provider of providers) this.learnRegions(generation, provider.info, view.id);
  }

  /** A provider counts while it is in the view and older than us. */
  private providerGone(provider: MemberInfo): boolean {
    const view = this.host.view();
    const current = findMember(view, provider.id);
    const me = findMember(view, this.host.memberId() ?? '');
    return current === undefined || me === undefined || current.joinSeq > me.joinSeq;
  }

  private learnRegions(generation: number, provider: MemberInfo, viewId: number): void {
    if (generation !== this.generation || !this.host.initializing()) return;
    if (this.providerGone(provider)) {
      this.providerDone(generation);
      return;
    }
    this.pool.get(provider.address).request('listRegions', {}, (error, response) => {
      if (generation !== this.generation) return;
      if (error !== undefined || response === undefined) {
        this.runtime.setTimer(IMAGE_RETRY_MS, () => this.learnRegions(generation, provider, viewId));
        return;
      }
      for (const { spec, hosts, fromConfig } of response.regions) {
        // Regions of the site configuration come from this server's own copy of it.
        if (fromConfig === true) continue;
        if (!this.regions.has(spec.name)) this.regions.open(spec);
        // A region created at runtime: its hosts must take its writes (a refusal is retried).
        if (hosts !== undefined) this.regions.expectHosts(spec.name, hosts);
      }
      // Partitioned regions move bucket by bucket (partitioned-regions.ts), not by these images.
      const names = this.regions.names().filter((name) => this.regions.get(name)?.spec.partition === undefined);
      let remaining = names.length;
      if (remaining === 0) {
        this.providerDone(generation);
        return;
      }
      for (const name of names) {
        this.imagePage(generation, provider, viewId, name, null, () => {
          remaining -= 1;
          if (remaining === 0) this.providerDone(generation);
        });
      }
    });
  }

  private imagePage(generation: number, provider: MemberInfo, viewId: number, regionName: string, after: string | null, done: () => void): void {
    if (generation !== this.generation || !this.host.initializing()) return;
    if (this.providerGone(provider)) {
      done();
      return;
    }
    this.pool.get(provider.address).request('image', { region: regionName, viewId, after, limit: IMAGE_PAGE_ENTRIES }, (error, response) => {
      if (generation !== this.generation) return;
      if (error !== undefined && error.code === 'STRAIT_REGION_NOT_FOUND') {
        done();
        return;
      }
      if (error !== undefined || response === undefined) {
        // Not ready yet, lagging view, or connection trouble: ask again shortly. A provider
        // that died is dropped by the next view, which ends this loop above.
        this.runtime.setTimer(IMAGE_RETRY_MS, () => this.imagePage(generation, provider, viewId, regionName, after, done));
        return;
      }
      const region = this.regions.get(regionName);
      if (region === undefined) {
        done();
        return;
      }
      let last = after;
      let seen = this.seen.get(regionName);
      if (seen === undefined) {
        seen = new Set();
        this.seen.set(regionName, seen);
      }
      for (const [key, value, tag] of response.entries) {
        last = key;
        seen.add(key);
        const local = region.entry(key);
        if (local !== undefined && compareTags(local.tag, tag) > 0) {
          this.markPushBack(regionName, key);
          continue;
        }
        this.writes.applyReplicated(region, key, value, tag);
        this.pushBack.get(regionName)?.delete(key);
      }
      if (response.done) done();
      else this.imagePage(generation, provider, viewId, regionName, last, done);
    });
  }

  private markPushBack(region: string, key: string): void {
    let keys = this.pushBack.get(region);
    if (keys === undefined) {
      keys = new Set();
      this.pushBack.set(region, keys);
    }
    keys.add(key);
  }

  private providerDone(generation: number): void {
    if (generation !== this.generation) return;
    this.outstanding -= 1;
    if (this.outstanding > 0) return;
    // Entries only this member had (from its disk, or kept while it was away) or where its
    // copy is newer go to the others, so every replica converges on the union.
    for (const region of this.regions.all()) {
      if (region.spec.partition !== undefined) continue;
      const regionName = region.spec.name;
      const seen = this.seen.get(regionName);
      const won = this.pushBack.get(regionName);
      for (const key of region.sortedKeys()) {
        if (seen?.has(key) === true && won?.has(key) !== true) continue;
        const entry = region.wireEntry(key);
        if (entry !== undefined) this.writes.replicate(regionName, entry, undefined);
      }
    }
    this.pushBack.clear();
    this.seen.clear();
    this.host.imagesComplete();
  }

  // ---- Provider ----

  /** One page of a region's entries, in key order, after the requester's cursor. */
  serve(connection: Connection, body: RequestBody<'image'>, reply: Reply<'image'>): void {
    if (!this.host.ready()) throw new StraitError('STRAIT_NOT_READY', { member: this.host.memberName, state: 'not ready' });
    const viewId = this.host.view()?.id ?? 0;
    if (viewId < body.viewId) throw new StraitError('STRAIT_NOT_READY', { member: this.host.memberName, state: `view ${viewId} older than ${body.viewId}` });
    const region = this.regions.require(body.region);
    const bucket = body.bucket;
    if (bucket !== undefined) {
      // A bucket's image comes from a copy that holds all of it.
      const me = this.host.memberId() ?? '';
      const assigned = mapOf(this.host.view()?.partitions, body.region)?.buckets[bucket] ?? null;
      if (region.spec.partition === undefined || assigned === null || !assigned.copies.includes(me)) {
        throw new StraitError('STRAIT_BUCKET_UNAVAILABLE', { bucket, region: body.region, member: this.host.memberName, reason: 'not a copy of it here' });
      }
    }
    const keys = (): string[] => (bucket === undefined ? region.sortedKeys() : region.bucketKeys(bucket));
    const page = this.pager.page(connection.number, bucket === undefined ? 'image' : `image:${bucket}`, body.region, keys, body.after, body.limit);
    const entries: WireEntry[] = [];
    let bytes = 0;
    let cut = false;
    for (const key of page.keys) {
      const entry = region.wireEntry(key);
      if (entry === undefined) continue;
      // Large values: stop at IMAGE_PAGE_BYTES_MAX (at least one entry) so a page always fits a
      // frame; the joiner continues after the last key it got.
      const size = key.length + (entry[1]?.length ?? 0);
      if (entries.length > 0 && bytes + size > IMAGE_PAGE_BYTES_MAX) {
        cut = true;
        break;
      }
      entries.push(entry);
      bytes += size;
    }
    reply.ok({ entries, done: page.done && !cut });
  }
}
