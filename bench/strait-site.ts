// A real Strait site for the benchmark, started and stopped exactly as a user does: one
// `strait start locator` and `strait start server` per server, each in its own directory under
// a temporary root, on free ports (port 0), each server with a strait.yaml declaring the
// benchmark region; `strait stop` for each at the end.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { trustForHttps } from '../src/cli/cli-credentials.ts';
import { Cleanup, describeFailure, runCommand, waitForExit } from './processes.ts';
import { memberNodeFlags } from '../src/cli/process-control.ts';

export const STRAIT_BIN_PATH = fileURLToPath(new URL('../bin/strait.js', import.meta.url));
export const BENCH_REGION = 'BENCH';

/** `strait start` waits this long for a member to be ready. */
const START_TIMEOUT_SECONDS = 60;
/** `strait stop` waits this long for a clean leave, then kills (--force). */
const STOP_TIMEOUT_SECONDS = 20;

export type MemberRole = 'locator' | 'server';

export interface StartedMember {
  readonly role: MemberRole;
  readonly name: string;
  readonly dir: string;
  readonly pid: number;
  /** host[port] */
  readonly address: string;
  /** http://host:port of the admin API */
  readonly adminUrl: string;
}

export interface StraitSite {
  readonly root: string;
  /** The locator, host[port], for `connect({ locators })`. */
  readonly locators: string;
  readonly members: readonly StartedMember[];
}

interface MemberJson {
  readonly pid: number;
  readonly name: string;
  readonly address: { readonly host: string; readonly port: number };
  readonly httpAddress: { readonly host: string; readonly port: number };
}

/** `node bin/strait.js …`, the way `npx strait …` runs it. */
export function strait(args: readonly string[], cwd?: string): ReturnType<typeof runCommand> {
  return runCommand(process.execPath, [STRAIT_BIN_PATH, ...args], cwd === undefined ? {} : { cwd });
}

/** What the benchmark region is: replicated, or partitioned with one redundant copy. */
export type BenchRegionType = 'replicate' | 'partition';

/** The region declaration of every benchmark server: in memory only. */
export function benchServerConfig(type: BenchRegionType = 'replicate'): string {
  return type === 'replicate'
    ? `regions:\n  ${BENCH_REGION}: { type: replicate, persistent: false }\n`
    : `regions:\n  ${BENCH_REGION}: { type: partition, persistent: false, redundant-copies: 1 }\n`;
}

/**
 * `strait start <role> --json` and its record. The member goes on the cleanup list as soon as
 * it runs, so it is stopped even if a later step fails.
 */
export async function startMember(cleanup: Cleanup, role: MemberRole, name: string, dir: string, flags: readonly string[], https = false): Promise<StartedMember> {
  const result = await strait(['start', role, '--name', name, '--dir', dir, '--bind-address', '127.0.0.1', '--timeout', String(START_TIMEOUT_SECONDS), '--json', ...flags]);
  if (result.status !== 0) throw new Error(describeFailure(`strait start ${role} --name ${name}`, result));
  const record = JSON.parse(result.stdout) as MemberJson;
  const member: StartedMember = {
    role,
    name,
    dir,
    pid: record.pid,
    address: `${record.address.host}[${record.address.port}]`,
    adminUrl: `${https ? 'https' : 'http'}://${record.httpAddress.host}:${record.httpAddress.port}`,
  };
  cleanup.add(`${role} ${name}`, member.pid, () => stopMember(member));
  return member;
}

/** `strait stop <role> --dir <dir> --force`, then makes sure the pid is gone. */
export async function stopMember(member: StartedMember): Promise<void> {
  const result = await strait(['stop', member.role, '--dir', member.dir, '--timeout', String(STOP_TIMEOUT_SECONDS), '--force']);
  // STRAIT_NOT_RUNNING means it is already gone, which is what we want.
  if (result.status !== 0 && !result.stderr.includes('STRAIT_NOT_RUNNING')) throw new Error(describeFailure(`strait stop ${member.role} --dir ${member.dir}`, result));
  if (!(await waitForExit(member.pid, STOP_TIMEOUT_SECONDS * 1000))) throw new Error(`${member.role} ${member.name} (pid ${member.pid}) still runs after strait stop`);
}

/**
 * `strait tls init --dir <root>/certs --sites <sites>`, as a user makes certificates; the
 * directory, whose `ca.crt` clients trust. HTTPS from this process trusts it too.
 */
export async function makeCertificates(root: string, sites: readonly number[]): Promise<string> {
  const certs = join(root, 'certs');
  const result = await strait(['tls', 'init', '--dir', certs, '--sites', sites.join(',')]);
  if (result.status !== 0) throw new Error(describeFailure('strait tls init', result));
  trustForHttps(join(certs, 'ca.crt'));
  return certs;
}

/** The flags that put a member on TLS with the certificates of `makeCertificates`. */
export function tlsFlags(certs: string, site: number, role: MemberRole): string[] {
  return ['--tls-cert', join(certs, `site-${site}`, `${role}.crt`), '--tls-key', join(certs, `site-${site}`, `${role}.key`), '--tls-ca', join(certs, 'ca.crt')];
}

/**
 * Starts a locator and `servers` servers hosting BENCH under `root`; with `certs` (from
 * `makeCertificates`), every member runs TLS as site 1.
 */
export async function startStraitSite(cleanup: Cleanup, root: string, servers: number, type: BenchRegionType = 'replicate', certs?: string): Promise<StraitSite> {
  const members: StartedMember[] = [];
  const secured = (role: MemberRole): string[] => (certs === undefined ? [] : tlsFlags(certs, 1, role));
  const https = certs !== undefined;
  const locator = await startMember(cleanup, 'locator', 'bench-locator', join(root, 'bench-locator'), ['--port', '0', ...secured('locator')], https);
  members.push(locator);
  for (let index = 1; index <= servers; index++) {
    const name = `bench-server-${index}`;
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'strait.yaml'), benchServerConfig(type));
    members.push(await startMember(cleanup, 'server', name, dir, ['--server-port', '0', '--locators', locator.address, ...secured('server')], https));
  }
  return { root, locators: locator.address, members };
}

/** Stops the servers, then the locator (so it sees clean leaves). */
export async function stopStraitSite(cleanup: Cleanup, site: StraitSite): Promise<void> {
  for (const member of [...site.members].reverse()) await cleanup.stop(member.pid);
}

/** Entries each server holds in `region`, from its admin API (`GET /regions`). */
export async function regionSizes(site: StraitSite, region: string): Promise<{ name: string; size: number }[]> {
  const sizes: { name: string; size: number }[] = [];
  for (const member of site.members) {
    if (member.role !== 'server') continue;
    const response = await fetch(`${member.adminUrl}/regions`);
    const body = (await response.json()) as { regions: { spec: { name: string }; size: number }[] };
    sizes.push({ name: member.name, size: body.regions.find((entry) => entry.spec.name === region)?.size ?? 0 });
  }
  return sizes;
}

const PROFILED_SERVER_READY_TIMEOUT_MS = 60_000;
const PROFILED_SERVER_STOP_TIMEOUT_MS = 30_000;

export interface ProfiledServer {
  readonly pid: number;
  readonly profileDir: string;
  readonly httpAddress: { host: string; port: number } | undefined;
  /** The command line, with the binary's path shortened, for reports. */
  readonly command: string;
}

/**
 * `node --cpu-prof … bin/strait.js run server …` in the foreground (a child of the bench, its
 * strait.yaml already in `dir`); resolves once member.json says it is ready. Stopped with
 * SIGTERM by the cleanup, which writes the profile.
 */
export async function startProfiledServer(cleanup: Cleanup, name: string, dir: string, locators: string, maximumHeapMegabytes?: number): Promise<ProfiledServer> {
  const profileDir = join(dir, 'cpu-profile');
  // The Node flags `strait start` would give it, so the profile is of the deployed configuration.
  const args = [
    ...memberNodeFlags(process.env, maximumHeapMegabytes),
    '--cpu-prof', '--cpu-prof-dir', profileDir,
    STRAIT_BIN_PATH, 'run', 'server', '--name', name, '--dir', dir, '--server-port', '0', '--bind-address', '127.0.0.1', '--locators', locators, '--log-format', 'json',
  ];
  const logFile = join(dir, `${name}.log`);
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', log, log] });
  closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not run ${process.execPath} for ${name}`);
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  cleanup.add(`profiled server ${name}`, pid, async () => {
    if (exited) return;
    child.kill('SIGTERM');
    if (!(await waitForExit(pid, PROFILED_SERVER_STOP_TIMEOUT_MS))) throw new Error(`profiled server ${name} did not exit after SIGTERM`);
  });
  const memberFile = join(dir, 'member.json');
  const deadline = performance.now() + PROFILED_SERVER_READY_TIMEOUT_MS;
  for (;;) {
    const record = readMemberRecord(memberFile);
    if (record?.pid === pid && record.state === 'ready') {
      return { pid, profileDir, httpAddress: record.httpAddress, command: `node ${args.map((arg) => (arg === STRAIT_BIN_PATH ? 'bin/strait.js' : arg)).join(' ')}` };
    }
    if (record?.pid === pid && record.state === 'failed') throw new Error(`${name} failed to start; see ${logFile}`);
    if (exited) throw new Error(`${name} exited before it was ready; see ${logFile}`);
    if (performance.now() >= deadline) throw new Error(`${name} not ready within ${PROFILED_SERVER_READY_TIMEOUT_MS} ms; see ${logFile}`);
    await sleep(50);
  }
}

function readMemberRecord(file: string): { pid: number; state: string; httpAddress?: { host: string; port: number } } | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as { pid: number; state: string; httpAddress?: { host: string; port: number } };
  } catch {
    return undefined; // being written; read it again
  }
}
