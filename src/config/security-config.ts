// A member's security settings: `tls` (its certificate, key and the CA it trusts, and whether
// clients must show a certificate too) and `client-token-file`. In strait.yaml:
//
//   tls: { cert: certs/site-1/server.crt, key: certs/site-1/server.key, ca: certs/ca.crt, require-client-cert: false }
//
// or as flags --tls-cert, --tls-key, --tls-ca, --tls-require-client-cert (flags win, key by key).
// Paths are relative to strait.yaml's directory (flags: to the working directory). Pure: the
// files are read by the runtime (runtime/node/tls-credentials.ts), which checks them.

import type { Origin, Parser } from './config-values.ts';
import { asMapping, checkKeys, invalid, parseBoolean, parseString } from './config-values.ts';

export interface TlsSettings {
  /** Absolute paths of the PEM files. */
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  /** Clients (and admins) must present a certificate signed by the CA. */
  readonly requireClientCertificate: boolean;
}

/** A key's value with where it came from. */
export interface SourcedValue {
  readonly value: unknown;
  readonly origin: Origin;
}

const TLS_FILE_KEYS = ['cert', 'key', 'ca'] as const;
const TLS_KEYS = [...TLS_FILE_KEYS, 'require-client-cert'];

/**
 * The TLS settings from the `tls` mapping and the `tls-*` flags, or undefined when neither says
 * anything. `resolvePath` makes a path absolute for where it was given. All three files are
 * required together: a member can't do half of TLS.
 */
export function parseTlsSettings(
  lookup: (key: string) => SourcedValue | undefined, resolvePath: (path: string, origin: Origin) => string,
): TlsSettings | undefined {
  const mapping = lookup('tls');
  const fields = new Map<string, SourcedValue>();
  if (mapping !== undefined) {
    const values = asMapping(mapping.value, mapping.origin);
    checkKeys(values, TLS_KEYS, mapping.origin.source, 'tls');
    for (const [key, value] of Object.entries(values)) {
      if (value !== null && value !== undefined) fields.set(key, { value, origin: { ...mapping.origin, key: `tls.${key}` } });
    }
  }
  for (const key of TLS_KEYS) {
    const flag = lookup(`tls-${key}`);
    if (flag !== undefined) fields.set(key, flag);
  }
  if (fields.size === 0) return undefined;
  const path: Parser<string> = (value, origin) => resolvePath(parseString(value, origin, 4096), origin);
  const files: Partial<Record<(typeof TLS_FILE_KEYS)[number], string>> = {};
  for (const key of TLS_FILE_KEYS) {
    const field = fields.get(key);
    if (field === undefined) {
      const anyOrigin = [...fields.values()][0]!.origin;
      throw invalid({ ...anyOrigin, key: `tls.${key}` }, 'required with the other tls settings: give cert, key and ca (strait tls init makes them)');
    }
    files[key] = path(field.value, field.origin);
  }
  const require = fields.get('require-client-cert');
  return {
    cert: files.cert!,
    key: files.key!,
    ca: files.ca!,
    requireClientCertificate: require === undefined ? false : parseBoolean(require.value, require.origin),
  };
}
