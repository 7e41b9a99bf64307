// What the CLI shows a site when it connects as a client: TLS files and a token, from the
// environment (so no secret shows in `ps` or shell history):
//
//   STRAIT_TLS_CA      the CA that signs the site's members (turns TLS on)
//   STRAIT_TLS_CERT    with STRAIT_TLS_KEY: the CLI's own certificate (admin.crt from strait tls init)
//   STRAIT_TLS_KEY
//   STRAIT_ADMIN_TOKEN the site's admin-token (management commands without an admin certificate)
//   STRAIT_CLIENT_TOKEN the site's client token (data commands on a site that sets one)
//
// The CLI connects as an admin (it runs management commands: create region, pause a sender)
// unless all it has is a client token or a client certificate; then as a client. With
// STRAIT_TLS_CA set, HTTPS calls (topology commands, the controller's calls to sites) trust it too.

import { getCACertificates, setDefaultCACertificates } from 'node:tls';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { identityFromAltNames } from '../runtime/node/certificate-identity.ts';
import type { ClientTlsOptions } from '../client/client.ts';

export const TLS_ENVIRONMENT_VARIABLES = { ca: 'STRAIT_TLS_CA', cert: 'STRAIT_TLS_CERT', key: 'STRAIT_TLS_KEY' } as const;

export interface CliCredentials {
  readonly role: 'client' | 'admin';
  readonly tls?: ClientTlsOptions;
  readonly token?: string;
}

function variable(name: string): string | undefined {
  const value = process.env[name]?.trim();
  return value === undefined || value.length === 0 ? undefined : value;
}

/** Makes HTTPS (fetch) trust `caFile` beside the system's CAs: our admin APIs use certificates it signs. */
export function trustForHttps(caFile: string): void {
  setDefaultCACertificates([...getCACertificates('default'), readFileSync(caFile, 'utf8')]);
}

/** The CLI's credentials from the environment (see the file comment). */
export function cliCredentials(): CliCredentials {
  const ca = variable(TLS_ENVIRONMENT_VARIABLES.ca);
  const cert = variable(TLS_ENVIRONMENT_VARIABLES.cert);
  const key = variable(TLS_ENVIRONMENT_VARIABLES.key);
  const adminToken = variable('STRAIT_ADMIN_TOKEN');
  const clientToken = variable('STRAIT_CLIENT_TOKEN');
  let certificateRole: string | undefined;
  if (cert !== undefined) {
    try {
      certificateRole = identityFromAltNames(new X509Certificate(readFileSync(cert)).subjectAltName)?.role;
    } catch {
      certificateRole = undefined; // the client runtime refuses the file with a coded error
    }
  }
  const asClient = certificateRole === 'client' || (adminToken === undefined && clientToken !== undefined && certificateRole !== 'admin');
  const token = asClient ? clientToken : adminToken;
  if (ca !== undefined) trustForHttps(ca);
  return {
    role: asClient ? 'client' : 'admin',
    ...(ca === undefined ? {} : { tls: { ca, ...(cert === undefined ? {} : { cert }), ...(key === undefined ? {} : { key }) } }),
    ...(token === undefined ? {} : { token }),
  };
}
