// A member's TLS credentials: its certificate and key and the CA it trusts, read from PEM files,
// checked when read (the key matches the certificate, the CA issued it, it is within its
// validity, it carries one Strait identity), and read again when the files change, so a
// certificate is rotated without a restart: the next handshake of every listener and every new
// connection uses the new one; open connections keep theirs.
//
// A change is seen by polling the files' modification times every `reloadIntervalMs` (fs.watch
// misses the rename-into-place that Kubernetes secret volumes and most deploy tools do). New
// files that fail the checks are refused with an error log, and the old credentials stay.

import { readFileSync, statSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { StraitError } from '../../errors.ts';
import { describeIdentity, type CertificateIdentity, type Logger, type StreamSecurity } from '../runtime.ts';
import { identityFromAltNames } from './certificate-identity.ts';

/** How often the files are checked for a change. */
export const TLS_RELOAD_INTERVAL_MS = 10_000;
/** A certificate this close to its expiry is warned about, in the log and in /metrics. */
export const TLS_EXPIRY_WARNING_MS = 30 * 24 * 3600 * 1000;
/** The most the files may hold (a certificate chain and a key are a few KiB). */
const PEM_FILE_BYTES_MAX = 1024 * 1024;

export interface TlsFiles {
  /** This member's certificate (PEM; may include intermediates). */
  readonly cert: string;
  /** Its private key (PEM). */
  readonly key: string;
  /** The CA certificate(s) it trusts for its peers (PEM). */
  readonly ca: string;
}

/** What the loaded certificate says, for logs, status and /metrics. */
export interface CertificateStatus {
  readonly identity: CertificateIdentity;
  readonly subject: string;
  readonly expiresAtMs: number;
  readonly fingerprint: string;
}

interface Loaded {
  readonly key: Buffer;
  readonly cert: Buffer;
  readonly ca: Buffer;
  readonly status: CertificateStatus;
  readonly modifiedMs: readonly number[];
}

function refused(file: string, reason: string, cause?: unknown): StraitError {
  return new StraitError('STRAIT_TLS_INVALID', { file, reason }, cause === undefined ? undefined : { cause });
}

function readPem(file: string): Buffer {
  let bytes: Buffer;
  try {
    if (statSync(file).size > PEM_FILE_BYTES_MAX) throw new Error(`larger than ${PEM_FILE_BYTES_MAX} bytes`);
    bytes = readFileSync(file);
  } catch (error) {
    throw refused(file, `cannot be read: ${error instanceof Error ? error.message : String(error)}`, error);
  }
  if (!bytes.includes('-----BEGIN ')) throw refused(file, 'is not PEM (no -----BEGIN line)');
  return bytes;
}

function modifiedTimes(files: TlsFiles): number[] {
  return [files.cert, files.key, files.ca].map((file) => {
    try {
      return statSync(file).mtimeMs;
    } catch {
      return -1;
    }
  });
}

/** Reads and checks the three files; throws STRAIT_TLS_INVALID naming the file and the reason. */
export function loadTlsFiles(files: TlsFiles, nowMs: number): Loaded {
  const modifiedMs = modifiedTimes(files);
  const cert = readPem(files.cert);
  const key = readPem(files.key);
  const ca = readPem(files.ca);
  let certificate: X509Certificate;
  let authority: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (error) {
    throw refused(files.cert, 'is not a readable X.509 certificate', error);
  }
  try {
    authority = new X509Certificate(ca);
  } catch (error) {
    throw refused(files.ca, 'is not a readable X.509 certificate', error);
  }
  try {
    if (!certificate.checkPrivateKey(createPrivateKey(key))) throw refused(files.key, `is not the key of the certificate in ${files.cert}`);
  } catch (error) {
    if (error instanceof StraitError) throw error;
    throw refused(files.key, 'is not a readable private key', error);
  }
  if (!certificate.checkIssued(authority) || !certificate.verify(authority.publicKey)) {
    throw refused(files.cert, `was not issued by the CA in ${files.ca} (${authority.subject.replaceAll('\n', ', ')})`);
  }
  const expiresAtMs = Date.parse(certificate.validTo);
  if (expiresAtMs <= nowMs) throw refused(files.cert, `expired on ${certificate.validTo}`);
  if (Date.parse(certificate.validFrom) > nowMs) throw refused(files.cert, `is not valid before ${certificate.validFrom}`);
  const identity = identityFromAltNames(certificate.subjectAltName);
  if (identity === undefined) {
    throw refused(files.cert, 'carries no Strait identity: one URI subject alternative name spiffe://strait/site/<site>/<locator|server>, '
      + 'spiffe://strait/router, /client or /admin (strait tls init makes such certificates)');
  }
  return {
    key, cert, ca, modifiedMs,
    status: { identity, subject: certificate.subject.replaceAll('\n', ', '), expiresAtMs, fingerprint: certificate.fingerprint256 },
  };
}

/** What the network needs of TLS credentials: options for its listeners and its connections. */
export interface TlsContext {
  serverOptions(): { key?: Buffer; cert?: Buffer; ca: Buffer };
  clientOptions(): { key?: Buffer; cert?: Buffer; ca: Buffer };
  /** `listener` runs after every successful reload. */
  onReload(listener: () => void): void;
}

/** A client without a certificate of its own: it only checks the site's (its CA file, read once). */
export function trustingOnly(caFile: string): TlsContext {
  const ca = readPem(caFile);
  return { serverOptions: () => ({ ca }), clientOptions: () => ({ ca }), onReload: () => {} };
}

export class TlsCredentials implements TlsContext {
  readonly files: TlsFiles;
  readonly #log: Logger;
  #loaded: Loaded;
  readonly #reloadListeners: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;
  #warnedExpiryOf: string | undefined;

  private constructor(files: TlsFiles, loaded: Loaded, log: Logger) {
    this.files = files;
    this.#loaded = loaded;
    this.#log = log;
  }

  /** Reads the files now; throws STRAIT_TLS_INVALID when they fail a check. */
  static load(files: TlsFiles, log: Logger): TlsCredentials {
    const credentials = new TlsCredentials(files, loadTlsFiles(files, Date.now()), log);
    credentials.#checkExpiry();
    return credentials;
  }

  get status(): CertificateStatus {
    return this.#loaded.status;
  }

  /** Options for tls.createServer / setSecureContext. */
  serverOptions(): { key: Buffer; cert: Buffer; ca: Buffer } {
    return { key: this.#loaded.key, cert: this.#loaded.cert, ca: this.#loaded.ca };
  }

  /** Options for tls.connect. */
  clientOptions(): { key: Buffer; cert: Buffer; ca: Buffer } {
    return this.serverOptions();
  }

  /** `listener` runs after every successful reload. */
  onReload(listener: () => void): void {
    this.#reloadListeners.push(listener);
  }

  /** Polls the files every `intervalMs` (an unref'd timer: it never keeps the process alive). */
  watch(intervalMs = TLS_RELOAD_INTERVAL_MS): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.reloadIfChanged(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Reads the files again when one changed; true when new credentials were taken. */
  reloadIfChanged(): boolean {
    this.#checkExpiry();
    const modifiedMs = modifiedTimes(this.files);
    if (modifiedMs.every((time, index) => time === this.#loaded.modifiedMs[index])) return false;
    let loaded: Loaded;
    try {
      loaded = loadTlsFiles(this.files, Date.now());
    } catch (error) {
      // Keep serving with what we have; say what is wrong with the new files, once per change.
      this.#loaded = { ...this.#loaded, modifiedMs };
      const message = error instanceof Error ? error.message : String(error);
      this.#log.error({ code: 'STRAIT_TLS_INVALID', files: this.files }, `TLS files changed but were not taken (the current certificate stays in use): ${message}`);
      return false;
    }
    const before = this.#loaded.status;
    if (loaded.status.identity.role !== before.identity.role || loaded.status.identity.site !== before.identity.site) {
      this.#loaded = { ...this.#loaded, modifiedMs };
      this.#log.error({ code: 'STRAIT_TLS_INVALID', files: this.files }, `TLS files changed but were not taken: the new certificate is for a ${describeIdentity(loaded.status.identity)}, this member is a ${describeIdentity(before.identity)}`);
      return false;
    }
    this.#loaded = loaded;
    this.#log.info({ subject: loaded.status.subject, expiresAt: new Date(loaded.status.expiresAtMs).toISOString(), fingerprint: loaded.status.fingerprint }, `TLS certificate reloaded from ${this.files.cert}; new connections use it`);
    for (const listener of this.#reloadListeners) listener();
    this.#checkExpiry();
    return true;
  }

  #checkExpiry(): void {
    const status = this.#loaded.status;
    const remainingMs = status.expiresAtMs - Date.now();
    if (remainingMs > TLS_EXPIRY_WARNING_MS || this.#warnedExpiryOf === status.fingerprint) return;
    this.#warnedExpiryOf = status.fingerprint;
    const days = Math.max(0, Math.floor(remainingMs / 86_400_000));
    this.#log.warn({ code: 'STRAIT_TLS_EXPIRING', expiresAt: new Date(status.expiresAtMs).toISOString(), file: this.files.cert },
      `the TLS certificate in ${this.files.cert} expires in ${days} days (${new Date(status.expiresAtMs).toISOString()}); replace the file (it is reloaded without a restart)`);
  }
}

/** What the peer of a TLS socket proved, once its handshake is done. */
export function certificateSecurity(socket: TLSSocket): StreamSecurity {
  const certificate = socket.getPeerCertificate(false) as { subjectaltname?: string } | null;
  if (certificate === null || Object.keys(certificate).length === 0) return { kind: 'tls', identity: undefined, refusal: undefined };
  if (!socket.authorized) {
    const reason = socket.authorizationError instanceof Error ? socket.authorizationError.message : String(socket.authorizationError);
    return { kind: 'tls', identity: undefined, refusal: `its certificate is not trusted (${reason}): not issued by this site's CA, or expired` };
  }
  const identity = identityFromAltNames(certificate.subjectaltname);
  if (identity === undefined) return { kind: 'tls', identity: undefined, refusal: 'its certificate carries no Strait identity (spiffe://strait/...)' };
  return { kind: 'tls', identity, refusal: undefined };
}
