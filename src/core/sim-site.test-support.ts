// Test support: one site (a locator and N servers) in the simulator, with clients on their own
// simulated hosts, for server-level scenario tests that want determinism and virtual time.
// Test code, exempt from the layering lint.

import { StraitClient, type ConnectOptions } from '../client/client.ts';
import { Connection } from '../protocol/connection.ts';
import type { RegionSpec, RequestBody, RequestOp, ResponseBody } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';
import { advanceWithPromises } from '../sim/drive.ts';
import { Simulator, type SimHost } from '../sim/simulator.ts';
import { FRAME_BYTES_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT, type MembershipTiming, type ServerConfig } from './config.ts';
import { Locator } from './locator.ts';
import type { MetricsSink } from './member-admin.ts';
import { checkingMetrics } from '../sim/checks.ts';
import { Server } from './server.ts';

export const SIM_SITE_TIMING: MembershipTiming = { memberTimeoutMs: 2000, heartbeatIntervalMs: 250, discoveryTimeoutMs: 500, requestTimeoutMs: 3000 };

export interface SimSiteOptions {
  readonly seed?: number;
  readonly servers?: number;
  readonly regions?: readonly RegionSpec[];
  readonly metrics?: MetricsSink;
  /** Changes to each server's configuration. */
  readonly server?: (name: string) => Partial<ServerConfig>;
}

export class SimSite {
  readonly sim: Simulator;
  readonly locatorAddress: Address;
  readonly servers = new Map<string, Server>();
  readonly serverHosts: SimHost[] = [];
  private readonly options: SimSiteOptions;
  private clientCount = 0;
  /** Internal errors members reported (a test asserts this stays empty). */
  readonly failures: string[] = [];

  constructor(options: SimSiteOptions = {}) {
    this.options = options;
    this.sim = new Simulator({ seed: options.seed ?? 1, log: 'collect', network: { baseDelayMs: 1, jitterMs: 1 } });
    const locatorHost = this.sim.host('locator-1');
    this.locatorAddress = { host: locatorHost.address, port: 10334 };
    new Locator(locatorHost.runtime(), {
      name: 'locator-1', site: 1, bind: this.locatorAddress, hostnameForClients: undefined, locators: [this.locatorAddress],
      remoteLocators: [], timing: SIM_SITE_TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, pid: undefined, httpAddress: undefined,
    }, checkingMetrics('locator-1', this.failures)).start(() => {});
    for (let index = 1; index <= (options.servers ?? 2); index++) this.serverHosts.push(this.sim.host(`server-${index}`));
    for (const host of this.serverHosts) this.startServer(host);
  }

  /** Starts (or restarts, after `host.crash()`) the server on `host`. */
  startServer(host: SimHost): Server {
    const config: ServerConfig = {
      name: host.name, site: 1, bind: { host: host.address, port: 40404 }, hostnameForClients: undefined, locators: [this.locatorAddress],
      regions: this.options.regions ?? [{ name: 'R', type: 'replicate', persistent: false }], timing: SIM_SITE_TIMING,
      frameBytesMax: FRAME_BYTES_MAX_DEFAULT, valueBytesMax: VALUE_BYTES_MAX_DEFAULT, gatewaySenders: [], gatewayReceiver: undefined,
      conflictResolver: undefined, pid: undefined, httpAddress: undefined, ...this.options.server?.(host.name),
    };
    const server = new Server(host.runtime(), config, this.options.metrics ?? checkingMetrics(host.name, this.failures));
    this.servers.set(host.name, server);
    server.start(() => {});
    return server;
  }

  server(name: string): Server {
    return this.servers.get(name)!;
  }

  /** A client on its own simulated host. */
  client(requestTimeoutMs = 10_000, options: Partial<ConnectOptions> = {}): StraitClient {
    const host = this.sim.host(`client-${++this.clientCount}`);
    return new StraitClient(host.runtime(), [this.locatorAddress], { role: 'admin', locators: [this.locatorAddress], requestTimeoutMs, ...options }, undefined);
  }

  /** Every live server is ready in the same view. */
  ready(): boolean {
    const servers = this.serverHosts.filter((host) => host.alive).map((host) => this.servers.get(host.name)!);
    return servers.length > 0 && servers.every((server) => server.currentState === 'ready' && server.view?.id === servers[0]!.view?.id)
      && servers.every((server) => server.view?.members.filter((member) => member.info.role === 'server').length === servers.length);
  }

  advance(forMs: number, until?: () => boolean): Promise<void> {
    return advanceWithPromises(this.sim, this.sim.nowMs + forMs, until);
  }

  /** Runs the simulation until `promise` settles (within `forMs` of virtual time) and returns its outcome. */
  async settle<T>(promise: Promise<T>, forMs = 60_000): Promise<T> {
    let settled = false;
    promise.then(() => { settled = true; }, () => { settled = true; });
    await this.advance(forMs, () => settled);
    if (!settled) throw new Error(`not settled within ${forMs} ms of virtual time (seed ${this.sim.seed})`);
    return promise;
  }

  /** Runs until `until` holds; throws naming `what` if it doesn't within `forMs` of virtual time. */
  async waitFor(what: string, until: () => boolean, forMs = 30_000): Promise<void> {
    await this.advance(forMs, until);
    if (!until()) throw new Error(`${what}: not within ${forMs} ms of virtual time (seed ${this.sim.seed})\n${this.sim.dumpLog().split('\n').slice(-40).join('\n')}`);
  }
}

/** A raw protocol connection from a new simulated host to one server, for sending exact requests. */
export function rawClient(site: SimSite, server: string): Connection {
  const runtime = site.sim.host(`raw-${server}-${site.sim.nowMs}`).runtime();
  const address = site.server(server).admin.status().info.address;
  return Connection.open(runtime, address, { local: { role: 'client', name: 'raw', site: null }, frameBytesMax: 1 << 24, requestTimeoutMs: 5000, requestsInFlightMax: 100 },
    { onOpen: () => {}, onRequest: () => {}, onPush: () => {}, onClose: () => {} });
}

/** One request over a raw connection, settled in the simulator. */
export function sendRaw<Op extends RequestOp>(site: SimSite, connection: Connection, op: Op, body: RequestBody<Op>): Promise<ResponseBody<Op>> {
  return site.settle(new Promise((resolve, reject) => connection.request(op, body, (error, response) => (error === undefined ? resolve(response as ResponseBody<Op>) : reject(error)))));
}
