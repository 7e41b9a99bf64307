// The gateway receiver of a server: a listener on the first free port of its range, advertised
// as `hostname-for-clients`, that takes batches from other sites' gateway senders.
//
// A batch's events are applied with their original version tags, queued for this site's own
// gateway senders where routing says so, replicated to the other servers of the site, and
// acknowledged once all of that is done (and on disk where persistent). Events for a region
// this site lacks are refused one by one (STRAIT_REGION_NOT_FOUND); the sender keeps them as
// dead letters. Events for a partitioned region go to the primary of their bucket
// (partitioned-regions.ts), which applies them there and replicates them to the bucket's copies.
//
// A state machine: callbacks run to completion; time and I/O come through the Runtime.

import { checkMessagePack, decodeCheckedMessagePackViews } from '../protocol/frame.ts';
import { parseRequestBody } from '../protocol/validate.ts';
import { StraitError } from '../errors.ts';
import type { Connection, Reply } from '../protocol/connection.ts';
import type { GatewayEvent, RequestBody } from '../protocol/messages.ts';
import type { Address, Listener, Logger, Runtime, Stream } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import type { GatewayReceiverSpec } from './config.ts';
import type { MetricsSink } from './member-admin.ts';
import { compareTags, type Region } from './region.ts';
import type { RegionTable } from './region-table.ts';
import { PendingWrite } from './replication.ts';
import type { GatewayQueues, WritePath } from './write-path.ts';
import type { AdmitOutcome, RemoteEvent } from './partitioned-admission.ts';

/** Where other sites' events for partitioned regions go: to their buckets' primaries. */
export interface RemoteAdmission {
  admitRemote(region: Region, events: readonly RemoteEvent[], pending: PendingWrite, outcome: AdmitOutcome): void;
}

/** Decompressed gateway batches larger than this are refused. */
const GATEWAY_BATCH_BYTES_MAX = 256 * 1024 * 1024;

export interface ReceiverHost {
  readonly memberName: string;
  site(): number | undefined;
  /** Throws STRAIT_NOT_READY unless the server serves. */
  requireReady(): void;
}

export interface ReceiverStatistics {
  batches: number;
  events: number;
  /** Events that arrived with a version this site already held (no second effect). */
  duplicates: number;
  /** Among the duplicates, those the sender did not flag possible-duplicate (should stay 0). */
  unflaggedDuplicates: number;
  refused: number;
}

export class GatewayReceiver {
  private readonly runtime: Runtime;
  private readonly spec: GatewayReceiverSpec;
  private readonly host: ReceiverHost;
  private readonly regions: RegionTable;
  private readonly writes: WritePath;
  private readonly gateways: GatewayQueues;
  private readonly partitions: RemoteAdmission;
  private readonly metrics: MetricsSink;
  private readonly log: Logger;
  private listener: Listener | undefined;
  private advertised: Address | undefined;
  readonly statistics: ReceiverStatistics = { batches: 0, events: 0, duplicates: 0, unflaggedDuplicates: 0, refused: 0 };

  constructor(
    runtime: Runtime, spec: GatewayReceiverSpec, host: ReceiverHost,
    parts: { regions: RegionTable; writes: WritePath; gateways: GatewayQueues; partitions: RemoteAdmission }, metrics: MetricsSink, log: Logger,
  ) {
    this.partitions = parts.partitions;
    this.runtime = runtime;
    this.spec = spec;
    this.host = host;
    this.regions = parts.regions;
    this.writes = parts.writes;
    this.gateways = parts.gateways;
    this.metrics = metrics;
    this.log = log;
  }

  /** The advertised address, once listening. */
  get address(): Address | undefined {
    return this.advertised;
  }

  /**
   * Binds the first free port of the range on `bindHost`; accepted streams go to `accept`.
   * `advertise` turns the bound address into the one other sites connect to.
   */
  start(bindHost: string, advertise: (bound: Address) => Address, accept: (stream: Stream) => void, done: (error: StraitError | undefined) => void): void {
    this.listen(this.spec.bindAddress ?? bindHost, this.spec.startPort, advertise, accept, done);
  }

  private listen(host: string, port: number, advertise: (bound: Address) => Address, accept: (stream: Stream) => void, done: (error: StraitError | undefined) => void): void {
    this.listener = this.runtime.network.listen({ host, port }, accept, (result) => {
      if (result.ok) {
        this.advertised = advertise(result.address);
        this.log.info({ receiver: formatAddress(result.address) }, `server ${this.host.memberName}: gateway receiver listening on ${formatAddress(result.address)}, advertised as ${formatAddress(this.advertised)}`);
        done(undefined);
        return;
      }
      if (result.error.code === 'STRAIT_PORT_IN_USE' && port < this.spec.endPort) {
        this.listen(host, port + 1, advertise, accept, done);
        return;
      }
      done(result.error.code === 'STRAIT_PORT_IN_USE'
        ? new StraitError('STRAIT_PORT_IN_USE', { address: `${host}[${this.spec.startPort}..${this.spec.endPort}] (every port of the gateway receiver's range)` })
        : result.error);
    });
  }

  close(): void {
    this.listener?.close();
  }

  /** The events of a batch sent as bytes: packed (msgpack), or compressed (zstd of that). */
  private batchEvents(body: RequestBody<'gatewayBatch'>, peer: string): readonly GatewayEvent[] {
    if (body.compressed === undefined && body.packed === undefined) return body.events;
    const what = body.compressed !== undefined ? 'compressed' : 'packed';
    let bytes = body.packed!;
    if (body.compressed !== undefined) {
      try {
        bytes = this.runtime.compression.decompress(body.compressed, GATEWAY_BATCH_BYTES_MAX);
      } catch (error) {
        throw new StraitError('STRAIT_MESSAGE_INVALID', { peer, reason: `compressed batch ${body.batchId} is not readable` }, { cause: error });
      }
    }
    // The same checks and decoding as a frame's body (tokens, nesting, __proto__). Values are
    // views of the batch: onBatch copies each into what keeps it (a region's arena, or a copy of
    // its own), so a value kept never pins the whole batch it came in.
    const problem = checkMessagePack(bytes, 0, bytes.length);
    if (problem !== undefined) throw new StraitError('STRAIT_MESSAGE_INVALID', { peer, reason: `${what} batch ${body.batchId}: ${problem}` });
    // The whole schema, as a batch sent as `events` gets (lengths, tag fields, the item limit):
    // a tag holding a 64-bit integer or a foreign type must not reach a region.
    const decoded = parseRequestBody('gatewayBatch', { sender: body.sender, batchId: body.batchId, events: decodeCheckedMessagePackViews(bytes) }, `${peer} (${what} batch ${body.batchId})`);
    return (decoded.body as RequestBody<'gatewayBatch'>).events;
  }

  /** A batch from another site's gateway sender: apply, replicate here, forward, acknowledge. */
  onBatch(connection: Connection, body: RequestBody<'gatewayBatch'>, reply: Reply<'gatewayBatch'>): void {
    // From a sender that dialed us, or over a dial-out link we opened to another site's server.
    const peer = connection.peer;
    const overDialOutLink = connection.outgoing && peer?.role === 'server' && peer.site !== this.host.site();
    if (peer?.role !== 'gateway' && !overDialOutLink) {
      throw new StraitError('STRAIT_MESSAGE_INVALID', { peer: connection.label, reason: 'gateway batches come from gateway senders' });
    }
    this.host.requireReady();
    const events = this.batchEvents(body, connection.label);
    // A site that can't carry the batch now (a full replication backlog or sender queue)
    // refuses it whole; the remote sender sends it again later: backpressure across sites.
    for (const name of new Set(events.map((event) => event[0]))) {
      const region = this.regions.get(name);
      if (region !== undefined) this.writes.checkAdmission(region);
    }
    const outcome: AdmitOutcome = { refused: [], duplicates: 0, unflaggedDuplicates: 0 };
    const refused = outcome.refused;
    // Counted once done: partitioned regions' events are applied by their buckets' primaries.
    const pending = new PendingWrite((error) => {
      if (error !== undefined) {
        reply.fail(error);
        return;
      }
      const applied = events.length - refused.length;
      this.metrics.replicated(applied);
      this.metrics.receiverBatch(applied, outcome.duplicates, refused.length, outcome.unflaggedDuplicates);
      this.statistics.duplicates += outcome.duplicates;
      this.statistics.unflaggedDuplicates += outcome.unflaggedDuplicates;
      this.statistics.refused += refused.length;
      reply.ok({ applied, refused });
    });
    const touched = new Set<Region>();
    /** Events of partitioned regions, by region: they go to their buckets' primaries. */
    const partitioned = new Map<Region, RemoteEvent[]>();
    for (const [index, event] of events.entries()) {
      const [regionName, key, view, tag, possibleDuplicate] = event;
      this.metrics.receiverEvent?.(regionName, key, tag, possibleDuplicate);
      const region = this.regions.get(regionName);
      if (region === undefined) {
        const error = new StraitError('STRAIT_REGION_NOT_FOUND', { region: regionName, member: `${this.host.memberName} (site ${this.host.site()})` });
        refused.push({ index, code: error.code, message: error.message });
        continue;
      }
      if (region.spec.partition !== undefined) {
        let events = partitioned.get(region);
        if (events === undefined) {
          events = [];
          partitioned.set(region, events);
        }
        events.push({ index, key, value: view === null ? null : view.slice(), tag, possibleDuplicate });
        continue;
      }
      // The region's own copy (in its arena when small) is what it, its queues and its
      // replicas keep.
      const value = region.keepValue(view);
      const held = region.entry(key)?.tag;
      const duplicate = held !== undefined && compareTags(held, tag) === 0;
      try {
        this.writes.admit(region, [key, value, tag], possibleDuplicate, pending);
      } catch (error) {
        // One event this site can't take (a key its storage can't hold, a value the resolver
        // rejects) is refused alone; the sender keeps it as a dead letter, the rest applies.
        if (!(error instanceof StraitError)) throw error;
        refused.push({ index, code: error.code, message: error.message });
        continue;
      }
      if (duplicate) {
        outcome.duplicates += 1;
        if (!possibleDuplicate) outcome.unflaggedDuplicates += 1;
      }
      touched.add(region);
    }
    for (const region of touched) {
      this.gateways.sync(region, pending);
      this.writes.awaitRegion(region, pending);
    }
    for (const [region, regionEvents] of partitioned) this.partitions.admitRemote(region, regionEvents, pending, outcome);
    this.statistics.batches += 1;
    this.statistics.events += events.length;
    pending.settle();
  }
}
