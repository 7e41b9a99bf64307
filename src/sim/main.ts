// `npm run sim -- [--seeds N] [--seed S] [--first S] [--verbose] [--wan [--topology T] | --controller]`:
// runs site simulations (or WAN ones, or the controller's).
// Each seed is independent and deterministic; a failure prints the seed and how to replay it.

import { parseArgs } from 'node:util';
import { runSiteSeed } from './site-simulation.ts';
import { runWanSeed, TOPOLOGIES } from './wan-simulation.ts';
import { runControllerSeed } from './controller-simulation.ts';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '20' },
    seed: { type: 'string' },
    first: { type: 'string', default: '1' },
    verbose: { type: 'boolean', default: false },
    'workload-ms': { type: 'string', default: '20000' },
    wan: { type: 'boolean', default: false },
    topology: { type: 'string' },
    controller: { type: 'boolean', default: false },
  },
});

const seeds: number[] = values.seed !== undefined
  ? [Number(values.seed)]
  : Array.from({ length: Number(values.seeds) }, (_, index) => Number(values.first) + index);
const workloadMs = Number(values['workload-ms']);
let failed = 0;
for (const seed of seeds) {
  try {
    const log = values.verbose ? 'print' : 'collect';
    if (values.controller) {
      console.log(await runControllerSeed(seed, { log }));
    } else if (values.wan) {
      const topologies = values.topology !== undefined ? [values.topology] : Object.keys(TOPOLOGIES);
      for (const topology of topologies) console.log(await runWanSeed(seed, topology, { workloadMs: Math.min(workloadMs, 15_000), log }));
    } else {
      console.log(await runSiteSeed(seed, { workloadMs, log }));
    }
  } catch (error) {
    failed += 1;
    console.error(`seed ${seed}: FAILED\n${error instanceof Error ? error.message : String(error)}`);
    if (seeds.length === 1) break;
  }
}
console.log(`${seeds.length - failed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
