// The simulator's event queue: every timer, delivery and callback of a simulation is one queued
// event, run in (virtual time, sequence number) order, so events due at the same time run
// first-scheduled first and a seed replays the same order. An event belongs to a process (its
// `EventOwner`) or to nobody; the events of a process that died are dropped, never run.

import type { Timer } from '../runtime/runtime.ts';

/** The process an event belongs to; its events are skipped once it is no longer alive. */
export interface EventOwner {
  readonly alive: boolean;
  readonly hostName: string;
}

/** What the network needs from the simulator: virtual time and its event queue. */
export interface EventScheduler {
  readonly nowMs: number;
  /** Runs `callback` after `delayMs` of virtual time unless `owner` has died by then. Ties run in scheduling order. */
  schedule(delayMs: number, callback: () => void, owner: EventOwner | undefined): Timer;
}

export class QueuedEvent implements Timer {
  readonly timeMs: number;
  readonly sequence: number;
  readonly callback: () => void;
  readonly owner: EventOwner | undefined;
  cancelled = false;

  constructor(timeMs: number, sequence: number, callback: () => void, owner: EventOwner | undefined) {
    this.timeMs = timeMs;
    this.sequence = sequence;
    this.callback = callback;
    this.owner = owner;
  }

  cancel(): void {
    this.cancelled = true;
  }

  get live(): boolean {
    return !this.cancelled && (this.owner === undefined || this.owner.alive);
  }
}

function runsBefore(left: QueuedEvent, right: QueuedEvent): boolean {
  return left.timeMs < right.timeMs || (left.timeMs === right.timeMs && left.sequence < right.sequence);
}

/** A binary min-heap of events keyed by (time, sequence). */
export class EventQueue {
  private readonly heap: QueuedEvent[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(event: QueuedEvent): void {
    const heap = this.heap;
    let index = heap.length;
    heap.push(event);
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex] as QueuedEvent;
      if (!runsBefore(event, parent)) break;
      heap[index] = parent;
      index = parentIndex;
    }
    heap[index] = event;
  }

  /** The next event that will run, dropping cancelled ones and those of dead processes. */
  peekLive(): QueuedEvent | undefined {
    let head = this.heap[0];
    while (head !== undefined && !head.live) {
      this.pop();
      head = this.heap[0];
    }
    return head;
  }

  pop(): QueuedEvent | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let index = 0;
    const length = heap.length;
    for (;;) {
      const leftIndex = 2 * index + 1;
      if (leftIndex >= length) break;
      const rightIndex = leftIndex + 1;
      let childIndex = leftIndex;
      if (rightIndex < length && runsBefore(heap[rightIndex] as QueuedEvent, heap[leftIndex] as QueuedEvent)) {
        childIndex = rightIndex;
      }
      const child = heap[childIndex] as QueuedEvent;
      if (!runsBefore(child, last)) break;
      heap[index] = child;
      index = childIndex;
    }
    heap[index] = last;
    return top;
  }
}
