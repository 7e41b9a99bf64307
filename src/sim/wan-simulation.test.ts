// Multi-site simulation seeds (crashes, partitions between sites, latency changes) for every
// topology shape, with the convergence and acknowledged-write checkers.
// More: `npm run sim -- --wan --seeds 100`.
import { test } from 'node:test';
import { runWanSeed, TOPOLOGIES } from './wan-simulation.ts';

const SEEDS = Number(process.env.STRAIT_WAN_SIM_SEEDS ?? 4);

for (const topology of Object.keys(TOPOLOGIES)) {
  for (let seed = 1; seed <= SEEDS; seed++) {
    test(`wan simulation ${topology} seed ${seed}: sites converge, acknowledged writes reach every reachable site`, async () => {
      await runWanSeed(seed, topology);
    });
  }
}

// In-memory queues survive a member only through the other copies: these seeds exercise the
// handover fault (a secondary restarts, then the primary crashes) where the restarted copy must
// have been given the queue.
for (const topology of Object.keys(TOPOLOGIES)) {
  for (let seed = 1; seed <= SEEDS; seed++) {
    test(`wan simulation ${topology} seed ${seed} with in-memory queues: nothing acknowledged is lost across a handover`, async () => {
      await runWanSeed(seed, topology, { persistentQueues: false });
    });
  }
}

// Several dispatcher threads per sender (serial senders ordered by thread, parallel ones by
// partition) with batch conflation, through the same faults.
for (const topology of ['two-way', 'mesh', 'routers']) {
  for (let seed = 1; seed <= SEEDS; seed++) {
    test(`wan simulation ${topology} seed ${seed} with 3 dispatcher threads and batch conflation: sites converge, nothing acknowledged is lost`, async () => {
      await runWanSeed(seed, topology, { dispatcherThreads: 3, batchConflation: true });
    });
  }
}

test('wan simulation with in-memory queues and no faults', async () => {
  await runWanSeed(4242, 'mesh', { faults: false, persistentQueues: false, workloadMs: 5000 });
});
