// The write path of a server: version tags for client writes, applying a change here and
// telling the subscribers, queueing it for the gateway senders, and replicating it to every
// other server of the view (distributed-ack).
//
// A client write is acknowledged once every other server applied it (or left the view), every
// persistent gateway sender that queues it has it on disk, and, for a persistent region, it is
// on disk here. Replicas apply by version tag, so replication, images and resends race safely.

import { StraitError } from '../errors.ts';
import type { Reply } from '../protocol/connection.ts';
import type { EntryRefusal, MemberInfo, RequestBody, VersionTag, View, WireEntry } from '../protocol/messages.ts';
import type { Logger, Runtime } from '../runtime/runtime.ts';
import type { MemberState, MetricsSink } from './member-admin.ts';
import type { PeerPool } from './peer-pool.ts';
import type { Region } from './region.ts';
import type { RegionTable } from './region-table.ts';
import {
  awaitDurable, PendingWrite, REPLICATION_BATCH_BYTES_MAX, REPLICATION_BATCH_ENTRIES_MAX, ReplicationChannel, type ReplicatedRequest,
} from './replication.ts';
import { RequestLog } from './request-log.ts';
import type { Subscriptions } from './subscriptions.ts';
import { serversOf } from './views.ts';

/** A resolver failing on replicated writes is logged at most this often. */
const RESOLVER_FALLBACK_LOG_INTERVAL_MS = 10_000;

/** Where new changes go besides the regions: the gateway senders' queues. */
export interface GatewayQueues {
  /** Queues a change on every local sender whose remote site should get it from here. */
  queue(region: Region, entry: WireEntry, possibleDuplicate: boolean): void;
  /** Makes `pending` wait until every persistent sender queueing `region` has synced. */
  sync(region: Region, pending: PendingWrite): void;
  /** Throws STRAIT_QUEUE_FULL when a sender `region`'s changes go to can't take more. */
  admit(region: Region): void;
}

/** A partitioned region's part in writes other servers replicate here (partitioned-regions.ts). */
export interface BucketHooks {
  /**
   * Whether to apply a replicated entry of `key`: false when this server's view is at least as
   * new as the sender's (`viewId`) and assigns it no copy of the key's bucket.
   */
  accepts(region: Region, key: string, viewId: number | undefined): boolean;
  /**
   * New changes decided under view `viewId` by member `from`: STRAIT_BUCKET_MOVED when this
   * server's newer view names another primary for one of their buckets and it is not that
   * primary itself (a stale primary must not get its write acknowledged); else undefined.
   */
  staleWriter(region: Region, entries: readonly WireEntry[], viewId: number | undefined, from: string | undefined): StraitError | undefined;
  /**
   * Where entries applied here go next: a primary passes on what it got from another member
   * (a previous primary's late write, a copy's push-back) to the bucket's current holders,
   * making `pending` wait for them.
   */
  onwards(region: Region, entries: readonly WireEntry[], from: string | undefined, pending: PendingWrite): void;
}

export interface WriteHost {
  readonly memberName: string;
  info(): MemberInfo;
  state(): MemberState;
  /** This member's disk refused a commit: it must stop (see awaitDurable). */
  storageFailed(error: StraitError): void;
}

export class WritePath {
  private readonly runtime: Runtime;
  private readonly pool: PeerPool;
  private readonly host: WriteHost;
  private readonly regions: RegionTable;
  private readonly subscriptions: Subscriptions;
  private readonly gateways: GatewayQueues;
  private readonly metrics: MetricsSink;
  private readonly log: Logger;
  /** One replication channel per other server of the view, by member id. */
  private readonly channels = new Map<string, ReplicationChannel>();
  /** The installed view's id, stamped on replication messages. */
  private viewId: number | undefined;
  private counter = 0;
  private lastTimestampMs = 0;
  /** Client write requests applied here or at a peer, for recognising retries. */
  private readonly requests = new RequestLog();
  /** Client retries recognised and not applied again (tests, status). */
  retriesRecognised = 0;
  /** Replicated writes applied by last-writer-wins because the resolver failed here. */
  private resolverFallbacks = 0;
  private lastFallbackLogMs = -Infinity;

  constructor(runtime: Runtime, pool: PeerPool, host: WriteHost, parts: { regions: RegionTable; subscriptions: Subscriptions; gateways: GatewayQueues }, metrics: MetricsSink, log: Logger) {
    this.runtime = runtime;
    this.pool = pool;
    this.host = host;
    this.regions = parts.regions;
    this.subscriptions = parts.subscriptions;
    this.gateways = parts.gateways;
    this.metrics = metrics;
    this.log = log;
  }

  /** Opens a channel to every new server of the view and closes those to servers gone. */
  viewInstalled(view: View): void {
    this.viewId = view.id;
    const me = this.host.info().id;
    const servers = new Map(serversOf(view).filter((member) => member.info.id !== me).map((member) => [member.info.id, member]));
    for (const [id, channel] of this.channels) {
      if (!servers.has(id)) {
        channel.close();
        this.channels.delete(id);
      }
    }
    for (const [id, member] of servers) {
      if (this.channels.has(id)) continue;
      const configured = new Set(member.info.regions);
      const hosts = (region: string): boolean => configured.has(region) || this.regions.expectedOn(region, id);
      this.channels.set(id, new ReplicationChannel(this.runtime, this.pool, { id, name: member.info.name, address: member.info.address }, this.log, (entries) => this.metrics.replicated(entries), hosts, () => this.viewId));
    }
  }

  /**
   * Refuses a new change to `region` before anything is applied when this server can't carry
   * it: a peer's replication backlog is at its limit (STRAIT_OVERLOADED), or a gateway sender's
   * queue overflow is (STRAIT_QUEUE_FULL). Both are retryable: backpressure, not loss.
   */
  checkAdmission(region: Region): void {
    for (const channel of this.channels.values()) {
      if (!channel.full) continue;
      const { entries, bytes } = channel.held;
      throw new StraitError('STRAIT_OVERLOADED', { member: this.host.memberName, what: `replication to ${channel.memberName}`, held: `${entries} entries (${bytes} bytes)` });
    }
    this.gateways.admit(region);
  }

  /** This member lost its place in the view, or stops: writes waiting on replicas fail. */
  abandonAll(error: StraitError): void {
    for (const channel of this.channels.values()) channel.close(error);
    this.channels.clear();
  }

  /**
   * The next version tag of this member: wall clock, never going backwards within a member, and
   * always after the tag this member holds for the key, so a write supersedes every write this
   * member has seen for that key even when another member's clock runs ahead.
   */
  private nextTag(current: VersionTag | undefined): VersionTag {
    const now = Math.max(this.runtime.clock.now(), this.lastTimestampMs, current === undefined ? 0 : current[1] + 1);
    this.lastTimestampMs = now;
    this.counter += 1;
    const info = this.host.info();
    return [info.site, now, info.id, this.counter];
  }

  /**
   * A client write: tags, applies, queues and replicates; `done` once every replica has it,
   * with whether a remove found a value. A write whose `requestId` this server already applied
   * (a client retry, here or after a failover) is not applied again: its keys' current entries
   * are replicated once more — completing a first attempt its server may have left half-done —
   * and the first attempt's answer is given. `targets` limits replication to those member ids
   * (the other holders of a partitioned region's bucket); by default every other server.
   */
  write(
    region: Region, entries: readonly (readonly [string, Uint8Array | null])[], requestId: string | undefined,
    done: (error: StraitError | undefined, existed: boolean) => void, targets?: ReadonlySet<string>,
  ): void {
    this.checkAdmission(region);
    const now = this.runtime.clock.monotonic();
    const seen = requestId === undefined ? undefined : this.requests.lookup(requestId, now);
    const existed = seen?.existed ?? (entries.length === 1 && region.get(entries[0]![0]) !== undefined);
    const pending = new PendingWrite((error) => done(error, existed));
    if (seen !== undefined) {
      this.retriesRecognised += 1;
      for (const [key] of entries) {
        const entry = region.wireEntry(key);
        if (entry !== undefined) this.replicate(region.spec.name, entry, pending, true, undefined, targets);
      }
    } else {
      // Replicas learn the id with the request's entries, all in one replicate message; a
      // request too large for one is not named to them (a retry elsewhere is applied again —
      // a duplicate, never an acknowledged write some replica lacks).
      const bytes = entries.reduce((sum, [, value]) => sum + (value?.length ?? 0), 0);
      const named = requestId !== undefined && entries.length <= REPLICATION_BATCH_ENTRIES_MAX && bytes <= REPLICATION_BATCH_BYTES_MAX;
      for (const [index, [key, value]] of entries.entries()) {
        const tag = this.nextTag(region.entry(key)?.tag);
        const request = index === 0 && named ? { id: [requestId, existed] as const, entries: entries.length, bytes } : undefined;
        this.admit(region, [key, value, tag], false, pending, request, targets);
      }
      // Remembered here once every entry was applied: a write refused part-way is not "seen".
      if (requestId !== undefined) this.requests.remember(requestId, existed, now);
    }
    this.gateways.sync(region, pending);
    this.awaitRegion(region, pending);
    pending.settle();
  }

  /**
   * Puts a client coalesced (`putBatch`), each entry a put of its own: an entry that `check`
   * refuses, or that can't be applied (a resolver that throws, a key the store can't hold), is
   * refused alone and the rest are applied; `done` has the refusals once every replica has the
   * applied ones. One request id names the batch, so a retry is recognised as one write, and the
   * refusals are remembered with it (here and at every replica), so a retry hears them again.
   */
  writeBatch(
    region: Region, entries: readonly (readonly [string, Uint8Array])[], requestId: string | undefined,
    check: (value: Uint8Array) => void, done: (error: StraitError | undefined, refused: readonly EntryRefusal[]) => void,
  ): void {
    this.checkAdmission(region);
    const now = this.runtime.clock.monotonic();
    if (requestId !== undefined && this.requests.lookup(requestId, now) !== undefined) {
      const refused = this.requests.refusedOf(requestId);
      this.write(region, entries.filter((_, index) => !refused.some((refusal) => refusal.index === index)), requestId, (error) => done(error, refused));
      return;
    }
    const refused: EntryRefusal[] = [];
    const pending = new PendingWrite((error) => done(error, refused));
    const bytes = entries.reduce((sum, [, value]) => sum + value.length, 0);
    // As in `write`: the replicas learn the id with the batch's first applied entry, in one message.
    const named = requestId !== undefined && entries.length <= REPLICATION_BATCH_ENTRIES_MAX && bytes <= REPLICATION_BATCH_BYTES_MAX;
    const request: { id: readonly [string, boolean]; entries: number; bytes: number; refusals?: readonly EntryRefusal[] } | undefined = named ? { id: [requestId, false], entries: entries.length, bytes } : undefined;
    let first = true;
    for (const [index, [key, value]] of entries.entries()) {
      try {
        check(value);
        this.admit(region, [key, value, this.nextTag(region.entry(key)?.tag)], false, pending, first ? request : undefined);
        first = false;
      } catch (error) {
        if (!(error instanceof StraitError)) throw error;
        refused.push({ index, code: error.code, message: error.message, retryable: error.retryable });
      }
    }
    // The replication channels send once this handler is done: the refusals still travel with the id.
    if (request !== undefined && refused.length > 0) request.refusals = refused;
    if (requestId !== undefined) this.requests.remember(requestId, false, now, refused);
    this.gateways.sync(region, pending);
    this.awaitRegion(region, pending);
    pending.settle();
  }

  /** Makes `pending` wait until every persistent gateway sender queueing `region` has synced. */
  gatewaySync(region: Region, pending: PendingWrite): void {
    this.gateways.sync(region, pending);
  }

  /** Makes `pending` wait for `region` on disk (a no-op for in-memory regions). */
  awaitRegion(region: Region, pending: PendingWrite): void {
    if (!region.persistent) return;
    awaitDurable(pending, `region ${region.spec.name}`, (callback) => region.sync(callback), (error) => this.host.storageFailed(error));
  }

  /**
   * A change entering the site here (a client write, or an event from another site's gateway
   * sender): applied, queued for the gateway senders, and replicated with `gateway: true` so
   * every other server queues it on its copy of each sender too.
   */
  admit(region: Region, entry: WireEntry, possibleDuplicate: boolean, pending: PendingWrite, request?: ReplicatedRequest, targets?: ReadonlySet<string>): void {
    this.apply(region, entry[0], entry[1], entry[2]);
    this.gateways.queue(region, entry, possibleDuplicate);
    this.replicate(region.spec.name, entry, pending, true, request, targets);
  }

  /**
   * Applies a change here and tells the subscribers; false when it was stale. Throws what
   * Region.apply throws (STRAIT_RESOLVER_FAILED, STRAIT_KEY_INVALID, STRAIT_STORAGE), with
   * nothing changed: new changes entering the site are refused then.
   */
  apply(region: Region, key: string, value: Uint8Array | null, tag: VersionTag, lastWriterWins = false): boolean {
    if (region.apply(key, value, tag, lastWriterWins) !== 'applied') return false;
    this.subscriptions.notify(region.spec.name, key, value, tag);
    return true;
  }

  /**
   * Applies a change another server of this site already applied (replication, images). If
   * the resolver fails here on what it accepted there, last-writer-wins decides instead —
   * the same decision on every replica — and the failure is logged: refusing would leave
   * this replica behind for good.
   */
  applyReplicated(region: Region, key: string, value: Uint8Array | null, tag: VersionTag): boolean {
    try {
      return this.apply(region, key, value, tag);
    } catch (error) {
      if (!(error instanceof StraitError) || error.code !== 'STRAIT_RESOLVER_FAILED') throw error;
      this.resolverFallbacks += 1;
      const now = this.runtime.clock.monotonic();
      if (now - this.lastFallbackLogMs > RESOLVER_FALLBACK_LOG_INTERVAL_MS) {
        this.lastFallbackLogMs = now;
        this.log.error({ code: error.code, region: region.spec.name, key, fallbacks: this.resolverFallbacks }, `server ${this.host.memberName}: ${error.message}; applied a replicated write by last-writer-wins instead (${this.resolverFallbacks} so far) — fix the resolver: it must not throw and must give every replica the same answer`);
      }
      return this.apply(region, key, value, tag, true);
    }
  }

  /**
   * Sends an entry to every other server of the view (or only to the member ids `targets`);
   * `pending` waits for each of them.
   */
  replicate(regionName: string, entry: WireEntry, pending: PendingWrite | undefined, gateway = false, request?: ReplicatedRequest, targets?: ReadonlySet<string>): void {
    for (const channel of this.channels.values()) {
      if (targets === undefined || targets.has(channel.memberId)) channel.enqueue(regionName, entry, pending, gateway, request);
    }
  }

  /** Partitioned regions' part in replicated writes (set by the server). */
  buckets: BucketHooks | undefined;

  /** Another server replicates changes to us. */
  onReplicate(body: RequestBody<'replicate'>, reply: Reply<'replicate'>, from?: string): void {
    // Replicas accept writes while initializing: that is how a joiner gets writes made during
    // its initial image.
    const state = this.host.state();
    if (state !== 'ready' && state !== 'initializing') {
      reply.fail(new StraitError('STRAIT_NOT_READY', { member: this.host.memberName, state }));
      return;
    }
    const region = this.regions.require(body.region);
    const buckets = region.spec.partition !== undefined ? this.buckets : undefined;
    const stale = body.gateway === true ? buckets?.staleWriter(region, body.entries, body.viewId, from) : undefined;
    if (stale !== undefined) {
      reply.fail(stale);
      return;
    }
    const now = this.runtime.clock.monotonic();
    if (body.refusals === undefined) {
      for (const [id, existed] of body.requests ?? []) this.requests.remember(id, existed, now);
    } else {
      const refusals = new Map(body.refusals);
      for (const [id, existed] of body.requests ?? []) this.requests.remember(id, existed, now, refusals.get(id));
    }
    // Decided under a view older than ours: in that view the sender may have been the one
    // dispatching these events to other sites (a serial primary, a bucket's dispatcher) and may
    // have sent them already — our copies of them go out flagged possible-duplicate.
    const decidedEarlier = body.viewId !== undefined && this.viewId !== undefined && body.viewId < this.viewId;
    const applied: WireEntry[] = [];
    for (const entry of body.entries) {
      if (buckets !== undefined && !buckets.accepts(region, entry[0], body.viewId)) continue;
      if (this.applyReplicated(region, entry[0], entry[1], entry[2]) && buckets !== undefined) applied.push(entry);
      if (body.gateway === true) this.gateways.queue(region, entry, decidedEarlier);
    }
    const pending = new PendingWrite((error) => {
      if (error !== undefined) reply.fail(error);
      else reply.ok({});
    });
    if (applied.length > 0) buckets?.onwards(region, applied, from, pending);
    if (body.gateway === true) this.gateways.sync(region, pending);
    this.awaitRegion(region, pending);
    pending.settle();
  }
}
