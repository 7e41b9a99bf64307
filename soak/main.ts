// `npm run soak [-- --quick] [--rows a,b] [--duration-s S] [--rate N] [--seed N]`: the fault
// matrix with real processes under load (docs/RELIABILITY.md). Each row starts two sites,
// writes, injects its fault, recovers and reads every acknowledged write back at every server.
// Prints one table row per fault and writes soak/results/<timestamp>.json. Exit status: 0 when
// every row is ok; 1 when a row lost a write, did not converge, saw a member die by itself or
// could not run; 2 for a usage error; 130 after Ctrl-C (everything started is stopped first).

import { randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cleanup } from '../bench/processes.ts';
import { describeMachine, formatMachine, measureCpuBusy, sourceState, timestamp } from '../bench/report.ts';
import { parseOptions, reproduceCommand, UsageError, USAGE, type SoakOptions } from './options.ts';
import { formatTable, rowNotes, verdict, type RowResult } from './report.ts';
import { rowDefinition } from './rows.ts';
import { runRow } from './run-row.ts';

const RESULTS_DIRECTORY = fileURLToPath(new URL('./results', import.meta.url));

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function writeResults(content: unknown): string {
  mkdirSync(RESULTS_DIRECTORY, { recursive: true });
  const path = join(RESULTS_DIRECTORY, `soak-${timestamp()}.json`);
  writeFileSync(path, `${JSON.stringify(content, null, 2)}\n`);
  return path;
}

async function soak(options: SoakOptions, cleanup: Cleanup, root: string): Promise<RowResult[]> {
  const results: RowResult[] = [];
  for (const name of options.rows) {
    const result = await runRow(rowDefinition(name), options, cleanup, root, say);
    results.push(result);
    say(`[${name}] ${verdict(result)}\n`);
    // Nothing of a row outlives it, whatever happened in it.
    await cleanup.stopAll();
  }
  return results;
}

async function main(): Promise<number> {
  let options: SoakOptions | undefined;
  try {
    options = parseOptions(process.argv.slice(2), () => randomInt(2 ** 31 - 1));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`soak: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (options === undefined) {
    process.stdout.write(USAGE);
    return 0;
  }

  const cleanup = new Cleanup('soak');
  const root = mkdtempSync(join(tmpdir(), 'strait-soak-'));
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\nsoak: ${signal}; stopping everything it started (members' directories kept in ${root})\n`);
    void cleanup.stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const machine = describeMachine('redis: not used', await measureCpuBusy(1000));
  say(formatMachine(machine).split('\n').filter((line) => !line.includes('redis')).join('\n'));
  say(`soak: rows ${options.rows.join(', ')}; ${options.durationSeconds} s of load per row at ${options.ratePerSecond} writes/s; ` +
    `seed ${options.seed}`);
  say(`repeat with: ${reproduceCommand(options)}\n`);

  const startedMs = performance.now();
  let results: RowResult[] = [];
  try {
    results = await soak(options, cleanup, root);
  } finally {
    await cleanup.stopAll();
  }
  const failed = results.filter((result) => verdict(result) !== 'ok');
  say(formatTable(results));
  say('');
  for (const result of results) for (const line of rowNotes(result)) say(line);
  const path = writeResults({
    kind: 'soak',
    arguments: process.argv.slice(2),
    options,
    machine,
    source: await sourceState(),
    seconds: (performance.now() - startedMs) / 1000,
    rows: results,
  });
  say(`\nresults: ${path} (${((performance.now() - startedMs) / 1000).toFixed(0)} s)`);
  if (failed.length > 0) {
    say(`FAILED: ${failed.map((result) => `${result.row} (${verdict(result)})`).join(', ')}; members' logs and data kept in ${root}`);
    say(`repeat the failed rows with: ${reproduceCommand(options, failed.map((result) => result.row))}`);
    return 1;
  }
  if (options.keep) say(`members' directories kept in ${root}`);
  else rmSync(root, { recursive: true, force: true });
  return 0;
}

// The soak's connections to the members use the client runtime, whose sockets and timers don't
// hold the process (an idle client must not keep an application running): the soak holds it
// itself until the matrix is done.
const running = setInterval(() => {}, 1 << 30);
main().then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    process.stderr.write(`soak failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
).finally(() => clearInterval(running));
