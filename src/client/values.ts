// How the client encodes the values an application stores: plain msgpack (no records, maps as
// objects), so any msgpack-able value round-trips, and a value written by one client reads back
// the same in every other, whichever server or site it went through.

import { Packr } from 'msgpackr';

// copyBuffers: the bytes a client decodes are views into its connection's read chunks, so a byte
// array inside a value is copied out, and an application keeping it never pins a chunk.
const valuePackr = new Packr({ useRecords: false, mapsAsObjects: true, copyBuffers: true });

export function encodeValue(value: unknown): Uint8Array {
  return valuePackr.pack(value);
}

export function decodeValue<V>(bytes: Uint8Array): V {
  return valuePackr.unpack(bytes) as V;
}
