import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AssertionFailure, StraitError, assert as invariant } from '../errors.ts';
import type { Reply } from '../protocol/connection.ts';
import type { RequestOp } from '../protocol/messages.ts';
import { dispatchRequest, type HandlerTable } from './handlers.ts';
import { recordingConnection } from './parts.test-support.ts';

function run(table: HandlerTable, op: RequestOp) {
  const outcome = { code: undefined as string | undefined, ok: false, internal: [] as string[] };
  const reply: Reply<RequestOp> = { ok: () => { outcome.ok = true; }, fail: (error) => { outcome.code = error.code; } };
  dispatchRequest(table, 'server', recordingConnection('peer'), { op, body: {} }, reply, (where) => outcome.internal.push(where));
  return outcome;
}

test('a handler answers through its reply; a thrown coded error becomes the reply', () => {
  assert.equal(run({ ping: (_c, _b, reply) => reply.ok({}) }, 'ping').ok, true);
  assert.equal(run({ ping: () => { throw new StraitError('STRAIT_NOT_READY', { member: 'm', state: 'joining' }); } }, 'ping').code, 'STRAIT_NOT_READY');
});

test('an operation the table lacks is refused as invalid', () => {
  assert.equal(run({}, 'join').code, 'STRAIT_MESSAGE_INVALID');
});

test('an uncoded exception is answered STRAIT_INTERNAL, reported, and the member keeps serving', () => {
  const outcome = run({ ping: () => { throw new TypeError('cannot read properties of undefined'); } }, 'ping');
  assert.equal(outcome.code, 'STRAIT_INTERNAL');
  assert.deepEqual(outcome.internal, ['ping']);
});

test('a failed assertion is not caught: the member must stop', () => {
  assert.throws(() => run({ ping: () => invariant(false, 'broken state') }, 'ping'), AssertionFailure);
});
