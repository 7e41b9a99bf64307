import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cleanup } from '../processes.ts';
import { startStraitWan, stopStraitWan, throughputRun, lagRun, backlogRun } from './strait-wan.ts';
const cleanup = new Cleanup();
const root = mkdtempSync(join(tmpdir(), 'wan-smoke-'));
const t0 = performance.now();
try {
  const wan = await startStraitWan(cleanup, root, { batchSize: 500, batchTimeIntervalMs: 5, maximumQueueMemoryMegabytes: 32, persistent: true });
  console.log('started in', performance.now() - t0);
  console.log(await throughputRun(wan, 20000, 100, 256, 0));
  console.log(await throughputRun(wan, 50000, 100, 256, 0));
  console.log(await throughputRun(wan, 30000, 1024, 256, 0));
  const l = await lagRun(wan, 5000, 25000, 100); console.log({...l});
  await wan.proxy.setDelay(50);
  console.log(await throughputRun(wan, 30000, 100, 256, 100));
  await wan.proxy.setDelay(0);
  const b = await backlogRun(wan, 50000, 100, 256, 32); console.log({...b, samples: b.samples.length});
  await stopStraitWan(cleanup, wan);
} finally { await cleanup.stopAll(); }
console.log('total', performance.now() - t0);
