// What every simulation treats as a failure of the seed, beyond its own checkers: an exception
// that escaped a member's request handler (a bug the member answered STRAIT_INTERNAL to and
// survived), and a client error that is not a coded operating condition.

import { StraitError } from '../errors.ts';
import { NO_METRICS, type MetricsSink } from '../core/member-admin.ts';
import type { StraitClient } from '../client/client.ts';
import type { Runtime } from '../runtime/runtime.ts';
import type { Simulator } from './simulator.ts';

/** Metrics for a simulated member: internal errors are recorded in `failures`. */
export function checkingMetrics(member: string, failures: string[]): MetricsSink {
  return {
    ...NO_METRICS,
    internalError(where, error) {
      const text = error instanceof Error ? `${error.message}\n${error.stack ?? ''}` : String(error);
      failures.push(`${member}: internal error in ${where}: ${text}`);
    },
  };
}

/**
 * A client operation failed: fine when it is a coded operating condition (a timeout, a member
 * not ready); anything else — an uncoded exception, STRAIT_INTERNAL — is recorded in `failures`.
 */
export function noteClientFailure(writer: string, error: unknown, failures: string[]): void {
  if (error instanceof StraitError && error.code !== 'STRAIT_INTERNAL') return;
  failures.push(`${writer}: the client saw ${error instanceof StraitError ? `${error.code}: ${error.message}` : String(error)}`);
}

/**
 * A fault of the simulations: every few seconds until `endMs`, a client asks for a rebalance
 * (copies and primaries of the partitioned regions move, as after `strait rebalance`). A
 * refusal (no coordinator, a partition) is expected under faults; it is not counted.
 */
export async function rebalanceWorker(sim: Simulator, client: StraitClient, runtime: Runtime, endMs: number, stats: { rebalances: number }): Promise<void> {
  while (sim.nowMs < endMs) {
    await new Promise<void>((resolve) => runtime.setTimer(3000 + sim.random.int(4000), resolve));
    if (sim.nowMs >= endMs) return;
    try {
      const result = await client.rebalance();
      if (result.regions.some((region) => region.moves.length + region.primaryMoves.length > 0)) stats.rebalances += 1;
    } catch {
      // Refused or unanswered during a fault: the next one tries again.
    }
  }
}
