// `strait start`, `run` and `stop`: the member-process commands. Flags are collected under
// their strait.yaml key names so that the same validation applies to both.

import type { Command } from 'commander';
import { StraitError } from '../errors.ts';
import { CONFIG_KEYS, type FlagValues, type MemberRole } from '../config/member-config.ts';
import { loadMemberConfig, locateMember } from './load-config.ts';
import { startInBackground, stopMember, type StartOutcome, type StartRequest } from './process-control.ts';
import { describeReadyMember } from './report.ts';
import type { Output } from './client-commands.ts';

/**
 * The environment variable that carries the admin token, so it never shows in `ps`: the name
 * environmentVariableFor('admin-token') gives it, like every other flag.
 */
export const ADMIN_TOKEN_ENVIRONMENT_VARIABLE = 'STRAIT_ADMIN_TOKEN';
/** The role `strait run` takes when the command line names none (containers: `strait run`). */
export const ROLE_ENVIRONMENT_VARIABLE = 'STRAIT_ROLE';
export const MEMBER_ROLES: readonly MemberRole[] = ['locator', 'server', 'router', 'controller'];

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
  { key: 'tls-cert', argument: '<file>', description: 'TLS: this member\'s certificate (PEM; strait tls init makes them); with --tls-key and --tls-ca every link is TLS' },
  { key: 'tls-key', argument: '<file>', description: 'TLS: this member\'s private key (PEM)' },
  { key: 'tls-ca', argument: '<file>', description: 'TLS: the CA certificate its peers must be signed by (PEM)' },
  { key: 'tls-require-client-cert', argument: '<true|false>', description: 'TLS: clients must present a certificate too (default false)' },
  { key: 'client-token-file', argument: '<file>', description: 'file holding the token clients without a certificate must present (needs TLS; else $STRAIT_CLIENT_TOKEN)' },
];

function camelCase(key: string): string {
  return key.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

// Every member flag can also come from the environment, so a container is configured by its
// environment alone: `--site-id 2` is STRAIT_SITE_ID=2. The names are derived from the flags, so
// a flag added to MEMBER_FLAGS has its variable at once. A flag on the command line wins; an
// empty variable counts as unset (as `${NAME:default}` in strait.yaml does).

type Environment = Readonly<Record<string, string | undefined>>;

/** The environment variable a flag can come from: STRAIT_ and the flag in upper snake case. */
export function environmentVariableFor(flag: string): string {
  return `STRAIT_${flag.toUpperCase().replaceAll('-', '_')}`;
}

function fromEnvironment(environment: Environment, flag: string): string | undefined {
  const value = environment[environmentVariableFor(flag)];
  return value === undefined || value === '' ? undefined : value;
}

function describeWithVariable(description: string, flag: string): string {
  return `${description} (env: ${environmentVariableFor(flag)})`;
}

export function addMemberOptions(command: Command): Command {
  command.option('--dir <dir>', describeWithVariable('member directory: strait.yaml, pid file, member.json, log, data (default ./<name>)', 'dir'));
  command.option('--config <file>', describeWithVariable('configuration file (default <dir>/strait.yaml)', 'config'));
  for (const flag of MEMBER_FLAGS) command.option(`--${flag.key} ${flag.argument}`, describeWithVariable(flag.description, flag.key));
  return command;
}

/** The member flags, keyed by their strait.yaml names: from the command line, else the environment. */
export function memberFlagValues(options: Record<string, unknown>, environment: Environment = process.env): FlagValues {
  const values: Record<string, string | undefined> = {};
  for (const flag of MEMBER_FLAGS) {
    const value = options[camelCase(flag.key)] ?? fromEnvironment(environment, flag.key);
    if (typeof value === 'string') values[flag.key] = value;
  }
  return values;
}

/** --dir and --config: from the command line, else STRAIT_DIR and STRAIT_CONFIG. */
export function memberLocationFlags(options: Record<string, unknown>, environment: Environment = process.env): MemberLocationFlags {
  const location = (flag: 'dir' | 'config'): string | undefined => {
    const value = options[flag];
    return typeof value === 'string' ? value : fromEnvironment(environment, flag);
  };
  return { dir: location('dir'), config: location('config') };
}

/** The role of `strait run`: the argument, else STRAIT_ROLE. */
export function runRole(argument: MemberRole | undefined, environment: Environment = process.env): MemberRole {
  if (argument !== undefined) return argument;
  const value = environment[ROLE_ENVIRONMENT_VARIABLE];
  if (value === undefined || value === '') {
    throw new StraitError('STRAIT_USAGE', { reason: `run needs a role: strait run ${MEMBER_ROLES.join('|')}, or set ${ROLE_ENVIRONMENT_VARIABLE}` });
  }
  const role = MEMBER_ROLES.find((candidate) => candidate === value);
  if (role === undefined) {
    throw new StraitError('STRAIT_CONFIG_INVALID', {
      source: 'environment', key: ROLE_ENVIRONMENT_VARIABLE, reason: `expected ${MEMBER_ROLES.join(', ')}, got ${JSON.stringify(value)}`,
    });
  }
  return role;
}

/**
 * Runs `load`, which builds a member's configuration from memberFlagValues and memberLocationFlags
 * of the same `options` and `environment`. A configuration error about a flag that came from the
 * environment is rethrown naming the variable instead of the flag: `environment: STRAIT_PORT: ...`.
 */
export function namingEnvironmentVariables<T>(options: Record<string, unknown>, environment: Environment, load: () => T): T {
  try {
    return load();
  } catch (error) {
    throw inEnvironmentTerms(error, options, environment);
  }
}

function inEnvironmentTerms(error: unknown, options: Record<string, unknown>, environment: Environment): unknown {
  if (!(error instanceof StraitError) || error.details['source'] !== 'command line') return error;
  const key = error.details['key'];
  const flag = typeof key === 'string' && key.startsWith('--') ? key.slice(2) : undefined;
  if (flag === undefined || options[camelCase(flag)] !== undefined) return error;
  const value = fromEnvironment(environment, flag);
  if (value === undefined) return error;
  const variable = environmentVariableFor(flag);
  const reason = `${String(error.details['reason'] ?? '')}${serviceLinkHint(variable, value)}`;
  return new StraitError(error.code, { ...error.details, source: 'environment', key: variable, reason }, { cause: error });
}

/**
 * Kubernetes sets `<SERVICE>_PORT=tcp://10.0.0.7:10334` in every pod for every Service of its
 * namespace: a Service named strait-server sets STRAIT_SERVER_PORT. Say so rather than leave the
 * operator puzzling over a value they never wrote.
 */
function serviceLinkHint(variable: string, value: string): string {
  if (!/^(tcp|udp|sctp):\/\//.test(value) || !variable.endsWith('_PORT')) return '';
  const service = variable.slice(0, -'_PORT'.length).toLowerCase().replaceAll('_', '-');
  return `; this looks like the variable Kubernetes sets for a Service named ${service}: set enableServiceLinks: false in the pod spec, or rename the Service`;
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
  // The flags' variables were read here (or deliberately not, by `strait demo`); the token goes on
  // through the environment.
  const withheldEnvironment = [...MEMBER_FLAGS.map((flag) => flag.key), 'dir', 'config']
    .filter((key) => key !== 'admin-token').map(environmentVariableFor);
  return { role, dir: where.dir, config, runArguments, timeoutMs, withheldEnvironment };
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
