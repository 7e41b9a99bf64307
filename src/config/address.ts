// Parses the member addresses operators type: GemFire's `host[port]`, the usual `host:port`,
// bracketed IPv6 `[::1]:port`, and a bare host or IPv6 address that takes a default port.
//
// Host names are kept as names, never resolved here: a name is advertised as the name and
// resolved by whoever connects (as GemFire does for an elastic IP's host name).

import { StraitError } from '../errors.ts';
import type { Address } from '../runtime/runtime.ts';

/** The longest host name DNS allows. */
const HOST_LENGTH_MAX = 253;

// Letters, digits, '-', '_', '.', and ':' / '%' for IPv6 literals with a zone id.
const HOST_PATTERN = /^[A-Za-z0-9_.:%-]+$/;
const PORT_PATTERN = /^[0-9]{1,5}$/;

function invalid(text: string): StraitError {
  return new StraitError('STRAIT_ADDRESS_INVALID', { address: JSON.stringify(text) });
}

function parsePort(text: string, original: string): number {
  if (!PORT_PATTERN.test(text)) throw invalid(original);
  const port = Number(text);
  if (port > 65535) throw invalid(original);
  return port;
}

function checkHost(host: string, original: string): string {
  if (host.length === 0 || host.length > HOST_LENGTH_MAX || !HOST_PATTERN.test(host)) throw invalid(original);
  // A colon is only valid in an IPv6 literal, which has at least two of them.
  const colons = host.split(':').length - 1;
  if (colons === 1) throw invalid(original);
  return host;
}

/**
 * Parses one address. Accepted forms:
 * - `host[port]` (GemFire style), including `::1[10334]`
 * - `host:port`, `[ipv6]:port`, `[ipv6]`
 * - `host` or an unbracketed IPv6 literal (`::1`), which take `defaultPort`
 *
 * Throws STRAIT_ADDRESS_INVALID for anything else, or for a bare host without a default port.
 */
export function parseAddress(text: string, defaultPort?: number): Address {
  const trimmed = text.trim();
  if (trimmed.length === 0) throw invalid(text);

  const gemfire = /^(.*)\[([^\]]*)\]$/.exec(trimmed);
  if (gemfire !== null && !trimmed.startsWith('[')) {
    const host = checkHost(gemfire[1] ?? '', text);
    return { host, port: parsePort(gemfire[2] ?? '', text) };
  }

  if (trimmed.startsWith('[')) {
    const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(trimmed);
    if (bracketed === null) throw invalid(text);
    const host = checkHost(bracketed[1] ?? '', text);
    if (!host.includes(':')) throw invalid(text);
    const portText = bracketed[2];
    if (portText === undefined) return withDefaultPort(host, defaultPort, text);
    return { host, port: parsePort(portText, text) };
  }

  const colons = trimmed.split(':').length - 1;
  if (colons === 1) {
    const [host = '', portText = ''] = trimmed.split(':');
    return { host: checkHost(host, text), port: parsePort(portText, text) };
  }
  // No colon: a host name or IPv4 address. Two or more: an unbracketed IPv6 literal.
  return withDefaultPort(checkHost(trimmed, text), defaultPort, text);
}

function withDefaultPort(host: string, defaultPort: number | undefined, original: string): Address {
  if (defaultPort === undefined) throw invalid(original);
  return { host, port: defaultPort };
}

/**
 * Parses a comma-separated list such as `h1[1],h2:2`. Empty items (a trailing comma) are
 * skipped; an empty list is an error because every place that takes a list needs an address.
 */
export function parseAddressList(text: string, defaultPort?: number): Address[] {
  const items = text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
  if (items.length === 0) throw invalid(text);
  return items.map((item) => parseAddress(item, defaultPort));
}

/** `host:port` for URLs, bracketing IPv6 literals. */
export function formatHostPort(address: Address): string {
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `${host}:${address.port}`;
}
