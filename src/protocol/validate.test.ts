import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { StraitError } from '../errors.ts';
import { encodeFrame, FrameDecoder } from './frame.ts';
import { PUSHES, REQUESTS, type MemberInfo, type View, type VersionTag } from './messages.ts';
import { isPushOp, isRequestOp, parseEnvelope, parsePushBody, parseRequestBody, parseResponseBody } from './validate.ts';

const PEER = 'test-peer';

const memberInfo: MemberInfo = {
  id: 'server-1-a1b2',
  name: 'server-1',
  role: 'server',
  site: 1,
  address: { host: '10.9.0.1', port: 40404 },
  regions: ['orders'],
};

const view: View = {
  site: 1,
  id: 4,
  lineage: [1_767_225_600_000, 'locator-1-ff00'],
  coordinator: 'locator-1-ff00',
  members: [{ info: memberInfo, joinSeq: 1, load: 0, ready: true }],
  departed: [{ id: 'server-2-c3d4', name: 'server-2', reason: 'left' }],
};

const tag: VersionTag = [2, 1_767_225_600_123, 'server-1-a1b2', 17];

function assertInvalid(action: () => unknown): StraitError {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof StraitError, `expected a StraitError, got ${String(caught)}`);
  assert.equal(caught.code, 'STRAIT_MESSAGE_INVALID');
  assert.equal(caught.details.peer, PEER);
  assert.equal(typeof caught.details.reason, 'string');
  return caught;
}

describe('parseEnvelope', () => {
  const valid = [
    { t: 'hello', versionMin: 1, versionMax: 2, role: 'client', name: 'client-1', site: null, frameBytesMax: 16777216 },
    { t: 'hello', versionMin: 1, versionMax: 1, role: 'server', name: 'server-1', site: 3, frameBytesMax: 16777216 },
    { t: 'welcome', version: 1, role: 'locator', name: 'locator-1', site: 1, frameBytesMax: 16777216 },
    { t: 'req', id: 0, op: 'get', body: { region: 'r', key: 'k' } },
    { t: 'req', id: 1, op: 'no-such-op', body: 'bodies are checked separately' },
    { t: 'res', id: 1, body: { value: null } },
    { t: 'res', id: 2, error: { code: 'STRAIT_TIMEOUT', message: 'get timed out after 5000 ms', retryable: true } },
    { t: 'push', op: 'event', body: {} },
    { t: 'error', error: { code: 'STRAIT_BAD_MAGIC', message: 'bad magic', retryable: false } },
  ];

  it('accepts every kind of envelope and returns it unchanged', () => {
    for (const envelope of valid) assert.equal(parseEnvelope(envelope, PEER), envelope);
  });

  it('refuses wrong types, missing and extra properties', () => {
    const invalid = [
      { t: 'hello', versionMin: '1', versionMax: 1, role: 'client', name: 'c', site: null, frameBytesMax: 16777216 },
      { t: 'hello', versionMin: 1, versionMax: 1, role: 'emperor', name: 'c', site: null, frameBytesMax: 16777216 },
      { t: 'hello', versionMin: 1, versionMax: 1, role: 'client', name: '', site: null, frameBytesMax: 16777216 },
      { t: 'welcome', version: 1, role: 'server', name: 'server-1', site: 0, frameBytesMax: 16777216 },
      { t: 'welcome', version: 1, role: 'server', name: 'server-1' },
      { t: 'hello', versionMin: 2, versionMax: 2, role: 'client', name: 'c', site: null },
      { t: 'req', id: -1, op: 'get', body: {} },
      { t: 'req', id: 1.5, op: 'get', body: {} },
      { t: 'req', id: 1, op: 'get', body: {}, extra: true },
      { t: 'res', id: 1, error: { code: 'X', message: 'm' } },
      { t: 'push', op: 7, body: {} },
      { t: 'error', error: null },
    ];
    for (const envelope of invalid) assertInvalid(() => parseEnvelope(envelope, PEER));
  });

  it('names the offending path in the reason', () => {
    const error = assertInvalid(() => parseEnvelope({ t: 'req', id: 'one', op: 'get', body: {} }, PEER));
    assert.match(String(error.details.reason), /^\/id: /);
  });

  it('refuses unknown envelope types and non-maps', () => {
    for (const body of [{ t: 'request' }, { t: 'constructor' }, { t: '__proto__' }, {}, { t: 1 }, null, undefined, 1, 'req', [], ['req'], new Uint8Array(2)]) {
      assertInvalid(() => parseEnvelope(body, PEER));
    }
  });

  it('keeps reasons short whatever the peer sends', () => {
    const error = assertInvalid(() => parseEnvelope({ t: 'x'.repeat(100_000) }, PEER));
    assert.ok(String(error.details.reason).length < 300);
    const extra = assertInvalid(() => parseEnvelope({ t: 'push', op: 'event', body: {}, ['y'.repeat(100_000)]: 1 }, PEER));
    assert.ok(String(extra.details.reason).length < 300);
  });
});

describe('parseRequestBody', () => {
  const valid: Array<[string, unknown]> = [
    ['ping', {}],
    ['memberInfo', {}],
    ['join', { info: memberInfo }],
    ['heartbeat', { id: 'server-1-a1b2', viewId: 4, load: 10, ready: true }],
    ['locate', {}],
    ['locate', { region: 'orders', exclude: ['server-2'] }],
    ['get', { region: 'orders', key: 'order:1' }],
    ['put', { region: 'orders', key: 'order:1', value: new Uint8Array([1, 2, 3]) }],
    ['put', { region: 'orders', key: 'order:1', value: Buffer.from('a Buffer is a Uint8Array') }],
    ['putAll', { region: 'orders', entries: [['a', new Uint8Array(0)], ['b', new Uint8Array(1)]] }],
    ['createRegion', { spec: { name: 'orders', type: 'replicate', persistent: true } }],
    ['replicate', { region: 'orders', entries: [['a', new Uint8Array(1), tag], ['b', null, tag]] }],
    ['image', { region: 'orders', viewId: 4, after: null, limit: 1000 }],
  ];

  it('accepts valid bodies and returns the op with the same body', () => {
    for (const [op, body] of valid) {
      const request = parseRequestBody(op, body, PEER);
      assert.equal(request.op, op);
      assert.equal(request.body, body);
    }
  });

  it('narrows the body type on the op', () => {
    const request = parseRequestBody('put', { region: 'r', key: 'k', value: new Uint8Array(1) }, PEER);
    if (request.op !== 'put') assert.fail('expected put');
    // Type-checks only because narrowing on op types the body.
    assert.equal(request.body.value.length, 1);
  });

  it('refuses wrong types, missing and extra properties', () => {
    const invalid: Array<[string, unknown]> = [
      ['ping', { extra: 1 }],
      ['ping', undefined],
      ['get', { region: 'orders' }],
      ['get', { region: 'orders', key: '' }],
      ['get', { region: 'orders', key: 7 }],
      ['put', { region: 'orders', key: 'k', value: 'not bytes' }],
      ['put', { region: 'orders', key: 'k', value: [1, 2, 3] }],
      ['put', { region: 'orders', key: 'k', value: new Uint8Array(1), ttl: 5 }],
      ['replicate', { region: 'orders', entries: [['a', new Uint8Array(1), [0, 1, 'm', 1]]] }],
      ['replicate', { region: 'orders', entries: [['a', new Uint8Array(1), [1, 1, 'm']]] }],
      ['image', { region: 'orders', viewId: 4, after: null, limit: 100_001 }],
      ['join', { info: { ...memberInfo, role: 'client' } }],
      ['join', { info: { ...memberInfo, address: { host: 'h', port: 65536 } } }],
      ['createRegion', { spec: { name: 'orders', type: 'mirror', persistent: true } }],
      ['createRegion', { spec: { name: 'orders', type: 'partition', persistent: true, partition: { totalNumBuckets: 0, redundantCopies: 1, recoveryDelayMs: 0, startupRecoveryDelayMs: 0 } } }],
      ['createRegion', { spec: { name: 'orders', type: 'partition', persistent: true, partition: { totalNumBuckets: 113, redundantCopies: 4, recoveryDelayMs: 0, startupRecoveryDelayMs: 0 } } }],
    ];
    for (const [op, body] of invalid) assertInvalid(() => parseRequestBody(op, body, PEER));
  });

  it('names the op and the path within the envelope', () => {
    const error = assertInvalid(() => parseRequestBody('put', { region: 'orders', key: 1, value: new Uint8Array(1) }, PEER));
    assert.match(String(error.details.reason), /\/body\/key: /);
  });

  it('refuses unknown operations, including Object.prototype names', () => {
    for (const op of ['nope', 'constructor', 'toString', '__proto__', 'hasOwnProperty', '']) {
      assertInvalid(() => parseRequestBody(op, {}, PEER));
      assert.equal(isRequestOp(op), false);
    }
  });

  it('knows every request op', () => {
    for (const op of Object.keys(REQUESTS)) assert.equal(isRequestOp(op), true);
  });

  it('validates what the frame decoder produces', () => {
    const frame = encodeFrame({ t: 'req', id: 9, op: 'put', body: { region: 'orders', key: 'order:1', value: new Uint8Array(100) } });
    const [body] = new FrameDecoder({ peer: PEER, frameBytesMax: 1024, expectPreamble: false }).push(frame);
    const envelope = parseEnvelope(body, PEER);
    assert.equal(envelope.t, 'req');
    if (envelope.t !== 'req') return;
    const request = parseRequestBody(envelope.op, envelope.body, PEER);
    assert.equal(request.op, 'put');
  });
});

describe('parseResponseBody', () => {
  it('accepts valid responses', () => {
    assert.deepEqual(parseResponseBody('get', { value: null }, PEER), { value: null });
    assert.deepEqual(parseResponseBody('get', { value: new Uint8Array(2) }, PEER), { value: new Uint8Array(2) });
    assert.deepEqual(parseResponseBody('join', { view }, PEER), { view });
    const getView = { view: null, self: memberInfo, state: 'running' };
    assert.equal(parseResponseBody('getView', getView, PEER), getView);
    assert.deepEqual(parseResponseBody('image', { entries: [['k', null, tag]], done: true }, PEER), { entries: [['k', null, tag]], done: true });
    assert.deepEqual(parseResponseBody('ping', {}, PEER), {});
  });

  it('refuses invalid responses', () => {
    assertInvalid(() => parseResponseBody('get', {}, PEER));
    assertInvalid(() => parseResponseBody('get', undefined, PEER));
    assertInvalid(() => parseResponseBody('size', { size: -1 }, PEER));
    assertInvalid(() => parseResponseBody('remove', { existed: 'yes' }, PEER));
    assertInvalid(() => parseResponseBody('join', { view: { ...view, site: 256 } }, PEER));
    assertInvalid(() => parseResponseBody('ping', { extra: 1 }, PEER));
  });

  it('refuses an op it does not know', () => {
    assertInvalid(() => parseResponseBody('constructor' as 'ping', {}, PEER));
  });
});

describe('parsePushBody', () => {
  it('accepts valid pushes', () => {
    const event = { subscription: 1, region: 'orders', key: 'k', value: new Uint8Array(3), tag };
    assert.equal(parsePushBody<'event'>('event', event, PEER), event);
    const tombstone = { ...event, value: null };
    assert.equal(parsePushBody<'event'>('event', tombstone, PEER), tombstone);
    assert.deepEqual(parsePushBody<'view'>('view', { view }, PEER), { view });
  });

  it('refuses invalid pushes and unknown ops', () => {
    assertInvalid(() => parsePushBody('event', { subscription: 1, region: 'orders', key: 'k', value: null }, PEER));
    assertInvalid(() => parsePushBody('view', { view: { ...view, members: 'all' } }, PEER));
    assertInvalid(() => parsePushBody('view', { view, extra: 1 }, PEER));
    for (const op of ['nope', 'constructor', 'toString', '__proto__']) {
      assertInvalid(() => parsePushBody(op, {}, PEER));
      assert.equal(isPushOp(op), false);
    }
    for (const op of Object.keys(PUSHES)) assert.equal(isPushOp(op), true);
  });
});

describe('validation of arbitrary input', () => {
  const ops = [...Object.keys(REQUESTS), ...Object.keys(PUSHES), 'constructor', '__proto__'];
  const anyValue = fc.oneof(
    fc.anything({ withBoxedValues: true, withMap: true, withSet: true, withTypedArray: true, withNullPrototype: true, withSparseArray: true, withDate: true, withBigInt: true }),
    fc.uint8Array(),
  );

  /** Runs `action`; a throw must be STRAIT_MESSAGE_INVALID. */
  function validOrInvalid(action: () => unknown): void {
    try {
      action();
    } catch (error) {
      assert.ok(error instanceof StraitError, `unexpected ${String(error)}`);
      assert.equal(error.code, 'STRAIT_MESSAGE_INVALID');
    }
  }

  it('parseEnvelope throws nothing but STRAIT_MESSAGE_INVALID', () => {
    const envelopeLike = fc.record(
      {
        t: fc.constantFrom('hello', 'welcome', 'req', 'res', 'push', 'error', 'other'),
        id: fc.oneof(fc.nat(), anyValue),
        op: fc.oneof(fc.constantFrom(...ops), anyValue),
        body: anyValue,
        error: anyValue,
        versionMin: fc.nat(),
        versionMax: fc.nat(),
        version: fc.nat(),
        role: fc.constantFrom('client', 'server', 'locator', 'admin', 'x'),
        name: fc.string(),
        site: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constant(null)),
      },
      { requiredKeys: ['t'] },
    );
    fc.assert(fc.property(fc.oneof(anyValue, envelopeLike), (body) => validOrInvalid(() => parseEnvelope(body, PEER))), { numRuns: 1000 });
  });

  it('body parsers throw nothing but STRAIT_MESSAGE_INVALID', () => {
    const opArbitrary = fc.oneof(fc.constantFrom(...ops), fc.string());
    fc.assert(
      fc.property(opArbitrary, anyValue, (op, body) => {
        validOrInvalid(() => parseRequestBody(op, body, PEER));
        validOrInvalid(() => parsePushBody(op, body, PEER));
        validOrInvalid(() => parseResponseBody(op as 'ping', body, PEER));
      }),
      { numRuns: 1000 },
    );
  });
});
