// Framing of Strait's wire protocol.
//
// Each side of a connection sends the 4-byte preamble "STRT" once, then frames. A frame is a
// 4-byte unsigned big-endian body length followed by the body: the MessagePack encoding of one
// value (an envelope from messages.ts). A length of 0 is malformed.
//
// Frames come from untrusted peers, so the decoder checks the MessagePack structure of every body
// before msgpackr sees it (see `checkMessagePack`): exactly one value filling the body, no
// extension types (msgpackr would otherwise accept record definitions, structured-clone
// references, Sets, RegExps, Errors and typed arrays even when this side never sends them), no
// `__proto__` map keys, bounded nesting, and no container claiming more items than bytes remain.

import { Packr, RESERVE_START_SPACE, Unpackr } from 'msgpackr';
import { assert, StraitError } from '../errors.ts';

/** The bytes each side sends once, before its first frame: ASCII "STRT". */
export const PREAMBLE: Uint8Array = new Uint8Array([0x53, 0x54, 0x52, 0x54]);

export const FRAME_BYTES_MAX_DEFAULT = 16 * 1024 * 1024;

/** Bytes of the length prefix. */
export const FRAME_LENGTH_BYTES = 4;
const LENGTH_BYTES = FRAME_LENGTH_BYTES;

/** The length prefix is a uint32; no limit may exceed what it can express. */
const FRAME_BYTES_LIMIT = 0xffff_ffff;

/**
 * Arrays and maps nested deeper than this are malformed. The deepest legitimate message (a view
 * inside a push envelope) nests 7 levels; the limit keeps msgpackr's recursive reader far from
 * the stack limit.
 */
export const FRAME_NESTING_DEPTH_MAX = 64;

// Plain MessagePack only: no records, no structured clone, no extra types. Maps encode from
// plain objects and decode to plain objects.
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  structuredClone: false,
  moreTypes: false,
  bundleStrings: false,
});

const unpackOptions = { useRecords: false, mapsAsObjects: true, structuredClone: false, moreTypes: false, bundleStrings: false } as const;
// Byte arrays in decoded bodies own their memory, so a value kept in a region never pins the
// (much larger) network chunk it arrived in.
const unpackr = new Unpackr({ ...unpackOptions, copyBuffers: true });
// Byte arrays are views into the chunk (or the joined body): for a peer that decodes them at once
// and keeps none. A copy costs an ArrayBuffer of its own, ~1.1 µs per 100-byte value with its
// collection (a client's get of 64 values: 1.5-1.7 µs per value copied, 0.4-0.5 as views).
const viewingUnpackr = new Unpackr({ ...unpackOptions, copyBuffers: false });

/**
 * Decodes bytes that passed `checkMessagePack` as a frame body is decoded (byte arrays owning
 * their memory): for MessagePack carried inside a body, such as a gateway batch's packed events.
 */
export function decodeCheckedMessagePack(bytes: Uint8Array): unknown {
  return unpackr.unpack(bytes);
}

/**
 * decodeCheckedMessagePack with byte arrays as views into `bytes`: for a reader that copies the
 * ones it keeps (a gateway receiver, into its regions' arenas).
 */
export function decodeCheckedMessagePackViews(bytes: Uint8Array): unknown {
  return viewingUnpackr.unpack(bytes);
}

/**
 * Encodes one frame: length prefix and MessagePack body in one buffer. msgpackr packs into a
 * shared slab after 4 reserved bytes, and the length is written into them, so the body is never
 * copied. The returned bytes are never overwritten by later calls.
 */
export function encodeFrame(body: unknown): Uint8Array {
  const frame: Uint8Array = packr.pack(body, RESERVE_START_SPACE | LENGTH_BYTES);
  const bodyLength = frame.length - LENGTH_BYTES;
  assert(bodyLength > 0 && bodyLength <= FRAME_BYTES_LIMIT, `encoded frame body of ${bodyLength} bytes`);
  frame[0] = bodyLength >>> 24;
  frame[1] = (bodyLength >>> 16) & 0xff;
  frame[2] = (bodyLength >>> 8) & 0xff;
  frame[3] = bodyLength & 0xff;
  return frame;
}

export interface FrameDecoderOptions {
  /** Names the peer in errors, e.g. its address. */
  readonly peer: string;
  /** Frames whose declared body length exceeds this fail with STRAIT_FRAME_TOO_LARGE. */
  readonly frameBytesMax: number;
  /** True when the stream starts with PREAMBLE (a whole connection); false for bare frames. */
  readonly expectPreamble: boolean;
  /**
   * 'views': byte arrays in decoded bodies are views into the pushed chunks, valid as long as
   * those are (a client, which decodes every value it receives at once). Default 'copies': each
   * owns a copy, so keeping one never pins a chunk (a member, which stores what it receives).
   */
  readonly byteArrays?: 'copies' | 'views';
}

/**
 * Incremental frame decoder for one connection's incoming byte stream.
 *
 * Guarantees:
 * - Accepts any chunk boundaries; `push` returns the bodies of the frames each chunk completes,
 *   in order.
 * - Fails fast: a wrong preamble byte throws STRAIT_BAD_MAGIC as soon as it arrives; a declared
 *   length above `frameBytesMax` throws STRAIT_FRAME_TOO_LARGE as soon as the 4 length bytes
 *   arrive; a zero length or an undecodable body throws STRAIT_FRAME_MALFORMED. After the first
 *   error every later `push` throws the same error.
 * - Holds at most `frameBytesMax` bytes of a partial frame (plus up to 4 length bytes).
 * - `push` keeps a reference to a chunk that lies wholly inside a partial frame until that frame
 *   completes, so callers must not modify a chunk after pushing it (network chunks never are).
 *   Decoded bodies never reference the chunks: each byte array owns a copy of its bytes (unless
 *   `byteArrays` is 'views'). Byte arrays are Uint8Arrays (Buffers when decoded from a Buffer
 *   chunk); rely only on Uint8Array.
 */
export class FrameDecoder {
  private readonly peer: string;
  private readonly frameBytesMax: number;
  /** Preamble bytes matched so far; PREAMBLE.length once matched or when none is expected. */
  private preambleMatched: number;
  /** Length-prefix bytes of the current frame read so far (0..4), and their value. */
  private lengthBytesRead = 0;
  private lengthPrefix = 0;
  /** The current frame's body length while its body is being read, -1 while reading a prefix. */
  private bodyLength = -1;
  /** Pieces of the current frame's body, concatenated once it is complete. */
  private bodyPieces: Uint8Array[] = [];
  private bodyBytesRead = 0;
  private failure: StraitError | undefined;
  private readonly unpackr: Unpackr;

  constructor(options: FrameDecoderOptions) {
    assert(
      Number.isInteger(options.frameBytesMax) && options.frameBytesMax >= 1 && options.frameBytesMax <= FRAME_BYTES_LIMIT,
      `frameBytesMax must be an integer in 1..${FRAME_BYTES_LIMIT}, got ${options.frameBytesMax}`,
    );
    this.peer = options.peer;
    this.frameBytesMax = options.frameBytesMax;
    this.preambleMatched = options.expectPreamble ? 0 : PREAMBLE.length;
    this.unpackr = options.byteArrays === 'views' ? viewingUnpackr : unpackr;
  }

  /** Feeds the next chunk of the stream; returns the bodies of the frames it completes. */
  push(chunk: Uint8Array): unknown[] {
    if (this.failure !== undefined) throw this.failure;
    try {
      return this.read(chunk);
    } catch (error) {
      // Only StraitErrors are thrown by read(); anything else is a bug and propagates as is.
      if (error instanceof StraitError) this.failure = error;
      throw error;
    }
  }

  private read(chunk: Uint8Array): unknown[] {
    const frames: unknown[] = [];
    const end = chunk.length;
    let offset = 0;

    while (this.preambleMatched < PREAMBLE.length && offset < end) {
      if (chunk[offset] !== PREAMBLE[this.preambleMatched]) {
        throw new StraitError('STRAIT_BAD_MAGIC', { peer: this.peer });
      }
      this.preambleMatched++;
      offset++;
    }

    while (offset < end) {
      if (this.bodyLength < 0) {
        // Reading a length prefix.
        if (this.lengthBytesRead === 0 && end - offset >= LENGTH_BYTES) {
          this.bodyLength = readUint32(chunk, offset);
          offset += LENGTH_BYTES;
        } else {
          // The prefix is split across chunks: take it byte by byte.
          this.lengthPrefix = this.lengthPrefix * 256 + (chunk[offset] as number);
          offset++;
          this.lengthBytesRead++;
          if (this.lengthBytesRead < LENGTH_BYTES) continue;
          this.bodyLength = this.lengthPrefix;
          this.lengthPrefix = 0;
          this.lengthBytesRead = 0;
        }
        this.checkBodyLength(this.bodyLength);
        if (end - offset >= this.bodyLength) {
          // The whole body is in this chunk: decode it in place.
          const bodyEnd = offset + this.bodyLength;
          frames.push(this.decodeBody(chunk, offset, bodyEnd));
          offset = bodyEnd;
          this.bodyLength = -1;
          continue;
        }
      }

      // Reading a body that spans chunks.
      const needed = this.bodyLength - this.bodyBytesRead;
      const available = end - offset;
      if (available < needed) {
        this.keepPiece(chunk, offset, end);
        this.bodyBytesRead += available;
        break;
      }
      this.keepPiece(chunk, offset, offset + needed);
      offset += needed;
      const body = concatenate(this.bodyPieces, this.bodyLength);
      this.bodyPieces = [];
      this.bodyBytesRead = 0;
      this.bodyLength = -1;
      frames.push(this.decodeBody(body, 0, body.length));
    }
    return frames;
  }

  private checkBodyLength(length: number): void {
    if (length === 0) {
      throw new StraitError('STRAIT_FRAME_MALFORMED', { peer: this.peer, reason: 'frame of length 0' });
    }
    if (length > this.frameBytesMax) {
      throw new StraitError('STRAIT_FRAME_TOO_LARGE', { peer: this.peer, size: length, limit: this.frameBytesMax });
    }
  }

  /**
   * Keeps a whole chunk by reference (the common case for the middle of a large frame) but copies
   * a part of one, so a small tail never pins a large chunk.
   */
  private keepPiece(chunk: Uint8Array, start: number, end: number): void {
    this.bodyPieces.push(start === 0 && end === chunk.length ? chunk : chunk.slice(start, end));
  }

  private decodeBody(bytes: Uint8Array, start: number, end: number): unknown {
    const problem = checkMessagePack(bytes, start, end);
    if (problem !== undefined) {
      throw new StraitError('STRAIT_FRAME_MALFORMED', { peer: this.peer, reason: problem });
    }
    try {
      return this.unpackr.unpack(bytes, { start, end });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new StraitError('STRAIT_FRAME_MALFORMED', { peer: this.peer, reason }, { cause: error });
    }
  }
}

function readUint32(bytes: Uint8Array, offset: number): number {
  return (
    (bytes[offset] as number) * 0x100_0000 +
    (((bytes[offset + 1] as number) << 16) | ((bytes[offset + 2] as number) << 8) | (bytes[offset + 3] as number))
  );
}

function concatenate(pieces: readonly Uint8Array[], length: number): Uint8Array {
  if (pieces.length === 1) {
    const only = pieces[0] as Uint8Array;
    if (only.length === length) return only;
  }
  const result = new Uint8Array(length);
  let offset = 0;
  for (const piece of pieces) {
    result.set(piece, offset);
    offset += piece.length;
  }
  assert(offset === length, `frame body pieces hold ${offset} bytes, expected ${length}`);
  return result;
}

// Scratch stacks for checkMessagePack: items still to read in each open container, and whether
// it is a map. The decoder is synchronous and never re-entered, so one pair serves every call.
const itemsPending = new Float64Array(FRAME_NESTING_DEPTH_MAX + 1);
const containerIsMap = new Uint8Array(FRAME_NESTING_DEPTH_MAX + 1);

// "__proto__" in UTF-8.
const PROTO_KEY = [0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f];

/**
 * Walks the MessagePack tokens in `bytes[start..end)` without building values. Returns why they
 * are not exactly one acceptable value, or undefined when they are. Accepted: nil, booleans,
 * integers, floats, strings, binary, arrays, maps, and fixext 1 of type 0 (msgpackr's
 * `undefined`). Everything else, a `__proto__` map key, nesting deeper than
 * FRAME_NESTING_DEPTH_MAX and trailing bytes are refused. With `elementStarts`, the offset
 * where each direct element of the outer array begins is appended to it (a queue record's
 * events, sent on as they are).
 */
export function checkMessagePack(bytes: Uint8Array, start: number, end: number, elementStarts?: number[]): string | undefined {
  let position = start;
  let depth = 0;
  itemsPending[0] = 1;
  containerIsMap[0] = 0;
  for (;;) {
    while (itemsPending[depth] === 0) {
      if (depth === 0) {
        return position === end ? undefined : `${end - position} bytes after the end of the message`;
      }
      depth--;
    }
    if (position >= end) return 'message truncated';
    // A direct element of the outer array (or map) starts here.
    if (depth === 1 && elementStarts !== undefined) elementStarts.push(position);
    const pending = itemsPending[depth] as number;
    const isKey = containerIsMap[depth] === 1 && pending % 2 === 0;
    itemsPending[depth] = pending - 1;

    const token = bytes[position++] as number;
    /** Payload bytes after the token and its length field. */
    let payload = 0;
    let items = 0;
    let isMap = false;
    let isString = false;
    if (token < 0x80 || token >= 0xe0) {
      // positive or negative fixint
    } else if (token < 0x90) {
      items = (token & 0x0f) * 2;
      isMap = true;
    } else if (token < 0xa0) {
      items = token & 0x0f;
    } else if (token < 0xc0) {
      payload = token & 0x1f;
      isString = true;
    } else {
      switch (token) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          break;
        case 0xc4: // bin 8
        case 0xd9: // str 8
          if (end - position < 1) return 'message truncated';
          payload = bytes[position++] as number;
          isString = token === 0xd9;
          break;
        case 0xc5: // bin 16
        case 0xda: // str 16
          if (end - position < 2) return 'message truncated';
          payload = readUint16(bytes, position);
          position += 2;
          isString = token === 0xda;
          break;
        case 0xc6: // bin 32
        case 0xdb: // str 32
          if (end - position < 4) return 'message truncated';
          payload = readUint32(bytes, position);
          position += 4;
          isString = token === 0xdb;
          break;
        case 0xca: // float 32
        case 0xce: // uint 32
        case 0xd2: // int 32
          payload = 4;
          break;
        case 0xcb: // float 64
        case 0xcf: // uint 64
        case 0xd3: // int 64
          payload = 8;
          break;
        case 0xcc: // uint 8
        case 0xd0: // int 8
          payload = 1;
          break;
        case 0xcd: // uint 16
        case 0xd1: // int 16
          payload = 2;
          break;
        case 0xd4: // fixext 1
          if (end - position < 2) return 'message truncated';
          if (bytes[position] !== 0) return `extension type ${bytes[position]} is not allowed`;
          payload = 2;
          break;
        case 0xdc: // array 16
        case 0xde: // map 16
          if (end - position < 2) return 'message truncated';
          items = readUint16(bytes, position);
          position += 2;
          isMap = token === 0xde;
          if (isMap) items *= 2;
          break;
        case 0xdd: // array 32
        case 0xdf: // map 32
          if (end - position < 4) return 'message truncated';
          items = readUint32(bytes, position);
          position += 4;
          isMap = token === 0xdf;
          if (isMap) items *= 2;
          break;
        case 0xc1:
          return 'reserved byte 0xc1';
        default:
          // 0xc7..0xc9 ext 8/16/32, 0xd5..0xd8 fixext 2..16
          return `extension token 0x${token.toString(16)} is not allowed`;
      }
    }
    if (payload > end - position) return 'message truncated';
    if (isKey && isString && payload === PROTO_KEY.length && isProtoKey(bytes, position)) {
      return 'map key __proto__ is not allowed';
    }
    position += payload;
    if (items > 0) {
      // Every item takes at least one byte: refuse impossible counts before anything allocates.
      if (items > end - position) return 'message truncated';
      if (depth === FRAME_NESTING_DEPTH_MAX) return `nesting deeper than ${FRAME_NESTING_DEPTH_MAX}`;
      depth++;
      itemsPending[depth] = items;
      containerIsMap[depth] = isMap ? 1 : 0;
    }
  }
}

function readUint16(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] as number) << 8) | (bytes[offset + 1] as number);
}

function isProtoKey(bytes: Uint8Array, offset: number): boolean {
  for (let index = 0; index < PROTO_KEY.length; index++) {
    if (bytes[offset + index] !== PROTO_KEY[index]) return false;
  }
  return true;
}
