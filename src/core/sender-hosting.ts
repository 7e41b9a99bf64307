// The gateway senders a server hosts: their election (which copy is primary), the messages
// between copies (acknowledgements, handoffs, stopped copies), routing of new changes onto
// them, the WAN catalogue they route and connect by, and their control.
//
// Election: the oldest ready server hosting the sender whose copy is not stopped dispatches;
// the others hold copies of the queue and take over when it leaves the view. Copies learn
// which events reached the remote site from the primary's `senderAck`; a secondary hands
// events it has held for long to the primary (`senderHandoff`), which answers which ones were
// acknowledged and queues the ones it never had, so nothing held only by a secondary is lost
// and missed acks don't pin queues.
//
// Parallel senders (partitioned regions): every server holding a bucket queues its changes
// (the write path replicates them to the bucket's holders only), and each bucket — a lane,
// `region/bucket` — is dispatched by its first holder (primary first) that is ready and whose
// copy runs. Acknowledgements go to every copy as for serial senders; a copy that takes a lane
// over resends what it holds of it flagged possible-duplicate; a new copy of a bucket copies
// the lane's queue from its dispatcher (`senderImage` with `lane`) before it is ready; stale
// events are handed to their lane's dispatcher.
//
// A state machine: callbacks run to completion; time and I/O come through the Runtime.

import { StraitError } from '../errors.ts';
import type { Connection, Reply } from '../protocol/connection.ts';
import type { GatewayEvent, MemberInfo, RequestBody, ResponseBody, SenderStatus, SiteEntry, View, WireEntry } from '../protocol/messages.ts';
import type { Address, Logger, Runtime } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { WAN_EXCHANGE_INTERVAL_MS, type GatewayEventFilter, type GatewaySenderSpec } from './config.ts';
import type { DeadLetter } from './dead-letters.ts';
import { DialInLinks, type DialInLinkStatus } from './dial-in.ts';
import { GatewaySender, type SenderHost } from './gateway-sender.ts';
import { BATCH_TIMEOUT_MS } from './sender-dispatcher.ts';
import type { PeerPool } from './peer-pool.ts';
import type { Region } from './region.ts';
import { awaitDurable, type PendingWrite } from './replication.ts';
import { findMember, locatorsOf, serversOf } from './views.ts';
import { dispatcherOf, holderOf, holdsLane, laneOf, lanesOf, type LaneSelf } from './parallel-lanes.ts';
import { copyQueue, type QueueSource } from './sender-images.ts';
import { controlSender } from './sender-control.ts';
import { WanCatalogue } from './wan-catalogue.ts';
import type { GatewayQueues } from './write-path.ts';

/** Bytes per page of a sender-queue image, about (well below any frame limit). */
const SENDER_IMAGE_PAGE_BYTES = 4 * 1024 * 1024;
/** How often a secondary hands its long-held events to the primary. */
const SENDER_HANDOFF_INTERVAL_MS = 2000;
/** Events per handoff, at most. */
const SENDER_HANDOFF_EVENTS_MAX = 1000;
/** A stopped copy re-announces itself about once in this many ticks (late joiners learn it). */
const STOPPED_ANNOUNCE_ONE_IN_TICKS = 10;

export interface HostingHost {
  readonly memberName: string;
  /** The site's locators as configured, for problem texts before a view exists. */
  readonly locators: readonly Address[];
  /** The server runs a gateway receiver (it needs the catalogue even without senders). */
  hasReceiver(): boolean;
  /** The server is registered with routers: it can reach other sites' receivers through them. */
  readonly routed: boolean;
  view(): View | null;
  info(): MemberInfo | undefined;
  /** True when the server serves (state 'ready'). */
  ready(): boolean;
  /** This member's disk refused a commit: it must stop (see awaitDurable). */
  storageFailed(error: StraitError): void;
  /** Parallel senders: the bucket of `key` in the partitioned region `region` (undefined if not one here). */
  bucketOf(region: string, key: string): number | undefined;
  /** Parallel senders: whether this server holds (or is about to hold) the bucket. */
  holdsBucket(region: string, bucket: number): boolean;
  /** Parallel senders: the partitioned regions here whose changes go through sender `id`. */
  regionsUsing(senderId: string): string[];
  /**
   * Every partitioned region hosted here: lanes are dispatched for all of them, so events a
   * region queued before it stopped naming a sender still drain.
   */
  partitionedRegions(): string[];
  /** A loaded `gateway-event-filters` module, by its path (undefined: not loaded). */
  eventFilter(path: string): GatewayEventFilter | undefined;
}

export class SenderHosting implements GatewayQueues {
  private readonly runtime: Runtime;
  private readonly pool: PeerPool;
  private readonly host: HostingHost;
  private readonly log: Logger;
  /** Gateway senders hosted here, by id. */
  private readonly senders = new Map<string, GatewaySender>();
  /** Parallel senders: the lanes (`region/bucket`) each copy here dispatches, by sender id. */
  private readonly lanes = new Map<string, ReadonlySet<string>>();
  /** Members whose copy of a sender is stopped, by sender id (they can't be primary). */
  private readonly stoppedCopies = new Map<string, Set<string>>();
  private site = 0;
  /** The WAN catalogue as our locators last reported it. */
  private catalogue: WanCatalogue | undefined;
  private catalogueFailures: { address: Address; error: string }[] = [];
  private catalogueFetchedMs = -Infinity;
  private catalogueInFlight = false;
  private handoffAtMs = 0;
  /** Links dial-out sites' receivers opened to us, for our senders to them. */
  private readonly dialIn: DialInLinks;

  constructor(runtime: Runtime, pool: PeerPool, host: HostingHost, log: Logger) {
    this.runtime = runtime;
    this.pool = pool;
    this.host = host;
    this.log = log;
    this.dialIn = new DialInLinks(runtime, {
      memberName: host.memberName,
      site: () => (this.catalogue === undefined ? undefined : this.site),
      linkAttached: (site) => {
        for (const sender of this.senders.values()) if (sender.spec.remoteSiteId === site) sender.linkAvailable();
      },
      linkClosed: (connection, error) => {
        for (const sender of this.senders.values()) sender.linkClosed(connection, error);
      },
    }, log);
  }

  // ---- Dial-in links (dial-in.ts) ----

  /** A dial-out site's receiver attaches (or heartbeats) the link it opened to us. */
  onAttach(connection: Connection, body: RequestBody<'gatewayAttach'>): ResponseBody<'gatewayAttach'> {
    return this.dialIn.onAttach(connection, body, BATCH_TIMEOUT_MS);
  }

  /** An accepted connection closed: it may have been a dial-in link. */
  connectionClosed(connection: Connection, error: Error | undefined): void {
    this.dialIn.connectionClosed(connection, error);
  }

  dialInLinks(): DialInLinkStatus[] {
    return this.dialIn.statuses();
  }

  /** The WAN catalogue as last fetched from our locators (dial-out receivers dial from it). */
  catalogueEntries(): readonly SiteEntry[] {
    return this.catalogue?.all() ?? [];
  }

  /** Creates the senders once the site is known; STRAIT_CONFIG_INVALID for one aimed at our own site. */
  open(site: number, specs: readonly GatewaySenderSpec[]): StraitError | undefined {
    this.site = site;
    this.catalogue = new WanCatalogue(site);
    for (const spec of specs) {
      if (spec.remoteSiteId === site) {
        return new StraitError('STRAIT_CONFIG_INVALID', { source: 'gateway-senders', key: `${spec.id}.remote-site-id`, reason: `${spec.remoteSiteId} is this server's own site` });
      }
      this.senders.set(spec.id, new GatewaySender(this.runtime, spec, this.senderHost(spec), this.log));
    }
    return undefined;
  }

  /** The spec of sender `id` running here. */
  spec(id: string): GatewaySenderSpec | undefined {
    return this.senders.get(id)?.spec;
  }

  specs(): GatewaySenderSpec[] {
    return [...this.senders.values()].map((sender) => sender.spec);
  }

  /** Events in this copy of sender `id`'s queue (0 when it does not run here). */
  queuedEvents(id: string): number {
    return this.senders.get(id)?.queuedEvents ?? 0;
  }

  /** Starts a sender the site configuration created (after `open`). */
  add(spec: GatewaySenderSpec): void {
    if (this.senders.has(spec.id)) return;
    this.senders.set(spec.id, new GatewaySender(this.runtime, spec, this.senderHost(spec), this.log));
    this.refreshLanes();
    this.log.info({ sender: spec.id, remoteSite: spec.remoteSiteId }, `server ${this.host.memberName}: gateway sender ${spec.id} → site ${spec.remoteSiteId} created by the site configuration`);
    this.fetchCatalogue();
  }

  alter(id: string, settings: { batchSize: number; batchTimeIntervalMs: number }): void {
    this.senders.get(id)?.alter(settings);
  }

  /**
   * Stops and forgets sender `id` (its queue is empty: the caller checked). Its dead letters
   * stay on disk: a sender created again under the same id finds them.
   */
  remove(id: string): void {
    const sender = this.senders.get(id);
    if (sender === undefined) return;
    sender.close();
    this.senders.delete(id);
    this.stoppedCopies.delete(id);
    const letters = sender.deadLetterCount;
    this.log.info({ sender: id, deadLetters: letters }, `server ${this.host.memberName}: gateway sender ${id} destroyed by the site configuration${letters > 0 ? `; its ${letters} dead letters stay on disk (store dead-letters-${id}) until a sender ${id} is created again` : ''}`);
  }

  close(): void {
    for (const sender of this.senders.values()) sender.close();
    this.dialIn.closeAll();
  }

  statuses(): SenderStatus[] {
    return [...this.senders.values()].map((sender) => sender.status());
  }

  /** Sites the WAN catalogue knows, with their edges (tests, status). */
  knownSites(): { site: number; edges: readonly number[]; receivers: number }[] {
    return (this.catalogue?.all() ?? []).map((entry) => ({ site: entry.site, edges: entry.edges, receivers: entry.receivers.length }));
  }

  private senderHost(spec: GatewaySenderSpec): SenderHost {
    const senderId = spec.id;
    const parallel = spec.parallel;
    const bucketOfEvent = (event: GatewayEvent): number => this.host.bucketOf(event[0], event[1]) ?? -1;
    const filters = (spec.eventFilters ?? []).map((path) => {
      const filter = this.host.eventFilter(path);
      if (filter === undefined) throw new StraitError('STRAIT_CONFIG_INVALID', { source: `gateway-senders.${senderId}`, key: 'gateway-event-filters', reason: `${path} was not loaded` });
      return filter;
    });
    return {
      ...(filters.length > 0 ? { filters } : {}),
      ...(parallel ? {
        lanes: {
          laneOf: (event: GatewayEvent) => laneOf(event[0], bucketOfEvent(event)),
          bucketOf: bucketOfEvent,
          holds: (event: GatewayEvent) => this.host.holdsBucket(event[0], bucketOfEvent(event)),
        },
      } : {}),
      memberName: this.host.memberName,
      site: this.site,
      isPrimary: () => this.isPrimary(senderId),
      receivers: () => this.remoteReceivers(senderId),
      dialInLinks: () => this.dialIn.linksTo(this.senders.get(senderId)?.spec.remoteSiteId ?? 0),
      acknowledged: (ids, deadLetters) => this.announce(senderId, ids, undefined, deadLetters),
      stateChanged: () => {
        const sender = this.senders.get(senderId);
        this.announce(senderId, [], sender?.state === 'stopped');
        this.refreshLanes();
        for (const candidate of this.senders.values()) candidate.tick();
      },
    };
  }

  // ---- Election ----

  /** Hosting servers of `senderId` eligible as primary: ready (or us) and not stopped. */
  private candidates(senderId: string, includeSelf: string | undefined): { info: MemberInfo; joinSeq: number }[] {
    const stopped = this.stoppedCopies.get(senderId);
    return serversOf(this.host.view()).filter((member) => (member.info.senders ?? []).some((sender) => sender.id === senderId)
      && (member.info.id === includeSelf || (member.ready && stopped?.has(member.info.id) !== true)));
  }

  /**
   * Serial: the oldest ready server hosting the sender whose copy is not stopped dispatches.
   * Parallel: every copy that dispatches at least one bucket (see refreshLanes).
   */
  isPrimary(senderId: string): boolean {
    const me = this.host.info();
    const mine = this.senders.get(senderId);
    if (this.host.view() === null || me === undefined || mine === undefined || mine.state === 'stopped' || !this.host.ready()) return false;
    if (mine.spec.parallel) return (this.lanes.get(senderId)?.size ?? 0) > 0;
    return oldest(this.candidates(senderId, me.id))?.info.id === me.id;
  }

  /** A parallel sender's dispatcher for one bucket (parallel-lanes.ts). */
  private dispatcherOf(senderId: string, region: string, bucket: number): MemberInfo | undefined {
    return dispatcherOf(this.host.view(), senderId, region, bucket, this.self(senderId), this.stoppedCopies.get(senderId));
  }

  /** This server as parallel-lanes.ts sees it for sender `senderId`. */
  private self(senderId: string): LaneSelf {
    return { id: this.host.info()?.id, dispatches: this.host.ready() && this.senders.get(senderId)?.state !== 'stopped' };
  }

  /** Parallel senders: which buckets each copy here dispatches now, from the view's bucket maps. */
  private refreshLanes(): void {
    for (const sender of this.senders.values()) {
      if (!sender.spec.parallel) continue;
      const using = new Set(this.host.regionsUsing(sender.spec.id));
      const { lanes, held, undispatched } = lanesOf(this.host.view(), sender.spec.id, this.host.partitionedRegions(), this.self(sender.spec.id), this.stoppedCopies.get(sender.spec.id), using);
      this.lanes.set(sender.spec.id, lanes);
      sender.setLanes(lanes, { held, undispatched });
    }
  }

  private primaryOf(senderId: string): MemberInfo | undefined {
    return oldest(this.candidates(senderId, undefined))?.info;
  }

  /** The view changed: forget stopped copies of members gone; senders re-check their role. */
  viewInstalled(view: View): void {
    for (const [senderId, stopped] of this.stoppedCopies) {
      for (const id of stopped) if (findMember(view, id) === undefined) stopped.delete(id);
      if (stopped.size === 0) this.stoppedCopies.delete(senderId);
    }
    this.refreshLanes();
    for (const sender of this.senders.values()) sender.tick();
  }

  private peerState(senderId: string, memberName: string, stopped: boolean): void {
    const member = serversOf(this.host.view()).find((candidate) => candidate.info.name === memberName);
    if (member === undefined) return;
    let set = this.stoppedCopies.get(senderId);
    if (set === undefined) {
      set = new Set();
      this.stoppedCopies.set(senderId, set);
    }
    if (stopped) set.add(member.info.id);
    else set.delete(member.info.id);
    this.refreshLanes();
    this.senders.get(senderId)?.tick();
  }

  /** Tells the other servers hosting the sender which events were acknowledged (and refused), or our state. */
  private announce(senderId: string, ids: readonly string[] | (() => string[]), stopped: boolean | undefined, deadLetters: readonly DeadLetter[] = []): void {
    const me = this.host.info()?.id;
    const copies = serversOf(this.host.view()).filter((member) => member.info.id !== me && (member.info.senders ?? []).some((sender) => sender.id === senderId));
    // A sender hosted here alone tells no one, and makes no id strings for it.
    if (copies.length === 0) return;
    const body: RequestBody<'senderAck'> = {
      sender: senderId,
      ids: typeof ids === 'function' ? ids() : [...ids],
      ...(deadLetters.length > 0 ? { deadLetters: deadLetters.map((letter) => ({ event: letter.event, code: letter.code, message: letter.message.slice(0, 1024) })) } : {}),
      ...(stopped !== undefined ? { stopped } : {}),
    };
    for (const member of copies) this.pool.get(member.info.address).request('senderAck', body, () => {});
  }

  // ---- Routing onto the senders ----

  /** Queues a new change on every local sender whose remote site should get it from us. */
  queue(region: Region, entry: WireEntry, possibleDuplicate: boolean): void {
    const senderIds = region.spec.gatewaySenderIds;
    if (senderIds === undefined || senderIds.length === 0 || this.catalogue === undefined) return;
    const origin = entry[2][0];
    for (const id of senderIds) {
      const sender = this.senders.get(id);
      if (sender === undefined) continue;
      if (!this.catalogue.forwards(origin, this.site, sender.spec.remoteSiteId)) continue;
      sender.enqueue([region.spec.name, entry[0], entry[1], entry[2], possibleDuplicate]);
    }
  }

  /** Refuses a change to `region` when a sender it goes to has no room left on disk. */
  admit(region: Region): void {
    for (const id of region.spec.gatewaySenderIds ?? []) {
      const sender = this.senders.get(id);
      if (sender === undefined || !sender.full) continue;
      throw new StraitError('STRAIT_QUEUE_FULL', { member: this.host.memberName, sender: id, site: sender.spec.remoteSiteId, held: `${sender.overflowBytes} bytes` });
    }
  }

  /** Persistent senders' queues are part of what a write's acknowledgement promises. */
  sync(region: Region, pending: PendingWrite): void {
    for (const id of region.spec.gatewaySenderIds ?? []) {
      const sender = this.senders.get(id);
      if (sender === undefined || !sender.spec.persistent) continue;
      awaitDurable(pending, `gateway sender ${id}`, (callback) => sender.sync(callback), (error) => this.host.storageFailed(error));
    }
  }

  // ---- The catalogue ----

  private remoteReceivers(senderId: string): { receivers: readonly Address[]; problem: string | null } {
    const sender = this.senders.get(senderId);
    const remoteSite = sender?.spec.remoteSiteId ?? 0;
    const entry = this.catalogue?.get(remoteSite);
    // Direct receivers first (a sender prefers a direct connection when it works), then the
    // same site's receivers through the routers.
    const routed = this.host.routed ? entry?.routedReceivers ?? [] : [];
    if (entry !== undefined && entry.receivers.length + routed.length > 0) return { receivers: [...entry.receivers, ...routed], problem: null };
    const locators = locatorsOf(this.host.view()).map((member) => formatAddress(member.info.address)).join(', ') || this.host.locators.map(formatAddress).join(', ');
    const failures = this.catalogueFailures.map((failure) => `last exchange with ${formatAddress(failure.address)} failed: ${failure.error}`).join('; ');
    const what = entry === undefined
      ? `site ${remoteSite} is unknown to locator(s) ${locators}`
      : entry.dialOut === true
        ? `site ${remoteSite} dials out, and none of its receivers has opened a gateway link to ${this.host.memberName} yet (they dial the address this server advertises: check that it is reachable from site ${remoteSite})`
        : `site ${remoteSite} has no ready gateway receiver known to locator(s) ${locators} (its servers with a gateway-receiver are down, not ready, or declare none)`;
    const hint = failures ? `; ${failures}` : entry === undefined ? `; check remote-locators on the locators of both sites` : '';
    return { receivers: [], problem: `${this.host.memberName}: ${senderId} → site ${remoteSite}: ${what}${hint}` };
  }

  private receiversKey(site: number): string {
    const entry = this.catalogue?.get(site);
    return JSON.stringify([entry?.receivers ?? [], entry?.routedReceivers ?? []]);
  }

  /** Asks a local locator for the catalogue (at most one request at a time). */
  fetchCatalogue(): void {
    if (this.catalogueInFlight || this.senders.size === 0 && !this.host.hasReceiver()) return;
    const locators = locatorsOf(this.host.view());
    if (locators.length === 0) return;
    const locator = locators[this.runtime.random.int(locators.length)]!;
    this.catalogueInFlight = true;
    this.catalogueFetchedMs = this.runtime.clock.monotonic();
    this.pool.get(locator.info.address).request('catalogue', {}, (error, response) => {
      this.catalogueInFlight = false;
      if (error !== undefined || response === undefined || this.catalogue === undefined) return;
      const before = new Map([...this.senders.values()].map((sender) => [sender.spec.id, this.receiversKey(sender.spec.remoteSiteId)]));
      this.catalogue.replace(response.catalogue);
      this.catalogueFailures = response.failures;
      for (const sender of this.senders.values()) {
        // Receivers appeared or changed: a sender waiting out its backoff tries them now.
        if (before.get(sender.spec.id) !== this.receiversKey(sender.spec.remoteSiteId)) sender.linkAvailable();
        sender.tick();
      }
    });
  }

  /** Called on the server's tick. */
  tick(): void {
    this.dialIn.tick();
    const now = this.runtime.clock.monotonic();
    if (now - this.catalogueFetchedMs >= WAN_EXCHANGE_INTERVAL_MS) this.fetchCatalogue();
    if (now - this.handoffAtMs >= SENDER_HANDOFF_INTERVAL_MS) {
      this.handoffAtMs = now;
      for (const sender of this.senders.values()) this.handOff(sender);
    }
    for (const sender of this.senders.values()) sender.tick();
    // Re-announce stopped copies now and then: a peer that joined later must learn it.
    for (const sender of this.senders.values()) {
      if (sender.state === 'stopped' && this.runtime.random.int(STOPPED_ANNOUNCE_ONE_IN_TICKS) === 0) this.announce(sender.spec.id, [], true);
    }
  }

  /**
   * Secondary: events held for long are either already acknowledged (an ack we missed while
   * down or partitioned) or were never seen by the primary; the primary sorts them out.
   */
  private handOff(sender: GatewaySender): void {
    if (sender.queuedEvents === 0 || !this.host.ready()) return;
    if (!sender.spec.parallel && this.isPrimary(sender.spec.id)) return;
    const events = sender.staleEvents(SENDER_HANDOFF_INTERVAL_MS * 2, SENDER_HANDOFF_EVENTS_MAX);
    if (events.length === 0) return;
    // Serial: to the primary. Parallel: each event to its bucket's dispatcher.
    const primary = sender.spec.parallel ? undefined : this.primaryOf(sender.spec.id);
    const dispatcherOfEvent = (event: GatewayEvent): MemberInfo | undefined => {
      const bucket = this.host.bucketOf(event[0], event[1]);
      return bucket === undefined ? undefined : this.dispatcherOf(sender.spec.id, event[0], bucket);
    };
    const groups = new Map<string, { member: MemberInfo; events: GatewayEvent[] }>();
    for (const event of events) {
      const target = sender.spec.parallel ? dispatcherOfEvent(event) : primary;
      if (target === undefined || target.id === this.host.info()?.id) continue;
      let group = groups.get(target.id);
      if (group === undefined) {
        group = { member: target, events: [] };
        groups.set(target.id, group);
      }
      group.events.push(event);
    }
    for (const { member, events: handed } of groups.values()) {
      this.pool.get(member.address).request('senderHandoff', { sender: sender.spec.id, events: handed }, (error, response) => {
        if (error === undefined && response !== undefined) sender.handedOff(response.acknowledged, response.refused ?? [], handed);
      });
    }
  }

  // ---- Queue images ----

  /**
   * Joining: copies every hosted sender's queue from its primary (the sender's initial image),
   * then calls `done`. Events entering the site meanwhile are replicated to us as usual; the
   * image brings what the primary held before. A copy with no primary to ask (we would be the
   * oldest) keeps what it has. `stillJoining` ends the work when the member moves on.
   */
  takeImages(viewId: number, stillJoining: () => boolean, done: () => void): void {
    // A parallel sender's queue comes bucket by bucket, with each bucket (takeBucketQueues).
    const senders = [...this.senders.values()].filter((sender) => !sender.spec.parallel);
    let remaining = senders.length;
    if (remaining === 0) {
      done();
      return;
    }
    for (const sender of senders) {
      this.copyQueue(sender, viewId, { from: () => this.primaryOf(sender.spec.id) }, stillJoining, () => {
        remaining -= 1;
        if (remaining === 0) done();
      });
    }
  }

  /**
   * A new copy of a bucket (pending, its region image taken): copies the bucket's lane of every
   * parallel sender of `region` from the lane's dispatcher, then calls `done`. Events the bucket
   * gets meanwhile are replicated here and queued as usual; the image brings the earlier ones.
   */
  takeBucketQueues(region: string, bucket: number, viewId: number, stillPending: () => boolean, done: () => void): void {
    const senderIds = new Set(this.parallelSendersOf(region));
    const senders = [...this.senders.values()].filter((sender) => senderIds.has(sender.spec.id));
    let remaining = senders.length;
    if (remaining === 0) {
      done();
      return;
    }
    const lane = laneOf(region, bucket);
    for (const sender of senders) {
      // From the lane's dispatcher; with every copy of the sender stopped, from any copy of the bucket (each queues it).
      const from = () => this.dispatcherOf(sender.spec.id, region, bucket) ?? holderOf(this.host.view(), sender.spec.id, region, bucket, this.host.info()?.id);
      this.copyQueue(sender, viewId, { from, lane }, stillPending, () => {
        remaining -= 1;
        if (remaining === 0) done();
      });
    }
  }

  private copyQueue(sender: GatewaySender, viewId: number, source: QueueSource, still: () => boolean, done: () => void): void {
    copyQueue({ runtime: this.runtime, pool: this.pool, log: this.log, memberName: this.host.memberName, selfId: () => this.host.info()?.id }, sender, viewId, source, still, done);
  }

  /** The parallel senders hosted here through which `region`'s changes go. */
  private parallelSendersOf(region: string): string[] {
    return [...this.senders.values()].filter((sender) => sender.spec.parallel && this.host.regionsUsing(sender.spec.id).includes(region)).map((sender) => sender.spec.id);
  }

  /** Primary: a page of a sender's queue for a joining copy. */
  onImage(body: RequestBody<'senderImage'>, reply: Reply<'senderImage'>): void {
    const sender = this.senders.get(body.sender);
    if (sender === undefined) throw new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: body.sender, member: this.host.memberName });
    const viewId = this.host.view()?.id ?? 0;
    // Serial: the primary serves. Parallel: the dispatcher of the lane asked for.
    const serves = sender.spec.parallel
      ? body.lane !== undefined && this.host.ready() && holdsLane(this.host.view(), body.lane, this.host.info()?.id)
      : this.isPrimary(body.sender);
    if (!serves || viewId < body.viewId) {
      throw new StraitError('STRAIT_NOT_READY', { member: this.host.memberName, state: serves ? `view ${viewId} older than ${body.viewId}` : `not the primary of ${body.sender}${body.lane !== undefined ? ` for ${body.lane}` : ''}` });
    }
    const page = sender.imagePage(body.after ?? -1, Math.max(1, body.limit), SENDER_IMAGE_PAGE_BYTES, body.lane);
    reply.ok({ events: page.events, next: page.done ? null : page.last });
  }

  // ---- Requests ----

  onAck(peerName: string | undefined, body: RequestBody<'senderAck'>, reply: Reply<'senderAck'>): void {
    const sender = this.senders.get(body.sender);
    if (sender !== undefined && body.ids.length > 0) sender.acknowledgedByPrimary(body.ids, body.deadLetters ?? []);
    if (body.stopped !== undefined && peerName !== undefined) this.peerState(body.sender, peerName, body.stopped);
    reply.ok({});
  }

  onHandoff(body: RequestBody<'senderHandoff'>, reply: Reply<'senderHandoff'>): void {
    const sender = this.senders.get(body.sender);
    if (sender === undefined) throw new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: body.sender, member: this.host.memberName });
    if (!this.isPrimary(body.sender)) {
      reply.ok({ acknowledged: [] });
      return;
    }
    // A parallel copy answers for the buckets it dispatches only.
    const lanes = this.lanes.get(body.sender);
    const events = !sender.spec.parallel ? body.events : body.events.filter((event) => {
      const bucket = this.host.bucketOf(event[0], event[1]);
      return bucket !== undefined && lanes?.has(laneOf(event[0], bucket)) === true;
    });
    const { acknowledged, refused } = sender.adopt(events);
    reply.ok({ acknowledged, ...(refused.length > 0 ? { refused } : {}) });
  }

  onStatus(body: RequestBody<'senderStatus'>, reply: Reply<'senderStatus'>): void {
    if (body.id !== undefined && !this.senders.has(body.id)) throw new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: body.id, member: this.host.memberName });
    const statuses = [...this.senders.values()].filter((sender) => body.id === undefined || sender.spec.id === body.id).map((sender) => sender.status());
    reply.ok({ senders: statuses });
  }

  /** pause | resume | stop | start | replayDeadLetters here and, with everyMember, on every copy (sender-control.ts). */
  onControl(body: RequestBody<'senderControl'>, reply: Reply<'senderControl'>): void {
    controlSender({ pool: this.pool, memberName: this.host.memberName, selfId: this.host.info()?.id, view: this.host.view() }, this.senders.get(body.id), body, reply);
  }
}

function oldest<T extends { joinSeq: number }>(members: readonly T[]): T | undefined {
  let result: T | undefined;
  for (const member of members) if (result === undefined || member.joinSeq < result.joinSeq) result = member;
  return result;
}
