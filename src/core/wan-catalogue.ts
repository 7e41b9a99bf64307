// The WAN catalogue: what this site knows of every site — its locators, its gateway receivers
// and the sites its gateway senders ship to — and the routing it implies.
//
// Routing: every site computes, from the same graph, the breadth-first tree rooted at an
// event's origin site (neighbours visited in ascending site id). A site forwards an event to a
// remote site only along an edge of that tree. So in any directed graph — chain, ring, mesh,
// hub/spoke, DAG — an event never returns to its origin and reaches each reachable site exactly
// once, whatever paths exist. (If two sites briefly disagree on the graph an event may arrive
// twice; applying by version tag makes that harmless.)

import type { SiteEntry, View } from '../protocol/messages.ts';
import { routedAddress } from './routed-address.ts';
import { locatorsOf, serversOf } from './views.ts';

export function entryNewer(a: SiteEntry, b: SiteEntry): boolean {
  if (a.version[0] !== b.version[0]) return a.version[0] > b.version[0];
  return a.version[1] > b.version[1];
}

function sameContent(a: SiteEntry, b: SiteEntry): boolean {
  const key = (entry: SiteEntry) => JSON.stringify([
    entry.locators.map((address) => `${address.host}:${address.port}`).sort(),
    entry.receivers.map((address) => `${address.host}:${address.port}`).sort(),
    [...entry.edges].sort((x, y) => x - y),
    entry.dialOut === true,
    (entry.routedLocators ?? []).map((address) => address.host).sort(),
    (entry.routedReceivers ?? []).map((address) => address.host).sort(),
    (entry.senderHosts ?? []).map((host) => `${host.address.host}:${host.address.port}>${[...host.sites].sort((x, y) => x - y).join(',')}`).sort(),
  ]);
  return key(a) === key(b);
}

/** This site's own entry, derived from its view. */
export function ownEntry(view: View, versionMs: number, author: string): SiteEntry {
  const receivers = serversOf(view).flatMap((member) => (member.info.receiver && member.ready ? [member.info.receiver] : []));
  const edges = new Set<number>();
  for (const server of serversOf(view)) for (const sender of server.info.senders ?? []) edges.add(sender.remoteSite);
  // Where a dial-out site's receivers open their links: every server hosting a sender (any copy
  // may become primary), at its receiver's address when it has one (the address other sites
  // already reach), else at its own.
  const senderHosts = serversOf(view).flatMap((member) => {
    const sites = [...new Set((member.info.senders ?? []).map((sender) => sender.remoteSite))].sort((a, b) => a - b);
    return sites.length === 0 ? [] : [{ address: member.info.receiver ?? member.info.address, sites }];
  });
  const dialOut = serversOf(view).some((member) => member.info.dialOut === true);
  // Members registered with routers are also reachable through them, by site and name.
  const routedLocators = locatorsOf(view).filter((member) => member.info.routed === true).map((member) => routedAddress(view.site, member.info.name));
  const routedReceivers = serversOf(view)
    .filter((member) => member.info.routed === true && member.ready && (member.info.receiver !== undefined || member.info.dialOut === true))
    .map((member) => routedAddress(view.site, member.info.name));
  return {
    site: view.site,
    locators: locatorsOf(view).map((member) => member.info.address),
    receivers,
    edges: [...edges].sort((a, b) => a - b),
    version: [versionMs, author],
    ...(dialOut ? { dialOut } : {}),
    ...(routedLocators.length > 0 ? { routedLocators } : {}),
    ...(routedReceivers.length > 0 ? { routedReceivers } : {}),
    ...(senderHosts.length > 0 ? { senderHosts } : {}),
  };
}

export class WanCatalogue {
  readonly site: number;
  private readonly entries = new Map<number, SiteEntry>();
  private routingCache = new Map<number, { edges: Set<string>; visited: Set<number> }>();

  constructor(site: number) {
    this.site = site;
  }

  all(): SiteEntry[] {
    return [...this.entries.values()].sort((a, b) => a.site - b.site);
  }

  get(site: number): SiteEntry | undefined {
    return this.entries.get(site);
  }

  /** Sets this site's own entry; returns true when its content changed. */
  setOwn(entry: SiteEntry): boolean {
    const current = this.entries.get(this.site);
    if (current !== undefined && sameContent(current, entry)) return false;
    this.entries.set(this.site, entry);
    this.routingCache.clear();
    return true;
  }

  /** Merges entries learned from another locator; returns true when anything changed. */
  merge(entries: readonly SiteEntry[]): boolean {
    let changed = false;
    for (const entry of entries) {
      if (entry.site === this.site) continue; // only our own locators speak for our site
      const current = this.entries.get(entry.site);
      if (current === undefined || entryNewer(entry, current)) {
        if (current === undefined || !sameContent(current, entry)) changed = true;
        this.entries.set(entry.site, entry);
      }
    }
    if (changed) this.routingCache.clear();
    return changed;
  }

  /** Replaces everything with a catalogue fetched from a locator (servers do this). */
  replace(entries: readonly SiteEntry[]): void {
    this.entries.clear();
    for (const entry of entries) this.entries.set(entry.site, entry);
    this.routingCache.clear();
  }

  /**
   * True when `from` must forward an event that originated at `origin` to `to`: the edge
   * from → to is in the breadth-first tree rooted at `origin`. An event never goes back to its
   * origin. Every edge out of the origin is in its tree. When what we know of the graph does
   * not explain how the event reached us (a stale or partial catalogue), we forward anyway:
   * a duplicate is harmless, a lost event is not.
   */
  forwards(origin: number, from: number, to: number): boolean {
    if (to === origin || to === from) return false;
    if (from === origin) return true;
    let tree = this.routingCache.get(origin);
    if (tree === undefined) {
      tree = this.tree(origin);
      this.routingCache.set(origin, tree);
    }
    if (!tree.visited.has(from) || !tree.visited.has(to)) return true;
    return tree.edges.has(`${from}>${to}`);
  }

  private tree(origin: number): { edges: Set<string>; visited: Set<number> } {
    const edges = new Set<string>();
    const visited = new Set<number>([origin]);
    let frontier = [origin];
    while (frontier.length > 0) {
      const next: number[] = [];
      for (const site of frontier.sort((a, b) => a - b)) {
        const neighbours = [...(this.entries.get(site)?.edges ?? [])].sort((a, b) => a - b);
        for (const neighbour of neighbours) {
          if (visited.has(neighbour)) continue;
          visited.add(neighbour);
          edges.add(`${site}>${neighbour}`);
          next.push(neighbour);
        }
      }
      frontier = next;
    }
    return { edges, visited };
  }
}
