// The controller against real (simulated) sites: three sites with no WAN settings become a ring
// from one topology; writes at each site reach the others; status shows every edge; a PATCH adds
// a fourth site; DELETE leaves every site as it was. A site that refuses rolls the other two back
// exactly; a controller killed mid-apply undoes what it started when it comes back; re-applying
// changes nothing; bad bodies list every problem with its path.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StraitClient, decodeValue } from '../client/client.ts';
import { FRAME_BYTES_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT, type MembershipTiming, type ServerConfig } from '../core/config.ts';
import { Locator } from '../core/locator.ts';
import { Server } from '../core/server.ts';
import { EMPTY_SITE_CONFIG, sameContents } from '../core/site-config.ts';
import type { StraitError } from '../errors.ts';
import type { SiteConfig } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';
import { checkingMetrics } from '../sim/checks.ts';
import { advanceWithPromises } from '../sim/drive.ts';
import { simSiteApi } from '../sim/sim-site-api.ts';
import { Simulator, type SimHost } from '../sim/simulator.ts';
import { Controller, type OperationAnswer, type TopologyStatus } from './controller.ts';
import { checkTopology } from './topology.ts';

const TIMING: MembershipTiming = { memberTimeoutMs: 2000, heartbeatIntervalMs: 250, discoveryTimeoutMs: 500, requestTimeoutMs: 3000 };
const LOCATOR_PORT = 10334;

interface SimSite {
  readonly name: string;
  readonly id: number;
  readonly locator: Address;
  readonly locatorNode: Locator;
  readonly servers: Server[];
  readonly serverHosts: SimHost[];
}

class Harness {
  readonly sim: Simulator;
  readonly sites = new Map<string, SimSite>();
  readonly failures: string[] = [];
  private readonly controllerHost: SimHost;
  private client: StraitClient;
  controller: Controller;

  constructor(seed = 1) {
    this.sim = new Simulator({ seed, log: 'collect', network: { baseDelayMs: 2, jitterMs: 2 } });
    this.controllerHost = this.sim.host('controller');
    this.client = this.newClient();
    this.controller = this.newController();
  }

  private newClient(): StraitClient {
    const nowhere = [{ host: '192.0.2.1', port: 9 }];
    return new StraitClient(this.controllerHost.runtime(), nowhere, { role: 'admin', locators: nowhere, requestTimeoutMs: 10_000 }, undefined);
  }

  /** kill -9 of the controller process, then a new one over the same disk. */
  restartController(): void {
    this.controllerHost.crash();
    this.client = this.newClient();
    this.controller = this.newController();
  }

  private newController(): Controller {
    const storage = this.controllerHost.runtime().storage;
    return new Controller(this.controllerHost.runtime(), { topologies: storage.open('topologies'), journal: storage.open('journal') }, (site) => {
      const target = this.sites.get(site.admin.replace('http://', ''));
      if (target === undefined) return simSiteApi(this.client, { host: '192.0.2.1', port: 9 });
      return simSiteApi(this.client, target.locator);
    }, this.controllerHost.runtime().log, { name: 'controller-1', edgeTimeoutMs: 20_000 });
  }

  addSite(name: string, id: number, servers = 1, serverConfig: Partial<ServerConfig> = {}): SimSite {
    const locatorHost = this.sim.host(`${name}-locator`);
    const locator = { host: locatorHost.address, port: LOCATOR_PORT };
    const locatorNode = new Locator(locatorHost.runtime(), {
      name: `${name}-locator`, site: id, bind: locator, hostnameForClients: undefined, locators: [locator], remoteLocators: [],
      timing: TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, pid: undefined, httpAddress: undefined,
    }, checkingMetrics(`${name}-locator`, this.failures));
    locatorNode.start(() => {});
    const site: SimSite = { name, id, locator, locatorNode, servers: [], serverHosts: [] };
    for (let index = 1; index <= servers; index++) {
      const host = this.sim.host(`${name}-server-${index}`);
      const server = new Server(host.runtime(), {
        name: `${name}-server-${index}`, site: id, bind: { host: host.address, port: 40404 }, hostnameForClients: undefined, locators: [locator],
        regions: [], timing: TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, valueBytesMax: VALUE_BYTES_MAX_DEFAULT, gatewaySenders: [],
        gatewayReceiver: undefined, conflictResolver: undefined, pid: undefined, httpAddress: undefined, ...serverConfig,
      }, checkingMetrics(`${name}-server-${index}`, this.failures));
      server.start(() => {});
      site.servers.push(server);
      site.serverHosts.push(host);
    }
    this.sites.set(name, site);
    return site;
  }

  async waitFor(what: string, until: () => boolean, forMs = 60_000): Promise<void> {
    await advanceWithPromises(this.sim, this.sim.nowMs + forMs, until);
    if (!until()) throw new Error(`${what}: not within ${forMs} ms of virtual time (seed ${this.sim.seed})\n${this.sim.dumpLog().split('\n').slice(-30).join('\n')}`);
  }

  async settle<T>(start: (callback: (error: StraitError | undefined, result: T | undefined) => void) => void, forMs = 120_000): Promise<T> {
    let outcome: { error?: StraitError; result?: T } | undefined;
    start((error, result) => {
      outcome = error !== undefined ? { error } : { result: result as T };
    });
    await this.waitFor('the controller answers', () => outcome !== undefined, forMs);
    if (outcome!.error !== undefined) throw outcome!.error;
    return outcome!.result!;
  }

  ready(): boolean {
    return [...this.sites.values()].every((site) => site.servers.every((server) => server.currentState === 'ready')
      && site.locatorNode.admin.view()?.members.filter((member) => member.ready).length === site.servers.length + 1);
  }

  config(site: string): SiteConfig {
    return this.sites.get(site)!.locatorNode.admin.siteConfig()!;
  }

  async put(site: string, key: string, value: string): Promise<void> {
    const host = this.sim.host(`client-${site}-${key}`);
    const client = new StraitClient(host.runtime(), [this.sites.get(site)!.locator], { role: 'admin', locators: [this.sites.get(site)!.locator], requestTimeoutMs: 30_000 }, undefined);
    let done = false;
    let failure: unknown;
    client.region<string>('orders').put(key, value).then(() => { done = true; }, (error: unknown) => { failure = error; done = true; });
    await this.waitFor(`put ${key} at ${site}`, () => done);
    if (failure !== undefined) throw failure;
    void client.close();
  }

  holds(site: string, key: string): string | undefined {
    const bytes = this.sites.get(site)!.servers[0]!.region('orders')?.get(key);
    return bytes === undefined ? undefined : decodeValue<string>(bytes);
  }
}

function ring(names: readonly string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sites: Object.fromEntries(names.map((name) => [name, { admin: `http://${name}`, receiver: { 'start-port': 5000, 'end-port': 5010 } }])),
    edges: names.map((name, index) => [name, names[(index + 1) % names.length]]),
    regions: { orders: { type: 'replicate', persistent: true } },
    tuning: { 'batch-time-interval': 20 },
    ...extra,
  };
}

async function threeSites(): Promise<Harness> {
  const harness = new Harness();
  harness.addSite('east', 1, 2);
  harness.addSite('west', 2);
  harness.addSite('north', 3);
  await harness.waitFor('the sites form', () => harness.ready());
  return harness;
}

describe('topologies', () => {
  it('lists every problem of a bad topology with its JSON path and code', () => {
    const problems = checkTopology({
      sites: { a: { admin: 'ftp://x', extra: 1 }, b: { admin: 'http://b', receiver: { 'start-port': 6000, 'end-port': 5000 } } },
      edges: [['a', 'zz'], ['a', 'a'], ['a', 'b'], ['a', 'b']],
      regions: { r: { type: 'partition' } },
    }, 'bad name!');
    const codes = problems.map((problem) => `${problem.path} ${problem.code}`);
    assert.ok(codes.includes('/name STRAIT_TOPOLOGY_FIELD_INVALID'), codes.join('\n'));
    assert.ok(codes.includes('/sites/a/extra STRAIT_TOPOLOGY_FIELD_UNKNOWN'), codes.join('\n'));
    assert.ok(codes.some((code) => code.startsWith('/sites/a/admin ')), codes.join('\n'));
    assert.ok(codes.some((code) => code.startsWith('/regions/r/type ')), codes.join('\n'));
    const graph = checkTopology({
      sites: { a: { admin: 'http://a' }, b: { admin: 'http://b', receiver: { 'start-port': 6000, 'end-port': 5000 } } },
      edges: [['a', 'zz'], ['a', 'a'], ['a', 'b'], ['a', 'b']],
      regions: { r: {} },
    }, 'ok').map((problem) => `${problem.path} ${problem.code}`);
    assert.deepEqual(graph.sort(), [
      '/edges/0/1 STRAIT_TOPOLOGY_EDGE_UNKNOWN_SITE', '/edges/1 STRAIT_TOPOLOGY_EDGE_SELF', '/edges/3 STRAIT_TOPOLOGY_EDGE_DUPLICATE',
      '/sites/a/receiver STRAIT_TOPOLOGY_FIELD_REQUIRED', '/sites/b/receiver/end-port STRAIT_TOPOLOGY_FIELD_INVALID',
    ].sort());
  });

  it('a ring of three sites from one topology replicates everywhere; PATCH adds a site; DELETE leaves every site as it was', async () => {
    const harness = await threeSites();
    const before = Object.fromEntries([...harness.sites.keys()].map((site) => [site, harness.config(site)]));
    const dry = await harness.settle<OperationAnswer>((callback) => harness.controller.apply('ring', ring(['east', 'west', 'north']), true, callback));
    assert.equal(dry.dryRun, true);
    assert.deepEqual(dry.plan['east']!.map((step) => step.change), [
      'create region orders', 'create gateway-receiver', 'create gateway-sender ring--to-west', 'alter remote-locators', 'alter region orders',
    ]);
    assert.ok(sameContents(harness.config('east'), before['east']!), 'a dry run touches nothing');

    const applied = await harness.settle<OperationAnswer>((callback) => harness.controller.apply('ring', ring(['east', 'west', 'north']), false, callback));
    assert.equal(applied.changed, true);
    assert.ok(applied.progress.every((step) => step.state === 'done'), JSON.stringify(applied.progress));
    assert.equal(applied.receivers['west']!.length, 1);
    for (const site of ['east', 'west', 'north']) await harness.put(site, `from-${site}`, site);
    await harness.waitFor('every write at every site', () => ['east', 'west', 'north'].every((site) => ['east', 'west', 'north'].every((from) => harness.holds(site, `from-${from}`) === from)));

    const again = await harness.settle<OperationAnswer>((callback) => harness.controller.apply('ring', ring(['east', 'west', 'north']), false, callback));
    assert.equal(again.changed, false, 'applying the same topology twice changes nothing');

    const status = await harness.settle<TopologyStatus>((callback) => harness.controller.status('ring', callback));
    assert.deepEqual(status.edges.map((edge) => `${edge.from}>${edge.to} ${edge.state}`), ['east>west connected', 'west>north connected', 'north>east connected']);
    assert.ok(status.sites.every((site) => site.reachable));

    harness.addSite('south', 4);
    await harness.waitFor('south forms', () => harness.ready());
    await harness.settle<OperationAnswer>((callback) => harness.controller.patch('ring', {
      sites: { south: { admin: 'http://south', receiver: { 'start-port': 5000, 'end-port': 5010 } } },
      edges: { add: [['north', 'south'], ['south', 'east']], remove: [['north', 'east']] },
    }, false, callback));
    await harness.put('south', 'from-south', 'south');
    await harness.put('east', 'east-after-patch', 'east');
    // WAN replication ships changes: south gets what is written once its edges exist.
    await harness.waitFor('south reaches the ring and the ring reaches south', () => ['east', 'west', 'north'].every((site) => harness.holds(site, 'from-south') === 'south')
      && harness.holds('south', 'east-after-patch') === 'east');
    assert.ok(!harness.config('north').senders.some((sender) => sender.id === 'ring--to-east'), 'the removed edge is gone');

    await harness.settle<OperationAnswer>((callback) => harness.controller.remove('ring', false, callback));
    for (const site of ['east', 'west', 'north', 'south']) {
      const config = harness.config(site);
      assert.ok(sameContents(config, before[site] ?? EMPTY_SITE_CONFIG), `${site} is as it was: ${JSON.stringify(config)}`);
      assert.equal(harness.sites.get(site)!.servers[0]!.region('orders'), undefined);
    }
    assert.deepEqual(harness.controller.list(), []);
    assert.deepEqual(harness.failures, []);
  });

  it('a third site that refuses leaves the other two exactly as they were, and the error names the site and step', async () => {
    const harness = new Harness();
    harness.addSite('east', 1);
    harness.addSite('west', 2);
    // north's server declares its own receiver: the topology's conflicts with it.
    harness.addSite('north', 3, 1, { gatewayReceiver: { startPort: 7000, endPort: 7001, bindAddress: undefined, hostnameForClients: undefined, manualStart: false } });
    await harness.waitFor('the sites form', () => harness.ready());
    const before = Object.fromEntries(['east', 'west', 'north'].map((site) => [site, harness.config(site)]));
    await assert.rejects(harness.settle((callback) => harness.controller.apply('ring', ring(['east', 'west', 'north']), false, callback)), (error: StraitError & { progress?: { state: string }[] }) => {
      assert.equal(error.code, 'STRAIT_SITE_REFUSED');
      assert.match(error.message, /site north, step "create gateway-receiver"/);
      assert.ok(error.progress?.some((step) => step.state === 'undone'), 'the steps done were undone');
      return true;
    });
    for (const site of ['east', 'west', 'north']) assert.ok(sameContents(harness.config(site), before[site]!), `${site} is exactly as it was`);
    for (const site of ['east', 'west']) assert.equal(harness.sites.get(site)!.servers[0]!.region('orders'), undefined);
    assert.deepEqual(harness.controller.list(), []);
  });

  it('an unreachable site or a repeated site id fails before anything changes', async () => {
    const harness = new Harness();
    harness.addSite('east', 1);
    harness.addSite('west', 1);
    await harness.waitFor('the sites form', () => harness.ready());
    await assert.rejects(harness.settle((callback) => harness.controller.apply('pair', ring(['east', 'west']), false, callback)), (error: StraitError) => {
      assert.equal(error.code, 'STRAIT_SITE_REFUSED');
      assert.match(error.message, /site id 1 is also the id of site east/);
      return true;
    });
    await assert.rejects(harness.settle((callback) => harness.controller.apply('far', ring(['east', 'nowhere']), false, callback)), { code: 'STRAIT_SITE_UNREACHABLE' });
    assert.ok(sameContents(harness.config('east'), EMPTY_SITE_CONFIG));
  });

  it('a rollback that can not reach a site keeps the undo in the journal and finishes it once the site answers', async () => {
    const harness = await threeSites();
    let failure: StraitError | undefined;
    harness.controller.apply('ring', ring(['east', 'west', 'north']), false, (error) => { failure = error; });
    // Cut east off from the controller as soon as it holds the region.
    await harness.waitFor('east holds the region', () => harness.config('east').regions.length === 1);
    harness.sim.network.partition(['controller'], ['east-locator']);
    await harness.waitFor('the apply fails', () => failure !== undefined, 120_000);
    assert.equal(harness.controller.list().length, 0);
    assert.equal(harness.config('east').regions.length, 1, 'east could not be reached to undo');
    await assert.rejects(harness.settle((callback) => harness.controller.apply('ring', ring(['east', 'west', 'north']), false, callback)), { code: 'STRAIT_TOPOLOGY_BUSY' });
    harness.sim.network.heal();
    await harness.waitFor('the undo reached east', () => harness.config('east').regions.length === 0, 60_000);
    for (const site of ['west', 'north']) assert.equal(harness.config(site).regions.length, 0);
    const during = await harness.settle<TopologyStatus>((callback) => harness.controller.status('ring', callback)).catch((error: StraitError) => error.code);
    assert.ok(during === 'STRAIT_TOPOLOGY_NOT_FOUND' || (during as TopologyStatus).state === 'recovering', JSON.stringify(during));
    await harness.waitFor('the journal is clear and the topology free again', () => harness.controller.idle(), 30_000);
    const again = await harness.settle<OperationAnswer>((callback) => harness.controller.apply('ring', ring(['east', 'west', 'north']), true, callback));
    assert.equal(again.dryRun, true, 'a new apply is accepted');
  });

  it('a controller killed mid-apply undoes what it started when it comes back', async () => {
    const harness = await threeSites();
    harness.controller.apply('ring', ring(['east', 'west', 'north']), false, () => {});
    // Once every region is created, kill the controller: the receivers phase is under way.
    await harness.waitFor('regions created', () => ['east', 'west', 'north'].every((site) => harness.config(site).regions.length === 1));
    harness.restartController();
    let problems: string[] | undefined;
    harness.controller.start((found) => { problems = found; });
    await harness.waitFor('the restarted controller recovered', () => problems !== undefined);
    assert.deepEqual(problems, []);
    for (const site of ['east', 'west', 'north']) assert.equal(harness.config(site).regions.length, 0, `${site}: ${JSON.stringify(harness.config(site))}`);
    assert.deepEqual(harness.controller.list(), []);
  });
});
