// Strait sites inside the namespaces of a NetnsLab, started as a user does (`strait start … --dir`
// with a strait.yaml), and the checks the NAT scenarios share: write at every site, then poll
// every other site until it holds every key with the value last written.
//
// Each site: one locator (port 10334) and two servers, each with a gateway receiver on a
// one-port range (5001, 5002), region NAT shipping through a serial sender to every other site.
// A public site advertises its address; a site behind a NAT advertises `siteN.strait.test`
// (split horizon: private inside, its NAT's public address outside); a masquerade site's
// receivers dial out.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { STRAIT_BIN_PATH } from '../../bench/strait-site.ts';
import type { NetnsLab, PublicHost, SiteNetwork } from './netns.ts';

export const NAT_REGION = 'NAT';
export const LOCATOR_PORT = 10334;
export const RECEIVER_PORTS = [5001, 5002] as const;
const SERVER_PORTS = [40401, 40402] as const;
/** Ports a forwarded site's NAT forwards: its locator and its receivers. */
export const FORWARDED_PORTS = [LOCATOR_PORT, ...RECEIVER_PORTS];
const START_TIMEOUT_SECONDS = 60;
const CLIENT_PATH = new URL('./nat-client.ts', import.meta.url).pathname;
export const ROUTER_PORT = 12001;
/** The mesh secret of the tests' routers and members (given through the environment). */
const ROUTER_SECRET = 'nat-test-router-mesh-secret';

/** Where the tests' routers run, if any: members register with every one. */
export interface RouterMesh {
  readonly hosts: readonly PublicHost[];
}

function routerList(mesh: RouterMesh | undefined): string | undefined {
  return mesh === undefined || mesh.hosts.length === 0 ? undefined : mesh.hosts.map((host) => `${host.address}[${ROUTER_PORT}]`).join(',');
}

export interface RunningMember {
  readonly name: string;
  readonly role: 'locator' | 'server' | 'router';
  readonly dir: string;
  readonly pid: number;
  readonly namespace: string;
}

export interface StartedSite {
  readonly network: SiteNetwork;
  readonly members: RunningMember[];
  /** host[port] of the site's locator, as the site's own clients reach it. */
  readonly locator: string;
}

/** The host a site's members advertise. */
function advertised(site: SiteNetwork): string {
  return site.kind === 'public' ? site.address : site.hostName;
}

/** How other sites reach a site's locator (none for a site that accepts no connections). */
function reachableLocator(site: SiteNetwork): string | undefined {
  return site.kind === 'masquerade' ? undefined : `${advertised(site)}[${LOCATOR_PORT}]`;
}

function serverYaml(site: SiteNetwork, others: readonly SiteNetwork[], index: number, dialOut: boolean): string {
  const senders = others.map((other) => `to-site-${other.id}`);
  const lines = [
    `regions:`,
    `  ${NAT_REGION}: { type: replicate, gateway-sender-ids: [${senders.join(', ')}] }`,
    `gateway-senders:`,
    ...others.map((other) => `  to-site-${other.id}: { remote-site-id: ${other.id}, batch-size: 200, batch-time-interval: 20 }`),
    `gateway-receiver:`,
    `  start-port: ${RECEIVER_PORTS[index]}`,
    `  end-port: ${RECEIVER_PORTS[index]}`,
    // One strait.yaml for every server of every site: the advertised name comes from the
    // environment, as in a container.
    '  hostname-for-clients: ${STRAIT_EXTERNAL_ADDR:127.0.0.1}',
    ...(dialOut ? ['  dial-out: true'] : []),
  ];
  return `${lines.join('\n')}\n`;
}

async function startMember(
  lab: NetnsLab, site: SiteNetwork, role: 'locator' | 'server', name: string, dir: string, flags: readonly string[],
): Promise<RunningMember> {
  mkdirSync(dir, { recursive: true });
  const args = [STRAIT_BIN_PATH, 'start', role, '--name', name, '--dir', dir, '--site-id', String(site.id),
    '--bind-address', '0.0.0.0', '--hostname-for-clients', advertised(site), '--timeout', String(START_TIMEOUT_SECONDS), '--json', ...flags];
  const result = await runInNamespace(lab, site.namespace, args, { STRAIT_EXTERNAL_ADDR: advertised(site), STRAIT_ROUTER_SECRET: ROUTER_SECRET });
  if (result.status !== 0) throw new Error(`strait start ${role} ${name} in ${site.namespace} failed (${result.status}): ${result.stderr}${result.stdout}`);
  const record = JSON.parse(result.stdout) as { pid: number };
  lab.track(record.pid);
  return { name, role, dir, pid: record.pid, namespace: site.namespace };
}

function runInNamespace(lab: NetnsLab, namespace: string, args: readonly string[], environment: Record<string, string> = {}) {
  const assignments = Object.entries(environment).map(([key, value]) => `${key}=${value}`);
  return lab.exec(namespace, 'env', [...assignments, process.execPath, ...args], 120_000);
}

/** Starts a router in its namespace; the mesh's other routers are `peers`. */
export async function startRouter(lab: NetnsLab, root: string, host: PublicHost, name: string, peers: readonly PublicHost[]): Promise<RunningMember> {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const peerList = peers.map((peer) => `${peer.address}[${ROUTER_PORT}]`).join(',');
  const args = [STRAIT_BIN_PATH, 'start', 'router', '--name', name, '--dir', dir, '--port', String(ROUTER_PORT), '--bind-address', '0.0.0.0',
    '--hostname-for-clients', host.address, '--timeout', String(START_TIMEOUT_SECONDS), '--json', ...(peerList ? ['--routers', peerList] : [])];
  const result = await runInNamespace(lab, host.namespace, args, { STRAIT_ROUTER_SECRET: ROUTER_SECRET });
  if (result.status !== 0) throw new Error(`strait start router ${name} failed (${result.status}): ${result.stderr}${result.stdout}`);
  const record = JSON.parse(result.stdout) as { pid: number };
  lab.track(record.pid);
  return { name, role: 'router', dir, pid: record.pid, namespace: host.namespace };
}

/** `strait list routers` against a router, from inside its namespace. */
export async function listRouters(lab: NetnsLab, host: PublicHost): Promise<string> {
  const result = await runInNamespace(lab, host.namespace, [STRAIT_BIN_PATH, 'list', 'routers', '--router', `${host.address}[${ROUTER_PORT}]`], { STRAIT_ROUTER_SECRET: ROUTER_SECRET });
  if (result.status !== 0) throw new Error(`strait list routers failed: ${result.stderr}`);
  return result.stdout;
}

/**
 * Starts a site's locator and two servers; every site in `all` but this one is a remote site.
 * With `mesh`, every member registers with its routers, and the locator lists no remote locators.
 * `dialOut` overrides whether the receivers dial out (default: behind a masquerading NAT
 * without routers).
 */
export async function startSite(
  lab: NetnsLab, root: string, site: SiteNetwork, all: readonly SiteNetwork[], mesh?: RouterMesh, dialOut?: boolean,
): Promise<StartedSite> {
  const others = all.filter((other) => other.id !== site.id);
  const routers = routerList(mesh);
  const remoteLocators = routers !== undefined ? [] : others.flatMap((other) => reachableLocator(other) ?? []);
  const members: RunningMember[] = [];
  const routerFlags = routers === undefined ? [] : ['--routers', routers];
  const locatorFlags = ['--port', String(LOCATOR_PORT), ...routerFlags, ...(remoteLocators.length > 0 ? ['--remote-locators', remoteLocators.join(',')] : [])];
  members.push(await startMember(lab, site, 'locator', `locator-${site.id}`, join(root, `locator-${site.id}`), locatorFlags));
  const locator = `${advertised(site)}[${LOCATOR_PORT}]`;
  for (const index of [0, 1]) {
    const name = `server${site.id}-${index + 1}`;
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    // Behind a NAT with no inbound port, a site without routers dials out; with routers, the
    // other sites' senders reach its receivers through them (unless told to dial out as well).
    writeFileSync(join(dir, 'strait.yaml'), serverYaml(site, others, index, dialOut ?? (site.kind === 'masquerade' && routers === undefined)));
    members.push(await startMember(lab, site, 'server', name, dir, ['--server-port', String(SERVER_PORTS[index]), '--locators', locator, ...routerFlags]));
  }
  return { network: site, members, locator };
}

/** Stops every member (servers first), then the routers, by `strait stop` in its namespace. */
export async function stopSites(lab: NetnsLab, sites: readonly StartedSite[], routers: readonly RunningMember[] = []): Promise<void> {
  const members = [...sites.flatMap((site) => [...site.members].reverse()), ...routers];
  for (const member of members) {
    await runInNamespace(lab, member.namespace, [STRAIT_BIN_PATH, 'stop', member.role, '--dir', member.dir, '--timeout', '20', '--force']);
    lab.untrack(member.pid);
  }
}

/** Writes `keys` keys twice each at `site` (values 1, then 2); returns the writes acknowledged. */
export async function writeAt(lab: NetnsLab, site: StartedSite, prefix: string, keys: number, ratePerSecond?: number): Promise<number> {
  const rate = ratePerSecond === undefined ? [] : ['--rate', String(ratePerSecond)];
  const result = await runInNamespace(lab, site.network.namespace, [CLIENT_PATH, 'write', '--locators', site.locator, '--region', NAT_REGION, '--prefix', prefix, '--keys', String(keys), ...rate]);
  if (result.status !== 0) throw new Error(`writing at site ${site.network.id} failed: ${result.stderr}`);
  return (JSON.parse(result.stdout) as { acknowledged: number }).acknowledged;
}

export async function dumpAt(lab: NetnsLab, site: StartedSite, prefix: string): Promise<Record<string, number | null>> {
  const result = await runInNamespace(lab, site.network.namespace, [CLIENT_PATH, 'dump', '--locators', site.locator, '--region', NAT_REGION, '--prefix', prefix]);
  if (result.status !== 0) throw new Error(`reading at site ${site.network.id} failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as Record<string, number | null>;
}

/** What is wrong with `dump` as the copy of `keys` keys last written with value 2, or null. */
function problemOf(dump: Record<string, number | null>, prefix: string, keys: number): string | null {
  const missing: string[] = [];
  const wrong: string[] = [];
  for (let index = 0; index < keys; index++) {
    const value = dump[`${prefix}-${index}`];
    if (value === undefined || value === null) missing.push(`${prefix}-${index}`);
    else if (value !== 2) wrong.push(`${prefix}-${index}=${value}`);
  }
  const extra = Object.keys(dump).length - keys + missing.length;
  if (missing.length === 0 && wrong.length === 0 && extra === 0) return null;
  return `${missing.length} missing (${missing.slice(0, 3).join(', ')}), ${wrong.length} not the last value (${wrong.slice(0, 3).join(', ')}), ${extra} unexpected`;
}

/**
 * Waits until every site other than the writer holds each of the writer's keys with the value
 * last written; throws with what is still wrong after `timeoutMs`.
 */
export async function awaitReplicated(
  lab: NetnsLab, sites: readonly StartedSite[], writer: StartedSite, prefix: string, keys: number, timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const site of sites) {
    if (site === writer) continue;
    let problem: string | null = 'not read yet';
    while (problem !== null) {
      problem = problemOf(await dumpAt(lab, site, prefix), prefix, keys);
      if (problem === null) break;
      if (Date.now() > deadline) {
        throw new Error(`site ${site.network.id} (${site.network.kind}) lacks writes of site ${writer.network.id} (${writer.network.kind}) after ${timeoutMs} ms: ${problem}`);
      }
      await sleep(1000);
    }
  }
}
