// Runs a bounded set of seeds of the controller simulation (apply, patch, delete under controller
// crashes and partitions) with its checkers. More seeds: `npm run sim -- --controller --seeds 100`.

import { describe, it } from 'node:test';
import { runControllerSeed } from './controller-simulation.ts';

describe('controller simulation', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`seed ${seed}: every site holds exactly what the controller's record says, with no journal left`, async () => {
      await runControllerSeed(seed);
    });
  }
});
