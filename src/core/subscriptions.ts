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
  private nextId = 1;
  private readonly byRegion = new Map<string, Set<Subscription>>();
  /** Client connections, with their subscriptions by id. */
  private readonly byConnection = new Map<Connection, Map<number, Subscription>>();

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

  /** A change was applied to `region` here: push it to every subscriber. */
  notify(region: string, key: string, value: Uint8Array | null, tag: VersionTag): void {
    const subscriptions = this.byRegion.get(region);
    if (subscriptions === undefined || subscriptions.size === 0) return;
    for (const subscription of subscriptions) {
      subscription.connection.push('event', { subscription: subscription.id, region, key, value, tag });
    }
  }
}
