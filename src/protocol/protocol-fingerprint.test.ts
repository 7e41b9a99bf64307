// Fails when the wire schemas in messages.ts change without a protocol version bump, so a change
// that an older peer would misread can't ship unnoticed.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ENVELOPES, PUSHES, REQUESTS } from './messages.ts';
import { negotiateVersion, PROTOCOL_VERSION, PROTOCOL_VERSION_MIN } from './version.ts';

/**
 * The fingerprint of the wire schemas each released protocol version was built with. Never edit
 * an entry: a schema change needs a new version and a new entry.
 */
const FINGERPRINTS: Readonly<Record<number, string>> = {
  1: '8f989b1dd7ef78dbdbb0edce685b2608f81ac06a032c83e8755ebac16495dcca',
  // Not released yet (no build has left this repository): re-recorded with each wire change
  // (the hardening work, dial-out sites, routers, the site configuration, partitioned regions, batched gets and puts, packed gateway batches, the sender's send window in its status) until the first release.
  2: '689b61a7709cc0ee05501be172148f5a9628aab927796894917b1c95bbf5602c',
};

/** JSON with object keys sorted at every level, so the text depends only on the schemas. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .filter((key) => (value as Record<string, unknown>)[key] !== undefined)
      .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}

function fingerprint(): string {
  return createHash('sha256').update(canonicalJson({ ENVELOPES, REQUESTS, PUSHES })).digest('hex');
}

describe('protocol fingerprint', () => {
  it('matches the fingerprint recorded for PROTOCOL_VERSION', () => {
    const actual = fingerprint();
    assert.equal(
      actual,
      FINGERPRINTS[PROTOCOL_VERSION],
      `The wire schema changed (src/protocol/messages.ts fingerprint is ${actual}). ` +
        'Bump PROTOCOL_VERSION in src/protocol/version.ts, add a history line there, and record the new ' +
        `fingerprint as { ${PROTOCOL_VERSION + 1}: '${actual}' } in src/protocol/protocol-fingerprint.test.ts. ` +
        'Keep PROTOCOL_VERSION_MIN at the oldest version this build still speaks.',
    );
  });

  it('canonical JSON ignores key order', () => {
    assert.equal(canonicalJson({ b: [1, { d: 1, c: 2 }], a: 'x' }), canonicalJson({ a: 'x', b: [1, { c: 2, d: 1 }] }));
    assert.notEqual(canonicalJson({ a: [1, 2] }), canonicalJson({ a: [2, 1] }));
  });
});

describe('negotiateVersion', () => {
  it('speaks PROTOCOL_VERSION_MIN..PROTOCOL_VERSION', () => {
    assert.ok(Number.isInteger(PROTOCOL_VERSION_MIN) && PROTOCOL_VERSION_MIN >= 1);
    assert.ok(PROTOCOL_VERSION_MIN <= PROTOCOL_VERSION);
  });

  it('picks the highest common version of overlapping ranges', () => {
    assert.equal(negotiateVersion(PROTOCOL_VERSION_MIN, PROTOCOL_VERSION), PROTOCOL_VERSION);
    assert.equal(negotiateVersion(PROTOCOL_VERSION, PROTOCOL_VERSION), PROTOCOL_VERSION);
    // A newer peer that still speaks this version.
    assert.equal(negotiateVersion(PROTOCOL_VERSION, PROTOCOL_VERSION + 3), PROTOCOL_VERSION);
    // An older peer whose newest version this build still speaks.
    assert.equal(negotiateVersion(0, PROTOCOL_VERSION_MIN), PROTOCOL_VERSION_MIN);
  });

  it('finds nothing for ranges that do not overlap', () => {
    assert.equal(negotiateVersion(PROTOCOL_VERSION + 1, PROTOCOL_VERSION + 5), undefined);
    assert.equal(negotiateVersion(0, PROTOCOL_VERSION_MIN - 1), undefined);
  });

  it('agrees with the range intersection for any peer range', () => {
    fc.assert(
      fc.property(fc.nat(PROTOCOL_VERSION + 10), fc.nat(PROTOCOL_VERSION + 10), (peerMin, peerMax) => {
        const low = Math.max(peerMin, PROTOCOL_VERSION_MIN);
        const high = Math.min(peerMax, PROTOCOL_VERSION);
        assert.equal(negotiateVersion(peerMin, peerMax), low <= high ? high : undefined);
      }),
    );
  });
});
