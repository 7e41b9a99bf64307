// The dispatcher of a gateway sender's primary copy: one connection to a gateway receiver of
// the remote site, and the batches in flight on it.
//
// Dispatch is adaptive: an idle link gets a batch at once; under load batches fill up to
// `batch-size` or wait at most `batch-time-interval`; as many batches are in flight as the send
// window allows (send-window.ts: sized from the link's round trip, at least 16 batches, at most
// 256 and 32 MiB), so throughput holds as round-trip time grows. A batch that fails, or whose connection
// is lost, goes out again from the head of the queue, flagged possible-duplicate; the receiver
// applies by version tag, so a duplicate has no second effect. Reconnects walk the remote site's
// receivers with jittered backoff.
//
// A dial-out site's receivers open the link themselves (dial-out.ts, dial-in.ts): when this
// server holds such links to the remote site, the dispatcher sends over one of them instead of
// dialing, with the same window, batches and acks. It never closes a dial-in link (the
// receiver owns it); when one closes, its batches in flight go out again on another.
//
// A state machine: callbacks run to completion; time, I/O and compression come through the Runtime.

import { StraitError, assert } from '../errors.ts';
import { Connection } from '../protocol/connection.ts';
import type { Address, Logger, Runtime, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { Backoff } from './backoff.ts';
import { routedTarget } from './routed-address.ts';
import type { GatewaySenderSpec } from './config.ts';
import { encodeBatchEvents, type QueueItem, type SenderQueue } from './sender-queue.ts';
import { compareTags } from './region.ts';
import { SendWindow, WINDOW_BATCHES_MAX, type WindowStatus, type WindowTicket } from './send-window.ts';
/**
 * Bytes of events per batch, about, at most — and never more than half the receiver's frame
 * limit, so a batch of large values is split rather than refused (and resent) forever.
 */
export const BATCH_BYTES_MAX = 8 * 1024 * 1024;
/** How long a batch may wait for the remote site's acknowledgement. */
export const BATCH_TIMEOUT_MS = 30_000;
/**
 * How long a direct connection to a receiver may take to open when the remote site can also be
 * reached through routers: its advertised address may be private to it, and silently dropped.
 */
const DIRECT_HANDSHAKE_TIMEOUT_MS = 2000;
/** After a direct connection failed where routers could carry the link, routers only for this long. */
const DIRECT_RETRY_AFTER_MS = 60_000;
/** Frames the sender accepts from the receiver (acknowledgements are small). */
const SENDER_FRAME_BYTES_MAX = 64 * 1024 * 1024;
/** Problems are logged at most this often. */
const PROBLEM_LOG_INTERVAL_MS = 10_000;

export interface Refusal {
  readonly index: number;
  readonly code: string;
  readonly message: string;
}

/** What the dispatcher needs from the sender it works for. */
export interface DispatchHost {
  readonly memberName: string;
  readonly site: number;
  /** The remote site's receivers, or why none is known. */
  receivers(): { readonly receivers: readonly Address[]; readonly problem: string | null };
  /** Links the remote site's dial-out receivers opened to this server, open ones. */
  dialInLinks(): readonly Connection[];
  /** True while batches may go out (running, primary, not closed). */
  mayDispatch(): boolean;
  /** True while a lost connection should be re-established (primary, not stopped or closed). */
  mayReconnect(): boolean;
  /**
   * The remote site acknowledged these items; `refused` by index into them. The first `sent`
   * were sent; the rest went unsent (conflated into a later event, or held back by a filter).
   */
  acknowledged(items: readonly QueueItem[], refused: readonly Refusal[], sent: number): void;
  /** An event filter's beforeTransmit: false keeps the event from being sent. */
  transmits(item: QueueItem): boolean;
  /** A batch finished (acknowledged, failed or lost): the count in flight went down. */
  batchSettled(): void;
  /** Events queued, for the problem log line. */
  queuedEvents(): number;
  /** The send window grew or shrank (the sender's read-ahead follows it). */
  windowChanged(): void;
}

interface Batch {
  readonly id: number;
  /** Every item the batch took: those whose events were sent first (refusals index them), then those conflation left out. */
  readonly items: QueueItem[];
  /** How many of `items` were sent. */
  readonly sent: number;
  /** How many of `items` conflation left out (a later event of the same key was sent). */
  readonly conflated: number;
  readonly ticket: WindowTicket;
}

/**
 * batch-conflation: only the latest of a batch's events for each key is sent; the earlier ones
 * are acknowledged with it (the remote site ends with the same value). Returns the items to
 * send, in queue order, then those left out.
 */
export function conflate(items: readonly QueueItem[]): { sent: QueueItem[]; superseded: QueueItem[] } {
  // The latest by version tag, not by queue position: images and handoffs append older events
  // after newer ones.
  const latest = new Map<string, QueueItem>();
  for (const item of items) {
    const key = `${item.event![0]}\u0000${item.event![1]}`;
    const kept = latest.get(key);
    if (kept === undefined || compareTags(item.event![3], kept.event![3]) >= 0) latest.set(key, item);
  }
  if (latest.size === items.length) return { sent: [...items], superseded: [] };
  const kept = new Set(latest.values());
  return { sent: items.filter((item) => kept.has(item)), superseded: items.filter((item) => !kept.has(item)) };
}

export class SenderDispatcher {
  private readonly runtime: Runtime;
  private spec: GatewaySenderSpec;
  private readonly queue: SenderQueue;
  private readonly host: DispatchHost;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private connection: Connection | undefined;
  private connectedTo: Address | undefined;
  private linkIndex = 0;
  private connecting = false;
  /** The connection in its handshake, until it opens or closes. */
  private opening: Connection | undefined;
  private reconnectTimer: Timer | undefined;
  private batchTimer: Timer | undefined;
  private readonly inFlight = new Map<number, Batch>();
  /** This connection's send window; a new connection gets a new one. */
  private window = new SendWindow();
  private nextBatchId = 1;
  private receiverIndex = 0;
  /** When a direct connection last failed while the routers offered another way (monotonic ms). */
  private directFailedAtMs = -Infinity;
  /** Lowered when the receiver refused a batch as too large; back to the default on reconnect. */
  private batchBytesCap = BATCH_BYTES_MAX;
  private problemText: string | null = null;
  private lastProblemLogMs = -Infinity;
  /** Events the remote site applied (acknowledged and not refused). */
  eventsSent = 0;
  /** Events batch-conflation left out (a later event of the same key in the batch was sent). */
  eventsConflated = 0;
  /** Wall-clock ms of the last acknowledged batch; 0 = none yet. */
  lastAckAtMs = 0;

  /** New batch settings (`alter gateway-sender`): the next batch uses them. */
  alter(spec: GatewaySenderSpec): void {
    this.spec = spec;
    this.pump();
  }

  /** With several dispatcher threads: the one this is (it sends only its events); else undefined. */
  private readonly thread: number | undefined;

  constructor(runtime: Runtime, spec: GatewaySenderSpec, queue: SenderQueue, host: DispatchHost, log: Logger, thread?: number) {
    this.runtime = runtime;
    this.spec = spec;
    this.queue = queue;
    this.host = host;
    this.thread = thread;
    // Threads start at different receivers: their connections spread over the remote site.
    this.receiverIndex = thread ?? 0;
    this.log = thread === undefined ? log : log.child({ dispatcher: thread });
    this.backoff = new Backoff(runtime.random, { initialDelayMs: 100, maximumDelayMs: 5000 });
  }

  get batchesInFlight(): number {
    return this.inFlight.size;
  }

  /** The send window: its size in batches and the round trips it was sized from. */
  get windowStatus(): WindowStatus {
    return this.window.status();
  }

  get receiver(): Address | undefined {
    return this.connectedTo;
  }

  /** The connection is a link a dial-out receiver opened (owned by dial-in.ts, never closed here). */
  private get dialIn(): boolean {
    return this.connection !== undefined && this.connectedTo === undefined;
  }

  /** The dial-in link batches go over, as "name (address)", when that is how we are connected. */
  get dialInFrom(): string | undefined {
    const connection = this.connection;
    return this.dialIn && connection !== undefined ? `${connection.peer?.name ?? '?'} (${connection.stream.remote})` : undefined;
  }

  /**
   * A new way to the remote site appeared (a dial-out receiver attached a link, the catalogue
   * lists other receivers): if we have no connection, try now rather than after the backoff.
   */
  linkAvailable(): void {
    if (this.connection !== undefined || this.connecting) return;
    this.reconnectTimer?.cancel();
    this.reconnectTimer = undefined;
    this.backoff.reset();
    this.pump();
  }

  /** A dial-in link closed (dial-in.ts owns those): if it was ours, resend on another. */
  linkClosed(connection: Connection, error: Error | undefined): void {
    if (this.connection !== connection) return;
    this.lost(connection, error);
  }

  get problem(): string | null {
    return this.problemText;
  }

  /** Sends what the queue holds as far as the window allows; connects first if needed. */
  pump(): void {
    if (!this.host.mayDispatch()) return;
    if (this.connection === undefined || this.connection.state !== 'open') {
      this.connect();
      return;
    }
    while (true) {
      const unsent = this.queue.unsentCount(this.spec.batchSize, this.thread);
      if (unsent === 0) return;
      // An idle link gets whatever is queued at once; otherwise wait for a full batch or the
      // batch time interval.
      if (this.inFlight.size > 0 && unsent < this.spec.batchSize) {
        this.armBatchTimer();
        return;
      }
      if (!this.window.open) {
        this.window.held(); // a full batch waits for the window
        return;
      }
      this.sendBatch();
    }
  }

  /** Stops sending: timers cancelled, connection closed, batches in flight go out again later. */
  disconnect(): void {
    this.cancelBatchTimer();
    this.reconnectTimer?.cancel();
    this.reconnectTimer = undefined;
    const connection = this.connection;
    const opening = this.opening;
    const dialIn = this.dialIn;
    this.connection = undefined;
    this.opening = undefined;
    this.connecting = false;
    this.connectedTo = undefined;
    this.resetInFlight();
    if (!dialIn) connection?.close();
    // A connection still in its handshake must not open later and be kept by nobody.
    opening?.close();
  }

  cancelBatchTimer(): void {
    this.batchTimer?.cancel();
    this.batchTimer = undefined;
  }

  private armBatchTimer(): void {
    if (this.batchTimer !== undefined) return;
    this.batchTimer = this.runtime.setTimer(this.spec.batchTimeIntervalMs, () => {
      this.batchTimer = undefined;
      if (!this.host.mayDispatch() || this.connection?.state !== 'open') return;
      if (this.queue.unsentCount(1, this.thread) > 0) {
        if (this.window.open) this.sendBatch();
        else this.window.held(); // a batch due by the interval waits for the window
      }
      this.pump();
    });
  }

  private sendBatch(): void {
    const connection = this.connection;
    assert(connection !== undefined, 'a batch is sent over an open connection');
    const taken = this.queue.takeUnsent(this.spec.batchSize, this.batchBytesLimit(connection), this.thread);
    const conflated = this.spec.batchConflation ? conflate(taken) : { sent: taken, superseded: [] };
    const sent = conflated.sent.filter((item) => this.host.transmits(item));
    const kept = new Set(sent);
    const superseded = sent.length === conflated.sent.length ? conflated.superseded : [...conflated.superseded, ...conflated.sent.filter((item) => !kept.has(item))];
    if (sent.length === 0) {
      // Nothing left to send (filtered out): done with them at once.
      this.eventsConflated += conflated.superseded.length;
      this.host.acknowledged(superseded, [], 0);
      return;
    }
    // The events' bytes from their queue records, flagged where needed: not decoded and packed again.
    const packed = encodeBatchEvents(sent);
    const sender = `${this.host.site}/${this.spec.id}`;
    const id = this.nextBatchId++;
    const compressed = this.spec.compression ? this.runtime.compression.compress(packed) : undefined;
    const body = compressed !== undefined ? { sender, batchId: id, events: [], compressed } : { sender, batchId: id, events: [], packed };
    const ticket = this.window.sent((compressed ?? packed).length, this.runtime.clock.monotonic());
    const batch: Batch = { id, items: [...sent, ...superseded], sent: sent.length, conflated: conflated.superseded.length, ticket };
    this.inFlight.set(batch.id, batch);
    connection.request('gatewayBatch', body, (error, response) => {
      if (this.inFlight.get(batch.id) !== batch) return;
      this.inFlight.delete(batch.id);
      const before = this.window.batches;
      const nowMs = this.runtime.clock.monotonic();
      if (error === undefined && response !== undefined) this.window.acknowledged(ticket, nowMs);
      else this.window.abandoned(ticket, nowMs);
      // A dial-out link's own limit on requests in flight (all senders and dispatcher threads of
      // this server to that site share it), with others of ours still in flight: the window stays
      // below it and the batch goes out again — flagged, since the code alone does not prove
      // nothing of it was applied. With nothing else in flight, the reconnect path backs off.
      const peerLimited = error?.code === 'STRAIT_TOO_MANY_IN_FLIGHT' && this.dialIn && this.inFlight.size > 0;
      if (peerLimited) this.window.cappedByPeer(nowMs);
      if (this.window.batches !== before) this.host.windowChanged();
      this.host.batchSettled();
      if (peerLimited) {
        this.queue.markUnsent(batch.items);
        this.log.debug({ window: this.window.batches }, `sender ${this.spec.id} → site ${this.spec.remoteSiteId}: the receiver holds at most ${this.window.batches} of our batches at once; the window stays there`);
        this.pump();
        return;
      }
      if (error?.code === 'STRAIT_FRAME_TOO_LARGE') {
        this.tooLarge(batch, error);
        return;
      }
      if (error !== undefined || response === undefined) {
        this.queue.markUnsent(batch.items);
        this.batchFailed(connection, error);
        return;
      }
      this.eventsSent += batch.sent - response.refused.length;
      this.eventsConflated += batch.conflated;
      this.lastAckAtMs = this.runtime.clock.now();
      this.backoff.reset();
      this.host.acknowledged(batch.items, response.refused, batch.sent);
      this.pump();
    });
  }

  /** Bytes the next batch may hold: the cap, and half of what the receiver accepts in a frame. */
  private batchBytesLimit(connection: Connection): number {
    return Math.min(this.batchBytesCap, Math.floor((connection.peer?.frameBytesMax ?? BATCH_BYTES_MAX) / 2));
  }

  /**
   * The batch did not fit the receiver's frame limit (it never left: the connection refused
   * it). Several events go out again in smaller batches; a single event that can never fit is
   * refused for good and becomes a dead letter, so it can't stall the queue.
   */
  private tooLarge(batch: Batch, error: StraitError): void {
    if (batch.sent > 1) {
      this.queue.returnUnsent(batch.items);
      this.batchBytesCap = Math.max(1, Math.floor(batch.items.reduce((sum, item) => sum + item.bytes, 0) / 2));
    } else {
      this.host.acknowledged(batch.items, [{ index: 0, code: error.code, message: `${error.message}; this event can never be sent to site ${this.spec.remoteSiteId}` }], 0);
    }
    this.pump();
  }

  private batchFailed(connection: Connection, error: StraitError | undefined): void {
    this.log.warn({ code: error?.code, receiver: this.connectedTo ? formatAddress(this.connectedTo) : null }, `sender ${this.spec.id} → site ${this.spec.remoteSiteId}: batch failed (${error?.message ?? 'no response'}); reconnecting and resending`);
    if (this.connection !== connection) return;
    this.disconnect();
    this.scheduleReconnect();
  }

  private connect(): void {
    if (this.connecting || this.reconnectTimer !== undefined) return;
    const links = this.host.dialInLinks();
    if (links.length > 0) {
      const link = links[this.linkIndex % links.length]!;
      this.linkIndex += 1;
      this.opened(link, undefined);
      return;
    }
    const { receivers, problem } = this.host.receivers();
    if (receivers.length === 0) {
      this.setProblem(problem ?? `no receiver of site ${this.spec.remoteSiteId} is known yet`);
      this.scheduleReconnect();
      return;
    }
    // Direct first; once a direct attempt failed and the routers reach the site, only through
    // them for a while (a private address would cost every reconnect a handshake timeout).
    const routed = receivers.filter((receiver) => routedTarget(receiver) !== undefined);
    const routedAlternative = routed.length > 0;
    const directRecentlyFailed = this.runtime.clock.monotonic() - this.directFailedAtMs < DIRECT_RETRY_AFTER_MS;
    const candidates = routedAlternative && directRecentlyFailed ? routed : receivers;
    const target = candidates[this.receiverIndex % candidates.length]!;
    this.receiverIndex += 1;
    this.connecting = true;
    this.log.debug({ receiver: formatAddress(target) }, `sender ${this.spec.id} → site ${this.spec.remoteSiteId}: connecting to receiver ${formatAddress(target)}`);
    const connection: Connection = Connection.open(this.runtime, target, {
      local: { role: 'gateway', name: `${this.host.memberName}/${this.spec.id}${this.thread !== undefined ? `/${this.thread}` : ''}`, site: this.host.site },
      frameBytesMax: SENDER_FRAME_BYTES_MAX,
      requestTimeoutMs: BATCH_TIMEOUT_MS,
      ...(routedAlternative && routedTarget(target) === undefined ? { handshakeTimeoutMs: DIRECT_HANDSHAKE_TIMEOUT_MS } : {}),
      requestsInFlightMax: WINDOW_BATCHES_MAX * 2,
    }, {
      onOpen: () => {
        if (this.opening !== connection) return; // disconnected meanwhile: closed by disconnect()
        this.opening = undefined;
        this.connecting = false;
        this.opened(connection, target);
      },
      onRequest: (_connection, _request, reply) => reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: formatAddress(target), reason: 'a sender serves no requests' })),
      onPush: () => {},
      onClose: (_closed, error) => {
        if (this.connection !== connection && this.opening !== connection) return; // one disconnect() already let go
        if (this.opening === connection) this.opening = undefined;
        this.connecting = false;
        this.lost(connection, error, routedAlternative && routedTarget(target) === undefined);
      },
    });
    this.opening = connection;
  }

  /** `target` is the receiver we dialed; undefined for a dial-in link. */
  private opened(connection: Connection, target: Address | undefined): void {
    this.connection = connection;
    this.connectedTo = target;
    this.batchBytesCap = BATCH_BYTES_MAX;
    this.setProblem(null);
    const where = target === undefined ? `the dial-in link of ${this.dialInFrom ?? '?'}` : `receiver ${formatAddress(target)}`;
    this.log.info({ receiver: target === undefined ? connection.stream.remote : formatAddress(target), dialIn: this.dialIn }, `sender ${this.spec.id} → site ${this.spec.remoteSiteId}: connected to ${where}`);
    this.pump();
  }

  /**
   * Our connection (dialed or dial-in) closed: batches in flight go out again after a reconnect.
   * `directWithAlternative`: it was a direct dial while the routers offered another way.
   */
  private lost(connection: Connection, error: Error | undefined, directWithAlternative = false): void {
    // A direct receiver that could not be reached is skipped while the routers reach the site.
    if (this.connection !== connection && directWithAlternative) this.directFailedAtMs = this.runtime.clock.monotonic();
    const where = this.dialIn ? `dial-in link of ${this.dialInFrom ?? '?'}` : `receiver ${connection.stream.remote}`;
    if (this.connection === connection) {
      // A receiver that worked through the routers is tried first again: the router under it
      // may have failed, and the tunnel goes through another.
      if (this.connectedTo !== undefined && routedTarget(this.connectedTo) !== undefined) this.receiverIndex = Math.max(0, this.receiverIndex - 1);
      this.connection = undefined;
      this.connectedTo = undefined;
      this.resetInFlight();
    }
    if (!this.host.mayReconnect()) return;
    this.setProblem(`${where} of site ${this.spec.remoteSiteId}: ${error?.message ?? 'closed'}`);
    // The routers are the way now: no reason to wait.
    if (this.connection !== connection && directWithAlternative) this.backoff.reset();
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer !== undefined || !this.host.mayReconnect()) return;
    this.reconnectTimer = this.runtime.setTimer(this.backoff.nextDelayMs(), () => {
      this.reconnectTimer = undefined;
      this.pump();
    });
  }

  private setProblem(problem: string | null): void {
    this.problemText = problem;
    if (problem === null) return;
    const now = this.runtime.clock.monotonic();
    if (now - this.lastProblemLogMs > PROBLEM_LOG_INTERVAL_MS) {
      this.lastProblemLogMs = now;
      this.log.warn({ problem }, `sender ${this.spec.id} → site ${this.spec.remoteSiteId} on ${this.host.memberName}: ${problem}; ${this.host.queuedEvents()} events queued`);
    }
  }

  /**
   * In-flight batches lost with their connection go out again, flagged possible duplicates; the
   * next connection's window is measured afresh.
   */
  private resetInFlight(): void {
    const before = this.window.batches;
    this.window = new SendWindow();
    if (this.window.batches !== before) this.host.windowChanged();
    if (this.inFlight.size === 0) return;
    for (const batch of this.inFlight.values()) this.queue.markUnsent(batch.items);
    this.inFlight.clear();
    this.host.batchSettled();
  }
}
