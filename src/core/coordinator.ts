// The coordinator's side of membership, run by the oldest locator of the view: it admits joins
// (forwarding them when it is not the coordinator), issues views with increasing ids and pushes
// them to every member it can reach, removes members silent for longer than the member timeout
// (crashed) or that asked to leave (left), and balances clients over ready servers (`locate`).
// A locator that is not the coordinator takes over when the coordinator and every older locator
// have been silent for the member timeout.
//
// A state machine: callbacks run to completion; time and I/O come through the Runtime.

import { StraitError } from '../errors.ts';
import type { Connection, Reply } from '../protocol/connection.ts';
import type { MemberInfo, RequestBody, ResponseBody, View } from '../protocol/messages.ts';
import type { Logger, Runtime, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import type { MembershipTiming } from './config.ts';
import type { MemberState } from './member-admin.ts';
import type { MemberAgent } from './member-agent.ts';
import { addressKey, type PeerPool } from './peer-pool.ts';
import { type Departure, findMember, locatorsOf, nextView } from './views.ts';
import { eligibleHosts, rebalance, repairable } from './partition-map.ts';

export interface CoordinatorHost {
  readonly name: string;
  readonly site: number;
  readonly timing: MembershipTiming;
  /** The locator's own membership agent: its view, and when it last heard each locator. */
  readonly agent: MemberAgent;
  memberId(): string | undefined;
  info(): MemberInfo;
  state(): MemberState;
  isCoordinator(): boolean;
  /** A view this coordinator issued is now current. */
  installed(view: View, previous: View | null): void;
}

export class Coordinator {
  private readonly runtime: Runtime;
  private readonly pool: PeerPool;
  private readonly host: CoordinatorHost;
  private readonly log: Logger;
  /** Last heartbeat per member id (monotonic ms). */
  private readonly lastHeard = new Map<string, number>();
  /** Latest load and ready flag reported by each member. */
  private readonly reported = new Map<string, { load: number; ready: boolean }>();
  /** Connection each member last spoke on, for pushing views. */
  private readonly memberConnections = new Map<string, Connection>();

  constructor(runtime: Runtime, pool: PeerPool, host: CoordinatorHost, log: Logger) {
    this.runtime = runtime;
    this.pool = pool;
    this.host = host;
    this.log = log;
  }

  /** A view was installed (ours or another coordinator's): track its members, forget the rest. */
  viewInstalled(view: View): void {
    const now = this.runtime.clock.monotonic();
    for (const member of view.members) {
      if (!this.lastHeard.has(member.info.id)) this.lastHeard.set(member.info.id, now);
    }
    for (const id of [...this.lastHeard.keys()]) {
      if (findMember(view, id) === undefined) {
        this.lastHeard.delete(id);
        this.reported.delete(id);
        this.memberConnections.delete(id);
      }
    }
  }

  /** Coordinator: make `view` current and send it to every member we can reach. */
  issue(change: Parameters<typeof nextView>[1]): View {
    const current = this.host.agent.view;
    if (current === null) throw new StraitError('STRAIT_NOT_READY', { member: this.host.name, state: this.host.state() });
    const view = nextView(current, change);
    this.host.agent.view = view;
    this.host.installed(view, current);
    this.broadcast(view);
    this.scheduleRepairs(view);
    this.continueRebalances(view);
    return view;
  }

  /** Regions a rebalance is evening out: once their moves completed, primaries get a second round. */
  private readonly rebalancing = new Set<string>();

  /**
   * A rebalance moves copies first; primaries that moved with them (a leaving primary hands over
   * to its replacement) are evened out in another round once every move completed.
   */
  private continueRebalances(view: View): void {
    for (const region of [...this.rebalancing]) {
      const map = view.partitions?.find((candidate) => candidate.region === region);
      if (map === undefined) {
        this.rebalancing.delete(region);
        continue;
      }
      if (map.buckets.some((bucket) => bucket !== null && (bucket.pending.length > 0 || (bucket.leaving ?? []).length > 0))) continue;
      this.rebalancing.delete(region);
      const plan = rebalance(map, eligibleHosts(view.members, region));
      if (plan.moves.length + plan.primaryMoves.length === 0) continue;
      if (plan.moves.length > 0) this.rebalancing.add(region);
      this.runtime.defer(() => {
        if (this.host.isCoordinator()) this.issue({ partitions: { rebalance: [region] } });
      });
    }
  }

  /** Regions whose redundancy is restored by a timer (a recovery delay above zero). */
  private readonly repairTimers = new Map<string, Timer>();

  /**
   * Buckets short of copies in a region with a positive recovery delay get their copies back
   * once the delay passed (with a delay of 0 nextView restores them at once; -1: never).
   */
  private scheduleRepairs(view: View): void {
    for (const map of view.partitions ?? []) {
      const delay = Math.max(map.settings.recoveryDelayMs, map.settings.startupRecoveryDelayMs);
      // Only when a repair would add a copy: a site with fewer servers than copies wanted stays
      // short, and must not get a new view every delay.
      if (delay <= 0 || map.settings.recoveryDelayMs < 0 || this.repairTimers.has(map.region)) continue;
      if (!repairable(map, eligibleHosts(view.members, map.region))) continue;
      this.repairTimers.set(map.region, this.runtime.setTimer(delay, () => {
        this.repairTimers.delete(map.region);
        if (this.host.isCoordinator()) this.issue({ partitions: { repair: [map.region] } });
      }));
    }
  }

  /**
   * The view, when this locator is ready and coordinates; otherwise undefined, and the request
   * is refused (not ready) or forwarded to the coordinator, whose answer is relayed.
   */
  private coordinatorView<Op extends 'join' | 'rebalance' | 'bucketsCreate' | 'bucketReady'>(op: Op, body: RequestBody<Op>, reply: Reply<Op>): View | undefined {
    const view = this.host.agent.view;
    if (view === null || this.host.state() !== 'ready') {
      reply.fail(new StraitError('STRAIT_NOT_READY', { member: this.host.name, state: this.host.state() }));
      return undefined;
    }
    if (this.host.isCoordinator()) return view;
    const coordinator = findMember(view, view.coordinator);
    if (coordinator === undefined) {
      reply.fail(new StraitError('STRAIT_NOT_READY', { member: this.host.name, state: 'no coordinator' }));
      return undefined;
    }
    this.pool.get(coordinator.info.address).request(op, body, (error, response) => {
      if (error !== undefined || response === undefined) reply.fail(error ?? new StraitError('STRAIT_INTERNAL', { reason: `empty ${op} response` }));
      else reply.ok(response);
    });
    return undefined;
  }

  /** `strait rebalance`: evens out the partitioned regions (or only plans it, with `simulate`). */
  onRebalance(body: RequestBody<'rebalance'>, reply: Reply<'rebalance'>): void {
    const view = this.coordinatorView('rebalance', body, reply);
    if (view === undefined) return;
    const maps = (view.partitions ?? []).filter((map) => body.regions === undefined || body.regions.includes(map.region));
    for (const name of body.regions ?? []) {
      if (!maps.some((map) => map.region === name)) throw new StraitError('STRAIT_REGION_NOT_FOUND', { region: `${name} (a partitioned region with buckets)`, member: this.host.name });
    }
    const names = (id: string) => findMember(view, id)?.info.name ?? id;
    const plans = maps.map((map) => {
      const plan = rebalance(map, eligibleHosts(view.members, map.region));
      const named = (moves: typeof plan.moves) => moves.map(([bucket, from, to]) => [bucket, names(from), names(to)] as [number, string, string]);
      return { region: map.region, moves: named(plan.moves), primaryMoves: named(plan.primaryMoves) };
    });
    const moving = plans.filter((plan) => plan.moves.length + plan.primaryMoves.length > 0).map((plan) => plan.region);
    if (body.simulate !== true) for (const region of moving) this.rebalancing.add(region);
    const next = body.simulate === true || moving.length === 0 ? view : this.issue({ partitions: { rebalance: moving } });
    if (body.simulate !== true && moving.length > 0) this.log.info({ regions: moving }, `coordinator ${this.host.name}: rebalancing ${moving.join(', ')}: ${plans.reduce((sum, plan) => sum + plan.moves.length, 0)} copies and ${plans.reduce((sum, plan) => sum + plan.primaryMoves.length, 0)} primaries move; view ${next.id}`);
    reply.ok({ regions: plans, view: next });
  }

  /**
   * A server asks for buckets of a partitioned region (to write to them, or offering those it
   * recovered from disk), or reports a bucket image complete. Run by the coordinator, which
   * answers with the view that holds the change; another locator forwards.
   */
  onPartitionRequest<Op extends 'bucketsCreate' | 'bucketReady'>(op: Op, body: RequestBody<Op>, reply: Reply<Op>): void {
    const view = this.coordinatorView(op, body, reply);
    if (view === undefined) return;
    if (findMember(view, body.member) === undefined) {
      reply.fail(new StraitError('STRAIT_NOT_MEMBER', { member: body.member, site: this.host.site }));
      return;
    }
    const partitions = op === 'bucketsCreate'
      ? { create: [body as RequestBody<'bucketsCreate'>] }
      : { ready: [body as RequestBody<'bucketReady'>] };
    // Nothing to change (another server's request created the buckets first): no new view.
    const next = nextView(view, { partitions });
    const unchanged = JSON.stringify(next.partitions) === JSON.stringify(view.partitions);
    reply.ok({ view: unchanged ? view : this.issue({ partitions }) } as ResponseBody<Op>);
  }

  /** Sends `view` to every member we can reach (and to members it removed, if we can). */
  broadcast(view: View): void {
    const me = this.host.memberId();
    for (const member of view.members) {
      if (member.info.id === me) continue;
      const connection = this.memberConnections.get(member.info.id);
      if (connection !== undefined && connection.state === 'open') connection.push('view', { view });
      else if (member.info.role === 'locator') this.pool.get(member.info.address).push('view', { view });
    }
    for (const departed of view.departed) {
      // A member removed for silence may still be alive behind a partition; tell it if we can.
      this.memberConnections.get(departed.id)?.push('view', { view });
    }
  }

  detectCrashes(): void {
    const view = this.host.agent.view;
    if (view === null) return;
    const now = this.runtime.clock.monotonic();
    const me = this.host.memberId();
    const crashed: Departure[] = [];
    for (const member of view.members) {
      if (member.info.id === me) continue;
      const heard = this.lastHeard.get(member.info.id) ?? now;
      if (now - heard > this.host.timing.memberTimeoutMs) {
        crashed.push({ id: member.info.id, name: member.info.name, reason: 'crashed' });
        this.log.warn({ member: member.info.name, silentMs: now - heard, address: formatAddress(member.info.address) }, `coordinator ${this.host.name}: ${member.info.name} at ${formatAddress(member.info.address)} silent for ${now - heard} ms (member timeout ${this.host.timing.memberTimeoutMs} ms); removing it as crashed`);
      }
    }
    const update = new Map<string, { ready: boolean; load: number }>();
    for (const member of view.members) {
      const report = this.reported.get(member.info.id);
      if (report !== undefined && report.ready !== member.ready) update.set(member.info.id, report);
    }
    if (crashed.length > 0 || update.size > 0) {
      this.issue({ remove: crashed, update });
    }
  }

  /** Non-coordinator: take over when the coordinator and every older locator went silent. */
  maybeTakeOver(): void {
    const view = this.host.agent.view;
    if (view === null || this.host.state() !== 'ready') return;
    const me = findMember(view, this.host.memberId() ?? '');
    if (me === undefined) return;
    const now = this.runtime.clock.monotonic();
    const older = locatorsOf(view).filter((locator) => locator.joinSeq < me.joinSeq);
    const silent = older.filter((locator) => now - (this.host.agent.lastAck.get(locator.info.id) ?? now) > this.host.timing.memberTimeoutMs);
    if (older.length === 0 || silent.length < older.length) return;
    for (const member of view.members) this.lastHeard.set(member.info.id, now);
    this.log.warn({ previous: view.coordinator }, `locator ${this.host.name}: coordinator ${view.coordinator} and every older locator silent for over ${this.host.timing.memberTimeoutMs} ms; taking over as coordinator`);
    this.issue({ remove: older.map((locator) => ({ id: locator.info.id, name: locator.info.name, reason: 'crashed' as const })) });
  }

  onJoin(connection: Connection, body: RequestBody<'join'>, reply: Reply<'join'>): void {
    const view = this.host.agent.view;
    if (view === null || this.host.state() !== 'ready') {
      reply.fail(new StraitError('STRAIT_NOT_READY', { member: this.host.name, state: this.host.state() }));
      return;
    }
    if (body.info.site !== this.host.site) {
      reply.fail(new StraitError('STRAIT_SITE_MISMATCH', { peer: body.info.name, peerSite: body.info.site, site: this.host.site }));
      return;
    }
    // Not the coordinator: forwarded, its answer relayed.
    if (this.coordinatorView('join', body, reply) === undefined) return;
    const info = body.info;
    const existing = findMember(view, info.id);
    this.lastHeard.set(info.id, this.runtime.clock.monotonic());
    this.memberConnections.set(info.id, connection);
    if (existing !== undefined) {
      reply.ok({ view });
      return;
    }
    const remove: Departure[] = [];
    const sameName = view.members.find((member) => member.info.name === info.name);
    if (sameName !== undefined) {
      // A member restarted under the same name on the same address is a new incarnation of it
      // (the port could not be held by two processes); anything else is a naming mistake.
      if (addressKey(sameName.info.address) !== addressKey(info.address)) {
        reply.fail(new StraitError('STRAIT_NAME_IN_USE', { name: info.name, site: this.host.site, address: formatAddress(sameName.info.address) }));
        return;
      }
      remove.push({ id: sameName.info.id, name: sameName.info.name, reason: 'crashed' });
    }
    const next = this.issue({ add: [info], remove });
    this.log.info({ joined: info.name, address: formatAddress(info.address), viewId: next.id }, `coordinator ${this.host.name}: ${info.role} ${info.name} at ${formatAddress(info.address)} joined; view ${next.id}`);
    reply.ok({ view: next });
  }

  onLeave(body: RequestBody<'leave'>, reply: Reply<'leave'>): void {
    const view = this.host.agent.view;
    const member = findMember(view, body.id);
    if (view !== null && this.host.isCoordinator() && member !== undefined) {
      this.issue({ remove: [{ id: member.info.id, name: member.info.name, reason: 'left' }] });
      this.log.info({ left: member.info.name }, `coordinator ${this.host.name}: ${member.info.name} left cleanly; view ${this.host.agent.view?.id}`);
    } else if (view !== null && !this.host.isCoordinator() && member !== undefined) {
      const coordinator = findMember(view, view.coordinator);
      if (coordinator !== undefined) {
        this.pool.get(coordinator.info.address).request('leave', body, () => reply.ok({}));
        return;
      }
    }
    reply.ok({});
  }

  onHeartbeat(connection: Connection, body: RequestBody<'heartbeat'>, reply: Reply<'heartbeat'>): void {
    const view = this.host.agent.view;
    const member = findMember(view, body.id);
    const now = this.runtime.clock.monotonic();
    if (member !== undefined) {
      this.lastHeard.set(body.id, now);
      this.memberConnections.set(body.id, connection);
      this.reported.set(body.id, { load: body.load, ready: body.ready });
      if (member.info.role === 'locator') this.host.agent.lastAck.set(body.id, now);
    }
    const coordinator = this.host.isCoordinator();
    reply.ok({ responder: this.host.memberId() ?? '', viewId: view?.id ?? 0, member: member !== undefined, coordinator });
    const infoChanged = body.info !== undefined && body.info.id === body.id && JSON.stringify(body.info) !== JSON.stringify(member?.info);
    if (coordinator && member !== undefined && (member.ready !== body.ready || infoChanged)) {
      // Readiness changes the set of servers clients are sent to, and a member's info (a
      // receiver or sender created at runtime) what the WAN catalogue says: publish at once.
      this.issue({ update: new Map([[body.id, { ready: body.ready, load: body.load, ...(infoChanged ? { info: body.info! } : {}) }]]) });
    } else if (coordinator && member !== undefined && body.viewId < (view?.id ?? 0)) {
      connection.push('view', { view: view! });
    }
  }

  locate(body: RequestBody<'locate'>): ResponseBody<'locate'> {
    const view = this.host.agent.view;
    if (view === null) throw new StraitError('STRAIT_NOT_READY', { member: this.host.name, state: this.host.state() });
    const exclude = new Set(body.exclude ?? []);
    const candidates = view.members.filter((member) =>
      member.info.role === 'server' && member.ready && !exclude.has(member.info.name)
      && (body.region === undefined || member.info.regions.includes(body.region)));
    const load = (id: string) => this.reported.get(id)?.load ?? 0;
    // Least-loaded first; ties rotate by a random draw so idle servers share new clients.
    const order = candidates.map((member) => ({ member, load: load(member.info.id), draw: this.runtime.random.next() }));
    order.sort((a, b) => a.load - b.load || a.draw - b.draw);
    return { servers: order.map(({ member }) => ({ name: member.info.name, address: member.info.address })) };
  }
}
