import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cleanup } from '../processes.ts';
import { startNatsWan, stopNatsWan, natsThroughputRun, natsBacklogRun } from './nats-wan.ts';
const cleanup = new Cleanup();
const root = mkdtempSync(join(tmpdir(), 'wan-smoke3-'));
try {
  const n = await startNatsWan(cleanup, root);
  console.log(await natsThroughputRun(n, 50000, 100, 256, 0));
  console.log(await natsBacklogRun(n, 100000, 100, 256));
  console.log(await natsBacklogRun(n, 100000, 100, 256));
  await stopNatsWan(cleanup, n);
} finally { await cleanup.stopAll(); }
