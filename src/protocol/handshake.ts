// The handshake that opens every connection: the connecting side writes the preamble and a
// `hello` naming its role, name, site, version range and frame limit; the accepting side checks
// it and answers with the preamble and a `welcome` at the negotiated version, or refuses.
//
// Guarantees: a hello is accepted only when the version ranges overlap (STRAIT_PROTOCOL_VERSION
// otherwise, naming both ranges) and, unless it is a gateway connection, when the peer belongs
// to the expected site (STRAIT_SITE_MISMATCH); a welcome only at a version this build speaks.
// Either way the peer's identity comes with the largest frame it accepts, so no side sends a
// frame its peer would refuse. Pure: the Connection writes the bytes and keeps the state.

import { StraitError } from '../errors.ts';
import { encodeFrame, PREAMBLE } from './frame.ts';
import type { Hello, Role, Welcome } from './messages.ts';
import { PROTOCOL_VERSION, PROTOCOL_VERSION_MIN, negotiateVersion } from './version.ts';

export interface Identity {
  readonly role: Role;
  readonly name: string;
  /** null for clients, which belong to no site. */
  readonly site: number | null;
}

export interface PeerIdentity {
  readonly role: Role;
  readonly name: string;
  readonly site: number | null;
  readonly version: number;
  /** The largest frame body the peer accepts; larger frames are refused before sending. */
  readonly frameBytesMax: number;
}

/** The preamble, then `frame`: the first bytes a side writes. */
export function withPreamble(frame: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(PREAMBLE.length + frame.length);
  bytes.set(PREAMBLE, 0);
  bytes.set(frame, PREAMBLE.length);
  return bytes;
}

/** What the connecting side writes first: the preamble and its hello. */
export function helloBytes(local: Identity, frameBytesMax: number, token?: string): Uint8Array {
  const hello: Hello = {
    ...(token === undefined ? {} : { token }),
    t: 'hello',
    versionMin: PROTOCOL_VERSION_MIN,
    versionMax: PROTOCOL_VERSION,
    role: local.role,
    name: local.name,
    site: local.site,
    frameBytesMax,
  };
  return withPreamble(encodeFrame(hello));
}

/**
 * The identity of the peer that sent `hello`, at the version both sides speak. Throws
 * STRAIT_PROTOCOL_VERSION when no version is common, STRAIT_SITE_MISMATCH when a member (not a
 * client, not a gateway) of another site than `expectedSite` connects.
 */
export function peerFromHello(hello: Hello, remote: string, expectedSite: number | undefined): PeerIdentity {
  const version = negotiateVersion(hello.versionMin, hello.versionMax);
  if (version === undefined) {
    throw new StraitError('STRAIT_PROTOCOL_VERSION', {
      peer: remote,
      peerMin: hello.versionMin,
      peerMax: hello.versionMax,
      min: PROTOCOL_VERSION_MIN,
      max: PROTOCOL_VERSION,
    });
  }
  // Gateway connections come from other sites by design; every other role must be ours.
  if (expectedSite !== undefined && hello.site !== null && hello.role !== 'gateway' && hello.site !== expectedSite) {
    const peer = `${hello.name} at ${remote}`;
    throw new StraitError('STRAIT_SITE_MISMATCH', { peer, peerSite: hello.site, site: expectedSite });
  }
  return { role: hello.role, name: hello.name, site: hello.site, version, frameBytesMax: hello.frameBytesMax };
}

/** The accepting side's answer to an accepted hello: the preamble and its welcome at `version`. */
export function welcomeBytes(local: Identity, version: number, frameBytesMax: number): Uint8Array {
  const welcome: Welcome = {
    t: 'welcome', version, role: local.role, name: local.name, site: local.site, frameBytesMax,
  };
  return withPreamble(encodeFrame(welcome));
}

/** The identity of the peer that sent `welcome`; STRAIT_PROTOCOL_VERSION unless this build speaks that version. */
export function peerFromWelcome(welcome: Welcome, remote: string): PeerIdentity {
  if (welcome.version < PROTOCOL_VERSION_MIN || welcome.version > PROTOCOL_VERSION) {
    throw new StraitError('STRAIT_PROTOCOL_VERSION', {
      peer: remote,
      peerMin: welcome.version,
      peerMax: welcome.version,
      min: PROTOCOL_VERSION_MIN,
      max: PROTOCOL_VERSION,
    });
  }
  const { role, name, site, version, frameBytesMax } = welcome;
  return { role, name, site, version, frameBytesMax };
}
