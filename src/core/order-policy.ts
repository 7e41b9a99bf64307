// Which dispatcher thread of a gateway sender sends an event (`dispatcher-threads` with
// `order-policy`). Each thread has its own connection and batches in flight; events of one
// thread leave in queue order, so the policy chooses what keeps its order:
//   - key: every event of one key on one thread (the order of each key's changes);
//   - partition (parallel senders): every event of one bucket on one thread;
//   - thread (serial senders): every event tagged by one server on one thread (the order in
//     which each server of the site made its changes, Geode's per-thread order).
// Pure: the same event gives the same thread on every copy of the sender.

import { bucketOf } from '../protocol/buckets.ts';
import type { GatewayEvent } from '../protocol/messages.ts';
import type { OrderPolicy } from './config.ts';

export function dispatcherThreadOf(policy: OrderPolicy, threads: number, event: GatewayEvent, bucket: number | undefined): number {
  if (threads <= 1) return 0;
  if (policy === 'partition' && bucket !== undefined) return bucket % threads;
  if (policy === 'thread') return bucketOf(event[3][2], threads);
  return bucketOf(`${event[0]}\u0000${event[1]}`, threads);
}
