// The TypeScript client: `connect({ locators })`, then `client.region(name)` with get, put,
// putAll, remove, keys, size and `subscribe()` as an async iterator.
//
// The client asks a locator for the least-loaded server and keeps one connection to it, with
// many requests in flight (pipelining). When that server dies the client moves to another one
// and retries the requests that were in flight. Every write carries a request id it keeps
// across retries, and the servers remember the ids they applied (the site's replication carries
// them), so a retry is applied once: it can't overwrite a newer write under a new version tag,
// and a retried remove reports what the first attempt found. Values are encoded with msgpack,
// so any msgpack-able value round-trips.
//
// What is retried is decided once, by the error registry's `retryable` flag (src/errors.ts):
// a retryable failure (connection lost, timeout, server not ready or no longer a member, no
// locator or server reachable yet) moves the request to another server until its deadline; any
// other failure is the answer. `connect()` has a deadline of its own (`connectTimeoutMs`,
// short), so a wrong or dead address fails in seconds, naming every locator and why.
//
// Process lifetime: while an operation is pending the client holds the runtime's KeepAlive, so
// an application awaiting it can't exit under it; an idle client holds nothing (see
// src/runtime/node/client-runtime.ts). An open subscription is idle until its consumer awaits
// the next event.
//
// This is the edge of the system: it may await. It reaches the network only through a Runtime
// (the Node runtime by default, the simulator's in tests).
//
// Parts: server-link.ts (the server connection, failover and retries), region.ts (the region
// API), subscriptions.ts (the iterator and the registry that moves it between servers),
// values.ts (the value encoding); this file is the client and `connect()`.

import { StraitError } from '../errors.ts';
import type { Connection, ConnectionOptions } from '../protocol/connection.ts';
import type { RegionSpec, RequestBody, RequestOp, ResponseBody, SenderStatus, View } from '../protocol/messages.ts';
import type { Address, KeepAlive, Runtime } from '../runtime/runtime.ts';
import { parseAddressList } from '../config/address.ts';
import { OperationBatcher } from './batching.ts';
import { ClientRegion } from './region.ts';
import { ServerLink, type RequestOptions } from './server-link.ts';
import { ClientSubscriptions, type SubscriptionSink } from './subscriptions.ts';
import { SingleHop } from './single-hop.ts';

// The client's whole public surface is importable from here, wherever each part lives.
export { ClientRegion } from './region.ts';
export type { RequestOptions } from './server-link.ts';
export type { ChangeEvent, SubscribeOptions, SubscriptionEvent, SubscriptionGap } from './subscriptions.ts';
export { decodeValue, encodeValue } from './values.ts';

export interface ClientTlsOptions {
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
}

export interface ConnectOptions {
  /** The site's locators: addresses, or text such as "host[10334],host2:10335". */
  readonly locators: readonly Address[] | string;
  /** Shown in server logs. */
  readonly name?: string;
  /**
   * How long `connect()` keeps trying to reach a locator and a ready server; default 5000 ms.
   * Then it fails with the last problem: STRAIT_NO_LOCATOR (naming every locator and why each
   * failed, e.g. ECONNREFUSED) or STRAIT_NO_SERVER (a locator answered but knows no ready
   * server). Raise it when the application may start before the grid.
   */
  readonly connectTimeoutMs?: number;
  /** How long one request may take, including failover; default 30 000 ms. */
  readonly requestTimeoutMs?: number;
  /** Requests in flight on the server connection, at most; default 10 000. */
  readonly requestsInFlightMax?: number;
  /**
   * TLS to a site that runs it (docs/SECURITY.md): `ca`, the PEM file of the CA that signs the
   * site's members (their certificates are checked for a Strait member identity, not for a host
   * name), and, when the site asks clients for one, this client's `cert` and `key` files.
   */
  readonly tls?: ClientTlsOptions;
  /** The site's client token (`client-token`), or its admin token with `role: 'admin'`. Sent only over TLS or to a site without TLS. */
  readonly token?: string;
  /**
   * 'admin' for operators' tools that change the site's configuration or control senders
   * (`createRegion`, `senderControl`); such a site wants an admin certificate or its admin token.
   * Default 'client'.
   */
  readonly role?: 'client' | 'admin';
  /**
   * Send get, put and remove of partitioned regions straight to the primary of the key's bucket
   * (default true); false sends every operation through the client's one server.
   */
  readonly singleHop?: boolean;
  /**
   * Send the puts (or gets) of one region that the application starts in one event-loop turn as
   * one request, answered entry by entry (default true; src/client/batching.ts). The order of
   * calls is kept; false sends one request per operation.
   */
  readonly batching?: boolean;
  readonly signal?: AbortSignal;
  /** Network and timers; default: the Node runtime. */
  readonly runtime?: Runtime;
  /**
   * What keeps the process alive while an operation is pending. The default runtime brings its
   * own; with a `runtime` of your own, pass one if that runtime's timers and connections don't
   * keep the process alive by themselves.
   */
  readonly keepAlive?: KeepAlive;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** The release of a hold when the client keeps no process alive (an application's own runtime). */
const NO_HOLD = (): void => {};
export const CONNECT_TIMEOUT_MS_DEFAULT = 5_000;
/** Largest request or connect timeout accepted. */
const TIMEOUT_MS_MAX = 86_400_000;

function checkTimeoutOption(key: string, value: number | undefined): void {
  if (value === undefined || (Number.isInteger(value) && value > 0 && value <= TIMEOUT_MS_MAX)) return;
  const reason = `must be whole milliseconds from 1 to ${TIMEOUT_MS_MAX}, got ${String(value)}`;
  throw new StraitError('STRAIT_CONFIG_INVALID', { source: 'connect()', key, reason });
}

export class StraitClient {
  private readonly ownsRuntime: (() => void) | undefined;
  private readonly requestTimeoutMs: number;
  private readonly keepAlive: KeepAlive | undefined;
  private readonly link: ServerLink;
  /** Partitioned regions' operations straight to their bucket's primary (single-hop.ts). */
  private readonly singleHop: SingleHop | undefined;
  private readonly subscriptions: ClientSubscriptions;
  /** The gets and puts of one turn as one request each (batching.ts); undefined with `batching: false`. */
  private readonly batcher: OperationBatcher | undefined;
  /** Names this client's writes (random per client), so servers recognise a retried write. */
  private readonly clientId: string;
  private writeCounter = 0;

  /** Use `connect()`. */
  constructor(
    runtime: Runtime, locators: readonly Address[], options: ConnectOptions, ownsRuntime: (() => void) | undefined,
  ) {
    this.ownsRuntime = ownsRuntime;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.keepAlive = options.keepAlive;
    const suffix = `${runtime.random.int(0x7fffffff).toString(36)}${runtime.random.int(0x7fffffff).toString(36)}`;
    this.clientId = `${options.name ?? 'client'}:${suffix}`;
    const connectionOptions: ConnectionOptions = {
      local: { role: options.role ?? 'client', name: options.name ?? 'client', site: null },
      ...(options.token === undefined ? {} : { token: options.token }),
      frameBytesMax: 64 * 1024 * 1024,
      requestTimeoutMs: this.requestTimeoutMs,
      requestsInFlightMax: options.requestsInFlightMax ?? 10_000,
      // Every value a client receives is decoded at once (region.ts, subscriptions.ts), and
      // decodeValue copies any byte array inside it, so none needs a copy of its own.
      byteArrays: 'views',
    };
    this.subscriptions = new ClientSubscriptions({
      request: (op, body, requestOptions) => this.request(op, body, requestOptions),
      serverConnection: () => this.server,
    });
    this.link = new ServerLink(runtime, locators, connectionOptions, this.requestTimeoutMs, this.subscriptions);
    this.singleHop = options.singleHop === false ? undefined : new SingleHop(runtime, connectionOptions, this.requestTimeoutMs, () => this.view());
    this.batcher = options.batching === false ? undefined : new OperationBatcher({
      send: async (op, body, via) => {
        const singleHop = this.singleHop;
        if (via !== undefined && singleHop !== undefined) {
          const direct = await singleHop.sendTo(via, op as 'putBatch', body as RequestBody<'putBatch'>);
          if (direct !== undefined) return direct as ResponseBody<typeof op>;
        }
        return this.link.requestWithin(op, body, {}, this.requestTimeoutMs);
      },
      routes: (region) => this.singleHop?.routesRegion(region) === true,
      primaryOf: (region, key) => this.singleHop?.primaryOf(region, key),
      nextRequestId: () => this.nextRequestId(),
      defer: (callback) => runtime.defer(callback),
      hold: () => this.keepAlive?.hold() ?? NO_HOLD,
    });
  }

  /** Batches of gets and puts sent, and the operations they carried. */
  get batchCounts(): { batches: number; operations: number } {
    return { batches: this.batcher?.batches ?? 0, operations: this.batcher?.batchedOperations ?? 0 };
  }

  /**
   * A get, coalesced with the other gets of this turn on the region (not one with a signal).
   * Internal (ClientRegion.get decodes it at once): the bytes are a view into the connection's
   * read chunk, as every byte array in a response is (`byteArrays: 'views'`); copy to keep one.
   */
  getValue(region: string, key: string, options: RequestOptions): Promise<Uint8Array | null> {
    const batcher = this.batcher;
    if (batcher === undefined || options.signal !== undefined) {
      return this.request('get', { region, key }, options).then((response) => response.value);
    }
    // The batcher keeps the process alive per batch (BatchClient.hold), not per get.
    return batcher.get(region, key);
  }

  /** A put, coalesced like `getValue`. */
  putValue(region: string, key: string, value: Uint8Array, options: RequestOptions): Promise<void> {
    const batcher = this.batcher;
    if (batcher === undefined || options.signal !== undefined) {
      return this.request('put', { region, key, value, requestId: this.nextRequestId() }, options).then(() => undefined);
    }
    return batcher.put(region, key, value);
  }

  /** Operations sent straight to a bucket's primary, and those that fell back to the usual path. */
  get singleHopCounts(): { direct: number; fallbacks: number } {
    return { direct: this.singleHop?.direct ?? 0, fallbacks: this.singleHop?.fallbacks ?? 0 };
  }

  /**
   * The server connection, open or not. Read by src/core/server.test.ts, which pauses its
   * stream to stall a subscriber.
   */
  private get server(): Connection | undefined {
    return this.link.connection;
  }

  /**
   * A new id for one write. The write keeps it across every retry and failover, so a server
   * that already applied it (or learned it from the server that did) does not apply it again.
   */
  nextRequestId(): string {
    this.writeCounter += 1;
    return `${this.clientId}:${this.writeCounter}`;
  }

  /** The server this client currently talks to, if connected. */
  get currentServer(): string | undefined {
    return this.link.currentServer;
  }

  region<V = unknown>(name: string): ClientRegion<V> {
    return new ClientRegion<V>(this, name);
  }

  /** The site's current membership view, from a locator. */
  async view(options: RequestOptions = {}): Promise<View> {
    const response = await this.askLocator('getView', {}, options);
    if (response.view === null) {
      throw new StraitError('STRAIT_NOT_READY', { member: response.self.name, state: response.state });
    }
    return response.view;
  }

  /**
   * Evens out the site's partitioned regions (or `regions`) over their servers: copies and
   * primaries move until servers differ by at most one. With `simulate`, only the plan; the
   * moves complete in the background (each moving copy takes its bucket's image first).
   */
  async rebalance(request: { regions?: string[]; simulate?: boolean } = {}, options: RequestOptions = {}): Promise<ResponseBody<'rebalance'>> {
    return this.askLocator('rebalance', request, options);
  }

  async listRegions(options: RequestOptions = {}): Promise<{ spec: RegionSpec; size: number }[]> {
    return (await this.request('listRegions', {}, options)).regions;
  }

  async createRegion(spec: RegionSpec, options: RequestOptions = {}): Promise<boolean> {
    return (await this.request('createRegion', { spec }, options)).created;
  }

  /**
   * The status of every copy of the site's gateway senders (or of sender `id`): one entry per
   * server hosting it, the primary and its secondaries.
   */
  async gatewaySenders(id?: string, options: RequestOptions = {}): Promise<SenderStatus[]> {
    const view = await this.view(options);
    const hosts = view.members.filter((member) => member.info.role === 'server'
      && (member.info.senders ?? []).some((sender) => id === undefined || sender.id === id));
    if (id !== undefined && hosts.length === 0) {
      throw new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: id, member: `any server of site ${view.site}` });
    }
    const body = id === undefined ? {} : { id };
    const statuses = await Promise.all(hosts.map((member) => this
      .askMember(member.info.address, 'senderStatus', body, options)
      .then((response) => response.senders)
      .catch(() => [] as SenderStatus[])));
    return statuses.flat();
  }

  /** The site's gateway receivers as the view lists them. */
  /** The site's gateway receivers: where each listens, or null for one that dials out. */
  async gatewayReceivers(options: RequestOptions = {}): Promise<{ member: string; address: Address | null; dialOut: boolean }[]> {
    const view = await this.view(options);
    return view.members.flatMap((member): { member: string; address: Address | null; dialOut: boolean }[] => {
      if (member.info.dialOut === true) return [{ member: member.info.name, address: null, dialOut: true }];
      return member.info.receiver ? [{ member: member.info.name, address: member.info.receiver, dialOut: false }] : [];
    });
  }

  /**
   * pause | resume | stop | start | replayDeadLetters on sender `id`, on every server of the
   * site hosting it (or only on `member`).
   */
  async controlSender(
    id: string,
    action: RequestBody<'senderControl'>['action'],
    options: RequestOptions & { drainTimeoutMs?: number; member?: string } = {},
  ): Promise<{ member: string; state: string }[]> {
    const view = await this.view(options);
    const hosts = view.members.filter((member) => member.info.role === 'server'
      && (member.info.senders ?? []).some((sender) => sender.id === id)
      && (options.member === undefined || member.info.name === options.member));
    const target = hosts[0];
    if (target === undefined) {
      const member = options.member ?? `any server of site ${view.site}`;
      throw new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: id, member });
    }
    const drain = options.drainTimeoutMs !== undefined ? { drainTimeoutMs: options.drainTimeoutMs } : {};
    const body = { id, action, everyMember: options.member === undefined, ...drain };
    return (await this.askMember(target.info.address, 'senderControl', body, options)).members;
  }

  /** One request to a given member over a short-lived connection. */
  async askMember<Op extends RequestOp>(
    address: Address, op: Op, body: RequestBody<Op>, options: RequestOptions = {},
  ): Promise<ResponseBody<Op>> {
    return this.pending(() => this.link.askMember(address, op, body, options));
  }


  /**
   * Pings a server, connecting first if needed; `connect()` calls it. Retries what is retryable
   * for at most `timeoutMs`, then fails with the last problem (STRAIT_NO_LOCATOR, STRAIT_NO_SERVER, ...).
   */
  async ping(timeoutMs: number, options: RequestOptions = {}): Promise<void> {
    await this.pending(() => this.link.requestWithin('ping', {}, options, timeoutMs));
  }

  /** Keeps the process alive until the returned release is called (a consumer awaiting an event). */
  holdProcess(): () => void {
    return this.keepAlive?.hold() ?? NO_HOLD;
  }

  /**
   * Runs an operation the application awaits, keeping the process alive meanwhile. Not an async
   * function: a get or put is awaited through one promise fewer (each costs a microtask turn).
   */
  private pending<T>(operation: () => Promise<T>): Promise<T> {
    const release = this.keepAlive?.hold();
    let promise: Promise<T>;
    try {
      promise = operation();
    } catch (error) {
      release?.();
      return Promise.reject(error as Error);
    }
    if (release !== undefined) promise.then(release, release);
    return promise;
  }

  async close(): Promise<void> {
    if (this.link.closed) return;
    // What is batched fails with the link's STRAIT_CONNECTION_CLOSED rather than never settle.
    this.batcher?.flush();
    this.singleHop?.close();
    this.link.close();
    this.ownsRuntime?.();
  }

  /** Sends a request to a locator, trying each in turn. */
  async askLocator<Op extends RequestOp>(
    op: Op, body: RequestBody<Op>, options: RequestOptions = {},
  ): Promise<ResponseBody<Op>> {
    return this.pending(() => this.link.askLocators(op, body, options, undefined));
  }

  /**
   * Sends a request to the current server; on a retryable failure (connection lost, server not
   * ready, timeout, ...) moves to another server and tries again until the request deadline.
   * Byte arrays in the response are views into the connection's read chunk: copy one to keep it.
   */
  async request<Op extends RequestOp>(
    op: Op, body: RequestBody<Op>, options: RequestOptions = {},
  ): Promise<ResponseBody<Op>> {
    // Batched gets and puts go first, and a request for the server link is handed to it in this
    // call (no await before): the server sees every call in the order it was made.
    this.batcher?.flush();
    return this.pending(async () => {
      const keyed = op === 'get' || op === 'put' || op === 'remove';
      if (keyed && this.singleHop?.routesRegion((body as RequestBody<'get'>).region) === true && options.signal === undefined) {
        const direct = await this.singleHop.send(op as 'get', body as RequestBody<'get'>);
        if (direct !== undefined) return direct as ResponseBody<Op>;
      }
      return this.link.requestWithin(op, body, options, this.requestTimeoutMs);
    });
  }

  /** Registers a subscription; events flow to `sink` from the current and every later server. */
  addSubscription(sink: SubscriptionSink, options: RequestOptions): Promise<void> {
    return this.subscriptions.add(sink, options);
  }

  removeSubscription(sink: SubscriptionSink): void {
    this.subscriptions.remove(sink);
  }
}

/**
 * Connects to a site through its locators over `runtime` — the simulator's, or one an
 * application provides; `connect()` in connect.ts brings the Node runtime. Resolves once a
 * server connection is open; fails after `connectTimeoutMs` with STRAIT_NO_LOCATOR or
 * STRAIT_NO_SERVER, or at once with a problem retrying can't fix. `owned` is a runtime the
 * client owns: it holds `keepAlive` while work is pending and calls `close` when it closes.
 */
export async function connectThrough(
  runtime: Runtime, options: ConnectOptions, owned?: { readonly keepAlive?: KeepAlive; close(): void },
): Promise<StraitClient> {
  const locators = typeof options.locators === 'string' ? parseAddressList(options.locators) : options.locators;
  if (locators.length === 0) {
    const reason = 'at least one locator is required';
    throw new StraitError('STRAIT_CONFIG_INVALID', { source: 'connect()', key: 'locators', reason });
  }
  checkTimeoutOption('connectTimeoutMs', options.connectTimeoutMs);
  checkTimeoutOption('requestTimeoutMs', options.requestTimeoutMs);
  const keepAlive = owned?.keepAlive ?? options.keepAlive;
  const clientOptions = { ...options, ...(keepAlive !== undefined ? { keepAlive } : {}) };
  const client = new StraitClient(runtime, locators, clientOptions, owned === undefined ? undefined : () => owned.close());
  try {
    const pingOptions = options.signal ? { signal: options.signal } : {};
    await client.ping(options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS_DEFAULT, pingOptions);
  } catch (error) {
    await client.close();
    throw error;
  }
  return client;
}
