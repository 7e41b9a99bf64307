// Request handlers as a typed table: one function per operation, each seeing its own body and
// reply types, so no handler casts a body. Locators and servers each build one table; the
// one cast from the validated request to its operation's types lives here.

import { StraitError } from '../errors.ts';
import { answering, type Connection, type IncomingRequest, type Reply } from '../protocol/connection.ts';
import type { RequestBody, RequestOp } from '../protocol/messages.ts';

export type RequestHandler<Op extends RequestOp> = (connection: Connection, body: RequestBody<Op>, reply: Reply<Op>) => void;

export type HandlerTable = { readonly [Op in RequestOp]?: RequestHandler<Op> };

/**
 * Runs the handler of `request.op` (the connection validated the body against that op's
 * schema). An op the table lacks is answered STRAIT_MESSAGE_INVALID naming `role`; a thrown
 * StraitError becomes the reply.
 */
export function dispatchRequest(table: HandlerTable, role: string, connection: Connection, request: IncomingRequest, reply: Reply<RequestOp>): void {
  answering(reply, () => {
    const handler = table[request.op] as RequestHandler<RequestOp> | undefined;
    if (handler === undefined) {
      throw new StraitError('STRAIT_MESSAGE_INVALID', { peer: connection.label, reason: `a ${role} does not serve ${request.op}` });
    }
    handler(connection, request.body as RequestBody<RequestOp>, reply);
  });
}
