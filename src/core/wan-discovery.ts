// A locator's side of WAN discovery: it keeps this site's catalogue of every site (locators,
// gateway receivers, the sites its senders ship to), exchanges it with the other sites'
// locators, and serves it to this site's servers.
//
// Every WAN_EXCHANGE_INTERVAL_MS, and 50 ms after any change, the locator sends its whole
// catalogue to its `remote-locators` and to every locator of every site it knows, and merges the
// answer — so knowledge spreads transitively and changes are pushed. Failed exchanges are kept
// with the address and the OS error, for the servers' sender status.
//
// A dial-out site (its entry says `dialOut`) accepts no connections: we never dial its locators
// from what the catalogue says; its locators dial ours, and we send our exchanges back over the
// connections they opened (one connection carries both directions).
//
// A state machine: callbacks run to completion; time and I/O come through the Runtime.

import { StraitError } from '../errors.ts';
import type { ConnectionHandler, ConnectionOptions } from '../protocol/connection.ts';
import type { Connection } from '../protocol/connection.ts';
import type { RequestBody, ResponseBody, View } from '../protocol/messages.ts';
import type { Address, Logger, Runtime, Timer } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { WAN_EXCHANGE_INTERVAL_MS } from './config.ts';
import { addressKey, PeerPool } from './peer-pool.ts';
import { ownEntry, WanCatalogue } from './wan-catalogue.ts';

/** A change is pushed to the other sites this soon (bursts of changes coalesce). */
const EXCHANGE_SOON_MS = 50;
/** A failing exchange is logged again at most this often. */
const EXCHANGE_FAILURE_LOG_INTERVAL_MS = 30_000;
/** Dial-out sites' locator connections kept to answer over, at most. */
const DIAL_OUT_PEERS_MAX = 1024;
/** Cross-site requests wait at most this long. */
const EXCHANGE_TIMEOUT_MS = 5000;

/** What discovery needs from the locator it runs in. */
export interface DiscoveryHost {
  readonly name: string;
  readonly site: number;
  readonly remoteLocators: readonly Address[];
  /** True when this locator is registered with routers: it can reach `router:` addresses. */
  readonly routed: boolean;
  /** Other sites' locators the routers hold (`router:` addresses). */
  routedLocators(): readonly Address[];
  /** This locator's member id, once it has one. */
  memberId(): string | undefined;
  /** The site's view as this locator holds it (null while it has none). */
  view(): View | null;
  /** True while the locator is a ready member of the site. */
  ready(): boolean;
}

export class WanDiscovery {
  private readonly runtime: Runtime;
  private readonly host: DiscoveryHost;
  private readonly log: Logger;
  /** What this site knows of every site. */
  private readonly catalogue: WanCatalogue;
  /** Connections to other sites' locators, speaking as a gateway peer. */
  private readonly pool: PeerPool;
  private readonly failures = new Map<string, { address: Address; error: string; loggedAtMs: number }>();
  /** Connections dial-out sites' locators opened to us, with their site: our way back to them. */
  private readonly dialOutPeers = new Map<Connection, number>();
  private lastExchangeMs = -Infinity;
  private exchangeSoon: Timer | undefined;
  private stopped = false;

  constructor(runtime: Runtime, host: DiscoveryHost, options: ConnectionOptions, handler: ConnectionHandler, log: Logger) {
    this.runtime = runtime;
    this.host = host;
    this.log = log;
    this.catalogue = new WanCatalogue(host.site);
    this.pool = new PeerPool(runtime, {
      ...options,
      local: { role: 'gateway', name: host.name, site: host.site },
      requestTimeoutMs: Math.min(options.requestTimeoutMs, EXCHANGE_TIMEOUT_MS),
    }, handler);
  }

  stop(): void {
    this.stopped = true;
    this.pool.closeAll();
    this.dialOutPeers.clear();
    this.exchangeSoon?.cancel();
  }

  /** Called on the locator's tick. */
  tick(): void {
    if (this.runtime.clock.monotonic() - this.lastExchangeMs >= WAN_EXCHANGE_INTERVAL_MS) this.exchange();
  }

  /** The site's view changed: our own entry (locators, receivers, edges) may have too. */
  viewInstalled(view: View): void {
    const id = this.host.memberId();
    if (id === undefined) return;
    if (this.catalogue.setOwn(ownEntry(view, this.runtime.clock.now(), id))) this.scheduleExchange();
  }

  /** Another site's locator sends its catalogue; we merge it and answer with ours. */
  onExchange(connection: Connection, body: RequestBody<'wanExchange'>): ResponseBody<'wanExchange'> {
    if (body.from === this.host.site) throw new StraitError('STRAIT_SITE_MISMATCH', { peer: connection.label, peerSite: body.from, site: `${this.host.site} (a remote locator with our own site id)` });
    if (this.catalogue.merge(body.catalogue)) this.catalogueChanged();
    const senderEntry = body.catalogue.find((entry) => entry.site === body.from);
    if (senderEntry?.dialOut === true && connection.state === 'open' && !this.dialOutPeers.has(connection)) {
      if (this.dialOutPeers.size < DIAL_OUT_PEERS_MAX) this.dialOutPeers.set(connection, body.from);
    }
    this.updateOwnEntryQuietly();
    return { catalogue: this.catalogue.all() };
  }

  /** An accepted connection closed: forget it if it was a dial-out site's locator. */
  connectionClosed(connection: Connection): void {
    this.dialOutPeers.delete(connection);
  }

  /** A server of this site asks for the catalogue (routing, sender targets, sender status). */
  onCatalogue(): ResponseBody<'catalogue'> {
    this.updateOwnEntryQuietly();
    return { catalogue: this.catalogue.all(), failures: [...this.failures.values()].map(({ address, error }) => ({ address, error })) };
  }

  /** Exchanges soon (coalescing bursts of changes), rather than at the next interval. */
  private scheduleExchange(): void {
    if (this.exchangeSoon !== undefined || this.stopped) return;
    this.exchangeSoon = this.runtime.setTimer(EXCHANGE_SOON_MS, () => {
      this.exchangeSoon = undefined;
      this.exchange();
    });
  }

  /**
   * The locators of other sites: configured remote locators, every one the catalogue knows, and
   * with routers every one registered on them. A site reachable through the routers (and us
   * with routers) is reached only that way: its own addresses may well be private.
   */
  private remoteLocatorTargets(): Address[] {
    const targets = new Map<string, Address>();
    for (const address of this.host.remoteLocators) targets.set(addressKey(address), address);
    if (this.host.routed) for (const address of this.host.routedLocators()) targets.set(addressKey(address), address);
    for (const entry of this.catalogue.all()) {
      if (entry.site === this.host.site) continue;
      const routed = this.host.routed ? entry.routedLocators ?? [] : [];
      if (routed.length > 0) {
        for (const address of routed) targets.set(addressKey(address), address);
        continue;
      }
      if (entry.dialOut === true) continue;
      for (const address of entry.locators) targets.set(addressKey(address), address);
    }
    return [...targets.values()];
  }

  private exchange(): void {
    if (!this.host.ready() || this.host.view() === null) return;
    this.lastExchangeMs = this.runtime.clock.monotonic();
    this.updateOwnEntryQuietly();
    const targets = this.remoteLocatorTargets();
    // A failure of a locator we no longer dial (its site turned out to dial out) is not news.
    const targetKeys = new Set(targets.map(addressKey));
    for (const key of [...this.failures.keys()]) if (!targetKeys.has(key)) this.failures.delete(key);
    for (const address of targets) {
      const key = addressKey(address);
      this.pool.get(address).request('wanExchange', { from: this.host.site, catalogue: this.catalogue.all() }, (error, response) => {
        if (error !== undefined || response === undefined) {
          this.exchangeFailed(key, address, error);
          return;
        }
        if (this.failures.delete(key)) this.log.info({ remoteLocator: formatAddress(address) }, `locator ${this.host.name}: WAN exchange with ${formatAddress(address)} works again`);
        if (this.catalogue.merge(response.catalogue)) this.catalogueChanged();
      });
    }
    // Dial-out sites: back over the connections their locators opened (they redial if it broke).
    for (const [connection, site] of this.dialOutPeers) {
      if (connection.state !== 'open') {
        this.dialOutPeers.delete(connection);
        continue;
      }
      connection.request('wanExchange', { from: this.host.site, catalogue: this.catalogue.all() }, (error, response) => {
        if (error !== undefined || response === undefined) {
          this.log.debug({ code: error?.code, site }, `locator ${this.host.name}: WAN exchange back to dial-out site ${site} over ${connection.label} failed: ${error?.message ?? 'no response'}`);
          return;
        }
        if (this.catalogue.merge(response.catalogue)) this.catalogueChanged();
      });
    }
  }

  private exchangeFailed(key: string, address: Address, error: StraitError | undefined): void {
    const message = error?.cause instanceof Error ? `${error.message} (${error.cause.message})` : error?.message ?? 'no response';
    const previous = this.failures.get(key);
    const now = this.runtime.clock.monotonic();
    const loggedRecently = previous !== undefined && now - previous.loggedAtMs <= EXCHANGE_FAILURE_LOG_INTERVAL_MS;
    if (!loggedRecently) {
      this.log.warn({ code: error?.code, remoteLocator: formatAddress(address) }, `locator ${this.host.name} (site ${this.host.site}): WAN exchange with remote locator ${formatAddress(address)} failed: ${message}; retrying every ${WAN_EXCHANGE_INTERVAL_MS} ms`);
    }
    this.failures.set(key, { address, error: message, loggedAtMs: loggedRecently ? previous.loggedAtMs : now });
  }

  private updateOwnEntryQuietly(): void {
    const view = this.host.view();
    const id = this.host.memberId();
    if (view !== null && id !== undefined) this.catalogue.setOwn(ownEntry(view, this.runtime.clock.now(), id));
  }

  private catalogueChanged(): void {
    this.log.info({ sites: this.catalogue.all().map((entry) => entry.site) }, `locator ${this.host.name}: WAN catalogue now knows sites ${this.catalogue.all().map((entry) => `${entry.site} (${entry.receivers.length} receivers)`).join(', ')}`);
    // Pass what we learned on to the other sites we know (transitive discovery).
    this.scheduleExchange();
  }
}
