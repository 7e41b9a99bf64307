// Command-line options of the WAN benchmark (`node bench/wan/main.ts`).

import { parseArgs } from 'node:util';
import type { PeerName } from '../peers.ts';

export type System = 'strait' | 'redis' | 'nats';

export interface WanBenchOptions {
  readonly quick: boolean;
  readonly profile: boolean;
  /** Runs of every measurement but the backlog (one run); the table shows the median. */
  readonly runs: number;
  readonly systems: readonly System[];
  /** Events per Strait (and NATS) throughput run, 100-byte and 1 KiB values. */
  readonly eventsSmall: number;
  readonly eventsLarge: number;
  /** Events per throughput run with RTT injected (100-byte values): as many as at 0 ms, so the ratio compares like with like. */
  readonly eventsRoundTrip: number;
  /** Redis does ~20× Strait's rate: it gets more events per run, so its runs last long enough to time. */
  readonly redisEventsSmall: number;
  readonly redisEventsLarge: number;
  /** Seconds of each lag run. */
  readonly lagSeconds: number;
  /** Events written during the partition. */
  readonly backlogEvents: number;
  /** Client writes kept in flight (Strait puts, NATS publishes awaiting their ack). */
  readonly inFlight: number;
  /** Length of the profiled load (--profile). */
  readonly profileSeconds: number;
  /** Events replicated before the profiled window opens (--profile --after-events N). */
  readonly profileAfterEvents: number;
  /** With --profile: profile the drain of a backlog of this many events instead of the throughput phase (--profile-drain N). */
  readonly profileDrainEvents: number | undefined;
  /** Measure Strait alone, on purpose: no Redis, no NATS, no install (--without-peers). */
  readonly withoutPeers: boolean;
}

export const WAN_USAGE = `Usage: node bench/wan/main.ts [options]

Two Strait sites (strait start) replicating through a WAN proxy, side by side with Redis
primary→replica and NATS JetStream mirroring over a leafnode, each link through the same proxy.
Prints a table and writes bench/results/wan-<timestamp>.json. A missing redis-server,
redis-benchmark or nats-server is installed when running as root (apt-get), otherwise the bench
stops with the command that installs it.

  --quick             1 run of everything, small event counts (backlog 1M), a few minutes
  --runs N            runs of each measurement, median reported (default 3; --quick: 1)
  --backlog-events N  events written during the partition, then the site-1 server restarts with them
                      on disk before the heal (default 10000000, the issue's figure; --quick: 1000000)
  --only LIST         comma-separated systems to measure: strait,redis,nats (default all)
  --without-peers     measure Strait alone: no Redis, no NATS (their columns and the ratios show —)
  --profile           instead: CPU-profile site 1's and site 2's servers during the throughput phase
  --seconds S         length of the profiled load (default 8)
  --after-events N    with --profile: replicate N events first, then profile (default 30000)
  --profile-drain N   with --profile: write N events while the link is cut, heal it, and profile
                      both servers while site 1 drains that backlog (no restart)
  --help              this text
`;

export class WanUsageError extends Error {}

function positiveInteger(text: string | undefined, flag: string, max: number): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) throw new WanUsageError(`${flag} takes an integer from 1 to ${max}, got ${JSON.stringify(text)}`);
  return value;
}

/** Parses the arguments; throws WanUsageError naming the flag; undefined for --help. */
export function parseWanOptions(args: readonly string[]): WanBenchOptions | undefined {
  let values;
  try {
    values = parseArgs({
      args: [...args],
      options: {
        quick: { type: 'boolean', default: false },
        profile: { type: 'boolean', default: false },
        runs: { type: 'string' },
        'backlog-events': { type: 'string' },
        only: { type: 'string' },
        seconds: { type: 'string' },
        'after-events': { type: 'string' },
        'profile-drain': { type: 'string' },
        'without-peers': { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw new WanUsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help === true) return undefined;
  const quick = values.quick === true;
  const systems = (values.only ?? 'strait,redis,nats').split(',').map((name) => name.trim()).filter((name) => name.length > 0);
  for (const system of systems) {
    if (system !== 'strait' && system !== 'redis' && system !== 'nats') throw new WanUsageError(`--only takes strait, redis and nats, got ${JSON.stringify(system)}`);
  }
  const withoutPeers = values['without-peers'] === true;
  if (values['profile-drain'] !== undefined && values.profile !== true) throw new WanUsageError('--profile-drain profiles a drain: it goes with --profile');
  if (withoutPeers && !systems.includes('strait')) {
    throw new WanUsageError(`--without-peers measures Strait alone, but --only ${values.only ?? ''} leaves Strait out`);
  }
  return {
    quick,
    profile: values.profile === true,
    runs: positiveInteger(values.runs, '--runs', 99) ?? (quick ? 1 : 3),
    systems: systems as System[],
    eventsSmall: quick ? 20_000 : 100_000,
    eventsLarge: quick ? 10_000 : 60_000,
    eventsRoundTrip: quick ? 15_000 : 100_000,
    redisEventsSmall: quick ? 300_000 : 1_000_000,
    redisEventsLarge: quick ? 100_000 : 400_000,
    lagSeconds: quick ? 2 : 5,
    backlogEvents: positiveInteger(values['backlog-events'], '--backlog-events', 100_000_000) ?? (quick ? 1_000_000 : 10_000_000),
    inFlight: 256,
    profileSeconds: positiveInteger(values.seconds, '--seconds', 600) ?? 8,
    profileAfterEvents: positiveInteger(values['after-events'], '--after-events', 100_000_000) ?? 30_000,
    profileDrainEvents: positiveInteger(values['profile-drain'], '--profile-drain', 100_000_000),
    withoutPeers,
  };
}

/** The peers a run needs: those --only selects; none with --without-peers or --profile (Strait alone). */
export function peersWanted(options: WanBenchOptions): PeerName[] {
  if (options.profile || options.withoutPeers) return [];
  return options.systems.filter((system): system is PeerName => system === 'redis' || system === 'nats');
}
