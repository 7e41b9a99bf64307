// Runs the controller (src/controller/controller.ts) in this process until SIGTERM / SIGINT: the
// composition root of `strait run controller`. Its REST API and dashboard listen on `--port`;
// its topologies and the journal of operations under way live in LMDB under <dir>/data, so a
// restarted controller knows its topologies and undoes what an interrupted operation started.
// Like a member it keeps <dir>/controller.pid and reports readiness in <dir>/member.json.

import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { StraitError } from '../errors.ts';
import type { ControllerMemberConfig } from '../config/member-config.ts';
import { Controller } from '../controller/controller.ts';
import { createControllerServer } from '../admin/controller-http.ts';
import { siteHttpClient } from '../admin/site-http-client.ts';
import { createNodeRuntime } from '../runtime/node/node-runtime.ts';
import { DATA_DIRECTORY_NAME, writeMemberRecord } from './member-files.ts';
import { claimProcess } from './process-claim.ts';
import type { RunOptions } from './run.ts';
import { memberTls, type MemberTls } from './member-tls.ts';

export async function runController(config: ControllerMemberConfig, options: RunOptions): Promise<void> {
  const { dir } = options;
  const claimed = claimProcess(dir, 'controller', config);
  const { logger, startedAt } = claimed;
  let tls: MemberTls | undefined;
  try {
    tls = memberTls({ role: 'controller', name: config.name, site: undefined, tls: config.tls }, logger);
  } catch (error) {
    claimed.failStart(error);
    return;
  }
  const runtime = createNodeRuntime({ storageDirectory: join(dir, DATA_DIRECTORY_NAME), logger });
  let address = config.bind;
  const record = (state: 'ready' | 'stopped') =>
    writeMemberRecord(dir, { role: 'controller', name: config.name, pid: process.pid, site: 0, address, httpAddress: address, ...(tls === undefined ? {} : { https: true }), state, startedAt });
  const fail = (error: unknown) => claimed.failStart(error, (done) => runtime.close(done));
  let controller: Controller;
  try {
    controller = new Controller(runtime, { topologies: runtime.storage.open('topologies'), journal: runtime.storage.open('journal') }, siteHttpClient, runtime.log, {
      name: config.name, edgeTimeoutMs: config.edgeTimeoutMs,
    });
  } catch (error) {
    fail(error);
    return;
  }
  const app = createControllerServer({ controller, logger: runtime.log, token: config.token, version: '0.1.0', https: tls?.https() });
  tls?.serveHttpsFrom(app.server);
  // An operation under way stops with the process; its journal undoes it at the next start.
  claimed.stopOnSignals(`controller ${config.name}`, (stopped) => {
    app.close().finally(() => runtime.close(() => {
      record('stopped');
      stopped();
    }));
  });
  await new Promise<void>((resolve) => controller.start((problems) => {
    for (const problem of problems) logger.error({}, `controller ${config.name}: ${problem}`);
    resolve();
  }));
  try {
    await app.listen({ host: config.bind.host, port: config.bind.port });
  } catch (error) {
    const code = (error as { code?: string }).code;
    fail(code === 'EADDRINUSE'
      ? new StraitError('STRAIT_PORT_IN_USE', { address: `${config.bind.host}:${config.bind.port}` }, { cause: error })
      : new StraitError('STRAIT_BIND_FAILED', { address: `${config.bind.host}:${config.bind.port}`, reason: (error as Error).message }, { cause: error }));
    return;
  }
  const bound = app.server.address() as AddressInfo;
  address = { host: config.advertisedHost, port: bound.port };
  record('ready');
  logger.info({ address: `${address.host}:${address.port}` }, `controller ${config.name} ready at ${tls === undefined ? 'http' : 'https'}://${address.host}:${address.port} (REST API /v1/topologies, dashboard /, OpenAPI /openapi.json)`);
}
