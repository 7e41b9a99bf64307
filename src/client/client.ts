// The TypeScript client: `connect({ locators })`, then `client.region(name)` with get, put,
// putAll, remove, keys, size and `subscribe()` as an async iterator.
//
// The client asks a locator for the least-loaded server and keeps one connection to it, with
// many requests in flight (pipelining). When that server dies the client moves to another one
// and retries the requests that were in flight; a retried write may reach the grid twice, with
// the same value. Values are encoded with msgpack, so any msgpack-able value round-trips.
//
// This is the edge of the system: it may await. It reaches the network only through a Runtime
// (the Node runtime by default, the simulator's in tests).

import { Packr } from 'msgpackr';
import { StraitError, errorFromWire } from '../errors.ts';
import { Connection, type ConnectionOptions } from '../protocol/connection.ts';
import type { PushBody, RegionSpec, RequestBody, RequestOp, ResponseBody, SenderStatus, VersionTag, View } from '../protocol/messages.ts';
import type { Address, Runtime } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { parseAddressList } from '../config/address.ts';

export interface ConnectOptions {
  /** The site's locators: addresses, or text such as "host[10334],host2:10335". */
  readonly locators: readonly Address[] | string;
  /** Shown in server logs. */
  readonly name?: string;
  /** How long one request may take, including failover; default 30 000 ms. */
  readonly requestTimeoutMs?: number;
  /** Requests in flight on the server connection, at most; default 10 000. */
  readonly requestsInFlightMax?: number;
  readonly signal?: AbortSignal;
  /** Network and timers; default: the Node runtime. */
  readonly runtime?: Runtime;
}

export interface RequestOptions {
  readonly signal?: AbortSignal;
}

export interface ChangeEvent<V> {
  readonly key: string;
  /** undefined when the key was removed. */
  readonly value: V | undefined;
  readonly tag: VersionTag;
}

export interface SubscribeOptions {
  readonly signal?: AbortSignal;
  /** Events buffered while the consumer is slow, at most; beyond it the iterator fails. */
  readonly bufferedEventsMax?: number;
}

const valuePackr = new Packr({ useRecords: false, mapsAsObjects: true });
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const FAILOVER_DELAY_MS = 100;
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

function isFailover(error: StraitError): boolean {
  return error.code === 'STRAIT_CONNECTION_CLOSED' || error.code === 'STRAIT_NOT_READY' || error.code === 'STRAIT_TIMEOUT' || error.code === 'STRAIT_NOT_MEMBER'
    || error.code === 'STRAIT_PROTOCOL_VERSION' || error.code === 'STRAIT_NO_SERVER';
}

function sleep(runtime: Runtime, delayMs: number): Promise<void> {
  return new Promise((resolve) => runtime.setTimer(delayMs, resolve));
}

interface SubscriptionSink {
  readonly region: string;
  serverSubscription: number | undefined;
  push(event: { key: string; value: Uint8Array | null; tag: VersionTag }): void;
  fail(error: StraitError): void;
}

export class StraitClient {
  private readonly runtime: Runtime;
  private readonly ownsRuntime: (() => void) | undefined;
  private readonly locators: readonly Address[];
  private readonly options: ConnectionOptions;
  private readonly requestTimeoutMs: number;
  private server: Connection | undefined;
  private serverName: string | undefined;
  private connecting: Promise<Connection> | undefined;
  private readonly subscriptions = new Set<SubscriptionSink>();
  private closed = false;

  /** Use `connect()`. */
  constructor(runtime: Runtime, locators: readonly Address[], options: ConnectOptions, ownsRuntime: (() => void) | undefined) {
    this.runtime = runtime;
    this.ownsRuntime = ownsRuntime;
    this.locators = locators;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.options = {
      local: { role: 'client', name: options.name ?? 'client', site: null },
      frameBytesMax: 64 * 1024 * 1024,
      requestTimeoutMs: this.requestTimeoutMs,
      requestsInFlightMax: options.requestsInFlightMax ?? 10_000,
    };
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
    const connection = Connection.open(this.runtime, address, this.options, {
      onOpen: () => {}, onRequest: (_c, _r, reply) => reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: 'member', reason: 'clients serve no requests' })), onPush: () => {}, onClose: () => {},
    });
    try {
      return await this.send(connection, op, body, options);
    } finally {
      connection.close();
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
    const failures: string[] = [];
    for (const locator of this.locators) {
      if (options.signal?.aborted) throw abortError(op);
      const connection = Connection.open(this.runtime, locator, { ...this.options, requestTimeoutMs: Math.min(this.requestTimeoutMs, 10_000) }, {
        onOpen: () => {}, onRequest: (_c, _r, reply) => reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: 'locator', reason: 'clients serve no requests' })), onPush: () => {}, onClose: () => {},
      });
      try {
        return await this.send(connection, op, body, options);
      } catch (error) {
        if (!(error instanceof StraitError) || error.code === 'STRAIT_ABORTED') throw error;
        failures.push(`${formatAddress(locator)}: ${error.message}`);
        if (!isFailover(error) && error.code !== 'STRAIT_CONNECTION_CLOSED') throw error;
      } finally {
        connection.close();
      }
    }
    throw new StraitError('STRAIT_NO_LOCATOR', { locators: this.locators.map(formatAddress).join(', '), reason: failures.join('; ') });
  }

  /**
   * Sends a request to the current server; on connection loss, a server that is not ready or
   * a timeout, moves to another server and tries again until the request deadline.
   */
  async request<Op extends RequestOp>(op: Op, body: RequestBody<Op>, options: RequestOptions = {}): Promise<ResponseBody<Op>> {
    const server = this.server;
    if (server === undefined || server.state !== 'open' || this.closed) return this.requestWithFailover(op, body, options, []);
    // Fast path: the current server is connected.
    try {
      return await this.send(server, op, body, options);
    } catch (error) {
      if (!(error instanceof StraitError) || !isFailover(error)) throw error;
      const excluded: string[] = [];
      if (this.server === server) {
        if (this.serverName !== undefined) excluded.push(this.serverName);
        this.server = undefined;
        server.close();
      }
      return this.requestWithFailover(op, body, options, excluded);
    }
  }

  private async requestWithFailover<Op extends RequestOp>(op: Op, body: RequestBody<Op>, options: RequestOptions, excluded: string[]): Promise<ResponseBody<Op>> {
    const deadline = this.runtime.clock.monotonic() + this.requestTimeoutMs;
    let lastError: StraitError | undefined;
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new StraitError('STRAIT_CONNECTION_CLOSED', { peer: 'client', type: op });
      if (options.signal?.aborted) throw abortError(op);
      if (this.runtime.clock.monotonic() > deadline) {
        throw lastError ?? new StraitError('STRAIT_TIMEOUT', { operation: op, timeoutMs: this.requestTimeoutMs });
      }
      let connection: Connection;
      try {
        connection = await this.serverConnection(excluded, options);
      } catch (error) {
        if (!(error instanceof StraitError) || !isFailover(error) && error.code !== 'STRAIT_NO_LOCATOR') throw error;
        lastError = error;
        excluded.length = 0;
        await sleep(this.runtime, Math.min(2000, FAILOVER_DELAY_MS * 2 ** Math.min(attempt, 5)));
        continue;
      }
      try {
        return await this.send(connection, op, body, options);
      } catch (error) {
        if (!(error instanceof StraitError) || !isFailover(error)) throw error;
        lastError = error;
        if (this.server === connection) {
          if (this.serverName !== undefined) excluded.push(this.serverName);
          this.server = undefined;
          connection.close();
        }
        if (attempt > 0) await sleep(this.runtime, Math.min(2000, FAILOVER_DELAY_MS * 2 ** Math.min(attempt, 5)));
      }
    }
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

  private serverConnection(excluded: readonly string[], options: RequestOptions): Promise<Connection> {
    if (this.server !== undefined && this.server.state !== 'closed') return Promise.resolve(this.server);
    this.connecting ??= this.openServer(excluded, options).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async openServer(excluded: readonly string[], options: RequestOptions): Promise<Connection> {
    const located = await this.askLocator('locate', excluded.length > 0 ? { exclude: [...excluded] } : {}, options);
    let servers = located.servers;
    if (servers.length === 0 && excluded.length > 0) servers = (await this.askLocator('locate', {}, options)).servers;
    if (servers.length === 0) throw new StraitError('STRAIT_NO_SERVER', { locator: this.locators.map(formatAddress).join(', '), forRegion: '' });
    const failures: string[] = [];
    for (const server of servers) {
      try {
        const connection = await this.openConnection(server.address);
        this.server = connection;
        this.serverName = server.name;
        this.resubscribe(connection);
        return connection;
      } catch (error) {
        failures.push(`${server.name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    throw new StraitError('STRAIT_NO_SERVER', { locator: this.locators.map(formatAddress).join(', '), forRegion: ` reachable (${failures.join('; ')})` });
  }

  private openConnection(address: Address): Promise<Connection> {
    return new Promise((resolve, reject) => {
      let opened = false;
      const connection = Connection.open(this.runtime, address, this.options, {
        onOpen: (open) => {
          opened = true;
          resolve(open);
        },
        onRequest: (_c, _r, reply) => reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: 'server', reason: 'clients serve no requests' })),
        onPush: (_c, op, body) => {
          if (op === 'event') this.onEvent(body as { subscription: number; key: string; value: Uint8Array | null; tag: VersionTag });
          else if (op === 'subscriptionEnded') this.onSubscriptionEnded(body as PushBody<'subscriptionEnded'>);
        },
        onClose: (closed, error) => {
          if (!opened) {
            reject(error ?? new StraitError('STRAIT_CONNECTION_CLOSED', { peer: formatAddress(address), type: 'hello' }));
            return;
          }
          if (this.server === closed) this.server = undefined;
          // Subscriptions move with the client to its next server.
          if (this.subscriptions.size > 0 && !this.closed) void this.serverConnection([], {}).catch(() => {});
        },
      });
      void connection;
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

  private resubscribe(connection: Connection): void {
    for (const subscription of this.subscriptions) {
      subscription.serverSubscription = undefined;
      connection.request('subscribe', { region: subscription.region }, (error, response) => {
        if (error !== undefined || response === undefined) {
          if (error !== undefined && !isFailover(error)) subscription.fail(error);
          return;
        }
        subscription.serverSubscription = response.subscription;
      });
    }
  }

  /** Registers a subscription; events flow to `sink` from the current and every later server. */
  async addSubscription(sink: SubscriptionSink, options: RequestOptions): Promise<void> {
    this.subscriptions.add(sink);
    try {
      const response = await this.request('subscribe', { region: sink.region }, options);
      sink.serverSubscription ??= response.subscription;
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
    await this.client.request('put', { region: this.name, key, value: encodeValue(value) }, options);
  }

  async putAll(entries: Iterable<readonly [string, V]>, options: RequestOptions = {}): Promise<void> {
    const encoded: [string, Uint8Array][] = [];
    for (const [key, value] of entries) encoded.push([key, encodeValue(value)]);
    await this.client.request('putAll', { region: this.name, entries: encoded }, options);
  }

  /** Resolves true if the key held a value. */
  async remove(key: string, options: RequestOptions = {}): Promise<boolean> {
    return (await this.client.request('remove', { region: this.name, key }, options)).existed;
  }

  async keys(options: RequestOptions = {}): Promise<string[]> {
    return (await this.client.request('keys', { region: this.name }, options)).keys;
  }

  async size(options: RequestOptions = {}): Promise<number> {
    return (await this.client.request('size', { region: this.name }, options)).size;
  }

  /**
   * Changes applied to the region from now on, as an async iterator. Ends when the signal
   * aborts or the loop breaks. On server failover the subscription moves to the new server;
   * changes made during the switch may be missed.
   */
  subscribe(options: SubscribeOptions = {}): AsyncIterable<ChangeEvent<V>> & { ready: Promise<void> } {
    const client = this.client;
    const limit = options.bufferedEventsMax ?? DEFAULT_BUFFERED_EVENTS_MAX;
    const buffer: ChangeEvent<V>[] = [];
    let waiting: ((result: IteratorResult<ChangeEvent<V>>) => void) | undefined;
    let failWaiting: ((error: unknown) => void) | undefined;
    let failure: StraitError | undefined;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      client.removeSubscription(sink);
      waiting?.({ value: undefined, done: true });
      waiting = undefined;
    };
    const sink: SubscriptionSink = {
      region: this.name,
      serverSubscription: undefined,
      push: (event) => {
        if (done) return;
        const change: ChangeEvent<V> = { key: event.key, value: event.value === null ? undefined : decodeValue<V>(event.value), tag: event.tag };
        if (waiting !== undefined) {
          const resolve = waiting;
          waiting = undefined;
          resolve({ value: change, done: false });
          return;
        }
        if (buffer.length >= limit) {
          sink.fail(new StraitError('STRAIT_TOO_MANY_IN_FLIGHT', { limit, peer: `subscription to ${this.name} (consumer too slow)` }));
          return;
        }
        buffer.push(change);
      },
      fail: (error) => {
        if (done) return;
        failure = error;
        done = true;
        client.removeSubscription(sink);
        failWaiting?.(error);
        waiting = undefined;
      },
    };
    options.signal?.addEventListener('abort', finish, { once: true });
    const ready = client.addSubscription(sink, options.signal ? { signal: options.signal } : {});
    ready.catch(() => {});
    return {
      ready,
      [Symbol.asyncIterator](): AsyncIterator<ChangeEvent<V>> {
        return {
          next: async () => {
            await ready;
            const next = buffer.shift();
            if (next !== undefined) return { value: next, done: false };
            if (failure !== undefined) throw failure;
            if (done) return { value: undefined, done: true };
            return new Promise<IteratorResult<ChangeEvent<V>>>((resolve, reject) => {
              waiting = resolve;
              failWaiting = reject;
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

/** Connects to a site through its locators. Resolves once a server connection is open. */
export async function connect(options: ConnectOptions): Promise<StraitClient> {
  const locators = typeof options.locators === 'string' ? parseAddressList(options.locators) : options.locators;
  if (locators.length === 0) throw new StraitError('STRAIT_CONFIG_INVALID', { source: 'connect()', key: 'locators', reason: 'at least one locator is required' });
  let runtime: Runtime;
  let release: (() => void) | undefined;
  if (options.runtime !== undefined) {
    runtime = options.runtime;
  } else {
    const { createClientRuntime } = await import('../runtime/node/client-runtime.ts');
    const created = createClientRuntime();
    runtime = created.runtime;
    release = created.close;
  }
  const client = new StraitClient(runtime, locators, options, release);
  try {
    await client.request('ping', {}, options.signal ? { signal: options.signal } : {});
  } catch (error) {
    await client.close();
    throw error;
  }
  return client;
}
