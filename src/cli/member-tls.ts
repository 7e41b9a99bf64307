// A member process's TLS: its credentials loaded and checked against what the member is (a
// server of site 1 must hold a server certificate of site 1), watched for rotation, reported
// in /metrics (expiry, refused handshakes), and the options its runtime and admin HTTP API need.

import type { Server as HttpsServer } from 'node:https';
import { StraitError } from '../errors.ts';
import { describeIdentity, type Logger } from '../runtime/runtime.ts';
import { TlsCredentials } from '../runtime/node/tls-credentials.ts';
import type { TlsSettings } from '../config/security-config.ts';
import { trustForHttps } from './cli-credentials.ts';

/** The certificate role each kind of process must hold; a controller acts as an admin of sites. */
const CERTIFICATE_ROLE = { locator: 'locator', server: 'server', router: 'router', controller: 'admin' } as const;

export interface MemberTls {
  readonly credentials: TlsCredentials;
  /** For createNodeRuntime. */
  readonly runtime: { readonly tls: TlsCredentials; readonly onTlsRefused: (remote: string, reason: string) => void };
  /** For Fastify's `https` option (the admin API, the controller's API). */
  https(): { key: Buffer; cert: Buffer; ca: Buffer };
  /** Rotation reaches the HTTPS server too. */
  serveHttpsFrom(server: unknown): void;
  stop(): void;
}

export interface MemberTlsHooks {
  /** A peer failed the TLS handshake (counted in /metrics). */
  refused?(code: string): void;
  /** Reads when the certificate expires (the expiry gauge). */
  observeCertificate?(expiresAtMs: () => number | undefined): void;
}

/**
 * Loads the member's TLS credentials, or undefined without `tls`. Throws STRAIT_TLS_INVALID
 * when the files fail a check or the certificate is for another role or site.
 */
export function memberTls(
  member: { readonly role: keyof typeof CERTIFICATE_ROLE; readonly name: string; readonly site: number | undefined; readonly tls: TlsSettings | undefined },
  log: Logger, hooks: MemberTlsHooks = {},
): MemberTls | undefined {
  const settings = member.tls;
  if (settings === undefined) return undefined;
  const credentials = TlsCredentials.load(settings, log);
  const identity = credentials.status.identity;
  const role = CERTIFICATE_ROLE[member.role];
  if (identity.role !== role || (member.site !== undefined && identity.site !== null && identity.site !== member.site)) {
    const wanted = member.site === undefined || identity.site === null ? role : `${role} of site ${member.site}`;
    throw new StraitError('STRAIT_TLS_INVALID', { file: settings.cert, reason: `is the certificate of a ${describeIdentity(identity)}; ${member.role} ${member.name} needs one of a ${wanted}` });
  }
  // This process's own HTTPS calls (a controller to sites' admin APIs) trust the same CA.
  trustForHttps(settings.ca);
  credentials.watch();
  hooks.observeCertificate?.(() => credentials.status.expiresAtMs);
  const servers: HttpsServer[] = [];
  credentials.onReload(() => {
    for (const server of servers) server.setSecureContext(credentials.serverOptions());
  });
  log.info({ subject: credentials.status.subject, expiresAt: new Date(credentials.status.expiresAtMs).toISOString() },
    `${member.role} ${member.name}: TLS on every listener and link as a ${describeIdentity(identity)} (certificate ${settings.cert}${settings.requireClientCertificate ? '; clients must present certificates' : ''})`);
  return {
    credentials,
    runtime: { tls: credentials, onTlsRefused: () => hooks.refused?.('STRAIT_TLS_REFUSED') },
    https: () => credentials.serverOptions(),
    serveHttpsFrom(server) {
      if (typeof (server as Partial<HttpsServer>).setSecureContext === 'function') servers.push(server as HttpsServer);
    },
    stop: () => credentials.stop(),
  };
}
