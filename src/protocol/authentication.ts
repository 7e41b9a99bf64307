// Who a peer is, from its credentials rather than from what its hello says, and what it may ask.
//
// A hello claims a role (locator, server, gateway, router, client, admin) and a site. The
// transport says what the peer proved (Stream.security): a TLS certificate with a Strait identity
// (a member of one site, a router, a client, an admin), a router's word for a tunnel's site, or
// nothing (plain TCP). `authenticateHello` accepts the claim only when the proof backs it, and
// throws a coded error otherwise; the connection then answers that error and closes, so the
// peer learns why and nothing it sent is served. `authenticateWelcome` does the same for the
// side that connected out, and `mayConnect` refuses to send a hello (which may hold a token) to
// a peer that proved nothing on a TLS link.
//
// After the handshake every request is checked against the operation's audience
// (OPERATION_AUDIENCES): a client's connection can read and write regions but not replicate,
// acknowledge a sender's events or control it; a gateway receiver's port serves batches only.
//
// A link is TLS when the member (or client) has TLS credentials; then every peer must prove a
// member role with a certificate. Without TLS (development, or a network the operator trusts)
// member roles are taken as claimed — the transport proves nothing — but tokens still apply to clients and admins, and
// the operation audiences still hold. docs/SECURITY.md says what each setting protects.
//
// Pure: no I/O, no clock.

import { StraitError } from '../errors.ts';
import { describeIdentity, type CertificateIdentity, type StreamSecurity } from '../runtime/runtime.ts';
import type { RequestOp, Role } from './messages.ts';

/**
 * What an accepting member asks of clients and admins. Whether members must prove themselves
 * is not a setting: on a TLS link they must (a member with TLS listens with TLS only).
 */
export interface SecurityPolicy {
  /** Clients and admins must present a certificate too (tls `require-client-cert`). */
  readonly requireClientCertificate: boolean;
  /** A client without a client or admin certificate must present this token. */
  readonly clientToken: string | undefined;
  /** An admin without an admin certificate must present this token. */
  readonly adminToken: string | undefined;
}

/** No checks beyond the operation audiences: what a member without security settings runs. */
export const OPEN_POLICY: SecurityPolicy = { requireClientCertificate: false, clientToken: undefined, adminToken: undefined };

export interface Claim {
  readonly role: Role;
  readonly site: number | null;
  readonly name: string;
}

/** Compares without an early exit, so a token can't be found byte by byte from response times. */
export function tokensMatch(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const length = Math.max(given.length, expected.length);
  let difference = given.length ^ expected.length;
  for (let index = 0; index < length; index++) {
    difference |= (given.charCodeAt(index) || 0) ^ (expected.charCodeAt(index) || 0);
  }
  return difference === 0;
}

function describe(identity: CertificateIdentity): string {
  return `a ${describeIdentity(identity)}`;
}

function describeClaim(claim: Claim): string {
  return claim.site === null ? `${claim.name}, a ${claim.role}` : `${claim.name}, a ${claim.role} of site ${claim.site}`;
}

/**
 * Whether a certificate's identity backs a claimed role and site. A member that does not know
 * its site yet (a server without site-id, asking its locator) claims none: then its certificate
 * must be of `ownSite`, the site of the member it connects to.
 */
function certificateBacks(identity: CertificateIdentity, claim: Claim, ownSite?: number): boolean {
  switch (claim.role) {
    case 'locator':
    case 'server':
      return identity.role === claim.role && identity.site === (claim.site ?? ownSite ?? identity.site);
    // Another site's sender or locator: any member certificate of the site it names.
    case 'gateway':
      return (identity.role === 'locator' || identity.role === 'server') && identity.site === claim.site;
    case 'router':
      return identity.role === 'router';
    case 'client':
      return identity.role === 'client' || identity.role === 'admin';
    case 'admin':
      return identity.role === 'admin';
  }
}

/**
 * Accepts `claim` (a hello's role, site and name, with its `token`) when `security` backs it
 * under `policy`; throws STRAIT_TLS_REFUSED (a certificate that isn't trusted) or
 * STRAIT_UNAUTHENTICATED (nothing, or the wrong thing, backs the claim).
 */
export function authenticateHello(
  claim: Claim, token: string | undefined, security: StreamSecurity, policy: SecurityPolicy, remote: string, ownSite?: number,
): void {
  const peer = `${describeClaim(claim)} at ${remote}`;
  const unauthenticated = (reason: string) => new StraitError('STRAIT_UNAUTHENTICATED', { peer: remote, claimed: describeClaim(claim), reason });
  const member = claim.role === 'locator' || claim.role === 'server' || claim.role === 'gateway';
  if (security.kind === 'routed') {
    // The router authenticated the member that opened the tunnel, as a member of this site.
    if (member && (claim.site ?? security.site) === security.site) return;
    throw unauthenticated(`the router relaying it vouches only for a member of site ${security.site}`);
  }
  if (security.kind === 'tls') {
    if (security.refusal !== undefined) throw new StraitError('STRAIT_TLS_REFUSED', { peer, reason: security.refusal });
    if (security.identity !== undefined) {
      if (certificateBacks(security.identity, claim, ownSite)) return;
      throw unauthenticated(`its certificate is for ${describe(security.identity)}`);
    }
  }
  const tls = security.kind === 'tls';
  // No certificate: plain TCP, or a TLS client that presented none.
  if (claim.role === 'client' || claim.role === 'admin') {
    if (tls && policy.requireClientCertificate) throw unauthenticated('it presented no certificate, and this member requires one of every client (tls require-client-cert)');
    if (claim.role === 'admin') {
      // A site with any security setting has admins prove it: the admin token, or an admin certificate.
      if (policy.adminToken !== undefined) {
        if (tokensMatch(token, policy.adminToken)) return;
        throw unauthenticated(token === undefined ? 'it presented no admin certificate and no admin token' : 'it presented no admin certificate and a wrong admin token');
      }
      if (!tls && policy.clientToken === undefined) return;
      throw unauthenticated('it presented no admin certificate, and this member has no admin-token set');
    }
    if (policy.clientToken === undefined || tokensMatch(token, policy.clientToken)) return;
    throw unauthenticated(token === undefined ? 'it presented no certificate and no client token' : 'it presented no certificate and a wrong client token');
  }
  if (tls) throw unauthenticated('it presented no certificate; members, gateways and routers must (strait tls init makes them)');
}

/** Before a hello leaves on a TLS link: the peer must have shown a trusted Strait certificate. */
export function mayConnect(security: StreamSecurity, remote: string): StraitError | undefined {
  if (security.kind !== 'tls' || security.identity !== undefined) return undefined;
  return new StraitError('STRAIT_TLS_REFUSED', { peer: remote, reason: security.refusal ?? 'it presented no certificate' });
}

/** After the welcome: the peer's certificate must back the role and site it answered with. */
export function authenticateWelcome(claim: Claim, security: StreamSecurity, remote: string): void {
  if (security.kind !== 'tls') return;
  const identity = security.identity;
  if (identity !== undefined && certificateBacks(identity, claim)) return;
  throw new StraitError('STRAIT_UNAUTHENTICATED', {
    peer: remote, claimed: describeClaim(claim), reason: identity === undefined ? 'it presented no certificate' : `its certificate is for ${describe(identity)}`,
  });
}

/**
 * Who may ask for an operation:
 * - `clients`: applications (and everyone else): regions' data, the view, status;
 * - `admins`: operators' tools and members: changing the site's configuration, controlling senders;
 * - `members`: the site's own locators and servers: membership, replication, images, queues;
 * - `gateways`: other sites' senders and locators (and members): batches, WAN discovery;
 * - `routers`: members registering with a router, and the routers of its mesh.
 */
export type Audience = 'clients' | 'admins' | 'members' | 'gateways' | 'routers';

const AUDIENCE_ROLES: Readonly<Record<Audience, ReadonlySet<Role>>> = {
  clients: new Set<Role>(['client', 'admin', 'locator', 'server', 'gateway', 'router']),
  admins: new Set<Role>(['admin', 'locator', 'server']),
  members: new Set<Role>(['locator', 'server']),
  gateways: new Set<Role>(['gateway', 'locator', 'server']),
  routers: new Set<Role>(['locator', 'server', 'router']),
};

/** Every request operation's audience. A new operation must be placed here (the type says so). */
export const OPERATION_AUDIENCES: Readonly<Record<RequestOp, Audience>> = {
  ping: 'clients',
  memberInfo: 'clients',
  getView: 'clients',
  locate: 'clients',
  listRegions: 'clients',
  get: 'clients',
  put: 'clients',
  putAll: 'clients',
  putBatch: 'clients',
  getBatch: 'clients',
  remove: 'clients',
  keys: 'clients',
  size: 'clients',
  subscribe: 'clients',
  unsubscribe: 'clients',
  siteConfig: 'clients',
  senderStatus: 'clients',
  routerList: 'clients',
  createRegion: 'admins',
  configChange: 'admins',
  senderControl: 'admins',
  rebalance: 'admins',
  join: 'members',
  leave: 'members',
  heartbeat: 'members',
  configCommit: 'members',
  configApply: 'members',
  bucketsCreate: 'members',
  bucketReady: 'members',
  bucketAdmit: 'members',
  bucketKeys: 'members',
  replicate: 'members',
  senderAck: 'members',
  senderHandoff: 'members',
  senderImage: 'members',
  image: 'members',
  gatewayBatch: 'gateways',
  gatewayAttach: 'gateways',
  wanExchange: 'gateways',
  catalogue: 'gateways',
  routerRegister: 'routers',
};

/**
 * Why `role` may not ask for `op` on this connection, or undefined when it may. `served`, when
 * given, is every operation the listener serves (a gateway receiver's port: batches only).
 */
export function operationRefusal(op: string, role: Role, served: ReadonlySet<RequestOp> | undefined): string | undefined {
  // An operation no one serves is the message validator's to refuse (STRAIT_MESSAGE_INVALID).
  if (!Object.hasOwn(OPERATION_AUDIENCES, op)) return undefined;
  if (served !== undefined && !served.has(op as RequestOp)) return `this port serves ${[...served].join(', ')} only`;
  const audience = OPERATION_AUDIENCES[op as RequestOp];
  if (AUDIENCE_ROLES[audience].has(role)) return undefined;
  return `${op} is for ${audience} only`;
}
