// The membership side every member runs (servers, and locators that are not coordinating):
// join the site through any locator, heartbeat every locator in the view, take in new views,
// and notice when this member was removed or lost its coordinator.
//
// A state machine: driven by `tick()` (the owner's timer), responses and pushed views.

import { StraitError } from '../errors.ts';
import type { MemberInfo, View } from '../protocol/messages.ts';
import type { Address, Logger, Runtime } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { Backoff } from './backoff.ts';
import type { MembershipTiming } from './config.ts';
import { addressKey, type PeerPool } from './peer-pool.ts';
import { findMember, locatorsOf, sameLineage } from './views.ts';

export interface AgentHost {
  /** This member's identity as it should appear in the view. */
  info(): MemberInfo;
  load(): number;
  ready(): boolean;
  /** The site configuration version this member runs (servers), reported in heartbeats. */
  configVersion?(): number | undefined;
  /** A newer view containing this member was installed. */
  onView(view: View, previous: View | null): void;
  /** The coordinator's view no longer has this member: it must rejoin under a new identity. */
  onRemoved(reason: string): void;
  /** No coordinator has acknowledged this member for twice the member timeout; it rejoins. */
  onIsolated(): void;
  /** Joining failed for a reason retrying won't fix (site mismatch, name in use). */
  onJoinRefused(error: StraitError): void;
}

export type AgentState = 'idle' | 'joining' | 'member' | 'stopped';

export class MemberAgent {
  private readonly runtime: Runtime;
  private readonly pool: PeerPool;
  private readonly seeds: readonly Address[];
  private readonly timing: MembershipTiming;
  private readonly host: AgentHost;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  state: AgentState = 'idle';
  view: View | null = null;
  /** Monotonic time of the last heartbeat answer from each locator, by member id. */
  readonly lastAck = new Map<string, number>();
  private lastCoordinatorAckMs = 0;
  private joinAttempt = 0;
  private joinInFlight = false;
  private nextJoinAtMs = 0;
  private lastJoinFailureLogMs = -Infinity;

  constructor(runtime: Runtime, pool: PeerPool, seeds: readonly Address[], timing: MembershipTiming, host: AgentHost, log: Logger) {
    this.runtime = runtime;
    this.pool = pool;
    this.seeds = seeds;
    this.timing = timing;
    this.host = host;
    this.log = log;
    this.backoff = new Backoff(runtime.random, { initialDelayMs: 100, maximumDelayMs: Math.max(1000, timing.heartbeatIntervalMs * 2) });
  }

  /** Starts (or restarts) joining; progress happens on `tick`. */
  join(): void {
    if (this.state === 'stopped') return;
    this.state = 'joining';
    this.nextJoinAtMs = 0;
    this.backoff.reset();
    this.attemptJoin();
  }

  stop(): void {
    this.state = 'stopped';
  }

  /** Where to send a join: the locators of the current view first, then the configured ones. */
  private joinCandidates(): Address[] {
    const seen = new Set<string>();
    const candidates: Address[] = [];
    const self = addressKey(this.host.info().address);
    for (const locator of locatorsOf(this.view)) {
      if (locator.info.id === this.host.info().id) continue;
      const key = addressKey(locator.info.address);
      if (!seen.has(key) && key !== self) {
        seen.add(key);
        candidates.push(locator.info.address);
      }
    }
    for (const seed of this.seeds) {
      const key = addressKey(seed);
      if (!seen.has(key) && key !== self) {
        seen.add(key);
        candidates.push(seed);
      }
    }
    return candidates;
  }

  private attemptJoin(): void {
    if (this.state !== 'joining' || this.joinInFlight) return;
    const candidates = this.joinCandidates();
    if (candidates.length === 0) return;
    const target = candidates[this.joinAttempt % candidates.length]!;
    this.joinAttempt += 1;
    this.joinInFlight = true;
    const info = this.host.info();
    this.pool.get(target).request('join', { info }, (error, response) => {
      this.joinInFlight = false;
      if (this.state !== 'joining') return;
      if (error !== undefined || response === undefined) {
        const failure = error ?? new StraitError('STRAIT_INTERNAL', { reason: 'empty join response' });
        if (failure.code === 'STRAIT_SITE_MISMATCH' || failure.code === 'STRAIT_NAME_IN_USE') {
          this.state = 'idle';
          this.host.onJoinRefused(failure);
          return;
        }
        const now = this.runtime.clock.monotonic();
        if (now - this.lastJoinFailureLogMs > 5000) {
          this.lastJoinFailureLogMs = now;
          this.log.warn(
            { code: failure.code, locator: formatAddress(target) },
            `${info.name}: join through locator ${formatAddress(target)} failed: ${failure.message}; retrying with the next locator`,
          );
        }
        this.nextJoinAtMs = now + this.backoff.nextDelayMs();
        return;
      }
      if (findMember(response.view, info.id) === undefined) {
        this.nextJoinAtMs = this.runtime.clock.monotonic() + this.backoff.nextDelayMs();
        return;
      }
      this.backoff.reset();
      this.state = 'member';
      this.lastCoordinatorAckMs = this.runtime.clock.monotonic();
      this.install(response.view);
    });
  }

  /** A view arrived (pushed, or fetched after a heartbeat said ours is old). */
  offerView(view: View): void {
    if (this.state === 'stopped' || this.state === 'idle') return;
    const id = this.host.info().id;
    const current = this.view;
    const containsMe = findMember(view, id) !== undefined;
    if (current !== null && sameLineage(current, view)) {
      if (view.id <= current.id) return;
      if (!containsMe) {
        if (this.state === 'member') {
          this.state = 'idle';
          this.view = view;
          this.host.onRemoved(`view ${view.id} from coordinator ${view.coordinator} no longer lists ${id}`);
        }
        return;
      }
    } else if (!containsMe) {
      return;
    }
    if (this.state === 'joining') {
      this.state = 'member';
      this.backoff.reset();
    }
    this.lastCoordinatorAckMs = this.runtime.clock.monotonic();
    this.install(view);
  }

  private install(view: View): void {
    const previous = this.view;
    this.view = view;
    const now = this.runtime.clock.monotonic();
    for (const locator of locatorsOf(view)) {
      if (!this.lastAck.has(locator.info.id)) this.lastAck.set(locator.info.id, now);
    }
    this.host.onView(view, previous);
  }

  /** Called every heartbeat interval by the owner. */
  tick(): void {
    const now = this.runtime.clock.monotonic();
    if (this.state === 'joining') {
      if (now >= this.nextJoinAtMs) this.attemptJoin();
      return;
    }
    if (this.state !== 'member' || this.view === null) return;
    const info = this.host.info();
    const view = this.view;
    for (const locator of locatorsOf(view)) {
      if (locator.info.id === info.id) continue;
      this.heartbeat(locator.info.id, locator.info.address, view.id);
    }
    if (view.coordinator !== info.id && now - this.lastCoordinatorAckMs > 2 * this.timing.memberTimeoutMs) {
      this.log.warn(
        { coordinator: view.coordinator, silentMs: now - this.lastCoordinatorAckMs },
        `${info.name}: no coordinator has acknowledged this member for ${now - this.lastCoordinatorAckMs} ms; rejoining through any locator`,
      );
      this.host.onIsolated();
      this.join();
    }
  }

  private heartbeat(locatorId: string, address: Address, viewId: number): void {
    const info = this.host.info();
    // The info goes along while the view holds an older copy of it (it changed at runtime).
    const listed = findMember(this.view, info.id)?.info;
    const changed = listed !== undefined && JSON.stringify(listed) !== JSON.stringify(info);
    const configVersion = this.host.configVersion?.();
    const body = {
      id: info.id, viewId, load: this.host.load(), ready: this.host.ready(),
      ...(configVersion !== undefined ? { configVersion } : {}),
      ...(changed ? { info } : {}),
    };
    this.pool.get(address).request('heartbeat', body, (error, response) => {
      if (error !== undefined || response === undefined || this.state !== 'member') return;
      // A restarted locator answers on the same address under a new id: that is not the
      // locator we are checking on.
      if (response.responder !== locatorId) return;
      const now = this.runtime.clock.monotonic();
      this.lastAck.set(locatorId, now);
      if (!response.coordinator) return;
      if (!response.member) {
        // The coordinator does not know us: either we were removed (the view push may be on
        // its way) or it is a new coordinator of another lineage. Fetch its view to decide.
        this.fetchView(address, true);
        return;
      }
      this.lastCoordinatorAckMs = now;
      if (this.view !== null && response.viewId > this.view.id) this.fetchView(address, false);
    });
  }

  private fetchView(address: Address, removedUnlessListed: boolean): void {
    this.pool.get(address).request('getView', {}, (error, response) => {
      if (error !== undefined || response === undefined || response.view === null || this.state !== 'member') return;
      const view = response.view;
      const id = this.host.info().id;
      if (removedUnlessListed && findMember(view, id) === undefined && view.coordinator === response.self.id) {
        this.state = 'idle';
        this.host.onRemoved(`coordinator ${response.self.name} at ${formatAddress(address)} does not list ${id} in view ${view.id}`);
        return;
      }
      this.offerView(view);
    });
  }
}
