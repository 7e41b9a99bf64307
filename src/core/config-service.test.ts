// The site configuration held by the locators (config-service.ts) and run by the servers
// (server-configuration.ts), in the simulator: agreement across locators, forwarding to the
// coordinator, servers applying changes and receiving them when they (re)start, rollback when
// one server refuses, the quorum, recovery from disk, and the drain rule for senders.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../errors.ts';
import type { ConfigChange, ConfigChangeResult, RegionSpec, SiteConfig } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';
import { advanceWithPromises } from '../sim/drive.ts';
import { checkingMetrics } from '../sim/checks.ts';
import { Simulator, type SimHost } from '../sim/simulator.ts';
import { StraitClient, decodeValue } from '../client/client.ts';
import { FRAME_BYTES_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT, type GatewaySenderSpec, type ServerConfig } from './config.ts';
import { Locator } from './locator.ts';
import { Server } from './server.ts';
import { SIM_SITE_TIMING } from './sim-site.test-support.ts';
import { applyChange, EMPTY_SITE_CONFIG, sameContents, senderSpecOf } from './site-config.ts';
import { merge } from './server-configuration.ts';

const LOCATOR_PORT = 10334;

class ConfigSite {
  readonly sim: Simulator;
  readonly locatorHosts: SimHost[] = [];
  readonly serverHosts: SimHost[] = [];
  readonly locators = new Map<string, Locator>();
  readonly servers = new Map<string, Server>();
  readonly failures: string[] = [];
  readonly locatorAddresses: Address[];
  private readonly serverConfig: (name: string) => Partial<ServerConfig>;
  private clients = 0;

  constructor(options: { seed?: number; locators?: number; servers?: number; server?: (name: string) => Partial<ServerConfig> } = {}) {
    this.sim = new Simulator({ seed: options.seed ?? 1, log: 'collect', network: { baseDelayMs: 1, jitterMs: 1 } });
    this.serverConfig = options.server ?? (() => ({}));
    for (let index = 1; index <= (options.locators ?? 3); index++) this.locatorHosts.push(this.sim.host(`locator-${index}`));
    this.locatorAddresses = this.locatorHosts.map((host) => ({ host: host.address, port: LOCATOR_PORT }));
    for (const host of this.locatorHosts) this.startLocator(host);
    for (let index = 1; index <= (options.servers ?? 2); index++) this.serverHosts.push(this.sim.host(`server-${index}`));
    for (const host of this.serverHosts) this.startServer(host);
  }

  startLocator(host: SimHost): Locator {
    const locator = new Locator(host.runtime(), {
      name: host.name, site: 1, bind: { host: host.address, port: LOCATOR_PORT }, hostnameForClients: undefined, locators: this.locatorAddresses,
      remoteLocators: [], timing: SIM_SITE_TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, pid: undefined, httpAddress: undefined,
    }, checkingMetrics(host.name, this.failures));
    this.locators.set(host.name, locator);
    locator.start(() => {});
    return locator;
  }

  startServer(host: SimHost): Server {
    const server = new Server(host.runtime(), {
      name: host.name, site: 1, bind: { host: host.address, port: 40404 }, hostnameForClients: undefined, locators: this.locatorAddresses,
      regions: [], timing: SIM_SITE_TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, valueBytesMax: VALUE_BYTES_MAX_DEFAULT,
      gatewaySenders: [], gatewayReceiver: undefined, conflictResolver: undefined, pid: undefined, httpAddress: undefined,
      ...this.serverConfig(host.name),
    }, checkingMetrics(host.name, this.failures));
    this.servers.set(host.name, server);
    server.start(() => {});
    return server;
  }

  locator(name: string): Locator {
    return this.locators.get(name)!;
  }

  server(name: string): Server {
    return this.servers.get(name)!;
  }

  client(): StraitClient {
    const host = this.sim.host(`client-${++this.clients}`);
    return new StraitClient(host.runtime(), this.locatorAddresses, { role: 'admin', locators: this.locatorAddresses, requestTimeoutMs: 10_000 }, undefined);
  }

  liveServers(): Server[] {
    return this.serverHosts.filter((host) => host.alive).map((host) => this.server(host.name));
  }

  ready(): boolean {
    const servers = this.liveServers();
    const locators = this.locatorHosts.filter((host) => host.alive).map((host) => this.locator(host.name));
    return locators.every((locator) => locator.admin.view()?.members.filter((member) => member.info.role === 'locator').length === locators.length)
      && servers.every((server) => server.currentState === 'ready')
      && servers.every((server) => server.view?.members.filter((member) => member.info.role === 'server' && member.ready).length === servers.length);
  }

  async waitFor(what: string, until: () => boolean, forMs = 30_000): Promise<void> {
    await advanceWithPromises(this.sim, this.sim.nowMs + forMs, until);
    if (!until()) throw new Error(`${what}: not within ${forMs} ms of virtual time (seed ${this.sim.seed})\n${this.sim.dumpLog().split('\n').slice(-40).join('\n')}`);
  }

  /** Runs `change` through locator `via` and waits for its answer. */
  async change(via: string, change: ConfigChange): Promise<ConfigChangeResult> {
    let outcome: { error?: StraitError; result?: ConfigChangeResult } | undefined;
    this.locator(via).admin.changeConfig(change, (error, result) => {
      outcome = error !== undefined ? { error } : { result: result! };
    });
    await this.waitFor(`the answer to ${change.kind}`, () => outcome !== undefined, 120_000);
    if (outcome!.error !== undefined) throw outcome!.error;
    return outcome!.result!;
  }

  configOf(locator: string): SiteConfig {
    return this.locator(locator).admin.siteConfig()!;
  }
}

const ORDERS: RegionSpec = { name: 'orders', type: 'replicate', persistent: true };

async function readySite(options: ConstructorParameters<typeof ConfigSite>[0] = {}): Promise<ConfigSite> {
  const site = new ConfigSite(options);
  await site.waitFor('the site ready', () => site.ready());
  return site;
}

describe('site configuration values', () => {
  it('creating what exists with the same settings changes nothing; with other settings it is a conflict', () => {
    const created = applyChange(EMPTY_SITE_CONFIG, { kind: 'createRegion', spec: ORDERS }, 1);
    assert.equal(created.changed, true);
    assert.equal(applyChange(created.config, { kind: 'createRegion', spec: ORDERS }, 1).changed, false);
    assert.throws(() => applyChange(created.config, { kind: 'createRegion', spec: { ...ORDERS, persistent: false } }, 1), { code: 'STRAIT_CONFIG_CONFLICT' });
    assert.throws(() => applyChange(created.config, { kind: 'alterRegion', name: 'missing', gatewaySenderIds: [] }, 1), { code: 'STRAIT_CONFIG_NOT_FOUND' });
    assert.equal(applyChange(created.config, { kind: 'destroyRegion', name: 'missing' }, 1).changed, false);
  });

  it('a sender must exist before a region names it, and can\'t be destroyed while a region ships through it', () => {
    assert.throws(() => applyChange(EMPTY_SITE_CONFIG, { kind: 'createRegion', spec: { ...ORDERS, gatewaySenderIds: ['to-2'] } }, 1), { code: 'STRAIT_CONFIG_NOT_FOUND' });
    assert.throws(() => applyChange(EMPTY_SITE_CONFIG, { kind: 'createSender', spec: { id: 'to-1', remoteSiteId: 1 } }, 1), { code: 'STRAIT_CONFIG_INVALID' });
    let config = applyChange(EMPTY_SITE_CONFIG, { kind: 'createSender', spec: { id: 'to-2', remoteSiteId: 2 } }, 1).config;
    assert.equal(config.senders[0]!.batchSize, 100, 'defaults are filled in, as strait.yaml fills them');
    config = applyChange(config, { kind: 'createRegion', spec: { ...ORDERS, gatewaySenderIds: ['to-2'] } }, 1).config;
    assert.throws(() => applyChange(config, { kind: 'destroySender', id: 'to-2' }, 1), { code: 'STRAIT_CONFIG_CONFLICT' });
    config = applyChange(config, { kind: 'alterRegion', name: 'orders', gatewaySenderIds: [] }, 1).config;
    assert.equal(applyChange(config, { kind: 'destroySender', id: 'to-2' }, 1).config.senders.length, 0);
    const altered = applyChange(config, { kind: 'alterSender', id: 'to-2', batchSize: 500 }, 1);
    assert.equal(altered.config.senders[0]!.batchSize, 500);
    assert.equal(applyChange(altered.config, { kind: 'alterSender', id: 'to-2', batchSize: 500 }, 1).changed, false);
  });

  it('a partitioned region ships through parallel senders only, a replicate region through serial ones', () => {
    let config = applyChange(EMPTY_SITE_CONFIG, { kind: 'createSender', spec: { id: 'serial', remoteSiteId: 2 } }, 1).config;
    config = applyChange(config, { kind: 'createSender', spec: { id: 'parallel', remoteSiteId: 2, parallel: true } }, 1).config;
    assert.equal(senderSpecOf(config.senders[1]!).parallel, true);
    const partitioned: RegionSpec = { name: 'sessions', type: 'partition', persistent: false };
    assert.throws(() => applyChange(config, { kind: 'createRegion', spec: { ...partitioned, gatewaySenderIds: ['serial'] } }, 1), { code: 'STRAIT_CONFIG_INVALID', message: /serial; the partitioned region sessions needs parallel senders/ });
    assert.throws(() => applyChange(config, { kind: 'createRegion', spec: { ...ORDERS, gatewaySenderIds: ['parallel'] } }, 1), { code: 'STRAIT_CONFIG_INVALID', message: /parallel; the replicate region orders can only use serial senders/ });
    config = applyChange(config, { kind: 'createRegion', spec: { ...partitioned, gatewaySenderIds: ['parallel'] } }, 1).config;
    assert.throws(() => applyChange(config, { kind: 'alterRegion', name: 'sessions', gatewaySenderIds: ['serial'] }, 1), { code: 'STRAIT_CONFIG_INVALID' });
    assert.deepEqual(config.regions[0]!.gatewaySenderIds, ['parallel']);
    assert.throws(() => applyChange(config, { kind: 'createSender', spec: { id: 'x', remoteSiteId: 2, orderPolicy: 'partition' } }, 1), { code: 'STRAIT_CONFIG_INVALID', message: /only parallel senders have buckets/ });
    assert.throws(() => applyChange(config, { kind: 'createSender', spec: { id: 'y', remoteSiteId: 2, parallel: true, orderPolicy: 'thread' } }, 1), { code: 'STRAIT_CONFIG_INVALID' });
  });

  it('remote-locators are kept without repeats; the receiver only once', () => {
    const address = { host: '10.0.0.2', port: 10334 };
    const config = applyChange(EMPTY_SITE_CONFIG, { kind: 'setRemoteLocators', addresses: [address, address] }, 1).config;
    assert.deepEqual(config.remoteLocators, [address]);
    const withReceiver = applyChange(config, { kind: 'createReceiver', spec: { startPort: 5000, endPort: 5010 } }, 1).config;
    assert.throws(() => applyChange(withReceiver, { kind: 'createReceiver', spec: { startPort: 6000, endPort: 6010 } }, 1), { code: 'STRAIT_CONFIG_CONFLICT' });
    assert.throws(() => applyChange(config, { kind: 'createReceiver', spec: { startPort: 6000, endPort: 5000 } }, 1), { code: 'STRAIT_CONFIG_INVALID' });
  });

  it('a server runs the union of its strait.yaml and the site configuration; a disagreement is a conflict', () => {
    const declared = { regions: [{ ...ORDERS, gatewaySenderIds: ['a'] }], senders: [], receiver: undefined };
    const config = { ...EMPTY_SITE_CONFIG, regions: [{ ...ORDERS, gatewaySenderIds: ['b'] }, { name: 'other', type: 'replicate' as const, persistent: false }] };
    const merged = merge(declared, config, 'server-1');
    assert.deepEqual(merged.regions.map((region) => [region.name, region.gatewaySenderIds ?? []]), [['orders', ['a', 'b']], ['other', []]]);
    assert.throws(() => merge(declared, { ...EMPTY_SITE_CONFIG, regions: [{ ...ORDERS, persistent: false }] }, 'server-1'), { code: 'STRAIT_CONFIG_CONFLICT' });
  });
});

describe('site configuration service', () => {
  it('a change through any locator reaches every locator and server; the same change again changes nothing', async () => {
    const site = await readySite();
    // locator-2 is not the coordinator: it forwards the change.
    const result = await site.change('locator-2', { kind: 'createRegion', spec: ORDERS });
    assert.equal(result.changed, true);
    assert.equal(result.version, 1);
    assert.deepEqual(result.members.map((member) => member.member).sort(), ['server-1', 'server-2']);
    for (const name of site.locators.keys()) assert.equal(site.configOf(name).version, 1, `${name} stored version 1`);
    for (const server of site.liveServers()) assert.ok(server.region('orders') !== undefined, 'every server hosts the region');
    // The view lists the region on each server, so clients are routed to it.
    await site.waitFor('the view lists the region', () => site.liveServers().every((server) => server.view?.members.every((member) => member.info.role !== 'server' || member.info.regions.includes('orders')) === true));
    const client = site.client();
    const region = client.region<string>('orders');
    let written = false;
    region.put('k', 'v').then(() => { written = true; }, () => {});
    await site.waitFor('a put to the new region', () => written);
    assert.equal(decodeValue(site.server('server-2').region('orders')!.get('k')!), 'v');
    const again = await site.change('locator-3', { kind: 'createRegion', spec: ORDERS });
    assert.deepEqual(again, { version: 1, changed: false, members: [] });
    assert.deepEqual(site.failures, []);
  });

  it('a server that restarts, and one that joins later, run the configuration before they serve', async () => {
    const site = await readySite();
    await site.change('locator-1', { kind: 'createRegion', spec: ORDERS });
    const host = site.serverHosts[0]!;
    host.crash();
    const restarted = site.startServer(host);
    const newcomer = site.sim.host('server-3');
    site.serverHosts.push(newcomer);
    const joined = site.startServer(newcomer);
    for (const server of [restarted, joined]) {
      await site.waitFor(`${server.currentState} server ready`, () => server.currentState === 'ready');
      assert.ok(server.region('orders') !== undefined, 'the region is there before the server is ready');
    }
    assert.deepEqual(site.failures, []);
  });

  it('a refusal on one server rolls the change back on every member and names the member', async () => {
    // server-2's strait.yaml declares sender to-2 with a persistent queue: the site's conflicts with it.
    const declared: GatewaySenderSpec = { ...senderSpecOf({ id: 'to-2', remoteSiteId: 2 }), persistent: true };
    const site = await readySite({ server: (name) => (name === 'server-2' ? { gatewaySenders: [declared] } : {}) });
    await assert.rejects(site.change('locator-1', { kind: 'createSender', spec: { id: 'to-2', remoteSiteId: 2 } }), (error: StraitError) => {
      assert.equal(error.code, 'STRAIT_CONFIG_APPLY_FAILED');
      assert.match(error.message, /server-2/);
      return true;
    });
    assert.deepEqual(site.server('server-1').senderStatuses(), [], 'server-1 removed the sender again');
    assert.equal(site.server('server-2').senderStatuses()[0]?.id, 'to-2', 'server-2 keeps its own');
    for (const name of site.locators.keys()) {
      const config = site.configOf(name);
      assert.equal(config.version, 2, 'the rollback is a version of its own');
      assert.ok(sameContents(config, EMPTY_SITE_CONFIG), `${name} holds the contents from before`);
    }
    assert.deepEqual(site.failures, []);
  });

  it('a server whose strait.yaml disagrees with the site configuration does not start, and says why', async () => {
    const site = await readySite({ locators: 1 });
    await site.change('locator-1', { kind: 'createRegion', spec: ORDERS });
    let outcome: { ok: boolean; error?: Error } | undefined;
    const host = site.sim.host('server-9');
    const server = new Server(host.runtime(), {
      name: 'server-9', site: 1, bind: { host: host.address, port: 40404 }, hostnameForClients: undefined, locators: site.locatorAddresses,
      regions: [{ ...ORDERS, persistent: false }], timing: SIM_SITE_TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, valueBytesMax: VALUE_BYTES_MAX_DEFAULT,
      gatewaySenders: [], gatewayReceiver: undefined, conflictResolver: undefined, pid: undefined, httpAddress: undefined,
    }, checkingMetrics('server-9', site.failures));
    server.start((result) => { outcome = result; });
    await site.waitFor('server-9 answers', () => outcome !== undefined);
    assert.equal(outcome!.ok, false);
    assert.equal((outcome!.error as StraitError).code, 'STRAIT_CONFIG_CONFLICT');
    assert.match(outcome!.error!.message, /region orders on server-9: its strait.yaml declares it replicate, the site configuration replicate, persistent/);
  });

  it('needs a majority of the site\'s locators, and survives every locator restarting', async () => {
    const site = await readySite();
    await site.change('locator-1', { kind: 'createRegion', spec: ORDERS });
    for (const host of site.locatorHosts) host.crash();
    for (const host of site.locatorHosts) site.startLocator(host);
    await site.waitFor('the locators agree on a view', () => [...site.locators.values()].every((locator) => locator.admin.view()?.members.filter((member) => member.info.role === 'locator').length === 3));
    for (const name of site.locators.keys()) assert.equal(site.configOf(name).version, 1, `${name} recovered version 1 from disk`);
    site.locatorHosts[1]!.crash();
    site.locatorHosts[2]!.crash();
    await site.waitFor('locator-1 alone in the view', () => site.locator('locator-1').admin.view()?.members.filter((member) => member.info.role === 'locator').length === 1);
    await assert.rejects(site.change('locator-1', { kind: 'destroyRegion', name: 'orders' }), { code: 'STRAIT_CONFIG_NO_QUORUM' });
  });

  it('a locator that missed changes catches up before the next one is numbered', async () => {
    const site = await readySite();
    const lagging = site.locatorHosts[2]!;
    lagging.crash();
    await site.change('locator-1', { kind: 'createRegion', spec: ORDERS });
    site.startLocator(lagging);
    await site.waitFor('locator-3 back in the view', () => site.locator('locator-1').admin.view()?.members.filter((member) => member.info.role === 'locator').length === 3
      && site.locator('locator-3').admin.view() !== null);
    // The coordinator crashes: locator-2 takes over and numbers the next change after version 1.
    site.locatorHosts[0]!.crash();
    await site.waitFor('locator-2 coordinates', () => {
      const view = site.locator('locator-2').admin.view();
      return view !== null && view.coordinator.startsWith('locator-2') && site.locator('locator-3').admin.view()?.coordinator === view.coordinator;
    });
    const result = await site.change('locator-3', { kind: 'createRegion', spec: { name: 'second', type: 'replicate', persistent: false } });
    assert.equal(result.version, 2);
    assert.deepEqual(site.configOf('locator-3').regions.map((region) => region.name), ['orders', 'second']);
  });

  it('destroying a sender waits for its queue to drain and refuses, changing nothing, when it does not', async () => {
    const site = await readySite({ locators: 1 });
    await site.change('locator-1', { kind: 'createSender', spec: { id: 'to-2', remoteSiteId: 2 } });
    await site.change('locator-1', { kind: 'createRegion', spec: { ...ORDERS, gatewaySenderIds: ['to-2'] } });
    for (const server of site.liveServers()) assert.ok(server.senderStatuses().some((sender) => sender.id === 'to-2'));
    const client = site.client();
    let written = false;
    client.region<string>('orders').put('k', 'v').then(() => { written = true; }, () => {});
    await site.waitFor('a put queued for site 2', () => written);
    await assert.rejects(site.change('locator-1', { kind: 'destroySender', id: 'to-2' }), { code: 'STRAIT_CONFIG_CONFLICT' });
    await site.change('locator-1', { kind: 'alterRegion', name: 'orders', gatewaySenderIds: [] });
    // Site 2 does not exist: the queued event can't drain.
    await assert.rejects(site.change('locator-1', { kind: 'destroySender', id: 'to-2', drainTimeoutMs: 2000 }), { code: 'STRAIT_SENDER_NOT_DRAINED' });
    for (const server of site.liveServers()) {
      const copy = server.senderStatuses().find((sender) => sender.id === 'to-2');
      assert.equal(copy?.queueEvents, 1, `${server.info.name} still holds the event`);
    }
    assert.ok(site.configOf('locator-1').senders.some((sender) => sender.id === 'to-2'));
  });

  it('a receiver created at runtime reaches the view; destroying it removes it', async () => {
    const site = await readySite({ locators: 1 });
    await site.change('locator-1', { kind: 'createReceiver', spec: { startPort: 5000, endPort: 5010 } });
    await site.waitFor('the view lists both receivers', () => site.locator('locator-1').admin.view()?.members.filter((member) => member.info.receiver !== undefined).length === 2);
    await site.change('locator-1', { kind: 'destroyReceiver' });
    await site.waitFor('the view lists no receiver', () => site.locator('locator-1').admin.view()?.members.every((member) => member.info.receiver === undefined) === true);
    assert.deepEqual(site.failures, []);
  });
});
