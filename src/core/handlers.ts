// Request handlers as a typed table: one function per operation, each seeing its own body and
// reply types, so no handler casts a body. Locators and servers each build one table; the
// one cast from the validated request to its operation's types lives here.

import { AssertionFailure, StraitError } from '../errors.ts';
import { answering, type Connection, type IncomingRequest, type Reply } from '../protocol/connection.ts';
import type { RequestBody, RequestOp } from '../protocol/messages.ts';
import type { Logger } from '../runtime/runtime.ts';

export type RequestHandler<Op extends RequestOp> = (connection: Connection, body: RequestBody<Op>, reply: Reply<Op>) => void;

export type HandlerTable = { readonly [Op in RequestOp]?: RequestHandler<Op> };

/** Where a member reports a bug that escaped one of its handlers (logs it, counts it). */
export type InternalErrorSink = (where: string, error: unknown) => void;

/**
 * Runs the handler of `request.op` (the connection validated the body against that op's
 * schema). An op the table lacks is answered STRAIT_MESSAGE_INVALID naming `role`; a thrown
 * StraitError becomes the reply. Any other exception is a bug: it is answered STRAIT_INTERNAL
 * and handed to `internalError`, and the member keeps serving — except a failed assertion,
 * which means this member's state is broken and must stop it.
 */
export function dispatchRequest(
  table: HandlerTable, role: string, connection: Connection, request: IncomingRequest, reply: Reply<RequestOp>, internalError: InternalErrorSink,
): void {
  try {
    answering(reply, () => {
      const handler = table[request.op] as RequestHandler<RequestOp> | undefined;
      if (handler === undefined) {
        throw new StraitError('STRAIT_MESSAGE_INVALID', { peer: connection.label, reason: `a ${role} does not serve ${request.op}` });
      }
      handler(connection, request.body as RequestBody<RequestOp>, reply);
    });
  } catch (error) {
    if (error instanceof AssertionFailure) throw error;
    internalError(request.op, error);
    reply.fail(new StraitError('STRAIT_INTERNAL', { reason: `${request.op} from ${connection.label}: ${error instanceof Error ? error.message : String(error)}` }, { cause: error }));
  }
}

/** The usual sink: an error log line with the stack, and the member's metrics. */
export function reportingInternalErrors(log: Logger, member: string, metrics: { internalError(where: string, error: unknown): void }): InternalErrorSink {
  return (where, error) => {
    const stack = error instanceof Error ? error.stack : String(error);
    log.error({ where, stack }, `${member}: internal error in ${where} (a bug; answered STRAIT_INTERNAL and kept serving): ${error instanceof Error ? error.message : String(error)}`);
    metrics.internalError(where, error);
  };
}

/**
 * What a member does with a refused peer (ConnectionOptions.onRefusal): counts every refusal by
 * code; logs the first refused operation of each connection (a refused handshake is logged by
 * the connection as it closes), so a peer that keeps asking can't flood the log.
 */
export function reportingRefusals(log: Logger, member: string, metrics: { securityRefusal(code: string): void }): (error: StraitError, connection: Connection) => void {
  const logged = new WeakSet<Connection>();
  return (error, connection) => {
    metrics.securityRefusal(error.code);
    if (error.code !== 'STRAIT_FORBIDDEN' || logged.has(connection)) return;
    logged.add(connection);
    log.warn({ code: error.code, peer: connection.label }, `${member}: refused a request (further refusals on this connection are only counted): ${error.message}`);
  };
}
