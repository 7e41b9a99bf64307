// Drives a Simulator while real promise chains (the TypeScript client) run between its events:
// one event, then a macrotask turn so every continuation it caused has run. Deterministic,
// because nothing but simulated events feeds those chains.

import { setImmediate as flushMacrotask } from 'node:timers/promises';
import type { Simulator } from './simulator.ts';

/** Advances virtual time to `untilMs` (or until `until()` holds), one event at a time. */
export async function advanceWithPromises(sim: Simulator, untilMs: number, until?: () => boolean): Promise<void> {
  for (;;) {
    if (until?.() === true) return;
    const result = sim.run({ untilMs, maxSteps: 1 });
    await flushMacrotask();
    if (result.reason === 'time' || result.reason === 'idle') {
      // Flushed promise chains may have scheduled new events before untilMs.
      const again = sim.run({ untilMs, maxSteps: 1 });
      await flushMacrotask();
      if (again.steps === 0) return;
    }
  }
}
