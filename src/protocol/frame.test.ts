import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { StraitError } from '../errors.ts';
import { checkMessagePack, encodeFrame, FRAME_NESTING_DEPTH_MAX, FrameDecoder, PREAMBLE } from './frame.ts';

const FRAME_CODES = new Set(['STRAIT_BAD_MAGIC', 'STRAIT_FRAME_TOO_LARGE', 'STRAIT_FRAME_MALFORMED']);

const viewMember = {
  info: {
    id: 'server-1-a1b2',
    name: 'server-1',
    role: 'server',
    site: 1,
    address: { host: '10.9.0.1', port: 40404 },
    httpAddress: { host: '10.9.0.1', port: 7070 },
    regions: ['orders', 'customers'],
    pid: 4242,
  },
  joinSeq: 2,
  load: 17,
  ready: true,
};

const tag = [1, 1_767_225_600_123, 'server-1-a1b2', 9_007_199_254_740_991];

/** One of each kind of envelope, with bodies like the real ones. */
const MESSAGES: readonly unknown[] = [
  { t: 'hello', versionMin: 1, versionMax: 1, role: 'client', name: 'client-7', site: null, frameBytesMax: 16777216 },
  { t: 'welcome', version: 1, role: 'server', name: 'server-1', site: 1, frameBytesMax: 16777216 },
  { t: 'req', id: 1, op: 'ping', body: {} },
  { t: 'req', id: 2, op: 'put', body: { region: 'orders', key: 'order:1', value: bytes(100, 7) } },
  { t: 'req', id: 3, op: 'putAll', body: { region: 'orders', entries: [['a', bytes(3, 1)], ['b', new Uint8Array(0)]] } },
  { t: 'res', id: 2, body: {} },
  { t: 'res', id: 3, error: { code: 'STRAIT_REGION_NOT_FOUND', message: 'region orders does not exist on server-1', retryable: false } },
  { t: 'res', id: 4, body: { entries: [['k1', bytes(5, 3), tag], ['k2', null, tag]], done: false } },
  { t: 'push', op: 'event', body: { subscription: 3, region: 'orders', key: 'ключ-🔑', value: null, tag } },
  {
    t: 'push',
    op: 'view',
    body: {
      view: {
        site: 1,
        id: 12,
        lineage: [1_767_225_600_000, 'locator-1-ff00'],
        coordinator: 'locator-1-ff00',
        members: [viewMember, { ...viewMember, joinSeq: 3, ready: false }],
        departed: [{ id: 'server-2-c3d4', name: 'server-2', reason: 'crashed' }],
      },
    },
  },
  { t: 'error', error: { code: 'STRAIT_PROTOCOL_VERSION', message: 'upgrade the older side', retryable: false } },
  { t: 'res', id: 5, body: { values: [-1, -200, 70_000, -70_000, 2 ** 32 + 1, -(2 ** 40), 0.5, -1.25e-300, true, false] } },
];

function bytes(length: number, seed: number): Uint8Array {
  const result = new Uint8Array(length);
  for (let index = 0; index < length; index++) result[index] = (index * 31 + seed) & 0xff;
  return result;
}

function concat(...parts: readonly Uint8Array[]): Uint8Array {
  const result = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    result.set(part, offset);
    offset += part.length;
  }
  return result;
}

/** A frame with the given raw body bytes (not necessarily valid MessagePack). */
function rawFrame(body: readonly number[] | Uint8Array): Uint8Array {
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  return frame;
}

function decoder(options: { expectPreamble?: boolean; frameBytesMax?: number } = {}): FrameDecoder {
  return new FrameDecoder({ peer: 'test-peer', frameBytesMax: options.frameBytesMax ?? 1 << 20, expectPreamble: options.expectPreamble ?? true });
}

/** Feeds `stream` cut at `cuts` (sorted offsets) and returns every body decoded. */
function feed(target: FrameDecoder, stream: Uint8Array, cuts: readonly number[]): unknown[] {
  const bodies: unknown[] = [];
  let start = 0;
  for (const cut of [...cuts, stream.length]) {
    bodies.push(...target.push(stream.subarray(start, cut)));
    start = cut;
  }
  return bodies;
}

/** Makes byte arrays comparable: decoded ones may be Buffers, expected ones plain Uint8Arrays. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return new Uint8Array(value);
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'number') return Object.is(value, -0) ? 0 : value;
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, plain(item)]));
  }
  return value;
}

function assertFrameError(action: () => unknown, code: string): StraitError {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof StraitError, `expected a StraitError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  return caught;
}

describe('encodeFrame', () => {
  it('prefixes the body with its length as uint32 big-endian', () => {
    for (const message of MESSAGES) {
      const frame = encodeFrame(message);
      assert.ok(frame instanceof Uint8Array);
      const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
      assert.equal(view.getUint32(0), frame.length - 4);
    }
  });

  it('never overwrites a frame it returned earlier', () => {
    const first = encodeFrame(MESSAGES[3]);
    const copy = new Uint8Array(first);
    for (let index = 0; index < 1000; index++) encodeFrame({ filler: bytes(index, index) });
    assert.deepEqual(new Uint8Array(first), copy);
  });

  it('encodes a large body in one frame', () => {
    const value = bytes(3 * 1024 * 1024, 5);
    const frame = encodeFrame({ value });
    assert.deepEqual(plain(decoder({ expectPreamble: false, frameBytesMax: 4 << 20 }).push(frame)), [{ value }]);
  });
});

describe('FrameDecoder', () => {
  it('round-trips representative messages', () => {
    const target = decoder();
    assert.deepEqual(target.push(PREAMBLE), []);
    for (const message of MESSAGES) {
      assert.deepEqual(plain(target.push(encodeFrame(message))), [plain(message)]);
    }
  });

  it('decodes byte arrays as Uint8Array', () => {
    const [message] = decoder({ expectPreamble: false }).push(encodeFrame({ value: bytes(10, 1) })) as [{ value: unknown }];
    assert.ok(message.value instanceof Uint8Array);
  });

  it('copies byte arrays by default, so a kept value never pins the chunk it came in', () => {
    const chunk = concat(encodeFrame({ value: bytes(100, 3) }), encodeFrame({ value: bytes(50, 4) }));
    const [first, second] = decoder({ expectPreamble: false }).push(chunk) as [{ value: Uint8Array }, { value: Uint8Array }];
    for (const [value, length] of [[first.value, 100], [second.value, 50]] as const) {
      assert.equal(value.length, length);
      assert.notEqual(value.buffer, chunk.buffer);
      assert.equal(value.buffer.byteLength, length, 'the copy owns exactly its bytes');
    }
    chunk.fill(0);
    assert.deepEqual(first.value, bytes(100, 3), 'changing the chunk changes no decoded value');
  });

  it("with byteArrays 'views', decodes byte arrays as views into the chunk", () => {
    const chunk = concat(encodeFrame({ value: bytes(100, 3) }), encodeFrame({ value: bytes(50, 4) }));
    const viewing = new FrameDecoder({ peer: 'test-peer', frameBytesMax: 1 << 20, expectPreamble: false, byteArrays: 'views' });
    const [first, second] = viewing.push(chunk) as [{ value: Uint8Array }, { value: Uint8Array }];
    assert.deepEqual([first.value, second.value], [bytes(100, 3), bytes(50, 4)]);
    assert.equal(first.value.buffer, chunk.buffer);
    assert.equal(second.value.buffer, chunk.buffer);
    // A frame split across chunks is joined first; its views are into the joined body, valid still.
    const frame = encodeFrame({ value: bytes(300, 5) });
    assert.deepEqual(viewing.push(frame.subarray(0, 100)), []);
    const [joined] = viewing.push(frame.subarray(100)) as [{ value: Uint8Array }];
    assert.deepEqual(joined.value, bytes(300, 5));
  });

  it('decodes many frames in one chunk', () => {
    const stream = concat(PREAMBLE, ...MESSAGES.map((message) => encodeFrame(message)));
    assert.deepEqual(plain(decoder().push(stream)), MESSAGES.map(plain));
  });

  it('decodes a stream fed byte by byte', () => {
    const stream = concat(PREAMBLE, ...MESSAGES.map((message) => encodeFrame(message)));
    const cuts = Array.from({ length: stream.length - 1 }, (_, index) => index + 1);
    assert.deepEqual(plain(feed(decoder(), stream, cuts)), MESSAGES.map(plain));
  });

  it('decodes a stream cut at any points', () => {
    const stream = concat(PREAMBLE, ...MESSAGES.map((message) => encodeFrame(message)));
    const expected = MESSAGES.map(plain);
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 60 }), (cuts) => {
        cuts.sort((a, b) => a - b);
        assert.deepEqual(plain(feed(decoder(), stream, cuts)), expected);
      }),
    );
  });

  it('decodes a large frame arriving in many chunks', () => {
    const value = bytes(1_000_000, 9);
    const stream = concat(PREAMBLE, encodeFrame({ t: 'push', op: 'x', body: value }), encodeFrame({ after: true }));
    const cuts: number[] = [];
    for (let cut = 3; cut < stream.length; cut += 997) cuts.push(cut);
    assert.deepEqual(plain(feed(decoder({ frameBytesMax: 2_000_000 }), stream, cuts)), [{ t: 'push', op: 'x', body: value }, { after: true }]);
  });

  it('does not depend on chunks after they are pushed', () => {
    const frame = encodeFrame({ value: bytes(64, 2) });
    const target = decoder({ expectPreamble: false });
    // The first chunk holds part of the frame; the caller then reuses that memory.
    const first = new Uint8Array(frame.subarray(0, 20));
    const second = new Uint8Array(frame.subarray(20));
    assert.deepEqual(target.push(first), []);
    first.fill(0xff);
    const [message] = target.push(second) as [{ value: Uint8Array }];
    second.fill(0xff);
    assert.deepEqual(plain(message), { value: bytes(64, 2) });
  });

  it('round-trips arbitrary JSON values and byte arrays at any chunk boundaries', () => {
    const leaf = fc.oneof(fc.jsonValue({ stringUnit: 'grapheme' }), fc.uint8Array({ maxLength: 64 }));
    const value = fc
      .oneof(leaf, fc.array(leaf, { maxLength: 5 }), fc.dictionary(fc.string({ unit: 'grapheme' }), leaf, { maxKeys: 5 }))
      .filter((candidate) => !hasProtoKey(candidate));
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 4 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 8 }), (values, expectPreamble, rawCuts) => {
        const stream = concat(...(expectPreamble ? [PREAMBLE] : []), ...values.map((item) => encodeFrame(item)));
        const cuts = [...new Set(rawCuts.map((cut) => cut % stream.length).filter((cut) => cut > 0))].sort((a, b) => a - b);
        assert.deepEqual(plain(feed(decoder({ expectPreamble }), stream, cuts)), values.map(plain));
      }),
    );
  });

  it('answers garbage with frames or a frame error, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), fc.array(fc.nat(), { maxLength: 5 }), (garbage, expectPreamble, rawCuts) => {
        const cuts = [...new Set(rawCuts.map((cut) => (garbage.length === 0 ? 0 : cut % garbage.length)).filter((cut) => cut > 0))].sort((a, b) => a - b);
        assertFramesOrFrameError(decoder({ expectPreamble, frameBytesMax: 1024 }), garbage, cuts);
      }),
      { numRuns: 500 },
    );
  });

  it('answers garbage bodies inside well-formed frames with frames or STRAIT_FRAME_MALFORMED', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), (body) => {
        try {
          decoder({ expectPreamble: false }).push(rawFrame(body));
        } catch (error) {
          assert.ok(error instanceof StraitError, String(error));
          assert.equal(error.code, 'STRAIT_FRAME_MALFORMED');
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('answers corrupted real frames with frames or a frame error', () => {
    const frames = MESSAGES.map((message) => encodeFrame(message));
    fc.assert(
      fc.property(
        fc.constantFrom(...frames),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        (frame, corruptions) => {
          const corrupted = new Uint8Array(frame);
          for (const [position, value] of corruptions) corrupted[4 + (position % (corrupted.length - 4))] = value;
          assertFramesOrFrameError(decoder({ expectPreamble: false }), corrupted, []);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('refuses a wrong preamble at the first differing byte', () => {
    const target = decoder();
    assert.deepEqual(target.push(new Uint8Array([0x53, 0x54, 0x52])), []);
    const error = assertFrameError(() => target.push(new Uint8Array([0x58])), 'STRAIT_BAD_MAGIC');
    assert.equal(error.details.peer, 'test-peer');
    assertFrameError(() => decoder().push(new TextEncoder().encode('GET / HTTP/1.1\r\n')), 'STRAIT_BAD_MAGIC');
  });

  it('expects no preamble when told so', () => {
    const frame = encodeFrame({ t: 'req', id: 1, op: 'ping', body: {} });
    assert.deepEqual(decoder({ expectPreamble: false }).push(frame), [{ t: 'req', id: 1, op: 'ping', body: {} }]);
    assertFrameError(() => decoder({ expectPreamble: true }).push(frame), 'STRAIT_BAD_MAGIC');
  });

  it('refuses an oversized declared length as soon as the length arrives', () => {
    const target = decoder({ frameBytesMax: 100 });
    assert.deepEqual(target.push(concat(PREAMBLE, new Uint8Array([0, 0, 0]))), []);
    const error = assertFrameError(() => target.push(new Uint8Array([101])), 'STRAIT_FRAME_TOO_LARGE');
    assert.deepEqual(error.details, { peer: 'test-peer', size: 101, limit: 100 });

    // 4 GiB - 1 declared with no body at all.
    assertFrameError(() => decoder().push(concat(PREAMBLE, new Uint8Array([0xff, 0xff, 0xff, 0xff]))), 'STRAIT_FRAME_TOO_LARGE');
  });

  it('accepts a frame of exactly frameBytesMax bytes', () => {
    const frame = encodeFrame({ value: bytes(90, 1) });
    const limit = frame.length - 4;
    assert.equal(decoder({ expectPreamble: false, frameBytesMax: limit }).push(frame).length, 1);
    assertFrameError(() => decoder({ expectPreamble: false, frameBytesMax: limit - 1 }).push(frame), 'STRAIT_FRAME_TOO_LARGE');
  });

  it('refuses a zero length', () => {
    assertFrameError(() => decoder({ expectPreamble: false }).push(new Uint8Array([0, 0, 0, 0])), 'STRAIT_FRAME_MALFORMED');
  });

  it('refuses trailing bytes inside a frame body', () => {
    // 0x01 is the whole value 1; 0xc0 (nil) is left over.
    const error = assertFrameError(() => decoder({ expectPreamble: false }).push(rawFrame([0x01, 0xc0])), 'STRAIT_FRAME_MALFORMED');
    assert.equal(error.details.peer, 'test-peer');
    assert.equal(typeof error.details.reason, 'string');
  });

  it('refuses a truncated body', () => {
    // A fixstr of 5 bytes with 2 present; an array of 3 items with 1 present.
    assertFrameError(() => decoder({ expectPreamble: false }).push(rawFrame([0xa5, 0x61, 0x62])), 'STRAIT_FRAME_MALFORMED');
    assertFrameError(() => decoder({ expectPreamble: false }).push(rawFrame([0x93, 0x01])), 'STRAIT_FRAME_MALFORMED');
  });

  it('refuses containers that claim more items than bytes remain, before allocating', () => {
    assertFrameError(() => decoder({ expectPreamble: false }).push(rawFrame([0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0])), 'STRAIT_FRAME_MALFORMED');
    assertFrameError(() => decoder({ expectPreamble: false }).push(rawFrame([0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0])), 'STRAIT_FRAME_MALFORMED');
  });

  it('refuses map keys that are arrays, maps or binary', () => {
    for (const key of [[0x90], [0x80], [0xc4, 0x01, 0x61]]) {
      assertFrameError(() => decoder({ expectPreamble: false }).push(rawFrame([0x81, ...key, 0x01])), 'STRAIT_FRAME_MALFORMED');
    }
    // Number keys become strings, as in JavaScript objects.
    assert.deepEqual(decoder({ expectPreamble: false }).push(rawFrame([0x81, 0x07, 0x01])), [{ 7: 1 }]);
  });

  it(`refuses nesting deeper than ${FRAME_NESTING_DEPTH_MAX}`, () => {
    const nested = (depth: number) => [...new Array<number>(depth).fill(0x91), 0xc0];
    assert.equal(decoder({ expectPreamble: false }).push(rawFrame(nested(FRAME_NESTING_DEPTH_MAX))).length, 1);
    assertFrameError(() => decoder({ expectPreamble: false }).push(rawFrame(nested(FRAME_NESTING_DEPTH_MAX + 1))), 'STRAIT_FRAME_MALFORMED');
    assertFrameError(() => decoder({ expectPreamble: false }).push(rawFrame(nested(100_000))), 'STRAIT_FRAME_MALFORMED');
  });

  it('refuses MessagePack extensions: records, structured clone, Set, RegExp, Date, Error', () => {
    const refused: Record<string, number[]> = {
      // {a: 1} as a record definition (fixext 1, type 0x72 "r").
      record: [0xd4, 0x72, 0x40, 0x91, 0xa1, 0x61, 0x01],
      twoByteRecord: [0xd5, 0x72, 0x40, 0x00, 0x91, 0xa1, 0x61, 0x01],
      structuredCloneId: [0xd6, 0x69, 0, 0, 0, 1, 0x90],
      structuredClonePointer: [0xd6, 0x70, 0, 0, 0, 1],
      set: [0xd4, 0x73, 0x00, 0x90],
      regExp: [0xd4, 0x78, 0x00, 0x92, 0xa2, 0x61, 0x2a, 0xa0],
      date: [0xd6, 0xff, 0, 0, 0, 1],
      error: [0xd4, 0x65, 0x00, 0x93, 0xa5, 0x45, 0x72, 0x72, 0x6f, 0x72, 0xa0, 0xc0],
      typedArray: [0xc7, 0x03, 0x74, 0x01, 0x00, 0x00],
      bundledStrings: [0xd6, 0x62, 0, 0, 0, 8, 0xa0],
      reserved: [0xc1],
    };
    for (const [name, body] of Object.entries(refused)) {
      assertFrameError(() => decoder({ expectPreamble: false }).push(rawFrame(body)), 'STRAIT_FRAME_MALFORMED');
      assert.notEqual(checkMessagePack(new Uint8Array(body), 0, body.length), undefined, name);
    }
    // msgpackr's encoding of undefined (fixext 1 of type 0) is the one extension accepted.
    assert.deepEqual(decoder({ expectPreamble: false }).push(rawFrame([0x91, 0xd4, 0x00, 0x00])), [[undefined]]);
  });

  it('cannot pollute prototypes', () => {
    const protoKey = [0xa9, ...new TextEncoder().encode('__proto__')];
    const polluted = [0x81, 0xa8, ...new TextEncoder().encode('polluted'), 0xc3];
    const attempts: number[][] = [
      [0x81, ...protoKey, ...polluted],
      // The same key as str 8 and inside a map 16, nested in an array.
      [0x91, 0xde, 0x00, 0x01, 0xd9, 0x09, ...new TextEncoder().encode('__proto__'), ...polluted],
    ];
    for (const attempt of attempts) {
      assertFrameError(() => decoder({ expectPreamble: false }).push(rawFrame(attempt)), 'STRAIT_FRAME_MALFORMED');
    }
    // A "__proto__" string as a value is just a string.
    assert.deepEqual(decoder({ expectPreamble: false }).push(rawFrame([0x81, 0xa1, 0x6b, ...protoKey])), [{ k: '__proto__' }]);

    // {constructor: {prototype: {polluted: true}}} decodes to own properties only.
    const constructorKey = [0xab, ...new TextEncoder().encode('constructor')];
    const prototypeKey = [0xa9, ...new TextEncoder().encode('prototype')];
    const [decoded] = decoder({ expectPreamble: false }).push(rawFrame([0x81, ...constructorKey, 0x81, ...prototypeKey, ...polluted])) as [object];
    assert.ok(Object.hasOwn(decoded, 'constructor'));
    assert.equal(Object.getPrototypeOf(decoded), Object.prototype);

    const encoded = encodeFrame(JSON.parse('{"a":{"__proto__":{"polluted":true}}}'));
    assertFrameError(() => decoder({ expectPreamble: false }).push(encoded), 'STRAIT_FRAME_MALFORMED');

    assert.equal((Object.prototype as Record<string, unknown>)['polluted'], undefined);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });

  it('keeps throwing the same error after the first one', () => {
    const target = decoder({ frameBytesMax: 10 });
    const first = assertFrameError(() => target.push(concat(PREAMBLE, new Uint8Array([0, 0, 0, 11]))), 'STRAIT_FRAME_TOO_LARGE');
    for (const chunk of [new Uint8Array(0), encodeFrame({}), PREAMBLE]) {
      assert.equal(assertFrameError(() => target.push(chunk), 'STRAIT_FRAME_TOO_LARGE'), first);
    }
  });

  it('refuses a frameBytesMax the length prefix cannot express', () => {
    assert.throws(() => new FrameDecoder({ peer: 'p', frameBytesMax: 0, expectPreamble: true }));
    assert.throws(() => new FrameDecoder({ peer: 'p', frameBytesMax: 2 ** 32, expectPreamble: true }));
  });
});

function assertFramesOrFrameError(target: FrameDecoder, stream: Uint8Array, cuts: readonly number[]): void {
  let failure: unknown;
  try {
    feed(target, stream, cuts);
  } catch (error) {
    failure = error;
  }
  if (failure === undefined) return;
  assert.ok(failure instanceof StraitError, `unexpected ${String(failure)}`);
  assert.ok(FRAME_CODES.has(failure.code), failure.code);
  // Once failed, always failed, with the same error.
  assert.throws(() => target.push(new Uint8Array([1])), (error) => error === failure);
}

function hasProtoKey(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(hasProtoKey);
  if (typeof value === 'object' && value !== null && !(value instanceof Uint8Array)) {
    return Object.keys(value).some((key) => key === '__proto__' || hasProtoKey((value as Record<string, unknown>)[key]));
  }
  return false;
}
