// Queue memory during a backlog, measured from inside one process (the bench's RSS figures count
// LMDB's memory-mapped file and V8's uncollected heap, which are not live memory):
//   node --expose-gc bench/queue-memory.ts persistent lmdb      # the deployed configuration
//   node --expose-gc bench/queue-memory.ts memory x             # in-memory storage (its "disk" is the heap)
// A locator, a server whose gateway sender has no reachable remote site (a partition, as far as
// the queue can tell) and a client run in this process; after every 100k puts it forces two
// garbage collections and prints the live heap, RSS and the sender's queue.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../src/client/connect.ts';
import { createNodeRuntime } from '../src/runtime/node/node-runtime.ts';
import { SILENT_LOGGER } from '../src/runtime/runtime.ts';
import { Locator } from '../src/core/locator.ts';
import { Server } from '../src/core/server.ts';
import { NO_METRICS } from '../src/core/member-admin.ts';
import { DEFAULT_TIMING, FRAME_BYTES_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT } from '../src/core/config.ts';
const persistent = process.argv[2] === 'persistent';
const storage = process.argv[3] === 'lmdb' ? mkdtempSync(join(tmpdir(), 'memh-')) : undefined;
const lrt = createNodeRuntime({ logger: SILENT_LOGGER });
const locator = new Locator(lrt, { name: 'l', site: 1, bind: { host: '127.0.0.1', port: 0 }, hostnameForClients: undefined, locators: [], remoteLocators: [], timing: DEFAULT_TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, pid: undefined, httpAddress: undefined }, NO_METRICS);
const laddr = await new Promise<any>((r) => locator.start((res) => r(res.address)));
const srt = createNodeRuntime({ logger: SILENT_LOGGER, ...(storage ? { storageDirectory: storage } : {}) });
const server = new Server(srt, { name: 's', site: 1, bind: { host: '127.0.0.1', port: 0 }, hostnameForClients: undefined, locators: [laddr], regions: [{ name: 'R', type: 'replicate', persistent: false, gatewaySenderIds: ['to2'] }], timing: DEFAULT_TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, valueBytesMax: VALUE_BYTES_MAX_DEFAULT,
  gatewaySenders: [{ id: 'to2', remoteSiteId: 2, parallel: false, batchSize: 500, batchTimeIntervalMs: 5, maximumQueueMemoryMegabytes: 8, persistent, dispatcherThreads: 1, orderPolicy: 'key', batchConflation: false, manualStart: false, compression: false }],
  gatewayReceiver: undefined, conflictResolver: undefined, pid: undefined, httpAddress: undefined }, NO_METRICS);
await new Promise<void>((r) => server.start(() => r()));
const client = await connect({ locators: [laddr] });
const region = client.region('R');
const value = 'x'.repeat(100);
const status = (field: string) => Math.round(Number(/\d+/.exec(readFileSync('/proc/self/status', 'utf8').split('\n').find((line) => line.startsWith(field)) ?? '0')![0]) / 1024);
const heap = () => { (globalThis as any).gc(); (globalThis as any).gc(); const m = process.memoryUsage(); return `${Math.round(m.heapUsed / 1048576)} (heap total ${Math.round(m.heapTotal / 1048576)}, rss ${Math.round(m.rss / 1048576)}, RssAnon ${status('RssAnon')}, RssFile ${status('RssFile')}, external ${Math.round(m.external / 1048576)}, arrayBuffers ${Math.round(m.arrayBuffers / 1048576)})`; };
console.log('start heap MiB', heap());
let n = 0;
for (let round = 1; round <= Number(process.env.ROUNDS ?? 8); round++) {
  let issued = 0, done = 0;
  await new Promise<void>((resolve) => { const next = () => { if (issued >= 100_000) return; const k = `k${n++ % 10000}`; issued++; region.put(k, value).then(() => { if (++done === 100_000) resolve(); else next(); }); }; for (let i = 0; i < 256; i++) next(); });
  await new Promise((r) => setTimeout(r, 500));
  const st = server.senderStatuses()[0]!;
  console.log(`after ${round * 100}k: heap MiB ${heap()}, queue ${st.queueEvents}, overflow ${st.overflowEvents}, queueMiB ${Math.round(st.queueBytes / 1048576)}`);
}
const v8 = await import('node:v8');
if (process.argv[4] === 'snap') console.log('snapshot', v8.writeHeapSnapshot('/tmp/memh/heap.heapsnapshot'));
process.exit(0);
