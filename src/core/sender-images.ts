// Copying a gateway sender's queue from the copy that dispatches it: a joining server takes each
// serial sender's queue from its primary, and a new copy of a bucket takes the bucket's lane of
// each parallel sender from the lane's dispatcher (`senderImage`, paged, served once the source
// installed the asker's view). Events entering meanwhile are replicated to the asker as usual;
// the image brings the earlier ones, and the queue ignores those it already holds.
//
// A state machine: callbacks run to completion; time and I/O come through the Runtime.

import type { MemberInfo } from '../protocol/messages.ts';
import type { Logger, Runtime } from '../runtime/runtime.ts';
import type { GatewaySender } from './gateway-sender.ts';
import type { PeerPool } from './peer-pool.ts';

/** Events per page of a sender-queue image, at most. */
const SENDER_IMAGE_PAGE_EVENTS = 2000;
/** Delay before asking for a sender-queue image page again (source not ready, lost connection). */
const SENDER_IMAGE_RETRY_MS = 100;

/** Where a queue is copied from: the member to ask now (it may change), and a parallel sender's lane. */
export interface QueueSource {
  from(): MemberInfo | undefined;
  readonly lane?: string;
}

export interface CopyContext {
  readonly runtime: Runtime;
  readonly pool: PeerPool;
  readonly log: Logger;
  readonly memberName: string;
  selfId(): string | undefined;
}

/**
 * Pages `sender`'s queue (or one lane of it) from `source` into this copy, then calls `done`; no
 * source (or this member itself) means nothing to copy. `still` false ends the work silently
 * (the member moved on).
 */
export function copyQueue(context: CopyContext, sender: GatewaySender, viewId: number, source: QueueSource, still: () => boolean, done: () => void): void {
  const page = (from: string | undefined, after: number | null): void => {
    // Moved on (no longer joining or pending): done, so the caller can clean up.
    if (!still()) {
      done();
      return;
    }
    const primary = source.from();
    if (primary === undefined || primary.id === context.selfId()) {
      done();
      return;
    }
    // A new source numbers its queue differently: start its image from the beginning.
    const position = primary.id === from ? after : null;
    const body = { sender: sender.spec.id, viewId, after: position, limit: SENDER_IMAGE_PAGE_EVENTS, ...(source.lane !== undefined ? { lane: source.lane } : {}) };
    context.pool.get(primary.address).request('senderImage', body, (error, response) => {
      if (!still()) {
        done();
        return;
      }
      if (error?.code === 'STRAIT_SENDER_NOT_FOUND') {
        done();
        return;
      }
      if (error !== undefined || response === undefined) {
        context.runtime.setTimer(SENDER_IMAGE_RETRY_MS, () => page(primary.id, position));
        return;
      }
      sender.absorb(response.events);
      if (response.next !== null) {
        page(primary.id, response.next);
        return;
      }
      if (response.events.length > 0 || position !== null) {
        context.log.info({ sender: sender.spec.id, queued: sender.queuedEvents, lane: source.lane }, `server ${context.memberName}: copied the queue of sender ${sender.spec.id}${source.lane !== undefined ? ` for bucket ${source.lane}` : ''} from ${primary.name}; ${sender.queuedEvents} events queued here`);
      }
      done();
    });
  };
  page(undefined, null);
}
