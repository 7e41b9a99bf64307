// A seeded simulation of one site: locators, servers and clients on simulated hosts, a client
// workload, and faults (crashes and restarts, partitions, latency changes). After the faults
// the network heals and the checkers assert:
//   - views: every live member holds the same view, listing exactly the live members;
//   - acknowledged writes: every write a client saw acknowledged is on every server, unless a
//     later write to the same key by the same writer superseded it;
//   - replicas: every server holds identical contents for every replicate region;
//   - partitioned region Q (persistent, one redundant copy, 16 buckets): every created bucket has
//     its two copies and nothing pending, each copy holds the same entries, no other server holds
//     any of them, and acknowledged writes are on both copies;
//   - site configuration: a worker creates and destroys regions through random locators
//     meanwhile; every locator holds the same configuration, every server runs its version and
//     hosts exactly its regions, acknowledged versions only increase, and each region's last
//     acknowledged change holds (unless a later unacknowledged one may have been applied).
//
// Clients are the real TypeScript client (promises), so the driver interleaves simulator steps
// with microtask flushes; everything stays deterministic because no real I/O happens.

import { advanceWithPromises } from './drive.ts';
import { StraitClient, decodeValue } from '../client/client.ts';
import type { LocatorConfig, MembershipTiming, ServerConfig } from '../core/config.ts';
import { FRAME_BYTES_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT } from '../core/config.ts';
import { Locator } from '../core/locator.ts';
import { checkingMetrics, noteClientFailure, rebalanceWorker } from './checks.ts';
import { Server } from '../core/server.ts';
import type { StraitError } from '../errors.ts';
import type { ConfigChange, ConfigChangeResult, RegionSpec, View } from '../protocol/messages.ts';
import type { Address, Runtime } from '../runtime/runtime.ts';
import type { SimHost } from './simulator.ts';
import { bucketOf, copiesWanted, mapOf } from '../core/partition-map.ts';
import { Simulator } from './simulator.ts';

export interface SiteSimulationOptions {
  readonly seed: number;
  readonly locators?: number;
  readonly servers?: number;
  readonly clients?: number;
  /** Virtual time the workload and faults run for. */
  readonly workloadMs?: number;
  readonly faults?: boolean;
  /** Run the site-configuration worker (default true). */
  readonly configChanges?: boolean;
  readonly log?: 'silent' | 'collect' | 'print';
}

export const SIM_TIMING: MembershipTiming = {
  memberTimeoutMs: 3000,
  heartbeatIntervalMs: 500,
  discoveryTimeoutMs: 1000,
  requestTimeoutMs: 4000,
};

const LOCATOR_PORT = 10334;
const SERVER_PORT = 40404;
const REGIONS: RegionSpec[] = [
  { name: 'R', type: 'replicate', persistent: false },
  { name: 'P', type: 'replicate', persistent: true },
  { name: 'Q', type: 'partition', persistent: true, partition: { totalNumBuckets: 16, redundantCopies: 1, recoveryDelayMs: 0, startupRecoveryDelayMs: 0 } },
];

interface WrittenValue {
  readonly writer: string;
  readonly seq: number;
}

interface KeyHistory {
  /** The highest sequence number acknowledged for this key, and whether it was a remove. */
  lastAckedSeq: number;
  lastAckedRemove: boolean;
  /** Removes that were sent but not acknowledged: any of them may have been applied. */
  readonly unackedRemoves: number[];
}

type Member = { kind: 'locator'; node: Locator } | { kind: 'server'; node: Server };

export class SiteSimulation {
  readonly sim: Simulator;
  readonly options: Required<SiteSimulationOptions>;
  private readonly memberHosts: SimHost[] = [];
  private readonly members = new Map<string, Member>();
  private readonly clientHosts: SimHost[] = [];
  private readonly locatorAddresses: Address[] = [];
  /** Writes to keys owned by one writer: key → history, for the acknowledged-writes checker. */
  private readonly owned = new Map<string, KeyHistory>();
  private readonly failures: string[] = [];
  readonly stats = { acked: 0, failed: 0, crashes: 0, partitions: 0, configChanges: 0, rebalances: 0 };
  /** Per region the configuration worker touched: its last acknowledged change, and whether a later one failed. */
  private readonly configRegions = new Map<string, { exists: boolean; uncertain: boolean }>();

  constructor(options: SiteSimulationOptions) {
    this.options = {
      locators: 2, servers: 3, clients: 2, workloadMs: 20_000, faults: true, configChanges: true, log: 'collect', ...options,
    };
    this.sim = new Simulator({ seed: options.seed, log: this.options.log, network: { baseDelayMs: 1, jitterMs: 2 } });
    for (let index = 1; index <= this.options.locators; index++) {
      const host = this.sim.host(`locator-${index}`);
      this.memberHosts.push(host);
      this.locatorAddresses.push({ host: host.address, port: LOCATOR_PORT });
    }
    for (let index = 1; index <= this.options.servers; index++) this.memberHosts.push(this.sim.host(`server-${index}`));
    for (let index = 1; index <= this.options.clients; index++) this.clientHosts.push(this.sim.host(`client-${index}`));
  }

  private startMember(host: SimHost): void {
    if (host.alive && this.members.has(host.name)) return; // already restarted
    const runtime = host.runtime();
    if (host.name.startsWith('locator')) {
      const config: LocatorConfig = {
        name: host.name, site: 1, bind: { host: host.address, port: LOCATOR_PORT }, hostnameForClients: undefined,
        locators: this.locatorAddresses, remoteLocators: [], timing: SIM_TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, pid: undefined, httpAddress: undefined,
      };
      const node = new Locator(runtime, config, checkingMetrics(host.name, this.failures));
      this.members.set(host.name, { kind: 'locator', node });
      node.start((result) => {
        if (!result.ok) this.failures.push(`${host.name} failed to start: ${result.error?.message}`);
      });
      return;
    }
    const config: ServerConfig = {
      name: host.name, site: undefined, bind: { host: host.address, port: SERVER_PORT }, hostnameForClients: undefined,
      locators: this.locatorAddresses, regions: REGIONS, timing: SIM_TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT,
      valueBytesMax: VALUE_BYTES_MAX_DEFAULT, gatewaySenders: [], gatewayReceiver: undefined, conflictResolver: undefined, pid: undefined, httpAddress: undefined,
    };
    const node = new Server(runtime, config, checkingMetrics(host.name, this.failures));
    this.members.set(host.name, { kind: 'server', node });
    node.start((result) => {
      if (!result.ok) this.failures.push(`${host.name} failed to start: ${result.error?.message}`);
    });
  }

  /** Advances virtual time to `untilMs`, letting client promise chains run between events. */
  advance(untilMs: number, until?: () => boolean): Promise<void> {
    return advanceWithPromises(this.sim, untilMs, until);
  }

  /**
   * Servers other than `name` that are ready and in the coordinator's view: the replicas that
   * would still hold the in-memory region if `name` crashed. Crashing the last one loses a
   * non-persistent region by definition, so the fault schedule never does it.
   */
  private otherReplicasInView(name: string): number {
    let view: View | null = null;
    for (const member of this.members.values()) {
      const candidate = member.node.admin.view();
      if (member.kind === 'locator' && candidate !== null && candidate.coordinator === member.node.admin.status().info.id) view = candidate;
    }
    if (view === null) return 0;
    return view.members.filter((member) => member.info.role === 'server' && member.ready && member.info.name !== name
      && this.members.get(member.info.name)?.node.admin.status().info.id === member.info.id).length;
  }

  private servers(): Server[] {
    const servers: Server[] = [];
    for (const member of this.members.values()) if (member.kind === 'server') servers.push(member.node);
    return servers;
  }

  private liveMembers(): { host: SimHost; member: Member }[] {
    return this.memberHosts.filter((host) => host.alive && this.members.has(host.name)).map((host) => ({ host, member: this.members.get(host.name)! }));
  }

  private allReady(): boolean {
    const live = this.liveMembers();
    if (live.length !== this.memberHosts.length) return false;
    const views = live.map(({ member }) => member.node.admin.view());
    const first = views[0];
    if (first === null || first === undefined) return false;
    for (const { member } of live) {
      if (member.node.admin.status().state !== 'ready') return false;
    }
    return views.every((view) => view !== null && view.id === first.id && view.lineage[1] === first.lineage[1])
      && first.members.length === live.length && first.members.every((member) => member.ready);
  }

  async run(): Promise<void> {
    const sim = this.sim;
    for (const host of this.memberHosts) {
      const delay = host.name === 'locator-1' ? 0 : sim.random.int(800);
      sim.schedule(delay, () => this.startMember(host));
    }
    await this.advance(30_000, () => this.allReady());
    if (!this.allReady()) throw this.failure('the site did not form within 30 s of virtual time');

    const clients = await Promise.all(this.clientHosts.map(async (host) => {
      const client = new StraitClient(host.runtime(), this.locatorAddresses, { role: 'admin', locators: this.locatorAddresses, name: host.name, requestTimeoutMs: 60_000 }, undefined);
      return { host, client };
    }));
    const workloadEnd = sim.nowMs + this.options.workloadMs;
    const workers: Promise<void>[] = [];
    for (const { host, client } of clients) {
      for (let worker = 0; worker < 3; worker++) workers.push(this.workload(client, host.runtime(), `${host.name}.w${worker}`, workloadEnd));
    }
    if (this.options.faults) this.scheduleFaults(workloadEnd);
    if (this.options.configChanges) workers.push(this.configWorker(clients[0]!.client, clients[0]!.host.runtime(), workloadEnd));
    if (this.options.faults) workers.push(rebalanceWorker(this.sim, clients[0]!.client, clients[0]!.host.runtime(), workloadEnd, this.stats));
    let workersDone = false;
    void Promise.allSettled(workers).then(() => {
      workersDone = true;
    });
    await this.advance(workloadEnd + 120_000, () => workersDone);
    if (!workersDone) throw this.failure('client workers did not finish within 120 s of virtual time after the workload');

    // Heal everything and let the site settle.
    sim.network.heal();
    for (const host of this.memberHosts) if (!host.alive || !this.members.has(host.name)) this.startMember(host);
    await this.advance(sim.nowMs + 60_000, () => this.allReady());
    // Bucket images after the restarts complete in the background.
    await this.advance(sim.nowMs + 30_000, () => this.allReady() && this.bucketsSettled());
    if (this.options.configChanges) {
      // Liveness: once healed, a change goes through (no change is stuck at the coordinator).
      let answer: { error?: StraitError; result?: ConfigChangeResult } | undefined;
      void this.askChange(clients[0]!.client, this.locatorAddresses[0]!, { kind: 'destroyRegion', name: 'C-final' }).then((outcome) => { answer = outcome; });
      await this.advance(sim.nowMs + 30_000, () => answer !== undefined);
      if (answer?.result === undefined) throw this.failure(`a configuration change after the heal was not answered within 30 s: ${answer?.error?.message ?? 'no answer'}`);
      await this.advance(sim.nowMs + 5 * SIM_TIMING.heartbeatIntervalMs);
    }
    for (const { client } of clients) await client.close();
    await this.advance(sim.nowMs + 2 * SIM_TIMING.heartbeatIntervalMs);
    this.check();
  }

  private async workload(client: StraitClient, runtime: Runtime, writer: string, endMs: number): Promise<void> {
    const random = this.sim.random;
    let seq = 0;
    while (this.sim.nowMs < endMs) {
      seq += 1;
      const region = random.pick(['R', 'P', 'Q']);
      const shared = random.chance(0.25);
      const key = shared ? `shared-${random.int(4)}` : `${writer}-${random.int(8)}`;
      const remove = !shared && random.chance(0.1);
      const historyKey = `${region}/${key}`;
      try {
        if (remove) await client.region(region).remove(key);
        else await client.region<WrittenValue>(region).put(key, { writer, seq });
        this.stats.acked += 1;
        if (!shared) {
          const history = this.owned.get(historyKey) ?? { lastAckedSeq: 0, lastAckedRemove: false, unackedRemoves: [] };
          if (seq > history.lastAckedSeq) {
            history.lastAckedSeq = seq;
            history.lastAckedRemove = remove;
          }
          this.owned.set(historyKey, history);
        }
      } catch (error) {
        this.stats.failed += 1;
        noteClientFailure(writer, error, this.failures);
        if (!shared && remove) {
          const history = this.owned.get(historyKey) ?? { lastAckedSeq: 0, lastAckedRemove: false, unackedRemoves: [] };
          history.unackedRemoves.push(seq);
          this.owned.set(historyKey, history);
        }
      }
      await new Promise<void>((resolve) => runtime.setTimer(random.int(50), resolve));
    }
  }

  /** Creates and destroys regions C0..C3 through a random live locator, one change at a time. */
  private async configWorker(client: StraitClient, runtime: Runtime, endMs: number): Promise<void> {
    const random = this.sim.random;
    let lastVersion = 0;
    while (this.sim.nowMs < endMs) {
      await new Promise<void>((resolve) => runtime.setTimer(200 + random.int(800), resolve));
      const via = random.pick(this.locatorAddresses);
      const name = `C${random.int(4)}`;
      const create = random.chance(0.6);
      const change: ConfigChange = create ? { kind: 'createRegion', spec: { name, type: 'replicate', persistent: false } } : { kind: 'destroyRegion', name };
      const outcome = await this.askChange(client, via, change);
      const state = this.configRegions.get(name) ?? { exists: false, uncertain: false };
      if (outcome.result !== undefined) {
        this.stats.configChanges += 1;
        if (outcome.result.changed && outcome.result.version <= lastVersion) {
          this.failures.push(`configuration change ${change.kind} ${name} was acknowledged as version ${outcome.result.version}, after version ${lastVersion}`);
        }
        lastVersion = Math.max(lastVersion, outcome.result.version);
        this.configRegions.set(name, { exists: create, uncertain: false });
      } else {
        // Refused before anything changed (no quorum, no view), or lost: it may have been applied.
        const refusedUpFront = outcome.error?.code === 'STRAIT_CONFIG_NO_QUORUM' || outcome.error?.code === 'STRAIT_NOT_READY';
        this.configRegions.set(name, { exists: state.exists, uncertain: state.uncertain || !refusedUpFront });
      }
    }
  }

  /** One configuration change through the locator at `via`, as an operator's tool sends it. */
  private askChange(client: StraitClient, via: Address, change: ConfigChange): Promise<{ error?: StraitError; result?: ConfigChangeResult }> {
    return client.askMember(via, 'configChange', { change }).then((result) => ({ result }), (error: unknown) => ({ error: error as StraitError }));
  }

  /** The site configuration checker (see the module comment). */
  private checkConfiguration(): void {
    const live = this.liveMembers();
    const locators = live.filter(({ member }) => member.kind === 'locator').map(({ member }) => member.node.admin.siteConfig()!);
    const reference = locators[0]!;
    for (const config of locators.slice(1)) {
      if (JSON.stringify(config) !== JSON.stringify(reference)) throw this.failure(`locators disagree on the site configuration: ${JSON.stringify(reference)} vs ${JSON.stringify(config)}`);
    }
    for (const [name, state] of this.configRegions) {
      const exists = reference.regions.some((region) => region.name === name);
      if (!state.uncertain && exists !== state.exists) throw this.failure(`region ${name}: the last acknowledged change ${state.exists ? 'created' : 'destroyed'} it, yet the configuration ${exists ? 'has' : 'lacks'} it`);
    }
    const wanted = [...new Set([...REGIONS.map((region) => region.name), ...reference.regions.map((region) => region.name)])].sort();
    for (const server of this.servers()) {
      const name = server.admin.status().info.name;
      const runs = server.admin.siteConfig()?.version;
      if (runs !== reference.version) throw this.failure(`${name} runs site configuration version ${runs}, the locators hold ${reference.version}`);
      const hosted = server.admin.regions().map((region) => region.spec.name).sort();
      if (JSON.stringify(hosted) !== JSON.stringify(wanted)) throw this.failure(`${name} hosts regions ${hosted.join(',')}, the configuration says ${wanted.join(',')}`);
    }
  }

  private scheduleFaults(endMs: number): void {
    const sim = this.sim;
    const random = sim.random;
    const servers = this.memberHosts.filter((host) => host.name.startsWith('server'));
    const locators = this.memberHosts.filter((host) => host.name.startsWith('locator'));
    let at = 1000;
    while (sim.nowMs + at < endMs - 2000) {
      const kind = random.int(4);
      const startAt = at;
      if (kind === 0 || kind === 1) {
        // Crash a server (never the last live one: a replicate region held only in memory
        // would be gone, which is not a bug) and restart it later.
        const victim = random.pick(servers);
        const downMs = 500 + random.int(5000);
        sim.schedule(startAt, () => {
          if (!victim.alive || this.otherReplicasInView(victim.name) === 0) return;
          this.stats.crashes += 1;
          victim.crash();
          this.members.delete(victim.name);
          sim.schedule(downMs, () => this.startMember(victim));
        });
      } else if (kind === 2 && locators.length > 1) {
        const victim = random.pick(locators);
        const downMs = 500 + random.int(8000);
        sim.schedule(startAt, () => {
          const live = locators.filter((host) => host.alive);
          if (!victim.alive || live.length <= 1) return;
          this.stats.crashes += 1;
          victim.crash();
          this.members.delete(victim.name);
          sim.schedule(downMs, () => this.startMember(victim));
        });
      } else {
        const victim = random.pick(servers);
        const durationMs = 1000 + random.int(7000);
        sim.schedule(startAt, () => {
          this.stats.partitions += 1;
          sim.network.isolate(victim.name);
          sim.schedule(durationMs, () => sim.network.heal());
        });
      }
      at += 1500 + random.int(4000);
    }
  }

  private failure(reason: string): Error {
    return new Error(`${reason} (seed ${this.sim.seed}); replay: npm run sim -- --seed ${this.sim.seed} --verbose\n${this.describe()}`);
  }

  describe(): string {
    const lines: string[] = [];
    for (const host of this.memberHosts) {
      const member = this.members.get(host.name);
      const status = member?.node.admin.status();
      const view: View | null = member?.node.admin.view() ?? null;
      lines.push(`  ${host.name}: ${host.alive ? 'alive' : 'down'} state=${status?.state ?? '-'} view=${view?.id ?? '-'} coordinator=${view?.coordinator ?? '-'} members=${view?.members.map((m) => `${m.info.id}${m.ready ? '' : '(not ready)'}`).join(',') ?? '-'}`);
    }
    return lines.join('\n');
  }

  /** Every partitioned region's buckets have their copies and nothing pending or offline. */
  private bucketsSettled(): boolean {
    const view = this.liveMembers()[0]?.member.node.admin.view();
    const servers = this.servers().length;
    return (view?.partitions ?? []).every((map) => (map.offline ?? []).length === 0
      && map.buckets.every((bucket) => bucket === null || (bucket.pending.length === 0 && bucket.copies.length === Math.min(copiesWanted(map.settings), servers))));
  }

  /** The servers that should hold `key` of `regionName`: all of them, or its bucket's copies. */
  private holdersOf(view: View, servers: readonly Server[], regionName: string, key: string): Server[] {
    const spec = REGIONS.find((region) => region.name === regionName)!;
    if (spec.partition === undefined) return [...servers];
    const bucket = mapOf(view.partitions, regionName)?.buckets[bucketOf(key, spec.partition.totalNumBuckets)];
    const found = servers.filter((server) => bucket?.copies.includes(server.admin.status().info.id) === true);
    if (found.length === 0) throw this.failure(`${regionName}/${key} was acknowledged but its bucket has no copy in view ${view.id}`);
    return found;
  }

  /** The partitioned region's checker (see the module comment). */
  private checkPartitioned(view: View, servers: readonly Server[]): void {
    for (const spec of REGIONS) {
      if (spec.partition === undefined) continue;
      const map = mapOf(view.partitions, spec.name);
      const wanted = Math.min(copiesWanted(spec.partition), servers.length);
      const byId = new Map(servers.map((server) => [server.admin.status().info.id, server]));
      if ((map?.offline ?? []).length > 0) throw this.failure(`region ${spec.name}: buckets ${map!.offline!.map((entry) => `${entry.bucket} (last on ${entry.last.join(',')})`).join('; ')} still offline after every server restarted`);
      for (const [index, bucket] of (map?.buckets ?? []).entries()) {
        if (bucket === null) continue;
        if (bucket.copies.length !== wanted || bucket.pending.length > 0) throw this.failure(`region ${spec.name} bucket ${index}: ${JSON.stringify(bucket)}, wanted ${wanted} ready copies`);
        const [reference, ...others] = bucket.copies.map((id) => byId.get(id));
        if (reference === undefined || others.some((server) => server === undefined)) throw this.failure(`region ${spec.name} bucket ${index}: a copy is not a live server: ${JSON.stringify(bucket)}`);
        const keys = reference.region(spec.name)!.bucketKeys(index);
        for (const other of others) {
          const theirs = other!.region(spec.name)!.bucketKeys(index);
          if (theirs.join('\n') !== keys.join('\n')) throw this.failure(`region ${spec.name} bucket ${index}: copies hold different keys (${keys.length} and ${theirs.length})`);
          for (const key of keys) {
            const a = reference.region(spec.name)!.entry(key)!;
            const b = other!.region(spec.name)!.entry(key)!;
            if (a.tag.join('/') !== b.tag.join('/')) throw this.failure(`region ${spec.name} key ${key}: copies hold ${a.tag.join('/')} and ${b.tag.join('/')}`);
          }
        }
      }
      for (const server of servers) {
        const id = server.admin.status().info.id;
        for (const index of server.region(spec.name)!.heldBuckets()) {
          const bucket = map?.buckets[index] ?? null;
          if (bucket === null || !bucket.copies.includes(id)) throw this.failure(`region ${spec.name}: ${server.admin.status().info.name} still holds bucket ${index}, assigned ${JSON.stringify(bucket)}`);
        }
      }
    }
  }

  /** The three checkers. Throws with the seed on the first violation. */
  check(): void {
    if (this.failures.length > 0) throw this.failure(this.failures.join('; '));
    if (!this.allReady()) throw this.failure('views did not converge: not every live member holds the same view with every member ready');
    const live = this.liveMembers();
    const view = live[0]!.member.node.admin.view()!;
    const liveIds = new Set(live.map(({ member }) => member.node.admin.status().info.id));
    const viewIds = new Set(view.members.map((member) => member.info.id));
    if (liveIds.size !== viewIds.size || [...liveIds].some((id) => !viewIds.has(id))) {
      throw this.failure(`view ${view.id} lists ${[...viewIds].join(',')} but the live members are ${[...liveIds].join(',')}`);
    }

    const servers = this.servers();
    this.checkPartitioned(view, servers);
    for (const spec of REGIONS) {
      if (spec.type === 'partition') continue;
      const reference = servers[0]!.region(spec.name)!;
      const referenceName = servers[0]!.admin.status().info.name;
      for (const server of servers.slice(1)) {
        const region = server.region(spec.name)!;
        const name = server.admin.status().info.name;
        if (region.size !== reference.size) throw this.failure(`region ${spec.name}: ${name} holds ${region.size} entries, ${referenceName} ${reference.size}`);
        for (const key of reference.keys()) {
          const a = reference.entry(key)!;
          const b = region.entry(key);
          if (b === undefined || b.value === null || Buffer.compare(Buffer.from(a.value!), Buffer.from(b.value)) !== 0 || a.tag.join('/') !== b.tag.join('/')) {
            throw this.failure(`region ${spec.name} key ${key}: ${referenceName} has ${a.tag.join('/')}, ${name} has ${b?.tag.join('/') ?? 'nothing'}`);
          }
        }
      }
    }

    if (this.options.configChanges) this.checkConfiguration();

    for (const [historyKey, history] of this.owned) {
      const [regionName, key] = historyKey.split('/', 2) as [string, string];
      for (const server of this.holdersOf(view, servers, regionName, key)) {
        const value = server.region(regionName)!.get(key);
        const name = server.admin.status().info.name;
        if (value === undefined) {
          const laterRemoveMayHaveApplied = history.unackedRemoves.some((seq) => seq > history.lastAckedSeq);
          if (!history.lastAckedRemove && !laterRemoveMayHaveApplied) throw this.failure(`acknowledged write seq ${history.lastAckedSeq} to ${historyKey} is missing on ${name}`);
          continue;
        }
        const written = decodeValue<WrittenValue>(value);
        const removedLater = history.lastAckedRemove && written.seq <= history.lastAckedSeq;
        if (written.seq < history.lastAckedSeq || removedLater) {
          throw this.failure(`${historyKey} on ${name} holds seq ${written.seq} but seq ${history.lastAckedSeq}${history.lastAckedRemove ? ' (a remove)' : ''} was acknowledged`);
        }
      }
    }
  }
}

/** Runs one seed; resolves with a summary line, rejects with the seed in the message. */
export async function runSiteSeed(seed: number, options: Partial<SiteSimulationOptions> = {}): Promise<string> {
  const simulation = new SiteSimulation({ seed, ...options });
  try {
    await simulation.run();
  } catch (error) {
    if (options.log !== 'print') {
      const dump = simulation.sim.dumpLog().split('\n').slice(-200).join('\n');
      if (error instanceof Error) error.message += `\n--- last log lines ---\n${dump}`;
    }
    throw error;
  }
  const { acked, failed, crashes, partitions, configChanges, rebalances } = simulation.stats;
  return `seed ${seed}: ok — ${acked} writes acknowledged, ${failed} failed, ${configChanges} configuration changes, ${crashes} crashes, ${partitions} partitions, ${rebalances} rebalances, ${Math.round(simulation.sim.nowMs / 1000)} s virtual`;
}
