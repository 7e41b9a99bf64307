// One row of the fault matrix, start to finish:
//
//   1. start both sites (`strait start`, fresh directories) and wait until the senders connect;
//   2. start the load at the row's writing sites, the memory monitor and the audit
//      subscriptions (one per server);
//   3. at 20–30 % of the duration (seeded) inject the fault; after the fault window (30 % of
//      the duration, at least 6 s so a killed member outlives the 5 s member timeout) recover;
//   4. from the recovery on, poll every server for every write acknowledged by then: the time
//      until the last one holds them all is the row's time to converge;
//   5. at the end of the duration stop the load, then poll until every server holds every
//      acknowledged write or the convergence deadline passes: what is still missing then is lost;
//   6. stop every process; digest the members' logs.
//
// Whatever fails, step 6 runs: the row's processes are stopped by pid before the next row.

import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cleanup } from '../bench/processes.ts';
import { SeededRandom } from '../src/sim/random.ts';
import { forEveryServer, ServerAudit, stillExpected } from './audit.ts';
import { Grid, SOAK_REGION } from './grid.ts';
import { summarizeLosses, WriteLedger, type Expectation, type Finding, type LedgerCounts, type LossSummary } from './ledger.ts';
import { digestLogLines, readMemberLogs, type LogMessage } from './logs.ts';
import { MemberMonitor, type MemberMemory, type UnexpectedExit } from './monitor.ts';
import type { SoakOptions } from './options.ts';
import type { RowResult } from './report.ts';
import type { InjectedFault, RowDefinition } from './rows.ts';
import { rowTimeline } from './timeline.ts';
import { SiteWriter, type WriterFigures } from './writer.ts';

const CONVERGE_POLL_INTERVAL_MS = 500;
const AUDIT_REFRESH_INTERVAL_MS = 1_000;
/** After convergence, how long subscription events may still trickle in before they are counted. */
const SUBSCRIPTION_SETTLE_MS = 1_000;

/**
 * Polls every server until it holds what `expectations` says, or `deadlineMs` (performance.now()
 * time) passes. Resolves with the time it converged (undefined if not) and what was still wrong
 * at the last poll.
 */
async function pollUntilConverged(
  audit: ServerAudit,
  ledger: WriteLedger,
  grid: Grid,
  expectations: readonly Expectation[],
  deadlineMs: number,
  stopped: () => boolean = () => false,
): Promise<{ convergedAtMs: number | undefined; findings: Finding[] }> {
  const byKey = new Map(expectations.map((expectation) => [expectation.key, expectation]));
  let pending: Map<string, readonly Expectation[]> = forEveryServer(grid, expectations);
  let findings: Finding[] = [];
  for (;;) {
    const remaining = await audit.readBack(pending, ledger);
    findings = [...remaining.values()].flat();
    if (findings.length === 0) return { convergedAtMs: performance.now(), findings };
    if (performance.now() >= deadlineMs || stopped()) return { convergedAtMs: undefined, findings };
    pending = stillExpected(remaining, byKey);
    await sleep(CONVERGE_POLL_INTERVAL_MS);
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function runRow(
  definition: RowDefinition,
  options: SoakOptions,
  cleanup: Cleanup,
  root: string,
  say: (line: string) => void,
): Promise<RowResult> {
  const random = new SeededRandom(options.seed).fork(definition.name);
  const timeline = rowTimeline(options.durationSeconds, random.fork('timeline'));
  const directory = join(root, definition.name);
  const ratePerWriter = options.ratePerSecond / definition.writingSites.length;
  const convergeTimeoutMs = options.convergeTimeoutSeconds * 1000;

  let grid: Grid | undefined;
  let monitor: MemberMonitor | undefined;
  let audit: ServerAudit | undefined;
  const ledger = new WriteLedger();
  const writers: SiteWriter[] = [];
  let writerFigures: WriterFigures[] = [];
  let fault: InjectedFault | undefined;
  let recovery: string | undefined;
  let error: string | undefined;
  let loadStartMs = 0;
  /** Wall clock at the start of the load: log lines before it are the sites' start-up. */
  let loadStartEpochMs = 0;
  let faultAtMs: number | undefined;
  let recoveredAtMs: number | undefined;
  let loadEndMs: number | undefined;
  let convergeSeconds: number | undefined;
  let drainSeconds: number | undefined;
  let converged = false;
  let losses: LossSummary | undefined;
  let writes: LedgerCounts | undefined;
  let memory: MemberMemory[] = [];
  let unexpectedExits: UnexpectedExit[] = [];
  let logs: LogMessage[] = [];
  let auditing = true;
  let auditLoop: Promise<void> = Promise.resolve();
  let convergence: Promise<{ convergedAtMs: number | undefined }> | undefined;
  const seconds = (atMs: number | undefined): number | undefined => (atMs === undefined ? undefined : (atMs - loadStartMs) / 1000);

  try {
    say(`[${definition.name}] starting two sites in ${directory}`);
    grid = await Grid.start(cleanup, directory, definition.sites);
    const started = grid;
    audit = new ServerAudit(grid);
    const watching = audit;
    await audit.refresh();
    for (const site of definition.writingSites) {
      const load = { ratePerSecond: ratePerWriter, valueBytes: definition.valueBytes(options.ratePerSecond), updateShare: definition.updateShare };
      writers.push(await SiteWriter.open(site, grid.locatorAddress(site), SOAK_REGION, ledger, random.fork(`writer-${site}`), load));
    }
    loadStartMs = performance.now();
    loadStartEpochMs = Date.now();
    monitor = new MemberMonitor(grid, loadStartMs);
    auditLoop = (async () => {
      while (auditing) {
        await sleep(AUDIT_REFRESH_INTERVAL_MS);
        await watching.refresh().catch(() => {});
      }
    })();
    for (const writer of writers) writer.start();
    say(`[${definition.name}] load ${options.ratePerSecond}/s of ${definition.valueBytes(options.ratePerSecond)}-byte values over site(s) ` +
      `${definition.writingSites.join(' and ')} for ${options.durationSeconds} s; ` +
      `fault at ${(timeline.faultAtMs / 1000).toFixed(1)} s, recovery at ${(timeline.recoverAtMs / 1000).toFixed(1)} s`);

    await sleep(Math.max(0, loadStartMs + timeline.faultAtMs - performance.now()));
    faultAtMs = performance.now();
    fault = await definition.inject({ grid, cleanup });
    say(`[${definition.name}] ${fault.description}`);

    await sleep(Math.max(0, loadStartMs + timeline.recoverAtMs - performance.now()));
    recovery = await fault.recover();
    recoveredAtMs = performance.now();
    say(`[${definition.name}] ${recovery}`);
    const recoveredAt = recoveredAtMs;
    // Time to converge: every write acknowledged by the end of the recovery, at every server.
    const convergeDeadlineMs = loadStartMs + timeline.durationMs + convergeTimeoutMs;
    convergence = pollUntilConverged(watching, ledger, started, ledger.expectations(), convergeDeadlineMs, () => !auditing);
    void convergence.then(({ convergedAtMs }) => {
      if (convergedAtMs !== undefined) convergeSeconds = (convergedAtMs - recoveredAt) / 1000;
    });

    await sleep(Math.max(0, loadStartMs + timeline.durationMs - performance.now()));
    writerFigures = await Promise.all(writers.map((writer) => writer.stop()));
    writers.length = 0;
    loadEndMs = performance.now();
    const counts = ledger.counts();
    say(`[${definition.name}] load stopped: ${counts.acknowledged} writes acknowledged, ${counts.failed} failed; reading them back at every server`);

    const final = await pollUntilConverged(watching, ledger, started, ledger.expectations(), loadEndMs + convergeTimeoutMs);
    await convergence;
    converged = final.convergedAtMs !== undefined && convergeSeconds !== undefined;
    if (final.convergedAtMs !== undefined) drainSeconds = (final.convergedAtMs - loadEndMs) / 1000;
    losses = summarizeLosses(final.findings);
    await sleep(SUBSCRIPTION_SETTLE_MS);
  } catch (caught) {
    error = message(caught);
    say(`[${definition.name}] ERROR: ${error}`);
  } finally {
    auditing = false;
    await Promise.all(writers.map((writer) => writer.stop().then((figures) => writerFigures.push(figures)).catch(() => {})));
    await convergence?.catch(() => {});
    await auditLoop;
    if (monitor !== undefined) ({ members: memory, unexpectedExits } = await monitor.stop());
    writes = loadStartMs > 0 ? ledger.counts() : undefined;
    if (grid !== undefined) {
      try {
        await grid.stop();
      } catch (caught) {
        error ??= `stopping the row's members: ${message(caught)}`;
      }
      logs = digestLogLines(readMemberLogs(grid.members), loadStartEpochMs);
    }
  }
  // Each write seen twice, with when it was issued and settled: one in flight across the fault
  // was likely retried by the client.
  const subscribers = (audit?.subscribers() ?? []).map((subscriber) => ({
    ...subscriber,
    duplicateExamples: subscriber.duplicateExamples.map((identity) => {
      const at = identity.lastIndexOf('@');
      const timing = ledger.timing(identity.slice(0, at), Number(identity.slice(at + 1)));
      if (timing === undefined) return identity;
      const settled = Number.isNaN(timing.settledAtMs) ? 'never settled' : `settled at ${seconds(timing.settledAtMs)!.toFixed(1)} s`;
      return `${identity} (issued at ${seconds(timing.issuedAtMs)!.toFixed(1)} s, ${settled})`;
    }),
  }));
  audit?.close();
  return {
    row: definition.name,
    summary: definition.summary,
    seed: options.seed,
    error,
    writes,
    writers: writerFigures,
    losses,
    duplicatesApplied: audit === undefined ? undefined : subscribers.reduce((sum, subscriber) => sum + subscriber.duplicates, 0),
    subscribers,
    convergeSeconds,
    converged,
    drainSeconds,
    convergeTimeoutSeconds: options.convergeTimeoutSeconds,
    memory,
    unexpectedExits,
    timeline: { faultAtSeconds: seconds(faultAtMs), recoveredAtSeconds: seconds(recoveredAtMs), loadEndSeconds: seconds(loadEndMs) },
    fault: fault?.description,
    watchedMember: fault?.watchedMember,
    recovery,
    logs,
    directory,
  };
}
