// Runs one member (locator or server) in this process until SIGTERM / SIGINT: the composition
// root of a real member. It wires the Node runtime, the logger, metrics, the admin HTTP API and
// the core state machine together, reports readiness in <dir>/member.json, and owns the
// process lifecycle: a clean leave on a signal, exit 70 on a broken invariant.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { StraitError } from '../errors.ts';
import { EXIT_FAILURE, EXIT_FATAL, describeError, describeReadyMember, exitCodeFor } from './report.ts';
import { createAdminServer } from '../admin/http.ts';
import { createMetrics } from '../admin/metrics.ts';
import type { MemberConfig } from '../config/member-config.ts';
import type { MemberAdmin, MemberStartResult, MetricsSink } from '../core/member-admin.ts';
import { Locator } from '../core/locator.ts';
import { Server } from '../core/server.ts';
import type { ConflictResolver, GatewayEventFilter } from '../core/config.ts';
import { pathToFileURL } from 'node:url';
import { createNodeRuntime } from '../runtime/node/node-runtime.ts';
import { createDiscovery, DISCOVERY_REFRESH_MS, findLocators, type PublishedLocator } from './discovery.ts';
import { createLogger, type NodeLogger } from '../runtime/node/logger.ts';
import { formatAddress, type Address } from '../runtime/runtime.ts';
import {
  DATA_DIRECTORY_NAME,
  isStraitProcessAlive,
  pidFilePath,
  readPid,
  removePidIfOwned,
  writeMemberRecord,
  writePid,
  type ListeningMemberRecord,
  type MemberRecord,
} from './member-files.ts';

/** A locator looks this long for the site's other locators before it starts alone. */
const LOCATOR_DISCOVERY_WAIT_MS = 3000;

/** How long a clean leave may take before the process exits anyway. */
export const SHUTDOWN_TIMEOUT_MS = 15_000;

export interface RunOptions {
  /** Absolute member directory (pid file, member.json, data/). */
  readonly dir: string;
}

interface Member {
  start(callback: (result: MemberStartResult) => void): void;
  stop(callback: () => void): void;
  readonly admin: MemberAdmin;
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
 * Runs the member until it is told to stop. Throws STRAIT_ALREADY_RUNNING when another member
 * runs in `dir`; otherwise never returns normally: the process exits 0 after a
 * clean leave, 1 (2 for a configuration error) when it could not start, 70 on a fatal error.
 */
export async function runMember(config: MemberConfig, options: RunOptions): Promise<void> {
  if (config.role === 'router') {
    const { runRouter } = await import('./run-router.ts');
    await runRouter(config, options);
    return;
  }
  if (config.role === 'controller') {
    const { runController } = await import('./run-controller.ts');
    await runController(config, options);
    return;
  }
  const { dir } = options;
  const startedAt = new Date().toISOString();
  const pidFile = pidFilePath(dir, config.role);
  mkdirSync(dir, { recursive: true });
  // The other member owns member.json and the pid file: leave both alone.
  const otherPid = readPid(pidFile);
  if (otherPid !== undefined && otherPid !== process.pid && isStraitProcessAlive(otherPid)) {
    throw new StraitError('STRAIT_ALREADY_RUNNING', { dir, pid: otherPid });
  }

  const logger: NodeLogger = createLogger({
    name: config.name,
    level: config.logLevel,
    pretty: (config.logFormat ?? 'pretty') === 'pretty',
  });

  const failed = (error: unknown): MemberRecord => ({
    role: config.role,
    name: config.name,
    pid: process.pid,
    state: 'failed',
    error: describeError(error),
    startedAt,
  });

  const exit = (status: number): void => {
    removePidIfOwned(pidFile, process.pid);
    logger.flush(() => process.exit(status));
  };

  // A member whose invariants broke must stop rather than keep replicating.
  let fatal = false;
  const onFatal = (error: unknown): void => {
    if (fatal) return;
    fatal = true;
    logger.error({ err: error, fatal: true }, `${config.name} stops: ${describeError(error).message}; its state can't be trusted, restart it`);
    try {
      writeMemberRecord(dir, failed(error));
    } catch {
      // Best effort: the log already says why.
    }
    exit(EXIT_FATAL);
  };
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);

  writePid(pidFile, process.pid);

  const metrics = createMetrics(config.role, config.name, config.core.site);
  const runtime = createNodeRuntime({
    storageDirectory: join(dir, DATA_DIRECTORY_NAME),
    logger,
  });

  let member: Member | undefined;
  const admin = lateAdmin(config.name, () => member?.admin);
  // Gateway gauges read the member's senders and receiver at scrape time.
  metrics.observeGateways(admin);
  const app = createAdminServer({
    admin,
    metricsRegistry: metrics.registry,
    logger,
    token: config.adminToken,
  });

  const closeAll = (callback: () => void): void => {
    app.close().then(
      () => runtime.close(() => callback()),
      () => runtime.close(() => callback()),
    );
  };

  const failStart = (error: unknown): void => {
    logger.error({ code: describeError(error).code }, `${config.name} did not start: ${describeError(error).message}`);
    writeMemberRecord(dir, failed(error));
    closeAll(() => exit(exitCodeFor(error)));
  };

  let httpAddress: Address;
  try {
    await app.listen({ host: config.httpBind.host, port: config.httpBind.port });
    const bound = app.server.address() as AddressInfo;
    httpAddress = { host: config.advertisedHost, port: bound.port };
  } catch (error) {
    failStart(listenError(error, config.httpBind));
    return;
  }

  const sink: MetricsSink = metrics.sink;
  let conflictResolver: ConflictResolver | undefined;
  if (config.role === 'server' && config.conflictResolverModule !== undefined) {
    try {
      conflictResolver = await loadConflictResolver(config.conflictResolverModule);
    } catch (error) {
      failStart(error instanceof StraitError ? error : new StraitError('STRAIT_CONFIG_INVALID', { source: config.configFile ?? 'command line', key: 'conflict-resolver', reason: `${config.conflictResolverModule} could not be loaded: ${error instanceof Error ? error.message : String(error)}` }, { cause: error }));
      return;
    }
  }
  // gateway-event-filters: every module the senders name, loaded once by its path.
  const eventFilters = new Map<string, GatewayEventFilter>();
  if (config.role === 'server') {
    for (const sender of config.core.gatewaySenders) {
      for (const path of sender.eventFilters ?? []) {
        if (eventFilters.has(path)) continue;
        try {
          eventFilters.set(path, await loadEventFilter(path, sender.id));
        } catch (error) {
          failStart(error instanceof StraitError ? error : new StraitError('STRAIT_CONFIG_INVALID', { source: config.configFile ?? 'command line', key: `gateway-senders.${sender.id}.gateway-event-filters`, reason: `${path} could not be loaded: ${error instanceof Error ? error.message : String(error)}` }, { cause: error }));
          return;
        }
      }
    }
  }
  // Discovery (discovery.ts): more locators of the site than the static list names.
  let locators = config.core.locators;
  const discovery = config.discovery === undefined ? undefined : createDiscovery(config.discovery);
  if (discovery !== undefined) {
    const found = await findLocators(discovery, config.core.site, runtime.log, { giveUpAfterMs: config.role === 'locator' ? LOCATOR_DISCOVERY_WAIT_MS : undefined });
    const known = new Set(locators.map(formatAddress));
    locators = [...locators, ...found.filter((address) => !known.has(formatAddress(address)))];
  }
  member =
    config.role === 'locator'
      ? new Locator(runtime, { ...config.core, locators, pid: process.pid, httpAddress }, sink)
      : new Server(runtime, { ...config.core, locators, pid: process.pid, httpAddress, conflictResolver, eventFilters }, sink);
  // A locator publishes itself where discovery can be written, and keeps its entry fresh.
  let published: PublishedLocator | undefined;
  const publish = (): void => {
    if (discovery === undefined || published === undefined) return;
    discovery.publish(published).catch((error: unknown) => runtime.log.warn({ discovery: discovery.description }, `${config.name}: could not publish itself to ${discovery.description}: ${describeError(error).message}; retrying in ${DISCOVERY_REFRESH_MS} ms`));
  };
  const publishTimer = discovery === undefined ? undefined : setInterval(publish, DISCOVERY_REFRESH_MS);
  publishTimer?.unref();
  const unpublish = async (): Promise<void> => {
    if (publishTimer !== undefined) clearInterval(publishTimer);
    if (discovery === undefined) return;
    if (published !== undefined) await discovery.unpublish(published).catch(() => {});
    await discovery.close().catch(() => {});
  };
  const running = member;

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, `${config.name}: second ${signal}, exiting without a clean leave`);
      exit(EXIT_FAILURE);
      return;
    }
    stopping = true;
    logger.info({ signal }, `${config.name}: ${signal} received, leaving the site`);
    const forced = setTimeout(() => {
      logger.warn({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, `${config.name}: clean leave took longer than ${SHUTDOWN_TIMEOUT_MS} ms; exiting anyway`);
      exit(EXIT_FAILURE);
    }, SHUTDOWN_TIMEOUT_MS);
    forced.unref();
    running.stop(() => {
      void unpublish().finally(() => closeAll(() => {
        try {
          const status = running.admin.status();
          writeMemberRecord(dir, {
            role: config.role,
            name: config.name,
            pid: process.pid,
            site: status.info.site,
            address: status.info.address,
            httpAddress,
            state: 'stopped',
            startedAt,
          });
        } catch {
          // Never joined (no status to record), or the directory is gone (a test cleaning up):
          // the pid file alone decides whether the member runs.
        }
        logger.info({}, `${config.name} stopped`);
        clearTimeout(forced);
        exit(0);
      }));
    });
  };
  if (running instanceof Server) {
    running.onFatal((error) => {
      // The member already left the view; record why and exit non-zero for the supervisor.
      logger.error({ code: error.code }, `${config.name} stopped: ${error.message}`);
      stopping = true;
      writeMemberRecord(dir, failed(error));
      closeAll(() => exit(exitCodeFor(error)));
    });
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  running.start((result) => {
    if (!result.ok) {
      failStart(result.error ?? new StraitError('STRAIT_START_FAILED', { member: config.name, reason: 'unknown' }));
      return;
    }
    if (stopping) return;
    // A ready member knows its site (a server learns it from the locator) and advertised address.
    const { info } = running.admin.status();
    metrics.setSite(info.site);
    const record: ListeningMemberRecord = {
      role: config.role,
      name: config.name,
      pid: process.pid,
      site: info.site,
      address: info.address,
      httpAddress,
      state: 'ready',
      startedAt,
    };
    writeMemberRecord(dir, record);
    logger.info({ address: formatAddress(record.address), site: record.site, httpAddress: formatAddress(httpAddress) }, describeReadyMember(record));
    if (config.role === 'locator') {
      published = { site: info.site, name: config.name, address: info.address };
      publish();
    }
  });
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
