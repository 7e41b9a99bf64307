// `bind-address` by interface rather than by address, as JGroups' bind_addr does, so one
// strait.yaml serves every container whose addresses are only known at start:
//
//   bind-address: match-interface:eth0,site-local,loopback
//
// A comma list of selectors, tried in order; the first that matches an address of this machine
// wins. Within one selector an IPv4 address is preferred, then interfaces in name order, so the
// choice is the same on every start. A list of selectors that matches nothing is refused at start
// naming the key and listing the machine's addresses.
//
// Pure: the machine's interfaces are handed in (os.networkInterfaces() in the CLI).

import { StraitError } from '../errors.ts';

/** One address of one interface: the shape of Node's os.networkInterfaces() items we read. */
export interface InterfaceAddress {
  readonly address: string;
  readonly family: 'IPv4' | 'IPv6';
  readonly internal: boolean;
}

export type NetworkInterfaces = Readonly<Record<string, readonly InterfaceAddress[] | undefined>>;

/** The selectors `bind-address` accepts besides a host name or an address. */
export const BIND_SELECTORS = [
  'match-interface:REGEX', 'match-address:REGEX', 'site-local', 'link-local', 'loopback', 'non-loopback', 'global',
] as const;

const KEYWORDS = new Set(['site-local', 'link-local', 'loopback', 'non-loopback', 'global']);
const PREFIXES = ['match-interface:', 'match-address:'];

/** True when `text` is a selector list rather than a host: a value with any selector in it. */
export function isBindSelector(text: string): boolean {
  return text.split(',').some((item) => {
    const selector = item.trim().toLowerCase();
    return KEYWORDS.has(selector) || PREFIXES.some((prefix) => selector.startsWith(prefix));
  });
}

function ipv4Octets(address: string): number[] | undefined {
  const parts = address.split('.');
  if (parts.length !== 4) return undefined;
  const octets = parts.map(Number);
  return octets.every((octet) => Number.isInteger(octet) && octet >= 0 && octet <= 255) ? octets : undefined;
}

function isLoopback(entry: InterfaceAddress): boolean {
  return entry.internal || entry.address === '::1' || entry.address.startsWith('127.');
}

function isLinkLocal(entry: InterfaceAddress): boolean {
  if (entry.family === 'IPv6') return /^fe[89ab][0-9a-f]:/i.test(entry.address);
  const octets = ipv4Octets(entry.address);
  return octets !== undefined && octets[0] === 169 && octets[1] === 254;
}

/** RFC 1918 for IPv4 (10/8, 172.16/12, 192.168/16), unique-local fc00::/7 and site-local fec0::/10 for IPv6. */
function isSiteLocal(entry: InterfaceAddress): boolean {
  if (entry.family === 'IPv6') return /^f[cd][0-9a-f]{2}:/i.test(entry.address) || /^fe[c-f][0-9a-f]:/i.test(entry.address);
  const octets = ipv4Octets(entry.address);
  if (octets === undefined) return false;
  const [first, second = 0] = octets;
  return first === 10 || (first === 172 && second >= 16 && second <= 31) || (first === 192 && second === 168);
}

function compileRegex(text: string, selector: string, refuse: (reason: string) => StraitError): RegExp {
  try {
    // Anchored, as JGroups matches the whole name: `eth.*`, not any name containing "eth".
    return new RegExp(`^(?:${text})$`);
  } catch {
    throw refuse(`${JSON.stringify(selector)}: ${JSON.stringify(text)} is not a regular expression`);
  }
}

type Matcher = (name: string, entry: InterfaceAddress) => boolean;

function matcherFor(selector: string, refuse: (reason: string) => StraitError): Matcher {
  const lower = selector.toLowerCase();
  if (lower.startsWith('match-interface:')) {
    const pattern = compileRegex(selector.slice('match-interface:'.length), selector, refuse);
    return (name) => pattern.test(name);
  }
  if (lower.startsWith('match-address:')) {
    const pattern = compileRegex(selector.slice('match-address:'.length), selector, refuse);
    return (_name, entry) => pattern.test(entry.address);
  }
  switch (lower) {
    case 'loopback': return (_name, entry) => isLoopback(entry);
    case 'non-loopback': return (_name, entry) => !isLoopback(entry);
    case 'site-local': return (_name, entry) => isSiteLocal(entry);
    case 'link-local': return (_name, entry) => isLinkLocal(entry);
    case 'global': return (_name, entry) => !isLoopback(entry) && !isSiteLocal(entry) && !isLinkLocal(entry);
    default:
      throw refuse(`${JSON.stringify(selector)} is not a selector; in a selector list every item is one of `
        + BIND_SELECTORS.join(', '));
  }
}

function describeInterfaces(interfaces: NetworkInterfaces): string {
  const items = Object.keys(interfaces).sort().flatMap((name) => (interfaces[name] ?? []).map((entry) => `${name} ${entry.address}`));
  return items.length === 0 ? 'none' : items.join(', ');
}

/**
 * The address `selectors` picks on a machine with `interfaces`. `refuse(reason)` builds the
 * error (it names the key): for an unknown selector, a bad regular expression, or no match.
 */
export function resolveBindSelector(
  selectors: string, interfaces: NetworkInterfaces, refuse: (reason: string) => StraitError,
): string {
  const items = selectors.split(',').map((item) => item.trim()).filter((item) => item.length > 0);
  const names = Object.keys(interfaces).sort();
  // Every selector is checked, not only those tried: a typo must not wait for an unlucky machine.
  const matchers = items.map((selector) => matcherFor(selector, refuse));
  for (const matches of matchers) {
    const found: InterfaceAddress[] = [];
    for (const name of names) for (const entry of interfaces[name] ?? []) if (matches(name, entry)) found.push(entry);
    // An IPv6 link-local address needs a zone to be bound; prefer any other match.
    const pick = found.find((entry) => entry.family === 'IPv4') ?? found.find((entry) => !isLinkLocal(entry)) ?? found[0];
    if (pick !== undefined) return pick.address;
  }
  throw refuse(`no address of this machine matches ${items.join(',')} (its addresses: ${describeInterfaces(interfaces)})`);
}
