// Replication of applied writes from the server that took them to every other server of the
// view (distributed-ack). One channel per peer server keeps a bounded window of batches in
// flight and coalesces writes that queue behind it, so pipelined clients get batched
// replication. A batch that fails (connection lost, timeout) is resent after a backoff until
// the peer acknowledges it or leaves the view: replicas apply by version tag, so a resend
// never has a second effect.

import { StraitError } from '../errors.ts';
import type { EntryRefusal, WireEntry } from '../protocol/messages.ts';
import type { Address, Logger, Runtime, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { Backoff } from './backoff.ts';
import type { PeerPool } from './peer-pool.ts';

/** A client write waiting for every replica (and local persistence) before it is acknowledged. */
export class PendingWrite {
  private waiting = 1; // the local sync counts as one
  private finished = false;
  private readonly done: (error: StraitError | undefined) => void;

  constructor(done: (error: StraitError | undefined) => void) {
    this.done = done;
  }

  expect(): void {
    this.waiting += 1;
  }

  /** One replica (or the local disk) has the write. */
  settle(): void {
    this.waiting -= 1;
    if (this.waiting === 0 && !this.finished) {
      this.finished = true;
      this.done(undefined);
    }
  }

  /** This member can no longer vouch for the write (it was removed from the view, or stops). */
  abandon(error: StraitError): void {
    if (this.finished) return;
    this.finished = true;
    this.done(error);
  }
}

/**
 * Makes `pending` also wait until `sync` reports the disk has everything written so far. A
 * failed sync (a commit the disk refused: full, I/O error) fails the write with STRAIT_STORAGE
 * naming `path`, and is reported to `failed`: the one storage policy of a member (see
 * ARCHITECTURE.md, "Storage failures").
 */
export function awaitDurable(pending: PendingWrite, path: string, sync: (callback: (error: Error | undefined) => void) => void, failed: (error: StraitError) => void): void {
  pending.expect();
  sync((error) => {
    if (error === undefined) {
      pending.settle();
      return;
    }
    const failure = new StraitError('STRAIT_STORAGE', { path, reason: error.message }, { cause: error });
    pending.abandon(failure);
    failed(failure);
  });
}

interface QueuedEntry {
  readonly region: string;
  /** A new change entering the site: the replicas queue it for their gateway senders. */
  readonly gateway: boolean;
  readonly entry: WireEntry;
  readonly write: PendingWrite | undefined;
  /**
   * The client request this entry starts, so the replicas remember its id (retries), with the
   * count and value bytes of its entries (they follow this one): a batch carries all of them or
   * none, so a replica that knows the id holds every entry of the request.
   */
  readonly request: { readonly id: ClientRequest; readonly entries: number; readonly bytes: number; refusals?: readonly EntryRefusal[] } | undefined;
  /** The view this member had when it queued the entry (the view the write was decided under). */
  readonly viewId: number | undefined;
}

/** A client write's request id and, for a remove, whether the key held a value. */
export type ClientRequest = readonly [id: string, existed: boolean];

/** A client request as it travels with its first entry: the id, and its entries' count and bytes. */
export type ReplicatedRequest = NonNullable<QueuedEntry['request']>;

/** Batches in flight per peer, at most. */
export const REPLICATION_BATCHES_IN_FLIGHT_MAX = 8;
/** Entries per replicate message, at most. */
export const REPLICATION_BATCH_ENTRIES_MAX = 1024;
/** Value bytes per replicate message, at most (a single larger value still goes alone). */
export const REPLICATION_BATCH_BYTES_MAX = 1024 * 1024;
/**
 * Entries waiting for one peer (queued and in flight), at most, and their bytes: past either,
 * the channel is `full` and the server refuses new writes (STRAIT_OVERLOADED) instead of
 * buffering without bound behind a slow or dead peer.
 */
export const REPLICATION_QUEUE_ENTRIES_MAX = 200_000;
export const REPLICATION_QUEUE_BYTES_MAX = 64 * 1024 * 1024;

function entryBytes(entry: WireEntry): number {
  return entry[0].length + (entry[1]?.length ?? 0) + 48;
}

export class ReplicationChannel {
  readonly memberId: string;
  readonly memberName: string;
  private readonly address: Address;
  private readonly runtime: Runtime;
  private readonly pool: PeerPool;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private readonly onReplicated: (entries: number) => void;
  private queue: QueuedEntry[] = [];
  private queueHead = 0;
  /** Batches sent and not yet answered. */
  private readonly inFlight = new Set<QueuedEntry[]>();
  /** Value bytes per batch: REPLICATION_BATCH_BYTES_MAX, less after the peer refused a frame. */
  private batchBytesCap = REPLICATION_BATCH_BYTES_MAX;
  /** Entries and bytes queued or in flight (what `full` bounds). */
  private heldEntries = 0;
  private heldBytes = 0;
  private retryTimer: Timer | undefined;
  private closed = false;
  private pumpScheduled = false;
  private lastFailureLogMs = -Infinity;

  /** Whether the peer should host `region` (its refusal then is a failure, not a skip). */
  private readonly hosts: (region: string) => boolean;

  /** This member's current view id, taken with each entry queued (see `replicate.viewId`). */
  private readonly viewId: () => number | undefined;

  constructor(
    runtime: Runtime, pool: PeerPool, member: { id: string; name: string; address: Address }, log: Logger,
    onReplicated: (entries: number) => void, hosts: (region: string) => boolean = () => false, viewId: () => number | undefined = () => undefined,
  ) {
    this.hosts = hosts;
    this.viewId = viewId;
    this.runtime = runtime;
    this.pool = pool;
    this.memberId = member.id;
    this.memberName = member.name;
    this.address = member.address;
    this.log = log;
    this.onReplicated = onReplicated;
    this.backoff = new Backoff(runtime.random, { initialDelayMs: 50, maximumDelayMs: 2000 });
  }

  get queuedEntries(): number {
    return this.queue.length - this.queueHead;
  }

  /** Entries and bytes waiting for this peer (queued or in flight). */
  get held(): { entries: number; bytes: number } {
    return { entries: this.heldEntries, bytes: this.heldBytes };
  }

  /** Too much waits for this peer: new writes must be refused until it catches up or leaves. */
  get full(): boolean {
    return this.heldEntries >= REPLICATION_QUEUE_ENTRIES_MAX || this.heldBytes >= REPLICATION_QUEUE_BYTES_MAX;
  }

  enqueue(region: string, entry: WireEntry, write: PendingWrite | undefined, gateway: boolean, request?: QueuedEntry['request']): void {
    if (this.closed) return;
    write?.expect();
    this.queue.push({ region, entry, write, gateway, request, viewId: this.viewId() });
    this.heldEntries += 1;
    this.heldBytes += entryBytes(entry);
    // Send once the current handler is done, so every write taken from one network chunk
    // (pipelined clients) travels in one replicate message.
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    this.runtime.defer(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /**
   * The peer left the view: nothing more is owed to it, so waiting writes are released at once,
   * those in batches still in flight too. With `abandon`, this member itself lost its place in
   * the view: waiting writes fail instead.
   */
  close(abandon?: StraitError): void {
    if (this.closed) return;
    this.closed = true;
    this.retryTimer?.cancel();
    const release = (queued: QueuedEntry) => {
      if (abandon !== undefined) queued.write?.abandon(abandon);
      else queued.write?.settle();
    };
    for (const batch of this.inFlight) batch.forEach(release);
    this.inFlight.clear();
    for (let index = this.queueHead; index < this.queue.length; index++) release(this.queue[index]!);
    this.queue = [];
    this.queueHead = 0;
    this.heldEntries = 0;
    this.heldBytes = 0;
  }

  private pump(): void {
    while (!this.closed && this.retryTimer === undefined && this.inFlight.size < REPLICATION_BATCHES_IN_FLIGHT_MAX && this.queueHead < this.queue.length) {
      this.sendBatch(this.takeBatch());
    }
  }

  private takeBatch(): QueuedEntry[] {
    const first = this.queue[this.queueHead]!;
    const batch: QueuedEntry[] = [];
    let bytes = 0;
    // Entries of a client request still to take: a request is never split between batches.
    let requestRemaining = 0;
    while (this.queueHead < this.queue.length) {
      const next = this.queue[this.queueHead]!;
      const size = next.entry[1]?.length ?? 0;
      if (requestRemaining === 0) {
        if (batch.length >= REPLICATION_BATCH_ENTRIES_MAX) break;
        if (next.region !== first.region || next.gateway !== first.gateway || next.viewId !== first.viewId) break;
        const incoming = next.request === undefined ? { entries: 1, bytes: size } : next.request;
        if (batch.length > 0 && (batch.length + incoming.entries > REPLICATION_BATCH_ENTRIES_MAX || bytes + incoming.bytes > this.batchBytesCap)) break;
        requestRemaining = next.request?.entries ?? 0;
      }
      if (requestRemaining > 0) requestRemaining -= 1;
      batch.push(next);
      bytes += size;
      this.queueHead += 1;
    }
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    return batch;
  }

  private sendBatch(batch: QueuedEntry[]): void {
    this.inFlight.add(batch);
    const region = batch[0]!.region;
    const entries = batch.map((queued) => queued.entry);
    const requests: [string, boolean][] = [];
    const refusals: [string, EntryRefusal[]][] = [];
    for (const { request } of batch) {
      if (request === undefined) continue;
      requests.push([request.id[0], request.id[1]]);
      if (request.refusals !== undefined) refusals.push([request.id[0], [...request.refusals]]);
    }
    const viewId = batch[0]!.viewId;
    const body = {
      region, entries, ...(batch[0]!.gateway ? { gateway: true } : {}), ...(requests.length > 0 ? { requests } : {}),
      ...(refusals.length > 0 ? { refusals } : {}), ...(viewId !== undefined ? { viewId } : {}),
    };
    this.pool.get(this.address).request('replicate', body, (error) => {
      // Closed meanwhile: `close` already released this batch's writes.
      if (!this.inFlight.delete(batch)) return;
      if (error === undefined || (error.code === 'STRAIT_REGION_NOT_FOUND' && !this.hosts(region))) {
        // A peer that does not host the region (by its configuration) holds no replica of it:
        // done. One that should host it (it was created there, or is being) is asked again.
        this.backoff.reset();
        this.onReplicated(batch.length);
        this.finish(batch);
        return;
      }
      if (error.code === 'STRAIT_FRAME_TOO_LARGE') {
        this.tooLarge(batch, error);
        return;
      }
      if (error.code === 'STRAIT_BUCKET_MOVED') {
        // Decided under a view in which this member was a bucket's primary, and it no longer is:
        // the writes fail (the client retries at the new primary); sending again can't help.
        this.finish(batch, error);
        return;
      }
      this.failed(batch, error);
    });
  }

  /** The batch is done with: its writes settle (or fail with `error`), and the next goes out. */
  private finish(batch: readonly QueuedEntry[], error?: StraitError): void {
    this.heldEntries -= batch.length;
    for (const queued of batch) {
      this.heldBytes -= entryBytes(queued.entry);
      if (error === undefined) queued.write?.settle();
      else queued.write?.abandon(error);
    }
    this.pump();
  }

  /**
   * The peer refused the batch's frame as too large (the connection never sent it). Several
   * entries go out again in smaller batches (a request split too, no longer named to the peer:
   * a retry elsewhere is then applied again, never wrongly taken as seen). One entry the peer
   * can never take — its frame limit is below this member's value limit — fails its write with
   * the code rather than wedge the channel: the configurations of the site's servers differ.
   */
  private tooLarge(batch: QueuedEntry[], error: StraitError): void {
    if (batch.length > 1) {
      const bytes = batch.reduce((sum, queued) => sum + (queued.entry[1]?.length ?? 0), 0);
      this.batchBytesCap = Math.max(1, Math.floor(bytes / 2));
      const unnamed = batch.map((queued) => (queued.request === undefined ? queued : { ...queued, request: undefined }));
      this.queue = [...unnamed, ...this.queue.slice(this.queueHead)];
      this.queueHead = 0;
      this.pump();
      return;
    }
    const [queued] = batch;
    this.log.error({ code: error.code, peer: this.memberName }, `replication of ${queued!.region}/${queued!.entry[0]} to ${this.memberName} refused: ${error.message}; the servers' frame-bytes-max / value-bytes-max differ — give every server of the site the same`);
    this.finish(batch, error);
  }

  private failed(batch: QueuedEntry[], error: StraitError): void {
    // Put the batch back in front and retry after a backoff; the view change that removes a
    // dead peer closes this channel and releases the waiting writes.
    this.queue = [...batch, ...this.queue.slice(this.queueHead)];
    this.queueHead = 0;
    const now = this.runtime.clock.monotonic();
    if (now - this.lastFailureLogMs > 5000) {
      this.lastFailureLogMs = now;
      this.log.warn({ code: error.code, peer: this.memberName, address: formatAddress(this.address) }, `replication to ${this.memberName} at ${formatAddress(this.address)} failed: ${error.message}; retrying until it answers or leaves the view`);
    }
    if (this.retryTimer !== undefined) return;
    this.retryTimer = this.runtime.setTimer(this.backoff.nextDelayMs(), () => {
      this.retryTimer = undefined;
      this.pump();
    });
  }
}
