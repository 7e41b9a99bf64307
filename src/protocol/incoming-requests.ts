// The requests the peer sent this side, and the replies to them.
//
// Guarantees: a Reply answers at most once — the first `ok` or `fail` settles it, later calls do
// nothing — and sends nothing once the connection has closed. A request stops counting as
// unanswered the moment it is settled, whether or not its response could be sent, so the
// connection's `incomingRequestsMax` bounds what the handler holds, not what the peer reads.

import { StraitError } from '../errors.ts';
import type { RequestOp, ResponseBody, ResponseEnvelope } from './messages.ts';

/** Replies to one incoming request; exactly one of the two must be called, once. */
export interface Reply<Op extends RequestOp> {
  ok(body: ResponseBody<Op>): void;
  fail(error: StraitError): void;
}

/**
 * Runs a request handler, turning a thrown StraitError (an operating condition such as an
 * unknown region) into the reply; anything else is a bug and propagates.
 */
export function answering(reply: Reply<RequestOp>, handler: () => void): void {
  try {
    handler();
  } catch (error) {
    if (error instanceof StraitError) reply.fail(error);
    else throw error;
  }
}

export interface IncomingRequest {
  readonly op: RequestOp;
  readonly body: unknown;
}

/** Counts the peer's requests that are not answered yet, and makes their replies. */
export class IncomingRequests {
  private unanswered = 0;

  /** Requests from the peer not answered yet. */
  get count(): number {
    return this.unanswered;
  }

  /**
   * Counts request `id` as unanswered and returns its Reply. Settling it sends the response
   * through `send` while `open()` holds.
   */
  reply(id: number, open: () => boolean, send: (response: ResponseEnvelope) => void): Reply<RequestOp> {
    let replied = false;
    this.unanswered += 1;
    const answered = (): boolean => {
      if (replied) return false;
      replied = true;
      this.unanswered -= 1;
      return open();
    };
    return {
      ok: (body) => {
        if (answered()) send({ t: 'res', id, body });
      },
      fail: (error) => {
        if (answered()) send({ t: 'res', id, error: error.toJSON() });
      },
    };
  }
}
