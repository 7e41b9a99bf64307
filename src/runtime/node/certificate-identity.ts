// How a Strait certificate says who holds it: a SPIFFE ID (https://spiffe.io) in a URI subject
// alternative name, in the trust domain `strait`:
//
//   spiffe://strait/site/<site-id>/locator      a locator of that site
//   spiffe://strait/site/<site-id>/server       a server of that site (also its gateway senders)
//   spiffe://strait/router                      a router
//   spiffe://strait/client                      an application's client
//   spiffe://strait/admin                       an operator's tool (the CLI's management commands)
//
// A URI SAN rather than the subject's CN: it is the standard place for a workload identity
// (SPIFFE X.509-SVID), host names stay free for HTTPS clients' host checks, and one certificate
// serves every member of a role in a site (a container image, a StatefulSet). Pure.

import type { CertificateIdentity, CertificateRole } from '../runtime.ts';

export const TRUST_DOMAIN = 'strait';

const MEMBER_ROLES: ReadonlySet<string> = new Set(['locator', 'server']);
const SITELESS_ROLES: ReadonlySet<string> = new Set(['router', 'client', 'admin']);

/** The SPIFFE ID naming `identity`. */
export function spiffeId(identity: CertificateIdentity): string {
  return identity.site === null
    ? `spiffe://${TRUST_DOMAIN}/${identity.role}`
    : `spiffe://${TRUST_DOMAIN}/site/${identity.site}/${identity.role}`;
}

/** The identity a SPIFFE ID names, or undefined when it is not a Strait one. */
export function identityFromSpiffeId(uri: string): CertificateIdentity | undefined {
  const prefix = `spiffe://${TRUST_DOMAIN}/`;
  if (!uri.startsWith(prefix)) return undefined;
  const parts = uri.slice(prefix.length).split('/');
  if (parts.length === 1 && SITELESS_ROLES.has(parts[0]!)) return { role: parts[0] as CertificateRole, site: null };
  if (parts.length !== 3 || parts[0] !== 'site' || !MEMBER_ROLES.has(parts[2]!) || !/^[1-9][0-9]{0,2}$/.test(parts[1]!)) return undefined;
  const site = Number(parts[1]);
  if (site > 255) return undefined;
  return { role: parts[2] as CertificateRole, site };
}

/**
 * The Strait identity among a certificate's subject alternative names, as Node prints them
 * (`DNS:localhost, URI:spiffe://strait/site/1/server, IP Address:127.0.0.1`). undefined when
 * there is none, or more than one (an ambiguous certificate is no identity).
 */
export function identityFromAltNames(altNames: string | undefined): CertificateIdentity | undefined {
  if (altNames === undefined) return undefined;
  const found = altNames.split(/,\s*/)
    .filter((name) => name.startsWith('URI:'))
    .map((name) => identityFromSpiffeId(name.slice('URI:'.length)))
    .filter((identity) => identity !== undefined);
  return found.length === 1 ? found[0] : undefined;
}
