// `strait topology apply|get|list|delete`: the controller's REST API from the command line.
// While an apply or a delete runs, the command asks the controller for its progress twice a
// second and prints each step as it starts and ends, by phase and site.

import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { Argument, type Command } from 'commander';
import { StraitError, errorFromWire, isErrorCode } from '../errors.ts';
import type { OperationAnswer, TopologyStatus } from '../controller/controller.ts';
import type { StepProgress } from '../controller/apply.ts';
import type { Output } from './client-commands.ts';
import { table } from './report.ts';

export const CONTROLLER_ENVIRONMENT_VARIABLE = 'STRAIT_CONTROLLER';
export const CONTROLLER_TOKEN_ENVIRONMENT_VARIABLE = 'STRAIT_CONTROLLER_TOKEN';
export const CONTROLLER_DEFAULT = 'http://localhost:9090';
/** An apply waits for every site and every edge: allow for a slow site and the edges' timeout. */
const APPLY_TIMEOUT_MS = 30 * 60 * 1000;
const READ_TIMEOUT_MS = 30_000;
const PROGRESS_POLL_MS = 500;

export interface TopologyCommandOptions {
  readonly controller: string;
  readonly token: string | undefined;
  readonly json: boolean;
}

interface Failure {
  readonly error: StraitError;
  readonly problems?: readonly { path: string; code: string; message: string }[];
  readonly progress?: readonly StepProgress[];
}

async function request<T>(options: TopologyCommandOptions, method: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
  const url = new URL(path, options.controller.endsWith('/') ? options.controller : `${options.controller}/`);
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {}) },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    throw new StraitError('STRAIT_SITE_UNREACHABLE', { site: 'controller', admin: options.controller, reason: `${(error as Error).message}${cause !== undefined ? ` (${cause})` : ''}; is a controller running there (strait start controller)?` }, { cause: error });
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new StraitError('STRAIT_SITE_UNREACHABLE', { site: 'controller', admin: options.controller, reason: `HTTP ${response.status}, not JSON: is this a Strait controller?` });
  }
  if (!response.ok) {
    const wire = parsed as { code?: string; message?: string; retryable?: boolean; problems?: Failure['problems']; progress?: Failure['progress'] };
    const error = typeof wire.code === 'string' && isErrorCode(wire.code)
      ? errorFromWire({ code: wire.code, message: wire.message ?? '', retryable: wire.retryable === true })
      : new StraitError('STRAIT_INTERNAL', { reason: `HTTP ${response.status}: ${text.slice(0, 200)}` });
    throw Object.assign(error, { problems: wire.problems, progress: wire.progress });
  }
  return parsed as T;
}

function stepLine(step: StepProgress): string {
  return `  [${step.phase}] ${step.site}: ${step.step} … ${step.state}${step.error !== undefined && step.state !== 'done' ? ` (${step.error})` : ''}`;
}

/** Prints each step whose state changed since the last look. */
function progressPrinter(output: Output): (steps: readonly StepProgress[]) => void {
  const seen = new Map<string, string>();
  return (steps) => {
    for (const step of steps) {
      const key = `${step.phase}\u0000${step.site}\u0000${step.step}`;
      if (seen.get(key) === step.state || step.state === 'waiting') continue;
      seen.set(key, step.state);
      output.err(stepLine(step));
    }
  };
}

/** Runs `operation`, printing the controller's progress of topology `name` meanwhile. */
async function withProgress<T>(options: TopologyCommandOptions, name: string, output: Output, operation: Promise<T>): Promise<T> {
  const print = progressPrinter(output);
  let done = false;
  const watch = (async () => {
    while (!done) {
      await new Promise((resolve) => setTimeout(resolve, PROGRESS_POLL_MS));
      if (done) break;
      try {
        const status = await request<TopologyStatus>(options, 'GET', `v1/topologies/${encodeURIComponent(name)}`, undefined, READ_TIMEOUT_MS);
        if (status.operation !== null && !done) print(status.operation);
      } catch {
        // Not there yet (a new topology's first moments), or the answer is about to come.
      }
    }
  })();
  try {
    const result = await operation;
    const progress = (result as { progress?: readonly StepProgress[] }).progress;
    if (progress !== undefined && !options.json) print(progress);
    return result;
  } catch (error) {
    const progress = (error as Failure).progress;
    if (progress !== undefined && !options.json) print(progress);
    throw error;
  } finally {
    done = true;
    await watch;
  }
}

/**
 * The PATCH from the topology applied to the one in the file: sites, edges and regions added,
 * changed or removed, and the tuning. Undefined when nothing differs (the POST then answers
 * "nothing changed").
 */
export function topologyPatch(applied: TopologyStatus['topology'], wanted: Record<string, unknown>): Record<string, unknown> | undefined {
  const wantedSites = (wanted['sites'] ?? {}) as Record<string, unknown>;
  const wantedRegions = (wanted['regions'] ?? {}) as Record<string, unknown>;
  const wantedEdges = (Array.isArray(wanted['edges']) ? wanted['edges'] : []) as [string, string][];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const sites: Record<string, unknown> = {};
  for (const [site, value] of Object.entries(wantedSites)) if (!same(applied.sites[site], value)) sites[site] = value;
  for (const site of Object.keys(applied.sites)) if (!(site in wantedSites)) sites[site] = null;
  const regions: Record<string, unknown> = {};
  for (const [region, value] of Object.entries(wantedRegions)) if (!same(applied.regions[region], value)) regions[region] = value;
  for (const region of Object.keys(applied.regions)) if (!(region in wantedRegions)) regions[region] = null;
  const key = ([from, to]: readonly [string, string]) => `${from}\u0000${to}`;
  const appliedEdges = new Set(applied.edges.map(key));
  const wantedKeys = new Set(wantedEdges.map(key));
  const add = wantedEdges.filter((edge) => !appliedEdges.has(key(edge)));
  const remove = applied.edges.filter((edge) => !wantedKeys.has(key(edge)));
  const tuningChanged = !same(applied.tuning ?? {}, wanted['tuning'] ?? {});
  const patch: Record<string, unknown> = {
    ...(Object.keys(sites).length > 0 ? { sites } : {}),
    ...(add.length + remove.length > 0 ? { edges: { ...(add.length > 0 ? { add } : {}), ...(remove.length > 0 ? { remove } : {}) } } : {}),
    ...(Object.keys(regions).length > 0 ? { regions } : {}),
    ...(tuningChanged ? { tuning: wanted['tuning'] ?? {} } : {}),
  };
  return Object.keys(patch).length === 0 ? undefined : patch;
}

function planLines(answer: OperationAnswer): string[] {
  const lines: string[] = [];
  for (const [site, steps] of Object.entries(answer.plan)) {
    for (const step of steps) lines.push(`  ${site}: [${step.phase}] ${step.change}`);
  }
  return lines;
}

export async function applyCommand(file: string, name: string | undefined, dryRun: boolean, options: TopologyCommandOptions, output: Output): Promise<void> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new StraitError('STRAIT_USAGE', { reason: `can't read ${file}: ${(error as Error).message}` }, { cause: error });
  }
  let body: { name?: unknown };
  try {
    body = JSON.parse(text) as { name?: unknown };
  } catch (error) {
    throw new StraitError('STRAIT_USAGE', { reason: `${file} is not JSON: ${(error as Error).message}` }, { cause: error });
  }
  const topology = name ?? (typeof body.name === 'string' ? body.name : basename(file, extname(file)));
  const path = `v1/topologies/${encodeURIComponent(topology)}${dryRun ? '?dryRun=true' : ''}`;
  // A topology the controller already holds with another definition is changed by a PATCH of the difference.
  const existing = await request<TopologyStatus>(options, 'GET', `v1/topologies/${encodeURIComponent(topology)}`, undefined, READ_TIMEOUT_MS).catch((error: unknown) => {
    if (error instanceof StraitError && error.code === 'STRAIT_TOPOLOGY_NOT_FOUND') return undefined;
    throw error;
  });
  const patch = existing === undefined ? undefined : topologyPatch(existing.topology, body as Record<string, unknown>);
  const sent = patch === undefined
    ? request<OperationAnswer>(options, 'POST', path, text, APPLY_TIMEOUT_MS)
    : request<OperationAnswer>(options, 'PATCH', path, patch, APPLY_TIMEOUT_MS);
  const answer = await withProgress(options, topology, output, sent).catch((error: unknown) => {
    const problems = (error as Failure).problems;
    if (problems !== undefined && !options.json) for (const problem of problems) output.err(`  ${problem.path}: ${problem.code}: ${problem.message}`);
    throw error;
  });
  if (options.json) {
    output.out(JSON.stringify(answer, null, 2));
    return;
  }
  if (dryRun) {
    output.out(answer.changed ? [`topology ${topology}: the plan (nothing was changed)`, ...planLines(answer)].join('\n') : `topology ${topology}: nothing to do`);
    return;
  }
  if (!answer.changed) {
    output.out(`topology ${topology}: already applied, nothing changed`);
    return;
  }
  const receivers = Object.entries(answer.receivers).filter(([, list]) => list.length > 0).map(([site, list]) => `${site} ${list.join(', ')}`);
  output.out(`topology ${topology}: applied, ${answer.progress.filter((step) => step.phase !== 'verify').length} changes on ${Object.keys(answer.plan).length} sites, every edge connected${receivers.length > 0 ? `; receivers: ${receivers.join('; ')}` : ''}`);
}

export async function getCommand(name: string, options: TopologyCommandOptions, output: Output): Promise<void> {
  const status = await request<TopologyStatus>(options, 'GET', `v1/topologies/${encodeURIComponent(name)}`, undefined, READ_TIMEOUT_MS);
  if (options.json) {
    output.out(JSON.stringify(status, null, 2));
    return;
  }
  const sites = [['SITE', 'ID', 'REACHABLE', 'SERVERS', 'RECEIVERS', 'REGIONS']];
  for (const site of status.sites) {
    sites.push([site.name, String(site.site ?? '-'), site.reachable ? 'yes' : `no: ${site.error}`, String(site.servers ?? '-'), site.receivers?.join(',') || '-', site.regions?.join(',') || '-']);
  }
  const edges = [['EDGE', 'STATE', 'QUEUE', 'LAG MS', 'EVENTS/S', 'SENT', 'LAST ERROR']];
  for (const edge of status.edges) {
    edges.push([`${edge.from} → ${edge.to}`, edge.state, String(edge.queueEvents), String(edge.lagMs), String(edge.eventsPerSecond), String(edge.eventsSent), edge.lastError ?? '-']);
  }
  const head = `topology ${status.name}: ${status.state}${status.lastError !== null ? ` (last error: ${status.lastError})` : ''}`;
  const operation = status.operation === null ? [] : ['', 'operation under way:', ...status.operation.map(stepLine)];
  output.out([head, '', table(sites), '', table(edges), ...operation].join('\n'));
}

export async function listCommand(options: TopologyCommandOptions, output: Output): Promise<void> {
  const answer = await request<{ topologies: { name: string; sites: number; edges: number; state: string; appliedAtMs: number; lastError: string | null }[] }>(options, 'GET', 'v1/topologies', undefined, READ_TIMEOUT_MS);
  if (options.json) {
    output.out(JSON.stringify(answer.topologies, null, 2));
    return;
  }
  if (answer.topologies.length === 0) {
    output.out('no topology');
    return;
  }
  const rows = [['NAME', 'SITES', 'EDGES', 'STATE', 'APPLIED', 'LAST ERROR']];
  for (const topology of answer.topologies) rows.push([topology.name, String(topology.sites), String(topology.edges), topology.state, new Date(topology.appliedAtMs).toISOString(), topology.lastError ?? '-']);
  output.out(table(rows));
}

export async function deleteCommand(name: string, dryRun: boolean, options: TopologyCommandOptions, output: Output): Promise<void> {
  const path = `v1/topologies/${encodeURIComponent(name)}${dryRun ? '?dryRun=true' : ''}`;
  const answer = await withProgress(options, name, output, request<OperationAnswer>(options, 'DELETE', path, undefined, APPLY_TIMEOUT_MS));
  if (options.json) output.out(JSON.stringify(answer, null, 2));
  else if (dryRun) output.out([`topology ${name}: deleting it would`, ...planLines(answer)].join('\n'));
  else output.out(`topology ${name}: deleted; every site is as it was before it`);
}

export function registerTopologyCommands(program: Command, common: {
  action: <A extends unknown[]>(handler: (...args: A) => Promise<number | void>) => (...args: A) => Promise<void>;
  output: Output;
}): void {
  program
    .command('topology')
    .description('apply, show, list and delete replication topologies on a controller (docs/TOPOLOGY.md)')
    .addArgument(new Argument('<action>', 'apply, get, list or delete').choices(['apply', 'get', 'list', 'delete']))
    .addArgument(new Argument('[name]', 'get, delete: the topology; apply: overrides the name in the file'))
    .option('-f, --file <file>', 'apply: the topology, JSON')
    .option('--controller <url>', `the controller (default $${CONTROLLER_ENVIRONMENT_VARIABLE} or ${CONTROLLER_DEFAULT})`)
    .option('--token-file <file>', `a file holding the controller's token (default $${CONTROLLER_TOKEN_ENVIRONMENT_VARIABLE})`)
    .option('--dry-run', 'apply, delete: answer what would change, change nothing', false)
    .option('--json', 'print JSON', false)
    .action(common.action(async (action: 'apply' | 'get' | 'list' | 'delete', name: string | undefined, flags: { file?: string; controller?: string; tokenFile?: string; dryRun: boolean; json: boolean }) => {
      const token = flags.tokenFile !== undefined ? readFileSync(flags.tokenFile, 'utf8').trim() : process.env[CONTROLLER_TOKEN_ENVIRONMENT_VARIABLE];
      const options: TopologyCommandOptions = { controller: flags.controller ?? process.env[CONTROLLER_ENVIRONMENT_VARIABLE] ?? CONTROLLER_DEFAULT, token, json: flags.json };
      if (action === 'apply') {
        if (flags.file === undefined) throw new StraitError('STRAIT_USAGE', { reason: 'topology apply needs -f <topology.json>' });
        await applyCommand(flags.file, name, flags.dryRun, options, common.output);
        return;
      }
      if (flags.file !== undefined) throw new StraitError('STRAIT_USAGE', { reason: `-f applies to topology apply, not ${action}` });
      if (action === 'list') {
        await listCommand(options, common.output);
        return;
      }
      if (name === undefined) throw new StraitError('STRAIT_USAGE', { reason: `topology ${action} needs the topology's name` });
      if (action === 'get') await getCommand(name, options, common.output);
      else await deleteCommand(name, flags.dryRun, options, common.output);
    }));
}
