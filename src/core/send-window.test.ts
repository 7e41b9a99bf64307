// The send window against a model of the path: a link with a one-way delay (and jitter that
// keeps order, as TCP does) and a receiver that applies one batch at a time in a fixed time.
// The checker: once settled, the window carries what the path can (the receiver's rate, or the
// ceiling of WINDOW_BATCHES_MAX over the round trip) and keeps the receiver's queue short.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PROBE_INTERVAL_MS, QUEUED_BATCHES_HIGH, SendWindow, WINDOW_BATCHES_MAX, WINDOW_BATCHES_MIN, WINDOW_BYTES_MAX, type WindowTicket } from './send-window.ts';

interface PathModel {
  /** One-way delay of the link, ms. */
  readonly delayMs: number;
  /** Extra one-way delay drawn per batch in [0, jitterMs]; later batches never overtake earlier ones. */
  readonly jitterMs: number;
  /** The receiver's time to apply one batch, ms. */
  readonly serviceMs: number;
  readonly batchBytes: number;
  readonly durationMs: number;
  readonly seed: number;
  /** From `atMs` on, the link's one-way delay is `delayMs` instead (a route changed under an open connection). */
  readonly change?: { readonly atMs: number; readonly delayMs: number };
}

interface PathFigures {
  /** Batches acknowledged per ms over the second half of the run (the last quarter with a `change`). */
  readonly batchesPerMs: number;
  /** Batches waiting at the receiver (not the one it applies), most at once, second half. */
  readonly receiverQueueMax: number;
  readonly windowBatches: number;
  readonly bytesInFlightMax: number;
  readonly window: SendWindow;
  /** Probes of the base round trip the window started. */
  readonly probes: number;
}

/** Runs a sender with an endless backlog over the path; a small event loop, time in ms. */
export function runPath(model: PathModel): PathFigures {
  const window = new SendWindow();
  const events: { atMs: number; order: number; run: () => void }[] = [];
  let order = 0;
  let nowMs = 0;
  const at = (atMs: number, run: () => void): void => {
    events.push({ atMs, order: order++, run });
  };
  let random = model.seed >>> 0;
  const jitter = (): number => {
    random = (Math.imul(random, 1664525) + 1013904223) >>> 0;
    return (random / 2 ** 32) * model.jitterMs;
  };
  let lastArrivalToReceiverMs = 0;
  let lastArrivalToSenderMs = 0;
  let receiverBusyUntilMs = 0;
  let waitingAtReceiver = 0;
  let receiverQueueMax = 0;
  let acknowledgedLate = 0;
  let bytesInFlightMax = 0;
  const half = model.change === undefined ? model.durationMs / 2 : model.durationMs * 0.75;
  const delayMs = (): number => (model.change !== undefined && nowMs >= model.change.atMs ? model.change.delayMs : model.delayMs);
  let probes = 0;
  let wasProbing = false;
  const acknowledge = (ticket: WindowTicket): void => {
    window.acknowledged(ticket, nowMs);
    if (window.probing && !wasProbing) probes += 1;
    wasProbing = window.probing;
    if (nowMs >= half) acknowledgedLate += 1;
    pump();
  };
  const arrive = (ticket: WindowTicket): void => {
    const startMs = Math.max(nowMs, receiverBusyUntilMs);
    receiverBusyUntilMs = startMs + model.serviceMs;
    if (startMs > nowMs) {
      waitingAtReceiver += 1;
      if (nowMs >= half) receiverQueueMax = Math.max(receiverQueueMax, waitingAtReceiver);
      at(startMs, () => {
        waitingAtReceiver -= 1;
      });
    }
    lastArrivalToSenderMs = Math.max(lastArrivalToSenderMs, receiverBusyUntilMs + delayMs() + jitter());
    at(lastArrivalToSenderMs, () => acknowledge(ticket));
  };
  const pump = (): void => {
    while (window.open) {
      const ticket = window.sent(model.batchBytes, nowMs);
      bytesInFlightMax = Math.max(bytesInFlightMax, window.status().bytesInFlight);
      lastArrivalToReceiverMs = Math.max(lastArrivalToReceiverMs, nowMs + delayMs() + jitter());
      at(lastArrivalToReceiverMs, () => arrive(ticket));
    }
    window.held();
  };
  pump();
  while (events.length > 0) {
    let next = 0;
    for (let index = 1; index < events.length; index++) {
      const candidate = events[index]!;
      const best = events[next]!;
      if (candidate.atMs < best.atMs || (candidate.atMs === best.atMs && candidate.order < best.order)) next = index;
    }
    const [event] = events.splice(next, 1);
    if (event!.atMs > model.durationMs) break;
    nowMs = event!.atMs;
    event!.run();
  }
  return { batchesPerMs: acknowledgedLate / (model.durationMs - half), receiverQueueMax, windowBatches: window.batches, bytesInFlightMax, window, probes };
}

/** What the path carries at most: the receiver's rate, or the largest window over the round trip. */
export function pathCapacity(model: PathModel): number {
  const roundTripMs = 2 * model.delayMs + model.serviceMs;
  const byBytes = Math.max(1, Math.floor(WINDOW_BYTES_MAX / model.batchBytes));
  return Math.min(1 / model.serviceMs, Math.min(WINDOW_BATCHES_MAX, byBytes) / roundTripMs);
}

test('a short link keeps the floor of 16 batches: the receiver is the bottleneck', () => {
  const figures = runPath({ delayMs: 0.1, jitterMs: 0, serviceMs: 2, batchBytes: 70_000, durationMs: 5_000, seed: 1 });
  assert.equal(figures.windowBatches, WINDOW_BATCHES_MIN);
  assert.ok(figures.batchesPerMs > 0.49, `the receiver stays busy: ${figures.batchesPerMs} batches/ms`);
});

test('a 100 ms link grows the window to its bandwidth-delay product, and no further than a few batches past it', () => {
  // 1 batch per ms at the receiver over a 100 ms round trip: ~100 batches must be in flight.
  const figures = runPath({ delayMs: 50, jitterMs: 0, serviceMs: 1, batchBytes: 70_000, durationMs: 20_000, seed: 2 });
  assert.ok(figures.batchesPerMs >= 0.9, `throughput ${figures.batchesPerMs} batches/ms of 1`);
  assert.ok(figures.windowBatches >= 100 && figures.windowBatches <= 101 + 3 * QUEUED_BATCHES_HIGH, `window ${figures.windowBatches}`);
  assert.ok(figures.receiverQueueMax <= 4 * QUEUED_BATCHES_HIGH, `the receiver's queue stayed short: ${figures.receiverQueueMax}`);
  const status = figures.window.status();
  assert.ok(status.baseRttMs !== null && status.baseRttMs >= 101 && status.baseRttMs < 102, `base round trip ${status.baseRttMs}`);
});

test('a round trip that rises for good under an open connection is probed afresh, and the window grows to it', () => {
  // 1 ms, then 300 ms: every sample reads as queue against the old base until a probe.
  const model = { delayMs: 0.5, jitterMs: 0, serviceMs: 1, batchBytes: 70_000, durationMs: 60_000, seed: 5, change: { atMs: 12_000, delayMs: 150 } };
  const figures = runPath(model);
  assert.ok(figures.probes >= 1, 'it probed');
  const status = figures.window.status();
  assert.ok(status.baseRttMs !== null && status.baseRttMs >= 300 && status.baseRttMs < 305, `base round trip ${status.baseRttMs}`);
  assert.ok(figures.windowBatches >= 256 * 0.9, `window ${figures.windowBatches}`);
  assert.ok(figures.batchesPerMs >= 0.9 * (256 / 301), `throughput ${figures.batchesPerMs} batches/ms in the last quarter`);
});

test('where the receiver is the bottleneck, a probe finds the same base and costs little', () => {
  const figures = runPath({ delayMs: 0.2, jitterMs: 0, serviceMs: 3, batchBytes: 70_000, durationMs: 60_000, seed: 6 });
  assert.equal(figures.windowBatches, WINDOW_BATCHES_MIN);
  assert.ok(figures.probes >= 3 && figures.probes <= 60_000 / PROBE_INTERVAL_MS, `${figures.probes} probes in 60 s`);
  assert.ok(figures.batchesPerMs >= 0.98 / 3, `throughput ${figures.batchesPerMs} batches/ms of ${1 / 3}`);
  const status = figures.window.status();
  assert.ok(status.baseRttMs !== null && status.baseRttMs <= 3.4 + 1e-9, `base round trip ${status.baseRttMs}`);
});

test('bytes in flight stay within WINDOW_BYTES_MAX, yet one batch larger than it still goes out', () => {
  const capped = runPath({ delayMs: 50, jitterMs: 0, serviceMs: 0.1, batchBytes: 4 * 1024 * 1024, durationMs: 5_000, seed: 3 });
  assert.ok(capped.bytesInFlightMax <= WINDOW_BYTES_MAX + 4 * 1024 * 1024, `bytes in flight ${capped.bytesInFlightMax}`);
  assert.ok(capped.batchesPerMs > 0, 'it moves');
  const huge = runPath({ delayMs: 1, jitterMs: 0, serviceMs: 1, batchBytes: WINDOW_BYTES_MAX * 2, durationMs: 1_000, seed: 4 });
  assert.equal(huge.bytesInFlightMax, WINDOW_BYTES_MAX * 2, 'one batch at a time');
  assert.ok(huge.batchesPerMs > 0.3, `one at a time still flows: ${huge.batchesPerMs}`);
});

test('any path: the window carries ≥ 90% of what the path can and keeps the receiver\'s queue bounded (property)', () => {
  fc.assert(
    fc.property(
      fc.record({
        delayMs: fc.double({ min: 0, max: 150, noNaN: true }),
        // Jitter as a share of the delay (a LAN's is sub-millisecond): jitter that dwarfs the
        // round trip reads as queue, and the window then stays nearer its floor.
        jitterShare: fc.double({ min: 0, max: 0.1, noNaN: true }),
        serviceMs: fc.double({ min: 0.2, max: 10, noNaN: true }),
        batchBytes: fc.integer({ min: 1_000, max: 600_000 }),
        seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      }),
      ({ jitterShare, ...rest }) => {
        const path = { ...rest, jitterMs: jitterShare * (5 + rest.delayMs) };
        const model = { ...path, durationMs: Math.max(4_000, 60 * (2 * path.delayMs + path.serviceMs + path.jitterMs)) };
        const figures = runPath(model);
        const capacity = pathCapacity(model);
        assert.ok(figures.batchesPerMs >= 0.9 * capacity, `${JSON.stringify(path)}: ${figures.batchesPerMs} batches/ms of ${capacity}`);
        assert.ok(figures.windowBatches >= WINDOW_BATCHES_MIN && figures.windowBatches <= WINDOW_BATCHES_MAX);
        // What a full window can put there at most: the floor on a short path, a few batches plus
        // one growth step on a long one.
        const bandwidthDelayBatches = (2 * path.delayMs + path.serviceMs + 2 * path.jitterMs) / path.serviceMs;
        const queueBound = Math.max(WINDOW_BATCHES_MIN, 4 * QUEUED_BATCHES_HIGH + Math.ceil(0.25 * bandwidthDelayBatches));
        assert.ok(figures.receiverQueueMax <= queueBound, `${JSON.stringify(path)}: ${figures.receiverQueueMax} queued at the receiver, bound ${queueBound}`);
      },
    ),
    { numRuns: 40, seed: 20261203 },
  );
});
