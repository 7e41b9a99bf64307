// The send window of a gateway sender's dispatcher: how many batches, and how many bytes of
// them, may await the remote site's acknowledgement at once.
//
// A fixed window bounds a long link: 16 batches of 500 events over a 105 ms round trip carry at
// most ~76,000 events/s, whatever the link and the receiver could do. This window is sized from
// what the link shows, the way TCP Vegas sizes a congestion window:
//   - the base round trip is the shortest acknowledgement time seen on this connection (a batch
//     that waited behind no other);
//   - once per round trip, the batches queued somewhere on the path (a busy receiver, a full
//     socket) are estimated by Little's law: the batches in flight on average over the round,
//     less the round's rate of acknowledgements × the base round trip (those the link itself
//     holds) — the part of what is in flight that is queue, not link;
//   - when the window held events back in that round and fewer than 2 batches (or 1/32 of the
//     window) were queued, the link has room: the window doubles until the path first shows a
//     queue (slow start), then grows by a quarter (and the round after
//     decides nothing: it still shows the old size); when more than 6 (or 3/32) were queued,
//     the receiver is the bottleneck and more in flight would only queue there: the window
//     shrinks toward WINDOW_BATCHES_MIN.
// The window settles at the bandwidth-delay product plus a few batches. On a short link the
// receiver is always the bottleneck and the window stays at the floor of 16 batches — the
// fixed window of earlier builds, which a 0 ms link never outgrew. Bytes in flight are capped
// at WINDOW_BYTES_MAX whatever the count (the socket buffers hold copies of them), but one batch
// may always go out.
//
// The base round trip can only fall by sampling, yet a path's round trip may rise for good while
// the connection stays open (a route or a proxy changed): every sample then reads as queue and
// the window shrinks below what the link needs. So, as BBR's PROBE_RTT does, a window that held
// events back and has seen no sample near its base for a probe interval probes: it lets what is
// in flight land, sends one batch alone, and takes that batch's round trip as the new base. Where
// the receiver is the bottleneck no sample comes near the base and the probe finds the same one
// again; each such probe doubles the interval (2 s up to 80 s), as a drained window costs the
// receiver about one round trip of work. A round trip that jumps by half from one round to the
// next is a change of path, and is probed at once.
//
// Where the peer refuses a batch for its own limit on requests in flight (a dial-out link, which
// every sender and dispatcher thread to that site shares), the window is capped at what was in
// flight then, for PEER_CEILING_MS.
//
// One window per connection: a new connection is another path, measured afresh from the floor
// (the dispatcher makes a new SendWindow). A state machine with no I/O: the dispatcher passes
// the monotonic time in.

import { assert } from '../errors.ts';

/** The window never holds fewer batches (what the fixed window of earlier builds allowed). */
export const WINDOW_BATCHES_MIN = 16;
/** The window never holds more batches, however long the link. */
export const WINDOW_BATCHES_MAX = 256;
/** Bytes of batches in flight, at most (one batch may always go out, whatever its size). */
export const WINDOW_BYTES_MAX = 32 * 1024 * 1024;
/**
 * Batches queued on the path below which a window-limited sender grows its window, and above
 * which it shrinks: these, or these shares of the window when larger — on a long path, jitter of
 * a few percent of the round trip reads as that share of the window queued.
 */
export const QUEUED_BATCHES_LOW = 2;
export const QUEUED_BATCHES_HIGH = 6;
export const QUEUED_SHARE_LOW = 1 / 32;
export const QUEUED_SHARE_HIGH = 3 / 32;
/**
 * Growth per deciding round while the link has room: double until the path first shows a queue
 * (slow start: 16 → 128 batches in 6 round trips), then a quarter.
 */
const SLOW_START_GROWTH_FACTOR = 2;
const GROWTH_FACTOR = 1.25;
/** A sample this close to the base (as a share of it) keeps the base fresh: no probe is due. */
const BASE_FRESH_SHARE = 0.1;
/**
 * The base is probed once stale this long; the interval doubles while probes find the same base
 * (2, 4, 8 … 80 s) and starts again at 2 s when one finds another.
 */
export const PROBE_INTERVAL_MS = 2_000;
export const PROBE_INTERVAL_MAX_MS = 80_000;
/**
 * A round whose shortest sample is this many times the last round's is a change of path, not a
 * queue building (a window grows by a quarter a round): it is probed at once, however long the
 * interval has grown, though not within PROBE_INTERVAL_MS of the last probe.
 */
const ROUND_TRIP_JUMP_FACTOR = 1.5;
/** How long a receiver's refusal for its own limit caps the window before it may grow again. */
export const PEER_CEILING_MS = 10_000;

/** What the window keeps of one batch in flight. */
export interface WindowTicket {
  /** Order of sending on this connection, from 1. */
  readonly sequence: number;
  readonly sentAtMs: number;
  readonly bytes: number;
  /** Batches in flight once this one went out, itself included. */
  readonly inFlightAtSend: number;
}

export interface WindowStatus {
  /** Batches that may be in flight now. */
  readonly batches: number;
  /** The shortest acknowledgement time on this connection, ms; null before the first. */
  readonly baseRttMs: number | null;
  /** The shortest acknowledgement time of the last round trip, ms; null before the first. */
  readonly rttMs: number | null;
  /** Bytes of batches in flight. */
  readonly bytesInFlight: number;
}

export class SendWindow {
  private windowBatches = WINDOW_BATCHES_MIN;
  /** The peer's own limit on our requests in flight, once it refused one, until `peerCeilingUntilMs`. */
  private peerCeilingBatches = WINDOW_BATCHES_MAX;
  private peerCeilingUntilMs = Number.NEGATIVE_INFINITY;
  private inFlightBatches = 0;
  private inFlightBytes = 0;
  private nextSequence = 1;
  private baseRttMs = Number.POSITIVE_INFINITY;
  /** When a sample last came within BASE_FRESH_SHARE of the base, or a probe set it (monotonic ms). */
  private baseFreshAtMs: number | undefined;
  private probeIntervalMs = PROBE_INTERVAL_MS;
  /** When the last probe ended (monotonic ms). */
  private probedAtMs = Number.NEGATIVE_INFINITY;
  private lastRoundRttMs = Number.POSITIVE_INFINITY;
  /**
   * The shortest sample of the last whole round (one that ended with an adjustment), for the jump
   * rule; infinite after a reset, a probe or an abandoned probe, whose first round began on an
   * empty path and saw no queue.
   */
  private lastWholeRoundRttMs = Number.POSITIVE_INFINITY;
  private roundRttMs = Number.POSITIVE_INFINITY;
  /** This round: when it began (monotonic ms), its acknowledgements, and the batches in flight summed over them. */
  private roundStartedAtMs = 0;
  private roundAcknowledged = 0;
  private roundInFlightSum = 0;
  /**
   * The round ends with the acknowledgement of the batch sent with this sequence, or later.
   * Infinite until the first acknowledgement after a reset or a probe, which starts the rounds:
   * a round closed by a batch that went out onto an empty window would read as no queue.
   */
  private roundEndsAtSequence = Number.POSITIVE_INFINITY;
  /** The last round grew the window: this one sends at the new size before it may grow again. */
  private grewLastRound = false;
  /** No round has shown a queue since the connection opened or a probe found a new base. */
  private slowStart = true;
  /** The window's count, not the queue nor the byte cap, held events back during this round. */
  private limitedThisRound = false;
  /** A probe of the base round trip: letting the window land, then one batch alone (its sequence). */
  private probe: { readonly phase: 'draining' } | { readonly phase: 'probing'; readonly sequence: number } | undefined;
  private probesStarted = 0;

  /** Probes started on this connection. */
  get probes(): number {
    return this.probesStarted;
  }

  /** True while a probe holds the window to let what is in flight land, or to send one batch alone. */
  get probing(): boolean {
    return this.probe !== undefined;
  }

  /** True while another batch may go out. */
  get open(): boolean {
    if (this.inFlightBatches === 0) return true;
    if (this.probe !== undefined) return false;
    return this.inFlightBatches < this.windowBatches && this.inFlightBytes < WINDOW_BYTES_MAX;
  }

  get batches(): number {
    return this.windowBatches;
  }

  /** Events waited because the window was closed: a round with room on the path may grow it. */
  held(): void {
    // Held by the byte cap or a probe, a larger count would carry no more.
    if (this.probe === undefined && this.inFlightBatches >= this.windowBatches) this.limitedThisRound = true;
  }

  /** A batch of `bytes` went out at `nowMs`; hand the ticket back when it settles. */
  sent(bytes: number, nowMs: number): WindowTicket {
    assert(this.open, 'a batch goes out only while the window is open');
    this.baseFreshAtMs ??= nowMs;
    this.inFlightBatches += 1;
    this.inFlightBytes += bytes;
    const ticket = { sequence: this.nextSequence, sentAtMs: nowMs, bytes, inFlightAtSend: this.inFlightBatches };
    this.nextSequence += 1;
    if (this.probe?.phase === 'draining') this.probe = { phase: 'probing', sequence: ticket.sequence };
    return ticket;
  }

  /** The remote site acknowledged the batch: one round-trip sample, and once a round the window adjusts. */
  acknowledged(ticket: WindowTicket, nowMs: number): void {
    this.settled(ticket);
    const rttMs = Math.max(0, nowMs - ticket.sentAtMs);
    if (this.probe?.phase === 'probing' && this.probe.sequence === ticket.sequence) {
      this.probed(rttMs, nowMs);
      return;
    }
    if (rttMs <= this.baseRttMs * (1 + BASE_FRESH_SHARE)) this.baseFreshAtMs = nowMs;
    this.baseRttMs = Math.min(this.baseRttMs, rttMs);
    if (this.probe !== undefined) return; // draining: what lands now waited behind the window
    this.roundRttMs = Math.min(this.roundRttMs, rttMs);
    this.roundAcknowledged += 1;
    this.roundInFlightSum += this.inFlightBatches + 1;
    if (!Number.isFinite(this.roundEndsAtSequence)) {
      this.startRound(rttMs, nowMs);
      return;
    }
    if (ticket.sequence < this.roundEndsAtSequence) return;
    const limited = this.limitedThisRound;
    const jumped = this.roundRttMs > ROUND_TRIP_JUMP_FACTOR * this.lastWholeRoundRttMs && nowMs - this.probedAtMs >= PROBE_INTERVAL_MS;
    this.adjust(nowMs);
    this.lastWholeRoundRttMs = this.roundRttMs;
    this.startRound(this.roundRttMs, nowMs);
    // A window that held events back on a stale base may be far below what the link needs.
    if (limited && (jumped || nowMs - (this.baseFreshAtMs ?? nowMs) >= this.probeIntervalMs)) {
      this.probe = { phase: 'draining' };
      this.probesStarted += 1;
    }
  }

  /** The probe batch went alone over an empty path: its round trip is the base, higher or lower. */
  private probed(rttMs: number, nowMs: number): void {
    this.probe = undefined;
    const same = Math.abs(rttMs - this.baseRttMs) <= this.baseRttMs * BASE_FRESH_SHARE;
    this.probeIntervalMs = same ? Math.min(PROBE_INTERVAL_MAX_MS, this.probeIntervalMs * 2) : PROBE_INTERVAL_MS;
    if (!same) this.slowStart = true;
    this.probedAtMs = nowMs;
    this.lastWholeRoundRttMs = Number.POSITIVE_INFINITY;
    this.baseRttMs = rttMs;
    this.baseFreshAtMs = nowMs;
    this.roundEndsAtSequence = Number.POSITIVE_INFINITY;
    this.lastRoundRttMs = rttMs;
  }

  /** A new round begins with what goes out from now on; `lastRoundRttMs` is the one just ended. */
  private startRound(lastRoundRttMs: number, nowMs: number): void {
    this.lastRoundRttMs = lastRoundRttMs;
    this.roundRttMs = Number.POSITIVE_INFINITY;
    this.roundStartedAtMs = nowMs;
    this.roundAcknowledged = 0;
    this.roundInFlightSum = 0;
    this.limitedThisRound = false;
    // The next round ends with the acknowledgement of what goes out from now on.
    this.roundEndsAtSequence = this.nextSequence;
  }

  /** The batch failed or its connection was lost: no sample (a probe ends unanswered, the next waits an interval). */
  abandoned(ticket: WindowTicket, nowMs: number): void {
    this.settled(ticket);
    if (this.probe?.phase === 'probing' && this.probe.sequence === ticket.sequence) {
      this.probe = undefined;
      this.baseFreshAtMs = nowMs;
      this.probedAtMs = nowMs;
      this.lastWholeRoundRttMs = Number.POSITIVE_INFINITY;
      this.roundEndsAtSequence = Number.POSITIVE_INFINITY;
    }
  }

  /**
   * The peer refused a batch for its limit on requests in flight, with others of ours still in
   * flight (the caller settles the refused one with `abandoned` first): the window stays at what
   * is in flight now for PEER_CEILING_MS, then may grow again and learn the limit afresh — other
   * senders sharing the peer come and go.
   */
  cappedByPeer(nowMs: number): void {
    assert(this.inFlightBatches > 0, 'a peer limit is learnt while batches are in flight');
    this.peerCeilingBatches = this.inFlightBatches;
    this.peerCeilingUntilMs = nowMs + PEER_CEILING_MS;
    this.windowBatches = Math.min(this.windowBatches, this.peerCeilingBatches);
  }

  status(): WindowStatus {
    return {
      batches: this.windowBatches,
      baseRttMs: Number.isFinite(this.baseRttMs) ? this.baseRttMs : null,
      rttMs: Number.isFinite(this.lastRoundRttMs) ? this.lastRoundRttMs : null,
      bytesInFlight: this.inFlightBytes,
    };
  }

  private settled(ticket: WindowTicket): void {
    assert(this.inFlightBatches > 0 && this.inFlightBytes >= ticket.bytes, 'a settled batch was in flight');
    this.inFlightBatches -= 1;
    this.inFlightBytes -= ticket.bytes;
  }

  private adjust(nowMs: number): void {
    // Little's law: the batches in flight on average, less those the round's rate keeps moving
    // over the base round trip, were waiting somewhere. A rate over the whole round, not its
    // shortest sample: the first batch of a burst onto an empty path saw no queue, its followers did.
    const durationMs = nowMs - this.roundStartedAtMs;
    const inFlight = this.roundInFlightSum / Math.max(1, this.roundAcknowledged);
    const moving = durationMs <= 0 ? inFlight : (this.roundAcknowledged / durationMs) * this.baseRttMs;
    const queued = Math.max(0, inFlight - moving);
    // The round after a growth decides nothing, as in Vegas's slow start: its acknowledgements
    // are of batches sent at the old size while the new ones are already in flight, so it would
    // read the growth itself as queue.
    if (this.grewLastRound) {
      this.grewLastRound = false;
      return;
    }
    if (nowMs >= this.peerCeilingUntilMs) this.peerCeilingBatches = WINDOW_BATCHES_MAX;
    let batches = this.windowBatches;
    const low = Math.max(QUEUED_BATCHES_LOW, batches * QUEUED_SHARE_LOW);
    const high = Math.max(QUEUED_BATCHES_HIGH, batches * QUEUED_SHARE_HIGH);
    const grow = queued < low && this.limitedThisRound;
    if (queued >= low) this.slowStart = false;
    if (grow) batches = Math.ceil(batches * (this.slowStart ? SLOW_START_GROWTH_FACTOR : GROWTH_FACTOR));
    else if (queued > high) batches -= Math.ceil((queued - high) / 2);
    const before = this.windowBatches;
    this.windowBatches = Math.min(this.peerCeilingBatches, WINDOW_BATCHES_MAX, Math.max(WINDOW_BATCHES_MIN, batches));
    // Only a growth that happened makes the next round a transition (not one the caps cut off).
    this.grewLastRound = this.windowBatches > before;
  }
}
