// The peers both benchmarks measure Strait against — Redis (redis-server, redis-benchmark,
// redis-cli) and NATS (nats-server) — found on this machine, installed when they are missing and
// the bench runs as root, or the reason to stop with the command that installs them.
//
// Guarantee: a bench that asks `ensurePeers` for a peer either gets every binary of it (with its
// version), or is told to stop (exit 1) with the exact command to run; it never measures on with
// a peer missing, so no table is printed without its peer columns by accident. `--without-peers`
// is the one way to measure Strait alone, and it is said so in the table and the results.
//
// The decision (`planPeers`) is pure; `ensurePeers` carries it out through a `PeerHost`, so the
// tests drive every branch without running apt-get.

import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeFailure, runCommand } from './processes.ts';

export type PeerName = 'redis' | 'nats';

export interface RedisTools {
  /** `redis-server --version`, e.g. "Redis server v=7.0.15 …". */
  readonly version: string;
  /** Paths of the three binaries the benches run. */
  readonly server: string;
  readonly benchmark: string;
  readonly cli: string;
}

export interface NatsTools {
  /** `nats-server --version`, e.g. "nats-server: v2.9.10". */
  readonly version: string;
  readonly server: string;
}

export interface PeerTools {
  readonly redis?: RedisTools;
  readonly nats?: NatsTools;
}

/** Why a peer can't be used: a binary not found, or one that fails `--version`. */
export interface Missing {
  readonly missing: string;
}

/** The Debian package that brings each peer's binaries (`redis-server` depends on `redis-tools`). */
export const PEER_PACKAGES: Readonly<Record<PeerName, string>> = { redis: 'redis-server', nats: 'nats-server' };
const PEER_TITLES: Readonly<Record<PeerName, string>> = { redis: 'Redis', nats: 'NATS' };
/** Where Debian puts the binaries, searched after PATH (a user's PATH often lacks /usr/sbin). */
const SYSTEM_DIRECTORIES = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin'] as const;
const VERSION_TIMEOUT_MS = 10_000;
export const WITHOUT_PEERS_FLAG = '--without-peers';

export type PeerPlan =
  /** Every peer asked for is here. */
  | { readonly action: 'measure' }
  /** `--without-peers`: Strait alone, on purpose. */
  | { readonly action: 'skip'; readonly reason: string }
  /** Missing, and this is root: run `command`, then look again. */
  | { readonly action: 'install'; readonly packages: readonly string[]; readonly command: readonly string[] }
  /** Missing and can't be installed here: stop with exit code 1, telling the operator `command`. */
  | { readonly action: 'stop'; readonly reason: string; readonly command: string };

export interface PeerSituation {
  readonly withoutPeers: boolean;
  /** The peers asked for that were not found, each with why. */
  readonly missing: readonly { readonly peer: PeerName; readonly why: string }[];
  readonly root: boolean;
  /** An install already ran (and the peers are still missing). */
  readonly installAttempted: boolean;
}

export const WITHOUT_PEERS_REASON = `skipped with ${WITHOUT_PEERS_FLAG}`;

/** What to do about the peers: measure, skip on purpose, install, or stop with the command. */
export function planPeers(situation: PeerSituation): PeerPlan {
  if (situation.withoutPeers) return { action: 'skip', reason: WITHOUT_PEERS_REASON };
  if (situation.missing.length === 0) return { action: 'measure' };
  const packages = [...new Set(situation.missing.map((entry) => PEER_PACKAGES[entry.peer]))];
  const install = ['apt-get', 'install', '-y', ...packages];
  const what = situation.missing.map((entry) => `${PEER_TITLES[entry.peer]}: ${entry.why}`).join('; ');
  if (!situation.root) {
    return {
      action: 'stop',
      reason: `${what}; not running as root, so the bench can't install it`,
      command: `sudo ${install.join(' ')}`,
    };
  }
  if (situation.installAttempted) {
    const command = `apt-get update && ${install.join(' ')}`;
    return { action: 'stop', reason: `${what}, after trying to install it`, command };
  }
  return { action: 'install', packages, command: install };
}

/** What `ensurePeers` needs from the machine; the tests pass a fake. */
export interface PeerHost {
  findRedis(): Promise<RedisTools | Missing>;
  findNats(): Promise<NatsTools | Missing>;
  isRoot(): boolean;
  /** Runs a command with its output shown; true when it exits 0. */
  run(command: readonly string[]): Promise<boolean>;
  /** One line for the operator. */
  say(line: string): void;
}

export type PeerCheck =
  | { readonly kind: 'ready'; readonly tools: PeerTools }
  | { readonly kind: 'skipped'; readonly reason: string }
  | { readonly kind: 'stop'; readonly message: string };

interface Found {
  readonly tools: { redis?: RedisTools; nats?: NatsTools };
  readonly missing: { peer: PeerName; why: string }[];
}

async function findAll(wanted: readonly PeerName[], host: PeerHost): Promise<Found> {
  const tools: { redis?: RedisTools; nats?: NatsTools } = {};
  const missing: { peer: PeerName; why: string }[] = [];
  if (wanted.includes('redis')) {
    const redis = await host.findRedis();
    if ('missing' in redis) missing.push({ peer: 'redis', why: redis.missing });
    else tools.redis = redis;
  }
  if (wanted.includes('nats')) {
    const nats = await host.findNats();
    if ('missing' in nats) missing.push({ peer: 'nats', why: nats.missing });
    else tools.nats = nats;
  }
  return { tools, missing };
}

/**
 * The peers in `wanted`, found (installed first when missing and root), or why the bench must
 * stop; `--without-peers` skips them without looking. An install is announced on its own line.
 */
export async function ensurePeers(wanted: readonly PeerName[], withoutPeers: boolean, host: PeerHost): Promise<PeerCheck> {
  if (withoutPeers) return { kind: 'skipped', reason: WITHOUT_PEERS_REASON };
  let installAttempted = false;
  for (;;) {
    const found = await findAll(wanted, host);
    const plan = planPeers({ withoutPeers, missing: found.missing, root: host.isRoot(), installAttempted });
    switch (plan.action) {
      case 'measure':
        return { kind: 'ready', tools: found.tools };
      case 'skip':
        return { kind: 'skipped', reason: plan.reason };
      case 'stop':
        return {
          kind: 'stop',
          message: `${found.missing.length === 1 ? 'a peer is' : 'peers are'} missing — ${plan.reason}. ` +
            `Install with\n\n  ${plan.command}\n\n` +
            `and run the bench again, or add ${WITHOUT_PEERS_FLAG} to measure Strait alone (no peer columns).`,
        };
      case 'install': {
        installAttempted = true;
        const what = found.missing.map((entry) => `${PEER_TITLES[entry.peer]} (${entry.why})`).join(' and ');
        host.say(`bench: missing ${what}; running as root, so installing: ${plan.command.join(' ')}`);
        if (!(await host.run(plan.command))) {
          // A fresh machine may have no package lists yet.
          host.say('bench: the install failed; updating the package lists and trying once more: apt-get update');
          if (await host.run(['apt-get', 'update'])) await host.run(plan.command);
        }
        break;
      }
    }
  }
}

/** An executable named `name` on PATH or in the system directories; undefined if none. */
export function locateExecutable(name: string, searchPath = process.env['PATH'] ?? ''): string | undefined {
  const directories = [...searchPath.split(delimiter).filter((entry) => entry.length > 0), ...SYSTEM_DIRECTORIES];
  for (const directory of directories) {
    const candidate = join(directory, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

async function versionOf(name: string): Promise<{ path: string; version: string } | Missing> {
  const path = locateExecutable(name);
  if (path === undefined) return { missing: `${name} not found on PATH nor in ${SYSTEM_DIRECTORIES.join(', ')}` };
  try {
    const result = await runCommand(path, ['--version'], { timeoutMs: VERSION_TIMEOUT_MS });
    if (result.status !== 0) return { missing: describeFailure(`${path} --version`, result) };
    return { path, version: result.stdout.trim() };
  } catch (error) {
    return { missing: `${path} could not run (${(error as { code?: string }).code ?? String(error)})` };
  }
}

/** redis-server, redis-benchmark and redis-cli, or why they can't be used. */
export async function findRedis(): Promise<RedisTools | Missing> {
  const server = await versionOf('redis-server');
  if ('missing' in server) return server;
  const benchmark = await versionOf('redis-benchmark');
  if ('missing' in benchmark) return benchmark;
  const cli = await versionOf('redis-cli');
  if ('missing' in cli) return cli;
  return { version: server.version, server: server.path, benchmark: benchmark.path, cli: cli.path };
}

/** nats-server, or why it can't be used. */
export async function findNats(): Promise<NatsTools | Missing> {
  const server = await versionOf('nats-server');
  return 'missing' in server ? server : { version: server.version, server: server.path };
}

/** Runs a command with the bench's output (apt-get's progress is worth seeing); true on exit 0. */
function runVisibly(command: readonly string[]): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(command[0]!, command.slice(1), {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    child.on('error', (error) => {
      process.stderr.write(`bench: ${command.join(' ')} could not run: ${error.message}\n`);
      resolve(false);
    });
    child.on('close', (status) => resolve(status === 0));
  });
}

/** This machine: real binaries, real apt-get, lines on standard output. */
export function machinePeerHost(): PeerHost {
  return {
    findRedis,
    findNats,
    isRoot: () => process.getuid?.() === 0,
    run: runVisibly,
    say: (line) => process.stdout.write(`${line}\n`),
  };
}

const REPOSITORY_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** `name version` of an installed npm package, e.g. "ioredis 6.0.0", read from its package.json. */
export function packageVersion(name: string): string {
  try {
    const path = join(REPOSITORY_ROOT, 'node_modules', name, 'package.json');
    const manifest = JSON.parse(readFileSync(path, 'utf8')) as { version?: string };
    return `${name} ${manifest.version ?? '(no version)'}`;
  } catch {
    return `${name} (not installed)`;
  }
}

/** The client that drives each peer, as recorded in the results beside the peer's version. */
export const PEER_CLIENTS: Readonly<Record<PeerName, () => string>> = {
  redis: () => packageVersion('ioredis'),
  nats: () => `${packageVersion('@nats-io/transport-node')} + ${packageVersion('@nats-io/jetstream')}`,
};
