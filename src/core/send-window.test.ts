// The send window against a model of the path: a link with a one-way delay (and jitter that
// keeps order, as TCP does) and a receiver that applies one batch at a time in a fixed time.
// The checker: once settled, the window carries what the path can (the receiver's rate, or the
// ceiling of WINDOW_BATCHES_MAX over the round trip) and keeps the receiver's queue short.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PEER_CEILING_MS, PROBE_INTERVAL_MS, QUEUED_BATCHES_HIGH, QUEUED_SHARE_HIGH, SendWindow, WINDOW_BATCHES_MAX, WINDOW_BATCHES_MIN, WINDOW_BYTES_MAX, type WindowTicket } from './send-window.ts';

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
  /** Batches the sender has to send per ms; undefined: an endless backlog. */
  readonly offeredBatchesPerMs?: number;
  /** From `atMs` on, the link's one-way delay is `delayMs` instead (a route changed under an open connection). */
  readonly change?: { readonly atMs: number; readonly delayMs: number };
}

interface PathFigures {
  /** Batches acknowledged per ms over the second half of the run (the last quarter with a `change`). */
  readonly batchesPerMs: number;
  /** Batches waiting at the receiver (not the one it applies), most at once, same span. */
  readonly receiverQueueMax: number;
  /** The same, on average over time. */
  readonly receiverQueueMean: number;
  readonly windowBatches: number;
  /** The largest window over the whole run. */
  readonly windowBatchesMax: number;
  /** Batches in flight at once, most, over the whole run. */
  readonly inFlightMax: number;
  readonly bytesInFlightMax: number;
  readonly window: SendWindow;
  /** When each probe began (model ms). */
  readonly probesAtMs: readonly number[];
}

interface ModelEvent {
  readonly atMs: number;
  readonly order: number;
  readonly run: () => void;
}

/** A binary min-heap of events by time, then by scheduling order. */
class EventHeap {
  private readonly items: ModelEvent[] = [];
  get size(): number {
    return this.items.length;
  }
  push(event: ModelEvent): void {
    const items = this.items;
    items.push(event);
    let index = items.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!EventHeap.before(items[index]!, items[parent]!)) break;
      [items[index], items[parent]] = [items[parent]!, items[index]!];
      index = parent;
    }
  }
  pop(): ModelEvent {
    const items = this.items;
    const top = items[0]!;
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let index = 0;
      for (;;) {
        const left = 2 * index + 1;
        const right = left + 1;
        let smallest = index;
        if (left < items.length && EventHeap.before(items[left]!, items[smallest]!)) smallest = left;
        if (right < items.length && EventHeap.before(items[right]!, items[smallest]!)) smallest = right;
        if (smallest === index) break;
        [items[index], items[smallest]] = [items[smallest]!, items[index]!];
        index = smallest;
      }
    }
    return top;
  }
  private static before(a: ModelEvent, b: ModelEvent): boolean {
    return a.atMs < b.atMs || (a.atMs === b.atMs && a.order < b.order);
  }
}

/** Runs a sender with an endless backlog over the path; a small event loop, time in ms. */
function runPath(model: PathModel): PathFigures {
  const window = new SendWindow();
  const events = new EventHeap();
  let order = 0;
  let nowMs = 0;
  const at = (atMs: number, run: () => void): void => events.push({ atMs, order: order++, run });
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
  let queueIntegral = 0;
  let queueChangedAtMs = 0;
  const queueChanges = (delta: number): void => {
    if (nowMs >= measuredFromMs) queueIntegral += waitingAtReceiver * (nowMs - Math.max(queueChangedAtMs, measuredFromMs));
    queueChangedAtMs = nowMs;
    waitingAtReceiver += delta;
  };
  let acknowledgedLate = 0;
  let bytesInFlightMax = 0;
  let inFlight = 0;
  let inFlightMax = 0;
  let windowBatchesMax = window.batches;
  const measuredFromMs = model.change === undefined ? model.durationMs / 2 : model.durationMs * 0.75;
  const delayMs = (): number => (model.change !== undefined && nowMs >= model.change.atMs ? model.change.delayMs : model.delayMs);
  const probesAtMs: number[] = [];
  const acknowledge = (ticket: WindowTicket): void => {
    inFlight -= 1;
    const probes = window.probes;
    window.acknowledged(ticket, nowMs);
    if (window.probes > probes) probesAtMs.push(nowMs);
    windowBatchesMax = Math.max(windowBatchesMax, window.batches);
    if (nowMs >= measuredFromMs) acknowledgedLate += 1;
    pump();
  };
  const arrive = (ticket: WindowTicket): void => {
    const startMs = Math.max(nowMs, receiverBusyUntilMs);
    receiverBusyUntilMs = startMs + model.serviceMs;
    if (startMs > nowMs) {
      queueChanges(1);
      if (nowMs >= measuredFromMs) receiverQueueMax = Math.max(receiverQueueMax, waitingAtReceiver);
      at(startMs, () => queueChanges(-1));
    }
    lastArrivalToSenderMs = Math.max(lastArrivalToSenderMs, receiverBusyUntilMs + delayMs() + jitter());
    at(lastArrivalToSenderMs, () => acknowledge(ticket));
  };
  // Batches waiting to go out: endless, or as many as the offered load brought so far.
  let waiting = model.offeredBatchesPerMs === undefined ? Number.POSITIVE_INFINITY : 0;
  if (model.offeredBatchesPerMs !== undefined) {
    const everyMs = 1 / model.offeredBatchesPerMs;
    const offer = (): void => {
      waiting += 1;
      pump();
      at(nowMs + everyMs, offer);
    };
    at(0, offer);
  }
  const pump = (): void => {
    while (window.open && waiting > 0) {
      waiting -= 1;
      const ticket = window.sent(model.batchBytes, nowMs);
      inFlight += 1;
      inFlightMax = Math.max(inFlightMax, inFlight);
      bytesInFlightMax = Math.max(bytesInFlightMax, window.status().bytesInFlight);
      lastArrivalToReceiverMs = Math.max(lastArrivalToReceiverMs, nowMs + delayMs() + jitter());
      at(lastArrivalToReceiverMs, () => arrive(ticket));
    }
    if (waiting > 0) window.held();
  };
  pump();
  while (events.size > 0) {
    const event = events.pop();
    if (event.atMs > model.durationMs) break;
    nowMs = event.atMs;
    event.run();
  }
  nowMs = model.durationMs;
  queueChanges(0);
  return {
    batchesPerMs: acknowledgedLate / (model.durationMs - measuredFromMs),
    probesAtMs, receiverQueueMax, receiverQueueMean: queueIntegral / (model.durationMs - measuredFromMs), windowBatches: window.batches, windowBatchesMax, inFlightMax, bytesInFlightMax, window,
  };
}

/** What the path carries at most: the receiver's rate, or the largest window over the round trip. */
function pathCapacity(model: Pick<PathModel, 'delayMs' | 'serviceMs' | 'batchBytes'>): number {
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
  assert.ok(figures.window.probes >= 1, 'it probed');
  const status = figures.window.status();
  assert.ok(status.baseRttMs !== null && status.baseRttMs >= 300 && status.baseRttMs < 305, `base round trip ${status.baseRttMs}`);
  assert.ok(figures.windowBatches >= 256 * 0.9, `window ${figures.windowBatches}`);
  assert.ok(figures.batchesPerMs >= 0.9 * (256 / 301), `throughput ${figures.batchesPerMs} batches/ms in the last quarter`);
});

test('a round trip that rises by a fifth is probed too, not only one that leaves the window at its floor', () => {
  // 101 → 121 ms at 1 batch/ms: the old base made the window settle near 36, far below 121.
  const model = { delayMs: 50, jitterMs: 0, serviceMs: 1, batchBytes: 70_000, durationMs: 120_000, seed: 7, change: { atMs: 20_000, delayMs: 60 } };
  const figures = runPath(model);
  assert.ok(figures.window.probes >= 1, 'it probed');
  const status = figures.window.status();
  assert.ok(status.baseRttMs !== null && status.baseRttMs >= 121 && status.baseRttMs < 123, `base round trip ${status.baseRttMs}`);
  assert.ok(figures.batchesPerMs >= 0.9 * pathCapacity({ ...model, delayMs: 60 }), `throughput ${figures.batchesPerMs} batches/ms in the last quarter`);
});

test('where the receiver is the bottleneck, probes find the same base, and each doubles the interval to the next', () => {
  // 300 ms round trip, 40 ms per batch: the receiver's 25 batches/s need ~8 in flight; the floor is 16.
  const figures = runPath({ delayMs: 150, jitterMs: 0, serviceMs: 40, batchBytes: 70_000, durationMs: 300_000, seed: 6 });
  assert.equal(figures.windowBatches, WINDOW_BATCHES_MIN);
  // Stale after 2 s, then 4, 8 … 80 s apart: at 2, 6, 14, 30, 62, 126, 206, 286 s, eight in 300 s at most.
  assert.ok(figures.window.probes >= 5 && figures.window.probes <= 8, `${figures.window.probes} probes in 300 s`);
  assert.ok(figures.batchesPerMs >= 0.98 / 40, `throughput ${figures.batchesPerMs * 1000} batches/s of 25`);
  const status = figures.window.status();
  assert.ok(status.baseRttMs !== null && status.baseRttMs >= 340 && status.baseRttMs <= 341, `base round trip ${status.baseRttMs}`);
  const short = runPath({ delayMs: 0.2, jitterMs: 0, serviceMs: 3, batchBytes: 70_000, durationMs: 60_000, seed: 8 });
  assert.equal(short.windowBatchesMax, WINDOW_BATCHES_MIN, 'a short link never leaves its floor, not after a probe nor at the start');
  assert.ok(short.batchesPerMs >= 0.98 / 3, `throughput ${short.batchesPerMs} batches/ms of ${1 / 3}`);
});

test('a jump in the round trip is probed at once, however long the probe interval has grown', () => {
  // Receiver-bound (10 ms a batch on a 100 ms link): probes find the same base and back off to
  // 80 s apart. Then the link goes to 300 ms.
  const model = { delayMs: 50, jitterMs: 0, serviceMs: 10, batchBytes: 70_000, durationMs: 400_000, seed: 11, change: { atMs: 300_000, delayMs: 150 } };
  const figures = runPath(model);
  const before = figures.probesAtMs.filter((atMs) => atMs < model.change.atMs);
  assert.ok(before.length >= 5 && before.at(-1)! - before.at(-2)! >= 40_000, `probes backed off: ${before.join(', ')}`);
  const after = figures.probesAtMs.find((atMs) => atMs >= model.change.atMs);
  assert.ok(after !== undefined && after - model.change.atMs < 2_000, `the jump was probed ${after === undefined ? 'never' : `${after - model.change.atMs} ms after it`}`);
  // Below 98%: the new base starts the interval again at 2 s, and each probe idles the receiver
  // for about one 310 ms round trip.
  assert.ok(figures.batchesPerMs >= 0.94 / 10, `the receiver stays busy: ${figures.batchesPerMs * 1000} batches/s of 100`);
});

test('a lightly loaded long link is never probed: its samples keep the base fresh', () => {
  // 100 batches/s offered over a 101 ms round trip: ~10 in flight, never held by the window.
  const figures = runPath({ delayMs: 50, jitterMs: 1, serviceMs: 2, batchBytes: 70_000, durationMs: 120_000, seed: 9, offeredBatchesPerMs: 0.1 });
  assert.ok(figures.batchesPerMs >= 0.099, `it carries the offered load: ${figures.batchesPerMs}`);
  assert.equal(figures.window.probes, 0);
  assert.equal(figures.windowBatchesMax, WINDOW_BATCHES_MIN);
});

test('bytes in flight stay within WINDOW_BYTES_MAX, yet one batch larger than it still goes out', () => {
  const capped = runPath({ delayMs: 50, jitterMs: 0, serviceMs: 0.1, batchBytes: 4 * 1024 * 1024, durationMs: 5_000, seed: 3 });
  assert.ok(capped.bytesInFlightMax <= WINDOW_BYTES_MAX + 4 * 1024 * 1024, `bytes in flight ${capped.bytesInFlightMax}`);
  assert.ok(capped.batchesPerMs >= 0.9 * pathCapacity({ delayMs: 50, serviceMs: 0.1, batchBytes: 4 * 1024 * 1024 }), `it moves: ${capped.batchesPerMs}`);
  // Held by bytes, not by the count: the count does not climb (and the read-ahead with it).
  assert.equal(capped.windowBatchesMax, WINDOW_BATCHES_MIN, `window ${capped.windowBatchesMax} with ${capped.inFlightMax} in flight`);
  const huge = runPath({ delayMs: 1, jitterMs: 0, serviceMs: 1, batchBytes: WINDOW_BYTES_MAX * 2, durationMs: 1_000, seed: 4 });
  assert.equal(huge.bytesInFlightMax, WINDOW_BYTES_MAX * 2, 'one batch at a time');
  assert.ok(huge.batchesPerMs > 0.3, `one at a time still flows: ${huge.batchesPerMs}`);
});

test('any path: the window carries ≥ 90% of what the path can and keeps the receiver\'s queue bounded (property)', () => {
  fc.assert(
    fc.property(
      fc.record({
        delayMs: fc.double({ min: 0, max: 150, noNaN: true }),
        // Jitter up to 3% of (5 ms + the delay): more reads as queue (jitter that keeps order
        // holds later batches back as a queue would), and the window then stays below what the
        // path carries — see the heavy-jitter test below. Six seeds of 60 paths: worst 0.904.
        jitterShare: fc.double({ min: 0, max: 0.03, noNaN: true }),
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
        // The receiver's queue, on average: what the floor puts there on a short path, at most
        // the shrink threshold's worth twice over on a long one. (At its most it is a window:
        // after a probe the whole window goes out at once.)
        const queueBound = Math.max(WINDOW_BATCHES_MIN, 2 * Math.max(QUEUED_BATCHES_HIGH, figures.windowBatchesMax * QUEUED_SHARE_HIGH));
        assert.ok(figures.receiverQueueMean <= queueBound, `${JSON.stringify(path)}: ${figures.receiverQueueMean} queued at the receiver on average, bound ${queueBound}`);
        assert.ok(figures.receiverQueueMax <= figures.windowBatchesMax);
      },
    ),
    { numRuns: 60, seed: 20261203 },
  );
});

test('heavy jitter reads as queue: the window stays below what the path carries, yet carries more than the fixed 16 did', () => {
  // A known limit of a delay-based window (docs/ARCHITECTURE.md, "Send window").
  for (const [delayMs, serviceMs, jitterMs, shareMin] of [[50, 1, 11, 0.3], [100, 1, 21, 0.15], [10, 0.2, 1.5, 0.45]] as const) {
    const model = { delayMs, serviceMs, jitterMs, batchBytes: 70_000, seed: 3, durationMs: 120_000 };
    const figures = runPath(model);
    const share = figures.batchesPerMs / pathCapacity(model);
    const fixedShare = Math.min(1 / serviceMs, WINDOW_BATCHES_MIN / (2 * delayMs + serviceMs + jitterMs)) / pathCapacity(model);
    assert.ok(share >= shareMin && share >= 2 * fixedShare, `delay ${delayMs}, jitter ${jitterMs}: ${share.toFixed(2)} of what the path carries, the fixed window ${fixedShare.toFixed(2)}`);
  }
});

test('a peer that refuses a batch for its own limit caps the window at what was in flight, then lets it grow again', () => {
  const window = new SendWindow();
  let nowMs = 0;
  const tickets: WindowTicket[] = [];
  // Grow on a long path with no queue: acknowledge each round 100 ms after it went out.
  const rounds = (count: number): void => {
    for (let round = 0; round < count; round++) {
      while (window.open) tickets.push(window.sent(1000, nowMs));
      window.held();
      nowMs += 100;
      for (const ticket of tickets.splice(0)) window.acknowledged(ticket, nowMs);
    }
  };
  rounds(12);
  assert.ok(window.batches > 40, `grown to ${window.batches}`);
  for (let n = 0; n < 40; n++) tickets.push(window.sent(1000, nowMs));
  window.abandoned(window.sent(1000, nowMs), nowMs);
  window.cappedByPeer(nowMs);
  assert.equal(window.batches, 40);
  nowMs += 100;
  for (const ticket of tickets.splice(0)) window.acknowledged(ticket, nowMs);
  const cappedAtMs = nowMs;
  while (nowMs < cappedAtMs + PEER_CEILING_MS - 500) {
    rounds(1);
    assert.ok(window.batches <= 40, `no growth past the peer's limit while it holds: ${window.batches}`);
  }
  rounds(20);
  assert.ok(window.batches > 40, `after ${PEER_CEILING_MS} ms it grows again: ${window.batches}`);
  // A new connection's window, from the floor with no base: sender-dispatcher.test.ts, 'a lost
  // connection measures the next one afresh'.
});

test('an abandoned probe ends the probe, and the next waits a whole interval', () => {
  const window = new SendWindow();
  let nowMs = 0;
  const inFlight: WindowTicket[] = [];
  const fill = (): void => {
    while (window.open) inFlight.push(window.sent(1000, nowMs));
    window.held();
  };
  // The receiver is the bottleneck: a batch lands every 10 ms behind 15 others, so no sample
  // comes near the base the first one set.
  fill();
  while (!window.probing && nowMs < 60_000) {
    nowMs += 10;
    window.acknowledged(inFlight.shift()!, nowMs);
    if (!window.probing) fill();
  }
  assert.ok(window.probing, 'a probe began');
  assert.equal(window.open, false, 'the window lets what is in flight land first');
  while (inFlight.length > 0) {
    nowMs += 10;
    window.acknowledged(inFlight.shift()!, nowMs);
  }
  assert.equal(window.open, true);
  const probe = window.sent(1000, nowMs);
  assert.equal(window.open, false, 'the probe batch goes alone');
  window.abandoned(probe, nowMs);
  assert.equal(window.probing, false);
  const abandonedAtMs = nowMs;
  const probes = window.probes;
  fill();
  while (window.probes === probes && nowMs < abandonedAtMs + 60_000) {
    nowMs += 10;
    window.acknowledged(inFlight.shift()!, nowMs);
    if (!window.probing) fill();
  }
  assert.ok(window.probes > probes, 'a later probe came');
  assert.ok(nowMs - abandonedAtMs >= PROBE_INTERVAL_MS, `the next probe came ${nowMs - abandonedAtMs} ms later`);
});
