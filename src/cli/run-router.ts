// Runs a router (src/core/router.ts) in this process until SIGTERM / SIGINT: the composition
// root of `strait run router`. Like a member it keeps <dir>/router.pid and reports readiness in
// <dir>/member.json; it has no admin HTTP API and no data on disk — `strait list routers` asks
// the router itself, over its port, with the mesh's secret.

import { StraitError } from '../errors.ts';
import type { RouterMemberConfig } from '../config/member-config.ts';
import { Router } from '../core/router.ts';
import { createNodeRuntime } from '../runtime/node/node-runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { writeMemberRecord } from './member-files.ts';
import { claimProcess } from './process-claim.ts';
import type { RunOptions } from './run.ts';
import { memberTls, type MemberTls } from './member-tls.ts';

export async function runRouter(config: RouterMemberConfig, options: RunOptions): Promise<void> {
  const { dir } = options;
  const claimed = claimProcess(dir, 'router', config);
  const { logger, startedAt } = claimed;
  let tls: MemberTls | undefined;
  try {
    tls = memberTls({ role: 'router', name: config.name, site: undefined, tls: config.tls }, logger);
  } catch (error) {
    claimed.failStart(error);
    return;
  }
  const runtime = createNodeRuntime({ storageDirectory: undefined, logger, ...(tls?.runtime ?? {}) });
  const router = new Router(runtime, config.core);
  claimed.stopOnSignals(`router ${config.name}`, (stopped) => router.stop(() => runtime.close(() => {
    const address = router.address ?? config.core.bind;
    writeMemberRecord(dir, { role: 'router', name: config.name, pid: process.pid, site: 0, address, httpAddress: address, state: 'stopped', startedAt });
    stopped();
  })));
  router.start((result) => {
    if (!result.ok || router.address === undefined) {
      const error = result.error ?? new StraitError('STRAIT_START_FAILED', { member: config.name, reason: 'unknown' });
      claimed.failStart(error, (done) => runtime.close(done));
      return;
    }
    const address = router.address;
    writeMemberRecord(dir, { role: 'router', name: config.name, pid: process.pid, site: 0, address, httpAddress: address, state: 'ready', startedAt });
    logger.info({ address: formatAddress(address) }, `router ${config.name} ready at ${formatAddress(address)}`);
  });
}
