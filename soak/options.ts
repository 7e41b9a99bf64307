// Command-line options of `npm run soak`. Pure: parsing and validation only, so the rules are
// unit-tested (options.test.ts) without starting anything.

import { parseArgs } from 'node:util';

/** The rows of the fault matrix, in the order they run. */
export const ROW_NAMES = [
  'primary-sender', 'secondary-sender', 'receiver', 'locator', 'site', 'missing-region', 'slow-subscriber',
] as const;
export type RowName = (typeof ROW_NAMES)[number];

export interface SoakOptions {
  readonly quick: boolean;
  readonly rows: readonly RowName[];
  /** How long the load runs in each row, fault and recovery included. */
  readonly durationSeconds: number;
  /** Writes per second, summed over the writers of a row (one per writing site). */
  readonly ratePerSecond: number;
  /** How long a row waits, after the load stops, for every site to hold every acknowledged write. */
  readonly convergeTimeoutSeconds: number;
  /** Seeds the writers' choices (which keys are updated) and the fault's moment within its window. */
  readonly seed: number;
  /** Keep the members' directories (logs, data) even when every row passed. */
  readonly keep: boolean;
}

export const USAGE = `Usage: npm run soak -- [options]

Runs the fault matrix: for each row, two Strait sites (a locator and two servers each, started
with strait start), load written at both, one fault injected mid-load (kill -9, a missing region,
a stalled subscriber), the faulty part restored, then every acknowledged write read back at every
server of every site. Prints a table and writes soak/results/<timestamp>.json. Exits 1 when a
row lost a write, did not converge or failed to run. See docs/RELIABILITY.md.

  --quick               short rows and a small load: the whole matrix in a few minutes
  --rows a,b            run only these rows (${ROW_NAMES.join(', ')})
  --duration-s S        seconds of load per row (default 60; --quick: 20)
  --rate N              writes per second over both sites (default 200; --quick: 50)
  --converge-timeout-s S  seconds to wait for convergence after the load (default 120; --quick: 60)
  --seed N              seed of the writers' and faults' choices (default: random, printed)
  --keep                keep the members' directories even when every row passed
  --help                this text
`;

const DURATION_SECONDS_DEFAULT = 60;
const DURATION_SECONDS_QUICK = 20;
/** Below this a row has no room for a warm-up, a fault window longer than the member timeout and a tail. */
export const DURATION_SECONDS_MIN = 12;
const DURATION_SECONDS_MAX = 86_400;
const RATE_PER_SECOND_DEFAULT = 200;
const RATE_PER_SECOND_QUICK = 50;
const RATE_PER_SECOND_MAX = 100_000;
const CONVERGE_TIMEOUT_SECONDS_DEFAULT = 120;
const CONVERGE_TIMEOUT_SECONDS_QUICK = 60;
const CONVERGE_TIMEOUT_SECONDS_MAX = 86_400;
const SEED_MAX = 2 ** 31 - 1;

export class UsageError extends Error {}

function integerIn(text: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`${flag} takes an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  }
  return value;
}

function parseRows(text: string | undefined): RowName[] {
  if (text === undefined) return [...ROW_NAMES];
  const names = text.split(',').map((name) => name.trim()).filter((name) => name.length > 0);
  if (names.length === 0) {
    throw new UsageError(`--rows takes a comma-separated list of ${ROW_NAMES.join(', ')}, got ${JSON.stringify(text)}`);
  }
  const unknown = names.filter((name) => !(ROW_NAMES as readonly string[]).includes(name));
  if (unknown.length > 0) {
    const named = unknown.map((name) => JSON.stringify(name)).join(', ');
    throw new UsageError(`--rows: unknown row ${named}; the rows are ${ROW_NAMES.join(', ')}`);
  }
  // Matrix order, each row once, whatever order they were named in.
  return ROW_NAMES.filter((name) => names.includes(name));
}

/**
 * Parses the arguments; throws UsageError naming the flag; returns undefined for --help.
 * `randomSeed` supplies the seed when --seed is not given (injected so parsing stays pure).
 */
export function parseOptions(args: readonly string[], randomSeed: () => number): SoakOptions | undefined {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: {
        quick: { type: 'boolean', default: false },
        rows: { type: 'string' },
        'duration-s': { type: 'string' },
        rate: { type: 'string' },
        'converge-timeout-s': { type: 'string' },
        seed: { type: 'string' },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const values = parsed.values;
  if (values.help === true) return undefined;
  const quick = values.quick === true;
  const durationSeconds = integerIn(values['duration-s'], '--duration-s', DURATION_SECONDS_MIN, DURATION_SECONDS_MAX);
  const convergeTimeoutSeconds = integerIn(values['converge-timeout-s'], '--converge-timeout-s', 1, CONVERGE_TIMEOUT_SECONDS_MAX);
  return {
    quick,
    rows: parseRows(values.rows),
    durationSeconds: durationSeconds ?? (quick ? DURATION_SECONDS_QUICK : DURATION_SECONDS_DEFAULT),
    ratePerSecond: integerIn(values.rate, '--rate', 1, RATE_PER_SECOND_MAX) ?? (quick ? RATE_PER_SECOND_QUICK : RATE_PER_SECOND_DEFAULT),
    convergeTimeoutSeconds: convergeTimeoutSeconds ?? (quick ? CONVERGE_TIMEOUT_SECONDS_QUICK : CONVERGE_TIMEOUT_SECONDS_DEFAULT),
    seed: integerIn(values.seed, '--seed', 0, SEED_MAX) ?? randomSeed() % (SEED_MAX + 1),
    keep: values.keep === true,
  };
}

/** The command that repeats a run: the same rows, duration, rate and seed. */
export function reproduceCommand(options: SoakOptions, rows: readonly RowName[] = options.rows): string {
  const { durationSeconds, ratePerSecond, seed } = options;
  return `npm run soak -- --rows ${rows.join(',')} --duration-s ${durationSeconds} --rate ${ratePerSecond} --seed ${seed}`;
}
