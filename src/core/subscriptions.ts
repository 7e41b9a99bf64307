// Change subscriptions of the clients connected to one server: a client subscribes to a region
// and is pushed every change this server applies to it, in the order this server applies them.

import { StraitError } from '../errors.ts';
import type { Connection } from '../protocol/connection.ts';
import type { VersionTag } from '../protocol/messages.ts';

/** Subscriptions per connection, at most. */
export const SUBSCRIPTIONS_PER_CONNECTION_MAX = 1000;

interface Subscription {
  readonly id: number;
  readonly region: string;
  readonly connection: Connection;
}

export class Subscriptions {
  private readonly memberName: string;
  /** The connections' output limit, named in the error a cut-off subscriber gets. */
  private readonly bufferedBytesLimit: number;
  /** Subscriptions ended because their subscriber did not keep up (metrics, tests). */
  slowSubscribersCut = 0;
  private readonly onCut: (cut: { connection: string; region: string; bytes: number }) => void;
  private nextId = 1;
  private readonly byRegion = new Map<string, Set<Subscription>>();
  /** Client connections, with their subscriptions by id. */
  private readonly byConnection = new Map<Connection, Map<number, Subscription>>();

  constructor(memberName: string, bufferedBytesLimit: number, onCut: (cut: { connection: string; region: string; bytes: number }) => void = () => {}) {
    this.memberName = memberName;
    this.bufferedBytesLimit = bufferedBytesLimit;
    this.onCut = onCut;
  }

  /** A client connection opened: it may subscribe. */
  attach(connection: Connection): void {
    this.byConnection.set(connection, new Map());
  }

  /** A connection closed: its subscriptions end. True when it was an attached client. */
  detach(connection: Connection): boolean {
    const subscriptions = this.byConnection.get(connection);
    if (subscriptions === undefined) return false;
    this.byConnection.delete(connection);
    for (const subscription of subscriptions.values()) this.byRegion.get(subscription.region)?.delete(subscription);
    return true;
  }

  /** Returns the new subscription's id. The caller checked that the region exists. */
  subscribe(connection: Connection, region: string): number {
    const subscriptions = this.byConnection.get(connection);
    if (subscriptions === undefined) throw new StraitError('STRAIT_MESSAGE_INVALID', { peer: connection.label, reason: 'only clients subscribe' });
    if (subscriptions.size >= SUBSCRIPTIONS_PER_CONNECTION_MAX) {
      throw new StraitError('STRAIT_TOO_MANY_IN_FLIGHT', { limit: SUBSCRIPTIONS_PER_CONNECTION_MAX, peer: connection.label });
    }
    const subscription: Subscription = { id: this.nextId++, region, connection };
    subscriptions.set(subscription.id, subscription);
    let set = this.byRegion.get(region);
    if (set === undefined) {
      set = new Set();
      this.byRegion.set(region, set);
    }
    set.add(subscription);
    return subscription.id;
  }

  unsubscribe(connection: Connection, id: number): void {
    const subscriptions = this.byConnection.get(connection);
    const subscription = subscriptions?.get(id);
    if (subscription === undefined) return;
    subscriptions!.delete(id);
    this.byRegion.get(subscription.region)?.delete(subscription);
  }

  /**
   * A change was applied to `region` here: push it to every subscriber. A subscriber whose
   * connection holds more than its output limit of events it has not taken is cut off with
   * STRAIT_SUBSCRIBER_TOO_SLOW (it can subscribe again), so one stalled client can't make this
   * server buffer without bound.
   */
  notify(region: string, key: string, value: Uint8Array | null, tag: VersionTag): void {
    const subscriptions = this.byRegion.get(region);
    if (subscriptions === undefined || subscriptions.size === 0) return;
    for (const subscription of subscriptions) {
      if (subscription.connection.push('event', { subscription: subscription.id, region, key, value, tag })) continue;
      if (subscription.connection.isClosed()) continue;
      this.cutOff(subscription);
    }
  }

  private cutOff(subscription: Subscription): void {
    const { connection } = subscription;
    this.byConnection.get(connection)?.delete(subscription.id);
    this.byRegion.get(subscription.region)?.delete(subscription);
    this.slowSubscribersCut += 1;
    this.onCut({ connection: connection.label, region: subscription.region, bytes: connection.bufferedBytes });
    const error = new StraitError('STRAIT_SUBSCRIBER_TOO_SLOW', {
      member: this.memberName, subscription: subscription.id, region: subscription.region,
      bytes: connection.bufferedBytes, limit: this.bufferedBytesLimit,
    });
    connection.push('subscriptionEnded', { subscription: subscription.id, error: error.toJSON() }, { evenIfBacklogged: true });
  }
}
