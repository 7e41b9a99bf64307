// Runs a router (src/core/router.ts) in this process until SIGTERM / SIGINT: the composition
// root of `strait run router`. Like a member it keeps <dir>/router.pid and reports readiness in
// <dir>/member.json; it has no admin HTTP API and no data on disk — `strait list routers` asks
// the router itself, over its port, with the mesh's secret.

import { mkdirSync } from 'node:fs';
import { StraitError } from '../errors.ts';
import type { RouterMemberConfig } from '../config/member-config.ts';
import { Router } from '../core/router.ts';
import { createNodeRuntime } from '../runtime/node/node-runtime.ts';
import { createLogger } from '../runtime/node/logger.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { EXIT_FAILURE, describeError, exitCodeFor } from './report.ts';
import { isStraitProcessAlive, pidFilePath, readPid, removePidIfOwned, writeMemberRecord, writePid } from './member-files.ts';
import { SHUTDOWN_TIMEOUT_MS, type RunOptions } from './run.ts';

export async function runRouter(config: RouterMemberConfig, options: RunOptions): Promise<void> {
  const { dir } = options;
  const startedAt = new Date().toISOString();
  const pidFile = pidFilePath(dir, 'router');
  mkdirSync(dir, { recursive: true });
  const otherPid = readPid(pidFile);
  if (otherPid !== undefined && otherPid !== process.pid && isStraitProcessAlive(otherPid)) {
    throw new StraitError('STRAIT_ALREADY_RUNNING', { dir, pid: otherPid });
  }
  const logger = createLogger({ name: config.name, level: config.logLevel, pretty: (config.logFormat ?? 'pretty') === 'pretty' });
  const exit = (status: number): void => {
    removePidIfOwned(pidFile, process.pid);
    logger.flush(() => process.exit(status));
  };
  writePid(pidFile, process.pid);
  const runtime = createNodeRuntime({ storageDirectory: undefined, logger });
  const router = new Router(runtime, config.core);
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) {
      exit(EXIT_FAILURE);
      return;
    }
    stopping = true;
    logger.info({ signal }, `router ${config.name}: ${signal} received, stopping`);
    const forced = setTimeout(() => exit(EXIT_FAILURE), SHUTDOWN_TIMEOUT_MS);
    forced.unref();
    router.stop(() => runtime.close(() => {
      const address = router.address ?? config.core.bind;
      writeMemberRecord(dir, { role: 'router', name: config.name, pid: process.pid, site: 0, address, httpAddress: address, state: 'stopped', startedAt });
      clearTimeout(forced);
      exit(0);
    }));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  router.start((result) => {
    if (!result.ok || router.address === undefined) {
      const error = result.error ?? new StraitError('STRAIT_START_FAILED', { member: config.name, reason: 'unknown' });
      logger.error({ code: describeError(error).code }, `router ${config.name} did not start: ${describeError(error).message}`);
      writeMemberRecord(dir, { role: 'router', name: config.name, pid: process.pid, state: 'failed', error: describeError(error), startedAt });
      runtime.close(() => exit(exitCodeFor(error)));
      return;
    }
    const address = router.address;
    writeMemberRecord(dir, { role: 'router', name: config.name, pid: process.pid, site: 0, address, httpAddress: address, state: 'ready', startedAt });
    logger.info({ address: formatAddress(address) }, `router ${config.name} ready at ${formatAddress(address)}`);
  });
}
