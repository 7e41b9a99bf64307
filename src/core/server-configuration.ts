// A server running its site's configuration (config-service.ts) beside its own strait.yaml.
//
// Before it joins the view a server fetches the site configuration from a locator and runs it;
// afterwards the coordinator sends it every new version (`configApply`), and it reports the
// version it runs in heartbeats, so one that missed a version is sent it again.
//
// What runs is the union of the two sources. The same region, sender or receiver in both must
// agree (a region's type and persistence; a sender's identity: remote site, queue, ordering);
// a region's gateway senders are the union of both lists. A disagreement is
// STRAIT_CONFIG_CONFLICT, found before anything changes. Only what came from the site
// configuration is ever removed by it: a destroyed region is dropped with its data, a
// destroyed sender only once its queue is empty (STRAIT_SENDER_NOT_DRAINED otherwise). Applying
// is idempotent: the coordinator rolls a refused change back by sending the previous contents.
//
// A state machine: callbacks run to completion; time and I/O come through the Runtime.

import { StraitError } from '../errors.ts';
import type { RegionSpec, SiteConfig } from '../protocol/messages.ts';
import type { Address, Logger, Runtime } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { Backoff } from './backoff.ts';
import type { GatewayReceiverSpec, GatewaySenderSpec } from './config.ts';
import type { PeerPool } from './peer-pool.ts';
import type { RegionTable } from './region-table.ts';
import type { SenderHosting } from './sender-hosting.ts';
import { EMPTY_SITE_CONFIG, receiverSpecOf, sameReceiver, sameSender, senderSpecOf } from './site-config.ts';

/** What the server's strait.yaml declares. */
export interface Declared {
  readonly regions: readonly RegionSpec[];
  readonly senders: readonly GatewaySenderSpec[];
  readonly receiver: GatewayReceiverSpec | undefined;
}

export interface ServerConfigurationHost {
  readonly memberName: string;
  readonly locators: readonly Address[];
  stopped(): boolean;
  /** The receiver running now, if any, and where its spec came from. */
  receiver(): GatewayReceiverSpec | undefined;
  /** Starts a gateway receiver with `spec`; calls back once it listens (or why it can't). */
  startReceiver(spec: GatewayReceiverSpec, done: (error: StraitError | undefined) => void): void;
  stopReceiver(): void;
  /** Regions, senders or the receiver changed: the member's info in the view must follow. */
  infoChanged(): void;
}

/** The union of the declarations and the site configuration; STRAIT_CONFIG_CONFLICT where they disagree. */
export function merge(declared: Declared, config: SiteConfig, memberName: string): Declared {
  const conflict = (what: string, reason: string) =>
    new StraitError('STRAIT_CONFIG_CONFLICT', { what: `${what} on ${memberName}`, reason });
  const regions = new Map(declared.regions.map((spec) => [spec.name, spec]));
  for (const spec of config.regions) {
    const mine = regions.get(spec.name);
    if (mine === undefined) {
      regions.set(spec.name, spec);
      continue;
    }
    if (mine.type !== spec.type || mine.persistent !== spec.persistent) {
      throw conflict(`region ${spec.name}`, `its strait.yaml declares it ${mine.type}${mine.persistent ? ', persistent' : ''}, the site configuration ${spec.type}${spec.persistent ? ', persistent' : ''}`);
    }
    const ids = [...new Set([...(mine.gatewaySenderIds ?? []), ...(spec.gatewaySenderIds ?? [])])];
    regions.set(spec.name, ids.length === 0 ? { name: spec.name, type: spec.type, persistent: spec.persistent } : { ...mine, gatewaySenderIds: ids });
  }
  const senders = new Map(declared.senders.map((spec) => [spec.id, spec]));
  for (const declaration of config.senders) {
    const spec = senderSpecOf(declaration);
    const mine = senders.get(spec.id);
    if (mine !== undefined && !sameSender(mine, spec)) {
      throw conflict(`gateway sender ${spec.id}`, 'its strait.yaml declares it with other settings than the site configuration');
    }
    senders.set(spec.id, mine ?? spec);
  }
  let receiver = declared.receiver;
  if (config.receiver !== null) {
    const spec = receiverSpecOf(config.receiver);
    if (receiver !== undefined && !sameReceiver(receiver, spec)) {
      throw conflict('the gateway receiver', 'its strait.yaml declares one with other settings than the site configuration');
    }
    receiver ??= spec;
  }
  return { regions: [...regions.values()], senders: [...senders.values()], receiver };
}

export class ServerConfiguration {
  private readonly runtime: Runtime;
  private readonly pool: PeerPool;
  private readonly host: ServerConfigurationHost;
  private readonly declared: Declared;
  private readonly regions: RegionTable;
  private readonly senders: SenderHosting;
  private readonly log: Logger;
  private config: SiteConfig = EMPTY_SITE_CONFIG;
  /** An apply is under way (a receiver starting): the next one waits for it. */
  private applying = false;
  private readonly queued: { config: SiteConfig; done: (error: StraitError | undefined) => void }[] = [];

  constructor(
    runtime: Runtime, pool: PeerPool, host: ServerConfigurationHost, declared: Declared,
    parts: { regions: RegionTable; senders: SenderHosting }, log: Logger,
  ) {
    this.runtime = runtime;
    this.pool = pool;
    this.host = host;
    this.declared = declared;
    this.regions = parts.regions;
    this.senders = parts.senders;
    this.log = log;
  }

  /** The site configuration version this server runs (0 before the first). */
  get version(): number {
    return this.config.version;
  }

  get current(): SiteConfig {
    return this.config;
  }

  /** Asks the locators for the site configuration until one answers. */
  fetch(done: (config: SiteConfig) => void): void {
    const backoff = new Backoff(this.runtime.random, { initialDelayMs: 100, maximumDelayMs: 2000 });
    const ask = (attempt: number) => {
      if (this.host.stopped()) return;
      const locator = this.host.locators[attempt % this.host.locators.length]!;
      this.pool.get(locator).request('siteConfig', {}, (error, response) => {
        if (this.host.stopped()) return;
        if (error === undefined && response !== undefined) {
          done(response.config);
          return;
        }
        if (attempt > 0 && attempt % this.host.locators.length === 0) {
          this.log.warn({ locator: formatAddress(locator), code: error?.code }, `server ${this.host.memberName}: no locator gave the site configuration (${error?.message ?? 'no answer'}); retrying`);
        }
        this.runtime.setTimer(backoff.nextDelayMs(), () => ask(attempt + 1));
      });
    };
    ask(0);
  }

  /** Runs `config` (a version not older than the one running); calls back once it runs, or with why it can't. */
  apply(config: SiteConfig, done: (error: StraitError | undefined) => void): void {
    if (this.applying) {
      this.queued.push({ config, done });
      return;
    }
    if (config.version < this.config.version) {
      done(undefined);
      return;
    }
    this.applying = true;
    this.run(config, (error) => {
      this.applying = false;
      done(error);
      const next = this.queued.shift();
      if (next !== undefined) this.apply(next.config, next.done);
    });
  }

  private run(config: SiteConfig, done: (error: StraitError | undefined) => void): void {
    let wanted: Declared;
    let previous: Declared;
    try {
      wanted = merge(this.declared, config, this.host.memberName);
      previous = merge(this.declared, this.config, this.host.memberName);
      this.check(wanted, previous);
    } catch (error) {
      if (error instanceof StraitError) {
        done(error);
        return;
      }
      throw error;
    }
    let changed = false;
    // Regions and senders first: nothing here can fail once checked.
    for (const spec of wanted.regions) {
      const region = this.regions.get(spec.name);
      if (region === undefined) {
        this.regions.open(spec);
        changed = true;
      } else if (JSON.stringify(region.spec.gatewaySenderIds ?? []) !== JSON.stringify(spec.gatewaySenderIds ?? [])) {
        region.setGatewaySenders(spec.gatewaySenderIds ?? []);
      }
    }
    for (const spec of previous.regions) {
      if (wanted.regions.some((region) => region.name === spec.name)) continue;
      this.regions.drop(spec.name);
      this.log.info({ region: spec.name }, `server ${this.host.memberName}: region ${spec.name} destroyed by the site configuration; its entries were dropped`);
      changed = true;
    }
    for (const spec of wanted.senders) {
      const running = this.senders.spec(spec.id);
      if (running === undefined) {
        this.senders.add(spec);
        changed = true;
      } else if (running.batchSize !== spec.batchSize || running.batchTimeIntervalMs !== spec.batchTimeIntervalMs) {
        this.senders.alter(spec.id, { batchSize: spec.batchSize, batchTimeIntervalMs: spec.batchTimeIntervalMs });
      }
    }
    for (const spec of previous.senders) {
      if (wanted.senders.some((sender) => sender.id === spec.id)) continue;
      this.senders.remove(spec.id);
      changed = true;
    }
    const finish = (error: StraitError | undefined) => {
      if (error === undefined) {
        this.regions.setConfigured(config.regions.map((region) => region.name));
        if (config.version !== this.config.version) this.log.info({ version: config.version }, `server ${this.host.memberName}: runs site configuration version ${config.version}`);
        this.config = config;
      }
      if (changed) this.host.infoChanged();
      done(error);
    };
    const running = this.host.receiver();
    if (wanted.receiver === undefined && running !== undefined && previous.receiver !== undefined) {
      this.host.stopReceiver();
      changed = true;
      finish(undefined);
    } else if (wanted.receiver !== undefined && running === undefined) {
      changed = true;
      this.host.startReceiver(wanted.receiver, finish);
    } else {
      finish(undefined);
    }
  }

  /** Refuses what can't be done before doing anything: a running receiver with other settings, a sender not drained. */
  private check(wanted: Declared, previous: Declared): void {
    const running = this.host.receiver();
    if (wanted.receiver !== undefined && running !== undefined && !sameReceiver(wanted.receiver, running)) {
      throw new StraitError('STRAIT_CONFIG_CONFLICT', { what: `the gateway receiver on ${this.host.memberName}`, reason: 'one runs with other settings; destroy it first' });
    }
    for (const spec of wanted.senders) {
      const runningSpec = this.senders.spec(spec.id);
      if (runningSpec !== undefined && !sameSender(runningSpec, spec)) {
        throw new StraitError('STRAIT_CONFIG_CONFLICT', { what: `gateway sender ${spec.id} on ${this.host.memberName}`, reason: 'it runs with other settings; destroy it first' });
      }
    }
    for (const spec of wanted.regions) {
      const region = this.regions.get(spec.name);
      if (region !== undefined && (region.spec.type !== spec.type || region.spec.persistent !== spec.persistent)) {
        throw new StraitError('STRAIT_CONFIG_CONFLICT', { what: `region ${spec.name} on ${this.host.memberName}`, reason: 'it exists here with other settings (created at runtime?); destroy it first' });
      }
    }
    for (const spec of previous.senders) {
      if (wanted.senders.some((sender) => sender.id === spec.id)) continue;
      const queued = this.senders.queuedEvents(spec.id);
      if (queued > 0) {
        throw new StraitError('STRAIT_SENDER_NOT_DRAINED', { sender: spec.id, member: this.host.memberName, events: queued, timeoutMs: 0, site: spec.remoteSiteId });
      }
      const users = wanted.regions.filter((region) => (region.gatewaySenderIds ?? []).includes(spec.id)).map((region) => region.name);
      if (users.length > 0) {
        throw new StraitError('STRAIT_CONFIG_CONFLICT', { what: `gateway sender ${spec.id} on ${this.host.memberName}`, reason: `regions ${users.join(', ')} of its strait.yaml still ship through it` });
      }
    }
  }
}
