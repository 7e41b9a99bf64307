// `strait start`, `run` and `stop`: the member-process commands. Flags are collected under
// their strait.yaml key names so that the same validation applies to both.

import type { Command } from 'commander';
import { StraitError } from '../errors.ts';
import { CONFIG_KEYS, type FlagValues, type MemberRole } from '../config/member-config.ts';
import { loadMemberConfig, locateMember } from './load-config.ts';
import { startInBackground, stopMember, type StartOutcome, type StartRequest } from './process-control.ts';
import { describeReadyMember } from './report.ts';
import type { Output } from './client-commands.ts';

/** The environment variable that carries the admin token, so it never shows in `ps`. */
export const ADMIN_TOKEN_ENVIRONMENT_VARIABLE = 'STRAIT_ADMIN_TOKEN';

interface MemberFlag {
  readonly key: string;
  readonly argument: string;
  readonly description: string;
}

/** Every member flag; `key` is also the strait.yaml key. docs/CLI.md documents them. */
export const MEMBER_FLAGS: readonly MemberFlag[] = [
  { key: 'name', argument: '<name>', description: 'member name, unique in the site (required here or in strait.yaml)' },
  { key: 'port', argument: '<port>', description: 'locator: port to listen on (default 10334); router: (default 12001); controller: (default 9090); 0 = any free port' },
  { key: 'server-port', argument: '<port>', description: 'server: port to listen on (default 40404; 0 = any free port)' },
  { key: 'bind-address', argument: '<host>', description: 'address or host name to listen on (default 0.0.0.0, all interfaces)' },
  {
    key: 'hostname-for-clients',
    argument: '<host>',
    description: 'host advertised to peers and clients (default: the bind address; 127.0.0.1 when binding 0.0.0.0)',
  },
  { key: 'site-id', argument: '<n>', description: 'site id 1..255 (locator default 1; a server takes its locator\'s)' },
  { key: 'locators', argument: '<addresses>', description: 'the site\'s locators, host[port],... (required for servers)' },
  { key: 'remote-locators', argument: '<addresses>', description: 'locator: locators of other sites, host[port],...' },
  { key: 'routers', argument: '<addresses>', description: 'routers to register with (a router: the other routers of its mesh), host[port],... (default port 12001)' },
  { key: 'router-secret-file', argument: '<file>', description: 'file holding the router mesh\'s shared secret (else $STRAIT_ROUTER_SECRET)' },
  { key: 'http-port', argument: '<port>', description: 'admin HTTP API port (default 0 = any free port)' },
  { key: 'member-timeout', argument: '<ms>', description: 'a member silent this long is declared crashed (default 5000)' },
  { key: 'log-level', argument: '<level>', description: 'trace, debug, info (default), warn, error, fatal, silent' },
  { key: 'log-format', argument: '<format>', description: 'pretty or json (run default pretty; start always logs JSON to the log file)' },
  { key: 'admin-token', argument: '<token>', description: `bearer token the admin HTTP API requires (prefer $${ADMIN_TOKEN_ENVIRONMENT_VARIABLE})` },
  { key: 'frame-bytes-max', argument: '<bytes>', description: 'largest wire frame accepted (default 16 MiB)' },
  { key: 'token-file', argument: '<file>', description: 'controller: file holding the bearer token its API requires (at least 16 characters)' },
  { key: 'edge-timeout', argument: '<ms>', description: 'controller: how long every edge of a topology has to connect before an apply is rolled back (default 60000)' },
  { key: 'value-bytes-max', argument: '<bytes>', description: 'server: largest value accepted in a put (default 1 MiB)' },
];

function camelCase(key: string): string {
  return key.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

export function addMemberOptions(command: Command): Command {
  command.option('--dir <dir>', 'member directory: strait.yaml, pid file, member.json, log, data (default ./<name>)');
  command.option('--config <file>', 'configuration file (default <dir>/strait.yaml)');
  for (const flag of MEMBER_FLAGS) command.option(`--${flag.key} ${flag.argument}`, flag.description);
  return command;
}

/** The member flags commander parsed, keyed by their strait.yaml names. */
export function memberFlagValues(options: Record<string, unknown>): FlagValues {
  const values: Record<string, string | undefined> = {};
  for (const flag of MEMBER_FLAGS) {
    const value = options[camelCase(flag.key)];
    if (typeof value === 'string') values[flag.key] = value;
  }
  const token = process.env[ADMIN_TOKEN_ENVIRONMENT_VARIABLE];
  if (values['admin-token'] === undefined && token !== undefined && token.length > 0) values['admin-token'] = token;
  return values;
}

export interface MemberLocationFlags {
  readonly dir?: string | undefined;
  readonly config?: string | undefined;
}

/** Validates everything `start` can check before spawning, and the arguments for `run`. */
export function prepareStart(role: MemberRole, flags: FlagValues, location: MemberLocationFlags, timeoutMs: number): StartRequest {
  const where = locateMember(location.dir, flags['name'], location.config);
  const config = loadMemberConfig(role, flags, where);
  const runArguments: string[] = ['--dir', where.dir];
  if (location.config !== undefined && where.configFile !== undefined) runArguments.push('--config', where.configFile);
  for (const [key, value] of Object.entries(flags)) {
    // The token travels in the environment, never on a command line others can read.
    if (value === undefined || key === 'admin-token' || CONFIG_KEYS[key] === undefined) continue;
    runArguments.push(`--${key}`, value);
  }
  if (config.logFormat === undefined) runArguments.push('--log-format', 'json');
  return { role, dir: where.dir, config, runArguments, timeoutMs };
}

/**
 * Starts a member in the background and reports it: where it listens on success (standard
 * output), why it is not ready yet while waiting (standard error). A failure is left to the
 * caller to report (`startFailureLines`).
 */
export async function startCommand(request: StartRequest, json: boolean, output: Output): Promise<StartOutcome> {
  const token = request.config.adminToken;
  if (token !== undefined) process.env[ADMIN_TOKEN_ENVIRONMENT_VARIABLE] = token;
  const outcome = await startInBackground(request, (line) => output.err(line));
  if (outcome.ok) {
    output.out(json ? JSON.stringify({ ...outcome.record, logFile: outcome.logFile }, null, 2) : describeReadyMember(outcome.record, outcome.logFile));
  }
  return outcome;
}

/** What follows the `error CODE: message` line of a failed start: the next step and the log. */
export function startFailureLines(outcome: Extract<StartOutcome, { ok: false }>): string[] {
  const lines = outcome.nextStep === undefined ? [] : [`next step: ${outcome.nextStep}`];
  lines.push(`the member's log: ${outcome.logFile}`);
  return lines;
}

export function parseTimeoutSeconds(text: string | undefined, fallbackMs: number, flag: string): number {
  if (text === undefined) return fallbackMs;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400) {
    throw new StraitError('STRAIT_USAGE', { reason: `${flag} takes seconds from 0 to 86400, got ${JSON.stringify(text)}` });
  }
  return Math.round(seconds * 1000);
}

export async function stopCommand(role: MemberRole, dir: string, timeoutMs: number, force: boolean, output: Output): Promise<void> {
  const outcome = await stopMember(dir, role, timeoutMs, force);
  const name = outcome.name === undefined ? '' : ` ${outcome.name}`;
  output.out(`${outcome.killed ? 'Killed' : 'Stopped'} ${role}${name} (pid ${outcome.pid}) in ${dir}`);
}
