// `strait tls init --dir DIR --sites 1,2`: a development CA and the certificates a deployment of
// those sites needs, made with @peculiar/x509 over Node's WebCrypto (ECDSA P-256, SHA-256):
//
//   DIR/ca.crt, ca.key                       the CA (ca.key stays with whoever issues certificates)
//   DIR/site-N/locator.crt, locator.key      every locator of site N
//   DIR/site-N/server.crt,  server.key       every server of site N (its senders and receiver too)
//   DIR/router.crt, router.key               routers
//   DIR/admin.crt, admin.key                 operators' tools (the CLI's management commands)
//   DIR/client.crt, client.key               applications, when a site requires client certificates
//
// Each certificate carries its Strait identity as a SPIFFE ID (runtime/node/certificate-identity.ts)
// and, for HTTPS clients of the admin API, the host names and addresses given with --hosts
// (always localhost and 127.0.0.1). An existing CA in DIR is reused, so sites can be added later;
// existing certificates are kept unless --force. Keys are written readable by their owner only.

import { mkdirSync, readFileSync, writeFileSync, existsSync, chmodSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { webcrypto } from 'node:crypto';
// @peculiar/x509 resolves its algorithms with tsyringe, which needs the metadata polyfill first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { StraitError } from '../errors.ts';
import type { CertificateIdentity } from '../runtime/runtime.ts';
import { spiffeId } from '../runtime/node/certificate-identity.ts';

export const TLS_VALIDITY_DAYS_DEFAULT = 365;
const TLS_VALIDITY_DAYS_MAX = 3650;
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface TlsInitOptions {
  readonly dir: string;
  readonly sites: readonly number[];
  /** Extra DNS names and IP addresses for every certificate (HTTPS clients check them). */
  readonly hosts: readonly string[];
  readonly days: number;
  readonly force: boolean;
}

export interface TlsInitResult {
  readonly caCreated: boolean;
  /** Files written, relative to dir. */
  readonly written: readonly string[];
  /** Files kept because they existed (no --force). */
  readonly kept: readonly string[];
}

interface Authority {
  readonly certificate: x509.X509Certificate;
  readonly keys: webcrypto.CryptoKeyPair;
}

function pemOfKey(pkcs8: ArrayBuffer): string {
  return x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
}

function writeKey(path: string, pem: string): void {
  writeFileSync(path, pem, { mode: 0o600 });
  chmodSync(path, 0o600);
}

function serialNumber(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex').replace(/^[89a-f]/, '1');
}

async function loadOrCreateAuthority(dir: string, days: number): Promise<{ authority: Authority; created: boolean }> {
  const certificatePath = join(dir, 'ca.crt');
  const keyPath = join(dir, 'ca.key');
  if (existsSync(certificatePath) && existsSync(keyPath)) {
    const certificate = new x509.X509Certificate(readFileSync(certificatePath, 'utf8'));
    const der = x509.PemConverter.decodeFirst(readFileSync(keyPath, 'utf8'));
    const privateKey = await webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, true, ['sign']);
    const publicKey = await certificate.publicKey.export(ALGORITHM, ['verify']);
    return { authority: { certificate, keys: { privateKey, publicKey } }, created: false };
  }
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const now = Date.now();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: 'CN=Strait development CA, O=Strait',
    notBefore: new Date(now - 60_000),
    // The CA outlives the certificates it signs, so renewing them never needs a new CA.
    notAfter: new Date(now + 2 * days * 86_400_000),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  writeFileSync(certificatePath, certificate.toString('pem'));
  writeKey(keyPath, pemOfKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)));
  return { authority: { certificate, keys }, created: true };
}

function alternativeNames(identity: CertificateIdentity, hosts: readonly string[]): x509.JsonGeneralNames {
  const names: x509.JsonGeneralNames = [{ type: 'url', value: spiffeId(identity) }];
  for (const host of ['localhost', '127.0.0.1', ...hosts]) {
    const entry = { type: isIP(host) === 0 ? 'dns' : 'ip', value: host } as const;
    if (!names.some((name) => name.type === entry.type && name.value === entry.value)) names.push(entry);
  }
  return names;
}

async function issue(authority: Authority, identity: CertificateIdentity, hosts: readonly string[], days: number): Promise<{ certificate: string; key: string }> {
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const now = Date.now();
  const organization = identity.site === null ? 'O=Strait' : `O=Strait site ${identity.site}`;
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${identity.role}, ${organization}`,
    issuer: authority.certificate.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + days * 86_400_000),
    signingKey: authority.keys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      // Every Strait process both accepts and opens TLS links.
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(alternativeNames(identity, hosts)),
      await x509.AuthorityKeyIdentifierExtension.create(authority.keys.publicKey),
    ],
  });
  return { certificate: certificate.toString('pem'), key: pemOfKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

/** Parses `--days`: whole days, 1..3650. */
export function parseDays(text: string | undefined): number {
  if (text === undefined) return TLS_VALIDITY_DAYS_DEFAULT;
  const days = Number(text);
  if (!Number.isInteger(days) || days < 1 || days > TLS_VALIDITY_DAYS_MAX) {
    throw new StraitError('STRAIT_CONFIG_INVALID', { source: 'command line', key: '--days', reason: `expected whole days from 1 to ${TLS_VALIDITY_DAYS_MAX}, got ${JSON.stringify(text)}` });
  }
  return days;
}

/** Parses `--sites 1,2`: site ids 1..255. */
export function parseSites(text: string): number[] {
  const sites = text.split(',').map((part) => part.trim()).filter((part) => part.length > 0).map(Number);
  if (sites.length === 0 || sites.some((site) => !Number.isInteger(site) || site < 1 || site > 255)) {
    throw new StraitError('STRAIT_CONFIG_INVALID', { source: 'command line', key: '--sites', reason: `expected site ids 1..255 separated by commas, got ${JSON.stringify(text)}` });
  }
  return [...new Set(sites)].sort((a, b) => a - b);
}

/** Creates (or completes) the CA and certificates in `options.dir`. */
export async function initTls(options: TlsInitOptions, progress: (done: number, total: number, file: string) => void = () => {}): Promise<TlsInitResult> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  mkdirSync(options.dir, { recursive: true });
  const { authority, created } = await loadOrCreateAuthority(options.dir, options.days);
  const wanted: { path: string; identity: CertificateIdentity }[] = [];
  for (const site of options.sites) {
    mkdirSync(join(options.dir, `site-${site}`), { recursive: true });
    wanted.push({ path: `site-${site}/locator`, identity: { role: 'locator', site } });
    wanted.push({ path: `site-${site}/server`, identity: { role: 'server', site } });
  }
  for (const role of ['router', 'admin', 'client'] as const) wanted.push({ path: role, identity: { role, site: null } });
  const written: string[] = created ? ['ca.crt', 'ca.key'] : [];
  const kept: string[] = [];
  let done = 0;
  for (const { path, identity } of wanted) {
    const certificatePath = join(options.dir, `${path}.crt`);
    if (existsSync(certificatePath) && !options.force && !created) {
      kept.push(`${path}.crt`);
    } else {
      const issued = await issue(authority, identity, options.hosts, options.days);
      writeFileSync(certificatePath, issued.certificate);
      writeKey(join(options.dir, `${path}.key`), issued.key);
      written.push(`${path}.crt`, `${path}.key`);
    }
    done += 1;
    progress(done, wanted.length, `${path}.crt`);
  }
  return { caCreated: created, written, kept };
}

