// The queue of one gateway sender on one server: the changes bound for the remote site that
// the remote site has not acknowledged yet, oldest first.
//
// Guarantees:
// - Order: events leave in the order they were queued (resends after a failure go first).
// - Bounded memory: events are held in memory up to `memoryBytesMax`, counted at what they
//   really cost (QUEUE_ITEM_OVERHEAD_BYTES); the rest wait on disk
//   (the store) as a run of sequence numbers that costs no memory per event, and are read back
//   in order as room frees up.
// - Durability (persistent queues): every event is on disk until acknowledged, and `recover`
//   resumes from the first unacknowledged one after a restart.
// - One record per turn: the events queued in one event-loop turn are written as one record
//   (a chunk, at most CHUNK_EVENTS_MAX events / about CHUNK_BYTES_MAX bytes), removed once all
//   of them are acknowledged: one store write and one removal per turn, not per event.
// - No event is queued twice: an id already queued, or acknowledged recently (the
//   acknowledged-id ring), is ignored.
//
// Pure: no network, no timers; time (for event ages) comes from the clock it is given.

import { Packr } from 'msgpackr';
import { StraitError, assert } from '../errors.ts';
import { checkMessagePack } from '../protocol/frame.ts';
import type { GatewayEvent } from '../protocol/messages.ts';
import type { Clock, Store } from '../runtime/runtime.ts';
import { EventTable } from './event-table.ts';
import { scanQueueRecord } from './queue-record-scan.ts';

/** Event ids remembered after their acknowledgement, so a late copy is not queued again. */
export const ACKED_IDS_REMEMBERED_MAX = 50_000;

/** Member ids a queue keeps one string of (canonicalMember); past it, it starts again. */
const CANONICAL_MEMBERS_MAX = 1024;

export const eventPackr = new Packr({ useRecords: false, mapsAsObjects: true });

/** An event's identity: the member that made the change and its counter (from the version tag). */
export function eventId(event: GatewayEvent): string {
  const tag = event[3];
  return `${tag[2]}:${tag[3]}`;
}

/** The bytes of an event's contents (region, key, value, tag), about as they travel. */
export function eventBytes(event: GatewayEvent): number {
  return event[0].length + event[1].length + (event[2]?.length ?? 0) + event[3][2].length + 32;
}

/**
 * What an event held in memory costs beyond its contents: the queue item, its id string and
 * map entry, the decoded event and tag arrays and strings, the value's own ArrayBuffer.
 * Measured with `node --expose-gc bench/queue-item-cost.ts` (V8 heap + array buffers per item,
 * 100,000 events decoded from replicate frames): 718–756 bytes beyond eventBytes for values of
 * 10–1000 bytes and keys of 8–40 characters. Counting it is what makes `maximum-queue-memory`
 * bound the heap (counting contents alone let a 32 MiB queue hold ~850 MB).
 */
export const QUEUE_ITEM_OVERHEAD_BYTES = 768;

/** What an event held in memory counts against the queue's memory limit. */
export function itemMemoryBytes(event: GatewayEvent): number {
  return eventBytes(event) + QUEUE_ITEM_OVERHEAD_BYTES;
}

/** The store key of queue sequence `sequence`: fixed-width hex, so key order is queue order. */
export function queueStoreKey(sequence: number): string {
  return sequence.toString(16).padStart(13, '0');
}

/** Decodes a queue or dead-letter record, or stops with STRAIT_STORAGE naming it. */
export function decodeEvent(bytes: Uint8Array, what: string): GatewayEvent {
  try {
    const event = eventPackr.unpack(bytes) as GatewayEvent;
    if (!isEvent(event)) throw new Error('not an event');
    return event;
  } catch (error) {
    throw new StraitError('STRAIT_STORAGE', { path: what, reason: 'unreadable record' }, { cause: error });
  }
}

function isEvent(value: unknown): value is GatewayEvent {
  return Array.isArray(value) && value.length === 5 && typeof value[0] === 'string' && Array.isArray(value[3]);
}

/** The most events one queue record (chunk) holds. */
export const CHUNK_EVENTS_MAX = 1024;
/** A chunk is closed once its events' contents reach this many bytes. */
export const CHUNK_BYTES_MAX = 256 * 1024;

/**
 * Decodes a queue record: a chunk (an array of events, at consecutive sequences from the
 * record's key) or, as records were written before chunks, one event. Stops with
 * STRAIT_STORAGE naming it when it is neither.
 */
export function decodeQueueRecord(bytes: Uint8Array, what: string): GatewayEvent[] {
  try {
    const value = eventPackr.unpack(bytes) as unknown;
    if (isEvent(value)) return [value];
    if (!Array.isArray(value) || value.length === 0 || !value.every(isEvent)) throw new Error('neither a chunk of events nor an event');
    return value;
  } catch (error) {
    throw new StraitError('STRAIT_STORAGE', { path: what, reason: 'unreadable record' }, { cause: error });
  }
}

/**
 * Where each event of a queue record starts, and one past the last one's end (count + 1
 * offsets); undefined when the record is not a chunk of `count` well-formed events. A record of
 * one event (the format before chunks) is that event.
 */
export function queueRecordStarts(bytes: Uint8Array, count: number): number[] | undefined {
  const starts: number[] = [];
  if (checkMessagePack(bytes, 0, bytes.length, starts) !== undefined) return undefined;
  // A chunk's elements are events (arrays); an event's first element is its region's name.
  const chunk = starts.length > 0 && (bytes[starts[0]!]! & 0xf0) === 0x90;
  if (!chunk) return count === 1 ? [0, bytes.length] : undefined;
  if (starts.length !== count) return undefined;
  starts.push(bytes.length);
  return starts;
}

/** The bytes of each event of a queue record, as views of it (queueRecordStarts). */
export function queueRecordSlices(bytes: Uint8Array, count: number): Uint8Array[] | undefined {
  const starts = queueRecordStarts(bytes, count);
  return starts?.slice(1).map((end, index) => bytes.subarray(starts[index]!, end));
}

/**
 * The MessagePack array of a batch's events, made of their queue-record bytes where they have
 * them (packed one by one where not), each flagged possible-duplicate as asked: what
 * `eventPackr.pack` of the flagged events would give, without decoding or packing them again.
 */
export function encodeBatchEvents(items: readonly { readonly event: GatewayEvent | undefined; readonly encoded: Uint8Array | undefined; readonly possibleDuplicate: boolean }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const headerLength = items.length < 16 ? 1 : items.length < 0x10000 ? 3 : 5;
  let length = headerLength;
  for (const item of items) {
    let bytes = item.encoded;
    // An event's last byte is its possible-duplicate flag (false 0xc2, true 0xc3). Anything else
    // is packed again, flagged as asked, so the flag is never written over another value.
    if (bytes === undefined || (bytes[bytes.length - 1] !== 0xc2 && bytes[bytes.length - 1] !== 0xc3)) {
      const event = item.event!;
      bytes = eventPackr.pack([event[0], event[1], event[2], event[3], item.possibleDuplicate || event[4] === true]);
    }
    parts.push(bytes);
    length += bytes.length;
  }
  const out = Buffer.allocUnsafe(length);
  if (headerLength === 1) out[0] = 0x90 | items.length;
  else if (headerLength === 3) {
    out[0] = 0xdc;
    out.writeUInt16BE(items.length, 1);
  } else {
    out[0] = 0xdd;
    out.writeUInt32BE(items.length, 1);
  }
  let offset = headerLength;
  for (let index = 0; index < parts.length; index++) {
    const bytes = parts[index]!;
    out.set(bytes, offset);
    offset += bytes.length;
    if (items[index]!.possibleDuplicate) out[offset - 1] = 0xc3;
  }
  return out;
}

/**
 * How many events a queue record holds, from its msgpack header alone (recovery counts the
 * on-disk tail without decoding it): an array of arrays is a chunk of that many, anything else
 * one event (a record from before chunks, or garbage that fails when it is read back).
 */
export function queueRecordEvents(bytes: Uint8Array): number {
  const arrayAt = (offset: number): { length: number; next: number } | undefined => {
    const marker = bytes[offset];
    if (marker === undefined) return undefined;
    if (marker >= 0x90 && marker <= 0x9f) return { length: marker & 0x0f, next: offset + 1 };
    if (marker === 0xdc && bytes.length >= offset + 3) return { length: (bytes[offset + 1]! << 8) | bytes[offset + 2]!, next: offset + 3 };
    if (marker === 0xdd && bytes.length >= offset + 5) return { length: ((bytes[offset + 1]! << 24) >>> 0) + ((bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 8) | bytes[offset + 4]!), next: offset + 5 };
    return undefined;
  };
  const outer = arrayAt(0);
  if (outer === undefined || outer.length === 0 || arrayAt(outer.next) === undefined) return 1;
  return outer.length;
}

/** A queue record of events held in memory (a persistent queue's); removed when none is live. */
interface Chunk {
  readonly key: string;
  /** Its events still queued. */
  live: number;
  /** In the store (a chunk all of whose events went before it was written never is). */
  written: boolean;
  /**
   * Memory of the record's copy its items keep their bytes in (keepEncoded), counted in the
   * queue's memory until its last event goes: one item left keeps the whole copy.
   */
  keptBytes: number;
}

/** A record the events of this turn go into, written at the end of the turn (or when full). */
interface OpenChunk {
  readonly chunk: Chunk;
  readonly first: number;
  readonly events: GatewayEvent[];
  /** The in-memory part's: the queue item of each event. */
  readonly items: QueueItem[];
  bytes: number;
}

/** An event id's member and counter; undefined for text that is not `<member>:<counter>`. */
export function parseEventId(id: string): { member: string; counter: number } | undefined {
  const at = id.lastIndexOf(':');
  const counter = Number(id.slice(at + 1));
  return at < 0 || !Number.isSafeInteger(counter) ? undefined : { member: id.slice(0, at), counter };
}

/** A queue item's event id (`<member>:<counter>`), made when asked: most items never need it. */
export function itemId(item: QueueItem): string {
  return `${item.member}:${item.counter}`;
}

export class QueueItem {
  /** The event's id (itemId): the member that made the change, and its counter. */
  readonly member: string;
  readonly counter: number;
  /** Position in this queue; increasing from head to tail. */
  readonly sequence: number;
  /** The record holding it on disk (a persistent queue); undefined in an overflow-only queue. */
  readonly chunk: Chunk | undefined;
  readonly bytes: number;
  readonly enqueuedAtMs: number;
  possibleDuplicate: boolean;
  /** In a batch awaiting the remote site's acknowledgement. */
  sent = false;
  /** A parallel sender's lane (`region/bucket`); undefined in a serial sender's queue. */
  readonly lane: string | undefined;
  /** The dispatcher thread that sends it (order-policy), 0 with one thread. */
  readonly thread: number;
  removed = false;
  /**
   * The record holding the event's MessagePack bytes (at encodedStart..encodedEnd), once it is
   * written or read back: a batch sends them as they are (encodeBatchEvents). Offsets, not a
   * view: a view per item is one more object surviving into the old generation.
   */
  private record: Uint8Array | undefined = undefined;
  private encodedStart = 0;
  private encodedEnd = 0;
  /** The event, decoded; an item read back from disk has only its bytes until asked (event). */
  private decoded: GatewayEvent | undefined;

  constructor(member: string, counter: number, sequence: number, chunk: Chunk | undefined, bytes: number, enqueuedAtMs: number, event: GatewayEvent | undefined, possibleDuplicate: boolean, lane: string | undefined, thread: number) {
    this.member = member;
    this.counter = counter;
    this.sequence = sequence;
    this.chunk = chunk;
    this.bytes = bytes;
    this.enqueuedAtMs = enqueuedAtMs;
    this.decoded = event;
    this.possibleDuplicate = possibleDuplicate;
    this.lane = lane;
    this.thread = thread;
  }

  /**
   * The event; undefined once the item is removed. An item read back from disk is decoded from
   * its bytes the first time (scanQueueRecord checked their shape), and keeps it.
   */
  get event(): GatewayEvent | undefined {
    if (this.decoded === undefined && this.record !== undefined && !this.removed) {
      this.decoded = decodeEvent(this.encoded!, `queued event ${itemId(this)}`);
      this.decoded[3][2] = this.member;
    }
    return this.decoded;
  }

  /** The event's bytes as its queue record holds them (a view of it), or undefined before it is written. */
  get encoded(): Uint8Array | undefined {
    return this.record?.subarray(this.encodedStart, this.encodedEnd);
  }

  /** The event's bytes are `record[start..end)`. */
  setEncoded(record: Uint8Array, start: number, end: number): void {
    this.record = record;
    this.encodedStart = start;
    this.encodedEnd = end;
  }

  /** Removed: lets go of the event and its bytes. */
  release(): void {
    this.removed = true;
    this.decoded = undefined;
    this.record = undefined;
  }
}

export interface SenderQueueOptions {
  /** Used in error messages: `sender <id>`. */
  readonly name: string;
  readonly persistent: boolean;
  readonly memoryBytesMax: number;
  /** The on-disk tail, at most, in bytes: past it `full` is true (default: no limit). */
  readonly diskBytesMax?: number;
  /**
   * A parallel sender's queue: the lane (`region/bucket`) of each event. Only the lanes
   * `dispatchable` allows are taken for batches; the others wait for the lane's dispatcher to
   * acknowledge them.
   */
  readonly laneOf?: (event: GatewayEvent) => string;
  /** A parallel queue: false for an event read back from disk that this member no longer holds (dropped). */
  readonly keep?: (event: GatewayEvent) => boolean;
  /** Several dispatcher threads: which one sends an event (order-policy.ts); default 0. */
  readonly threadOf?: (event: GatewayEvent) => number;
  /**
   * While events wait on disk, at most this many are read back into memory ahead of dispatch
   * (default: as many as the memory limit holds). A serial sender reads ahead a few windows of
   * batches: events read back long before they leave survive into V8's old generation, and a
   * drain then leaves tens of MiB of garbage there between full collections.
   */
  readonly readAheadEventsMax?: number;
  /**
   * Runs a callback once the current handler is done (Runtime.defer): the events of one turn
   * are written then, as one record. Without it every event is a record of its own.
   */
  readonly defer?: (callback: () => void) => void;
}

export class SenderQueue {
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly options: SenderQueueOptions;
  private items: QueueItem[] = [];
  private head = 0;
  /** See firstUnsent. */
  private unsentFrom = 0;
  /** Unsent items in memory, by dispatcher thread (unsentCount). */
  private readonly unsentByThread: number[] = [];
  /** See canonicalMember. */
  private readonly members = new Map<string, string>();
  private lastMember: string | undefined;
  /** Queued items by id. */
  private readonly byId = new EventTable<QueueItem>();
  /** Ids acknowledged recently (ACKED_IDS_REMEMBERED_MAX), and the ring naming the one to forget next. */
  private readonly ackedIds = new EventTable<true>();
  private readonly ackedRingMembers: (string | undefined)[] = [];
  private readonly ackedRingCounters: number[] = [];
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
  /** A parallel queue: the lanes this member dispatches (undefined: every item, a serial queue). */
  private dispatchable: ReadonlySet<string> | undefined;
  /** The records this turn's events go into (of memory, of the on-disk tail), not written yet. */
  private openMemory: OpenChunk | undefined;
  private openSpill: OpenChunk | undefined;
  private flushScheduled = false;
  /** Syncs asked for while a record was open: they start once it is written. */
  private syncWaiters: ((error: Error | undefined) => void)[] = [];
  /** See SenderQueueOptions.readAheadEventsMax and setReadAheadEventsMax. */
  private readAheadEventsMax: number;

  constructor(store: Store, clock: Clock, options: SenderQueueOptions) {
    this.store = store;
    this.clock = clock;
    this.options = options;
    this.readAheadEventsMax = options.readAheadEventsMax ?? Number.POSITIVE_INFINITY;
  }

  /**
   * A new read-ahead (the sender's window grew or shrank): more of the on-disk tail is read back
   * at once when it grew; when it shrank, what is in memory stays and the next read-backs wait.
   */
  setReadAheadEventsMax(events: number): void {
    assert(events > 0, `${this.options.name}: the read-ahead holds at least one event`);
    const grew = events > this.readAheadEventsMax;
    this.readAheadEventsMax = events;
    if (grew) this.refillMemory();
  }

  /**
   * Resumes a persisted queue (or clears an overflow-only one); returns the events resumed. The
   * store is streamed: records up to the memory limit become queue items (decoded and checked),
   * the rest stay on disk as the on-disk tail — counted, not loaded — and are read back (and
   * checked) as their turn comes, so a backlog far larger than memory recovers in constant memory.
   */
  recover(): number {
    let recovered = 0;
    for (const [key, bytes] of this.store.entries()) {
      if (!this.options.persistent) {
        this.store.remove(key);
        continue;
      }
      const first = Number.parseInt(key, 16);
      assert(Number.isSafeInteger(first) && first > this.sequence, `${this.options.name}: queue key ${key} is not a sequence after ${this.sequence}`);
      const count = queueRecordEvents(bytes);
      this.sequence = first + count - 1;
      recovered += count;
      const room = this.memoryBytes + bytes.length + count * QUEUE_ITEM_OVERHEAD_BYTES <= this.options.memoryBytesMax && this.liveCount < this.readAheadEventsMax;
      if (this.spilledCount === 0 && (this.memoryBytes === 0 || room)) {
        const loaded = this.loadChunk(key, first, bytes, true);
        assert(loaded.count === count, `${this.options.name}: queue record ${key} holds ${loaded.count} events, its header ${count}`);
        this.liveCount += loaded.kept;
        continue;
      }
      // Beyond memory: part of the on-disk tail, sized by its record until it is read back.
      if (this.spilledCount === 0) this.diskHead = first;
      this.diskTail = this.sequence;
      this.spilledCount += count;
      this.spilledBytes += bytes.length;
      this.queueBytes += bytes.length;
      this.liveCount += count;
    }
    return recovered;
  }

  /**
   * Makes queue items of a record's events (at sequences first, first + 1, ...), dropping those
   * already queued or acknowledged, or that `keep` refuses; a record left with none is removed.
   * Returns how many events the record holds and how many it kept.
   *
   * A serial queue with one thread reads only each event's id, size and flag (scanQueueRecord):
   * its items keep their bytes, decoded when something asks (QueueItem.event). A parallel queue,
   * or one with several threads, decodes them: lanes and threads come from their contents.
   */
  private loadChunk(key: string, first: number, bytes: Uint8Array, recovering: boolean): { count: number; kept: number } {
    const what = `${this.options.name} queue record ${key}`;
    const needsContents = this.options.laneOf !== undefined || this.options.keep !== undefined || this.options.threadOf !== undefined;
    const scanned = needsContents ? undefined : scanQueueRecord(bytes, (member) => this.canonicalMember(member));
    if (scanned === undefined) {
      const events = decodeQueueRecord(bytes, what);
      return { count: events.length, kept: this.loadDecoded(key, first, events, recovering, bytes) };
    }
    const chunk: Chunk | undefined = this.options.persistent ? { key, live: 0, written: true, keptBytes: 0 } : undefined;
    const now = this.clock.monotonic();
    let kept = 0;
    for (let index = 0; index < scanned.count; index++) {
      const member = scanned.members[index]!;
      const counter = scanned.counters[index]!;
      // Acknowledged while it waited on disk (a secondary), or queued twice: drop it.
      if (this.ackedIds.get(member, counter) !== undefined || this.byId.get(member, counter) !== undefined) continue;
      const size = scanned.sizes[index]!;
      this.queueBytes += size;
      if (chunk !== undefined) chunk.live += 1;
      kept += 1;
      // Read back from disk: the previous primary, or this member before a restart, may have sent it.
      const possibleDuplicate = recovering || scanned.possibleDuplicates[index]! || this.afterTakeover;
      const item = this.addItem(new QueueItem(member, counter, first + index, chunk, size, now, undefined, possibleDuplicate, undefined, 0));
      item.setEncoded(bytes, scanned.starts[index]!, scanned.starts[index + 1]!);
    }
    if (chunk !== undefined && chunk.live === 0) this.store.remove(key);
    return { count: scanned.count, kept };
  }

  /** loadChunk of a record decoded in full (a parallel queue's, or one scanQueueRecord can't read). */
  private loadDecoded(key: string, first: number, events: readonly GatewayEvent[], recovering: boolean, bytes: Uint8Array): number {
    const chunk: Chunk | undefined = this.options.persistent ? { key, live: 0, written: true, keptBytes: 0 } : undefined;
    // Views of the record the decoded events' values point into already: no memory of their own.
    const starts = queueRecordStarts(bytes, events.length);
    let kept = 0;
    const now = this.clock.monotonic();
    for (let index = 0; index < events.length; index++) {
      const event = events[index]!;
      const tag = event[3];
      tag[2] = this.canonicalMember(tag[2]);
      const [, , member, counter] = tag;
      // Acknowledged while it waited on disk (a secondary), queued twice, or (read back, not
      // recovered: the buckets are not known yet) of a bucket that moved away from this member,
      // whose holders have it: drop it.
      if (this.ackedIds.get(member, counter) !== undefined || this.byId.get(member, counter) !== undefined || (!recovering && this.options.keep?.(event) === false)) continue;
      const size = eventBytes(event);
      this.queueBytes += size;
      // Read back from disk: the previous primary, or this member before a restart, may have
      // sent it; after a takeover (of the queue, or of this event's lane — every lane a
      // parallel queue dispatches was taken over from none or another copy) too.
      const lane = this.options.laneOf?.(event);
      if (chunk !== undefined) chunk.live += 1;
      kept += 1;
      const item = this.pushItem(event, first + index, chunk, size, recovering || event[4] || this.afterTakeover || (lane !== undefined && this.dispatchable?.has(lane) === true), now);
      if (starts !== undefined) item.setEncoded(bytes, starts[index]!, starts[index + 1]!);
    }
    if (chunk !== undefined && chunk.live === 0) this.store.remove(key);
    return kept;
  }

  /** Events queued and not acknowledged (in memory and on disk). */
  get size(): number {
    return this.liveCount;
  }

  get bytes(): number {
    return this.queueBytes;
  }

  /** What the in-memory part costs, as counted against `memoryBytesMax`. */
  get memoryBytesHeld(): number {
    return this.memoryBytes;
  }

  /** Events waiting on disk beyond the memory limit. */
  get spilled(): number {
    return this.spilledCount;
  }

  /** Bytes of the on-disk tail. */
  get spilledBytesHeld(): number {
    return this.spilledBytes;
  }

  /** The on-disk tail reached its limit: new writes routed here must be refused, not queued. */
  get full(): boolean {
    // This turn's record of the on-disk tail counts too, before it is written.
    return this.spilledBytes + (this.openSpill?.bytes ?? 0) >= (this.options.diskBytesMax ?? Number.POSITIVE_INFINITY);
  }

  has(id: string): boolean {
    const parts = parseEventId(id);
    return parts !== undefined && this.byId.get(parts.member, parts.counter) !== undefined;
  }

  isAcknowledged(id: string): boolean {
    const parts = parseEventId(id);
    return parts !== undefined && this.ackedIds.get(parts.member, parts.counter) !== undefined;
  }

  /**
   * Queues an event at the tail; false when it is already queued or was acknowledged. While the
   * in-memory part has room (and nothing waits on disk before it) the event is kept in memory
   * as a queue item; otherwise it goes to the on-disk tail, a run of sequence numbers costing
   * no memory per event, read back in order as the memory part drains. That is what bounds
   * memory during a long partition. Either way it is written (persistent queues, or the
   * on-disk tail) in this turn's record.
   */
  enqueue(event: GatewayEvent): boolean {
    event[3][2] = this.canonicalMember(event[3][2]);
    const [, , member, counter] = event[3];
    if (this.byId.get(member, counter) !== undefined || this.ackedIds.get(member, counter) !== undefined) return false;
    const sequence = ++this.sequence;
    const bytes = eventBytes(event);
    // An empty memory part always takes the event, however small the limit (as refill does).
    const spill = this.spilledCount > 0 || (this.memoryBytes > 0 && this.memoryBytes + bytes + QUEUE_ITEM_OVERHEAD_BYTES > this.options.memoryBytesMax);
    this.liveCount += 1;
    const open = spill || this.options.persistent ? this.openChunk(sequence, spill) : undefined;
    if (spill) {
      if (this.spilledCount === 0) this.diskHead = sequence;
      this.diskTail = sequence;
      this.spilledCount += 1;
    } else {
      this.queueBytes += bytes;
      const item = this.pushItem(event, sequence, open?.chunk, bytes, event[4] || this.afterTakeover, this.clock.monotonic());
      if (open !== undefined) {
        open.chunk.live += 1;
        open.items.push(item);
      }
    }
    if (open !== undefined) {
      open.events.push(event);
      open.bytes += bytes;
      if (this.options.defer === undefined) this.flush();
      else if (open.events.length >= CHUNK_EVENTS_MAX || open.bytes >= CHUNK_BYTES_MAX) this.writeOpen(spill);
    }
    return true;
  }

  /** The open record of the on-disk tail (`spill`) or of memory, for an event at `sequence`. */
  private openChunk(sequence: number, spill: boolean): OpenChunk {
    let open = spill ? this.openSpill : this.openMemory;
    if (open === undefined) {
      open = { chunk: { key: queueStoreKey(sequence), live: 0, written: false, keptBytes: 0 }, first: sequence, events: [], items: [], bytes: 0 };
      if (spill) this.openSpill = open;
      else this.openMemory = open;
      const defer = this.options.defer;
      if (defer !== undefined && !this.flushScheduled) {
        this.flushScheduled = true;
        defer(() => {
          this.flushScheduled = false;
          this.flush();
        });
      }
    }
    return open;
  }

  /**
   * Writes the open records, then starts the syncs that waited for them. Called at the end of
   * the turn; a server closing its sender calls it too.
   */
  flush(): void {
    this.writeOpen(false);
    this.writeOpen(true);
    if (this.syncWaiters.length === 0) return;
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    for (const callback of waiters) this.store.sync(callback);
  }

  /**
   * Writes the open record of memory or of the on-disk tail (`spill`): at the end of the turn,
   * when it is full, and before anything reads the on-disk tail (refill, a page).
   */
  private writeOpen(spill: boolean): void {
    const open = spill ? this.openSpill : this.openMemory;
    if (open === undefined) return;
    if (spill) this.openSpill = undefined;
    else this.openMemory = undefined;
    // Events of memory acknowledged before their record was written (all of them: no record)
    // are left out: the record then spans more sequences than it holds, and readers step over
    // the gap.
    if (!spill && open.chunk.live === 0) return;
    // Memory's record: its items still queued, whose events it holds (the on-disk tail has none).
    const kept = spill || open.chunk.live === open.events.length ? undefined : open.items.filter((item) => !item.removed);
    const events = kept === undefined ? open.events : kept.map((item) => item.event!);
    const record = eventPackr.pack(events);
    this.store.put(open.chunk.key, record);
    open.chunk.written = true;
    if (!spill) this.keepEncoded(open.chunk, kept ?? open.items, record);
    // The on-disk tail is counted by its records' size (what recovery and refill see too).
    if (spill) {
      this.spilledBytes += record.length;
      this.queueBytes += record.length;
    }
  }

  /**
   * The items of a record of memory keep their events' bytes from it, for their batch: one copy
   * of the record (msgpackr's buffer is shared), counted in the queue's memory until the last of
   * them goes (Chunk.keptBytes). A record read back is pinned by its decoded values already,
   * which the per-item overhead counts.
   */
  private keepEncoded(chunk: Chunk, items: readonly QueueItem[], record: Uint8Array): void {
    const owned = new Uint8Array(record);
    const starts = queueRecordStarts(owned, items.length);
    assert(starts !== undefined, `${this.options.name}: a record just packed is not ${items.length} events`);
    for (let index = 0; index < items.length; index++) items[index]!.setEncoded(owned, starts[index]!, starts[index + 1]!);
    chunk.keptBytes = owned.length;
    this.memoryBytes += owned.length;
  }

  private pushItem(event: GatewayEvent, sequence: number, chunk: Chunk | undefined, bytes: number, possibleDuplicate: boolean, enqueuedAtMs: number): QueueItem {
    const [, , member, counter] = event[3];
    return this.addItem(new QueueItem(member, counter, sequence, chunk, bytes, enqueuedAtMs, event, possibleDuplicate, this.options.laneOf?.(event), this.options.threadOf?.(event) ?? 0));
  }

  private addItem(item: QueueItem): QueueItem {
    this.memoryBytes += item.bytes + QUEUE_ITEM_OVERHEAD_BYTES;
    this.items.push(item);
    this.unsentByThread[item.thread] = (this.unsentByThread[item.thread] ?? 0) + 1;
    this.byId.set(item.member, item.counter, item);
    return item;
  }

  /**
   * The one string this queue uses for a member's id. Each decoded event brings the id as a new
   * string: with one string per member, every table lookup after this one compares pointers,
   * not characters (the comparisons cost ~6% of site 1's CPU in a drain).
   */
  private canonicalMember(member: string): string {
    if (member === this.lastMember) return this.lastMember;
    let known = this.members.get(member);
    if (known === undefined) {
      if (this.members.size >= CANONICAL_MEMBERS_MAX) this.members.clear();
      this.members.set(member, member);
      known = member;
    }
    this.lastMember = known;
    return known;
  }

  /** Durability of queued events (persistent queues): part of a write's acknowledgement. */
  sync(callback: (error: Error | undefined) => void): void {
    if (!this.options.persistent) callback(undefined);
    else if (this.openMemory !== undefined || this.openSpill !== undefined) this.syncWaiters.push(callback);
    else this.store.sync(callback);
  }

  /** Removes acknowledged items (primary) and remembers their ids. */
  acknowledge(items: readonly QueueItem[]): void {
    for (const item of items) {
      if (item.removed) continue;
      this.remove(item);
      this.rememberAcked(item.member, item.counter);
    }
    this.compact();
  }

  /** Secondary: the primary reports these events acknowledged by the remote site. */
  dropAcknowledged(ids: readonly string[]): void {
    for (const id of ids) {
      const parts = parseEventId(id);
      if (parts === undefined) continue;
      const item = this.byId.get(parts.member, parts.counter);
      if (item !== undefined) this.remove(item);
      this.rememberAcked(parts.member, parts.counter);
    }
    this.compact();
  }

  /** Forgets that `id` was acknowledged, so it can be queued again (dead-letter replay). */
  forgetAcknowledged(id: string): void {
    const parts = parseEventId(id);
    if (parts !== undefined) this.ackedIds.delete(parts.member, parts.counter);
  }

  /**
   * Remembers an acknowledged id, forgetting the oldest beyond ACKED_IDS_REMEMBERED_MAX. The ring
   * names the id to forget: evicting through the Set's iterator instead walks every deleted
   * slot V8 keeps, which made each acknowledgement slower than the last.
   */
  private rememberAcked(member: string, counter: number): void {
    if (this.ackedIds.get(member, counter) !== undefined) return;
    const evicted = this.ackedRingMembers[this.ackedNext];
    if (evicted !== undefined) this.ackedIds.delete(evicted, this.ackedRingCounters[this.ackedNext]!);
    this.ackedRingMembers[this.ackedNext] = member;
    this.ackedRingCounters[this.ackedNext] = counter;
    this.ackedNext = (this.ackedNext + 1) % ACKED_IDS_REMEMBERED_MAX;
    this.ackedIds.set(member, counter, true);
  }

  private remove(item: QueueItem): void {
    if (item.removed) return;
    item.removed = true;
    if (!item.sent) this.unsentByThread[item.thread]! -= 1;
    this.byId.delete(item.member, item.counter);
    this.queueBytes -= item.bytes;
    this.liveCount -= 1;
    this.memoryBytes -= item.bytes + QUEUE_ITEM_OVERHEAD_BYTES;
    item.release();
    const chunk = item.chunk;
    if (chunk !== undefined && --chunk.live === 0) {
      this.memoryBytes -= chunk.keptBytes;
      chunk.keptBytes = 0;
      if (chunk.written) this.store.remove(chunk.key);
    }
  }

  private compact(): void {
    while (this.head < this.items.length && this.items[this.head]!.removed) this.head += 1;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
      this.unsentFrom = 0;
    } else if (this.head > 8192 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.unsentFrom = Math.max(0, this.unsentFrom - this.head);
      this.head = 0;
    }
    this.refillMemory();
  }

  /** Reads on-disk events back into memory, oldest first, a record at a time, as room frees up. */
  private refillMemory(): void {
    // An empty memory part always takes the next record, however small the limit: progress.
    const readAhead = this.readAheadEventsMax;
    while (
      this.spilledCount > 0 && this.diskHead <= this.diskTail &&
      (this.memoryBytes === 0 || (this.memoryBytes + QUEUE_ITEM_OVERHEAD_BYTES < this.options.memoryBytesMax && this.liveCount - this.spilledCount < readAhead))
    ) {
      if (this.openSpill !== undefined && this.openSpill.first <= this.diskHead) this.writeOpen(true);
      // Events of memory queued after this read-back come after it: they start a record of
      // their own, not join the one this turn opened before the on-disk tail began.
      this.writeOpen(false);
      const key = queueStoreKey(this.diskHead);
      const bytes = this.store.get(key);
      if (bytes === undefined) {
        this.diskHead += 1; // not on disk (already removed): nothing to send
        continue;
      }
      const first = this.diskHead;
      const loaded = this.loadChunk(key, first, bytes, false);
      this.diskHead += loaded.count;
      this.spilledCount -= loaded.count;
      this.spilledBytes -= bytes.length;
      this.queueBytes -= bytes.length;
      if (!this.options.persistent) this.store.remove(key);
      // Those dropped as they come back are no longer queued.
      this.liveCount -= loaded.count - loaded.kept;
    }
    if (this.spilledCount === 0) {
      this.spilledBytes = 0;
      this.diskHead = 0;
      this.diskTail = -1;
    }
  }

  /** Taking over as primary: whatever the previous primary sent may already be at the remote site. */
  markTakeover(): void {
    for (let index = this.head; index < this.items.length; index++) this.items[index]!.possibleDuplicate = true;
    this.afterTakeover = true;
  }

  /**
   * A parallel queue: this member now dispatches `lanes`. Lanes it did not dispatch before are
   * taken over: their events may already be at the remote site (sent by the lane's previous
   * dispatcher), so they go out flagged possible-duplicate — those read back from disk later too.
   */
  setDispatchable(lanes: ReadonlySet<string>): string[] {
    const previous = this.dispatchable ?? new Set<string>();
    const taken = [...lanes].filter((lane) => !previous.has(lane));
    if (taken.length > 0) {
      const fresh = new Set(taken);
      for (let index = this.head; index < this.items.length; index++) {
        const item = this.items[index]!;
        if (item.lane !== undefined && fresh.has(item.lane)) item.possibleDuplicate = true;
      }
    }
    this.dispatchable = lanes;
    return taken;
  }

  /** Whether `item` may go out from this member (a serial queue: all; a parallel one: its lanes'). */
  private mayTake(item: QueueItem): boolean {
    return this.dispatchable === undefined || (item.lane !== undefined && this.dispatchable.has(item.lane));
  }

  /**
   * The first index that may hold an unsent item: every item before it is sent or removed. It
   * skips the batches in flight (up to a send window of batch-size items), which each
   * pump would otherwise walk again.
   */
  private firstUnsent(): number {
    let index = Math.max(this.head, this.unsentFrom);
    while (index < this.items.length && (this.items[index]!.sent || this.items[index]!.removed)) index += 1;
    this.unsentFrom = index;
    return index;
  }

  /** Unsent items in memory (of dispatcher `thread` only, when given), counted up to `limit`. */
  unsentCount(limit: number, thread?: number): number {
    // Every item may go out from here (not a parallel queue): the counters answer.
    if (this.dispatchable === undefined) {
      const unsent = thread === undefined ? this.unsentByThread.reduce((sum, count) => sum + count, 0) : this.unsentByThread[thread] ?? 0;
      return Math.min(limit, unsent);
    }
    let count = 0;
    for (let index = this.firstUnsent(); index < this.items.length && count < limit; index++) {
      const item = this.items[index]!;
      if (!item.removed && !item.sent && (thread === undefined || item.thread === thread) && this.mayTake(item)) count += 1;
    }
    return count;
  }

  /**
   * The oldest unsent items (of dispatcher `thread` only, when given), up to `limit` of them and
   * about `bytesMax` bytes (at least one), marked sent.
   */
  takeUnsent(limit: number, bytesMax = Number.POSITIVE_INFINITY, thread?: number): QueueItem[] {
    const items: QueueItem[] = [];
    let bytes = 0;
    for (let index = this.firstUnsent(); index < this.items.length && items.length < limit; index++) {
      const item = this.items[index]!;
      if (item.removed || item.sent || (thread !== undefined && item.thread !== thread) || !this.mayTake(item)) continue;
      if (items.length > 0 && bytes + item.bytes > bytesMax) break;
      item.sent = true;
      this.unsentByThread[item.thread]! -= 1;
      items.push(item);
      bytes += item.bytes;
    }
    return items;
  }

  /** Items of a batch that failed or whose connection was lost go out again, flagged. */
  markUnsent(items: readonly QueueItem[]): void {
    this.returnUnsent(items);
    for (const item of items) item.possibleDuplicate = true;
  }

  /** Items of a batch that never left (refused before sending) go out again, unflagged. */
  returnUnsent(items: readonly QueueItem[]): void {
    for (const item of items) {
      if (!item.sent) continue;
      item.sent = false;
      if (!item.removed) this.unsentByThread[item.thread] = (this.unsentByThread[item.thread] ?? 0) + 1;
    }
    this.unsentFrom = this.head;
  }

  /**
   * A page of the queue for a joining copy (its image): the events after position `after`
   * (-1 = from the start), oldest first, at most `limit` of them and about `bytesMax` bytes
   * (at least one). `last` is the position of the last one; `done` when the page reached the
   * tail. Reads the on-disk part record by record, so a long backlog costs one page of memory.
   */
  page(after: number, limit: number, bytesMax: number, lane?: string): { events: GatewayEvent[]; last: number; done: boolean } {
    const events: GatewayEvent[] = [];
    let bytes = 0;
    let last = after;
    const full = (): boolean => events.length >= limit || (events.length > 0 && bytes >= bytesMax);
    for (let index = this.firstItemAfter(after); index < this.items.length; index++) {
      const item = this.items[index]!;
      if (item.removed || (lane !== undefined && item.lane !== lane)) continue;
      if (full()) return { events, last, done: false };
      events.push(item.event!);
      bytes += item.bytes;
      last = item.sequence;
    }
    if (this.spilledCount > 0) {
      this.writeOpen(true);
      // The on-disk tail a record at a time: a page ends at a record's end, so the next one
      // starts at a record's key.
      for (let sequence = Math.max(after + 1, this.diskHead); sequence <= this.diskTail;) {
        const key = queueStoreKey(sequence);
        const stored = this.store.get(key);
        if (stored === undefined) {
          sequence += 1;
          continue;
        }
        const record = decodeQueueRecord(stored, `${this.options.name} queue record ${key}`);
        const chunk = record.filter((event) => this.ackedIds.get(event[3][2], event[3][3]) === undefined && (lane === undefined || this.options.laneOf?.(event) === lane));
        const chunkBytes = chunk.reduce((sum, event) => sum + eventBytes(event), 0);
        if (events.length > 0 && (events.length + chunk.length > limit || bytes + chunkBytes > bytesMax)) return { events, last, done: false };
        events.push(...chunk);
        bytes += chunkBytes;
        sequence += record.length;
        last = sequence - 1;
      }
    }
    return { events, last, done: true };
  }

  /** Index of the first in-memory item whose position is after `after` (binary search). */
  private firstItemAfter(after: number): number {
    let low = this.head;
    let high = this.items.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.items[middle]!.sequence <= after) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /**
   * The oldest events queued longer than `olderThanMs`, for a secondary's handoff to the
   * primary (a parallel queue: of the lanes this member does not dispatch).
   */
  staleEvents(olderThanMs: number, limit: number): GatewayEvent[] {
    const cutoff = this.clock.monotonic() - olderThanMs;
    const events: GatewayEvent[] = [];
    for (let index = this.head; index < this.items.length && events.length < limit; index++) {
      const item = this.items[index]!;
      if (item.removed || (this.dispatchable !== undefined && this.mayTake(item))) continue;
      if (item.enqueuedAtMs > cutoff) break;
      events.push(item.event!);
    }
    return events;
  }

  /** Monotonic time the oldest queued item was queued at, or undefined when empty. */
  oldestEnqueuedAtMs(): number | undefined {
    for (let index = this.head; index < this.items.length; index++) {
      const item = this.items[index]!;
      if (!item.removed) return item.enqueuedAtMs;
    }
    return undefined;
  }
}
