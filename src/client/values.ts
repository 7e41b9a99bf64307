// How the client encodes the values an application stores: plain msgpack (no records, maps as
// objects), so any msgpack-able value round-trips, and a value written by one client reads back
// the same in every other, whichever server or site it went through.

import { Packr } from 'msgpackr';

const valuePackr = new Packr({ useRecords: false, mapsAsObjects: true });

export function encodeValue(value: unknown): Uint8Array {
  return valuePackr.pack(value);
}

export function decodeValue<V>(bytes: Uint8Array): V {
  return valuePackr.unpack(bytes) as V;
}
