// The two sites of one soak row, started exactly as a user does (`strait start … --dir`), with
// the fault injector's verbs: kill -9 a member by its pid, restart it in the same directory with
// the same flags, create the region at a site that lacks it, replay a sender's dead letters.
//
//   site 1: locator-1 (site-id 1, remote-locators → locator-2) + server1-1, server1-2
//   site 2: locator-2 (site-id 2, remote-locators → locator-1) + server2-1, server2-2
//
// Every server hosts region SOAK (unless the row says site 2 lacks it at first), a serial
// gateway sender to the other site (both ways, or only 1 → 2), and a gateway receiver on a
// one-port range of its own. Locators listen on ports chosen free up front (each names the
// other); servers and admin APIs take any free port. Every process goes on the Cleanup list the
// moment it runs; a member killed on purpose is taken off it, and its restart goes back on.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type StraitClient } from '../src/client/client.ts';
import { connect } from '../src/client/connect.ts';
import { parseAddress } from '../src/config/address.ts';
import type { SenderStatus } from '../src/protocol/messages.ts';
import type { Address } from '../src/runtime/runtime.ts';
import { Cleanup, freePort, waitForExit } from '../bench/processes.ts';
import { startMember, strait, type MemberRole } from '../bench/strait-site.ts';
import { waitUntil } from '../bench/wan/load.ts';

export const SOAK_REGION = 'SOAK';
export const SITES = [1, 2] as const;
export type SiteId = (typeof SITES)[number];
const SERVERS_PER_SITE = 2;
/** How long a killed process may take to disappear. */
const KILL_EXIT_TIMEOUT_MS = 10_000;
/** Ports in each server's gateway receiver range. */
const RECEIVER_PORTS = 16;
/** How long the senders may take to find and connect to the other site's receivers. */
const SENDERS_CONNECT_TIMEOUT_MS = 60_000;
/** Requests of the soak's own status client: short, so a dead member does not stall a poll. */
const STATUS_REQUEST_TIMEOUT_MS = 5_000;
/** Batches of the soak's senders: small and frequent, like the demo's. */
const SENDER_BATCH_SIZE = 100;
const SENDER_BATCH_TIME_INTERVAL_MS = 50;

export function senderId(toSite: SiteId): string {
  return `to-site-${toSite}`;
}

export function otherSite(site: SiteId): SiteId {
  return site === 1 ? 2 : 1;
}

/** How one site is declared in a row. */
export interface SiteSettings {
  /** The region is declared in the servers' strait.yaml (else it is created later, at runtime). */
  readonly hasRegion: boolean;
  readonly regionPersistent: boolean;
  /** Declare a sender to the other site (and name it in the region's gateway-sender-ids). */
  readonly sends: boolean;
  /** The sender's queue is kept on disk until acknowledged (`persistent: true`). */
  readonly queuePersistent: boolean;
}

export interface Member {
  readonly role: MemberRole;
  readonly name: string;
  readonly site: SiteId;
  readonly dir: string;
  /** Flags given to `strait start` besides name, dir and bind address; a restart reuses them. */
  readonly flags: readonly string[];
  pid: number;
  /** host[port] */
  address: string;
  adminUrl: string;
  /** False between a kill and the restart. */
  running: boolean;
  /** Pids of every incarnation, oldest first. */
  readonly pids: number[];
}

function serverConfig(site: SiteId, settings: SiteSettings, receiverPort: number): string {
  const remote = otherSite(site);
  const lines: string[] = [`# strait soak: site ${site}`];
  if (settings.hasRegion) {
    const senders = settings.sends ? `, gateway-sender-ids: [${senderId(remote)}]` : '';
    lines.push('regions:', `  ${SOAK_REGION}: { type: replicate, persistent: ${settings.regionPersistent}${senders} }`);
  }
  if (settings.sends) {
    lines.push(
      'gateway-senders:',
      `  ${senderId(remote)}: { remote-site-id: ${remote}, batch-size: ${SENDER_BATCH_SIZE}, ` +
        `batch-time-interval: ${SENDER_BATCH_TIME_INTERVAL_MS}, persistent: ${settings.queuePersistent} }`,
    );
  }
  // A range, not one port: a port found free may be taken by an outgoing connection's ephemeral
  // port before the server binds it (a row once failed with STRAIT_PORT_IN_USE that way).
  lines.push(`gateway-receiver: { start-port: ${receiverPort}, end-port: ${Math.min(65_535, receiverPort + RECEIVER_PORTS - 1)} }`, '');
  return lines.join('\n');
}

export class Grid {
  readonly root: string;
  readonly settings: Readonly<Record<SiteId, SiteSettings>>;
  readonly members: Member[] = [];
  private readonly cleanup: Cleanup;
  private readonly locatorPorts = new Map<SiteId, number>();
  /** One status client per site, through its locator. */
  private readonly statusClients = new Map<SiteId, StraitClient>();

  private constructor(cleanup: Cleanup, root: string, settings: Readonly<Record<SiteId, SiteSettings>>) {
    this.cleanup = cleanup;
    this.root = root;
    this.settings = settings;
  }

  /** Starts both locators, then the servers of site 2 and of site 1, and waits until the senders are connected. */
  static async start(cleanup: Cleanup, root: string, settings: Readonly<Record<SiteId, SiteSettings>>): Promise<Grid> {
    const grid = new Grid(cleanup, root, settings);
    for (const site of SITES) grid.locatorPorts.set(site, await freePort());
    for (const site of SITES) {
      await grid.startNew('locator', `locator-${site}`, site, [
        '--port', String(grid.locatorPorts.get(site)), '--site-id', String(site), '--remote-locators', grid.locatorAddress(otherSite(site)),
      ]);
    }
    for (const site of [2, 1] as const) {
      for (let index = 1; index <= SERVERS_PER_SITE; index++) {
        const name = `server${site}-${index}`;
        const dir = join(root, name);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'strait.yaml'), serverConfig(site, settings[site], await freePort()));
        const flags = ['--server-port', '0', '--site-id', String(site), '--locators', grid.locatorAddress(site)];
        await grid.startNew('server', name, site, flags);
      }
    }
    await grid.waitSendersConnected();
    return grid;
  }

  locatorAddress(site: SiteId): string {
    return `127.0.0.1[${this.locatorPorts.get(site)}]`;
  }

  member(name: string): Member {
    const member = this.members.find((candidate) => candidate.name === name);
    if (member === undefined) throw new Error(`no member ${name} in this grid`);
    return member;
  }

  servers(site?: SiteId): Member[] {
    return this.members.filter((member) => member.role === 'server' && (site === undefined || member.site === site));
  }

  /** The sites whose servers send to the other site. */
  sendingSites(): SiteId[] {
    return SITES.filter((site) => this.settings[site].sends);
  }

  private async startNew(role: MemberRole, name: string, site: SiteId, flags: readonly string[]): Promise<Member> {
    const dir = join(this.root, name);
    const started = await startMember(this.cleanup, role, name, dir, flags);
    const member: Member = {
      role, name, site, dir, flags, pid: started.pid, address: started.address, adminUrl: started.adminUrl, running: true, pids: [started.pid],
    };
    this.members.push(member);
    return member;
  }

  /** SIGKILL to each member's pid at once (no clean leave); resolves when they are all gone. */
  async kill(members: readonly Member[]): Promise<void> {
    for (const member of members) {
      process.kill(member.pid, 'SIGKILL');
      member.running = false;
    }
    for (const member of members) {
      if (!(await waitForExit(member.pid, KILL_EXIT_TIMEOUT_MS))) {
        throw new Error(`${member.name} (pid ${member.pid}) still runs ${KILL_EXIT_TIMEOUT_MS} ms after SIGKILL`);
      }
      this.cleanup.forget(member.pid);
    }
  }

  /** `strait start` again in the member's directory with its flags (a stale pid file is removed by start). */
  async restart(member: Member): Promise<void> {
    if (member.running) throw new Error(`${member.name} is running (pid ${member.pid}); kill it before restarting it`);
    const started = await startMember(this.cleanup, member.role, member.name, member.dir, member.flags);
    member.pid = started.pid;
    member.address = started.address;
    member.adminUrl = started.adminUrl;
    member.running = true;
    member.pids.push(started.pid);
    this.dropStatusClient(member.site);
  }

  /** The client address of a server, for a MemberConnection. */
  static clientAddress(member: Member): Address {
    return parseAddress(member.address);
  }

  /** A client of `site` through its locator, for sender status; reopened after a restart. */
  async statusClient(site: SiteId): Promise<StraitClient> {
    let client = this.statusClients.get(site);
    if (client === undefined) {
      const locators = this.locatorAddress(site);
      client = await connect({ locators, name: `soak-status-${site}`, requestTimeoutMs: STATUS_REQUEST_TIMEOUT_MS });
      this.statusClients.set(site, client);
    }
    return client;
  }

  private dropStatusClient(site: SiteId): void {
    const client = this.statusClients.get(site);
    this.statusClients.delete(site);
    void client?.close();
  }

  /** Every copy of the sender from `site` to the other site (primary and secondaries). */
  async senderCopies(site: SiteId): Promise<SenderStatus[]> {
    const client = await this.statusClient(site);
    return client.gatewaySenders(senderId(otherSite(site)), { signal: AbortSignal.timeout(STATUS_REQUEST_TIMEOUT_MS) });
  }

  /** The server of `site` hosting the primary copy of its sender. */
  async primarySender(site: SiteId): Promise<Member> {
    const copies = await this.senderCopies(site);
    const primary = copies.find((copy) => copy.role === 'primary');
    if (primary === undefined) {
      const seen = JSON.stringify(copies.map((copy) => [copy.member, copy.role, copy.state]));
      throw new Error(`no primary copy of ${senderId(otherSite(site))} at site ${site}: ${seen}`);
    }
    return this.member(primary.member);
  }

  /** A server of `site` hosting a secondary copy of its sender. */
  async secondarySender(site: SiteId): Promise<Member> {
    const copies = await this.senderCopies(site);
    const secondary = copies.find((copy) => copy.role === 'secondary');
    if (secondary === undefined) throw new Error(`no secondary copy of ${senderId(otherSite(site))} at site ${site}`);
    return this.member(secondary.member);
  }

  /** The server of the receiving site whose gateway receiver holds the sending site's primary connection. */
  async receivingServer(sendingSite: SiteId): Promise<Member> {
    const copies = await this.senderCopies(sendingSite);
    const connected = copies.find((copy) => copy.role === 'primary')?.connectedReceiver ?? null;
    const receivingSite = otherSite(sendingSite);
    if (connected === null) throw new Error(`the primary of ${senderId(receivingSite)} at site ${sendingSite} is connected to no receiver`);
    const client = await this.statusClient(receivingSite);
    const receivers = await client.gatewayReceivers({ signal: AbortSignal.timeout(STATUS_REQUEST_TIMEOUT_MS) });
    const holder = receivers.find((receiver) => receiver.address?.port === connected.port);
    if (holder === undefined) {
      throw new Error(`no receiver of site ${receivingSite} listens on port ${connected.port}: ${JSON.stringify(receivers)}`);
    }
    return this.member(holder.member);
  }

  /** Waits until the primary of every sender is connected to a receiver. */
  async waitSendersConnected(): Promise<void> {
    for (const site of this.sendingSites()) {
      let last = 'no status yet';
      const connected = await waitUntil(async () => {
        try {
          const primary = (await this.senderCopies(site)).find((copy) => copy.role === 'primary');
          last = primary === undefined ? 'no primary' : (primary.problem ?? `connected to ${JSON.stringify(primary.connectedReceiver)}`);
          return primary?.connectedReceiver !== null && primary?.connectedReceiver !== undefined;
        } catch (error) {
          last = error instanceof Error ? error.message : String(error);
          return false;
        }
      }, SENDERS_CONNECT_TIMEOUT_MS, 200);
      if (!connected) {
        throw new Error(`${senderId(otherSite(site))} at site ${site} not connected within ${SENDERS_CONNECT_TIMEOUT_MS} ms: ${last}`);
      }
    }
  }

  /** Dead letters held by the copies of the sender of `site`, summed. */
  async deadLetters(site: SiteId): Promise<number> {
    return (await this.senderCopies(site)).reduce((sum, copy) => sum + copy.deadLetters, 0);
  }

  /** `POST /regions` on one server of `site` (it creates the region on the site's other servers). */
  async createRegion(site: SiteId, persistent: boolean): Promise<string> {
    const server = this.servers(site).find((member) => member.running);
    if (server === undefined) throw new Error(`no running server at site ${site}`);
    const response = await fetch(`${server.adminUrl}/regions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: SOAK_REGION, type: 'replicate', persistent }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`POST ${server.adminUrl}/regions answered ${response.status}: ${text}`);
    return `POST ${server.name} /regions ${text}`;
  }

  /** Waits until every running server of `site` hosts the region. */
  async waitRegionEverywhere(site: SiteId, timeoutMs: number): Promise<boolean> {
    return waitUntil(async () => {
      for (const server of this.servers(site)) {
        const response = await fetch(`${server.adminUrl}/regions`).catch(() => undefined);
        if (response === undefined || !response.ok) return false;
        const body = (await response.json()) as { regions: { spec: { name: string } }[] };
        if (!body.regions.some((region) => region.spec.name === SOAK_REGION)) return false;
      }
      return true;
    }, timeoutMs, 100);
  }

  /** `strait resume gateway-sender --id <sender of site> --replay-dead-letters`, as an operator runs it. */
  async replayDeadLetters(site: SiteId): Promise<string> {
    const args = [
      'resume', 'gateway-sender', '--id', senderId(otherSite(site)), '--replay-dead-letters', '--locator', this.locatorAddress(site), '--json',
    ];
    const result = await strait(args);
    if (result.status !== 0) throw new Error(`strait ${args.join(' ')} exited ${result.status}: ${result.stderr.trim()}`);
    let answer = result.stdout.trim();
    try {
      answer = JSON.stringify(JSON.parse(answer));
    } catch {
      // Not JSON after all: keep it as printed.
    }
    return `strait ${args.join(' ')} → ${answer}`;
  }

  /** One series of a member's Prometheus metrics (`GET /metrics`), summed over its labels; undefined if absent or unreachable. */
  async metric(member: Member, name: string): Promise<number | undefined> {
    const signal = AbortSignal.timeout(STATUS_REQUEST_TIMEOUT_MS);
    const response = await fetch(`${member.adminUrl}/metrics`, { signal }).catch(() => undefined);
    if (response === undefined || !response.ok) return undefined;
    let sum: number | undefined;
    for (const line of (await response.text()).split('\n')) {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
      if (match?.[1] === name) sum = (sum ?? 0) + Number(match[3]);
    }
    return sum;
  }

  /** Closes the status clients and stops every member: servers (site 1 first), then locators. */
  async stop(): Promise<void> {
    for (const site of SITES) this.dropStatusClient(site);
    const order = [...this.servers(1), ...this.servers(2), ...this.members.filter((member) => member.role === 'locator')];
    for (const member of order) if (member.running) await this.cleanup.stop(member.pid);
  }
}
