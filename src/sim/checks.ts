// What every simulation treats as a failure of the seed, beyond its own checkers: an exception
// that escaped a member's request handler (a bug the member answered STRAIT_INTERNAL to and
// survived), and a client error that is not a coded operating condition.

import { StraitError } from '../errors.ts';
import { NO_METRICS, type MetricsSink } from '../core/member-admin.ts';

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
