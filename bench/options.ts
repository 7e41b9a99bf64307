// Command-line options of `npm run bench`.

import { parseArgs } from 'node:util';
import type { PeerName } from './peers.ts';

export interface BenchOptions {
  readonly quick: boolean;
  /** Run only the profiling step. */
  readonly profile: boolean;
  /** Operations per one-in-flight run (put and get each, Strait and Redis alike). */
  readonly opsOneInFlight: number;
  /** Operations per pipelined run: PIPELINED_OPS_FACTOR × opsOneInFlight. */
  readonly opsPipelined: number;
  /** Runs of every measurement; the table shows the median. */
  readonly runs: number;
  readonly pipelineDepth: number;
  readonly valueBytes: number;
  /** Distinct keys the Strait runs cycle through. */
  readonly keyCount: number;
  /** Length of the profiled phase. */
  readonly profileSeconds: number;
  /** What the profiled phase does, pipelined (--profile-operation). */
  readonly profileOperation: 'put' | 'get';
  /** Requests outstanding during the profiled phase (--profile-in-flight; default the pipeline depth). */
  readonly profileInFlight: number;
  /** Measure Strait alone, on purpose: no Redis, no install (--without-peers). */
  readonly withoutPeers: boolean;
}

export const USAGE = `Usage: npm run bench -- [options]

Starts a Strait site (a locator and two servers, with strait start) and a Redis primary with
one replica, measures both, prints a table and writes bench/results/<timestamp>.json. A missing
redis-server/redis-benchmark is installed when running as root (apt-get), otherwise the bench
stops with the command that installs it.

  --quick          small run (2000 one-in-flight ops, 1 run), under a minute
  --ops N          operations per one-in-flight run (default 30000); pipelined runs do 10 × N
  --runs N         runs of each measurement, median reported (default 3; --quick: 1)
  --profile        instead: CPU-profile the servers during pipelined puts and print the hottest functions
  --profile-operation put|get
                   what the profiled phase does (default put)
  --profile-in-flight N
                   requests outstanding in the profiled phase (default 64)
  --seconds S      length of the profiled phase (default 5)
  --without-peers  measure Strait alone: no Redis (its column and the ratios show —)
  --help           this text
`;

const PIPELINED_OPS_FACTOR = 10;
const PIPELINE_DEPTH = 64;
const OPS_ONE_IN_FLIGHT_DEFAULT = 30_000;
const OPS_ONE_IN_FLIGHT_QUICK = 2_000;
const RUNS_DEFAULT = 3;
const OPS_MAX = 10_000_000;
const RUNS_MAX = 99;

export class UsageError extends Error {}

function positiveInteger(text: string | undefined, flag: string, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) throw new UsageError(`${flag} takes an integer from 1 to ${max}, got ${JSON.stringify(text)}`);
  return value;
}

/** Parses the arguments; throws UsageError naming the flag; returns undefined for --help. */
export function parseOptions(args: readonly string[]): BenchOptions | undefined {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: {
        quick: { type: 'boolean', default: false },
        profile: { type: 'boolean', default: false },
        ops: { type: 'string' },
        runs: { type: 'string' },
        seconds: { type: 'string' },
        'profile-operation': { type: 'string' },
        'profile-in-flight': { type: 'string' },
        'without-peers': { type: 'boolean', default: false },
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
  const profileOperation = values['profile-operation'] ?? 'put';
  if (profileOperation !== 'put' && profileOperation !== 'get') throw new UsageError(`--profile-operation takes put or get, got ${JSON.stringify(profileOperation)}`);
  const ops = positiveInteger(values.ops, '--ops', OPS_MAX) ?? (quick ? OPS_ONE_IN_FLIGHT_QUICK : OPS_ONE_IN_FLIGHT_DEFAULT);
  return {
    quick,
    profile: values.profile === true,
    opsOneInFlight: ops,
    opsPipelined: ops * PIPELINED_OPS_FACTOR,
    runs: positiveInteger(values.runs, '--runs', RUNS_MAX) ?? (quick ? 1 : RUNS_DEFAULT),
    pipelineDepth: PIPELINE_DEPTH,
    valueBytes: 100,
    keyCount: 10_000,
    profileSeconds: positiveInteger(values.seconds, '--seconds', 600) ?? 5,
    profileOperation,
    profileInFlight: positiveInteger(values['profile-in-flight'], '--profile-in-flight', 4096) ?? PIPELINE_DEPTH,
    withoutPeers: values['without-peers'] === true,
  };
}

/** The peers a run needs: Redis, unless --without-peers or --profile (Strait alone). */
export function peersWanted(options: BenchOptions): PeerName[] {
  return options.profile || options.withoutPeers ? [] : ['redis'];
}
