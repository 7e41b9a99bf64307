// Single-hop for partitioned regions (Geode's single-hop): the client learns each partitioned
// region's bucket → primary map from the site's view and sends get, put and remove straight to
// the primary of the key's bucket, over a connection of its own to that server. Anything that
// does not go straight through — no map yet, no connection, an error, a slow answer — falls back
// to the client's usual path (its server passes the operation on to the primary), with the same
// request id, so a write is still applied once.
//
// The maps come from the locators' view, fetched in the background at most every
// REFRESH_INTERVAL_MS while the client is used, and at once (throttled) after a miss.

import { StraitError } from '../errors.ts';
import { bucketOf } from '../protocol/buckets.ts';
import { Connection, type ConnectionOptions } from '../protocol/connection.ts';
import type { RequestBody, ResponseBody, View } from '../protocol/messages.ts';
import type { Address, Runtime } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';

/** The maps are fetched again after this long while the client is used. */
const REFRESH_INTERVAL_MS = 5000;
/** ...or after this long when the site had no partitioned region at the last look. */
const REFRESH_IDLE_INTERVAL_MS = 10_000;
/** After a miss, not sooner than this. */
const REFRESH_AFTER_MISS_MS = 250;
/** A direct request not answered in this long (or half the request timeout) falls back. */
const DIRECT_TIMEOUT_MS_MAX = 5000;

type DirectOp = 'get' | 'put' | 'remove';

interface RegionRoute {
  readonly total: number;
  /** The primary's address per bucket, when the bucket exists. */
  readonly primaries: readonly (Address | undefined)[];
}

export class SingleHop {
  private readonly runtime: Runtime;
  private readonly options: ConnectionOptions;
  private readonly fetchView: () => Promise<View>;
  private readonly directTimeoutMs: number;
  private routes = new Map<string, RegionRoute>();
  private readonly connections = new Map<string, Connection>();
  private readonly opening = new Set<string>();
  private lastRefreshMs = -Infinity;
  private refreshing = false;
  private closed = false;
  /** Operations sent straight to a primary, and those that fell back (tests, status; a batch counts its entries). */
  direct = 0;
  fallbacks = 0;

  constructor(runtime: Runtime, options: ConnectionOptions, requestTimeoutMs: number, fetchView: () => Promise<View>) {
    this.runtime = runtime;
    this.options = options;
    this.fetchView = fetchView;
    this.directTimeoutMs = Math.max(1, Math.min(DIRECT_TIMEOUT_MS_MAX, Math.floor(requestTimeoutMs / 2)));
  }

  /**
   * Sends `op` straight to the key's primary when the map and a connection allow; undefined
   * means "not sent, or no answer to rely on": the caller takes the usual path.
   */
  async send<Op extends DirectOp>(op: Op, body: RequestBody<Op>): Promise<ResponseBody<Op> | undefined> {
    const address = this.primaryOf(body.region, body.key);
    return address === undefined ? undefined : this.sendTo(address, op, body);
  }

  /** The primary of `key`'s bucket in `region`, when the map names one. */
  primaryOf(region: string, key: string): Address | undefined {
    this.refreshSoon(this.routes.size === 0 ? REFRESH_IDLE_INTERVAL_MS : REFRESH_INTERVAL_MS);
    const route = this.routes.get(region);
    if (route === undefined || this.closed) return undefined;
    const address = route.primaries[bucketOf(key, route.total)];
    // A bucket created since the last look.
    if (address === undefined) this.refreshSoon(REFRESH_AFTER_MISS_MS);
    return address;
  }

  /**
   * Sends `op` straight to the member at `address` (a primary); undefined means "not sent, or no
   * answer to rely on": the caller takes the usual path, with the same request id.
   */
  async sendTo<Op extends DirectOp | 'putBatch' | 'getBatch'>(address: Address, op: Op, body: RequestBody<Op>): Promise<ResponseBody<Op> | undefined> {
    if (this.closed) return undefined;
    const connection = this.connectionTo(address);
    if (connection === undefined) return undefined;
    const answer = await new Promise<ResponseBody<Op> | undefined>((resolve) => {
      let settled = false;
      const timer = this.runtime.setTimer(this.directTimeoutMs, () => {
        if (settled) return;
        settled = true;
        resolve(undefined);
      });
      connection.request(op, body, (error, response) => {
        if (settled) return;
        settled = true;
        timer.cancel();
        resolve(error === undefined ? response : undefined);
      });
    });
    // Counted in operations: a batch counts what it carries.
    const operations = op === 'putBatch' ? (body as RequestBody<'putBatch'>).entries.length : op === 'getBatch' ? (body as RequestBody<'getBatch'>).keys.length : 1;
    if (answer === undefined) {
      this.fallbacks += operations;
      this.refreshSoon(REFRESH_AFTER_MISS_MS);
    } else {
      this.direct += operations;
    }
    return answer;
  }

  /** Whether operations on `region` may go straight to a primary (a partitioned region with a map). */
  routesRegion(region: string): boolean {
    this.refreshSoon(this.routes.size === 0 ? REFRESH_IDLE_INTERVAL_MS : REFRESH_INTERVAL_MS);
    return !this.closed && this.routes.has(region);
  }

  /** An open connection to `address`, or undefined while one is being opened. */
  private connectionTo(address: Address): Connection | undefined {
    const key = formatAddress(address);
    const open = this.connections.get(key);
    if (open !== undefined && open.state === 'open') return open;
    if (this.opening.has(key) || this.closed) return undefined;
    this.opening.add(key);
    Connection.open(this.runtime, address, this.options, {
      onOpen: (connection) => {
        this.opening.delete(key);
        if (this.closed) connection.close();
        else this.connections.set(key, connection);
      },
      onRequest: (_connection, _request, reply) => reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: 'server', reason: 'clients serve no requests' })),
      onPush: () => {},
      onClose: (connection) => {
        this.opening.delete(key);
        if (this.connections.get(key) === connection) this.connections.delete(key);
      },
    });
    return undefined;
  }

  /** Fetches the maps in the background unless they are younger than `ageMs`. */
  private refreshSoon(ageMs: number): void {
    const now = this.runtime.clock.monotonic();
    if (this.refreshing || this.closed || now - this.lastRefreshMs < ageMs) return;
    this.refreshing = true;
    this.lastRefreshMs = now;
    this.fetchView().then((view) => this.install(view), () => {}).finally(() => {
      this.refreshing = false;
    });
  }

  /** The routes a view gives: each bucket's primary address. */
  install(view: View): void {
    const addresses = new Map(view.members.map((member) => [member.info.id, member.info.address]));
    const routes = new Map<string, RegionRoute>();
    for (const map of view.partitions ?? []) {
      routes.set(map.region, { total: map.settings.totalNumBuckets, primaries: map.buckets.map((bucket) => (bucket === null ? undefined : addresses.get(bucket.primary))) });
    }
    this.routes = routes;
    // Connections to servers no longer primary of anything are closed.
    const wanted = new Set([...routes.values()].flatMap((route) => route.primaries.filter((address) => address !== undefined).map(formatAddress)));
    for (const [key, connection] of this.connections) {
      if (!wanted.has(key)) {
        connection.close();
        this.connections.delete(key);
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const connection of this.connections.values()) connection.close();
    this.connections.clear();
  }
}
