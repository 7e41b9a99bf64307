// The CLI commands that talk to a running site through the client: status, list, put, get,
// remove. They print for people by default and JSON with --json. The gateway-sender commands
// are in gateway-commands.ts.

import { StraitError } from '../errors.ts';
import { type StraitClient } from '../client/client.ts';
import { connect } from '../client/connect.ts';
import { cliCredentials } from './cli-credentials.ts';
import type { RegionSpec, SenderStatus, View, ViewMember } from '../protocol/messages.ts';
import { formatAddress, type Address } from '../runtime/runtime.ts';
import { formatHostPort } from '../config/address.ts';
import { table } from './report.ts';
import { problemLines, receiversTable, senderSummaryTable, sendersTable, type ReceiverRow } from './gateway-report.ts';

export const LOCATOR_DEFAULT = 'localhost[10334]';
/** A CLI command that can't reach its site fails in this time rather than hang. */
export const CLIENT_REQUEST_TIMEOUT_MS_DEFAULT = 15_000;
/**
 * A command against a wrong address, or a site with no locator or no ready server, fails after
 * this long, saying which: STRAIT_NO_LOCATOR (each address and why) or STRAIT_NO_SERVER.
 */
export const CLIENT_CONNECT_TIMEOUT_MS_DEFAULT = 5_000;

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export interface ClientCommandOptions {
  readonly locators: readonly Address[];
  readonly json: boolean;
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

/** Connects to the site, runs the action, and always closes the client. */
export async function withClient<T>(options: ClientCommandOptions, action: (client: StraitClient) => Promise<T>): Promise<T> {
  const client = await connect({
    ...cliCredentials(),
    locators: options.locators,
    name: 'strait-cli',
    requestTimeoutMs: options.requestTimeoutMs,
    connectTimeoutMs: options.connectTimeoutMs,
  });
  try {
    return await action(client);
  } finally {
    await client.close();
  }
}

/** Regions through a server; an empty list when the site has no server yet. */
async function regionsOrEmpty(client: StraitClient): Promise<{ spec: RegionSpec; size: number }[]> {
  try {
    const regions = await client.listRegions();
    // A server holds only some buckets of a partitioned region: its size comes from them all.
    return await Promise.all(regions.map(async (region) => (region.spec.type === 'partition' ? { ...region, size: await client.region(region.spec.name).size() } : region)));
  } catch (error) {
    if (error instanceof StraitError && error.code === 'STRAIT_NO_SERVER') return [];
    throw error;
  }
}

function memberState(member: ViewMember): string {
  return member.ready ? 'ready' : 'starting';
}

function coordinatorName(view: View): string {
  return view.members.find((member) => member.info.id === view.coordinator)?.info.name ?? view.coordinator;
}

function membersTable(view: View): string {
  const rows = [['NAME', 'ROLE', 'ADDRESS', 'STATE', 'LOAD', 'REGIONS', 'ADMIN']];
  const sorted = [...view.members].sort((a, b) => a.info.role.localeCompare(b.info.role) || a.joinSeq - b.joinSeq);
  for (const member of sorted) {
    const coordinator = member.info.id === view.coordinator ? ' (coordinator)' : '';
    rows.push([
      `${member.info.name}${coordinator}`,
      member.info.role,
      formatAddress(member.info.address),
      memberState(member),
      String(member.load),
      member.info.regions.join(',') || '-',
      member.info.httpAddress === undefined ? '-' : `http://${formatHostPort(member.info.httpAddress)}`,
    ]);
  }
  return table(rows);
}

function regionsTable(regions: readonly { spec: RegionSpec; size: number }[]): string {
  if (regions.length === 0) return 'No regions.';
  const rows = [['NAME', 'TYPE', 'PERSISTENT', 'SIZE']];
  for (const { spec, size } of [...regions].sort((a, b) => a.spec.name.localeCompare(b.spec.name))) {
    rows.push([spec.name, spec.type, String(spec.persistent), String(size)]);
  }
  return table(rows);
}

interface Gateways {
  readonly senders: SenderStatus[];
  readonly receivers: ReceiverRow[];
}

/** Every copy of every gateway sender of the site, and its receivers. */
async function gatewaysOf(client: StraitClient): Promise<Gateways> {
  const [senders, receivers] = await Promise.all([client.gatewaySenders(), client.gatewayReceivers()]);
  return { senders, receivers };
}

function gatewaysText(gateways: Gateways, summary: boolean): string {
  const lines = [summary ? senderSummaryTable(gateways.senders) : sendersTable(gateways.senders)];
  const problems = problemLines(gateways.senders);
  if (problems.length > 0) lines.push('', ...problems);
  lines.push('', receiversTable(gateways.receivers));
  return lines.join('\n');
}

function memberJson(member: ViewMember, view: View): Record<string, unknown> {
  return {
    name: member.info.name,
    id: member.info.id,
    role: member.info.role,
    site: member.info.site,
    address: formatAddress(member.info.address),
    httpAddress: member.info.httpAddress === undefined ? null : formatAddress(member.info.httpAddress),
    state: memberState(member),
    load: member.load,
    regions: member.info.regions,
    pid: member.info.pid ?? null,
    coordinator: member.info.id === view.coordinator,
  };
}

export async function statusCommand(options: ClientCommandOptions, output: Output): Promise<void> {
  await withClient(options, async (client) => {
    const view = await client.view();
    const regions = await regionsOrEmpty(client);
    const gateways = await gatewaysOf(client);
    if (options.json) {
      output.out(
        JSON.stringify(
          {
            site: view.site,
            viewId: view.id,
            coordinator: coordinatorName(view),
            members: view.members.map((member) => memberJson(member, view)),
            departed: view.departed,
            regions,
            gateways,
          },
          null,
          2,
        ),
      );
      return;
    }
    output.out(`Site ${view.site}: view ${view.id}, coordinator ${coordinatorName(view)}, ${view.members.length} members`);
    output.out('');
    output.out(membersTable(view));
    output.out('');
    output.out(regionsTable(regions));
    output.out('');
    output.out(gatewaysText(gateways, true));
  });
}

export type ListWhat = 'members' | 'regions' | 'gateways';

export async function listCommand(what: ListWhat, options: ClientCommandOptions, output: Output): Promise<void> {
  await withClient(options, async (client) => {
    if (what === 'members') {
      const view = await client.view();
      output.out(options.json ? JSON.stringify(view.members.map((member) => memberJson(member, view)), null, 2) : membersTable(view));
    } else if (what === 'regions') {
      const regions = await regionsOrEmpty(client);
      output.out(options.json ? JSON.stringify(regions, null, 2) : regionsTable(regions));
    } else {
      const gateways = await gatewaysOf(client);
      output.out(options.json ? JSON.stringify(gateways, null, 2) : gatewaysText(gateways, false));
    }
  });
}

export interface EntryRequest {
  readonly region: string;
  readonly key: string;
}

export async function putCommand(request: EntryRequest & { value: string }, options: ClientCommandOptions, output: Output): Promise<void> {
  await withClient(options, async (client) => {
    await client.region<string>(request.region).put(request.key, request.value);
    if (options.json) output.out(JSON.stringify({ region: request.region, key: request.key, stored: true }));
  });
}

/** Prints the value (strings as they are, anything else as JSON); returns false if absent. */
export async function getCommand(request: EntryRequest, options: ClientCommandOptions, output: Output): Promise<boolean> {
  return withClient(options, async (client) => {
    const value = await client.region<unknown>(request.region).get(request.key);
    if (value === undefined) {
      output.err(`not found: ${request.key} in region ${request.region}`);
      return false;
    }
    if (options.json) output.out(JSON.stringify(value, jsonReplacer));
    else output.out(typeof value === 'string' ? value : JSON.stringify(value, jsonReplacer));
    return true;
  });
}

export async function removeCommand(request: EntryRequest, options: ClientCommandOptions, output: Output): Promise<void> {
  await withClient(options, async (client) => {
    const existed = await client.region<unknown>(request.region).remove(request.key);
    if (options.json) output.out(JSON.stringify({ region: request.region, key: request.key, existed }));
    else output.out(existed ? `removed ${request.key}` : `${request.key} was not in region ${request.region}`);
  });
}

/** Values written by applications may hold binary data or big integers; print them readably. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array) return { base64: Buffer.from(value).toString('base64') };
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof Set) return [...value];
  return value;
}
