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

import { Packr } from 'msgpackr';
import { StraitError, errorFromWire } from '../errors.ts';
import { Connection, type ConnectionHandler, type ConnectionOptions } from '../protocol/connection.ts';
import type { PushBody, RegionSpec, RequestBody, RequestOp, ResponseBody, SenderStatus, VersionTag, View } from '../protocol/messages.ts';
import type { Address, KeepAlive, Runtime, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { parseAddressList } from '../config/address.ts';

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

export interface RequestOptions {
  readonly signal?: AbortSignal;
}

/** A change applied to a subscribed region. */
export interface ChangeEvent<V> {
  readonly kind: 'change';
  readonly key: string;
  /** undefined when the key was removed. */
  readonly value: V | undefined;
  readonly tag: VersionTag;
}

/**
 * The subscription moved to another server (its server failed): changes made during the move
 * may not have been delivered. Re-read what the application needs; every change after this
 * event is delivered.
 */
export interface SubscriptionGap {
  readonly kind: 'gap';
  readonly code: 'STRAIT_SUBSCRIPTION_GAP';
  readonly message: string;
}

export type SubscriptionEvent<V> = ChangeEvent<V> | SubscriptionGap;

export interface SubscribeOptions {
  readonly signal?: AbortSignal;
  /** Events buffered while the consumer is slow, at most; beyond it the iterator fails. */
  readonly bufferedEventsMax?: number;
}

const valuePackr = new Packr({ useRecords: false, mapsAsObjects: true });
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const CONNECT_TIMEOUT_MS_DEFAULT = 5_000;
/** Largest request or connect timeout accepted. */
const TIMEOUT_MS_MAX = 86_400_000;
/** One locator request, handshake included, takes at most this long. */
const LOCATOR_REQUEST_TIMEOUT_MS_MAX = 10_000;
/** Near a deadline each locator still gets this long, so a slow first one can't starve the rest. */
const LOCATOR_ATTEMPT_TIMEOUT_MS_MIN = 250;
/** Pause between failover attempts: doubles from the first to the last. */
const FAILOVER_DELAY_MS = 100;
const FAILOVER_DELAY_MS_MAX = 2000;
const DEFAULT_BUFFERED_EVENTS_MAX = 100_000;

export function encodeValue(value: unknown): Uint8Array {
  return valuePackr.pack(value);
}

export function decodeValue<V>(bytes: Uint8Array): V {
  return valuePackr.unpack(bytes) as V;
}

function abortError(operation: string): StraitError {
  return new StraitError('STRAIT_ABORTED', { operation });
}

/**
 * The error a failed request reports; the client retries it exactly when it is `retryable`.
 * A connection the peer closed with a coded error reports that error rather than "connection
 * closed": the peer refused what this side sent (STRAIT_FRAME_TOO_LARGE, STRAIT_FRAME_MALFORMED,
 * STRAIT_PROTOCOL_VERSION, ...), and sending it again elsewhere would be refused the same way.
 * The peer closes the whole connection, so requests in flight behind the refused frame fail
 * with the same code (the protocol can't say which request it was).
 */
function requestFailure(error: StraitError): StraitError {
  if (error.code === 'STRAIT_CONNECTION_CLOSED' && error.cause instanceof StraitError && !error.cause.retryable) return error.cause;
  return error;
}

/** Why a member could not be asked, naming its address and the OS's reason (ECONNREFUSED, ...). */
function failureReason(address: Address, error: Error): string {
  // A connection that failed explains itself in its cause: "connection to h[p] failed: ECONNREFUSED".
  const closed = error instanceof StraitError && error.code === 'STRAIT_CONNECTION_CLOSED';
  const explained = closed && error.cause instanceof Error ? error.cause : error;
  const where = formatAddress(address);
  return explained.message.includes(where) ? explained.message : `${where}: ${explained.message}`;
}

function checkTimeoutOption(key: string, value: number | undefined): void {
  if (value === undefined || (Number.isInteger(value) && value > 0 && value <= TIMEOUT_MS_MAX)) return;
  const reason = `must be whole milliseconds from 1 to ${TIMEOUT_MS_MAX}, got ${String(value)}`;
  throw new StraitError('STRAIT_CONFIG_INVALID', { source: 'connect()', key, reason });
}

function sleep(runtime: Runtime, delayMs: number): Promise<void> {
  return new Promise((resolve) => runtime.setTimer(delayMs, resolve));
}

function refuseRequests(peer: string): ConnectionHandler {
  return {
    onOpen: () => {},
    onRequest: (_connection, _request, reply) => {
      reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer, reason: 'clients serve no requests' }));
    },
    onPush: () => {},
    onClose: () => {},
  };
}

interface SubscriptionSink {
  readonly region: string;
  serverSubscription: number | undefined;
  /** Set once the subscription was live on a server: a later resubscription leaves a gap. */
  wasLive: boolean;
  push(event: { key: string; value: Uint8Array | null; tag: VersionTag }): void;
  gap(message: string): void;
  fail(error: StraitError): void;
}

export class StraitClient {
  private readonly runtime: Runtime;
  private readonly ownsRuntime: (() => void) | undefined;
  private readonly locators: readonly Address[];
  private readonly options: ConnectionOptions;
  private readonly requestTimeoutMs: number;
  private readonly keepAlive: KeepAlive | undefined;
  private server: Connection | undefined;
  private serverName: string | undefined;
  private connecting: Promise<Connection> | undefined;
  private readonly subscriptions = new Set<SubscriptionSink>();
  private closed = false;
  /** Names this client's writes (random per client), so servers recognise a retried write. */
  private readonly clientId: string;
  private writeCounter = 0;

  /** Use `connect()`. */
  constructor(runtime: Runtime, locators: readonly Address[], options: ConnectOptions, ownsRuntime: (() => void) | undefined) {
    this.runtime = runtime;
    this.ownsRuntime = ownsRuntime;
    this.locators = locators;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.keepAlive = options.keepAlive;
    this.clientId = `${options.name ?? 'client'}:${runtime.random.int(0x7fffffff).toString(36)}${runtime.random.int(0x7fffffff).toString(36)}`;
    this.options = {
      local: { role: 'client', name: options.name ?? 'client', site: null },
      frameBytesMax: 64 * 1024 * 1024,
      requestTimeoutMs: this.requestTimeoutMs,
      requestsInFlightMax: options.requestsInFlightMax ?? 10_000,
    };
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
    return this.server?.state === 'open' ? this.serverName : undefined;
  }

  region<V = unknown>(name: string): ClientRegion<V> {
    return new ClientRegion<V>(this, name);
  }

  /** The site's current membership view, from a locator. */
  async view(options: RequestOptions = {}): Promise<View> {
    const response = await this.askLocator('getView', {}, options);
    if (response.view === null) throw new StraitError('STRAIT_NOT_READY', { member: response.self.name, state: response.state });
    return response.view;
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
    const hosts = view.members.filter((member) => member.info.role === 'server' && (member.info.senders ?? []).some((sender) => id === undefined || sender.id === id));
    if (id !== undefined && hosts.length === 0) throw new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: id, member: `any server of site ${view.site}` });
    const statuses = await Promise.all(hosts.map((member) => this.askMember(member.info.address, 'senderStatus', id === undefined ? {} : { id }, options)
      .then((response) => response.senders)
      .catch(() => [] as SenderStatus[])));
    return statuses.flat();
  }

  /** The site's gateway receivers as the view lists them. */
  async gatewayReceivers(options: RequestOptions = {}): Promise<{ member: string; address: Address }[]> {
    const view = await this.view(options);
    return view.members.flatMap((member) => (member.info.receiver ? [{ member: member.info.name, address: member.info.receiver }] : []));
  }

  /**
   * pause | resume | stop | start | replayDeadLetters on sender `id`, on every server of the
   * site hosting it (or only on `member`).
   */
  async controlSender(id: string, action: RequestBody<'senderControl'>['action'], options: RequestOptions & { drainTimeoutMs?: number; member?: string } = {}): Promise<{ member: string; state: string }[]> {
    const view = await this.view(options);
    const hosts = view.members.filter((member) => member.info.role === 'server' && (member.info.senders ?? []).some((sender) => sender.id === id)
      && (options.member === undefined || member.info.name === options.member));
    const target = hosts[0];
    if (target === undefined) throw new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: id, member: options.member ?? `any server of site ${view.site}` });
    const body = { id, action, everyMember: options.member === undefined, ...(options.drainTimeoutMs !== undefined ? { drainTimeoutMs: options.drainTimeoutMs } : {}) };
    return (await this.askMember(target.info.address, 'senderControl', body, options)).members;
  }

  /** One request to a given member over a short-lived connection. */
  async askMember<Op extends RequestOp>(address: Address, op: Op, body: RequestBody<Op>, options: RequestOptions = {}): Promise<ResponseBody<Op>> {
    return this.pending(async () => {
      const connection = Connection.open(this.runtime, address, this.options, refuseRequests('member'));
      try {
        return await this.send(connection, op, body, options);
      } catch (error) {
        throw error instanceof StraitError ? requestFailure(error) : error;
      } finally {
        connection.close();
      }
    });
  }

  /**
   * Pings a server, connecting first if needed; `connect()` calls it. Retries what is retryable
   * for at most `timeoutMs`, then fails with the last problem (STRAIT_NO_LOCATOR, STRAIT_NO_SERVER, ...).
   */
  async ping(timeoutMs: number, options: RequestOptions = {}): Promise<void> {
    await this.pending(() => this.requestWithin('ping', {}, options, timeoutMs));
  }

  /** Keeps the process alive until the returned release is called (a consumer awaiting an event). */
  holdProcess(): () => void {
    return this.keepAlive?.hold() ?? (() => {});
  }

  /** Runs an operation the application awaits, keeping the process alive meanwhile. */
  private async pending<T>(operation: () => Promise<T>): Promise<T> {
    const release = this.keepAlive?.hold();
    try {
      return await operation();
    } finally {
      release?.();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const subscription of this.subscriptions) subscription.fail(new StraitError('STRAIT_ABORTED', { operation: 'subscription (client closed)' }));
    this.subscriptions.clear();
    this.server?.close();
    this.server = undefined;
    this.ownsRuntime?.();
  }

  /** Sends a request to a locator, trying each in turn. */
  async askLocator<Op extends RequestOp>(op: Op, body: RequestBody<Op>, options: RequestOptions = {}): Promise<ResponseBody<Op>> {
    return this.pending(() => this.askLocators(op, body, options, undefined));
  }

  /**
   * Tries each locator in turn. A locator that can't be reached, refuses the handshake or
   * answers with a retryable error says nothing about the others: the next one is asked, and
   * when none answered, STRAIT_NO_LOCATOR names each one and why. Before `deadline`, each
   * locator gets its share of the time left.
   */
  private async askLocators<Op extends RequestOp>(
    op: Op, body: RequestBody<Op>, options: RequestOptions, deadline: number | undefined,
  ): Promise<ResponseBody<Op>> {
    const failures: string[] = [];
    for (const [index, locator] of this.locators.entries()) {
      if (options.signal?.aborted) throw abortError(op);
      const requestTimeoutMs = this.locatorAttemptTimeoutMs(deadline, this.locators.length - index);
      const connection = Connection.open(this.runtime, locator, { ...this.options, requestTimeoutMs }, refuseRequests('locator'));
      try {
        return await this.send(connection, op, body, options);
      } catch (error) {
        if (!(error instanceof StraitError) || error.code === 'STRAIT_ABORTED') throw error;
        const failure = requestFailure(error);
        const answered = connection.peer !== undefined;
        if (answered && !failure.retryable) throw failure;
        failures.push(failureReason(locator, error));
      } finally {
        connection.close();
      }
    }
    throw new StraitError('STRAIT_NO_LOCATOR', { locators: this.locators.map(formatAddress).join(', '), reason: failures.join('; ') });
  }

  private locatorAttemptTimeoutMs(deadline: number | undefined, locatorsLeft: number): number {
    const longest = Math.min(this.requestTimeoutMs, LOCATOR_REQUEST_TIMEOUT_MS_MAX);
    if (deadline === undefined) return longest;
    const share = Math.floor((deadline - this.runtime.clock.monotonic()) / locatorsLeft);
    return Math.max(LOCATOR_ATTEMPT_TIMEOUT_MS_MIN, Math.min(longest, share));
  }

  /**
   * Sends a request to the current server; on a retryable failure (connection lost, server not
   * ready, timeout, ...) moves to another server and tries again until the request deadline.
   */
  async request<Op extends RequestOp>(op: Op, body: RequestBody<Op>, options: RequestOptions = {}): Promise<ResponseBody<Op>> {
    return this.pending(() => this.requestWithin(op, body, options, this.requestTimeoutMs));
  }

  private async requestWithin<Op extends RequestOp>(
    op: Op, body: RequestBody<Op>, options: RequestOptions, timeoutMs: number,
  ): Promise<ResponseBody<Op>> {
    const server = this.server;
    if (server === undefined || server.state !== 'open' || this.closed) {
      return this.requestWithFailover(op, body, options, [], timeoutMs, undefined);
    }
    // Fast path: the current server is connected.
    try {
      return await this.send(server, op, body, options);
    } catch (error) {
      if (!(error instanceof StraitError)) throw error;
      const failure = requestFailure(error);
      if (!failure.retryable) throw failure;
      const excluded: string[] = [];
      this.abandon(server, excluded);
      return this.requestWithFailover(op, body, options, excluded, timeoutMs, failure);
    }
  }

  private async requestWithFailover<Op extends RequestOp>(
    op: Op,
    body: RequestBody<Op>,
    options: RequestOptions,
    excluded: string[],
    timeoutMs: number,
    firstError: StraitError | undefined,
  ): Promise<ResponseBody<Op>> {
    const deadline = this.runtime.clock.monotonic() + timeoutMs;
    let lastError = firstError;
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new StraitError('STRAIT_CONNECTION_CLOSED', { peer: 'client', type: op });
      if (options.signal?.aborted) throw abortError(op);
      if (this.runtime.clock.monotonic() >= deadline) {
        throw lastError ?? new StraitError('STRAIT_TIMEOUT', { operation: op, timeoutMs });
      }
      let connection: Connection;
      try {
        connection = await this.serverConnection(excluded, options, deadline);
      } catch (error) {
        if (!(error instanceof StraitError) || !error.retryable) throw error;
        lastError = error;
        excluded.length = 0;
        await this.pauseBeforeRetry(attempt, deadline);
        continue;
      }
      try {
        return await this.send(connection, op, body, options);
      } catch (error) {
        if (!(error instanceof StraitError)) throw error;
        const failure = requestFailure(error);
        if (!failure.retryable) throw failure;
        lastError = failure;
        this.abandon(connection, excluded);
        if (attempt > 0) await this.pauseBeforeRetry(attempt, deadline);
      }
    }
  }

  /** Stops using `connection` as the server connection; its server is left out of the next locate. */
  private abandon(connection: Connection, excluded: string[]): void {
    if (this.server !== connection) return;
    if (this.serverName !== undefined) excluded.push(this.serverName);
    this.server = undefined;
    connection.close();
  }

  /** Exponential pause between attempts, never past the deadline. */
  private pauseBeforeRetry(attempt: number, deadline: number): Promise<void> {
    const delayMs = Math.min(FAILOVER_DELAY_MS_MAX, FAILOVER_DELAY_MS * 2 ** Math.min(attempt, 5));
    const leftMs = Math.max(0, deadline - this.runtime.clock.monotonic());
    return sleep(this.runtime, Math.min(delayMs, leftMs));
  }

  private send<Op extends RequestOp>(connection: Connection, op: Op, body: RequestBody<Op>, options: RequestOptions): Promise<ResponseBody<Op>> {
    return new Promise((resolve, reject) => {
      const signal = options.signal;
      let settled = false;
      const onAbort = () => {
        if (settled) return;
        settled = true;
        reject(abortError(op));
      };
      if (signal !== undefined) {
        if (signal.aborted) {
          onAbort();
          return;
        }
        signal.addEventListener('abort', onAbort, { once: true });
      }
      connection.request(op, body, (error, response) => {
        signal?.removeEventListener('abort', onAbort);
        if (settled) return;
        settled = true;
        if (error !== undefined) reject(error);
        else resolve(response as ResponseBody<Op>);
      });
    });
  }

  /**
   * The open server connection, or one being opened. Concurrent callers share one attempt, which
   * gives up by the first caller's `deadline` (undefined: the connections' own timeouts).
   */
  private serverConnection(excluded: readonly string[], options: RequestOptions, deadline: number | undefined): Promise<Connection> {
    if (this.server !== undefined && this.server.state !== 'closed') return Promise.resolve(this.server);
    this.connecting ??= this.openServer(excluded, options, deadline).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async openServer(excluded: readonly string[], options: RequestOptions, deadline: number | undefined): Promise<Connection> {
    const located = await this.askLocators('locate', excluded.length > 0 ? { exclude: [...excluded] } : {}, options, deadline);
    let servers = located.servers;
    if (servers.length === 0 && excluded.length > 0) servers = (await this.askLocators('locate', {}, options, deadline)).servers;
    if (servers.length === 0) throw new StraitError('STRAIT_NO_SERVER', { locator: this.locators.map(formatAddress).join(', '), forRegion: '' });
    const failures: string[] = [];
    for (const server of servers) {
      try {
        const connection = await this.openConnection(server.address, deadline);
        this.server = connection;
        this.serverName = server.name;
        this.resubscribe(connection, server.name);
        return connection;
      } catch (error) {
        failures.push(`${server.name}: ${error instanceof Error ? failureReason(server.address, error) : String(error)}`);
      }
    }
    throw new StraitError('STRAIT_NO_SERVER', { locator: this.locators.map(formatAddress).join(', '), forRegion: ` reachable (${failures.join('; ')})` });
  }

  /**
   * Opens the long-lived server connection. Its handshake is bounded by the connection's request
   * timeout, and by `deadline` when one is given (the request timeout also bounds every request
   * on the connection, so it can't be shortened for the handshake alone).
   */
  private openConnection(address: Address, deadline: number | undefined): Promise<Connection> {
    return new Promise((resolve, reject) => {
      let opened = false;
      let handshakeTimer: Timer | undefined;
      const connection = Connection.open(this.runtime, address, this.options, {
        onOpen: (open) => {
          opened = true;
          handshakeTimer?.cancel();
          resolve(open);
        },
        onRequest: (_c, _r, reply) => reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: 'server', reason: 'clients serve no requests' })),
        onPush: (_c, op, body) => {
          if (op === 'event') this.onEvent(body as { subscription: number; key: string; value: Uint8Array | null; tag: VersionTag });
          else if (op === 'subscriptionEnded') this.onSubscriptionEnded(body as PushBody<'subscriptionEnded'>);
        },
        onClose: (closed, error) => {
          if (!opened) {
            handshakeTimer?.cancel();
            reject(error ?? new StraitError('STRAIT_CONNECTION_CLOSED', { peer: formatAddress(address), type: 'hello' }));
            return;
          }
          if (this.server === closed) this.server = undefined;
          // Subscriptions move with the client to its next server.
          if (this.subscriptions.size > 0 && !this.closed) void this.serverConnection([], {}, undefined).catch(() => {});
        },
      });
      if (deadline !== undefined) {
        const timeoutMs = Math.max(0, Math.ceil(deadline - this.runtime.clock.monotonic()));
        handshakeTimer = this.runtime.setTimer(timeoutMs, () => {
          if (opened) return;
          reject(new StraitError('STRAIT_TIMEOUT', { operation: `handshake with ${formatAddress(address)}`, timeoutMs }));
          connection.close();
        });
      }
    });
  }

  private onEvent(event: { subscription: number; key: string; value: Uint8Array | null; tag: VersionTag }): void {
    for (const subscription of this.subscriptions) {
      if (subscription.serverSubscription === event.subscription) subscription.push(event);
    }
  }

  /** The server ended a subscription (a subscriber too slow): its iterator fails with the code. */
  private onSubscriptionEnded(notice: PushBody<'subscriptionEnded'>): void {
    for (const subscription of [...this.subscriptions]) {
      if (subscription.serverSubscription === notice.subscription) subscription.fail(errorFromWire(notice.error));
    }
  }

  /**
   * The client moved to `serverName`: every subscription subscribes there again. One that was
   * live on the previous server gets a gap event once the new subscription is live, since the
   * changes made while it moved were delivered by neither server.
   */
  private resubscribe(connection: Connection, serverName: string): void {
    for (const subscription of this.subscriptions) {
      subscription.serverSubscription = undefined;
      connection.request('subscribe', { region: subscription.region }, (error, response) => {
        if (error !== undefined || response === undefined) {
          // A retryable failure leaves it to the next server connection to subscribe again.
          const failure = error === undefined ? undefined : requestFailure(error);
          if (failure !== undefined && !failure.retryable) subscription.fail(failure);
          return;
        }
        subscription.serverSubscription = response.subscription;
        if (subscription.wasLive) {
          subscription.gap(new StraitError('STRAIT_SUBSCRIPTION_GAP', { region: subscription.region, server: serverName }).message);
        }
        subscription.wasLive = true;
      });
    }
  }

  /** Registers a subscription; events flow to `sink` from the current and every later server. */
  async addSubscription(sink: SubscriptionSink, options: RequestOptions): Promise<void> {
    this.subscriptions.add(sink);
    try {
      const response = await this.request('subscribe', { region: sink.region }, options);
      sink.serverSubscription ??= response.subscription;
      sink.wasLive = true;
    } catch (error) {
      this.subscriptions.delete(sink);
      throw error;
    }
  }

  removeSubscription(sink: SubscriptionSink): void {
    this.subscriptions.delete(sink);
    const id = sink.serverSubscription;
    if (id !== undefined && this.server?.state === 'open') this.server.request('unsubscribe', { subscription: id }, () => {});
  }
}

export class ClientRegion<V = unknown> {
  private readonly client: StraitClient;
  readonly name: string;

  constructor(client: StraitClient, name: string) {
    this.client = client;
    this.name = name;
  }

  async get(key: string, options: RequestOptions = {}): Promise<V | undefined> {
    const { value } = await this.client.request('get', { region: this.name, key }, options);
    return value === null ? undefined : decodeValue<V>(value);
  }

  /** Resolves once every server hosting the region has applied the write. */
  async put(key: string, value: V, options: RequestOptions = {}): Promise<void> {
    await this.client.request('put', { region: this.name, key, value: encodeValue(value), requestId: this.client.nextRequestId() }, options);
  }

  async putAll(entries: Iterable<readonly [string, V]>, options: RequestOptions = {}): Promise<void> {
    const encoded: [string, Uint8Array][] = [];
    for (const [key, value] of entries) encoded.push([key, encodeValue(value)]);
    await this.client.request('putAll', { region: this.name, entries: encoded, requestId: this.client.nextRequestId() }, options);
  }

  /** Resolves true if the key held a value. */
  async remove(key: string, options: RequestOptions = {}): Promise<boolean> {
    return (await this.client.request('remove', { region: this.name, key, requestId: this.client.nextRequestId() }, options)).existed;
  }

  /** Every live key, in sorted order (fetched page by page; each page is bounded). */
  async keys(options: RequestOptions = {}): Promise<string[]> {
    const keys: string[] = [];
    for await (const page of this.keyPages(options)) keys.push(...page);
    return keys;
  }

  /**
   * The live keys page by page, in sorted order. The server snapshots them at the first page:
   * keys written or removed meanwhile don't shift pages (after a failover the next server
   * continues after the last key received).
   */
  async *keyPages(options: RequestOptions & { pageKeys?: number } = {}): AsyncGenerator<string[]> {
    let after: string | null = null;
    for (;;) {
      const page: ResponseBody<'keys'> = await this.client.request('keys', { region: this.name, after, ...(options.pageKeys !== undefined ? { limit: options.pageKeys } : {}) }, options);
      if (page.keys.length > 0) yield page.keys;
      if (page.next === null) return;
      after = page.next;
    }
  }

  async size(options: RequestOptions = {}): Promise<number> {
    return (await this.client.request('size', { region: this.name }, options)).size;
  }

  /**
   * Changes applied to the region from now on, as an async iterator. Ends when the signal
   * aborts or the loop breaks. On server failover the subscription moves to the new server;
   * changes made during the switch may be missed. The process stays alive while a consumer
   * awaits the next event (a `for await` loop), not while the subscription is merely open.
   */
  subscribe(options: SubscribeOptions = {}): AsyncIterable<SubscriptionEvent<V>> & { ready: Promise<void> } {
    const client = this.client;
    const limit = options.bufferedEventsMax ?? DEFAULT_BUFFERED_EVENTS_MAX;
    const buffer: SubscriptionEvent<V>[] = [];
    let waiting: ((result: IteratorResult<SubscriptionEvent<V>>) => void) | undefined;
    let failWaiting: ((error: unknown) => void) | undefined;
    let failure: StraitError | undefined;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      client.removeSubscription(sink);
      const resolve = waiting;
      waiting = undefined;
      failWaiting = undefined;
      resolve?.({ value: undefined, done: true });
    };
    const deliver = (event: SubscriptionEvent<V>): void => {
      if (done) return;
      if (waiting !== undefined) {
        const resolve = waiting;
        waiting = undefined;
        failWaiting = undefined;
        resolve({ value: event, done: false });
        return;
      }
      if (buffer.length >= limit) {
        sink.fail(new StraitError('STRAIT_SUBSCRIBER_TOO_SLOW', {
          member: 'the client', subscription: sink.serverSubscription ?? 0, region: this.name, bytes: `${buffer.length} events`, limit: `${limit} events (bufferedEventsMax)`,
        }));
        return;
      }
      buffer.push(event);
    };
    const sink: SubscriptionSink = {
      region: this.name,
      serverSubscription: undefined,
      wasLive: false,
      push: (event) => deliver({ kind: 'change', key: event.key, value: event.value === null ? undefined : decodeValue<V>(event.value), tag: event.tag }),
      gap: (message) => deliver({ kind: 'gap', code: 'STRAIT_SUBSCRIPTION_GAP', message }),
      fail: (error) => {
        if (done) return;
        failure = error;
        done = true;
        client.removeSubscription(sink);
        const reject = failWaiting;
        waiting = undefined;
        failWaiting = undefined;
        reject?.(error);
      },
    };
    options.signal?.addEventListener('abort', finish, { once: true });
    const ready = client.addSubscription(sink, options.signal ? { signal: options.signal } : {});
    ready.catch(() => {});
    return {
      ready,
      [Symbol.asyncIterator](): AsyncIterator<SubscriptionEvent<V>> {
        return {
          next: async () => {
            await ready;
            const next = buffer.shift();
            if (next !== undefined) return { value: next, done: false };
            if (failure !== undefined) throw failure;
            if (done) return { value: undefined, done: true };
            // A consumer awaiting the next event is a pending operation: it keeps the process alive.
            return new Promise<IteratorResult<SubscriptionEvent<V>>>((resolve, reject) => {
              const release = client.holdProcess();
              waiting = (result) => {
                release();
                resolve(result);
              };
              failWaiting = (error) => {
                release();
                reject(error);
              };
            });
          },
          return: async () => {
            finish();
            return { value: undefined, done: true };
          },
        };
      },
    };
  }
}

/**
 * Connects to a site through its locators. Resolves once a server connection is open; fails
 * after `connectTimeoutMs` with STRAIT_NO_LOCATOR or STRAIT_NO_SERVER, or at once with a
 * problem retrying can't fix.
 */
export async function connect(options: ConnectOptions): Promise<StraitClient> {
  const locators = typeof options.locators === 'string' ? parseAddressList(options.locators) : options.locators;
  if (locators.length === 0) throw new StraitError('STRAIT_CONFIG_INVALID', { source: 'connect()', key: 'locators', reason: 'at least one locator is required' });
  checkTimeoutOption('connectTimeoutMs', options.connectTimeoutMs);
  checkTimeoutOption('requestTimeoutMs', options.requestTimeoutMs);
  let runtime: Runtime;
  let keepAlive = options.keepAlive;
  let release: (() => void) | undefined;
  if (options.runtime !== undefined) {
    runtime = options.runtime;
  } else {
    const { createClientRuntime } = await import('../runtime/node/client-runtime.ts');
    const created = createClientRuntime();
    runtime = created.runtime;
    keepAlive = created.keepAlive;
    release = created.close;
  }
  const client = new StraitClient(runtime, locators, { ...options, ...(keepAlive !== undefined ? { keepAlive } : {}) }, release);
  try {
    await client.ping(options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS_DEFAULT, options.signal ? { signal: options.signal } : {});
  } catch (error) {
    await client.close();
    throw error;
  }
  return client;
}
