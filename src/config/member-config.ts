// Builds a member's validated configuration from command-line flags and its strait.yaml.
//
// The file's keys are the flags' names (kebab-case) plus the declarations that play the role of
// GemFire's cache.xml: `regions`, `gateway-senders` and `gateway-receiver`. Flags override the
// file. Every problem is a coded error naming the key and where it came from:
// STRAIT_CONFIG_UNKNOWN_KEY (with a did-you-mean hint) or STRAIT_CONFIG_INVALID.
//
// This module does no I/O: the CLI reads the file and hands its text here, so the same rules
// apply to tests, the simulator and embedded members.
//
// Parts: config-values.ts parses single values, declarations.ts the cache.xml-like
// declarations; this file knows the member's keys, merges flags over the file and builds the
// locator's or server's configuration.

import { parseDocument } from 'yaml';
import { StraitError } from '../errors.ts';
import {
  DEFAULT_TIMING,
  FRAME_BYTES_MAX_DEFAULT,
  VALUE_BYTES_MAX_DEFAULT,
  ROUTER_PORT_DEFAULT,
  type LocatorConfig,
  type MembershipTiming,
  type RouterConfig,
  type ServerConfig,
} from '../core/config.ts';

import type { Address } from '../runtime/runtime.ts';
import {
  asMapping,
  integerIn,
  invalid,
  oneOf,
  parseAddresses,
  parseHost,
  parseName,
  parsePort,
  parseSiteId,
  parseString,
  unknownKey,
  type Origin,
  type Parser,
} from './config-values.ts';
import { parseDiscovery, type DiscoveryConfig } from './discovery-config.ts';
import { parseTlsSettings, type TlsSettings } from './security-config.ts';
import type { SecurityPolicy } from '../protocol/authentication.ts';
import { substituteEnvironment, type Environment } from './environment.ts';
import { isBindSelector, resolveBindSelector, type NetworkInterfaces } from './interfaces.ts';
import {
  parseGatewayReceiver,
  parseGatewaySenders,
  parseRegions,
  type GatewayReceiverConfig,
  type GatewaySenderConfig,
} from './declarations.ts';

// A member's whole configuration surface is importable from here: the declarations' types and
// defaults, and the did-you-mean helper.
export { closest } from './config-values.ts';
export {
  DECLARATIONS_MAX,
  GATEWAY_BATCH_SIZE_DEFAULT,
  GATEWAY_BATCH_SIZE_MAX,
  GATEWAY_BATCH_TIME_INTERVAL_MS_DEFAULT,
  GATEWAY_DISPATCHER_THREADS_DEFAULT,
  GATEWAY_DISPATCHER_THREADS_MAX,
  GATEWAY_QUEUE_MEMORY_MEGABYTES_DEFAULT,
  GATEWAY_RECEIVER_END_PORT_DEFAULT,
  GATEWAY_RECEIVER_START_PORT_DEFAULT,
  type GatewayReceiverConfig,
  type GatewaySenderConfig,
  type OrderPolicy,
} from './declarations.ts';

export type MemberRole = 'locator' | 'server' | 'router' | 'controller';

/** The environment variable that carries the router mesh's secret (instead of router-secret-file). */
export const ROUTER_SECRET_ENVIRONMENT_VARIABLE = 'STRAIT_ROUTER_SECRET';
/** The shortest router secret accepted: a guessable one would let anyone into the mesh. */
export const ROUTER_SECRET_LENGTH_MIN = 16;

export const LOCATOR_PORT_DEFAULT = 10334;
export const SERVER_PORT_DEFAULT = 40404;
/** Bind every interface, as GemFire does. */
export const BIND_ADDRESS_DEFAULT = '0.0.0.0';
/**
 * What a member advertises when it binds a wildcard address and no `hostname-for-clients` is
 * set. A wildcard cannot be connected to, and the machine's host name may not resolve, so the
 * safe default is loopback: set `hostname-for-clients` for members reached from other machines.
 */
export const WILDCARD_ADVERTISED_HOST = '127.0.0.1';
export const HTTP_PORT_DEFAULT = 0;
export const MEMBER_TIMEOUT_MS_MIN = 100;
export const MEMBER_TIMEOUT_MS_MAX = 3_600_000;
export const FRAME_BYTES_MAX_LIMIT = 1024 * 1024 * 1024;
/** Bounds of `maximum-heap-memory`, MiB: below 64 a member can't start; above 1 TiB is a typo. */
export const HEAP_MEGABYTES_MIN = 64;
export const HEAP_MEGABYTES_MAX = 1024 * 1024;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

interface CommonMemberConfig {
  readonly name: string;
  /** The strait.yaml this configuration was read from, if any. */
  readonly configFile: string | undefined;
  /** Where the admin HTTP API listens: the member's bind host, `http-port`. */
  readonly httpBind: Address;
  /** The host put in URLs and member.json: `hostname-for-clients`, else the bind host. */
  readonly advertisedHost: string;
  readonly logLevel: LogLevel;
  /** undefined = the process decides (pretty in a foreground terminal, JSON in a log file). */
  readonly logFormat: LogFormat | undefined;
  /** Bearer token the admin HTTP API requires, and the admin role on the TCP port; never logged. */
  readonly adminToken: string | undefined;
  /** TLS on every listener and link (security-config.ts); plain TCP when undefined. */
  readonly tls: TlsSettings | undefined;
  /** Where to find the site's locators beyond `locators` (discovery-config.ts). */
  readonly discovery: DiscoveryConfig | undefined;
  /**
   * `maximum-heap-memory`, MiB: the V8 old-generation limit `strait start` gives the member's
   * Node (--max-old-space-size); undefined = Node's default, sized from the machine's memory.
   */
  readonly maximumHeapMegabytes: number | undefined;
}

export interface LocatorMemberConfig extends CommonMemberConfig {
  readonly role: 'locator';
  readonly core: LocatorConfig;
  /** Locators of other sites (`remote-locators`), for WAN discovery. */
  readonly remoteLocators: readonly Address[];
}

export interface ServerMemberConfig extends CommonMemberConfig {
  readonly role: 'server';
  readonly core: ServerConfig;
  /** `gateway-sender-ids` of each declared region, by region name. */
  readonly regionGatewaySenderIds: Readonly<Record<string, readonly string[]>>;
  readonly gatewaySenders: readonly GatewaySenderConfig[];
  readonly gatewayReceiver: GatewayReceiverConfig | undefined;
  /** Absolute path of the conflict-resolver module, if one is configured. */
  readonly conflictResolverModule: string | undefined;
}

export interface RouterMemberConfig extends CommonMemberConfig {
  readonly role: 'router';
  readonly core: RouterConfig;
}

/** The control plane (replication as a service): its REST API, dashboard and state directory. */
export interface ControllerMemberConfig extends CommonMemberConfig {
  readonly role: 'controller';
  /** Where its REST API and dashboard listen (`--port`, default CONTROLLER_PORT_DEFAULT). */
  readonly bind: Address;
  /** The bearer token its API requires (the content of `token-file`); never logged. */
  readonly token: string | undefined;
  /** How long every edge of a topology has to connect before an apply is rolled back. */
  readonly edgeTimeoutMs: number;
}

export const CONTROLLER_PORT_DEFAULT = 9090;
export const CONTROLLER_EDGE_TIMEOUT_MS_DEFAULT = 60_000;

export type MemberConfig = LocatorMemberConfig | ServerMemberConfig | RouterMemberConfig | ControllerMemberConfig;

/**
 * What a configuration may depend on besides its flags and file: the environment (for
 * `${NAME:default}` in strait.yaml) and the machine's interfaces (for `bind-address` selectors).
 * The CLI passes process.env and os.networkInterfaces(); tests pass what they need.
 */
export interface MachineFacts {
  readonly environment: Environment;
  readonly interfaces: NetworkInterfaces;
  /** Reads a file named in the configuration (router-secret-file); throws when it can't. */
  readonly readFile?: (path: string) => string;
}

const NO_MACHINE_FACTS: MachineFacts = { environment: {}, interfaces: {} };

/**
 * A parser of `bind-address`: a host name, an address, or a list of interface selectors
 * (`match-interface:eth0,site-local,loopback`, interfaces.ts) resolved to this machine's address.
 */
export function bindAddressParser(interfaces: NetworkInterfaces): Parser<string> {
  return (value, origin) => {
    if (typeof value === 'string' && isBindSelector(value)) {
      return resolveBindSelector(parseString(value, origin, 1024), interfaces, (reason) => invalid(origin, reason));
    }
    return parseHost(value, origin);
  };
}

/** Flag values as typed on the command line, keyed by the flag's (= the file key's) name. */
export type FlagValues = Readonly<Record<string, string | undefined>>;

/** The text of a strait.yaml and the path it came from (for error messages). */
export interface ConfigFileText {
  readonly path: string;
  readonly text: string;
}

interface KeyDescription {
  readonly roles: readonly MemberRole[];
  /** True when the key can be given as a command-line flag (`--key`). */
  readonly flag: boolean;
}

const BOTH: readonly MemberRole[] = ['locator', 'server'];
const ALL: readonly MemberRole[] = ['locator', 'server', 'router'];
const LOCATOR: readonly MemberRole[] = ['locator'];
const LISTENERS: readonly MemberRole[] = ['locator', 'router', 'controller'];
const CONTROLLER: readonly MemberRole[] = ['controller'];
const EVERY: readonly MemberRole[] = ['locator', 'server', 'router', 'controller'];
const SERVER: readonly MemberRole[] = ['server'];

/** Every top-level key of strait.yaml, and the roles it applies to. docs/CLI.md lists them. */
export const CONFIG_KEYS: Readonly<Record<string, KeyDescription>> = {
  name: { roles: EVERY, flag: true },
  port: { roles: LISTENERS, flag: true },
  'server-port': { roles: SERVER, flag: true },
  'bind-address': { roles: EVERY, flag: true },
  'hostname-for-clients': { roles: EVERY, flag: true },
  /** Routers to register with (members), or the other routers of the mesh (a router). */
  routers: { roles: ALL, flag: true },
  /** A file holding the router mesh's shared secret; else STRAIT_ROUTER_SECRET. */
  'router-secret-file': { roles: ALL, flag: true },
  'site-id': { roles: BOTH, flag: true },
  locators: { roles: BOTH, flag: true },
  'remote-locators': { roles: LOCATOR, flag: true },
  'http-port': { roles: BOTH, flag: true },
  'member-timeout': { roles: BOTH, flag: true },
  'log-level': { roles: EVERY, flag: true },
  'log-format': { roles: EVERY, flag: true },
  /** A file holding the controller API's bearer token. */
  'token-file': { roles: CONTROLLER, flag: true },
  /** How long every edge of a topology has to connect, ms. */
  'edge-timeout': { roles: CONTROLLER, flag: true },
  'admin-token': { roles: BOTH, flag: true },
  /** TLS: a mapping { cert, key, ca, require-client-cert } (security-config.ts), or the tls-* flags. */
  tls: { roles: EVERY, flag: false },
  'tls-cert': { roles: EVERY, flag: true },
  'tls-key': { roles: EVERY, flag: true },
  'tls-ca': { roles: EVERY, flag: true },
  'tls-require-client-cert': { roles: BOTH, flag: true },
  /** A file holding the token clients must present when they have no certificate; else STRAIT_CLIENT_TOKEN. */
  'client-token-file': { roles: BOTH, flag: true },
  /** The member's V8 heap limit, MiB (Node's --max-old-space-size, given by strait start). */
  'maximum-heap-memory': { roles: EVERY, flag: true },
  'frame-bytes-max': { roles: BOTH, flag: true },
  'value-bytes-max': { roles: SERVER, flag: true },
  regions: { roles: SERVER, flag: false },
  'gateway-senders': { roles: SERVER, flag: false },
  'gateway-receiver': { roles: SERVER, flag: false },
  /** Where the site's locators are found beyond `locators` (directory, postgres, dns, kubernetes). */
  discovery: { roles: BOTH, flag: false },
  /** Path (relative to strait.yaml) of a module whose default export decides conflicts. */
  'conflict-resolver': { roles: SERVER, flag: true },
};

const COMMAND_LINE = 'command line';

// --- The file ----------------------------------------------------------------------------------

/** Parses the YAML text of a strait.yaml into its top-level mapping. */
export function parseConfigFile(file: ConfigFileText, environment: Environment = {}): Record<string, unknown> {
  const document = parseDocument(file.text, { prettyErrors: true, uniqueKeys: true });
  const firstError = document.errors[0];
  if (firstError !== undefined) {
    throw new StraitError('STRAIT_CONFIG_INVALID', {
      source: file.path,
      key: '(file)',
      reason: `not valid YAML: ${firstError.message.split('\n')[0] ?? ''}`,
    });
  }
  const parsed = asMapping(document.toJS({ maxAliasCount: 100 }), { source: file.path, key: '(file)', fromCommandLine: false });
  return asMapping(substituteEnvironment(parsed, environment, file.path), { source: file.path, key: '(file)', fromCommandLine: false });
}

// --- Assembling --------------------------------------------------------------------------------

/** A value with where it came from: the command line wins over the file. */
interface Sourced {
  readonly value: unknown;
  readonly origin: Origin;
}

function collect(
  role: MemberRole, flags: FlagValues, file: Record<string, unknown> | undefined, filePath: string | undefined,
): Map<string, Sourced> {
  const notForRole = (origin: Origin, roles: readonly MemberRole[]): StraitError =>
    invalid(origin, `applies to ${roles.join(' and ')}s only; this member is a ${role}`);
  const values = new Map<string, Sourced>();
  const keysForRole = Object.keys(CONFIG_KEYS).filter((key) => CONFIG_KEYS[key]?.roles.includes(role));
  if (file !== undefined && filePath !== undefined) {
    for (const [key, value] of Object.entries(file)) {
      const description = CONFIG_KEYS[key];
      if (description === undefined) throw unknownKey(filePath, key, keysForRole);
      const origin = { source: filePath, key, fromCommandLine: false };
      if (!description.roles.includes(role)) throw notForRole(origin, description.roles);
      if (value !== null && value !== undefined) values.set(key, { value, origin });
    }
  }
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    const description = CONFIG_KEYS[key];
    const flagKeys = keysForRole.filter((candidate) => CONFIG_KEYS[candidate]?.flag === true);
    if (description === undefined || !description.flag) {
      throw unknownKey(COMMAND_LINE, `--${key}`, flagKeys.map((flagKey) => `--${flagKey}`));
    }
    const origin = { source: COMMAND_LINE, key: `--${key}`, fromCommandLine: true };
    if (!description.roles.includes(role)) throw notForRole(origin, description.roles);
    values.set(key, { value, origin });
  }
  return values;
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '0:0:0:0:0:0:0:0';
}

function timingFor(memberTimeoutMs: number): MembershipTiming {
  // Several heartbeats must fit in one member timeout, or a single late one declares a crash.
  const heartbeatIntervalMs =
    Math.max(10, Math.min(DEFAULT_TIMING.heartbeatIntervalMs, Math.floor(memberTimeoutMs / 4)));
  return { ...DEFAULT_TIMING, memberTimeoutMs, heartbeatIntervalMs };
}

/**
 * Builds a member's configuration. `flags` are the command-line values keyed by key name
 * (`server-port`, not `serverPort`); `file` is the strait.yaml text when there is one.
 * Throws STRAIT_CONFIG_UNKNOWN_KEY or STRAIT_CONFIG_INVALID naming the key and its source.
 */
export function buildMemberConfig(
  role: MemberRole, flags: FlagValues, file?: ConfigFileText, machine: MachineFacts = NO_MACHINE_FACTS,
): MemberConfig {
  const fileValues = file === undefined ? undefined : parseConfigFile(file, machine.environment);
  const values = collect(role, flags, fileValues, file?.path);

  const get = <T>(key: string, parse: Parser<T>): T | undefined => {
    const sourced = values.get(key);
    return sourced === undefined ? undefined : parse(sourced.value, sourced.origin);
  };
  const missing = (key: string, reason: string): StraitError =>
    new StraitError('STRAIT_CONFIG_INVALID', { source: file?.path ?? COMMAND_LINE, key, reason });
  const locatorAddresses: Parser<Address[]> = (value, origin) => parseAddresses(value, origin, LOCATOR_PORT_DEFAULT);
  const longText: Parser<string> = (value, origin) => parseString(value, origin, 4096);

  const name = get('name', parseName);
  if (name === undefined) throw missing('name', 'required: give --name or name: in strait.yaml');

  const bindHost = get('bind-address', bindAddressParser(machine.interfaces)) ?? BIND_ADDRESS_DEFAULT;
  const hostnameForClients = get('hostname-for-clients', parseHost);
  const advertisedHost = hostnameForClients ?? (isWildcard(bindHost) ? WILDCARD_ADVERTISED_HOST : bindHost);
  const site = get('site-id', parseSiteId);
  const memberTimeoutMs = get('member-timeout', integerIn(MEMBER_TIMEOUT_MS_MIN, MEMBER_TIMEOUT_MS_MAX))
    ?? DEFAULT_TIMING.memberTimeoutMs;
  const frameBytesMax = get('frame-bytes-max', integerIn(1024, FRAME_BYTES_MAX_LIMIT)) ?? FRAME_BYTES_MAX_DEFAULT;
  const locators = get('locators', locatorAddresses) ?? [];

  const common = {
    name,
    configFile: file?.path,
    httpBind: { host: bindHost, port: get('http-port', parsePort) ?? HTTP_PORT_DEFAULT },
    advertisedHost,
    logLevel: get('log-level', oneOf(LOG_LEVELS)) ?? 'info',
    logFormat: get('log-format', oneOf(LOG_FORMATS)),
    maximumHeapMegabytes: get('maximum-heap-memory', integerIn(HEAP_MEGABYTES_MIN, HEAP_MEGABYTES_MAX)),
    adminToken: get('admin-token', longText),
    tls: parseTlsSettings((key) => values.get(key), (path, origin) => resolveModulePath(path, origin.fromCommandLine ? undefined : file?.path)!),
    discovery: fileValues?.['discovery'] === undefined || fileValues['discovery'] === null
      ? undefined
      : parseDiscovery(fileValues['discovery'], file?.path ?? COMMAND_LINE, LOCATOR_PORT_DEFAULT),
  };
  // Members advertise the configured host; an explicit hostname-for-clients is kept as given
  // (a name is advertised as the name), a wildcard bind is replaced by a connectable address.
  const advertised = hostnameForClients ?? (isWildcard(bindHost) ? WILDCARD_ADVERTISED_HOST : undefined);
  const timing = timingFor(memberTimeoutMs);
  const routerAddresses: Parser<Address[]> = (value, origin) => parseAddresses(value, origin, ROUTER_PORT_DEFAULT);
  const routerList = get('routers', routerAddresses) ?? [];
  const secret = (): string => routerSecret(values, machine, file?.path ?? COMMAND_LINE);

  if (role === 'controller') {
    return {
      ...common,
      role,
      bind: { host: bindHost, port: get('port', parsePort) ?? CONTROLLER_PORT_DEFAULT },
      token: secretFile(values, 'token-file', machine, file?.path ?? COMMAND_LINE),
      edgeTimeoutMs: get('edge-timeout', integerIn(1000, 3_600_000)) ?? CONTROLLER_EDGE_TIMEOUT_MS_DEFAULT,
    };
  }
  if (role === 'router') {
    return {
      ...common,
      role,
      core: {
        name,
        bind: { host: bindHost, port: get('port', parsePort) ?? ROUTER_PORT_DEFAULT },
        hostnameForClients: advertised,
        routers: routerList,
        secret: secret(),
      },
    };
  }
  // Members with routers register with them; without any, no secret is needed.
  const routers = routerList.length === 0 ? {} : { routers: { addresses: routerList, secret: secret() } };
  const security = securityPolicy(values, machine, file?.path ?? COMMAND_LINE, common.tls, common.adminToken);

  if (role === 'locator') {
    return {
      ...common,
      role,
      remoteLocators: get('remote-locators', locatorAddresses) ?? [],
      core: {
        name,
        site: site ?? 1,
        bind: { host: bindHost, port: get('port', parsePort) ?? LOCATOR_PORT_DEFAULT },
        hostnameForClients: advertised,
        locators,
        remoteLocators: get('remote-locators', locatorAddresses) ?? [],
        ...routers,
        security,
        timing,
        frameBytesMax,
        pid: undefined,
        httpAddress: undefined,
      },
    };
  }

  // A shared directory or table holds every site's locators: a server must say which is its own.
  if (site === undefined && (common.discovery?.type === 'directory' || common.discovery?.type === 'postgres')) {
    throw missing('site-id', `required for a server with discovery type ${common.discovery.type}: the store holds the locators of every site, so give --site-id or site-id: in strait.yaml`);
  }
  if (locators.length === 0 && common.discovery === undefined) {
    throw missing('locators', 'required for a server: give --locators host[port],... or locators: in strait.yaml (or discovery:)');
  }
  const source = file?.path ?? COMMAND_LINE;
  const declared = (key: string): unknown => fileValues?.[key];
  // Filter modules resolve against strait.yaml's directory, as conflict-resolver does.
  const gatewaySenders = declared('gateway-senders') === undefined
    ? []
    : parseGatewaySenders(declared('gateway-senders'), source).map((sender) => (sender.eventFilters === undefined ? sender
      : { ...sender, eventFilters: sender.eventFilters.map((path) => resolveModulePath(path, file?.path)!) }));
  const gatewayReceiver = declared('gateway-receiver') === undefined
    ? undefined
    : parseGatewayReceiver(declared('gateway-receiver'), source, bindAddressParser(machine.interfaces));
  const regions = declared('regions') === undefined ? [] : parseRegions(declared('regions'), source, gatewaySenders);
  return {
    ...common,
    role,
    regionGatewaySenderIds: Object.fromEntries(regions.map((region) => [region.spec.name, region.gatewaySenderIds])),
    gatewaySenders,
    gatewayReceiver,
    conflictResolverModule: resolveModulePath(get('conflict-resolver', longText), file?.path),
    core: {
      name,
      site,
      bind: { host: bindHost, port: get('server-port', parsePort) ?? SERVER_PORT_DEFAULT },
      hostnameForClients: advertised,
      locators,
      regions: regions.map((region) => (region.gatewaySenderIds.length > 0
        ? { ...region.spec, gatewaySenderIds: [...region.gatewaySenderIds] }
        : region.spec)),
      ...routers,
      security,
      timing,
      frameBytesMax,
      // A value travels inside a frame with its key, tag and envelope: leave them room, so a put
      // that fits can always be replicated and shipped in a frame of the same limit.
      valueBytesMax: get('value-bytes-max', integerIn(1, valueBytesLimit(frameBytesMax))) ?? Math.min(VALUE_BYTES_MAX_DEFAULT, valueBytesLimit(frameBytesMax)),
      gatewaySenders,
      gatewayReceiver,
      conflictResolver: undefined,
      pid: undefined,
      httpAddress: undefined,
    },
  };
}

/**
 * The secret held by the file `key` names (trimmed; relative to strait.yaml), at least
 * ROUTER_SECRET_LENGTH_MIN characters; undefined when the key is not given. Never put in an error.
 */
function secretFile(values: Map<string, Sourced>, key: string, machine: MachineFacts, source: string): string | undefined {
  const sourced = values.get(key);
  if (sourced === undefined) return undefined;
  const path = resolveModulePath(parseString(sourced.value, sourced.origin, 4096), sourced.origin.fromCommandLine ? undefined : source);
  let text: string;
  try {
    if (machine.readFile === undefined) throw new Error('no file access here');
    text = machine.readFile(path!).trim();
  } catch (error) {
    throw invalid(sourced.origin, `${path} can't be read: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (text.length < ROUTER_SECRET_LENGTH_MIN) throw invalid(sourced.origin, `the secret in ${path} is shorter than ${ROUTER_SECRET_LENGTH_MIN} characters`);
  return text;
}

/** The environment variable that carries the client token (instead of client-token-file). */
export const CLIENT_TOKEN_ENVIRONMENT_VARIABLE = 'STRAIT_CLIENT_TOKEN';

/**
 * What a locator or server asks of clients and admins. A client token needs TLS: without it
 * member roles are not authenticated (anyone may claim to be a server) and the token would cross
 * the network in clear, so it would protect nothing.
 */
function securityPolicy(
  values: Map<string, Sourced>, machine: MachineFacts, source: string, tls: TlsSettings | undefined, adminToken: string | undefined,
): SecurityPolicy {
  const fromFile = secretFile(values, 'client-token-file', machine, source);
  const fromEnvironment = machine.environment[CLIENT_TOKEN_ENVIRONMENT_VARIABLE]?.trim();
  const clientToken = fromFile ?? (fromEnvironment === undefined || fromEnvironment.length === 0 ? undefined : fromEnvironment);
  if (clientToken !== undefined && clientToken.length < ROUTER_SECRET_LENGTH_MIN) {
    throw new StraitError('STRAIT_CONFIG_INVALID', { source: `$${CLIENT_TOKEN_ENVIRONMENT_VARIABLE}`, key: 'client-token-file', reason: `the client token is shorter than ${ROUTER_SECRET_LENGTH_MIN} characters` });
  }
  if (clientToken !== undefined && tls === undefined) {
    throw new StraitError('STRAIT_CONFIG_INVALID', {
      source, key: values.has('client-token-file') ? 'client-token-file' : `$${CLIENT_TOKEN_ENVIRONMENT_VARIABLE}`,
      reason: 'a client token needs tls: without it anyone may claim to be a member and the token crosses the network in clear (see docs/SECURITY.md)',
    });
  }
  return { requireClientCertificate: tls?.requireClientCertificate ?? false, clientToken, adminToken };
}

/**
 * The router mesh's secret: the content of `router-secret-file` (trimmed; relative to
 * strait.yaml), else STRAIT_ROUTER_SECRET. Required for a router and for a member with
 * `routers`; at least ROUTER_SECRET_LENGTH_MIN characters. Never put in an error.
 */
function routerSecret(values: Map<string, Sourced>, machine: MachineFacts, source: string): string {
  const fromFile = secretFile(values, 'router-secret-file', machine, source);
  if (fromFile !== undefined) return fromFile;
  const fromEnvironment = machine.environment[ROUTER_SECRET_ENVIRONMENT_VARIABLE]?.trim();
  if (fromEnvironment !== undefined && fromEnvironment.length > 0) {
    if (fromEnvironment.length < ROUTER_SECRET_LENGTH_MIN) {
      throw new StraitError('STRAIT_CONFIG_INVALID', { source: ROUTER_SECRET_ENVIRONMENT_VARIABLE, key: 'router-secret-file', reason: `${ROUTER_SECRET_ENVIRONMENT_VARIABLE} is shorter than ${ROUTER_SECRET_LENGTH_MIN} characters` });
    }
    return fromEnvironment;
  }
  throw new StraitError('STRAIT_CONFIG_INVALID', { source, key: 'router-secret-file', reason: `routers need the mesh's shared secret: give router-secret-file: PATH (or --router-secret-file) or set ${ROUTER_SECRET_ENVIRONMENT_VARIABLE}` });
}

/**
 * A module path from strait.yaml is relative to the file; from the command line, to the working
 * directory.
 */
function resolveModulePath(path: string | undefined, configFile: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  if (path.startsWith('/')) return path;
  const base = configFile === undefined
    ? process.cwd()
    : configFile.slice(0, configFile.lastIndexOf('/') + 1) || process.cwd();
  return `${base.endsWith('/') ? base : `${base}/`}${path}`;
}

/** Room a frame leaves beside one value: a key of up to 4096 characters, its tag, the envelope. */
export const FRAME_ENVELOPE_BYTES_MAX = 16 * 1024;

/** The largest value a member whose frames hold `frameBytesMax` bytes accepts. */
function valueBytesLimit(frameBytesMax: number): number {
  return Math.max(1, frameBytesMax - FRAME_ENVELOPE_BYTES_MAX);
}
