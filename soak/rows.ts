// The fault matrix: what each row declares (sites, who writes, value size) and the fault it
// injects mid-load, with the recovery that follows. A fault returns what it did, in words that
// name the member and pid, and a `recover` that restores what it broke.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Cleanup, waitForExit } from '../bench/processes.ts';
import { Grid, SOAK_REGION, type Member, type SiteId, type SiteSettings } from './grid.ts';
import type { RowName } from './options.ts';

/** Values of most rows: small, so the rate is what loads the grid. */
const VALUE_BYTES_DEFAULT = 256;
/** Share of writes that update an existing key, in most rows. */
const UPDATE_SHARE_DEFAULT = 0.2;
/**
 * The slow subscriber holds this many subscriptions to the region on its one connection (an
 * application with several listeners), so each change is pushed to it this many times.
 */
const SLOW_SUBSCRIPTIONS = 4;
/**
 * Bytes per second of events pushed to the slow subscriber, whatever the rate: its row's values
 * are sized from it, so what its server has to hold grows about this fast while it is stalled.
 */
const SLOW_SUBSCRIBER_EVENT_BYTES_PER_SECOND = 12 * 1024 * 1024;
const SLOW_SUBSCRIBER_VALUE_BYTES_MIN = 1024;
const SLOW_SUBSCRIBER_VALUE_BYTES_MAX = 256 * 1024;
/**
 * The slow subscriber's row mostly updates keys it already wrote, so the region stays small and
 * what grows in memory is what the servers hold for their subscribers, not the data.
 */
const UPDATE_SHARE_SLOW_SUBSCRIBER = 0.9;

/** The slow-subscriber row's value size at `ratePerSecond` writes per second. */
export function slowSubscriberValueBytes(ratePerSecond: number): number {
  const bytes = Math.round(SLOW_SUBSCRIBER_EVENT_BYTES_PER_SECOND / (SLOW_SUBSCRIPTIONS * ratePerSecond));
  return Math.min(SLOW_SUBSCRIBER_VALUE_BYTES_MAX, Math.max(SLOW_SUBSCRIBER_VALUE_BYTES_MIN, bytes));
}
/** How long the slow subscriber may take to subscribe. */
const SUBSCRIBER_READY_TIMEOUT_MS = 30_000;
/** How long after killing the slow subscriber its server's connection count is read again. */
const CONNECTION_CLOSE_GRACE_MS = 2_000;
/** How long the region may take to reach every server of site 2 once created. */
const REGION_CREATE_TIMEOUT_MS = 30_000;

const IN_MEMORY: SiteSettings = { hasRegion: true, regionPersistent: false, sends: true, queuePersistent: false };
const PERSISTENT: SiteSettings = { hasRegion: true, regionPersistent: true, sends: true, queuePersistent: true };

export interface FaultContext {
  readonly grid: Grid;
  readonly cleanup: Cleanup;
}

export interface InjectedFault {
  /** What was done, naming members and pids. */
  readonly description: string;
  /** A member whose memory the row's notes show on their own (the slow subscriber's server). */
  readonly watchedMember?: string;
  /** Restores what the fault broke; resolves with what it did. */
  recover(): Promise<string>;
}

export interface RowDefinition {
  readonly name: RowName;
  /** One line: the fault and its recovery. */
  readonly summary: string;
  readonly sites: Readonly<Record<SiteId, SiteSettings>>;
  /** Sites whose load generator writes (the rate is shared among them). */
  readonly writingSites: readonly SiteId[];
  /** Bytes of each value, at the run's total rate. */
  valueBytes(ratePerSecond: number): number;
  /** Share of writes that update a key rather than create one. */
  readonly updateShare: number;
  inject(context: FaultContext): Promise<InjectedFault>;
}

function describe(members: readonly Member[]): string {
  return members.map((member) => `${member.name} (pid ${member.pid})`).join(', ');
}

/** kill -9 of `members` at once; the recovery restarts them in order, in their directories. */
async function killAndRestart(context: FaultContext, members: readonly Member[], why: string): Promise<InjectedFault> {
  const named = describe(members);
  await context.grid.kill(members);
  return {
    description: `kill -9 ${named} — ${why}`,
    recover: async () => {
      for (const member of members) await context.grid.restart(member);
      return `restarted ${describe(members)} with strait start in the same directories`;
    },
  };
}

/** Starts the slow subscriber at site 2, waits until it subscribed, and stops it with SIGSTOP. */
async function stallSubscriber(context: FaultContext): Promise<InjectedFault> {
  const script = fileURLToPath(new URL('./slow-subscriber.ts', import.meta.url));
  const args = [script, '--locators', context.grid.locatorAddress(2), '--region', SOAK_REGION, '--subscriptions', String(SLOW_SUBSCRIPTIONS)];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the slow subscriber');
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-2000)));
  const kill = async (): Promise<void> => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return; // already gone
    }
    if (!(await waitForExit(pid, 10_000))) throw new Error(`slow subscriber (pid ${pid}) still runs after SIGKILL`);
  };
  context.cleanup.add('slow subscriber', pid, kill);
  const server = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`slow subscriber did not subscribe within ${SUBSCRIBER_READY_TIMEOUT_MS} ms: ${stderr}`));
    }, SUBSCRIBER_READY_TIMEOUT_MS);
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      if (line.startsWith('subscribed ')) resolve(line.slice('subscribed '.length));
      else reject(new Error(`slow subscriber: ${line} ${stderr}`));
    });
    child.once('exit', (status) => {
      clearTimeout(timer);
      reject(new Error(`slow subscriber exited with ${status}: ${stderr}`));
    });
  });
  process.kill(pid, 'SIGSTOP');
  const serverMember = context.grid.member(server);
  const connections = async (): Promise<string> => String(await context.grid.metric(serverMember, 'strait_client_connections') ?? 'unknown');
  return {
    description: `slow subscriber (pid ${pid}) subscribed ${SLOW_SUBSCRIPTIONS} times to ${SOAK_REGION} at ${server} (site 2), ` +
      'then stopped with SIGSTOP: its connection stays open, nothing is read',
    watchedMember: server,
    recover: async () => {
      const before = await connections();
      await context.cleanup.stop(pid);
      // Did the server notice its consumer is gone? Its client connection count says.
      await new Promise((resolve) => setTimeout(resolve, CONNECTION_CLOSE_GRACE_MS));
      return `killed the slow subscriber (pid ${pid}, SIGKILL); ${server}'s strait_client_connections ${before} before, ` +
        `${await connections()} ${CONNECTION_CLOSE_GRACE_MS / 1000} s after`;
    },
  };
}

export const ROWS: readonly RowDefinition[] = [
  {
    name: 'primary-sender',
    summary: 'kill -9 the server of site 1 hosting the primary of to-site-2; restart it',
    sites: { 1: IN_MEMORY, 2: IN_MEMORY },
    writingSites: [1, 2],
    valueBytes: () => VALUE_BYTES_DEFAULT,
    updateShare: UPDATE_SHARE_DEFAULT,
    inject: async (context) => {
      return killAndRestart(context, [await context.grid.primarySender(1)], 'the primary sender to site 2; the secondary must take over');
    },
  },
  {
    name: 'secondary-sender',
    summary: 'kill -9 the server of site 1 hosting the secondary of to-site-2; restart it',
    sites: { 1: IN_MEMORY, 2: IN_MEMORY },
    writingSites: [1, 2],
    valueBytes: () => VALUE_BYTES_DEFAULT,
    updateShare: UPDATE_SHARE_DEFAULT,
    inject: async (context) => killAndRestart(context, [await context.grid.secondarySender(1)], 'a secondary sender to site 2'),
  },
  {
    name: 'receiver',
    summary: 'kill -9 the server of site 2 whose receiver holds site 1\'s sender connection; restart it',
    sites: { 1: IN_MEMORY, 2: IN_MEMORY },
    writingSites: [1, 2],
    valueBytes: () => VALUE_BYTES_DEFAULT,
    updateShare: UPDATE_SHARE_DEFAULT,
    inject: async (context) => {
      const why = 'the receiving server of site 1 → site 2; the sender must move to the other receiver';
      return killAndRestart(context, [await context.grid.receivingServer(1)], why);
    },
  },
  {
    name: 'locator',
    summary: 'kill -9 site 1\'s locator (its only one); restart it on the same port',
    sites: { 1: IN_MEMORY, 2: IN_MEMORY },
    writingSites: [1, 2],
    valueBytes: () => VALUE_BYTES_DEFAULT,
    updateShare: UPDATE_SHARE_DEFAULT,
    inject: async (context) => killAndRestart(context, [context.grid.member('locator-1')], 'site 1\'s only locator'),
  },
  {
    name: 'site',
    summary: 'kill -9 every process of site 1 at once (persistent region and queues); restart them in the same directories',
    sites: { 1: PERSISTENT, 2: PERSISTENT },
    writingSites: [1, 2],
    valueBytes: () => VALUE_BYTES_DEFAULT,
    updateShare: UPDATE_SHARE_DEFAULT,
    inject: async (context) => {
      const site1 = context.grid.members.filter((member) => member.site === 1);
      // The locator first, then the servers: the order `strait start` needs on restart.
      const ordered = [...site1.filter((member) => member.role === 'locator'), ...site1.filter((member) => member.role === 'server')];
      return killAndRestart(context, ordered, 'all of site 1; site 2 keeps writing and queues for it');
    },
  },
  {
    name: 'missing-region',
    summary: 'site 2 lacks the region (site 1 → site 2 only); create it at site 2, then replay the dead letters',
    sites: { 1: IN_MEMORY, 2: { hasRegion: false, regionPersistent: false, sends: false, queuePersistent: false } },
    writingSites: [1],
    valueBytes: () => VALUE_BYTES_DEFAULT,
    updateShare: UPDATE_SHARE_DEFAULT,
    inject: async (context) => {
      const deadLetters = await context.grid.deadLetters(1);
      return {
        description: `site 2 has had no region ${SOAK_REGION} since the start; site 1's sender holds ${deadLetters} dead letters so far`,
        recover: async () => {
          const before = await context.grid.deadLetters(1);
          const created = await context.grid.createRegion(2, false);
          if (!(await context.grid.waitRegionEverywhere(2, REGION_CREATE_TIMEOUT_MS))) {
            throw new Error(`${SOAK_REGION} not on every server of site 2 within ${REGION_CREATE_TIMEOUT_MS} ms of ${created}`);
          }
          const replayed = await context.grid.replayDeadLetters(1);
          return `${before} dead letters at site 1; ${created}; ${replayed}`;
        },
      };
    },
  },
  {
    name: 'slow-subscriber',
    summary: `a subscriber at site 2 (${SLOW_SUBSCRIPTIONS} subscriptions on one connection) stops reading (SIGSTOP) ` +
      'with its connection open; killed at recovery',
    sites: { 1: IN_MEMORY, 2: IN_MEMORY },
    writingSites: [1, 2],
    valueBytes: slowSubscriberValueBytes,
    updateShare: UPDATE_SHARE_SLOW_SUBSCRIBER,
    inject: stallSubscriber,
  },
];

export function rowDefinition(name: RowName): RowDefinition {
  const row = ROWS.find((candidate) => candidate.name === name);
  if (row === undefined) throw new Error(`no row ${name}`);
  return row;
}
