// The control plane: topologies in, running replication out (replication as a service).
//
// POST a topology: it is checked (every problem at once), then every site is asked who it is
// (answers, distinct site ids, no topology of that name already there), then the plan (plan.ts)
// runs phase by phase on all sites at once, journaled, and rolled back as a whole if any step or
// edge fails (apply.ts). PATCH applies only the difference; DELETE takes everything the topology
// created away again. One operation per topology at a time; the topologies and the journal
// live in the controller's store, so a restarted controller still knows them, and undoes what an
// operation it did not finish may have done.
//
// A state machine: callbacks run to completion; time, storage and the sites come through the
// Runtime and the SiteApi factory.

import { StraitError } from '../errors.ts';
import type { SenderStatus } from '../protocol/messages.ts';
import type { Logger, Runtime, Store } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { Journal, PlanRun, recoverRecord, type JournalRecord, type SiteApi, type StepProgress, EDGE_CONNECT_TIMEOUT_MS_DEFAULT } from './apply.ts';
import { describePlan, planTopology, type Owned, type Plan, type SiteFacts } from './plan.ts';
import { invalidTopology, parseTopology, runsThere, senderIdOf, type Problem, type Topology, type TopologySite, type Tuning } from './topology.ts';

export interface TopologyRecord {
  readonly topology: Topology;
  readonly owned: Readonly<Record<string, Owned>>;
  readonly appliedAtMs: number;
  /** What went wrong last (a failed PATCH, a recovery after a restart), if anything. */
  readonly lastError?: string;
}

/** A PATCH: sites, edges and regions to add or remove, and tuning to change. */
export interface TopologyPatch {
  readonly sites?: Readonly<Record<string, TopologySite | null>>;
  readonly edges?: { readonly add?: readonly (readonly [string, string])[]; readonly remove?: readonly (readonly [string, string])[] };
  readonly regions?: Readonly<Record<string, { type?: 'replicate'; persistent?: boolean } | null>>;
  readonly tuning?: Tuning;
}

export interface OperationAnswer {
  readonly topology: string;
  readonly changed: boolean;
  readonly dryRun: boolean;
  /** Per site, the changes made (or, in a dry run, that would be). */
  readonly plan: Record<string, { phase: string; change: string }[]>;
  readonly progress: readonly StepProgress[];
  /** Where each site's receivers listen, as they advertise it. */
  readonly receivers: Record<string, string[]>;
}

export interface EdgeStatus {
  readonly from: string;
  readonly to: string;
  readonly sender: string;
  readonly state: 'connected' | 'connecting' | 'paused' | 'stopped' | 'unknown';
  readonly queueEvents: number;
  readonly lagMs: number;
  readonly eventsPerSecond: number;
  readonly eventsSent: number;
  readonly lastError: string | null;
}

export interface SiteStatus {
  readonly name: string;
  readonly reachable: boolean;
  readonly site?: number;
  readonly servers?: number;
  readonly members?: readonly { readonly name: string; readonly role: string; readonly ready: boolean }[];
  readonly locators?: string[];
  readonly receivers?: string[];
  readonly regions?: string[];
  readonly error?: string;
}

export interface TopologyStatus {
  readonly name: string;
  readonly state: 'applied' | 'applying' | 'patching' | 'deleting' | 'recovering';
  readonly appliedAtMs: number;
  readonly lastError: string | null;
  readonly topology: Topology;
  readonly sites: SiteStatus[];
  readonly edges: EdgeStatus[];
  readonly operation: readonly StepProgress[] | null;
}

type Callback<T> = (error: StraitError | undefined, result: T | undefined) => void;

/** How often the controller tries again to undo steps a rollback could not undo. */
export const RECOVERY_RETRY_MS = 5000;

/** Topologies one controller holds, at most. */
export const TOPOLOGIES_MAX = 1000;

export interface ControllerOptions {
  readonly name: string;
  readonly edgeTimeoutMs?: number;
}

export class Controller {
  private readonly runtime: Runtime;
  private readonly store: Store;
  private readonly journal: Journal;
  private readonly siteApi: (site: TopologySite) => SiteApi;
  private readonly log: Logger;
  private readonly options: ControllerOptions;
  private readonly topologies = new Map<string, TopologyRecord>();
  private readonly running = new Map<string, { operation: 'applying' | 'patching' | 'deleting' | 'recovering'; run: PlanRun | undefined }>();
  /** Last eventsSent sample per edge, for events/s. */
  private readonly samples = new Map<string, { eventsSent: number; atMs: number; rate: number }>();

  constructor(runtime: Runtime, stores: { topologies: Store; journal: Store }, siteApi: (site: TopologySite) => SiteApi, log: Logger, options: ControllerOptions) {
    this.runtime = runtime;
    this.store = stores.topologies;
    this.journal = new Journal(stores.journal);
    this.siteApi = siteApi;
    this.log = log;
    this.options = options;
  }

  /** Loads the topologies and undoes what unfinished operations may have done. */
  start(done: (problems: string[]) => void): void {
    for (const [name, bytes] of this.store.entries()) this.topologies.set(name, JSON.parse(new TextDecoder().decode(bytes)) as TopologyRecord);
    const unfinished = this.journal.unfinished();
    const problems: string[] = [];
    const next = () => {
      const record = unfinished.shift();
      if (record === undefined) {
        done(problems);
        return;
      }
      if (record.succeeded === true) {
        // It ran to the end; only storing its outcome was cut short: roll forward.
        this.log.info({ topology: record.topology }, `controller ${this.options.name}: the ${record.operation} of topology ${record.topology} had succeeded; storing its outcome`);
        this.settle(record, () => next());
        return;
      }
      this.log.warn({ topology: record.topology, steps: record.started.length }, `controller ${this.options.name}: the ${record.operation} of topology ${record.topology} did not finish; undoing its ${record.started.length} started steps`);
      this.running.set(record.topology, { operation: 'recovering', run: undefined });
      this.recover(record, `the ${record.operation} was interrupted by a controller restart`, (undoProblems) => {
        problems.push(...undoProblems);
        next();
      });
    };
    next();
  }

  /** Stores the outcome of a succeeded operation (the topology, or its deletion), then clears its journal record. */
  private settle(record: JournalRecord, done: (error: StraitError | undefined) => void): void {
    const clear = (error: StraitError | undefined) => {
      if (error !== undefined) {
        done(error);
        return;
      }
      this.journal.remove(record.topology, done);
    };
    if (record.after === null || record.after === undefined) {
      this.topologies.delete(record.topology);
      this.store.remove(record.topology);
      this.store.sync((error) => clear(error === undefined ? undefined : new StraitError('STRAIT_STORAGE', { path: 'controller topologies', reason: error.message }, { cause: error })));
      return;
    }
    this.save({ topology: record.after, owned: record.owned ?? {}, appliedAtMs: this.runtime.clock.now() }, clear);
  }

  /**
   * Undoes the steps a journal record holds. What can't be undone yet (a site unreachable) stays
   * in the journal and is tried again every RECOVERY_RETRY_MS; the topology is `recovering`
   * (busy) until everything is undone.
   */
  private recover(record: JournalRecord, why: string, done: (problems: string[]) => void): void {
    recoverRecord(record, (site) => this.siteApi(record.sites[site]!), this.log, () => {}, (problems, remaining) => {
      const previous = this.topologies.get(record.topology);
      if (remaining.length === 0) {
        this.running.delete(record.topology);
        this.pendingSites.delete(record.topology);
        const note = `${why}; it was rolled back${problems.length > 0 ? `, except: ${problems.join('; ')}` : ''}`;
        const finish = () => this.journal.remove(record.topology, () => done(problems));
        if (previous !== undefined) this.save({ ...previous, lastError: note }, finish);
        else finish();
        return;
      }
      const left: JournalRecord = { ...record, started: remaining };
      this.journal.write(left, () => {
        if (previous !== undefined) this.topologies.set(record.topology, { ...previous, lastError: `${why}; ${remaining.length} steps still to undo: ${problems.join('; ')}` });
        this.running.set(record.topology, { operation: 'recovering', run: undefined });
        this.runtime.setTimer(RECOVERY_RETRY_MS, () => this.recover(left, why, () => {}));
        done(problems);
      });
    });
  }

  /** Sites of topologies being applied for the first time (not stored yet), for recovery. */
  private readonly pendingSites = new Map<string, Topology>();

  /** No operation or recovery under way, and nothing in the journal (the simulator's checker waits for it). */
  idle(): boolean {
    return this.running.size === 0 && this.journal.unfinished().length === 0;
  }

  /** The record of topology `name`, as stored (tests and the simulator's checker). */
  record(name: string): TopologyRecord | undefined {
    return this.topologies.get(name);
  }

  list(): { name: string; sites: number; edges: number; appliedAtMs: number; state: string; lastError: string | null }[] {
    return [...this.topologies.values()].map((record) => ({
      name: record.topology.name,
      sites: Object.keys(record.topology.sites).length,
      edges: record.topology.edges.length,
      appliedAtMs: record.appliedAtMs,
      state: this.running.get(record.topology.name)?.operation ?? 'applied',
      lastError: record.lastError ?? null,
    }));
  }

  /** POST: apply a new topology (or the same one again: nothing changes). */
  apply(name: string, body: unknown, dryRun: boolean, callback: Callback<OperationAnswer>): void {
    const topology = checked(body, name, callback);
    if (topology === undefined) return;
    const existing = this.topologies.get(name);
    if (existing !== undefined) {
      if (JSON.stringify(existing.topology) === JSON.stringify(topology)) {
        callback(undefined, { topology: name, changed: false, dryRun, plan: {}, progress: [], receivers: {} });
        return;
      }
      callback(new StraitError('STRAIT_TOPOLOGY_EXISTS', { name, reason: 'a different topology of this name is applied; change it with PATCH, or DELETE it first' }), undefined);
      return;
    }
    if (!dryRun && this.topologies.size >= TOPOLOGIES_MAX) {
      callback(new StraitError('STRAIT_TOPOLOGY_EXISTS', { name, reason: `the controller already holds ${TOPOLOGIES_MAX} topologies, its limit` }), undefined);
      return;
    }
    this.operate(name, 'applying', null, topology, {}, dryRun, callback);
  }

  /** PATCH: add or remove sites, edges and regions, change tuning; only the difference is applied. */
  patch(name: string, patch: TopologyPatch, dryRun: boolean, callback: Callback<OperationAnswer>): void {
    const existing = this.topologies.get(name);
    if (existing === undefined) {
      callback(new StraitError('STRAIT_TOPOLOGY_NOT_FOUND', { name, controller: this.options.name }), undefined);
      return;
    }
    const before = existing.topology;
    const sites: Record<string, TopologySite> = { ...before.sites };
    for (const [site, value] of Object.entries(patch.sites ?? {})) {
      if (value === null) delete sites[site];
      else sites[site] = value;
    }
    const removed = new Set((patch.edges?.remove ?? []).map(([from, to]) => `${from}\u0000${to}`));
    const edges = [...before.edges.filter(([from, to]) => !removed.has(`${from}\u0000${to}`) && sites[from] !== undefined && sites[to] !== undefined), ...(patch.edges?.add ?? [])];
    const regions: Record<string, { type?: 'replicate'; persistent?: boolean }> = { ...before.regions };
    for (const [region, value] of Object.entries(patch.regions ?? {})) {
      if (value === null) delete regions[region];
      else regions[region] = value;
    }
    const candidate = { name, sites, edges, regions, ...(before.tuning !== undefined || patch.tuning !== undefined ? { tuning: { ...before.tuning, ...patch.tuning } } : {}) };
    const topology = checked(candidate, name, callback);
    if (topology === undefined) return;
    this.operate(name, 'patching', before, topology, existing.owned, dryRun, callback);
  }

  /** DELETE: take down everything the topology created on every site. */
  remove(name: string, dryRun: boolean, callback: Callback<OperationAnswer>): void {
    const existing = this.topologies.get(name);
    if (existing === undefined) {
      callback(new StraitError('STRAIT_TOPOLOGY_NOT_FOUND', { name, controller: this.options.name }), undefined);
      return;
    }
    this.operate(name, 'deleting', existing.topology, null, existing.owned, dryRun, callback);
  }

  /**
   * Asks every site involved who it is, plans, and (unless a dry run) runs the plan. `before` is
   * the topology as applied (null for a new one), `after` the one wanted (null to delete).
   */
  private operate(
    name: string, operation: 'applying' | 'patching' | 'deleting', before: Topology | null, after: Topology | null,
    owned: Readonly<Record<string, Owned>>, dryRun: boolean, callback: Callback<OperationAnswer>,
  ): void {
    const busy = this.running.get(name);
    if (busy !== undefined) {
      callback(new StraitError('STRAIT_TOPOLOGY_BUSY', { name, operation: busy.operation }), undefined);
      return;
    }
    const sitesOf = { ...(before?.sites ?? {}), ...(after?.sites ?? {}) };
    const siteNames = Object.keys(sitesOf);
    const slot = { operation, run: undefined as PlanRun | undefined };
    if (!dryRun) this.running.set(name, slot);
    const release = () => {
      if (!dryRun) this.running.delete(name);
    };
    this.describeAll(sitesOf, (facts, problems) => {
      const participantProblems = [...problems];
      if (after !== null && before === null) {
        // A new topology: its name must not run on any site yet, and site ids must differ.
        const owners = new Map<number, string>();
        for (const [site, siteFacts] of Object.entries(facts)) {
          if (runsThere(name, siteFacts.config.senders.map((sender) => sender.id))) {
            participantProblems.push({ path: `/sites/${site}`, code: 'STRAIT_TOPOLOGY_EXISTS', message: new StraitError('STRAIT_TOPOLOGY_EXISTS', { name, reason: `site ${site} already runs senders of a topology ${name} this controller does not hold` }).message });
          }
          const other = owners.get(siteFacts.site);
          if (other !== undefined) {
            participantProblems.push({ path: `/sites/${site}`, code: 'STRAIT_SITE_REFUSED', message: new StraitError('STRAIT_SITE_REFUSED', { site, step: 'validate participants', reason: `its site id ${siteFacts.site} is also the id of site ${other}; every site needs its own site-id` }).message });
          }
          owners.set(siteFacts.site, site);
        }
      }
      if (participantProblems.length > 0) {
        release();
        callback(participantsError(name, participantProblems), undefined);
        return;
      }
      let plan: Plan;
      try {
        plan = planTopology(after, siteNames, owned, facts);
      } catch (error) {
        release();
        callback(error as StraitError, undefined);
        return;
      }
      const receivers = Object.fromEntries(Object.entries(facts).map(([site, siteFacts]) => [site, siteFacts.receivers.map(formatAddress)]));
      if (dryRun) {
        callback(undefined, { topology: name, changed: plan.steps.length > 0, dryRun: true, plan: describePlan(plan), progress: [], receivers });
        return;
      }
      if (before === null && after !== null) this.pendingSites.set(name, after);
      const journalOperation = operation === 'applying' ? 'apply' : operation === 'patching' ? 'patch' : 'delete';
      const run = new PlanRun(this.runtime, (site) => this.siteApi(sitesOf[site]!), this.journal, this.log, name, journalOperation, sitesOf, plan, after, this.options.edgeTimeoutMs ?? EDGE_CONNECT_TIMEOUT_MS_DEFAULT);
      slot.run = run;
      this.log.info({ topology: name, steps: plan.steps.length, operation }, `controller ${this.options.name}: ${operation} topology ${name}: ${plan.steps.length} steps on ${siteNames.length} sites`);
      run.run((outcome) => {
        const reply = (error: StraitError | undefined) => {
          release();
          if (error !== undefined) {
            callback(Object.assign(error, { progress: outcome.progress }), undefined);
            return;
          }
          this.describeAll(sitesOf, (latest) => callback(undefined, {
            topology: name, changed: true, dryRun: false, plan: describePlan(plan), progress: outcome.progress,
            receivers: Object.fromEntries(Object.entries(latest).map(([site, siteFacts]) => [site, siteFacts.receivers.map(formatAddress)])),
          }));
        };
        if (!outcome.ok && outcome.remaining.length > 0) {
          // The rollback could not reach every site: what is left is undone later (recover).
          const left = { topology: name, operation: journalOperation, sites: sitesOf, steps: plan.steps, started: [...outcome.remaining] } as const;
          release();
          this.running.set(name, { operation: 'recovering', run: undefined });
          const previous = this.topologies.get(name);
          if (previous !== undefined) this.topologies.set(name, { ...previous, lastError: `${outcome.error?.message ?? 'failed'}; ${outcome.remaining.length} steps still to undo` });
          this.runtime.setTimer(RECOVERY_RETRY_MS, () => this.recover(left, `the ${journalOperation} failed (${outcome.error?.message ?? 'unknown'})`, () => {}));
          callback(Object.assign(outcome.error!, { progress: outcome.progress }), undefined);
          return;
        }
        this.pendingSites.delete(name);
        if (!outcome.ok) {
          const previous = this.topologies.get(name);
          if (previous === undefined) reply(outcome.error);
          else this.save({ ...previous, lastError: outcome.error?.message ?? 'failed' }, () => reply(outcome.error));
          return;
        }
        this.settle({ topology: name, operation: journalOperation, sites: sitesOf, steps: plan.steps, started: [], succeeded: true, after, owned: plan.owned }, (error) => reply(error));
      });
    });
  }

  private save(record: TopologyRecord, done: (error: StraitError | undefined) => void): void {
    this.topologies.set(record.topology.name, record);
    this.store.put(record.topology.name, new TextEncoder().encode(JSON.stringify(record)));
    this.store.sync((error) => done(error === undefined ? undefined : new StraitError('STRAIT_STORAGE', { path: 'controller topologies', reason: error.message }, { cause: error })));
  }

  /** Asks every site at once; the facts of those that answered, a problem for each that did not. */
  private describeAll(sites: Readonly<Record<string, TopologySite>>, done: (facts: Record<string, SiteFacts>, problems: Problem[]) => void): void {
    const facts: Record<string, SiteFacts> = {};
    const problems: Problem[] = [];
    const names = Object.keys(sites);
    let pending = names.length;
    if (pending === 0) {
      done(facts, problems);
      return;
    }
    for (const name of names) {
      const site = sites[name]!;
      this.siteApi(site).describe((error, siteFacts) => {
        if (error !== undefined || siteFacts === undefined) {
          const reason = error === undefined ? 'no answer' : error.code === 'STRAIT_SITE_UNREACHABLE' ? error.message.replace(/^site [^ ]+ \([^)]*\): /, '') : `${error.code}: ${error.message}`;
          const unreachable = new StraitError('STRAIT_SITE_UNREACHABLE', { site: name, admin: site.admin, reason });
          problems.push({ path: `/sites/${name}/admin`, code: 'STRAIT_SITE_UNREACHABLE', message: unreachable.message });
        } else {
          facts[name] = siteFacts;
        }
        pending -= 1;
        if (pending === 0) done(facts, problems);
      });
    }
  }

  /** GET one topology: each site as it answers now, each edge's sender figures. */
  status(name: string, callback: Callback<TopologyStatus>): void {
    const record = this.topologies.get(name);
    const running = this.running.get(name);
    const topology = record?.topology ?? this.pendingSites.get(name);
    if (topology === undefined) {
      callback(new StraitError('STRAIT_TOPOLOGY_NOT_FOUND', { name, controller: this.options.name }), undefined);
      return;
    }
    const siteNames = Object.keys(topology.sites);
    const sites: SiteStatus[] = [];
    const sendersBySite = new Map<string, readonly SenderStatus[] | StraitError>();
    let pending = siteNames.length * 2;
    const finish = () => {
      pending -= 1;
      if (pending > 0) return;
      const nowMs = this.runtime.clock.monotonic();
      const edges = topology.edges.map(([from, to]) => this.edgeStatus(name, from, to, sendersBySite.get(from), nowMs));
      sites.sort((a, b) => a.name.localeCompare(b.name));
      callback(undefined, {
        name, state: running?.operation ?? 'applied', appliedAtMs: record?.appliedAtMs ?? 0, lastError: record?.lastError ?? null,
        topology, sites, edges, operation: running?.run?.progress ?? null,
      });
    };
    if (pending === 0) {
      pending = 1;
      finish();
      return;
    }
    for (const siteName of siteNames) {
      const api = this.siteApi(topology.sites[siteName]!);
      api.describe((error, facts) => {
        sites.push(error !== undefined || facts === undefined
          ? { name: siteName, reachable: false, error: error === undefined ? 'no answer' : `${error.code}: ${error.message}` }
          : { name: siteName, reachable: true, site: facts.site, servers: facts.servers, members: facts.members ?? [], locators: facts.locators.map(formatAddress), receivers: facts.receivers.map(formatAddress), regions: facts.config.regions.map((region) => region.name) });
        finish();
      });
      api.senders((error, senders) => {
        sendersBySite.set(siteName, error ?? senders ?? []);
        finish();
      });
    }
  }

  private edgeStatus(topology: string, from: string, to: string, senders: readonly SenderStatus[] | StraitError | undefined, nowMs: number): EdgeStatus {
    const id = senderIdOf(topology, to);
    const unknown = (lastError: string): EdgeStatus => ({ from, to, sender: id, state: 'unknown', queueEvents: 0, lagMs: 0, eventsPerSecond: 0, eventsSent: 0, lastError });
    if (senders === undefined) return unknown('no answer');
    if (senders instanceof StraitError) return unknown(`${senders.code}: ${senders.message}`);
    const copies = senders.filter((sender) => sender.id === id);
    const primary = copies.find((sender) => sender.role === 'primary');
    if (primary === undefined) return unknown(copies.length === 0 ? `no server of site ${from} runs sender ${id}` : `sender ${id} has no primary copy (no ready server runs it)`);
    const key = `${topology}\u0000${from}\u0000${to}`;
    const previous = this.samples.get(key);
    let rate = previous?.rate ?? 0;
    if (previous !== undefined && nowMs - previous.atMs >= 500) {
      rate = Math.max(0, ((primary.eventsSent - previous.eventsSent) * 1000) / (nowMs - previous.atMs));
    }
    if (previous === undefined || nowMs - previous.atMs >= 500) this.samples.set(key, { eventsSent: primary.eventsSent, atMs: nowMs, rate });
    const connected = primary.connectedReceiver !== null || primary.dialInFrom !== undefined;
    return {
      from, to, sender: id,
      state: primary.state === 'running' ? (connected ? 'connected' : 'connecting') : primary.state,
      queueEvents: primary.queueEvents,
      lagMs: primary.lagMs,
      eventsPerSecond: Math.round(rate * 10) / 10,
      eventsSent: primary.eventsSent,
      lastError: primary.problem,
    };
  }

  /** Every topology's status (the dashboard's feed). */
  statuses(callback: (statuses: TopologyStatus[]) => void): void {
    const names = [...new Set([...this.topologies.keys(), ...this.pendingSites.keys()])];
    const statuses: TopologyStatus[] = [];
    let pending = names.length;
    if (pending === 0) {
      callback(statuses);
      return;
    }
    for (const name of names) {
      this.status(name, (_error, status) => {
        if (status !== undefined) statuses.push(status);
        pending -= 1;
        if (pending === 0) callback(statuses.sort((a, b) => a.name.localeCompare(b.name)));
      });
    }
  }
}

/** The topology, or undefined once `callback` has the coded error listing its problems. */
function checked(body: unknown, name: string, callback: Callback<OperationAnswer>): Topology | undefined {
  try {
    return parseTopology(body, name);
  } catch (error) {
    callback(error as StraitError, undefined);
    return undefined;
  }
}

function participantsError(name: string, problems: readonly Problem[]): StraitError {
  const unreachable = problems.every((problem) => problem.code === 'STRAIT_SITE_UNREACHABLE');
  const error = invalidTopology(name, problems);
  const code = unreachable ? 'STRAIT_SITE_UNREACHABLE' : problems[0]!.code;
  const wrapped = new StraitError(code === 'STRAIT_SITE_UNREACHABLE' ? 'STRAIT_SITE_UNREACHABLE' : code === 'STRAIT_TOPOLOGY_EXISTS' ? 'STRAIT_TOPOLOGY_EXISTS' : 'STRAIT_SITE_REFUSED', {
    name, site: problems[0]!.path.split('/')[2] ?? '', admin: '', step: 'validate participants', reason: problems.map((problem) => problem.message).join('; '),
  });
  wrapped.message = problems.map((problem) => problem.message).join('; ');
  return Object.assign(wrapped, { problems: error.problems });
}
