#!/usr/bin/env node
// Entry point for the `strait` command. Node 24 strips TypeScript types natively,
// so the CLI source is loaded as-is; there is no build step.
import '../src/cli/main.ts';
