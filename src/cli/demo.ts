// `strait demo`: two sites on this machine, replicating region TEST both ways, so a newcomer
// can watch WAN replication in one command.
//
// Site 1 and site 2 each get a locator and two servers, started through the same code path as
// `strait start`, in a temporary directory, on free ports. Each locator knows its `site-id` and
// the other site's locator (`remote-locators`); each server hosts TEST with a gateway sender to
// the other site and a gateway receiver on a free port range. The demo then shows one live line
// per direction (queue, lag, events/s of the primary sender).
//
// Stopping: on Ctrl-C (SIGINT), SIGTERM or SIGHUP, when its standard output goes away (the reader
// of `strait demo | tee demo.log` died), or when it fails, the demo stops every member it
// started, by the pid it recorded: servers first, so the locators see clean leaves. The members
// run detached (a process group of their own), so nothing else stops them: the demo must outlive
// its terminal and its output to do so, and later signals are acknowledged, not obeyed.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { type StraitClient } from '../client/client.ts';
import { connect } from '../client/connect.ts';
import type { SenderStatus } from '../protocol/messages.ts';
import { formatAddress, type Address } from '../runtime/runtime.ts';
import { prepareStart, startCommand, startFailureLines } from './member-commands.ts';
import { START_TIMEOUT_MS_DEFAULT, STOP_TIMEOUT_MS_DEFAULT, stopProcess } from './process-control.ts';
import { CONFIG_FILE_NAME, isStraitProcessAlive, pidFilePath, removePidIfOwned } from './member-files.ts';
import type { MemberRole } from '../config/member-config.ts';
import { describeError, EXIT_FAILURE } from './report.ts';
import { keepRunningWithoutOutput, onStdoutGone, standardOutput, writeOut } from './standard-output.ts';

const DEMO_REGION = 'TEST';
const DEMO_HOST = '127.0.0.1';
const DEMO_SITES = [1, 2] as const;
const SERVERS_PER_SITE = 2;
/** Ports in each site's gateway-receiver range: one per server, and spares. */
const RECEIVER_PORT_RANGE_SIZE = 4;
/** Free-port searches give up after this many tries. */
const FREE_PORT_TRIES_MAX = 50;
/** The live lines are redrawn this often on a terminal ... */
const REFRESH_INTERVAL_MS = 1000;
/** ... and printed this often when standard output is a file or a pipe. */
const PRINT_INTERVAL_MS = 5000;
const STATUS_REQUEST_TIMEOUT_MS = 2000;

interface Started {
  readonly role: MemberRole;
  readonly name: string;
  readonly dir: string;
  readonly pid: number;
}

/** Signals that stop the demo: Ctrl-C, `kill`, and the terminal going away. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

const output = standardOutput;

function senderId(toSite: number): string {
  return `to-site-${toSite}`;
}

function otherSite(site: number): number {
  return site === 1 ? 2 : 1;
}

/** Binds and releases a port: free now (another process may still take it before we do). */
function probePort(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, DEMO_HOST, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address !== null ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}

async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < FREE_PORT_TRIES_MAX; attempt++) {
    const port = await probePort(0);
    if (port !== undefined) return port;
  }
  throw new Error(`no free port on ${DEMO_HOST}`);
}

/** The first port of `size` consecutive free ports. */
async function freePortRange(size: number, taken: ReadonlySet<number>): Promise<number> {
  for (let attempt = 0; attempt < FREE_PORT_TRIES_MAX; attempt++) {
    const first = await freePort();
    if (first + size - 1 > 65535) continue;
    let free = true;
    for (let port = first; port < first + size && free; port++) free = !taken.has(port) && (port === first || (await probePort(port)) === port);
    if (free) return first;
  }
  throw new Error(`no ${size} consecutive free ports on ${DEMO_HOST}`);
}

function serverConfig(site: number, receiverStartPort: number): string {
  const remote = otherSite(site);
  return [
    `# strait demo: site ${site}, replicating ${DEMO_REGION} to site ${remote} and receiving from it`,
    'regions:',
    `  ${DEMO_REGION}: { type: replicate, gateway-sender-ids: [${senderId(remote)}] }`,
    'gateway-senders:',
    `  ${senderId(remote)}: { remote-site-id: ${remote}, batch-size: 100, batch-time-interval: 50 }`,
    `gateway-receiver: { start-port: ${receiverStartPort}, end-port: ${receiverStartPort + RECEIVER_PORT_RANGE_SIZE - 1} }`,
    '',
  ].join('\n');
}

/**
 * Stops one member by the pid recorded when it started (a clean leave; SIGKILL if it takes longer
 * than STOP_TIMEOUT_MS_DEFAULT), and removes its pid file if that still names it.
 */
async function stopStarted(member: Started): Promise<void> {
  if (!isStraitProcessAlive(member.pid)) {
    output.out(`${member.role} ${member.name} (pid ${member.pid}) had exited already`);
  } else {
    const what = `the ${member.role} ${member.name} (pid ${member.pid})`;
    const killed = await stopProcess(member.pid, what, STOP_TIMEOUT_MS_DEFAULT, true);
    output.out(`${killed ? 'killed' : 'stopped'} ${member.role} ${member.name} (pid ${member.pid})`);
  }
  removePidIfOwned(pidFilePath(member.dir, member.role), member.pid);
}

/** Stops every member the demo started: all servers, then all locators. */
async function stopAll(started: readonly Started[]): Promise<void> {
  for (const role of ['server', 'locator'] as const) {
    await Promise.all(
      started
        .filter((member) => member.role === role)
        .map(async (member) => {
          try {
            await stopStarted(member);
          } catch (error) {
            const { code, message } = describeError(error);
            output.err(`error ${code}: ${message}`);
          }
        }),
    );
  }
}

/** What one direction's line is computed from: the primary's figures at the last refresh. */
interface Direction {
  readonly from: number;
  readonly to: number;
  readonly client: StraitClient;
  lastSent: number | undefined;
  lastAtMs: number;
}

function primaryOf(copies: readonly SenderStatus[]): SenderStatus | undefined {
  return copies.find((copy) => copy.role === 'primary') ?? copies[0];
}

async function directionLine(direction: Direction): Promise<string> {
  const label = `site ${direction.from} → site ${direction.to}`;
  let copies: SenderStatus[];
  try {
    copies = await direction.client.gatewaySenders(senderId(direction.to), { signal: AbortSignal.timeout(STATUS_REQUEST_TIMEOUT_MS) });
  } catch (error) {
    return `${label}: unavailable (${describeError(error).code})`;
  }
  const primary = primaryOf(copies);
  if (primary === undefined) return `${label}: no sender answered`;
  const now = performance.now();
  let rate = 0;
  if (direction.lastSent !== undefined && now > direction.lastAtMs) {
    rate = Math.max(0, ((primary.eventsSent - direction.lastSent) * 1000) / (now - direction.lastAtMs));
  }
  direction.lastSent = primary.eventsSent;
  direction.lastAtMs = now;
  const state = primary.state === 'running' ? '' : `, ${primary.state}`;
  const problem = primary.problem === null ? '' : ` — ${primary.problem}`;
  return `${label}: queue ${primary.queueEvents}, lag ${primary.lagMs} ms, ${Math.round(rate)} events/s, ${primary.eventsSent} sent${state}${problem}`;
}

/** Why the demo stops: a signal, or its standard output gone. */
interface StopRequest {
  /** Resolves with the reason on the first request to stop. */
  readonly promise: Promise<string>;
  readonly received: () => boolean;
}

/**
 * Resolves on the first SIGINT, SIGTERM or SIGHUP, or when standard output goes away. Later
 * signals are acknowledged, not obeyed: the demo must get to stop the members it started rather
 * than exit and leave them running. (Listening for a signal also replaces its default action,
 * which for all three is to end the process at once.)
 */
function stopRequests(): StopRequest {
  let got = false;
  const promise = new Promise<string>((resolvePromise) => {
    const request = (reason: string): void => {
      if (got) {
        output.err(`${reason}: still stopping the members the demo started; please wait`);
        return;
      }
      got = true;
      resolvePromise(reason);
    };
    for (const signal of STOP_SIGNALS) process.on(signal, request);
    onStdoutGone(() => request('standard output closed'));
  });
  return { promise, received: () => got };
}

async function showLiveLines(directions: readonly Direction[], stop: Promise<string>): Promise<void> {
  const terminal = process.stdout.isTTY === true;
  let drawn = 0;
  let stopped = false;
  void stop.then(() => {
    stopped = true;
  });
  let lastPrintMs = -Infinity;
  while (!stopped) {
    const lines = await Promise.all(directions.map(directionLine));
    if (stopped) break;
    if (terminal) {
      // Move up over the previous lines and redraw them in place.
      if (drawn > 0) writeOut(`\x1b[${drawn}A`);
      for (const line of lines) writeOut(`\x1b[2K${line}\n`);
      drawn = lines.length;
    } else if (performance.now() - lastPrintMs >= PRINT_INTERVAL_MS - 1) {
      lastPrintMs = performance.now();
      for (const line of lines) output.out(line);
    }
    await Promise.race([stop, new Promise((resolve) => setTimeout(resolve, REFRESH_INTERVAL_MS))]);
  }
}

interface DemoOptions {
  /** Parent of the members' directories; a new temporary directory when undefined. */
  readonly dir: string | undefined;
}

/** Runs the demo until asked to stop; every member it started is stopped before it returns. */
async function runDemo(options: DemoOptions): Promise<number> {
  // From the first member on, stopping them matters more than printing.
  keepRunningWithoutOutput();
  const stop = stopRequests();
  const root = options.dir === undefined ? mkdtempSync(join(tmpdir(), 'strait-demo-')) : resolve(options.dir);
  mkdirSync(root, { recursive: true });
  const started: Started[] = [];
  const clients: StraitClient[] = [];
  try {
    return await startSitesAndShow(root, started, clients, stop);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    output.out('');
    await stopAll(started);
  }
}

/** Starts both sites, recording each member in `started` and each client in `clients`; shows the live lines. */
async function startSitesAndShow(
  root: string,
  started: Started[],
  clients: StraitClient[],
  signal: StopRequest,
): Promise<number> {
  output.out(`Strait demo: two sites replicating region ${DEMO_REGION} both ways, members in ${root}`);

  const start = async (role: MemberRole, name: string, flags: Record<string, string>, config?: string): Promise<Address | undefined> => {
    const dir = join(root, name);
    if (config !== undefined) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, CONFIG_FILE_NAME), config);
    }
    const request = prepareStart(role, { name, 'bind-address': DEMO_HOST, ...flags }, { dir }, START_TIMEOUT_MS_DEFAULT);
    const outcome = await startCommand(request, false, output);
    if (!outcome.ok) {
      output.err(`error ${outcome.error.code}: ${outcome.error.message}`);
      for (const line of startFailureLines(outcome)) output.err(line);
      return undefined;
    }
    started.push({ role, name, dir, pid: outcome.record.pid });
    return outcome.record.address;
  };

  // Each locator names the other as a remote locator, so both ports are chosen up front.
  const locatorPorts = new Map<number, number>();
  const receiverPorts = new Map<number, number>();
  const taken = new Set<number>();
  for (const site of DEMO_SITES) {
    const port = await freePort();
    locatorPorts.set(site, port);
    taken.add(port);
  }
  for (const site of DEMO_SITES) {
    const first = await freePortRange(RECEIVER_PORT_RANGE_SIZE, taken);
    receiverPorts.set(site, first);
    for (let port = first; port < first + RECEIVER_PORT_RANGE_SIZE; port++) taken.add(port);
  }
  const locatorAddress = (site: number): string => `${DEMO_HOST}[${locatorPorts.get(site)}]`;

  for (const site of DEMO_SITES) {
    if (signal.received()) return 0;
    const address = await start('locator', `locator-${site}`, {
      port: String(locatorPorts.get(site)),
      'site-id': String(site),
      'remote-locators': locatorAddress(otherSite(site)),
    });
    if (address === undefined) return EXIT_FAILURE;
  }
  for (const site of DEMO_SITES) {
    for (let index = 1; index <= SERVERS_PER_SITE; index++) {
      if (signal.received()) return 0;
      const address = await start(
        'server',
        `server${site}-${index}`,
        { 'server-port': '0', locators: locatorAddress(site), 'site-id': String(site) },
        serverConfig(site, receiverPorts.get(site)!),
      );
      if (address === undefined) return EXIT_FAILURE;
    }
  }

  const directions: Direction[] = [];
  try {
    for (const site of DEMO_SITES) {
      const client = await connect({ locators: locatorAddress(site), name: `strait-demo-site-${site}`, requestTimeoutMs: STATUS_REQUEST_TIMEOUT_MS * 2 });
      clients.push(client);
      directions.push({ from: site, to: otherSite(site), client, lastSent: undefined, lastAtMs: 0 });
    }
  } catch (error) {
    const { code, message } = describeError(error);
    output.err(`error ${code}: ${message}`);
    return EXIT_FAILURE;
  }

  const at = (site: number): string => `--locator '${locatorAddress(site)}'`;
  output.out('');
  output.out('Try, in another terminal — put at site 1, get at site 2, and the other way round:');
  output.out(`  npx strait put ${at(1)} --region ${DEMO_REGION} --key greeting --value 'hello from site 1'`);
  output.out(`  npx strait get ${at(2)} --region ${DEMO_REGION} --key greeting`);
  output.out(`  npx strait put ${at(2)} --region ${DEMO_REGION} --key reply --value 'hello from site 2'`);
  output.out(`  npx strait get ${at(1)} --region ${DEMO_REGION} --key reply`);
  output.out(`  npx strait status ${at(1)}`);
  output.out(`  npx strait status gateway-sender --id ${senderId(2)} ${at(1)}`);
  output.out(`  npx strait pause gateway-sender --id ${senderId(2)} ${at(1)}    # then resume gateway-sender`);
  output.out('');
  output.out('Press Ctrl-C to stop both sites.');
  output.out('');

  await showLiveLines(directions, signal.promise);
  return 0;
}

/** Registers `strait demo` on the program. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(`run two Strait sites on this machine, replicating region ${DEMO_REGION} both ways, until Ctrl-C`)
    .option('--dir <dir>', 'parent directory of the members\' directories (default: a new temporary directory)')
    .action(async (options: { dir?: string }) => {
      try {
        const status = await runDemo({ dir: options.dir });
        if (status !== 0) process.exitCode = status;
      } catch (error) {
        const { code, message } = describeError(error);
        output.err(`error ${code}: ${message}`);
        process.exitCode = EXIT_FAILURE;
      }
    });
}
