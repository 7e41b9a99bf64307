// The send window of a gateway sender's dispatcher: how many batches, and how many bytes of
// them, may await the remote site's acknowledgement at once.
//
// A fixed window bounds a long link: 16 batches of 500 events over a 105 ms round trip carry at
// most ~76,000 events/s, whatever the link and the receiver could do. This window is sized from
// what the link shows, the way TCP Vegas sizes a congestion window:
//   - the base round trip is the shortest acknowledgement time seen on this connection (a batch
//     that waited behind no other);
//   - once per round trip, the batches queued somewhere on the path (a busy receiver, a full
//     socket) are estimated by Little's law: in flight × (1 − base / shortest round trip of the
//     last round), the part of the bandwidth-delay product that is queue, not link;
//   - when the window held events back in that round and fewer than QUEUED_BATCHES_LOW were
//     queued, the link has room: the window grows by a quarter; when more than
//     QUEUED_BATCHES_HIGH were queued, the receiver is the bottleneck and more in flight would
//     only queue there: the window shrinks toward WINDOW_BATCHES_MIN.
// The window settles at the bandwidth-delay product plus a few batches. On a short link the
// receiver is always the bottleneck and the window stays at the floor of 16 batches — the
// fixed window of earlier builds, which a 0 ms link never outgrew. Bytes in flight are capped
// at WINDOW_BYTES_MAX whatever the count (the socket buffers hold copies of them), but one batch
// may always go out.
//
// The base round trip can only fall by sampling, yet a path's round trip may rise for good while
// the connection stays open (a route or a proxy changed): every sample then reads as queue and
// the window sits at its floor. So when it has sat there with a queue for PROBE_AFTER_ROUNDS
// rounds, at most every PROBE_INTERVAL_MS, it probes, as BBR's PROBE_RTT does: it lets what is
// in flight land, sends one batch alone, and takes that batch's round trip as the new base.
// Where the receiver is the bottleneck the probe finds the same base again, at the cost of one
// drained window every 10 s.
//
// A state machine with no I/O: the dispatcher passes the monotonic time in.

import { assert } from '../errors.ts';

/** The window never holds fewer batches (what the fixed window of earlier builds allowed). */
export const WINDOW_BATCHES_MIN = 16;
/** The window never holds more batches, however long the link. */
export const WINDOW_BATCHES_MAX = 256;
/** Bytes of batches in flight, at most (one batch may always go out, whatever its size). */
export const WINDOW_BYTES_MAX = 32 * 1024 * 1024;
/** Batches queued on the path below which a window-limited sender grows its window. */
export const QUEUED_BATCHES_LOW = 2;
/** Batches queued on the path above which the window shrinks. */
export const QUEUED_BATCHES_HIGH = 6;
/** Growth per round trip while the link has room: a quarter (16 → 64 batches in 7 round trips). */
const GROWTH_FACTOR = 1.25;
/** Rounds at the floor with a queue on the path before the base round trip is probed afresh. */
export const PROBE_AFTER_ROUNDS = 3;
/** Probes of the base round trip start at most this often (and not sooner after a connection opens). */
export const PROBE_INTERVAL_MS = 10_000;

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
  private inFlightBatches = 0;
  private inFlightBytes = 0;
  private nextSequence = 1;
  private baseRttMs = Number.POSITIVE_INFINITY;
  private lastRoundRttMs = Number.POSITIVE_INFINITY;
  private roundRttMs = Number.POSITIVE_INFINITY;
  /** The round ends with the acknowledgement of the batch sent with this sequence, or later. */
  private roundEndsAtSequence = 1;
  /** The window, not the queue, held events back during this round. */
  private limitedThisRound = false;
  /** Consecutive rounds that ended at the floor with more than QUEUED_BATCHES_HIGH queued. */
  private queuedRoundsAtFloor = 0;
  /** A probe of the base round trip: letting the window land, then one batch alone (its sequence). */
  private probe: { readonly phase: 'draining' } | { readonly phase: 'probing'; readonly sequence: number } | undefined;
  /** When the last probe ended, or the connection opened (monotonic ms); undefined before the first batch. */
  private probedAtMs: number | undefined;

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

  /** Events waited because the window was full: a round with room on the path may grow it. */
  held(): void {
    this.limitedThisRound = true;
  }

  /** A batch of `bytes` went out at `nowMs`; hand the ticket back when it settles. */
  sent(bytes: number, nowMs: number): WindowTicket {
    assert(this.open, 'a batch goes out only while the window is open');
    this.probedAtMs ??= nowMs;
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
      // The batch went alone over an empty path: its round trip is the base, higher or lower.
      this.probe = undefined;
      this.probedAtMs = nowMs;
      this.queuedRoundsAtFloor = 0;
      this.baseRttMs = rttMs;
      this.startRound(rttMs);
      return;
    }
    this.baseRttMs = Math.min(this.baseRttMs, rttMs);
    this.roundRttMs = Math.min(this.roundRttMs, rttMs);
    if (ticket.sequence < this.roundEndsAtSequence || this.probe !== undefined) return;
    this.adjust(ticket.inFlightAtSend, nowMs);
    this.startRound(this.roundRttMs);
  }

  /** A new round begins with what goes out from now on; `lastRoundRttMs` is the one just ended. */
  private startRound(lastRoundRttMs: number): void {
    this.lastRoundRttMs = lastRoundRttMs;
    this.roundRttMs = Number.POSITIVE_INFINITY;
    this.limitedThisRound = false;
    // The next round ends with the acknowledgement of what goes out from now on.
    this.roundEndsAtSequence = this.nextSequence;
  }

  /** The batch failed or its connection was lost: no sample (a probe ends unanswered). */
  abandoned(ticket: WindowTicket): void {
    this.settled(ticket);
    if (this.probe?.phase === 'probing' && this.probe.sequence === ticket.sequence) this.probe = undefined;
  }

  /** A new connection: another path, measured afresh from the floor. */
  reset(): void {
    this.windowBatches = WINDOW_BATCHES_MIN;
    this.inFlightBatches = 0;
    this.inFlightBytes = 0;
    this.baseRttMs = Number.POSITIVE_INFINITY;
    this.lastRoundRttMs = Number.POSITIVE_INFINITY;
    this.roundRttMs = Number.POSITIVE_INFINITY;
    this.roundEndsAtSequence = this.nextSequence;
    this.limitedThisRound = false;
    this.queuedRoundsAtFloor = 0;
    this.probe = undefined;
    this.probedAtMs = undefined;
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

  private adjust(inFlight: number, nowMs: number): void {
    // Little's law: of `inFlight` batches, this many spent the round waiting rather than moving.
    const queued = this.roundRttMs <= 0 ? 0 : inFlight * (1 - this.baseRttMs / this.roundRttMs);
    if (queued < QUEUED_BATCHES_LOW && this.limitedThisRound) {
      this.windowBatches = Math.min(WINDOW_BATCHES_MAX, Math.ceil(this.windowBatches * GROWTH_FACTOR));
    } else if (queued > QUEUED_BATCHES_HIGH) {
      this.windowBatches = Math.max(WINDOW_BATCHES_MIN, this.windowBatches - Math.ceil((queued - QUEUED_BATCHES_HIGH) / 2));
    }
    const queuedAtFloor = this.windowBatches === WINDOW_BATCHES_MIN && queued > QUEUED_BATCHES_HIGH;
    this.queuedRoundsAtFloor = queuedAtFloor ? this.queuedRoundsAtFloor + 1 : 0;
    if (this.queuedRoundsAtFloor >= PROBE_AFTER_ROUNDS && nowMs - (this.probedAtMs ?? nowMs) >= PROBE_INTERVAL_MS) {
      this.probe = { phase: 'draining' };
    }
  }
}
