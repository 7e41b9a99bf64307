#!/usr/bin/env node
// Entry point for the `strait` command. In a checkout of the repository (its src/ is here) Node
// runs the TypeScript sources as they are, stripping the types, so there is nothing to build and
// an old dist/ is never picked up by mistake. An installed package holds no sources, only the
// JavaScript that `npm run build` wrote to dist/ before it was packed.
import { existsSync } from 'node:fs';

if (existsSync(new URL('../src/cli/main.ts', import.meta.url))) {
  await import('../src/cli/main.ts');
} else {
  try {
    await import('../dist/cli/main.js');
  } catch (error) {
    // An install without the member's packages (npm install --omit=optional) is a client library.
    const missing = error?.code === 'ERR_MODULE_NOT_FOUND' && /Cannot find package '([^']+)'/.exec(String(error.message));
    if (!missing) throw error;
    process.stderr.write(`strait: the CLI needs the package ${missing[1]}, which this install left out `
      + '(installed with --omit=optional?); install strait with its optional dependencies to use the CLI\n');
    process.exitCode = 1;
  }
}
