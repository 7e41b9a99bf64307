// Runs one member (locator or server) in this process until SIGTERM / SIGINT: the composition
// root of a member process. The member itself — the Node runtime, metrics, the admin HTTP API and
// the core state machine — is wired by embedded-member.ts (which `strait/member` also uses
// inside applications); this file adds what belongs to the process: the pid file, the logger,
// readiness in <dir>/member.json, a clean leave on a signal, exit 70 on a broken invariant.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { StraitError } from '../errors.ts';
import { EXIT_FAILURE, EXIT_FATAL, describeError, describeReadyMember, exitCodeFor } from './report.ts';
import type { MemberConfig } from '../config/member-config.ts';
import { createLogger, type NodeLogger } from '../runtime/node/logger.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { composeMember, type ComposedMember } from './embedded-member.ts';
import { warnIfHeapLimitNotApplied } from './heap-limit.ts';
import {
  DATA_DIRECTORY_NAME,
  pidFileHolder,
  pidFilePath,
  removePidIfOwned,
  writeMemberRecord,
  writePid,
  type ListeningMemberRecord,
  type MemberRecord,
} from './member-files.ts';

// The module loaders moved to embedded-member.ts with the rest of the member's composition.
export { loadConflictResolver, loadEventFilter } from './embedded-member.ts';

/** How long a clean leave may take before the process exits anyway. */
export const SHUTDOWN_TIMEOUT_MS = 15_000;

export interface RunOptions {
  /** Absolute member directory (pid file, member.json, data/). */
  readonly dir: string;
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
  const otherPid = pidFileHolder(pidFile);
  if (otherPid !== undefined) {
    throw new StraitError('STRAIT_ALREADY_RUNNING', { dir, pid: otherPid });
  }

  const logger: NodeLogger = createLogger({
    name: config.name,
    level: config.logLevel,
    pretty: (config.logFormat ?? 'pretty') === 'pretty',
  });

  warnIfHeapLimitNotApplied(config.maximumHeapMegabytes, logger);

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

  const failStart = (error: unknown): void => {
    logger.error({ code: describeError(error).code }, `${config.name} did not start: ${describeError(error).message}`);
    writeMemberRecord(dir, failed(error));
    exit(exitCodeFor(error));
  };

  // The member (embedded-member.ts) closes what it opened before it reports a failure.
  let running: ComposedMember;
  try {
    running = await composeMember(config, { storageDirectory: join(dir, DATA_DIRECTORY_NAME), logger });
  } catch (error) {
    failStart(error);
    return;
  }
  const { httpAddress } = running;

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
    void running.stop().then(() => {
      try {
        const status = running.admin.status();
        writeMemberRecord(dir, {
          role: config.role,
          name: config.name,
          pid: process.pid,
          site: status.info.site,
          address: status.info.address,
          httpAddress,
          ...(config.tls === undefined ? {} : { https: true }),
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
    });
  };
  running.onFatal((error) => {
    // The member already left the view; record why and exit non-zero for the supervisor.
    logger.error({ code: error.code }, `${config.name} stopped: ${error.message}`);
    stopping = true;
    writeMemberRecord(dir, failed(error));
    void running.close().then(() => exit(exitCodeFor(error)));
  });
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  running.start().then((ready) => {
    if (stopping) return;
    // A ready member knows its site (a server learns it from the locator) and advertised address.
    const record: ListeningMemberRecord = {
      role: config.role,
      name: config.name,
      pid: process.pid,
      site: ready.site,
      address: ready.address,
      httpAddress,
      ...(config.tls === undefined ? {} : { https: true }),
      state: 'ready',
      startedAt,
    };
    writeMemberRecord(dir, record);
    logger.info({ address: formatAddress(record.address), site: record.site, httpAddress: formatAddress(httpAddress) }, describeReadyMember(record));
  }, failStart);
}
