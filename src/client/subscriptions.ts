// Subscriptions: the async iterator an application consumes, and the registry that keeps every
// open subscription on the client's current server and moves it with the client.
//
// Guarantees: when the client fails over, every subscription subscribes on the next server; one
// that was live before gets a STRAIT_SUBSCRIPTION_GAP event once it is live again, since changes
// made during the move were delivered by neither server — every change after the gap event is
// delivered. A consumer that falls `bufferedEventsMax` events behind fails with
// STRAIT_SUBSCRIBER_TOO_SLOW instead of growing the buffer; a server that cuts a subscriber off
// fails its iterator with the server's code; closing the client fails every iterator with
// STRAIT_ABORTED. The process stays alive while a consumer awaits the next event, not while a
// subscription is merely open.

import { StraitError, errorFromWire } from '../errors.ts';
import type { Connection } from '../protocol/connection.ts';
import type { PushBody, PushOp, RequestBody, RequestOp, ResponseBody, VersionTag } from '../protocol/messages.ts';
import { requestFailure, type RequestOptions, type ServerLinkEvents } from './server-link.ts';
import { decodeValue } from './values.ts';

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

const DEFAULT_BUFFERED_EVENTS_MAX = 100_000;

/** A change as the server pushes it: the value still encoded, null for a remove. */
interface EventPush {
  readonly subscription: number;
  readonly key: string;
  readonly value: Uint8Array | null;
  readonly tag: VersionTag;
}

/** One open subscription as the registry sees it: where its events go. */
export interface SubscriptionSink {
  readonly region: string;
  serverSubscription: number | undefined;
  /** Set once the subscription was live on a server: a later resubscription leaves a gap. */
  wasLive: boolean;
  push(event: { key: string; value: Uint8Array | null; tag: VersionTag }): void;
  gap(message: string): void;
  fail(error: StraitError): void;
}

/** What the iterator needs from the client: registering its sink, and holding the process. */
export interface SubscriptionOwner {
  addSubscription(sink: SubscriptionSink, options: RequestOptions): Promise<void>;
  removeSubscription(sink: SubscriptionSink): void;
  holdProcess(): () => void;
}

/** What the registry needs from the client: requests with failover, and the server connection. */
export interface SubscriptionHost {
  /** A request through the current server, with failover, holding the process meanwhile. */
  request<Op extends RequestOp>(op: Op, body: RequestBody<Op>, options: RequestOptions): Promise<ResponseBody<Op>>;
  /** The server connection, open or not; undefined when there is none. */
  serverConnection(): Connection | undefined;
}

/** Every open subscription of one client; the client's server link reports to it. */
export class ClientSubscriptions implements ServerLinkEvents {
  private readonly host: SubscriptionHost;
  private readonly subscriptions = new Set<SubscriptionSink>();

  constructor(host: SubscriptionHost) {
    this.host = host;
  }

  needsServer(): boolean {
    return this.subscriptions.size > 0;
  }

  onServerOpen(connection: Connection, serverName: string): void {
    this.resubscribe(connection, serverName);
  }

  onPush(op: PushOp, body: unknown): void {
    if (op === 'event') this.onEvent(body as EventPush);
    else if (op === 'subscriptionEnded') this.onSubscriptionEnded(body as PushBody<'subscriptionEnded'>);
  }

  /** The client closed: every iterator fails with STRAIT_ABORTED. */
  onClose(): void {
    for (const subscription of this.subscriptions) {
      subscription.fail(new StraitError('STRAIT_ABORTED', { operation: 'subscription (client closed)' }));
    }
    this.subscriptions.clear();
  }

  private onEvent(event: EventPush): void {
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
          const failure = error === undefined ? undefined : requestFailure(error);
          if (failure !== undefined && !failure.retryable) {
            subscription.fail(failure);
            return;
          }
          // Retryable (the server not ready, a timeout): leave this server, so the client
          // connects to the next one and subscribes there — never a subscription left waiting
          // on a connection that will not deliver it.
          connection.close();
          return;
        }
        subscription.serverSubscription = response.subscription;
        if (subscription.wasLive) {
          const gap = new StraitError('STRAIT_SUBSCRIPTION_GAP', { region: subscription.region, server: serverName });
          subscription.gap(gap.message);
        }
        subscription.wasLive = true;
      });
    }
  }

  /** Registers a subscription; events flow to `sink` from the current and every later server. */
  async add(sink: SubscriptionSink, options: RequestOptions): Promise<void> {
    this.subscriptions.add(sink);
    try {
      const response = await this.host.request('subscribe', { region: sink.region }, options);
      sink.serverSubscription ??= response.subscription;
      sink.wasLive = true;
    } catch (error) {
      this.subscriptions.delete(sink);
      throw error;
    }
  }

  remove(sink: SubscriptionSink): void {
    this.subscriptions.delete(sink);
    const id = sink.serverSubscription;
    const server = this.host.serverConnection();
    if (id !== undefined && server?.state === 'open') server.request('unsubscribe', { subscription: id }, () => {});
  }
}

/** The iterator behind `ClientRegion.subscribe`: see its doc comment and this file's opening one. */
export function openSubscription<V>(
  client: SubscriptionOwner, region: string, options: SubscribeOptions,
): AsyncIterable<SubscriptionEvent<V>> & { ready: Promise<void> } {
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
        member: 'the client',
        subscription: sink.serverSubscription ?? 0,
        region,
        bytes: `${buffer.length} events`,
        limit: `${limit} events (bufferedEventsMax)`,
      }));
      return;
    }
    buffer.push(event);
  };
  const sink: SubscriptionSink = {
    region,
    serverSubscription: undefined,
    wasLive: false,
    push: (event) => {
      const value = event.value === null ? undefined : decodeValue<V>(event.value);
      deliver({ kind: 'change', key: event.key, value, tag: event.tag });
    },
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
