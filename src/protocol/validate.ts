// Validation of decoded frame bodies against the schemas in messages.ts. Every check is compiled
// once, at module load; a valid message costs one compiled check and allocates nothing beyond
// what the caller asked for. Errors are built only on the failure path.

import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { StraitError } from '../errors.ts';
import {
  ENVELOPES,
  PUSHES,
  REQUESTS,
  type Envelope,
  type PushBody,
  type PushOp,
  type RequestBody,
  type RequestOp,
  type ResponseBody,
} from './messages.ts';

/** A validated request body together with its operation; narrowing on `op` types `body`. */
export type RequestMessage = { [Op in RequestOp]: { readonly op: Op; readonly body: RequestBody<Op> } }[RequestOp];

/** Longest quoted value or path an error reason carries, so a hostile peer can't flood logs. */
const REASON_PART_CHARS_MAX = 120;

const helloCheck = TypeCompiler.Compile(ENVELOPES.hello);
const welcomeCheck = TypeCompiler.Compile(ENVELOPES.welcome);
const requestCheck = TypeCompiler.Compile(ENVELOPES.request);
const responseCheck = TypeCompiler.Compile(ENVELOPES.response);
const pushCheck = TypeCompiler.Compile(ENVELOPES.push);
const errorCheck = TypeCompiler.Compile(ENVELOPES.error);

interface OperationChecks {
  readonly body: TypeCheck<TSchema>;
  readonly response: TypeCheck<TSchema>;
}

// Maps, not objects indexed by the op: an op such as "constructor" must not find anything.
const requestChecks: ReadonlyMap<string, OperationChecks> = new Map(
  Object.entries(REQUESTS).map(([op, schemas]) => [
    op,
    { body: TypeCompiler.Compile(schemas.body), response: TypeCompiler.Compile(schemas.response) },
  ]),
);

const pushChecks: ReadonlyMap<string, TypeCheck<TSchema>> = new Map(
  Object.entries(PUSHES).map(([op, schema]) => [op, TypeCompiler.Compile(schema)]),
);

export function isRequestOp(op: string): op is RequestOp {
  return requestChecks.has(op);
}

export function isPushOp(op: string): op is PushOp {
  return pushChecks.has(op);
}

/**
 * Returns `body` typed as an envelope when it is one, chosen by its `t` field; otherwise throws
 * STRAIT_MESSAGE_INVALID naming the first offending path. Request, response and push bodies are
 * left unchecked: see parseRequestBody, parseResponseBody and parsePushBody.
 */
export function parseEnvelope(body: unknown, peer: string): Envelope {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalid(peer, `envelope is ${describe(body)}, expected a map`);
  }
  const type: unknown = (body as { readonly t?: unknown }).t;
  switch (type) {
    case 'hello':
      if (helloCheck.Check(body)) return body;
      throw invalid(peer, firstError(helloCheck, body, ''));
    case 'welcome':
      if (welcomeCheck.Check(body)) return body;
      throw invalid(peer, firstError(welcomeCheck, body, ''));
    case 'req':
      if (requestCheck.Check(body)) return body;
      throw invalid(peer, firstError(requestCheck, body, ''));
    case 'res':
      if (responseCheck.Check(body)) return body;
      throw invalid(peer, firstError(responseCheck, body, ''));
    case 'push':
      if (pushCheck.Check(body)) return body;
      throw invalid(peer, firstError(pushCheck, body, ''));
    case 'error':
      if (errorCheck.Check(body)) return body;
      throw invalid(peer, firstError(errorCheck, body, ''));
    default:
      throw invalid(peer, `/t: unknown envelope type ${describe(type)}`);
  }
}

/** Validates a request body for `op`; throws STRAIT_MESSAGE_INVALID for an unknown op or bad body. */
export function parseRequestBody(op: string, body: unknown, peer: string): RequestMessage {
  const checks = requestChecks.get(op);
  if (checks === undefined) throw invalid(peer, `unknown operation ${describe(op)}`);
  if (!checks.body.Check(body)) throw invalid(peer, `${op} request ${firstError(checks.body, body, '/body')}`);
  return { op, body } as RequestMessage;
}

/** Validates the body of a successful response to an `op` request. */
export function parseResponseBody<Op extends RequestOp>(op: Op, body: unknown, peer: string): ResponseBody<Op> {
  const checks = requestChecks.get(op);
  if (checks === undefined) throw invalid(peer, `unknown operation ${describe(op)}`);
  if (!checks.response.Check(body)) throw invalid(peer, `${op} response ${firstError(checks.response, body, '/body')}`);
  return body as ResponseBody<Op>;
}

/**
 * Validates a push body for `op`. The caller names the push it expects through `Op`; the body is
 * checked against the schema of the `op` actually received, so narrow on that op before relying
 * on the type.
 */
export function parsePushBody<Op extends PushOp>(op: string, body: unknown, peer: string): PushBody<Op> {
  const check = pushChecks.get(op);
  if (check === undefined) throw invalid(peer, `unknown push ${describe(op)}`);
  if (!check.Check(body)) throw invalid(peer, `${op} push ${firstError(check, body, '/body')}`);
  return body as PushBody<Op>;
}

function invalid(peer: string, reason: string): StraitError {
  return new StraitError('STRAIT_MESSAGE_INVALID', { peer, reason });
}

/** "path: problem" for the first error, the path prefixed by where the value sits in the envelope. */
function firstError(check: TypeCheck<TSchema>, value: unknown, pathPrefix: string): string {
  const error = check.Errors(value).First();
  // Check() failed, so Errors() finds at least one; the fallback only guards a TypeBox mismatch.
  if (error === undefined) return `${pathPrefix || '/'}: does not match the schema`;
  const path = truncate(pathPrefix + error.path) || '/';
  return `${path}: ${error.message}`;
}

/** A short, bounded description of an unexpected value for an error reason. */
function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(truncate(value));
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Uint8Array) return 'binary';
  return typeof value === 'object' ? 'a map' : typeof value;
}

function truncate(text: string): string {
  return text.length <= REASON_PART_CHARS_MAX ? text : `${text.slice(0, REASON_PART_CHARS_MAX)}…`;
}
