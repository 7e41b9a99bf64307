// `strait demo`: two sites on this machine, replicating region TEST both ways, so a newcomer
// can watch WAN replication in one command.
//
// Site 1 and site 2 each get a locator and two servers, started through the same code path as
// `strait start`, in a temporary directory, on free ports. Each locator knows its `site-id` and
// the other site's locator (`remote-locators`); each server hosts TEST with a gateway sender to
// the other site and a gateway receiver on a free port range. The demo then shows one live line
// per direction (queue, lag, events/s of the primary sender) and, on Ctrl-C or SIGTERM, stops
// every member it started by pid: servers first, so the locators see clean leaves.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { connect, type StraitClient } from '../client/client.ts';
import type { SenderStatus } from '../protocol/messages.ts';
import { formatAddress, type Address } from '../runtime/runtime.ts';
import { prepareStart, startCommand, startFailureLines } from './member-commands.ts';
import { START_TIMEOUT_MS_DEFAULT, STOP_TIMEOUT_MS_DEFAULT, stopMember } from './process-control.ts';
import { CONFIG_FILE_NAME } from './member-files.ts';
import type { MemberRole } from '../config/member-config.ts';
import type { Output } from './client-commands.ts';
import { describeError, EXIT_FAILURE } from './report.ts';

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

const output: Output = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

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

/** Stops members by the pid each one wrote: all servers, then all locators. */
async function stopAll(started: readonly Started[]): Promise<void> {
  for (const role of ['server', 'locator'] as const) {
    await Promise.all(
      started
        .filter((member) => member.role === role)
        .map(async (member) => {
          try {
            const outcome = await stopMember(member.dir, member.role, STOP_TIMEOUT_MS_DEFAULT, true);
            output.out(`${outcome.killed ? 'killed' : 'stopped'} ${member.role} ${member.name} (pid ${outcome.pid})`);
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

/**
 * Resolves on the first SIGINT or SIGTERM. Later signals are acknowledged, not obeyed: the demo
 * must get to stop the members it started rather than exit and leave them running.
 */
function signalled(): { readonly promise: Promise<string>; readonly received: () => boolean } {
  let got = false;
  const promise = new Promise<string>((resolve) => {
    const onSignal = (signal: string): void => {
      if (got) {
        output.err(`${signal}: still stopping the members the demo started; please wait`);
        return;
      }
      got = true;
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
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
      if (drawn > 0) process.stdout.write(`\x1b[${drawn}A`);
      for (const line of lines) process.stdout.write(`\x1b[2K${line}\n`);
      drawn = lines.length;
    } else if (performance.now() - lastPrintMs >= PRINT_INTERVAL_MS - 1) {
      lastPrintMs = performance.now();
      for (const line of lines) output.out(line);
    }
    await Promise.race([stop, new Promise((resolve) => setTimeout(resolve, REFRESH_INTERVAL_MS))]);
  }
}

async function runDemo(): Promise<number> {
  const signal = signalled();
  const root = mkdtempSync(join(tmpdir(), 'strait-demo-'));
  const started: Started[] = [];
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

  const clients: StraitClient[] = [];
  const finish = async (status: number): Promise<number> => {
    await Promise.all(clients.map((client) => client.close()));
    output.out('');
    await stopAll(started);
    return status;
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
    if (signal.received()) return finish(0);
    const address = await start('locator', `locator-${site}`, {
      port: String(locatorPorts.get(site)),
      'site-id': String(site),
      'remote-locators': locatorAddress(otherSite(site)),
    });
    if (address === undefined) return finish(EXIT_FAILURE);
  }
  for (const site of DEMO_SITES) {
    for (let index = 1; index <= SERVERS_PER_SITE; index++) {
      if (signal.received()) return finish(0);
      const address = await start(
        'server',
        `server${site}-${index}`,
        { 'server-port': '0', locators: locatorAddress(site), 'site-id': String(site) },
        serverConfig(site, receiverPorts.get(site)!),
      );
      if (address === undefined) return finish(EXIT_FAILURE);
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
    return finish(EXIT_FAILURE);
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
  return finish(0);
}

/** Registers `strait demo` on the program. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(`run two Strait sites on this machine, replicating region ${DEMO_REGION} both ways, until Ctrl-C`)
    .action(async () => {
      try {
        const status = await runDemo();
        if (status !== 0) process.exitCode = status;
      } catch (error) {
        const { code, message } = describeError(error);
        output.err(`error ${code}: ${message}`);
        process.exitCode = EXIT_FAILURE;
      }
    });
}
