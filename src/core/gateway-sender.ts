// A serial gateway sender on one server: a queue of changes bound for one remote site and — on
// the primary — the dispatcher that ships them in batches to a gateway receiver there.
//
// Every server hosting the sender queues every change (the site's replication delivers each
// change to all of them). The primary (the oldest running server hosting the sender) sends
// batches and, when the remote site acknowledges one, tells the secondaries which events to
// drop. When the primary dies the next one takes over from its own copy and marks what it
// resends as possible duplicates; the receiver applies by version tag, so a duplicate has no
// second effect.
//
// The parts: the queue (sender-queue.ts: memory bound, overflow to disk, persistence, the
// acknowledged-id ring), the dispatcher (sender-dispatcher.ts: connection and batches in
// flight) and the dead letters (dead-letters.ts). This class holds the sender's state
// (running / paused / stopped), its control operations and its status.
//
// A state machine: callbacks run to completion; time, I/O and storage come through the Runtime.

import type { GatewayEvent, SenderStatus } from '../protocol/messages.ts';
import type { Address, Logger, Runtime } from '../runtime/runtime.ts';
import { GATEWAY_QUEUE_DISK_MEGABYTES_DEFAULT, type GatewayEventFilter, type GatewaySenderSpec } from './config.ts';
import { DEAD_LETTER_BYTES_MAX, DeadLetterStore, type DeadLetter } from './dead-letters.ts';
import type { Connection } from '../protocol/connection.ts';
import { SenderDispatcher, type Refusal } from './sender-dispatcher.ts';
import type { WindowStatus } from './send-window.ts';
import { dispatcherThreadOf } from './order-policy.ts';
import { EventFilters } from './event-filters.ts';
import { eventId, itemId, SenderQueue, type QueueItem } from './sender-queue.ts';

/**
 * A serial sender draining a backlog holds this many windows of batches (each dispatcher
 * thread's send window, as it is now) in memory, at most.
 */
const READ_AHEAD_WINDOWS = 2;
export { eventId } from './sender-queue.ts';

export type SenderState = 'running' | 'paused' | 'stopped';

/** What the sender needs from the server hosting it. */
export interface SenderHost {
  readonly memberName: string;
  readonly site: number;
  /** True when this member is the sender's primary. */
  isPrimary(): boolean;
  /** The remote site's receivers, or why none is known. */
  receivers(): { readonly receivers: readonly Address[]; readonly problem: string | null };
  /** Links the remote site's dial-out receivers opened to this server (dial-in.ts). */
  dialInLinks(): readonly Connection[];
  /**
   * Tell the secondaries these events reached the remote site (their ids, made when there is a
   * secondary to tell); `deadLetters` among them were refused.
   */
  acknowledged(ids: () => string[], deadLetters: readonly DeadLetter[]): void;
  /** Local state changed (stopped / started): secondaries re-elect the primary. */
  stateChanged(): void;
  /**
   * A parallel sender: the lane (`region/bucket`) of an event, and whether this member still
   * holds the bucket of one read back from disk (dropped when it moved away).
   */
  readonly lanes?: { laneOf(event: GatewayEvent): string; holds(event: GatewayEvent): boolean; bucketOf(event: GatewayEvent): number };
  /** The sender's `gateway-event-filters`, loaded. */
  readonly filters?: readonly GatewayEventFilter[];
}

export class GatewaySender {
  private specValue: GatewaySenderSpec;
  private readonly runtime: Runtime;
  private readonly host: SenderHost;
  private readonly log: Logger;
  private readonly queue: SenderQueue;
  private readonly deadLetters: DeadLetterStore;
  private readonly dispatchers: SenderDispatcher[];
  private readonly filters: EventFilters;
  state: SenderState;
  /** A refused event did not fit in the full dead-letter store: dispatch waits for a replay. */
  private deadLettersFull = false;
  private wasPrimary = false;
  /** A parallel sender: buckets dispatched here, held here, held here with no running dispatcher. */
  private laneCounts = { dispatching: 0, held: 0, undispatched: 0 };
  private closed = false;
  /** A pump is deferred to the end of the current handler (see schedulePump). */
  private pumpScheduled = false;
  private drainWaiters: { deadline: number; callback: () => void }[] = [];
  private pauseWaiters: (() => void)[] = [];

  constructor(runtime: Runtime, spec: GatewaySenderSpec, host: SenderHost, log: Logger, limits: { deadLetterBytesMax?: number } = {}) {
    this.runtime = runtime;
    this.specValue = spec;
    this.host = host;
    this.log = log.child({ sender: spec.id, remoteSite: spec.remoteSiteId });
    this.state = spec.manualStart ? 'stopped' : 'running';
    this.filters = new EventFilters(host.filters ?? [], spec.id, runtime.clock, this.log);
    this.queue = new SenderQueue(runtime.storage.open(`sender-${spec.id}`), runtime.clock, {
      name: `sender ${spec.id}`,
      persistent: spec.persistent,
      memoryBytesMax: spec.maximumQueueMemoryMegabytes * 1024 * 1024,
      diskBytesMax: (spec.maximumQueueDiskMegabytes ?? GATEWAY_QUEUE_DISK_MEGABYTES_DEFAULT) * 1024 * 1024,
      // One queue record per turn (see SenderQueue).
      defer: (callback) => runtime.defer(callback),
      ...(host.lanes !== undefined ? { laneOf: (event: GatewayEvent) => host.lanes!.laneOf(event), keep: (event: GatewayEvent) => host.lanes!.holds(event) } : {}),
      ...(spec.dispatcherThreads > 1 ? { threadOf: (event: GatewayEvent) => dispatcherThreadOf(spec.orderPolicy, spec.dispatcherThreads, event, host.lanes?.bucketOf(event)) } : {}),
    });
    // A parallel queue dispatches only the lanes the hosting assigns it (none until then).
    if (host.lanes !== undefined) this.queue.setDispatchable(new Set());
    this.deadLetters = new DeadLetterStore(runtime.storage.open(`dead-letters-${spec.id}`), `sender ${spec.id}`, limits.deadLetterBytesMax ?? DEAD_LETTER_BYTES_MAX);
    const dispatchHost = {
      memberName: host.memberName,
      site: host.site,
      receivers: () => host.receivers(),
      dialInLinks: () => host.dialInLinks(),
      mayDispatch: () => !this.closed && this.state === 'running' && !this.deadLettersFull && host.isPrimary(),
      mayReconnect: () => !this.closed && this.state !== 'stopped' && host.isPrimary(),
      acknowledged: (items: readonly QueueItem[], refused: readonly Refusal[], sent: number) => this.batchAcknowledged(items, refused, sent),
      // Without filters an item read back from disk is never decoded (QueueItem.event).
      transmits: (item: QueueItem) => !this.filters.active || this.filters.beforeTransmit(item.event!),
      batchSettled: () => this.releasePauseWaiters(),
      queuedEvents: () => this.queue.size,
      windowChanged: () => this.windowChanged(),
    };
    // One dispatcher per thread, each with its own connection and batches in flight.
    this.dispatchers = spec.dispatcherThreads <= 1
      ? [new SenderDispatcher(runtime, spec, this.queue, dispatchHost, this.log)]
      : Array.from({ length: spec.dispatcherThreads }, (_, thread) => new SenderDispatcher(runtime, spec, this.queue, dispatchHost, this.log, thread));
    // A serial sender reads a backlog back a few windows of batches ahead of dispatch (set
    // before recovery, which reads that much); a parallel one fills memory: events of lanes
    // other copies dispatch wait there too.
    this.windowChanged();
    const recovered = this.queue.recover();
    this.deadLetters.recover();
    if (recovered > 0) this.log.info({ events: recovered }, `sender ${spec.id}: resumed ${recovered} unacknowledged events from disk`);
  }

  get spec(): GatewaySenderSpec {
    return this.specValue;
  }

  private pump(): void {
    for (const dispatcher of this.dispatchers) dispatcher.pump();
  }

  private disconnect(): void {
    for (const dispatcher of this.dispatchers) dispatcher.disconnect();
  }

  /** A serial sender reads back as much of a backlog as its send windows carry (READ_AHEAD_WINDOWS). */
  private windowChanged(): void {
    if (this.host.lanes !== undefined) return;
    const windows = this.dispatchers.reduce((sum, dispatcher) => sum + dispatcher.windowStatus.batches, 0);
    this.queue.setReadAheadEventsMax(this.specValue.batchSize * windows * READ_AHEAD_WINDOWS);
  }

  private get batchesInFlight(): number {
    return this.dispatchers.reduce((sum, dispatcher) => sum + dispatcher.batchesInFlight, 0);
  }

  /** New batch settings (`alter gateway-sender`); the rest of a sender can't change while it runs. */
  alter(settings: { batchSize: number; batchTimeIntervalMs: number }): void {
    this.specValue = { ...this.specValue, ...settings };
    for (const dispatcher of this.dispatchers) dispatcher.alter(this.specValue);
    this.windowChanged();
    this.log.info(settings, `sender ${this.specValue.id}: batch-size ${settings.batchSize}, batch-time-interval ${settings.batchTimeIntervalMs} ms`);
  }

  get deadLetterCount(): number {
    return this.deadLetters.count;
  }

  /** A dial-out receiver of the remote site attached a link to this server. */
  linkAvailable(): void {
    if (!this.closed) for (const dispatcher of this.dispatchers) dispatcher.linkAvailable();
  }

  /** A dial-in link closed; if batches went over it, they go out again on another. */
  linkClosed(connection: Connection, error: Error | undefined): void {
    for (const dispatcher of this.dispatchers) dispatcher.linkClosed(connection, error);
  }

  get queuedEvents(): number {
    return this.queue.size;
  }

  /** The queue's on-disk overflow is at its limit: writes routed here are refused (STRAIT_QUEUE_FULL). */
  get full(): boolean {
    return this.queue.full;
  }

  /** Bytes waiting on disk beyond memory. */
  get overflowBytes(): number {
    return this.queue.spilledBytesHeld;
  }

  /**
   * Queues a change for the remote site (no-op when already queued or acknowledged, or when a
   * serial sender is stopped). A stopped copy of a parallel sender still queues: another copy of
   * the bucket dispatches it, and when none runs, it waits here until one starts — never dropped.
   */
  enqueue(event: GatewayEvent): void {
    if (this.closed || (this.state === 'stopped' && this.host.lanes === undefined)) return;
    if (!this.filters.beforeEnqueue(event)) return;
    if (this.queue.enqueue(event)) this.schedulePump();
  }

  /**
   * Dispatches once the current handler is done: every event queued from one network chunk
   * (a pipelining client, a replicate message) leaves in one batch. Pumping per event sent the
   * first alone on an idle link and left the rest of the chunk waiting for the batch timer.
   */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    this.runtime.defer(() => {
      this.pumpScheduled = false;
      if (!this.closed) this.pump();
    });
  }

  /** A parallel sender: the lanes this copy dispatches now (SenderHosting decides). */
  setLanes(lanes: ReadonlySet<string>, counts: { held: number; undispatched: number }): void {
    if (this.closed) return;
    const taken = this.queue.setDispatchable(lanes);
    this.laneCounts = { dispatching: lanes.size, ...counts };
    if (taken.length === 0) return;
    if (this.queue.size > 0) this.log.info({ lanes: taken.length, dispatching: lanes.size }, `sender ${this.spec.id}: now dispatches ${taken.length} more buckets (${lanes.size} in all); their queued events go out as possible duplicates`);
    // New lanes may have events waiting (lanes given up need nothing: their batches finish).
    this.pump();
  }

  /** Durability of queued events (persistent senders): part of a write's acknowledgement. */
  sync(callback: (error: Error | undefined) => void): void {
    this.queue.sync(callback);
  }

  /** Secondary: the primary reports these events acknowledged by the remote site. */
  dropAcknowledged(ids: readonly string[]): void {
    this.queue.dropAcknowledged(ids);
    if (this.queue.size === 0) this.releaseDrainWaiters(true);
  }

  /** Primary: a page of this queue for a joining copy (see SenderQueue.page). */
  imagePage(after: number, limit: number, bytesMax: number, lane?: string): { events: GatewayEvent[]; last: number; done: boolean } {
    return this.queue.page(after, limit, bytesMax, lane);
  }

  /**
   * Joining copy: events of the primary's queue image. Those already queued here (from this
   * member's disk, or replicated since it joined) or acknowledged are skipped.
   */
  absorb(events: readonly GatewayEvent[]): void {
    if (this.closed) return;
    for (const event of events) this.queue.enqueue(event);
  }

  /** Secondary: the oldest events queued longer than `olderThanMs`, for a handoff to the primary. */
  staleEvents(olderThanMs: number, limit: number): GatewayEvent[] {
    return this.queue.staleEvents(olderThanMs, limit);
  }

  /**
   * Primary: a secondary's old events. Returns the ids already acknowledged by the remote site;
   * queues (as possible duplicates) the ones this member never had.
   */
  adopt(events: readonly GatewayEvent[]): { acknowledged: string[]; refused: { id: string; code: string; message: string }[] } {
    const acknowledged: string[] = [];
    const refused: { id: string; code: string; message: string }[] = [];
    let adopted = 0;
    for (const event of events) {
      const id = eventId(event);
      const letter = this.deadLetters.find(id);
      if (letter !== undefined) {
        // The remote site refused it: the secondary keeps it as a dead letter, not just drops it.
        acknowledged.push(id);
        refused.push({ id, code: letter.code, message: letter.message.slice(0, 1024) });
      } else if (this.queue.isAcknowledged(id)) acknowledged.push(id);
      else if (!this.queue.has(id) && this.state !== 'stopped') {
        this.enqueue([event[0], event[1], event[2], event[3], true]);
        adopted += 1;
      }
    }
    if (adopted > 0) this.log.info({ events: adopted }, `sender ${this.spec.id}: adopted ${adopted} events only a secondary held`);
    return { acknowledged, refused };
  }

  /**
   * Secondary: the primary answered a handoff. Events it reports refused become dead letters
   * here (those the full store can't keep stay queued); the other acknowledged ones are dropped.
   */
  handedOff(acknowledged: readonly string[], refused: readonly { id: string; code: string; message: string }[], events: readonly GatewayEvent[]): void {
    const byId = refused.length === 0 ? new Map<string, GatewayEvent>() : new Map(events.map((event) => [eventId(event), event]));
    const letters = refused.flatMap((refusal) => {
      const event = byId.get(refusal.id);
      return event === undefined ? [] : [{ event, code: refusal.code, message: refusal.message }];
    });
    this.acknowledgedByPrimary(acknowledged, letters);
  }

  /**
   * The remote site acknowledged a batch; the events it refused become dead letters (here and,
   * through the acknowledgement, on every copy). A refused event that does not fit in a full
   * dead-letter store stays queued and dispatch stops until the dead letters are replayed:
   * nothing is dropped.
   */
  private batchAcknowledged(items: readonly QueueItem[], refused: readonly Refusal[], sent: number): void {
    const refusals = new Map(refused.map((entry) => [entry.index, entry]));
    const letters: DeadLetter[] = [];
    const acknowledged: QueueItem[] = [];
    const kept: QueueItem[] = [];
    for (const [index, item] of items.entries()) {
      if (item.removed) continue;
      const refusal = refusals.get(index);
      if (refusal !== undefined) {
        const letter: DeadLetter = { event: item.event!, code: refusal.code, message: refusal.message };
        if (!this.keepDeadLetter(letter)) {
          kept.push(item);
          continue;
        }
        letters.push(letter);
      }
      acknowledged.push(item);
      if (refusal === undefined && index < sent && this.filters.active) this.filters.afterAcknowledgement(item.event!);
    }
    this.queue.acknowledge(acknowledged);
    this.queue.markUnsent(kept);
    if (this.queue.size === 0) this.releaseDrainWaiters(true);
    this.host.acknowledged(() => acknowledged.map(itemId), letters);
  }

  /** Primary, and secondaries told by it: keeps a refused event; false when the store is full. */
  keepDeadLetter(letter: DeadLetter): boolean {
    const [region, key] = letter.event;
    if (!this.deadLetters.add(letter)) {
      if (!this.deadLettersFull) {
        this.log.error({ code: letter.code, deadLetters: this.deadLetters.count }, `sender ${this.spec.id} → site ${this.spec.remoteSiteId}: the dead letters are full (${this.deadLetters.count} events, ${this.deadLetters.bytes} bytes); dispatch stops, nothing is dropped — fix why site ${this.spec.remoteSiteId} refuses them (${letter.code}) and replay them with strait resume gateway-sender --id ${this.spec.id} --replay-dead-letters`);
      }
      this.deadLettersFull = true;
      return false;
    }
    this.log.warn({ code: letter.code, region, key }, `sender ${this.spec.id} → site ${this.spec.remoteSiteId}: event for ${region}/${key} refused (${letter.code}: ${letter.message}); kept as a dead letter — replay with strait resume gateway-sender --id ${this.spec.id} --replay-dead-letters once fixed`);
    return true;
  }

  /**
   * Secondary: the primary reports these events acknowledged, `deadLetters` among them refused.
   * A dead letter this copy can't keep (its store is full) stays in its queue.
   */
  acknowledgedByPrimary(ids: readonly string[], deadLetters: readonly DeadLetter[]): void {
    if (deadLetters.length === 0) {
      this.dropAcknowledged(ids);
      return;
    }
    const keep = new Set<string>();
    for (const letter of deadLetters) if (!this.keepDeadLetter(letter)) keep.add(eventId(letter.event));
    this.dropAcknowledged(keep.size === 0 ? ids : ids.filter((id) => !keep.has(id)));
  }

  // ---- Control ----

  /**
   * Stops dispatching; events still queue. `paused` is called once no batch is in flight any
   * more (each is acknowledged, failed or timed out), so after it nothing more arrives at the
   * remote site until `resume`.
   */
  pause(paused: () => void = () => {}): void {
    if (this.state === 'running') this.state = 'paused';
    for (const dispatcher of this.dispatchers) dispatcher.cancelBatchTimer();
    this.pauseWaiters.push(paused);
    this.releasePauseWaiters();
  }

  private releasePauseWaiters(): void {
    if (this.batchesInFlight > 0 && this.state === 'paused' && !this.closed) return;
    const waiters = this.pauseWaiters;
    this.pauseWaiters = [];
    for (const waiter of waiters) waiter();
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
    if (drainTimeoutMs === 0 || this.queue.size === 0) {
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
    const letters = this.deadLetters.takeAll();
    this.deadLettersFull = false;
    for (const letter of letters) {
      const event: GatewayEvent = [letter.event[0], letter.event[1], letter.event[2], letter.event[3], true];
      this.queue.forgetAcknowledged(eventId(event));
      this.enqueue(event);
    }
    this.log.info({ events: letters.length }, `sender ${this.spec.id}: replaying ${letters.length} dead letters`);
    return letters.length;
  }

  close(): void {
    this.closed = true;
    // This turn's events reach the store before it closes.
    this.queue.flush();
    this.disconnect();
    this.releaseDrainWaiters(true);
    this.releasePauseWaiters();
  }

  // ---- Dispatch (primary only) ----

  /** Called on view changes and by the server's tick: start or stop dispatching. */
  tick(): void {
    const primary = this.host.isPrimary();
    // A parallel sender takes lanes over one by one (setLanes), not the whole queue.
    if (primary && !this.wasPrimary && this.host.lanes === undefined) {
      // Taking over: whatever the previous primary sent but did not see acknowledged may
      // already be at the remote site.
      this.queue.markTakeover();
      if (this.queue.size > 0) this.log.info({ events: this.queue.size }, `sender ${this.spec.id}: now primary; resending ${this.queue.size} queued events as possible duplicates`);
    }
    if (!primary && this.wasPrimary) this.disconnect();
    this.wasPrimary = primary;
    this.releaseDrainWaiters(false);
    this.pump();
  }

  /** The dispatchers' send windows together: batches summed, the round trips of the slowest link. */
  private sendWindow(): NonNullable<SenderStatus['sendWindow']> {
    const windows = this.dispatchers.map((dispatcher) => dispatcher.windowStatus);
    const slowest = (pick: (window: WindowStatus) => number | null): number | null => {
      const known = windows.map(pick).filter((value): value is number => value !== null);
      return known.length === 0 ? null : Math.round(Math.max(...known) * 10) / 10;
    };
    return {
      batches: windows.reduce((sum, window) => sum + window.batches, 0),
      bytesInFlight: windows.reduce((sum, window) => sum + window.bytesInFlight, 0),
      baseRttMs: slowest((window) => window.baseRttMs),
      rttMs: slowest((window) => window.rttMs),
    };
  }

  status(): SenderStatus {
    const oldest = this.queue.oldestEnqueuedAtMs() ?? 0;
    const primary = this.host.isPrimary();
    return {
      id: this.spec.id,
      member: this.host.memberName,
      remoteSite: this.spec.remoteSiteId,
      role: primary ? 'primary' : 'secondary',
      state: this.state,
      connectedReceiver: this.dispatchers.find((dispatcher) => dispatcher.receiver !== undefined)?.receiver ?? null,
      ...(this.dispatchers[0]!.dialInFrom !== undefined ? { dialInFrom: this.dispatchers[0]!.dialInFrom } : {}),
      queueEvents: this.queue.size,
      queueBytes: this.queue.bytes,
      overflowEvents: this.queue.spilled,
      batchesInFlight: this.batchesInFlight,
      ...(primary ? { sendWindow: this.sendWindow() } : {}),
      eventsSent: this.dispatchers.reduce((sum, dispatcher) => sum + dispatcher.eventsSent, 0),
      ...(this.filters.failures > 0 ? { filterFailures: this.filters.failures } : {}),
      ...(this.spec.batchConflation ? { eventsConflated: this.dispatchers.reduce((sum, dispatcher) => sum + dispatcher.eventsConflated, 0) } : {}),
      lastAckAtMs: Math.max(...this.dispatchers.map((dispatcher) => dispatcher.lastAckAtMs)),
      lagMs: this.queue.size === 0 ? 0 : Math.max(0, Math.round(this.runtime.clock.monotonic() - oldest)),
      deadLetters: this.deadLetters.count,
      ...(this.host.lanes !== undefined ? { parallel: { ...this.laneCounts } } : {}),
      problem: this.deadLettersFull
        ? `the dead letters are full (${this.deadLetters.count} events); dispatch waits — fix why site ${this.spec.remoteSiteId} refuses them and run strait resume gateway-sender --id ${this.spec.id} --replay-dead-letters`
        : primary && this.state === 'running' ? this.dispatchers.find((dispatcher) => dispatcher.problem !== null)?.problem ?? null
          : this.laneCounts.undispatched > 0 ? `${this.laneCounts.undispatched} buckets held here have no running copy of parallel sender ${this.spec.id} to dispatch them; their events wait in the queue — start it: strait start gateway-sender --id ${this.spec.id}` : null,
    };
  }
}
