// How members are addressed through the routers: `router:<site>/<name>`, port 0. The WAN
// catalogue lists routed locators and receivers this way, a sender tells a routed candidate from
// a direct one by it, and router-links.ts connects such an address through a tunnel.

import type { Address } from '../runtime/runtime.ts';

const ROUTED_PREFIX = 'router:';

/** The address of `name` of `site` through the routers. */
export function routedAddress(site: number, name: string): Address {
  return { host: `${ROUTED_PREFIX}${site}/${name}`, port: 0 };
}

/** The member a routed address names, or undefined for an ordinary address. */
export function routedTarget(address: Address): { site: number; name: string } | undefined {
  if (!address.host.startsWith(ROUTED_PREFIX)) return undefined;
  const rest = address.host.slice(ROUTED_PREFIX.length);
  const slash = rest.indexOf('/');
  const site = Number(rest.slice(0, slash));
  if (slash <= 0 || !Number.isInteger(site) || site < 1 || site > 255 || slash === rest.length - 1) return undefined;
  return { site, name: rest.slice(slash + 1) };
}
