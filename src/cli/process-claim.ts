// The start of a relay or control-plane process (`strait run router|controller`): its directory,
// its pid file (refusing a second live process there), its logger, and an exit that removes the
// pid file and flushes the log first.

import { mkdirSync } from 'node:fs';
import { StraitError } from '../errors.ts';
import type { LogFormat, LogLevel, MemberRole } from '../config/member-config.ts';
import { createLogger } from '../runtime/node/logger.ts';
import { warnIfHeapLimitNotApplied } from './heap-limit.ts';
import { pidFileHolder, pidFilePath, removePidIfOwned, writeMemberRecord, writePid } from './member-files.ts';
import { EXIT_FAILURE, describeError, exitCodeFor } from './report.ts';
import { SHUTDOWN_TIMEOUT_MS } from './run.ts';

export interface ClaimedProcess {
  readonly logger: ReturnType<typeof createLogger>;
  readonly startedAt: string;
  exit(status: number): void;
  /**
   * The process did not start: logs why, records it in member.json as failed, then — after
   * `release` (closing what it opened) calls back — exits with the error's code.
   */
  failStart(error: unknown, release?: (done: () => void) => void): void;
  /**
   * On SIGTERM or SIGINT: `stop`, then exit 0 once it calls back — or exit 1 after
   * SHUTDOWN_TIMEOUT_MS, or at a second signal.
   */
  stopOnSignals(what: string, stop: (stopped: () => void) => void): void;
}

/** Throws STRAIT_ALREADY_RUNNING when a live Strait process holds `dir`'s pid file for `role`. */
export function claimProcess(dir: string, role: MemberRole, config: { readonly name: string; readonly logLevel: LogLevel; readonly logFormat: LogFormat | undefined; readonly maximumHeapMegabytes: number | undefined }): ClaimedProcess {
  const startedAt = new Date().toISOString();
  const pidFile = pidFilePath(dir, role);
  mkdirSync(dir, { recursive: true });
  const otherPid = pidFileHolder(pidFile);
  if (otherPid !== undefined) {
    throw new StraitError('STRAIT_ALREADY_RUNNING', { dir, pid: otherPid });
  }
  const logger = createLogger({ name: config.name, level: config.logLevel, pretty: (config.logFormat ?? 'pretty') === 'pretty' });
  warnIfHeapLimitNotApplied(config.maximumHeapMegabytes, logger);
  writePid(pidFile, process.pid);
  const exit = (status: number): void => {
    removePidIfOwned(pidFile, process.pid);
    logger.flush(() => process.exit(status));
  };
  return {
    logger,
    startedAt,
    exit,
    failStart(error, release = (done) => done()) {
      const { code, message } = describeError(error);
      logger.error({ code }, `${role} ${config.name} did not start: ${message}`);
      writeMemberRecord(dir, { role, name: config.name, pid: process.pid, state: 'failed', error: describeError(error), startedAt });
      release(() => exit(exitCodeFor(error)));
    },
    stopOnSignals(what, stop) {
      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) {
          exit(EXIT_FAILURE);
          return;
        }
        stopping = true;
        logger.info({ signal }, `${what}: ${signal} received, stopping`);
        const forced = setTimeout(() => exit(EXIT_FAILURE), SHUTDOWN_TIMEOUT_MS);
        forced.unref();
        stop(() => {
          clearTimeout(forced);
          exit(0);
        });
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
    },
  };
}
