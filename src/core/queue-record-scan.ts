// Reads what a sender's queue needs of a queue record's events without decoding them: where each
// event's bytes are, its id (member and counter), its size and its possible-duplicate flag.
//
// A drain reads a long backlog back record by record. Decoding every event into arrays, strings
// and byte views cost site 1 ~10% of its CPU in msgpackr alone, plus the collection of all of
// it, for events that leave as the bytes they were read as (encodeBatchEvents). An event is
// decoded only when something asks for its contents (conflation, filters, a dead letter, an
// image's page): QueueItem.event.
//
// Only the exact shape the queue writes is read here: an array of events, or one event (records
// from before chunks), each `[region str, key str, value bin|nil, [site, timestamp, member str,
// counter], possible-duplicate bool]`. Anything else (garbage, another encoder's choices) is
// `undefined`, and the caller decodes the record in full, which names what is wrong.
//
// Pure: no I/O.

/** The events of one scanned record, as parallel arrays (no object per event). */
export interface ScannedRecord {
  readonly count: number;
  /** Offset of each event's first byte, and one past the last event's end (count + 1 entries). */
  readonly starts: number[];
  readonly members: string[];
  readonly counters: number[];
  /** What eventBytes counts, with the strings' UTF-8 lengths for their lengths. */
  readonly sizes: number[];
  readonly possibleDuplicates: boolean[];
}

const utf8 = new TextDecoder('utf-8');

// The readers below return the offset after what they read, or -1 when it is not there, and
// leave what they read in these (no object per field).
/** A string's or byte array's first byte and length; an integer's value. */
let readStart = 0;
let readLength = 0;
let readValue = 0;
/** Where an 8-byte number is copied to be read. */
const scratch = new DataView(new ArrayBuffer(8));
const scratchBytes = new Uint8Array(scratch.buffer);

/**
 * Scans a queue record; undefined when it is not the shape the queue writes. `canonical` gives
 * the one string a queue keeps for a member id (it is asked once per run of equal ids).
 */
export function scanQueueRecord(bytes: Uint8Array, canonical: (member: string) => string): ScannedRecord | undefined {
  let position = arrayAt(bytes, 0);
  if (position < 0) return undefined;
  let count = readLength;
  // A chunk's elements are events (arrays); an event's first element is its region's name.
  if (arrayAt(bytes, position) < 0) {
    position = 0;
    count = 1;
  } else if (count === 0) return undefined;
  const record: ScannedRecord = { count, starts: [], members: [], counters: [], sizes: [], possibleDuplicates: [] };
  let lastMemberStart = -1;
  let lastMemberLength = -1;
  let lastMember = '';
  for (let index = 0; index < count; index++) {
    record.starts.push(position);
    if (bytes[position] !== 0x95) return undefined;
    position = stringAt(bytes, position + 1); // region
    let size = readLength + 32;
    if (position >= 0) position = stringAt(bytes, position); // key
    size += readLength;
    if (position < 0) return undefined;
    if (bytes[position] === 0xc0) position += 1; // no value: a tombstone
    else {
      position = binAt(bytes, position);
      if (position < 0) return undefined;
      size += readLength;
    }
    if (bytes[position] !== 0x94) return undefined;
    position = numberAfter(bytes, position + 1); // site
    if (position >= 0) position = numberAfter(bytes, position); // timestamp
    if (position >= 0) position = stringAt(bytes, position); // member
    if (position < 0) return undefined;
    if (readLength !== lastMemberLength || !sameBytes(bytes, lastMemberStart, readStart, readLength)) {
      lastMember = canonical(utf8.decode(bytes.subarray(readStart, readStart + readLength)));
      lastMemberStart = readStart;
      lastMemberLength = readLength;
    }
    size += readLength;
    position = unsignedAt(bytes, position); // counter
    if (position < 0) return undefined;
    const flag = bytes[position++];
    if (flag !== 0xc2 && flag !== 0xc3) return undefined;
    record.members.push(lastMember);
    record.counters.push(readValue);
    record.sizes.push(size);
    record.possibleDuplicates.push(flag === 0xc3);
  }
  if (position !== bytes.length) return undefined;
  record.starts.push(position);
  return record;
}

function sameBytes(bytes: Uint8Array, first: number, second: number, length: number): boolean {
  for (let offset = 0; offset < length; offset++) if (bytes[first + offset] !== bytes[second + offset]) return false;
  return true;
}

/** An array header: its length in readLength. */
function arrayAt(bytes: Uint8Array, offset: number): number {
  const marker = bytes[offset];
  if (marker === undefined) return -1;
  if (marker >= 0x90 && marker <= 0x9f) {
    readLength = marker & 0x0f;
    return offset + 1;
  }
  if (marker === 0xdc) {
    readLength = uint16At(bytes, offset + 1);
    return readLength < 0 ? -1 : offset + 3;
  }
  if (marker === 0xdd) {
    readLength = uint32At(bytes, offset + 1);
    return readLength < 0 ? -1 : offset + 5;
  }
  return -1;
}

/** A string: its bytes at readStart, readLength of them. */
function stringAt(bytes: Uint8Array, offset: number): number {
  const marker = bytes[offset];
  if (marker === undefined) return -1;
  if (marker >= 0xa0 && marker <= 0xbf) {
    readStart = offset + 1;
    readLength = marker & 0x1f;
  } else if (marker === 0xd9) {
    readStart = offset + 2;
    readLength = offset + 1 < bytes.length ? bytes[offset + 1]! : -1;
  } else if (marker === 0xda) {
    readStart = offset + 3;
    readLength = uint16At(bytes, offset + 1);
  } else if (marker === 0xdb) {
    readStart = offset + 5;
    readLength = uint32At(bytes, offset + 1);
  } else return -1;
  const next = readStart + readLength;
  return readLength < 0 || next > bytes.length ? -1 : next;
}

/** A byte array: its bytes at readStart, readLength of them. */
function binAt(bytes: Uint8Array, offset: number): number {
  const marker = bytes[offset];
  if (marker === 0xc4) {
    readStart = offset + 2;
    readLength = offset + 1 < bytes.length ? bytes[offset + 1]! : -1;
  } else if (marker === 0xc5) {
    readStart = offset + 3;
    readLength = uint16At(bytes, offset + 1);
  } else if (marker === 0xc6) {
    readStart = offset + 5;
    readLength = uint32At(bytes, offset + 1);
  } else return -1;
  const next = readStart + readLength;
  return readLength < 0 || next > bytes.length ? -1 : next;
}

/** A non-negative safe integer as msgpackr writes one (an unsigned integer or a float64), in readValue. */
function unsignedAt(bytes: Uint8Array, offset: number): number {
  const marker = bytes[offset];
  if (marker === undefined) return -1;
  let next: number;
  if (marker <= 0x7f) {
    readValue = marker;
    return offset + 1;
  }
  if (marker === 0xcc) {
    readValue = offset + 1 < bytes.length ? bytes[offset + 1]! : -1;
    next = offset + 2;
  } else if (marker === 0xcd) {
    readValue = uint16At(bytes, offset + 1);
    next = offset + 3;
  } else if (marker === 0xce) {
    readValue = uint32At(bytes, offset + 1);
    next = offset + 5;
  } else if (marker === 0xcf || marker === 0xcb) {
    next = offset + 9;
    if (next > bytes.length) return -1;
    scratchBytes.set(bytes.subarray(offset + 1, next));
    readValue = marker === 0xcb ? scratch.getFloat64(0) : Number(scratch.getBigUint64(0));
  } else return -1;
  return readValue >= 0 && Number.isSafeInteger(readValue) ? next : -1;
}

/** Skips a number (site and timestamp are not needed here): the offset after it, or -1. */
function numberAfter(bytes: Uint8Array, offset: number): number {
  const marker = bytes[offset];
  if (marker === undefined) return -1;
  const next = marker <= 0x7f || marker >= 0xe0 ? offset + 1
    : marker === 0xcc || marker === 0xd0 ? offset + 2
      : marker === 0xcd || marker === 0xd1 ? offset + 3
        : marker === 0xce || marker === 0xd2 || marker === 0xca ? offset + 5
          : marker === 0xcf || marker === 0xd3 || marker === 0xcb ? offset + 9
            : -1;
  return next > bytes.length ? -1 : next;
}

function uint16At(bytes: Uint8Array, offset: number): number {
  return offset + 2 <= bytes.length ? (bytes[offset]! << 8) | bytes[offset + 1]! : -1;
}

function uint32At(bytes: Uint8Array, offset: number): number {
  return offset + 4 <= bytes.length ? ((bytes[offset]! << 24) >>> 0) + ((bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) : -1;
}
