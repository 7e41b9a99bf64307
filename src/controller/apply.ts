// Running a plan (plan.ts) across the sites, phase by phase, journaled, with rollback.
//
// Each phase runs on every site at once; within a site its steps run in order. The journal
// records a step before it is sent and once it is answered (synced each time), so a controller
// killed mid-apply knows which steps may have happened: on restart it undoes them, newest first
// (every undo is an idempotent site configuration change). When a step fails, no further step
// starts; those in flight finish; then everything done is undone in reverse. After the last
// phase every edge must connect: its sender's primary copy reports a connected receiver (or a
// dial-in link) within the timeout, else the apply fails and is undone as well.
//
// A state machine: callbacks run to completion; time and storage come through the Runtime.

import { StraitError } from '../errors.ts';
import type { ConfigChange, ConfigChangeResult, SenderStatus } from '../protocol/messages.ts';
import type { Logger, Runtime, Store } from '../runtime/runtime.ts';
import { describeChange } from '../core/site-config.ts';
import { PHASES, type Owned, type PhaseName, type Plan, type SiteFacts, type Step } from './plan.ts';
import { senderIdOf, type Topology, type TopologySite } from './topology.ts';

/** One site as the controller reaches it (its locator's admin API, or the simulator's). */
export interface SiteApi {
  /** The site's id, locators, servers and configuration. */
  describe(callback: (error: StraitError | undefined, facts: SiteFacts | undefined) => void): void;
  change(change: ConfigChange, callback: (error: StraitError | undefined, result: ConfigChangeResult | undefined) => void): void;
  /** Every copy of every gateway sender of the site. */
  senders(callback: (error: StraitError | undefined, senders: readonly SenderStatus[] | undefined) => void): void;
}

export type StepState = 'waiting' | 'running' | 'done' | 'failed' | 'undone' | 'undo-failed';

export interface StepProgress {
  readonly site: string;
  readonly phase: PhaseName | 'verify';
  readonly step: string;
  state: StepState;
  error?: string;
}

/** How long every edge has to connect once the steps ran. */
export const EDGE_CONNECT_TIMEOUT_MS_DEFAULT = 60_000;
const EDGE_POLL_MS = 500;

/** A journal record: the steps of the operation under way and which of them may have happened. */
export interface JournalRecord {
  readonly topology: string;
  readonly operation: 'apply' | 'patch' | 'delete';
  /** How to reach every site involved (a recovery has no other record of a new topology's sites). */
  readonly sites: Readonly<Record<string, TopologySite>>;
  readonly steps: readonly Step[];
  /** Indices of steps sent (answered or not): what a recovery undoes. */
  readonly started: readonly number[];
  /**
   * Every step ran and every edge connected: a recovery rolls forward (stores `after` and `owned`
   * as the topology), never back. Written before the topology is stored, so a crash between the
   * two loses neither.
   */
  readonly succeeded?: boolean;
  /** The topology once the operation succeeded (null: deleted), and what it then owns. */
  readonly after?: Topology | null;
  readonly owned?: Readonly<Record<string, Owned>>;
}

/** The journal of operations in flight, one record per topology, in the controller's store. */
export class Journal {
  private readonly store: Store;

  constructor(store: Store) {
    this.store = store;
  }

  write(record: JournalRecord, done: (error: StraitError | undefined) => void): void {
    this.store.put(record.topology, new TextEncoder().encode(JSON.stringify(record)));
    this.store.sync((error) => done(error === undefined ? undefined : new StraitError('STRAIT_STORAGE', { path: 'controller journal', reason: error.message }, { cause: error })));
  }

  remove(topology: string, done: (error: StraitError | undefined) => void): void {
    this.store.remove(topology);
    this.store.sync((error) => done(error === undefined ? undefined : new StraitError('STRAIT_STORAGE', { path: 'controller journal', reason: error.message }, { cause: error })));
  }

  /** Operations a previous process left unfinished. */
  unfinished(): JournalRecord[] {
    return [...this.store.entries()].map(([, bytes]) => JSON.parse(new TextDecoder().decode(bytes)) as JournalRecord);
  }
}

export interface ApplyOutcome {
  readonly ok: boolean;
  /** The failure: which site and step, and why. */
  readonly error?: StraitError;
  readonly progress: readonly StepProgress[];
  /**
   * Steps whose undo failed (a site unreachable during the rollback): the journal still holds
   * them, and the controller undoes them later (`recoverRecord`) until it can.
   */
  readonly remaining: readonly number[];
}

export class PlanRun {
  private readonly runtime: Runtime;
  private readonly sites: (name: string) => SiteApi;
  private readonly journal: Journal;
  private readonly log: Logger;
  private readonly record: { topology: string; operation: JournalRecord['operation']; sites: Readonly<Record<string, TopologySite>>; steps: readonly Step[]; started: number[]; after: Topology | null; owned: Readonly<Record<string, Owned>> };
  readonly progress: StepProgress[];
  private failure: StraitError | undefined;
  private readonly undoFailed: number[] = [];
  private readonly edgeTimeoutMs: number;
  private readonly plan: Plan;

  constructor(
    runtime: Runtime, sites: (name: string) => SiteApi, journal: Journal, log: Logger,
    topology: string, operation: JournalRecord['operation'], sitesOf: Readonly<Record<string, TopologySite>>, plan: Plan, after: Topology | null,
    edgeTimeoutMs = EDGE_CONNECT_TIMEOUT_MS_DEFAULT,
  ) {
    this.runtime = runtime;
    this.sites = sites;
    this.journal = journal;
    this.log = log;
    this.plan = plan;
    this.edgeTimeoutMs = edgeTimeoutMs;
    this.record = { topology, operation, sites: sitesOf, steps: plan.steps, started: [], after, owned: plan.owned };
    this.progress = plan.steps.map((step) => ({ site: step.site, phase: step.phase, step: describeChange(step.change), state: 'waiting' as StepState }));
    for (const [from, to] of plan.edges) this.progress.push({ site: from, phase: 'verify', step: `edge ${from} → ${to} connects`, state: 'waiting' });
  }

  run(done: (outcome: ApplyOutcome) => void): void {
    const finish = (error: StraitError | undefined) => {
      const remaining = [...this.undoFailed].sort((a, b) => a - b);
      const answer = (journalError: StraitError | undefined) => {
        if (journalError !== undefined) this.log.error({ code: journalError.code }, `controller: could not update the journal of ${this.record.topology}: ${journalError.message}`);
        done({ ok: error === undefined, ...(error !== undefined ? { error } : {}), progress: this.progress, remaining });
      };
      // Success is recorded (the controller stores the topology, then clears the journal); what
      // could not be undone stays in the journal, to be undone later.
      if (error === undefined) this.journal.write({ ...this.record, succeeded: true }, answer);
      else if (remaining.length > 0) this.journal.write({ ...this.record, started: remaining }, answer);
      else this.journal.remove(this.record.topology, answer);
    };
    this.journal.write(this.record, (error) => {
      if (error !== undefined) {
        done({ ok: false, error, progress: this.progress, remaining: [] });
        return;
      }
      this.runPhase(0, () => {
        if (this.failure !== undefined) {
          this.rollBack(() => finish(this.failure));
          return;
        }
        this.verifyEdges(() => {
          if (this.failure !== undefined) this.rollBack(() => finish(this.failure));
          else finish(undefined);
        });
      });
    });
  }

  private runPhase(index: number, done: () => void): void {
    const phase = PHASES[index];
    if (phase === undefined || this.failure !== undefined) {
      done();
      return;
    }
    const bySite = new Map<string, number[]>();
    this.record.steps.forEach((step, stepIndex) => {
      if (step.phase === phase) bySite.set(step.site, [...(bySite.get(step.site) ?? []), stepIndex]);
    });
    let pending = bySite.size;
    if (pending === 0) {
      this.runPhase(index + 1, done);
      return;
    }
    for (const indices of bySite.values()) {
      this.runSteps(indices, () => {
        pending -= 1;
        if (pending === 0) this.runPhase(index + 1, done);
      });
    }
  }

  /** One site's steps of a phase, in order, stopping at the first failure anywhere. */
  private runSteps(indices: readonly number[], done: () => void): void {
    const [first, ...rest] = indices;
    if (first === undefined || this.failure !== undefined) {
      done();
      return;
    }
    const step = this.record.steps[first]!;
    const progress = this.progress[first]!;
    this.record.started.push(first);
    this.journal.write(this.record, (journalError) => {
      if (journalError !== undefined) {
        this.failure ??= journalError;
        done();
        return;
      }
      progress.state = 'running';
      this.sites(step.site).change(step.change, (error) => {
        if (error !== undefined) {
          progress.state = 'failed';
          progress.error = `${error.code}: ${error.message}`;
          this.failure ??= new StraitError('STRAIT_SITE_REFUSED', { site: step.site, step: describeChange(step.change), reason: `${error.code}: ${error.message}` }, { cause: error });
          this.log.warn({ site: step.site, step: progress.step, code: error.code }, `controller: topology ${this.record.topology}: site ${step.site} refused "${progress.step}": ${error.message}; rolling back`);
          done();
          return;
        }
        progress.state = 'done';
        this.runSteps(rest, done);
      });
    });
  }

  /** Undoes every step that was started, newest first within each site (recoverRecord). */
  private rollBack(done: () => void): void {
    recoverRecord(this.record, this.sites, this.log, (index, error, gaveUp) => {
      const progress = this.progress[index]!;
      if (error === undefined) {
        if (progress.state !== 'failed') progress.state = 'undone';
        return;
      }
      progress.state = 'undo-failed';
      progress.error = `${progress.error ?? ''}${progress.error ? '; ' : ''}undo: ${error.code}: ${error.message}${gaveUp ? ' (refused: undo it by hand)' : ' (the controller tries again)'}`;
    }, (_problems, remaining) => {
      this.undoFailed.push(...remaining);
      done();
    });
  }

  /** Waits until every edge's sender has a primary copy connected to the remote site. */
  private verifyEdges(done: () => void): void {
    const checks = this.progress.filter((entry) => entry.phase === 'verify');
    if (checks.length === 0) {
      done();
      return;
    }
    const deadline = this.runtime.clock.monotonic() + this.edgeTimeoutMs;
    for (const check of checks) check.state = 'running';
    const look = () => {
      const waiting = this.plan.edges.filter((_, index) => checks[index]!.state === 'running');
      const bySource = new Map<string, (readonly [string, string])[]>();
      for (const edge of waiting) bySource.set(edge[0], [...(bySource.get(edge[0]) ?? []), edge]);
      let pending = bySource.size;
      if (pending === 0) {
        done();
        return;
      }
      for (const [source, edges] of bySource) {
        this.sites(source).senders((error, senders) => {
          for (const edge of edges) {
            const check = checks[this.plan.edges.indexOf(edge)]!;
            const id = senderIdOf(this.record.topology, edge[1]);
            const primary = senders?.find((sender) => sender.id === id && sender.role === 'primary');
            if (primary !== undefined && (primary.connectedReceiver !== null || primary.dialInFrom !== undefined)) check.state = 'done';
            else check.error = error !== undefined ? `${error.code}: ${error.message}` : primary?.problem ?? `no primary copy of sender ${id} on site ${source} yet`;
          }
          pending -= 1;
          if (pending > 0) return;
          const late = checks.filter((entry) => entry.state === 'running');
          if (late.length === 0) {
            done();
            return;
          }
          if (this.runtime.clock.monotonic() >= deadline) {
            for (const entry of late) entry.state = 'failed';
            const [from, to] = this.plan.edges[checks.indexOf(late[0]!)]!;
            this.failure = new StraitError('STRAIT_EDGE_NOT_CONNECTED', { from, to, timeoutMs: this.edgeTimeoutMs, reason: late[0]!.error ?? 'unknown' });
            done();
            return;
          }
          this.runtime.setTimer(EDGE_POLL_MS, look);
        });
      }
    };
    look();
  }
}

/** An undo that failed for one of these may succeed later: the site could not be asked, or not yet. */
function transient(error: StraitError): boolean {
  return error.retryable || error.code === 'STRAIT_SITE_UNREACHABLE' || error.code === 'STRAIT_CONNECTION_CLOSED' || error.code === 'STRAIT_TIMEOUT'
    || error.code === 'STRAIT_CONFIG_BUSY';
}

/**
 * Undoes what an operation may have done (a rollback; a controller killed mid-apply; an undo
 * that could not reach a site): its started steps, newest first within each site — a site's
 * steps depend on each other in order, different sites' do not. At a site that can't be reached,
 * it stops: that step and the site's older ones stay `remaining`, to be undone later in the same
 * order. A site that refuses an undo (its configuration was changed by hand meanwhile) is reported
 * and passed over: retrying can't help. `onStep` hears of every undo's outcome.
 */
export function recoverRecord(
  record: JournalRecord, sites: (name: string) => SiteApi, log: Logger,
  onStep: (index: number, error: StraitError | undefined, gaveUp: boolean) => void,
  done: (problems: string[], remaining: number[]) => void,
): void {
  const bySite = new Map<string, number[]>();
  for (const index of [...record.started].reverse()) {
    const site = record.steps[index]!.site;
    bySite.set(site, [...(bySite.get(site) ?? []), index]);
  }
  const problems: string[] = [];
  const remaining: number[] = [];
  const siteOrder = [...bySite.keys()];
  const nextSite = () => {
    const site = siteOrder.shift();
    if (site === undefined) {
      done(problems, remaining.sort((a, b) => a - b));
      return;
    }
    const order = bySite.get(site)!;
    const nextStep = () => {
      const index = order.shift();
      if (index === undefined) {
        nextSite();
        return;
      }
      const step = record.steps[index]!;
      if (step.undo === undefined) {
        nextStep();
        return;
      }
      sites(step.site).change(step.undo, (error) => {
        if (error === undefined) {
          onStep(index, undefined, false);
          nextStep();
          return;
        }
        const what = `site ${step.site}: could not undo "${describeChange(step.change)}": ${error.code}: ${error.message}`;
        if (transient(error)) {
          remaining.push(index, ...order);
          problems.push(`${what}; trying again later`);
          log.warn({ site: step.site, code: error.code }, `controller: topology ${record.topology}: ${what}; the journal keeps it and the controller tries again`);
          onStep(index, error, false);
          nextSite();
          return;
        }
        problems.push(`${what}; undo it by hand (strait ${describeChange(step.undo!)} --locator ...)`);
        log.error({ site: step.site, code: error.code }, `controller: topology ${record.topology}: ${what}; the site refuses, so it is left: undo it by hand`);
        onStep(index, error, true);
        nextStep();
      });
    };
    nextStep();
  };
  nextSite();
}
