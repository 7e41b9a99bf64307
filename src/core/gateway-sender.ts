// A serial gateway sender on one server: a queue of changes bound for one remote site, and —
// on the primary — the dispatcher that ships them in batches to a gateway receiver there.
//
// Every server hosting the sender queues every change (the site's replication delivers each
// change to all of them). The primary (the oldest running server hosting the sender) sends
// batches and, when the remote site acknowledges one, tells the secondaries which events to
// drop. When the primary dies the next one takes over from its own copy and marks what it
// resends as possible duplicates; the receiver applies by version tag, so a duplicate has no
// second effect.
//
// Queue: events in memory up to `maximum-queue-memory`, the rest on disk (read back when their
// turn comes); with `enable-persistence` every event is on disk until acknowledged, so a
// restarted member resumes from the first unacknowledged one. Dispatch is adaptive: an idle
// link gets a batch at once; under load batches fill up to `batch-size` or wait at most
// `batch-time-interval`; up to BATCHES_IN_FLIGHT_MAX batches are in flight, so throughput holds
// as round-trip time grows.
//
// A state machine: callbacks run to completion; time, I/O and storage come through the Runtime.

import { Packr } from 'msgpackr';
import { zstdCompressSync } from 'node:zlib';
import { StraitError, assert } from '../errors.ts';
import { Connection } from '../protocol/connection.ts';
import type { GatewayEvent, SenderStatus } from '../protocol/messages.ts';
import type { Address, Logger, Runtime, Store, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { Backoff } from './backoff.ts';
import type { GatewaySenderSpec } from './config.ts';

/** Batches awaiting the remote site's acknowledgement, at most. */
export const BATCHES_IN_FLIGHT_MAX = 16;
/** Event ids remembered after their acknowledgement, so a late copy is not queued again. */
const ACKED_IDS_REMEMBERED_MAX = 200_000;
/** Events kept in the dead-letter list, at most (the oldest are dropped beyond it, logged). */
const DEAD_LETTERS_MAX = 100_000;
/** How long a batch may wait for the remote site's acknowledgement. */
const BATCH_TIMEOUT_MS = 30_000;

const eventPackr = new Packr({ useRecords: false, mapsAsObjects: true });

export type SenderState = 'running' | 'paused' | 'stopped';

/** What the sender needs from the server hosting it. */
export interface SenderHost {
  readonly memberName: string;
  readonly site: number;
  /** True when this member is the sender's primary. */
  isPrimary(): boolean;
  /** The remote site's receivers, or why none is known. */
  receivers(): { readonly receivers: readonly Address[]; readonly problem: string | null };
  /** Tell the secondaries these events reached the remote site. */
  acknowledged(ids: readonly string[]): void;
  /** Local state changed (stopped / started): secondaries re-elect the primary. */
  stateChanged(): void;
}

interface QueueItem {
  readonly id: string;
  readonly storeKey: string;
  readonly bytes: number;
  readonly enqueuedAtMs: number;
  /** undefined when only on disk. */
  event: GatewayEvent | undefined;
  possibleDuplicate: boolean;
  sent: boolean;
  removed: boolean;
}

interface Batch {
  readonly id: number;
  readonly items: QueueItem[];
}

export function eventId(event: GatewayEvent): string {
  const tag = event[3];
  return `${tag[2]}:${tag[3]}`;
}

function eventBytes(event: GatewayEvent): number {
  return event[0].length + event[1].length + (event[2]?.length ?? 0) + event[3][2].length + 32;
}

function storeKey(sequence: number): string {
  return sequence.toString(16).padStart(13, '0');
}

export class GatewaySender {
  readonly spec: GatewaySenderSpec;
  private readonly runtime: Runtime;
  private readonly host: SenderHost;
  private readonly log: Logger;
  private readonly store: Store;
  private readonly deadLetterStore: Store;
  /** Key of the last dead letter written (its own sequence, recovered at start). */
  private deadLetterSequence = 0;
  private readonly memoryBytesMax: number;
  private readonly backoff: Backoff;
  private items: QueueItem[] = [];
  private head = 0;
  private readonly byId = new Map<string, QueueItem>();
  private readonly ackedIds = new Set<string>();
  private readonly ackedRing: (string | undefined)[] = [];
  private ackedNext = 0;
  private sequence = 0;
  private queueBytes = 0;
  private memoryBytes = 0;
  private liveCount = 0;
  /** Events on the on-disk tail (not queue items): sequences diskHead..diskTail, some maybe gone. */
  private spilledCount = 0;
  private spilledBytes = 0;
  private diskHead = 0;
  private diskTail = -1;
  /** After a takeover, everything read back from disk may already be at the remote site. */
  private afterTakeover = false;
  private deadLetters: { event: GatewayEvent; code: string; message: string }[] = [];
  state: SenderState;
  private connection: Connection | undefined;
  private connectedTo: Address | undefined;
  private connecting = false;
  private reconnectTimer: Timer | undefined;
  private batchTimer: Timer | undefined;
  private readonly inFlight = new Map<number, Batch>();
  private nextBatchId = 1;
  private eventsSent = 0;
  private lastAckAtMs = 0;
  private receiverIndex = 0;
  private problem: string | null = null;
  private lastProblemLogMs = -Infinity;
  private wasPrimary = false;
  private closed = false;
  private drainWaiters: { deadline: number; callback: () => void }[] = [];

  constructor(runtime: Runtime, spec: GatewaySenderSpec, host: SenderHost, log: Logger) {
    this.runtime = runtime;
    this.spec = spec;
    this.host = host;
    this.log = log.child({ sender: spec.id, remoteSite: spec.remoteSiteId });
    this.memoryBytesMax = spec.maximumQueueMemoryMegabytes * 1024 * 1024;
    this.backoff = new Backoff(runtime.random, { initialDelayMs: 100, maximumDelayMs: 5000 });
    this.state = spec.manualStart ? 'stopped' : 'running';
    this.store = runtime.storage.open(`sender-${spec.id}`);
    this.deadLetterStore = runtime.storage.open(`dead-letters-${spec.id}`);
    this.recover();
  }

  /** Loads a persisted queue (or clears an overflow-only one) and the dead letters. */
  private recover(): void {
    const store = this.store;
    let recovered = 0;
    for (const [key, bytes] of store.entries()) {
      if (!this.spec.persistent) {
        store.remove(key);
        continue;
      }
      const event = this.decode(bytes, `sender ${this.spec.id} queue record ${key}`);
      const sequence = Number.parseInt(key, 16);
      assert(Number.isSafeInteger(sequence), `sender ${this.spec.id}: queue key ${key} is not a sequence`);
      this.sequence = Math.max(this.sequence, sequence);
      this.append(event, key, true, true);
      recovered += 1;
    }
    for (const [key, bytes] of this.deadLetterStore.entries()) {
      this.deadLetterSequence = Math.max(this.deadLetterSequence, Number.parseInt(key, 16));
      const record = eventPackr.unpack(bytes) as { event: GatewayEvent; code: string; message: string };
      this.deadLetters.push(record);
    }
    if (recovered > 0) this.log.info({ events: recovered }, `sender ${this.spec.id}: resumed ${recovered} unacknowledged events from disk`);
  }

  private decode(bytes: Uint8Array, what: string): GatewayEvent {
    try {
      const event = eventPackr.unpack(bytes) as GatewayEvent;
      if (!Array.isArray(event) || event.length !== 5) throw new Error('not an event');
      return event;
    } catch (error) {
      throw new StraitError('STRAIT_STORAGE', { path: what, reason: 'unreadable record' }, { cause: error });
    }
  }

  get queuedEvents(): number {
    return this.liveCount;
  }

  /** Queues a change for the remote site (no-op when stopped, or already queued or acknowledged). */
  enqueue(event: GatewayEvent): void {
    if (this.closed || this.state === 'stopped') return;
    const id = eventId(event);
    if (this.byId.has(id) || this.ackedIds.has(id)) return;
    this.sequence += 1;
    const key = storeKey(this.sequence);
    this.append(event, key, false, this.spec.persistent);
    this.pump();
  }

  /**
   * Adds an event at the tail. While the in-memory part has room (and nothing waits on disk
   * before it) the event is kept in memory as a queue item; otherwise it goes to the on-disk
   * tail, a run of sequence numbers costing no memory per event, read back in order as the
   * memory part drains. That is what bounds memory during a long partition.
   */
  private append(event: GatewayEvent, key: string, fromDisk: boolean, persist: boolean): void {
    const bytes = eventBytes(event);
    const sequence = Number.parseInt(key, 16);
    const spill = this.spilledCount > 0 || this.memoryBytes + bytes > this.memoryBytesMax;
    if (!fromDisk && (persist || spill)) this.store.put(key, eventPackr.pack(event));
    this.queueBytes += bytes;
    this.liveCount += 1;
    if (spill) {
      if (this.spilledCount === 0) this.diskHead = sequence;
      this.diskTail = sequence;
      this.spilledCount += 1;
      this.spilledBytes += bytes;
      return;
    }
    this.pushItem(event, key, bytes, fromDisk || event[4] || this.afterTakeover);
  }

  private pushItem(event: GatewayEvent, key: string, bytes: number, possibleDuplicate: boolean): void {
    const item: QueueItem = {
      id: eventId(event), storeKey: key, bytes, enqueuedAtMs: this.runtime.clock.monotonic(),
      event, possibleDuplicate, sent: false, removed: false,
    };
    this.memoryBytes += bytes;
    this.items.push(item);
    this.byId.set(item.id, item);
  }

  /** Durability of queued events (persistent senders): part of a write's acknowledgement. */
  sync(callback: (error: Error | undefined) => void): void {
    if (this.spec.persistent) this.store.sync(callback);
    else callback(undefined);
  }

  /** Secondary: the primary reports these events acknowledged by the remote site. */
  dropAcknowledged(ids: readonly string[]): void {
    for (const id of ids) {
      const item = this.byId.get(id);
      if (item !== undefined) this.remove(item);
      this.rememberAcked(id);
    }
    this.compact();
  }

  /**
   * Remembers an acknowledged id, forgetting the oldest beyond ACKED_IDS_REMEMBERED_MAX. The ring
   * names the id to forget: evicting through the Set's iterator instead walks every deleted
   * slot V8 keeps, which made each acknowledgement slower than the last.
   */
  private rememberAcked(id: string): void {
    if (this.ackedIds.has(id)) return;
    const evicted = this.ackedRing[this.ackedNext];
    if (evicted !== undefined) this.ackedIds.delete(evicted);
    this.ackedRing[this.ackedNext] = id;
    this.ackedNext = (this.ackedNext + 1) % ACKED_IDS_REMEMBERED_MAX;
    this.ackedIds.add(id);
  }

  private remove(item: QueueItem): void {
    if (item.removed) return;
    item.removed = true;
    this.byId.delete(item.id);
    this.queueBytes -= item.bytes;
    this.liveCount -= 1;
    this.memoryBytes -= item.bytes;
    item.event = undefined;
    if (this.spec.persistent) this.store.remove(item.storeKey);
  }

  private compact(): void {
    while (this.head < this.items.length && this.items[this.head]!.removed) this.head += 1;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 8192 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.refillMemory();
    if (this.liveCount === 0) this.releaseDrainWaiters(true);
  }

  /** Reads on-disk events back into memory, oldest first, as room frees up. */
  private refillMemory(): void {
    while (this.spilledCount > 0 && this.memoryBytes < this.memoryBytesMax && this.diskHead <= this.diskTail) {
      const key = storeKey(this.diskHead);
      this.diskHead += 1;
      const bytes = this.store.get(key);
      if (bytes === undefined) continue; // not on disk (already removed): nothing to send
      const event = this.decode(bytes, `sender ${this.spec.id} queue record ${key}`);
      const size = eventBytes(event);
      this.spilledCount -= 1;
      this.spilledBytes -= size;
      if (!this.spec.persistent) this.store.remove(key);
      const id = eventId(event);
      if (this.ackedIds.has(id) || this.byId.has(id)) {
        // Acknowledged while it waited on disk (a secondary), or queued twice: drop it.
        this.queueBytes -= size;
        this.liveCount -= 1;
        if (this.spec.persistent) this.store.remove(key);
        continue;
      }
      this.pushItem(event, key, size, event[4] || this.afterTakeover);
    }
    if (this.spilledCount === 0) {
      this.spilledBytes = 0;
      this.diskHead = 0;
      this.diskTail = -1;
    }
  }


  /** Secondary: the oldest events queued longer than `olderThanMs`, for a handoff to the primary. */
  staleEvents(olderThanMs: number, limit: number): GatewayEvent[] {
    const cutoff = this.runtime.clock.monotonic() - olderThanMs;
    const events: GatewayEvent[] = [];
    for (let index = this.head; index < this.items.length && events.length < limit; index++) {
      const item = this.items[index]!;
      if (item.removed) continue;
      if (item.enqueuedAtMs > cutoff) break;
      events.push(item.event!);
    }
    return events;
  }

  /**
   * Primary: a secondary's old events. Returns the ids already acknowledged by the remote site;
   * queues (as possible duplicates) the ones this member never had.
   */
  adopt(events: readonly GatewayEvent[]): string[] {
    const acknowledged: string[] = [];
    let adopted = 0;
    for (const event of events) {
      const id = eventId(event);
      if (this.ackedIds.has(id)) acknowledged.push(id);
      else if (!this.byId.has(id) && this.state !== 'stopped') {
        this.enqueue([event[0], event[1], event[2], event[3], true]);
        adopted += 1;
      }
    }
    if (adopted > 0) this.log.info({ events: adopted }, `sender ${this.spec.id}: adopted ${adopted} events only a secondary held`);
    return acknowledged;
  }

  // ---- Control ----

  pause(): void {
    if (this.state === 'running') this.state = 'paused';
    this.batchTimer?.cancel();
    this.batchTimer = undefined;
  }

  resume(): void {
    if (this.state === 'paused') {
      this.state = 'running';
      this.pump();
    }
  }

  /** Stops this member's sender after the queue drains (drainTimeoutMs; -1 = until drained). */
  stop(drainTimeoutMs: number, callback: () => void): void {
    const finish = () => {
      this.state = 'stopped';
      this.disconnect();
      this.host.stateChanged();
      callback();
    };
    if (drainTimeoutMs === 0 || this.liveCount === 0) {
      finish();
      return;
    }
    const deadline = drainTimeoutMs < 0 ? Number.POSITIVE_INFINITY : this.runtime.clock.monotonic() + drainTimeoutMs;
    const timer = drainTimeoutMs > 0 ? this.runtime.setTimer(drainTimeoutMs, () => this.releaseDrainWaiters(false)) : undefined;
    this.drainWaiters.push({ deadline, callback: () => {
      timer?.cancel();
      finish();
    } });
  }

  private releaseDrainWaiters(drained: boolean): void {
    const now = this.runtime.clock.monotonic();
    const due = this.drainWaiters.filter((waiter) => drained || waiter.deadline <= now);
    this.drainWaiters = this.drainWaiters.filter((waiter) => !due.includes(waiter));
    for (const waiter of due) waiter.callback();
  }

  start(): void {
    if (this.state !== 'stopped') return;
    this.state = 'running';
    this.host.stateChanged();
    this.pump();
  }

  /** Puts the dead letters back in the queue (e.g. after the missing region was created). */
  replayDeadLetters(): number {
    const letters = this.deadLetters;
    this.deadLetters = [];
    for (const [key] of [...this.deadLetterStore.entries()]) this.deadLetterStore.remove(key);
    for (const letter of letters) {
      const event: GatewayEvent = [letter.event[0], letter.event[1], letter.event[2], letter.event[3], true];
      const id = eventId(event);
      this.ackedIds.delete(id);
      this.enqueue(event);
    }
    this.log.info({ events: letters.length }, `sender ${this.spec.id}: replaying ${letters.length} dead letters`);
    return letters.length;
  }

  close(): void {
    this.closed = true;
    this.disconnect();
    this.releaseDrainWaiters(true);
  }

  // ---- Dispatch (primary only) ----

  /** Called on view changes and by the server's tick: start or stop dispatching. */
  tick(): void {
    const primary = this.host.isPrimary();
    if (primary && !this.wasPrimary) {
      // Taking over: whatever the previous primary sent but did not see acknowledged may
      // already be at the remote site.
      for (let index = this.head; index < this.items.length; index++) this.items[index]!.possibleDuplicate = true;
      this.afterTakeover = true;
      if (this.liveCount > 0) this.log.info({ events: this.liveCount }, `sender ${this.spec.id}: now primary; resending ${this.liveCount} queued events as possible duplicates`);
    }
    if (!primary && this.wasPrimary) this.disconnect();
    this.wasPrimary = primary;
    this.releaseDrainWaiters(false);
    this.pump();
  }

  private pump(): void {
    if (this.closed || this.state !== 'running' || !this.host.isPrimary()) return;
    if (this.connection === undefined || this.connection.state !== 'open') {
      this.connect();
      return;
    }
    while (this.inFlight.size < BATCHES_IN_FLIGHT_MAX) {
      const unsent = this.unsentCount();
      if (unsent === 0) return;
      // An idle link gets whatever is queued at once; otherwise wait for a full batch or the
      // batch time interval.
      if (this.inFlight.size > 0 && unsent < this.spec.batchSize) {
        this.armBatchTimer();
        return;
      }
      this.sendBatch();
    }
  }

  private unsentCount(): number {
    let count = 0;
    for (let index = this.head; index < this.items.length && count < this.spec.batchSize; index++) {
      const item = this.items[index]!;
      if (!item.removed && !item.sent) count += 1;
    }
    return count;
  }

  private armBatchTimer(): void {
    if (this.batchTimer !== undefined) return;
    this.batchTimer = this.runtime.setTimer(this.spec.batchTimeIntervalMs, () => {
      this.batchTimer = undefined;
      if (this.closed || this.state !== 'running' || this.connection?.state !== 'open') return;
      if (this.inFlight.size < BATCHES_IN_FLIGHT_MAX && this.unsentCount() > 0) this.sendBatch();
      this.pump();
    });
  }

  private sendBatch(): void {
    const connection = this.connection;
    assert(connection !== undefined, 'a batch is sent over an open connection');
    const items: QueueItem[] = [];
    const events: GatewayEvent[] = [];
    for (let index = this.head; index < this.items.length && items.length < this.spec.batchSize; index++) {
      const item = this.items[index]!;
      if (item.removed || item.sent) continue;
      const event = item.event!;
      item.sent = true;
      items.push(item);
      events.push(item.possibleDuplicate ? [event[0], event[1], event[2], event[3], true] : event);
    }
    const batch: Batch = { id: this.nextBatchId++, items };
    this.inFlight.set(batch.id, batch);
    const body = this.spec.compression
      ? { sender: `${this.host.site}/${this.spec.id}`, batchId: batch.id, events: [], compressed: zstdCompressSync(eventPackr.pack(events)) }
      : { sender: `${this.host.site}/${this.spec.id}`, batchId: batch.id, events };
    connection.request('gatewayBatch', body, (error, response) => {
      if (this.inFlight.get(batch.id) !== batch) return;
      this.inFlight.delete(batch.id);
      if (error !== undefined || response === undefined) {
        for (const item of batch.items) {
          item.sent = false;
          item.possibleDuplicate = true;
        }
        this.batchFailed(connection, error);
        return;
      }
      this.batchAcknowledged(batch, response.refused);
    });
  }

  private batchAcknowledged(batch: Batch, refused: readonly { index: number; code: string; message: string }[]): void {
    const refusedIndexes = new Map(refused.map((entry) => [entry.index, entry]));
    const ids: string[] = [];
    for (const [index, item] of batch.items.entries()) {
      if (item.removed) continue;
      const refusal = refusedIndexes.get(index);
      if (refusal !== undefined) this.deadLetter(item, refusal.code, refusal.message);
      ids.push(item.id);
      this.remove(item);
      this.rememberAcked(item.id);
    }
    this.eventsSent += batch.items.length - refused.length;
    this.lastAckAtMs = this.runtime.clock.now();
    this.backoff.reset();
    this.compact();
    this.host.acknowledged(ids);
    this.pump();
  }

  private deadLetter(item: QueueItem, code: string, message: string): void {
    const event = item.event!;
    if (this.deadLetters.length >= DEAD_LETTERS_MAX) {
      this.log.error({ dropped: eventId(event) }, `sender ${this.spec.id}: dead-letter list full (${DEAD_LETTERS_MAX}); dropping the oldest`);
      this.deadLetters.shift();
    }
    const record = { event, code, message };
    this.deadLetters.push(record);
    this.deadLetterStore.put(storeKey(++this.deadLetterSequence), eventPackr.pack(record));
    this.log.warn({ code, region: event[0], key: event[1] }, `sender ${this.spec.id} → site ${this.spec.remoteSiteId}: event for ${event[0]}/${event[1]} refused (${code}: ${message}); kept as a dead letter — replay with strait resume gateway-sender --replay-dead-letters once fixed`);
  }

  private batchFailed(connection: Connection, error: StraitError | undefined): void {
    this.log.warn({ code: error?.code, receiver: this.connectedTo ? formatAddress(this.connectedTo) : null }, `sender ${this.spec.id} → site ${this.spec.remoteSiteId}: batch failed (${error?.message ?? 'no response'}); reconnecting and resending`);
    if (this.connection === connection) this.disconnect();
  }

  private connect(): void {
    if (this.connecting || this.reconnectTimer !== undefined) return;
    const { receivers, problem } = this.host.receivers();
    if (receivers.length === 0) {
      this.setProblem(problem ?? `no receiver of site ${this.spec.remoteSiteId} is known yet`);
      this.scheduleReconnect();
      return;
    }
    const target = receivers[this.receiverIndex % receivers.length]!;
    this.receiverIndex += 1;
    this.connecting = true;
    const connection = Connection.open(this.runtime, target, {
      local: { role: 'gateway', name: `${this.host.memberName}/${this.spec.id}`, site: this.host.site },
      frameBytesMax: 64 * 1024 * 1024,
      requestTimeoutMs: BATCH_TIMEOUT_MS,
      requestsInFlightMax: BATCHES_IN_FLIGHT_MAX * 2,
    }, {
      onOpen: () => {
        this.connecting = false;
        this.connection = connection;
        this.connectedTo = target;
        this.setProblem(null);
        this.log.info({ receiver: formatAddress(target) }, `sender ${this.spec.id} → site ${this.spec.remoteSiteId}: connected to receiver ${formatAddress(target)}`);
        this.pump();
      },
      onRequest: (_connection, _request, reply) => reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: formatAddress(target), reason: 'a sender serves no requests' })),
      onPush: () => {},
      onClose: (_closed, error) => {
        const wasOpen = this.connection === connection;
        this.connecting = false;
        if (wasOpen) {
          this.connection = undefined;
          this.connectedTo = undefined;
          this.resetInFlight();
        }
        if (this.closed || this.state === 'stopped' || !this.host.isPrimary()) return;
        const reason = error?.message ?? 'closed';
        this.setProblem(`receiver ${formatAddress(target)} of site ${this.spec.remoteSiteId}: ${reason}`);
        this.scheduleReconnect();
      },
    });
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer !== undefined || this.closed) return;
    this.reconnectTimer = this.runtime.setTimer(this.backoff.nextDelayMs(), () => {
      this.reconnectTimer = undefined;
      this.pump();
    });
  }

  private setProblem(problem: string | null): void {
    this.problem = problem;
    if (problem === null) return;
    const now = this.runtime.clock.monotonic();
    if (now - this.lastProblemLogMs > 10_000) {
      this.lastProblemLogMs = now;
      this.log.warn({ problem }, `sender ${this.spec.id} → site ${this.spec.remoteSiteId} on ${this.host.memberName}: ${problem}; ${this.liveCount} events queued`);
    }
  }

  /** In-flight batches lost with their connection go out again, flagged possible duplicates. */
  private resetInFlight(): void {
    for (const batch of this.inFlight.values()) {
      for (const item of batch.items) {
        item.sent = false;
        item.possibleDuplicate = true;
      }
    }
    this.inFlight.clear();
  }

  private disconnect(): void {
    this.batchTimer?.cancel();
    this.batchTimer = undefined;
    this.reconnectTimer?.cancel();
    this.reconnectTimer = undefined;
    const connection = this.connection;
    this.connection = undefined;
    this.connectedTo = undefined;
    this.resetInFlight();
    connection?.close();
  }

  status(): SenderStatus {
    let oldest = 0;
    for (let index = this.head; index < this.items.length; index++) {
      const item = this.items[index]!;
      if (!item.removed) {
        oldest = item.enqueuedAtMs;
        break;
      }
    }
    const primary = this.host.isPrimary();
    return {
      id: this.spec.id,
      member: this.host.memberName,
      remoteSite: this.spec.remoteSiteId,
      role: primary ? 'primary' : 'secondary',
      state: this.state,
      connectedReceiver: this.connectedTo ?? null,
      queueEvents: this.liveCount,
      queueBytes: this.queueBytes,
      overflowEvents: this.spilledCount,
      batchesInFlight: this.inFlight.size,
      eventsSent: this.eventsSent,
      lastAckAtMs: this.lastAckAtMs,
      lagMs: this.liveCount === 0 ? 0 : Math.max(0, Math.round(this.runtime.clock.monotonic() - oldest)),
      deadLetters: this.deadLetters.length,
      problem: primary && this.state === 'running' ? this.problem : null,
    };
  }
}
