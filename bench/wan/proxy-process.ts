// The WAN proxy as its own process, exactly what `strait proxy` runs (src/cli/proxy-command.ts),
// so the benchmark's proxy gets a CPU of its own instead of sharing the bench's event loop.
//
//   node bench/wan/proxy-process.ts --listen H:P --target H:P [--delay-ms N] [--jitter-ms N] [--bandwidth B]
//
// Control lines on stdin, one reply line each on stdout (see proxy-command.ts).

import { parseArgs } from 'node:util';
import { parseProxyOptions, runProxy } from '../../src/cli/proxy-command.ts';

const { values } = parseArgs({
  options: {
    listen: { type: 'string' },
    target: { type: 'string' },
    'delay-ms': { type: 'string' },
    'jitter-ms': { type: 'string' },
    bandwidth: { type: 'string' },
  },
  strict: true,
});
try {
  const options = parseProxyOptions({
    ...(values.listen !== undefined ? { listen: values.listen } : {}),
    ...(values.target !== undefined ? { target: values.target } : {}),
    ...(values['delay-ms'] !== undefined ? { delayMs: values['delay-ms'] } : {}),
    ...(values['jitter-ms'] !== undefined ? { jitterMs: values['jitter-ms'] } : {}),
    ...(values.bandwidth !== undefined ? { bandwidth: values.bandwidth } : {}),
  });
  process.exitCode = await runProxy(options, { input: process.stdin, out: (text) => process.stdout.write(`${text}\n`) });
} catch (error) {
  process.stderr.write(`error ${(error as { code?: string }).code ?? 'STRAIT_INTERNAL'}: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
