// When a row injects its fault and recovers, from the row's duration and seed. Pure (timeline.test.ts).
//
// The fault comes at 20–30 % of the duration (drawn from the row's seed), after a warm-up in
// which both directions carry load; the fault window lasts 30 % of the duration but at least
// 6 s, so a killed member outlives the 5 s member timeout and the site removes it from the
// view, as it would in production; at least 2 s of load follow the recovery.

import type { Random } from '../src/runtime/runtime.ts';

const FAULT_AT_SHARE_MIN = 0.2;
const FAULT_AT_SHARE_MAX = 0.3;
const FAULT_WINDOW_SHARE = 0.3;
/** Longer than the members' 5 s member timeout, so the site notices a killed member is gone. */
export const FAULT_WINDOW_MS_MIN = 6_000;
/** Load kept after the recovery, at least. */
export const TAIL_MS_MIN = 2_000;
/** Load before the fault, at least. */
export const WARM_UP_MS_MIN = 1_000;

export interface RowTimeline {
  /** Ms from the start of the load. */
  readonly faultAtMs: number;
  readonly recoverAtMs: number;
  readonly durationMs: number;
}

export function rowTimeline(durationSeconds: number, random: Random): RowTimeline {
  const durationMs = durationSeconds * 1000;
  const share = FAULT_AT_SHARE_MIN + random.next() * (FAULT_AT_SHARE_MAX - FAULT_AT_SHARE_MIN);
  const windowMs = Math.max(FAULT_WINDOW_MS_MIN, FAULT_WINDOW_SHARE * durationMs);
  const recoverAtMs = Math.min(durationMs - TAIL_MS_MIN, share * durationMs + windowMs);
  return { faultAtMs: Math.max(WARM_UP_MS_MIN, recoverAtMs - windowMs), recoverAtMs, durationMs };
}
