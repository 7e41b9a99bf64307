// Wire protocol versions.
//
// History (newest last; never edit a released entry):
//   1 — 2026-11: preamble "STRT", length-prefixed msgpack frames, hello/welcome handshake,
//       correlated request/response, pushes (view, event); membership, regions, replication.
//   2 — 2026-12: hello/welcome state each side's frame limit, so no side sends a frame its peer
//       would refuse; the hardening of the WAN path (see messages.ts); dial-out sites
//       (`gatewayAttach`, SiteEntry.dialOut / senderHosts, MemberInfo.dialOut); routers (role
//       `router`, `routerRegister`, `routerList`, tunnel pushes, routed catalogue entries); the site
//       configuration (`siteConfig`, `configChange`, `configCommit`, `configApply`; heartbeats carry
//       the configuration version and changed member info); partitioned regions (RegionSpec.partition,
//       View.partitions, `bucketsCreate`, `bucketReady`, `bucketKeys`, `image.bucket`, `rebalance`, `hops` on
//       forwarded region operations, `replicate.viewId`, offline `returned`); parallel senders (`bucketAdmit`,
//       `senderImage.lane`, SenderStatus.parallel / eventsConflated / filterFailures, SenderDeclaration.parallel /
//       dispatcherThreads / batchConflation / order-policy partition); `hello.token` (a client's or admin's
//       token, protocol/authentication.ts); a client's coalesced gets and puts (`putBatch`, `getBatch`,
//       `replicate.refusals`); `gatewayBatch.packed` (a batch's events as the msgpack bytes of the
//       sender's queue records); SenderStatus.sendWindow (the primary's send window). Version 1 never
//       left this repository, so version 2 is also the minimum; 2 is not released yet.
//
// A connection speaks the highest version both sides support. A member refuses peers whose
// range does not overlap its own with STRAIT_PROTOCOL_VERSION, so sites can be upgraded one at
// a time as long as the new release still lists the old version in its range.

/** The version this build speaks natively. Bump on any change to messages.ts. */
export const PROTOCOL_VERSION = 2;
/** The oldest version this build still speaks. */
export const PROTOCOL_VERSION_MIN = 2;

/** The version to speak with a peer supporting `peerMin..peerMax`, or undefined if none. */
export function negotiateVersion(peerMin: number, peerMax: number): number | undefined {
  const version = Math.min(PROTOCOL_VERSION, peerMax);
  if (version < PROTOCOL_VERSION_MIN || version < peerMin) return undefined;
  return version;
}
