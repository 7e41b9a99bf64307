// Every copy of every gateway sender of the site, asked of each server the view says hosts one:
// what a locator's admin API answers for the controller's status of a topology's edges.

import type { SenderStatus, View } from '../protocol/messages.ts';
import type { PeerPool } from './peer-pool.ts';
import { serversOf } from './views.ts';

/** Calls back once every hosting server answered or failed; a server that failed adds nothing. */
export function siteSenders(pool: PeerPool, view: View | null, callback: (senders: SenderStatus[]) => void): void {
  const hosts = serversOf(view).filter((member) => (member.info.senders ?? []).length > 0);
  const senders: SenderStatus[] = [];
  let pending = hosts.length;
  if (pending === 0) {
    callback(senders);
    return;
  }
  for (const host of hosts) {
    pool.get(host.info.address).request('senderStatus', {}, (error, response) => {
      if (error === undefined && response !== undefined) senders.push(...response.senders);
      pending -= 1;
      if (pending === 0) callback(senders);
    });
  }
}
