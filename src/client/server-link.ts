// The client's link to the servers of its site: one long-lived connection to a server that a
// locator chose (the least loaded ready one), with many requests in flight on it, and the
// failover that moves it to another server when that one fails.
//
// Guarantees: what is retried is decided once, by the error registry's `retryable` flag
// (src/errors.ts). A retryable failure (connection lost, timeout, server not ready or no longer
// a member, no locator or server reachable yet) moves the request to another server, with an
// exponential pause between attempts, until its deadline; any other failure is the answer. A
// locator that can't be reached says nothing about the others: each is asked in turn, and when
// none answered STRAIT_NO_LOCATOR names every one and why. Concurrent requests share one
// attempt to open a server connection. After `close()` a request fails with
// STRAIT_CONNECTION_CLOSED, and a lost server connection is not reopened.

import { StraitError } from '../errors.ts';
import { Connection, type ConnectionHandler, type ConnectionOptions } from '../protocol/connection.ts';
import type { PushOp, RequestBody, RequestOp, ResponseBody } from '../protocol/messages.ts';
import type { Address, Runtime, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';

export interface RequestOptions {
  readonly signal?: AbortSignal;
}

/** What the link tells the client about its server connection (the subscriptions listen). */
export interface ServerLinkEvents {
  /** A server connection opened: the first one, or the next one after a failover. */
  onServerOpen(connection: Connection, serverName: string): void;
  onPush(op: PushOp, body: unknown): void;
  /** Whether the client needs a server connection even with no request pending (open subscriptions). */
  needsServer(): boolean;
  /** The client is closing: requests through the link fail from now on; its connection closes next. */
  onClose(): void;
}

/** One locator request, handshake included, takes at most this long. */
const LOCATOR_REQUEST_TIMEOUT_MS_MAX = 10_000;
/** Near a deadline each locator still gets this long, so a slow first one can't starve the rest. */
const LOCATOR_ATTEMPT_TIMEOUT_MS_MIN = 250;
/** Pause between failover attempts: doubles from the first to the last. */
const FAILOVER_DELAY_MS = 100;
const FAILOVER_DELAY_MS_MAX = 2000;
/** Subscriptions that lost their server reconnect after this, doubling up to the maximum. */
const SUBSCRIPTION_RECONNECT_DELAY_MS = 100;
const SUBSCRIPTION_RECONNECT_DELAY_MS_MAX = 5000;

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
export function requestFailure(error: StraitError): StraitError {
  const cause = error.cause;
  if (error.code === 'STRAIT_CONNECTION_CLOSED' && cause instanceof StraitError && !cause.retryable) return cause;
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

export class ServerLink {
  private readonly runtime: Runtime;
  private readonly locators: readonly Address[];
  private readonly options: ConnectionOptions;
  private readonly requestTimeoutMs: number;
  private readonly events: ServerLinkEvents;
  private server: Connection | undefined;
  private serverName: string | undefined;
  private connecting: Promise<Connection> | undefined;
  /** A reconnect for the subscriptions is under way (reconnectForSubscriptions). */
  private reconnecting = false;
  private isClosed = false;

  constructor(
    runtime: Runtime,
    locators: readonly Address[],
    options: ConnectionOptions,
    requestTimeoutMs: number,
    events: ServerLinkEvents,
  ) {
    this.runtime = runtime;
    this.locators = locators;
    this.options = options;
    this.requestTimeoutMs = requestTimeoutMs;
    this.events = events;
  }

  /** Set by `close()`, for good. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** The server connection, open or not; undefined when there is none. */
  get connection(): Connection | undefined {
    return this.server;
  }

  /** The server this client currently talks to, if connected. */
  get currentServer(): string | undefined {
    return this.server?.state === 'open' ? this.serverName : undefined;
  }

  /** Closes for good: `events.onClose()` runs first, while the server connection is still open. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.events.onClose();
    this.server?.close();
    this.server = undefined;
  }

  /** One request to a given member over a short-lived connection. */
  async askMember<Op extends RequestOp>(
    address: Address, op: Op, body: RequestBody<Op>, options: RequestOptions,
  ): Promise<ResponseBody<Op>> {
    const connection = Connection.open(this.runtime, address, this.options, refuseRequests('member'));
    try {
      return await this.send(connection, op, body, options);
    } catch (error) {
      throw error instanceof StraitError ? requestFailure(error) : error;
    } finally {
      connection.close();
    }
  }

  /**
   * Tries each locator in turn. A locator that can't be reached, refuses the handshake or
   * answers with a retryable error says nothing about the others: the next one is asked, and
   * when none answered, STRAIT_NO_LOCATOR names each one and why. Before `deadline`, each
   * locator gets its share of the time left.
   */
  async askLocators<Op extends RequestOp>(
    op: Op, body: RequestBody<Op>, options: RequestOptions, deadline: number | undefined,
  ): Promise<ResponseBody<Op>> {
    const failures: string[] = [];
    for (const [index, locator] of this.locators.entries()) {
      if (options.signal?.aborted) throw abortError(op);
      const requestTimeoutMs = this.locatorAttemptTimeoutMs(deadline, this.locators.length - index);
      const attemptOptions = { ...this.options, requestTimeoutMs };
      const connection = Connection.open(this.runtime, locator, attemptOptions, refuseRequests('locator'));
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
    const locators = this.locators.map(formatAddress).join(', ');
    throw new StraitError('STRAIT_NO_LOCATOR', { locators, reason: failures.join('; ') });
  }

  private locatorAttemptTimeoutMs(deadline: number | undefined, locatorsLeft: number): number {
    const longest = Math.min(this.requestTimeoutMs, LOCATOR_REQUEST_TIMEOUT_MS_MAX);
    if (deadline === undefined) return longest;
    const share = Math.floor((deadline - this.runtime.clock.monotonic()) / locatorsLeft);
    return Math.max(LOCATOR_ATTEMPT_TIMEOUT_MS_MIN, Math.min(longest, share));
  }

  async requestWithin<Op extends RequestOp>(
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

  private send<Op extends RequestOp>(
    connection: Connection, op: Op, body: RequestBody<Op>, options: RequestOptions,
  ): Promise<ResponseBody<Op>> {
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
  private serverConnection(
    excluded: readonly string[], options: RequestOptions, deadline: number | undefined,
  ): Promise<Connection> {
    if (this.server !== undefined && this.server.state !== 'closed') return Promise.resolve(this.server);
    this.connecting ??= this.openServer(excluded, options, deadline).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /**
   * Subscriptions need a server: connect again, with backoff, until one answers or the client
   * closes (a single attempt left them waiting forever when no server was reachable just then).
   */
  private reconnectForSubscriptions(attempt: number): void {
    if (this.reconnecting || this.closed || !this.events.needsServer()) return;
    this.reconnecting = true;
    this.serverConnection([], {}, undefined).then(
      () => {
        this.reconnecting = false;
      },
      () => {
        this.reconnecting = false;
        const delayMs = Math.min(SUBSCRIPTION_RECONNECT_DELAY_MS_MAX, SUBSCRIPTION_RECONNECT_DELAY_MS * 2 ** Math.min(attempt, 6));
        this.runtime.setTimer(delayMs, () => this.reconnectForSubscriptions(attempt + 1));
      },
    );
  }

  private async openServer(
    excluded: readonly string[], options: RequestOptions, deadline: number | undefined,
  ): Promise<Connection> {
    const exclude = excluded.length > 0 ? { exclude: [...excluded] } : {};
    const located = await this.askLocators('locate', exclude, options, deadline);
    let servers = located.servers;
    if (servers.length === 0 && excluded.length > 0) {
      servers = (await this.askLocators('locate', {}, options, deadline)).servers;
    }
    const locator = this.locators.map(formatAddress).join(', ');
    if (servers.length === 0) throw new StraitError('STRAIT_NO_SERVER', { locator, forRegion: '' });
    const failures: string[] = [];
    for (const server of servers) {
      try {
        const connection = await this.openConnection(server.address, deadline);
        if (this.closed) {
          // The client closed while this connection was being opened: it must not outlive it.
          connection.close();
          throw new StraitError('STRAIT_CONNECTION_CLOSED', { peer: 'client', type: 'connect (the client was closed)' });
        }
        this.server = connection;
        this.serverName = server.name;
        this.events.onServerOpen(connection, server.name);
        return connection;
      } catch (error) {
        if (this.closed) throw error;
        const reason = error instanceof Error ? failureReason(server.address, error) : String(error);
        failures.push(`${server.name}: ${reason}`);
      }
    }
    throw new StraitError('STRAIT_NO_SERVER', { locator, forRegion: ` reachable (${failures.join('; ')})` });
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
        onRequest: (_connection, _request, reply) => {
          const reason = 'clients serve no requests';
          reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: 'server', reason }));
        },
        onPush: (_connection, op, body) => this.events.onPush(op, body),
        onClose: (closed, error) => {
          if (!opened) {
            handshakeTimer?.cancel();
            const peer = formatAddress(address);
            reject(error ?? new StraitError('STRAIT_CONNECTION_CLOSED', { peer, type: 'hello' }));
            return;
          }
          if (this.server === closed) this.server = undefined;
          // Subscriptions move with the client to its next server.
          if (this.events.needsServer() && !this.closed) this.reconnectForSubscriptions(0);
        },
      });
      if (deadline !== undefined) {
        const timeoutMs = Math.max(0, Math.ceil(deadline - this.runtime.clock.monotonic()));
        handshakeTimer = this.runtime.setTimer(timeoutMs, () => {
          if (opened) return;
          const operation = `handshake with ${formatAddress(address)}`;
          reject(new StraitError('STRAIT_TIMEOUT', { operation, timeoutMs }));
          connection.close();
        });
      }
    });
  }
}
