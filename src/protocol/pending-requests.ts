// The requests one connection sent and still awaits answers to, and those it must hold until
// the handshake ends (only then is the peer's frame limit known).
//
// Guarantees: ids are issued in increasing order from 1, and requests are kept in issue order,
// which is also deadline order (every request gets the connection's one request timeout), so
// expiring stops at the first request still within its deadline. A request leaves the table
// exactly once — answered, refused before sending, expired or failed at close — and whoever
// takes it out calls its callback, so no callback runs twice.

import type { StraitError } from '../errors.ts';
import type { Envelope, RequestOp } from './messages.ts';

export interface PendingRequest {
  readonly op: RequestOp;
  readonly deadline: number;
  readonly callback: (error: StraitError | undefined, body: unknown) => void;
}

/** A request written before the handshake told us the peer's frame limit. */
export interface QueuedRequest {
  readonly envelope: Envelope;
  readonly id: number;
}

export class PendingRequests {
  private readonly byId = new Map<number, PendingRequest>();
  /** Requests issued before the handshake completed, sent once it does. */
  private queued: QueuedRequest[] = [];
  private nextId = 1;

  /** Requests awaiting an answer. */
  get size(): number {
    return this.byId.size;
  }

  /** Registers a request under a new id, which it returns. */
  add(request: PendingRequest): number {
    const id = this.nextId++;
    this.byId.set(id, request);
    return id;
  }

  has(id: number): boolean {
    return this.byId.has(id);
  }

  /** Removes request `id` and returns it; undefined when it is gone already (timed out). */
  take(id: number): PendingRequest | undefined {
    const request = this.byId.get(id);
    this.byId.delete(id);
    return request;
  }

  /** Holds a request's envelope until the handshake completes. */
  hold(request: QueuedRequest): void {
    this.queued.push(request);
  }

  /** The held requests in issue order; none are held afterwards. */
  takeHeld(): QueuedRequest[] {
    const queued = this.queued;
    this.queued = [];
    return queued;
  }

  dropHeld(): void {
    this.queued = [];
  }

  /**
   * Removes each request whose deadline is not after `now`, oldest first, and hands it to
   * `expired`. A callback may add requests or empty the table (by closing the connection)
   * meanwhile: the walk sees the table as it is.
   */
  expire(now: number, expired: (request: PendingRequest) => void): void {
    for (const [id, request] of this.byId) {
      if (request.deadline > now) break;
      this.byId.delete(id);
      expired(request);
    }
  }

  /** Removes every request and returns them in issue order (the connection closed). */
  takeAll(): PendingRequest[] {
    const requests = [...this.byId.values()];
    this.byId.clear();
    return requests;
  }
}
