// A seeded simulation of the control plane: four sites (real locators and servers in the
// simulator) and a controller applying, patching and deleting one topology while the
// controller is killed and restarted, and partitions cut it off from sites. After the faults
// the network heals, the controller is running and idle, and the checkers assert:
//   - the journal is empty and nothing is recovering;
//   - every site's configuration holds exactly what the controller's record says the topology
//     owns: what planning the recorded topology from empty sites produces (nothing, when the
//     controller holds no topology) — no half-applied or half-rolled-back topology remains;
//   - every edge of the recorded topology connects.

import { advanceWithPromises } from './drive.ts';
import { StraitClient } from '../client/client.ts';
import { FRAME_BYTES_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT, type MembershipTiming } from '../core/config.ts';
import { Locator } from '../core/locator.ts';
import { Server } from '../core/server.ts';
import { applyChange, EMPTY_SITE_CONFIG } from '../core/site-config.ts';
import type { SiteConfig } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';
import { Controller, type TopologyStatus } from '../controller/controller.ts';
import { planTopology, type SiteFacts } from '../controller/plan.ts';
import { checkingMetrics } from './checks.ts';
import { simSiteApi } from './sim-site-api.ts';
import { Simulator, type SimHost } from './simulator.ts';

const TIMING: MembershipTiming = { memberTimeoutMs: 2000, heartbeatIntervalMs: 250, discoveryTimeoutMs: 500, requestTimeoutMs: 3000 };
const SITES = ['east', 'west', 'north', 'south'] as const;
const REGIONS = ['orders', 'users'] as const;
const LOCATOR_PORT = 10334;

interface Site {
  readonly name: string;
  readonly id: number;
  readonly locatorHost: SimHost;
  readonly locator: Address;
  locatorNode: Locator;
}

export interface ControllerSimulationOptions {
  readonly seed: number;
  /** Operations (apply, patch, delete) to run. */
  readonly operations?: number;
  readonly faults?: boolean;
  readonly log?: 'silent' | 'collect' | 'print';
}

export class ControllerSimulation {
  readonly sim: Simulator;
  private readonly options: Required<ControllerSimulationOptions>;
  private readonly sites = new Map<string, Site>();
  private readonly failures: string[] = [];
  private readonly controllerHost: SimHost;
  private client!: StraitClient;
  private controller!: Controller;
  readonly stats = { operations: 0, succeeded: 0, failed: 0, crashes: 0, partitions: 0 };

  constructor(options: ControllerSimulationOptions) {
    this.options = { operations: 8, faults: true, log: 'collect', ...options };
    this.sim = new Simulator({ seed: options.seed, log: this.options.log, network: { baseDelayMs: 2, jitterMs: 3 } });
    this.controllerHost = this.sim.host('controller');
    SITES.forEach((name, index) => {
      const locatorHost = this.sim.host(`${name}-locator`);
      const locator = { host: locatorHost.address, port: LOCATOR_PORT };
      const site: Site = { name, id: index + 1, locatorHost, locator, locatorNode: this.startLocator(name, index + 1, locatorHost, locator) };
      this.sites.set(name, site);
      const serverHost = this.sim.host(`${name}-server`);
      new Server(serverHost.runtime(), {
        name: `${name}-server`, site: index + 1, bind: { host: serverHost.address, port: 40404 }, hostnameForClients: undefined, locators: [locator],
        regions: [], timing: TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, valueBytesMax: VALUE_BYTES_MAX_DEFAULT, gatewaySenders: [],
        gatewayReceiver: undefined, conflictResolver: undefined, pid: undefined, httpAddress: undefined,
      }, checkingMetrics(`${name}-server`, this.failures)).start(() => {});
    });
    this.startController();
  }

  private startLocator(name: string, id: number, host: SimHost, locator: Address): Locator {
    const node = new Locator(host.runtime(), {
      name: `${name}-locator`, site: id, bind: locator, hostnameForClients: undefined, locators: [locator], remoteLocators: [],
      timing: TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, pid: undefined, httpAddress: undefined,
    }, checkingMetrics(`${name}-locator`, this.failures));
    node.start(() => {});
    return node;
  }

  private startController(): void {
    const runtime = this.controllerHost.runtime();
    const nowhere = [{ host: '192.0.2.1', port: 9 }];
    this.client = new StraitClient(runtime, nowhere, { role: 'admin', locators: nowhere, requestTimeoutMs: 10_000 }, undefined);
    this.controller = new Controller(runtime, { topologies: runtime.storage.open('topologies'), journal: runtime.storage.open('journal') }, (site) => {
      const target = this.sites.get(site.admin.replace('http://', ''));
      return simSiteApi(this.client, target?.locator ?? { host: '192.0.2.1', port: 9 });
    }, runtime.log, { name: 'controller', edgeTimeoutMs: 15_000 });
    this.controller.start((problems) => {
      for (const problem of problems) this.sim.log.warn({}, `controller recovery: ${problem}`);
    });
  }

  private advance(forMs: number, until?: () => boolean): Promise<void> {
    return advanceWithPromises(this.sim, this.sim.nowMs + forMs, until);
  }

  private topology(sites: readonly string[], edges: readonly (readonly [string, string])[], regions: readonly string[], batchTimeInterval: number): Record<string, unknown> {
    return {
      sites: Object.fromEntries(sites.map((name) => [name, { admin: `http://${name}`, receiver: { 'start-port': 5000, 'end-port': 5010 } }])),
      edges,
      regions: Object.fromEntries(regions.map((name) => [name, { type: 'replicate' }])),
      tuning: { 'batch-time-interval': batchTimeInterval },
    };
  }

  /** A random topology over at least two sites: a ring of them, plus maybe one extra edge. */
  private randomTopology(): Record<string, unknown> {
    const random = this.sim.random;
    const sites = SITES.filter(() => random.chance(0.75));
    while (sites.length < 2) sites.push(SITES.find((site) => !sites.includes(site))!);
    const edges: [string, string][] = sites.map((site, index) => [site, sites[(index + 1) % sites.length]!]);
    if (sites.length > 2 && random.chance(0.5)) edges.push([sites[1]!, sites[0]!]);
    const regions = REGIONS.filter(() => random.chance(0.7));
    if (regions.length === 0) regions.push('orders');
    return this.topology(sites, edges, regions, 20 + random.int(100));
  }

  async run(): Promise<void> {
    const ready = () => [...this.sites.values()].every((site) => site.locatorNode.admin.view()?.members.filter((member) => member.ready).length === 2);
    await this.advance(30_000, ready);
    if (!ready()) throw this.failure('the sites did not form within 30 s of virtual time');
    const random = this.sim.random;
    for (let operation = 0; operation < this.options.operations; operation++) {
      this.stats.operations += 1;
      let answered = false;
      const record = this.controller.record('t');
      const callback = (error: unknown) => {
        answered = true;
        if (error === undefined) this.stats.succeeded += 1;
        else this.stats.failed += 1;
      };
      if (record === undefined || random.chance(0.4)) {
        this.controller.apply('t', this.randomTopology(), false, callback);
      } else if (random.chance(0.5)) {
        const next = this.randomTopology() as { sites: Record<string, unknown>; edges: [string, string][]; regions: Record<string, unknown>; tuning: Record<string, number> };
        const sites = Object.fromEntries([...Object.keys(record.topology.sites).filter((site) => next.sites[site] === undefined).map((site) => [site, null]), ...Object.entries(next.sites)]);
        const regions = Object.fromEntries([...Object.keys(record.topology.regions).filter((region) => next.regions[region] === undefined).map((region) => [region, null]), ...Object.entries(next.regions)]);
        this.controller.patch('t', { sites: sites as never, regions: regions as never, edges: { remove: record.topology.edges, add: next.edges }, tuning: next.tuning }, false, callback);
      } else {
        this.controller.remove('t', false, callback);
      }
      const incarnation = this.controllerHost.incarnation;
      if (this.options.faults) this.scheduleFault();
      // The answer, or a crash (the answer then never comes: the restarted controller recovers).
      await this.advance(120_000, () => answered || this.controllerHost.incarnation !== incarnation);
      await this.advance(30_000, () => this.controllerHost.alive && this.controller.idle());
    }
    // Let the last fault (a kill lands at most 400 ms in, its restart 3 s later) play out.
    await this.advance(4000);
    this.sim.network.heal();
    await this.advance(120_000, () => this.controllerHost.alive && this.controller.idle());
    await this.check();
  }

  /** One fault during the operation just started: the controller killed, or cut off from a site for a while. */
  private scheduleFault(): void {
    const random = this.sim.random;
    const kind = random.int(3);
    const at = random.int(400);
    if (kind === 0) {
      // kill -9, and a new process a little later (it may hit after the operation answered).
      this.sim.schedule(at, () => {
        this.controllerHost.crash();
        this.stats.crashes += 1;
        this.sim.schedule(random.int(3000), () => this.startController());
      });
    } else if (kind === 1) {
      const victim = this.sites.get(random.pick(SITES))!;
      const durationMs = 500 + random.int(15_000);
      this.sim.schedule(at, () => {
        this.stats.partitions += 1;
        this.sim.network.partition(['controller'], [victim.locatorHost.name]);
        this.sim.schedule(durationMs, () => this.sim.network.heal());
      });
    }
  }

  private config(site: string): SiteConfig {
    return this.sites.get(site)!.locatorNode.admin.siteConfig()!;
  }

  /** A configuration's contents in a canonical order, for comparing what is there with what should be. */
  private canonical(config: SiteConfig): string {
    const sortBy = <T>(items: readonly T[], key: (item: T) => string) => [...items].sort((a, b) => key(a).localeCompare(key(b)));
    return JSON.stringify({
      regions: sortBy(config.regions.map((region) => ({ ...region, gatewaySenderIds: [...(region.gatewaySenderIds ?? [])].sort() })), (region) => region.name),
      senders: sortBy(config.senders, (sender) => sender.id),
      receiver: config.receiver,
      remoteLocators: sortBy(config.remoteLocators, (address) => `${address.host}:${address.port}`),
    });
  }

  async check(): Promise<void> {
    if (this.failures.length > 0) throw this.failure(this.failures.join('; '));
    if (!this.controller.idle()) throw this.failure('the controller is not idle 120 s after the heal: an operation or a recovery is stuck');
    const record = this.controller.record('t');
    const facts: Record<string, SiteFacts> = {};
    for (const site of this.sites.values()) {
      facts[site.name] = { site: site.id, locators: [site.locator], servers: 1, receivers: [], config: EMPTY_SITE_CONFIG };
    }
    const plan = planTopology(record?.topology ?? null, [...SITES], {}, facts);
    for (const site of SITES) {
      let expected = EMPTY_SITE_CONFIG;
      for (const step of plan.steps.filter((candidate) => candidate.site === site)) expected = applyChange(expected, step.change, this.sites.get(site)!.id).config;
      const actual = this.config(site);
      if (this.canonical(actual) !== this.canonical(expected)) {
        throw this.failure(`site ${site} holds ${this.canonical(actual)}, but the controller's record (${record === undefined ? 'no topology' : JSON.stringify(record.topology.edges)}) says ${this.canonical(expected)}`);
      }
    }
    if (record !== undefined) {
      let status: TopologyStatus | undefined;
      let statusError: string | undefined;
      const connected = () => status !== undefined && status.edges.every((edge) => edge.state === 'connected');
      // Ask twice a second (not at every simulated step: each ask is a round of requests).
      const ask = () => {
        if (connected()) return;
        this.controller.status('t', (error, result) => {
          status = result;
          statusError = error?.message;
        });
        this.controllerHost.runtime().setTimer(500, ask);
      };
      ask();
      await this.advance(30_000, connected);
      if (!connected()) throw this.failure(`the recorded topology's edges do not all connect: ${status === undefined ? `no status (${statusError ?? 'no answer'})` : JSON.stringify(status.edges.map((edge) => [edge.from, edge.to, edge.state, edge.lastError]))}`);
    }
  }

  private failure(reason: string): Error {
    return new Error(`${reason} (seed ${this.sim.seed}); replay: npm run sim -- --controller --seed ${this.sim.seed} --verbose`);
  }
}

export async function runControllerSeed(seed: number, options: Partial<ControllerSimulationOptions> = {}): Promise<string> {
  const simulation = new ControllerSimulation({ seed, ...options });
  try {
    await simulation.run();
  } catch (error) {
    if (options.log !== 'print' && error instanceof Error) error.message += `\n--- last log lines ---\n${simulation.sim.dumpLog().split('\n').slice(-120).join('\n')}`;
    throw error;
  }
  const { operations, succeeded, failed, crashes, partitions } = simulation.stats;
  return `seed ${seed}: ok — ${operations} operations (${succeeded} succeeded, ${failed} failed), ${crashes} controller crashes, ${partitions} partitions, ${Math.round(simulation.sim.nowMs / 1000)} s virtual`;
}
