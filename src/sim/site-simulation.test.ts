// Runs a bounded set of seeds of the site simulation (crashes, restarts, partitions, delays)
// with its checkers. More seeds: `npm run sim -- --seeds 500`.
import { test } from 'node:test';
import { runSiteSeed } from './site-simulation.ts';

const SEEDS = Number(process.env.STRAIT_SIM_SEEDS ?? 24);
const FIRST = Number(process.env.STRAIT_SIM_FIRST_SEED ?? 1);

for (let seed = FIRST; seed < FIRST + SEEDS; seed++) {
  test(`site simulation seed ${seed}: views converge, acknowledged writes kept, replicas identical`, async () => {
    await runSiteSeed(seed);
  });
}

test('site simulation without faults converges too', async () => {
  await runSiteSeed(9001, { faults: false, workloadMs: 5000 });
});
