// The CLI commands of partitioned regions: `strait status region R` (buckets per server, primary
// and copies, and redundancy) and `strait rebalance [--simulate]` (the plan, then progress lines
// until every move completed). Both read the bucket map from the site's view.

import { StraitError } from '../errors.ts';
import type { PartitionMap, ResponseBody, View } from '../protocol/messages.ts';
import { table } from './report.ts';
import { withClient, type ClientCommandOptions, type Output } from './client-commands.ts';

/** How often `rebalance` looks at the view while moves run. */
const REBALANCE_POLL_MS = 500;
/** A progress line at most this often while a rebalance runs. */
const PROGRESS_INTERVAL_MS = 2000;

interface MemberBuckets {
  readonly member: string;
  readonly primaries: number;
  readonly copies: number;
  readonly pending: number;
}

interface RegionReport {
  readonly region: string;
  readonly type: 'partition';
  readonly totalNumBuckets: number;
  readonly redundantCopies: number;
  readonly bucketsCreated: number;
  /** Buckets with every copy they should have (or one per server when there are fewer). */
  readonly bucketsRedundant: number;
  /** Buckets short of copies, and those of them with a copy on the way. */
  readonly bucketsUnderRedundant: number;
  readonly bucketsMoving: number;
  /** Buckets of a persistent region whose every copy is down, and who can bring them back. */
  readonly bucketsOffline: number;
  readonly offlineWaitingFor: string[];
  readonly size: number;
  readonly members: MemberBuckets[];
}

function mapIn(view: View, region: string): PartitionMap | undefined {
  return view.partitions?.find((map) => map.region === region);
}

/** Buckets per member and the region's redundancy, from the view's map. */
export function regionReport(view: View, map: PartitionMap, size: number): RegionReport {
  const servers = view.members.filter((member) => member.info.role === 'server' && member.info.regions.includes(map.region));
  const name = (id: string) => view.members.find((member) => member.info.id === id)?.info.name ?? id;
  const wanted = Math.min(1 + map.settings.redundantCopies, Math.max(1, servers.length));
  const counts = new Map(servers.map((member) => [member.info.id, { primaries: 0, copies: 0, pending: 0 }]));
  let created = 0;
  let redundant = 0;
  let moving = 0;
  for (const bucket of map.buckets) {
    if (bucket === null) continue;
    created += 1;
    if (bucket.copies.length >= wanted) redundant += 1;
    if (bucket.pending.length > 0) moving += 1;
    for (const id of bucket.copies) {
      const count = counts.get(id);
      if (count !== undefined) count.copies += 1;
    }
    for (const id of bucket.pending) {
      const count = counts.get(id);
      if (count !== undefined) count.pending += 1;
    }
    const primary = counts.get(bucket.primary);
    if (primary !== undefined) primary.primaries += 1;
  }
  return {
    region: map.region,
    type: 'partition',
    totalNumBuckets: map.settings.totalNumBuckets,
    redundantCopies: map.settings.redundantCopies,
    bucketsCreated: created,
    bucketsRedundant: redundant,
    bucketsUnderRedundant: created - redundant,
    bucketsMoving: moving,
    bucketsOffline: map.offline?.length ?? 0,
    offlineWaitingFor: [...new Set((map.offline ?? []).flatMap((entry) => entry.last))].sort(),
    size,
    members: [...counts].map(([id, count]) => ({ member: name(id), ...count })).sort((a, b) => a.member.localeCompare(b.member)),
  };
}

function reportText(report: RegionReport): string {
  const lines = [
    `Region ${report.region}: partition, ${report.size} entries, ${report.bucketsCreated} of ${report.totalNumBuckets} buckets created, redundant-copies ${report.redundantCopies}`,
    report.bucketsUnderRedundant === 0
      ? `Redundancy: every bucket has its copies${report.bucketsMoving > 0 ? ` (${report.bucketsMoving} moving)` : ''}`
      : `Redundancy: ${report.bucketsUnderRedundant} buckets short of copies (${report.bucketsMoving} with a copy on the way)`,
    ...(report.bucketsOffline > 0 ? [`PROBLEM: ${report.bucketsOffline} buckets offline (every copy down); they come back when one of ${report.offlineWaitingFor.join(', ')} restarts with its disk`] : []),
    '',
    table([['MEMBER', 'PRIMARIES', 'COPIES', 'PENDING'], ...report.members.map((member) => [member.member, String(member.primaries), String(member.copies), String(member.pending)])]),
  ];
  return lines.join('\n');
}

/** `strait status region R`. */
export async function regionStatusCommand(region: string, options: ClientCommandOptions, output: Output): Promise<void> {
  await withClient(options, async (client) => {
    const view = await client.view();
    const regions = await client.listRegions();
    const found = regions.find((candidate) => candidate.spec.name === region);
    if (found === undefined) throw new StraitError('STRAIT_REGION_NOT_FOUND', { region, member: `site ${view.site}` });
    const size = await client.region(region).size();
    if (found.spec.type !== 'partition') {
      const servers = view.members.filter((member) => member.info.role === 'server' && member.info.regions.includes(region)).length;
      output.out(options.json
        ? JSON.stringify({ region, type: found.spec.type, size, servers }, null, 2)
        : `Region ${region}: replicate, ${size} entries, a full copy on each of ${servers} servers`);
      return;
    }
    const map = mapIn(view, region) ?? { region, settings: found.spec.partition!, persistent: found.spec.persistent, buckets: [] };
    const report = regionReport(view, map, size);
    output.out(options.json ? JSON.stringify(report, null, 2) : reportText(report));
  });
}

type Plan = ResponseBody<'rebalance'>['regions'][number];

function planText(plans: readonly Plan[], simulate: boolean): string {
  if (plans.length === 0) return 'No partitioned region has buckets yet: nothing to rebalance.';
  const verb = simulate ? 'would move' : 'moving';
  return plans.map((plan) => {
    const targets = new Map<string, number>();
    for (const [, , to] of plan.moves) targets.set(to, (targets.get(to) ?? 0) + 1);
    const where = targets.size === 0 ? '' : ` (to ${[...targets].map(([member, count]) => `${member}: ${count}`).join(', ')})`;
    return plan.moves.length + plan.primaryMoves.length === 0
      ? `${plan.region}: balanced, nothing to move`
      : `${plan.region}: ${verb} ${plan.moves.length} copies${where} and ${plan.primaryMoves.length} primaries`;
  }).join('\n');
}

function settled(view: View, regions: readonly string[]): boolean {
  return regions.every((region) => (mapIn(view, region)?.buckets ?? []).every((bucket) => bucket === null || (bucket.pending.length === 0 && (bucket.leaving ?? []).length === 0)));
}

function movesLeft(view: View, regions: readonly string[]): number {
  let left = 0;
  for (const region of regions) for (const bucket of mapIn(view, region)?.buckets ?? []) if (bucket !== null) left += bucket.pending.length;
  return left;
}

/**
 * `strait rebalance [--simulate] [--region R ...]`: prints the plan; without --simulate waits
 * until every move completed (a copy moves once its new holder took the bucket's image),
 * printing progress, and prints the resulting buckets per member.
 */
export async function rebalanceCommand(request: { simulate: boolean; regions: readonly string[]; timeoutMs: number }, options: ClientCommandOptions, output: Output): Promise<number> {
  return withClient(options, async (client) => {
    const answer = await client.rebalance({ simulate: request.simulate, ...(request.regions.length > 0 ? { regions: [...request.regions] } : {}) });
    const moving = answer.regions.filter((plan) => plan.moves.length + plan.primaryMoves.length > 0).map((plan) => plan.region);
    if (request.simulate || moving.length === 0) {
      output.out(options.json ? JSON.stringify({ simulate: request.simulate, regions: answer.regions }, null, 2) : planText(answer.regions, request.simulate));
      return 0;
    }
    if (!options.json) output.out(planText(answer.regions, false));
    const total = answer.regions.reduce((sum, plan) => sum + plan.moves.length, 0);
    const startedMs = Date.now();
    let lastProgressMs = startedMs;
    let view = answer.view;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, REBALANCE_POLL_MS));
      view = await client.view();
      if (settled(view, moving)) break;
      const now = Date.now();
      if (now - startedMs > request.timeoutMs) {
        output.err(`rebalance: ${movesLeft(view, moving)} bucket copies still take their images; they go on in the background (strait status region R shows them)`);
        throw new StraitError('STRAIT_TIMEOUT', { operation: `waiting for the rebalance of ${moving.join(', ')}`, timeoutMs: request.timeoutMs });
      }
      if (!options.json && now - lastProgressMs >= PROGRESS_INTERVAL_MS) {
        lastProgressMs = now;
        output.err(`rebalance: ${Math.max(0, total - movesLeft(view, moving))}/${total} copies moved (${((now - startedMs) / 1000).toFixed(1)} s)`);
      }
    }
    const reports = await Promise.all(moving.map(async (region) => regionReport(view, mapIn(view, region)!, await client.region(region).size())));
    output.out(options.json
      ? JSON.stringify({ simulate: false, regions: answer.regions, after: reports }, null, 2)
      : `Rebalanced in ${((Date.now() - startedMs) / 1000).toFixed(1)} s.\n\n${reports.map(reportText).join('\n\n')}`);
    return 0;
  });
}
