// A locator or server wired together from its validated configuration: the Node runtime, metrics,
// the admin HTTP API, the user's conflict-resolver and event-filter modules, locator discovery
// and the core state machine. It owns nothing of the process — no pid file, no member.json, no
// signal handlers, no exit — so the same composition runs under `strait run` (run.ts, which adds
// those) and inside an application's own Node service (`strait/member`, member-api.ts).
//
// Guarantees: composeMember either resolves to a member whose admin HTTP API listens, or closes
// everything it opened and rejects with the coded error (STRAIT_PORT_IN_USE, STRAIT_BIND_FAILED,
// STRAIT_CONFIG_INVALID for a module that can't be loaded); `start()` either resolves once the
// member is ready or closes everything and rejects; `stop()` leaves the site cleanly and then
// closes everything; `close()` closes without a leave. Each closes at most once.

import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { StraitError } from '../errors.ts';
import { createAdminServer } from '../admin/http.ts';
import { createMetrics } from '../admin/metrics.ts';
import type { LocatorMemberConfig, ServerMemberConfig } from '../config/member-config.ts';
import type { MemberAdmin } from '../core/member-admin.ts';
import { Locator } from '../core/locator.ts';
import { Server } from '../core/server.ts';
import type { ConflictResolver, GatewayEventFilter } from '../core/config.ts';
import { createNodeRuntime } from '../runtime/node/node-runtime.ts';
import { memberTls } from './member-tls.ts';
import type { NodeLogger } from '../runtime/node/logger.ts';
import { formatAddress, type Address } from '../runtime/runtime.ts';
import { createDiscovery, DISCOVERY_REFRESH_MS, findLocators, type LocatorDiscovery, type PublishedLocator } from './discovery.ts';
import { describeError } from './report.ts';

/** A locator looks this long for the site's other locators before it starts alone. */
const LOCATOR_DISCOVERY_WAIT_MS = 3000;

/** What the process embedding a member gives it. */
export interface MemberHost {
  /** The member's LMDB environment (persistent regions, a locator's site configuration); in memory when undefined. */
  readonly storageDirectory: string | undefined;
  readonly logger: NodeLogger;
  /** Abandons the start: composeMember rejects with STRAIT_ABORTED once discovery gives up looking. */
  readonly signal?: AbortSignal;
}

/** What a member knows once it is ready: a server learns its site from the locators. */
export interface ReadyMember {
  readonly site: number;
  /** The address it advertises: clients and other members reach it there. */
  readonly address: Address;
}

/** A member whose admin HTTP API listens and that has not joined its site yet. */
export interface ComposedMember {
  readonly admin: MemberAdmin;
  /** Where its admin HTTP API is reached: the advertised host, the port it bound. */
  readonly httpAddress: Address;
  /** Joins the site; resolves once the member is ready, or closes everything and rejects with why. */
  start(): Promise<ReadyMember>;
  /** Leaves the site cleanly, takes the locator out of discovery, then closes everything. */
  stop(): Promise<void>;
  /** Closes the admin HTTP API, discovery and the runtime without a leave (a member that stopped on its own). */
  close(): Promise<void>;
  /** Called once if the member stops on its own after it started (a server whose disk failed; never a locator). */
  onFatal(listener: (error: StraitError) => void): void;
}

/** Wraps the member's admin so the HTTP API can listen before the member exists. */
function lateAdmin(name: string, current: () => MemberAdmin | undefined): MemberAdmin {
  const admin = (): MemberAdmin => {
    const member = current();
    if (member === undefined) throw new StraitError('STRAIT_NOT_READY', { member: name, state: 'starting' });
    return member;
  };
  return {
    status: () => admin().status(),
    view: () => admin().view(),
    regions: () => admin().regions(),
    createRegion: (spec, callback) => withMember(callback, (member) => member.createRegion(spec, callback)),
    senders: () => admin().senders(),
    receiver: () => admin().receiver(),
    gatewayLinks: () => admin().gatewayLinks(),
    controlSender: (request, callback) => withMember(callback, (member) => member.controlSender(request, callback)),
    siteConfig: () => admin().siteConfig(),
    catalogue: () => current()?.catalogue() ?? [],
    siteSenders: (callback) => {
      const member = current();
      if (member === undefined) callback([]);
      else member.siteSenders(callback);
    },
    changeConfig: (change, callback) => withMember(callback, (member) => member.changeConfig(change, callback)),
  };

  /** Runs `action` on the member, or calls back with why there is none yet. */
  function withMember(callback: (error: StraitError, result: undefined) => void, action: (member: MemberAdmin) => void): void {
    let member: MemberAdmin;
    try {
      member = admin();
    } catch (error) {
      callback(error as StraitError, undefined);
      return;
    }
    action(member);
  }
}

function listenError(error: unknown, bind: Address): StraitError {
  const code = (error as { code?: string }).code;
  if (code === 'EADDRINUSE') return new StraitError('STRAIT_PORT_IN_USE', { address: `admin HTTP ${formatAddress(bind)}` }, { cause: error });
  return new StraitError('STRAIT_BIND_FAILED', { address: `admin HTTP ${formatAddress(bind)}`, reason: (error as Error).message }, { cause: error });
}

/**
 * Builds a locator or server from its configuration and opens its admin HTTP API; `start()`
 * joins the site. See the file comment for what it guarantees on failure.
 */
export async function composeMember(config: LocatorMemberConfig | ServerMemberConfig, host: MemberHost): Promise<ComposedMember> {
  const { logger } = host;
  const metrics = createMetrics(config.role, config.name, config.core.site);
  const tls = memberTls({ role: config.role, name: config.name, site: config.core.site, tls: config.tls }, logger, {
    refused: (code) => metrics.sink.securityRefusal(code),
    observeCertificate: (expiresAtMs) => metrics.observeCertificate(expiresAtMs),
  });
  const runtime = createNodeRuntime({ storageDirectory: host.storageDirectory, logger, ...(tls?.runtime ?? {}) });

  let member: Locator | Server | undefined;
  const admin = lateAdmin(config.name, () => member?.admin);
  // Gateway gauges read the member's senders and receiver at scrape time.
  metrics.observeGateways(admin);
  const app = createAdminServer({
    admin,
    metricsRegistry: metrics.registry,
    logger,
    token: config.adminToken,
    https: tls?.https(),
  });
  tls?.serveHttpsFrom(app.server);

  // Discovery (discovery.ts): more locators of the site than the static list names; a locator
  // publishes itself where discovery can be written, and keeps its entry fresh.
  let discovery: LocatorDiscovery | undefined;
  let published: PublishedLocator | undefined;
  let publishTimer: NodeJS.Timeout | undefined;
  let discoveryClosed = false;
  const closeDiscovery = async (unpublish: boolean): Promise<void> => {
    if (publishTimer !== undefined) clearInterval(publishTimer);
    if (discovery === undefined || discoveryClosed) return;
    discoveryClosed = true;
    if (unpublish && published !== undefined) await discovery.unpublish(published).catch(() => {});
    await discovery.close().catch(() => {});
  };
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      await closeDiscovery(false);
      tls?.stop();
      await app.close().catch(() => {});
      await new Promise<void>((resolve) => runtime.close(() => resolve()));
    })();
    return closed;
  };

  try {
    let httpAddress: Address;
    try {
      await app.listen({ host: config.httpBind.host, port: config.httpBind.port });
      const bound = app.server.address() as AddressInfo;
      httpAddress = { host: config.advertisedHost, port: bound.port };
    } catch (error) {
      throw listenError(error, config.httpBind);
    }
    const modules = await loadModules(config);
    let locators = config.core.locators;
    discovery = config.discovery === undefined ? undefined : createDiscovery(config.discovery);
    if (discovery !== undefined) {
      const found = await findLocators(discovery, config.core.site, runtime.log, { giveUpAfterMs: config.role === 'locator' ? LOCATOR_DISCOVERY_WAIT_MS : undefined, ...(host.signal === undefined ? {} : { signal: host.signal }) });
      if (host.signal?.aborted === true) throw new StraitError('STRAIT_ABORTED', { operation: `the start of ${config.role} ${config.name}` });
      const known = new Set(locators.map(formatAddress));
      locators = [...locators, ...found.filter((address) => !known.has(formatAddress(address)))];
    }
    const running = config.role === 'locator'
      ? new Locator(runtime, { ...config.core, locators, pid: process.pid, httpAddress }, metrics.sink)
      : new Server(runtime, { ...config.core, locators, pid: process.pid, httpAddress, ...modules }, metrics.sink);
    member = running;

    const publishTo = discovery;
    const publish = (): void => {
      if (publishTo === undefined || published === undefined) return;
      publishTo.publish(published).catch((error: unknown) => runtime.log.warn({ discovery: publishTo.description }, `${config.name}: could not publish itself to ${publishTo.description}: ${describeError(error).message}; retrying in ${DISCOVERY_REFRESH_MS} ms`));
    };
    publishTimer = publishTo === undefined ? undefined : setInterval(publish, DISCOVERY_REFRESH_MS);
    publishTimer?.unref();

    let stopRequested = false;
    let stopped: Promise<void> | undefined;
    return {
      admin: running.admin,
      httpAddress,
      start: () => new Promise<ReadyMember>((resolve, reject) => {
        running.start((result) => {
          if (!result.ok) {
            const error = result.error ?? new StraitError('STRAIT_START_FAILED', { member: config.name, reason: 'unknown' });
            void close().then(() => reject(error));
            return;
          }
          const { info } = running.admin.status();
          const ready = { site: info.site, address: info.address };
          if (stopRequested) {
            resolve(ready);
            return;
          }
          metrics.setSite(info.site);
          if (config.role === 'locator') {
            published = { site: info.site, name: config.name, address: info.address };
            publish();
          }
          resolve(ready);
        });
      }),
      stop: () => {
        stopRequested = true;
        stopped ??= new Promise<void>((resolve) => {
          running.stop(() => {
            void closeDiscovery(true).finally(() => close().then(resolve));
          });
        });
        return stopped;
      },
      close,
      onFatal: (listener) => {
        if (running instanceof Server) running.onFatal(listener);
      },
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The server's conflict-resolver and gateway-event-filters modules; a locator has none. */
async function loadModules(config: LocatorMemberConfig | ServerMemberConfig): Promise<{ conflictResolver: ConflictResolver | undefined; eventFilters: Map<string, GatewayEventFilter> }> {
  const eventFilters = new Map<string, GatewayEventFilter>();
  if (config.role !== 'server') return { conflictResolver: undefined, eventFilters };
  const source = config.configFile ?? 'command line';
  let conflictResolver: ConflictResolver | undefined;
  if (config.conflictResolverModule !== undefined) {
    try {
      conflictResolver = await loadConflictResolver(config.conflictResolverModule);
    } catch (error) {
      throw error instanceof StraitError ? error : new StraitError('STRAIT_CONFIG_INVALID', { source, key: 'conflict-resolver', reason: `${config.conflictResolverModule} could not be loaded: ${error instanceof Error ? error.message : String(error)}` }, { cause: error });
    }
  }
  // gateway-event-filters: every module the senders name, loaded once by its path.
  for (const sender of config.core.gatewaySenders) {
    for (const path of sender.eventFilters ?? []) {
      if (eventFilters.has(path)) continue;
      try {
        eventFilters.set(path, await loadEventFilter(path, sender.id));
      } catch (error) {
        throw error instanceof StraitError ? error : new StraitError('STRAIT_CONFIG_INVALID', { source, key: `gateway-senders.${sender.id}.gateway-event-filters`, reason: `${path} could not be loaded: ${error instanceof Error ? error.message : String(error)}` }, { cause: error });
      }
    }
  }
  return { conflictResolver, eventFilters };
}

/**
 * A `gateway-event-filters` module: its default export (or the module itself) with at least
 * one of beforeEnqueue, beforeTransmit, afterAcknowledgement as functions.
 */
export async function loadEventFilter(path: string, senderId: string): Promise<GatewayEventFilter> {
  const module = (await import(pathToFileURL(path).href)) as Record<string, unknown> & { default?: unknown };
  const candidate = (typeof module.default === 'object' && module.default !== null ? module.default : module) as Record<string, unknown>;
  const hooks = ['beforeEnqueue', 'beforeTransmit', 'afterAcknowledgement'] as const;
  const wrong = hooks.filter((hook) => candidate[hook] !== undefined && typeof candidate[hook] !== 'function');
  if (wrong.length > 0 || !hooks.some((hook) => typeof candidate[hook] === 'function')) {
    throw new StraitError('STRAIT_CONFIG_INVALID', { source: path, key: `gateway-senders.${senderId}.gateway-event-filters`, reason: wrong.length > 0 ? `${wrong.join(', ')} must be functions` : 'the module exports none of beforeEnqueue, beforeTransmit, afterAcknowledgement (export default { beforeEnqueue(event) { return true; } })' });
  }
  return candidate as GatewayEventFilter;
}

/**
 * Loads a conflict resolver: a module whose default export (or export `resolve`) is
 * `(key, existing, incoming) => 'existing' | 'incoming'`. Node runs TypeScript modules as-is.
 */
export async function loadConflictResolver(path: string): Promise<ConflictResolver> {
  const module = (await import(pathToFileURL(path).href)) as { default?: unknown; resolve?: unknown };
  const resolver = typeof module.default === 'function' ? module.default : module.resolve;
  if (typeof resolver !== 'function') {
    throw new StraitError('STRAIT_CONFIG_INVALID', { source: path, key: 'conflict-resolver', reason: "the module exports no function (export default (key, existing, incoming) => 'existing' | 'incoming')" });
  }
  return resolver as ConflictResolver;
}
