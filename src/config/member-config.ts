// Builds a member's validated configuration from command-line flags and its strait.yaml.
//
// The file's keys are the flags' names (kebab-case) plus the declarations that play the role of
// GemFire's cache.xml: `regions`, `gateway-senders` and `gateway-receiver`. Flags override the
// file. Every problem is a coded error naming the key and where it came from:
// STRAIT_CONFIG_UNKNOWN_KEY (with a did-you-mean hint) or STRAIT_CONFIG_INVALID.
//
// This module does no I/O: the CLI reads the file and hands its text here, so the same rules
// apply to tests, the simulator and embedded members.

import { parseDocument } from 'yaml';
import { StraitError } from '../errors.ts';
import {
  DEFAULT_TIMING,
  FRAME_BYTES_MAX_DEFAULT,
  GATEWAY_QUEUE_DISK_MEGABYTES_DEFAULT,
  VALUE_BYTES_MAX_DEFAULT,
  type LocatorConfig,
  type MembershipTiming,
  type ServerConfig,
  type GatewaySenderSpec,
  type GatewayReceiverSpec,
} from '../core/config.ts';
import type { RegionSpec } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';
import { parseAddress, parseAddressList } from './address.ts';

export type MemberRole = 'locator' | 'server';

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
export const GATEWAY_RECEIVER_START_PORT_DEFAULT = 5000;
export const GATEWAY_RECEIVER_END_PORT_DEFAULT = 5500;
export const GATEWAY_BATCH_SIZE_DEFAULT = 100;
export const GATEWAY_BATCH_SIZE_MAX = 100_000;
export const GATEWAY_BATCH_TIME_INTERVAL_MS_DEFAULT = 1000;
export const GATEWAY_QUEUE_MEMORY_MEGABYTES_DEFAULT = 100;
export const GATEWAY_DISPATCHER_THREADS_DEFAULT = 1;
export const GATEWAY_DISPATCHER_THREADS_MAX = 64;
/** Most entries a single config file may declare in `regions` or `gateway-senders`. */
export const DECLARATIONS_MAX = 10_000;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
const ORDER_POLICIES = ['key', 'thread', 'partition'] as const;
export type OrderPolicy = (typeof ORDER_POLICIES)[number];

/** A gateway sender declared in strait.yaml (`gateway-senders.<id>`); the server runs it. */
export type GatewaySenderConfig = GatewaySenderSpec;

/** The gateway receiver declared in strait.yaml (`gateway-receiver`); the server runs it. */
export type GatewayReceiverConfig = GatewayReceiverSpec;

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
  /** Bearer token the admin HTTP API requires; never logged. */
  readonly adminToken: string | undefined;
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

export type MemberConfig = LocatorMemberConfig | ServerMemberConfig;

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
const LOCATOR: readonly MemberRole[] = ['locator'];
const SERVER: readonly MemberRole[] = ['server'];

/** Every top-level key of strait.yaml, and the roles it applies to. docs/CLI.md lists them. */
export const CONFIG_KEYS: Readonly<Record<string, KeyDescription>> = {
  name: { roles: BOTH, flag: true },
  port: { roles: LOCATOR, flag: true },
  'server-port': { roles: SERVER, flag: true },
  'bind-address': { roles: BOTH, flag: true },
  'hostname-for-clients': { roles: BOTH, flag: true },
  'site-id': { roles: BOTH, flag: true },
  locators: { roles: BOTH, flag: true },
  'remote-locators': { roles: LOCATOR, flag: true },
  'http-port': { roles: BOTH, flag: true },
  'member-timeout': { roles: BOTH, flag: true },
  'log-level': { roles: BOTH, flag: true },
  'log-format': { roles: BOTH, flag: true },
  'admin-token': { roles: BOTH, flag: true },
  'frame-bytes-max': { roles: BOTH, flag: true },
  'value-bytes-max': { roles: SERVER, flag: true },
  regions: { roles: SERVER, flag: false },
  'gateway-senders': { roles: SERVER, flag: false },
  'gateway-receiver': { roles: SERVER, flag: false },
  /** Path (relative to strait.yaml) of a module whose default export decides conflicts. */
  'conflict-resolver': { roles: SERVER, flag: true },
};

const REGION_KEYS = ['type', 'persistent', 'gateway-sender-ids'] as const;
const GATEWAY_SENDER_KEYS = [
  'remote-site-id',
  'parallel',
  'batch-size',
  'batch-time-interval',
  'maximum-queue-memory',
  'maximum-queue-disk',
  'persistent',
  'enable-persistence',
  'dispatcher-threads',
  'order-policy',
  'batch-conflation',
  'manual-start',
  'compression',
] as const;
const GATEWAY_RECEIVER_KEYS = ['start-port', 'end-port', 'bind-address', 'hostname-for-clients', 'manual-start'] as const;

const COMMAND_LINE = 'command line';

/** Where one value came from, for error messages. */
interface Origin {
  readonly source: string;
  /** The key as the user wrote it: `--port` on the command line, `regions.TEST.type` in a file. */
  readonly key: string;
  /** Command-line values are always strings; file values keep their YAML type. */
  readonly fromCommandLine: boolean;
}

function invalid(origin: Origin, reason: string): StraitError {
  return new StraitError('STRAIT_CONFIG_INVALID', { source: origin.source, key: origin.key, reason });
}

function unknownKey(source: string, key: string, candidates: readonly string[]): StraitError {
  const suggestion = closest(key.split('.').at(-1) ?? key, candidates);
  const hint = suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`;
  return new StraitError('STRAIT_CONFIG_UNKNOWN_KEY', { source, key, hint });
}

// --- Did-you-mean -------------------------------------------------------------------------------

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The candidate nearest to `key`, if it is near enough to be a typo of it. */
export function closest(key: string, candidates: readonly string[]): string | undefined {
  const normalized = key.toLowerCase().replaceAll('_', '-');
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = normalized === candidate ? 0 : editDistance(normalized, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const allowed = Math.max(2, Math.floor(key.length / 3));
  return bestDistance <= allowed ? best : undefined;
}

// --- Scalar parsers ----------------------------------------------------------------------------

function parseInteger(value: unknown, origin: Origin, minimum: number, maximum: number): number {
  let number: number;
  if (typeof value === 'number') number = value;
  else if (typeof value === 'string' && /^-?[0-9]+$/.test(value.trim())) number = Number(value.trim());
  else throw invalid(origin, `expected an integer from ${minimum} to ${maximum}, got ${describe(value)}`);
  if (!Number.isInteger(number) || number < minimum || number > maximum) {
    throw invalid(origin, `expected an integer from ${minimum} to ${maximum}, got ${describe(value)}`);
  }
  return number;
}

function parsePort(value: unknown, origin: Origin): number {
  return parseInteger(value, origin, 0, 65535);
}

function parseSiteId(value: unknown, origin: Origin): number {
  return parseInteger(value, origin, 1, 255);
}

function parseBoolean(value: unknown, origin: Origin): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw invalid(origin, `expected true or false, got ${describe(value)}`);
}

function parseString(value: unknown, origin: Origin, lengthMax = 256): string {
  if (typeof value !== 'string' || value.trim().length === 0) {
    throw invalid(origin, `expected a non-empty string, got ${describe(value)}`);
  }
  if (value.length > lengthMax) throw invalid(origin, `longer than ${lengthMax} characters`);
  return value.trim();
}

function parseChoice<T extends string>(value: unknown, origin: Origin, choices: readonly T[]): T {
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw invalid(origin, `expected one of ${choices.join(', ')}, got ${describe(value)}`);
}

// Member and region names end up in file names and log lines.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function parseName(value: unknown, origin: Origin): string {
  const name = parseString(value, origin);
  if (!NAME_PATTERN.test(name)) {
    throw invalid(origin, `${JSON.stringify(name)} must start with a letter or digit and hold only letters, digits, '.', '_' and '-'`);
  }
  return name;
}

function parseHost(value: unknown, origin: Origin): string {
  const host = parseString(value, origin, 253);
  try {
    // A host is an address without a port: reuse the address rules with a placeholder port.
    return parseAddress(host, 1).host;
  } catch (cause) {
    if (cause instanceof StraitError) throw invalid(origin, `${JSON.stringify(host)} is not a host name or IP address`);
    throw cause;
  }
}

function parseAddresses(value: unknown, origin: Origin, defaultPort: number): Address[] {
  const text = Array.isArray(value) ? value.map((item) => (typeof item === 'string' ? item : describe(item))).join(',') : value;
  if (typeof text !== 'string') throw invalid(origin, `expected a list of host[port], got ${describe(value)}`);
  try {
    return parseAddressList(text, defaultPort);
  } catch (cause) {
    if (cause instanceof StraitError) throw invalid(origin, cause.message);
    throw cause;
  }
}

function parseStringList(value: unknown, origin: Origin): string[] {
  if (typeof value === 'string') return value.split(',').map((item) => item.trim()).filter((item) => item.length > 0);
  if (!Array.isArray(value)) throw invalid(origin, `expected a list of names, got ${describe(value)}`);
  return value.map((item, index) => parseName(item, { ...origin, key: `${origin.key}[${index}]` }));
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

function asMapping(value: unknown, origin: Origin): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid(origin, `expected a mapping, got ${describe(value)}`);
  return value as Record<string, unknown>;
}

// --- The file ----------------------------------------------------------------------------------

/** Parses the YAML text of a strait.yaml into its top-level mapping. */
export function parseConfigFile(file: ConfigFileText): Record<string, unknown> {
  const document = parseDocument(file.text, { prettyErrors: true, uniqueKeys: true });
  const firstError = document.errors[0];
  if (firstError !== undefined) {
    throw new StraitError('STRAIT_CONFIG_INVALID', {
      source: file.path,
      key: '(file)',
      reason: `not valid YAML: ${firstError.message.split('\n')[0] ?? ''}`,
    });
  }
  return asMapping(document.toJS({ maxAliasCount: 100 }), { source: file.path, key: '(file)', fromCommandLine: false });
}

// --- Declarations ------------------------------------------------------------------------------

function checkKeys(mapping: Record<string, unknown>, allowed: readonly string[], source: string, prefix: string): void {
  for (const key of Object.keys(mapping)) {
    if (!allowed.includes(key)) throw unknownKey(source, `${prefix}.${key}`, allowed);
  }
}

function parseGatewaySenders(value: unknown, source: string): GatewaySenderConfig[] {
  const senders = asMapping(value, { source, key: 'gateway-senders', fromCommandLine: false });
  const ids = Object.keys(senders);
  if (ids.length > DECLARATIONS_MAX) {
    throw invalid({ source, key: 'gateway-senders', fromCommandLine: false }, `more than ${DECLARATIONS_MAX} senders`);
  }
  return ids.map((id) => {
    const prefix = `gateway-senders.${id}`;
    parseName(id, { source, key: prefix, fromCommandLine: false });
    const settings = asMapping(senders[id], { source, key: prefix, fromCommandLine: false });
    checkKeys(settings, GATEWAY_SENDER_KEYS, source, prefix);
    const at = (key: string): Origin => ({ source, key: `${prefix}.${key}`, fromCommandLine: false });
    const optional = <T>(key: string, parse: (value: unknown, origin: Origin) => T, fallback: T): T =>
      settings[key] === undefined ? fallback : parse(settings[key], at(key));
    if (settings['remote-site-id'] === undefined) throw invalid(at('remote-site-id'), 'required: the site this sender replicates to');
    // Settings of roadmap step 4 (HA and scale) are refused rather than silently ignored.
    const notYet = (key: string, what: string) => {
      throw invalid(at(key), `${what} is not supported yet (roadmap step 4: partitioned regions, parallel senders, dispatcher threads, conflation); remove it to use a serial sender`);
    };
    if (optional('parallel', parseBoolean, false)) notYet('parallel', 'a parallel sender');
    if (optional('dispatcher-threads', (v, o) => parseInteger(v, o, 1, GATEWAY_DISPATCHER_THREADS_MAX), GATEWAY_DISPATCHER_THREADS_DEFAULT) > 1) notYet('dispatcher-threads', 'more than one dispatcher thread');
    if (optional('batch-conflation', parseBoolean, false)) notYet('batch-conflation', 'batch conflation');
    return {
      id,
      remoteSiteId: parseSiteId(settings['remote-site-id'], at('remote-site-id')),
      parallel: optional('parallel', parseBoolean, false),
      batchSize: optional('batch-size', (v, o) => parseInteger(v, o, 1, GATEWAY_BATCH_SIZE_MAX), GATEWAY_BATCH_SIZE_DEFAULT),
      batchTimeIntervalMs: optional('batch-time-interval', (v, o) => parseInteger(v, o, 1, 3_600_000), GATEWAY_BATCH_TIME_INTERVAL_MS_DEFAULT),
      maximumQueueMemoryMegabytes: optional('maximum-queue-memory', (v, o) => parseInteger(v, o, 1, 1_048_576), GATEWAY_QUEUE_MEMORY_MEGABYTES_DEFAULT),
      maximumQueueDiskMegabytes: optional('maximum-queue-disk', (v, o) => parseInteger(v, o, 1, 1_073_741_824), GATEWAY_QUEUE_DISK_MEGABYTES_DEFAULT),
      // `enable-persistence` is Geode's (and the issue's) name for the same setting.
      persistent: optional('persistent', parseBoolean, optional('enable-persistence', parseBoolean, false)),
      dispatcherThreads: optional('dispatcher-threads', (v, o) => parseInteger(v, o, 1, GATEWAY_DISPATCHER_THREADS_MAX), GATEWAY_DISPATCHER_THREADS_DEFAULT),
      orderPolicy: optional('order-policy', (v, o) => parseChoice(v, o, ORDER_POLICIES), 'key'),
      batchConflation: optional('batch-conflation', parseBoolean, false),
      manualStart: optional('manual-start', parseBoolean, false),
      compression: optional('compression', parseBoolean, false),
    };
  });
}

function parseGatewayReceiver(value: unknown, source: string): GatewayReceiverConfig {
  const settings = asMapping(value, { source, key: 'gateway-receiver', fromCommandLine: false });
  checkKeys(settings, GATEWAY_RECEIVER_KEYS, source, 'gateway-receiver');
  const at = (key: string): Origin => ({ source, key: `gateway-receiver.${key}`, fromCommandLine: false });
  const startPort = settings['start-port'] === undefined ? GATEWAY_RECEIVER_START_PORT_DEFAULT : parsePort(settings['start-port'], at('start-port'));
  const endPort = settings['end-port'] === undefined ? GATEWAY_RECEIVER_END_PORT_DEFAULT : parsePort(settings['end-port'], at('end-port'));
  if (startPort > endPort) throw invalid(at('end-port'), `end-port ${endPort} is below start-port ${startPort}`);
  return {
    startPort,
    endPort,
    bindAddress: settings['bind-address'] === undefined ? undefined : parseHost(settings['bind-address'], at('bind-address')),
    hostnameForClients:
      settings['hostname-for-clients'] === undefined ? undefined : parseHost(settings['hostname-for-clients'], at('hostname-for-clients')),
    manualStart: settings['manual-start'] === undefined ? false : parseBoolean(settings['manual-start'], at('manual-start')),
  };
}

interface RegionDeclaration {
  readonly spec: RegionSpec;
  readonly gatewaySenderIds: readonly string[];
}

function parseRegions(value: unknown, source: string, senders: readonly GatewaySenderConfig[]): RegionDeclaration[] {
  const regions = asMapping(value, { source, key: 'regions', fromCommandLine: false });
  const names = Object.keys(regions);
  if (names.length > DECLARATIONS_MAX) {
    throw invalid({ source, key: 'regions', fromCommandLine: false }, `more than ${DECLARATIONS_MAX} regions`);
  }
  return names.map((name) => {
    const prefix = `regions.${name}`;
    parseName(name, { source, key: prefix, fromCommandLine: false });
    const at = (key: string): Origin => ({ source, key: `${prefix}.${key}`, fromCommandLine: false });
    const settings = asMapping(regions[name], { source, key: prefix, fromCommandLine: false });
    // The type decides which other keys make sense, so it is checked first.
    const type = settings['type'] === undefined ? 'replicate' : parseChoice(settings['type'], at('type'), ['replicate', 'partition'] as const);
    if (type === 'partition') {
      throw invalid(at('type'), 'partition regions are not implemented yet in this release; use type: replicate');
    }
    checkKeys(settings, REGION_KEYS, source, prefix);
    const persistent = settings['persistent'] === undefined ? false : parseBoolean(settings['persistent'], at('persistent'));
    const gatewaySenderIds =
      settings['gateway-sender-ids'] === undefined ? [] : parseStringList(settings['gateway-sender-ids'], at('gateway-sender-ids'));
    for (const id of gatewaySenderIds) {
      const sender = senders.find((candidate) => candidate.id === id);
      if (sender === undefined) {
        const declared = senders.length === 0 ? 'none are declared' : `declared: ${senders.map((s) => s.id).join(', ')}`;
        throw invalid(at('gateway-sender-ids'), `no gateway sender ${id} in gateway-senders (${declared})`);
      }
      if (sender.parallel) {
        throw invalid(at('gateway-sender-ids'), `sender ${id} is parallel; a replicate region can only use serial senders`);
      }
    }
    return { spec: { name, type, persistent }, gatewaySenderIds };
  });
}

// --- Assembling --------------------------------------------------------------------------------

/** A value with where it came from: the command line wins over the file. */
interface Sourced {
  readonly value: unknown;
  readonly origin: Origin;
}

function collect(role: MemberRole, flags: FlagValues, file: Record<string, unknown> | undefined, filePath: string | undefined): Map<string, Sourced> {
  const values = new Map<string, Sourced>();
  const keysForRole = Object.keys(CONFIG_KEYS).filter((key) => CONFIG_KEYS[key]?.roles.includes(role));
  if (file !== undefined && filePath !== undefined) {
    for (const [key, value] of Object.entries(file)) {
      const description = CONFIG_KEYS[key];
      if (description === undefined) throw unknownKey(filePath, key, keysForRole);
      const origin = { source: filePath, key, fromCommandLine: false };
      if (!description.roles.includes(role)) throw invalid(origin, `applies to ${description.roles.join(' and ')}s only; this member is a ${role}`);
      if (value !== null && value !== undefined) values.set(key, { value, origin });
    }
  }
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    const description = CONFIG_KEYS[key];
    const flagKeys = keysForRole.filter((candidate) => CONFIG_KEYS[candidate]?.flag === true);
    if (description === undefined || !description.flag) throw unknownKey(COMMAND_LINE, `--${key}`, flagKeys.map((k) => `--${k}`));
    const origin = { source: COMMAND_LINE, key: `--${key}`, fromCommandLine: true };
    if (!description.roles.includes(role)) throw invalid(origin, `applies to ${description.roles.join(' and ')}s only; this member is a ${role}`);
    values.set(key, { value, origin });
  }
  return values;
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '0:0:0:0:0:0:0:0';
}

function timingFor(memberTimeoutMs: number): MembershipTiming {
  // Several heartbeats must fit in one member timeout, or a single late one declares a crash.
  const heartbeatIntervalMs = Math.max(10, Math.min(DEFAULT_TIMING.heartbeatIntervalMs, Math.floor(memberTimeoutMs / 4)));
  return { ...DEFAULT_TIMING, memberTimeoutMs, heartbeatIntervalMs };
}

/**
 * Builds a member's configuration. `flags` are the command-line values keyed by key name
 * (`server-port`, not `serverPort`); `file` is the strait.yaml text when there is one.
 * Throws STRAIT_CONFIG_UNKNOWN_KEY or STRAIT_CONFIG_INVALID naming the key and its source.
 */
export function buildMemberConfig(role: MemberRole, flags: FlagValues, file?: ConfigFileText): MemberConfig {
  const fileValues = file === undefined ? undefined : parseConfigFile(file);
  const values = collect(role, flags, fileValues, file?.path);

  const get = <T>(key: string, parse: (value: unknown, origin: Origin) => T): T | undefined => {
    const sourced = values.get(key);
    return sourced === undefined ? undefined : parse(sourced.value, sourced.origin);
  };
  const missing = (key: string, reason: string): StraitError =>
    new StraitError('STRAIT_CONFIG_INVALID', { source: file?.path ?? COMMAND_LINE, key, reason });

  const name = get('name', parseName);
  if (name === undefined) throw missing('name', 'required: give --name or name: in strait.yaml');

  const bindHost = get('bind-address', parseHost) ?? BIND_ADDRESS_DEFAULT;
  const hostnameForClients = get('hostname-for-clients', parseHost);
  const advertisedHost = hostnameForClients ?? (isWildcard(bindHost) ? WILDCARD_ADVERTISED_HOST : bindHost);
  const site = get('site-id', parseSiteId);
  const memberTimeoutMs = get('member-timeout', (v, o) => parseInteger(v, o, MEMBER_TIMEOUT_MS_MIN, MEMBER_TIMEOUT_MS_MAX)) ?? DEFAULT_TIMING.memberTimeoutMs;
  const frameBytesMax = get('frame-bytes-max', (v, o) => parseInteger(v, o, 1024, FRAME_BYTES_MAX_LIMIT)) ?? FRAME_BYTES_MAX_DEFAULT;
  const locators = get('locators', (v, o) => parseAddresses(v, o, LOCATOR_PORT_DEFAULT)) ?? [];

  const common = {
    name,
    configFile: file?.path,
    httpBind: { host: bindHost, port: get('http-port', parsePort) ?? HTTP_PORT_DEFAULT },
    advertisedHost,
    logLevel: get('log-level', (v, o) => parseChoice(v, o, LOG_LEVELS)) ?? 'info',
    logFormat: get('log-format', (v, o) => parseChoice(v, o, LOG_FORMATS)),
    adminToken: get('admin-token', (v, o) => parseString(v, o, 4096)),
  };
  // Members advertise the configured host; an explicit hostname-for-clients is kept as given
  // (a name is advertised as the name), a wildcard bind is replaced by a connectable address.
  const advertised = hostnameForClients ?? (isWildcard(bindHost) ? WILDCARD_ADVERTISED_HOST : undefined);
  const timing = timingFor(memberTimeoutMs);

  if (role === 'locator') {
    return {
      ...common,
      role,
      remoteLocators: get('remote-locators', (v, o) => parseAddresses(v, o, LOCATOR_PORT_DEFAULT)) ?? [],
      core: {
        name,
        site: site ?? 1,
        bind: { host: bindHost, port: get('port', parsePort) ?? LOCATOR_PORT_DEFAULT },
        hostnameForClients: advertised,
        locators,
        remoteLocators: get('remote-locators', (v, o) => parseAddresses(v, o, LOCATOR_PORT_DEFAULT)) ?? [],
        timing,
        frameBytesMax,
        pid: undefined,
        httpAddress: undefined,
      },
    };
  }

  if (locators.length === 0) throw missing('locators', 'required for a server: give --locators host[port],... or locators: in strait.yaml');
  const source = file?.path ?? COMMAND_LINE;
  const gatewaySenders = fileValues?.['gateway-senders'] === undefined ? [] : parseGatewaySenders(fileValues['gateway-senders'], source);
  const gatewayReceiver = fileValues?.['gateway-receiver'] === undefined ? undefined : parseGatewayReceiver(fileValues['gateway-receiver'], source);
  const regions = fileValues?.['regions'] === undefined ? [] : parseRegions(fileValues['regions'], source, gatewaySenders);
  return {
    ...common,
    role,
    regionGatewaySenderIds: Object.fromEntries(regions.map((region) => [region.spec.name, region.gatewaySenderIds])),
    gatewaySenders,
    gatewayReceiver,
    conflictResolverModule: resolveModulePath(get('conflict-resolver', (v, o) => parseString(v, o, 4096)), file?.path),
    core: {
      name,
      site,
      bind: { host: bindHost, port: get('server-port', parsePort) ?? SERVER_PORT_DEFAULT },
      hostnameForClients: advertised,
      locators,
      regions: regions.map((region) => region.gatewaySenderIds.length > 0 ? { ...region.spec, gatewaySenderIds: [...region.gatewaySenderIds] } : region.spec),
      timing,
      frameBytesMax,
      valueBytesMax: get('value-bytes-max', (v, o) => parseInteger(v, o, 1, frameBytesMax)) ?? VALUE_BYTES_MAX_DEFAULT,
      gatewaySenders,
      gatewayReceiver,
      conflictResolver: undefined,
      pid: undefined,
      httpAddress: undefined,
    },
  };
}

/** A module path from strait.yaml is relative to the file; from the command line, to the working directory. */
function resolveModulePath(path: string | undefined, configFile: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  if (path.startsWith('/')) return path;
  const base = configFile === undefined ? process.cwd() : configFile.slice(0, configFile.lastIndexOf('/') + 1) || process.cwd();
  return `${base.endsWith('/') ? base : `${base}/`}${path}`;
}
