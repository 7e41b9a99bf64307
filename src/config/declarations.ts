// The declarations of a server's strait.yaml that play the role of GemFire's cache.xml:
// `gateway-senders.<id>`, `gateway-receiver` and `regions.<name>`, each checked key by key into
// the core's specs. A region may name only senders declared beside it, and only serial ones;
// settings that are not supported yet (parallel senders, several dispatcher threads, conflation,
// partitioned regions) are refused, never silently ignored. At most DECLARATIONS_MAX entries
// per kind.

import {
  GATEWAY_BATCH_SIZE_DEFAULT,
  GATEWAY_BATCH_SIZE_MAX,
  GATEWAY_BATCH_TIME_INTERVAL_MS_DEFAULT,
  GATEWAY_DISPATCHER_THREADS_DEFAULT,
  GATEWAY_QUEUE_DISK_MEGABYTES_DEFAULT,
  GATEWAY_QUEUE_MEMORY_MEGABYTES_DEFAULT,
  GATEWAY_RECEIVER_END_PORT_DEFAULT,
  GATEWAY_RECEIVER_START_PORT_DEFAULT,
  PARTITION_DEFAULTS,
  orderPolicyMismatch,
  senderMismatch,
  type GatewayReceiverSpec,
  type GatewaySenderSpec,
} from '../core/config.ts';
import { PARTITION_BUCKETS_MAX, PARTITION_REDUNDANT_COPIES_MAX, type RegionSpec } from '../protocol/messages.ts';
import {
  asMapping,
  checkKeys,
  integerIn,
  invalid,
  oneOf,
  parseBoolean,
  parseHost,
  parseName,
  parsePort,
  parseSiteId,
  parsePathList,
  parseStringList,
  type Origin,
  type Parser,
} from './config-values.ts';

export {
  GATEWAY_RECEIVER_START_PORT_DEFAULT,
  GATEWAY_RECEIVER_END_PORT_DEFAULT,
  GATEWAY_BATCH_SIZE_DEFAULT,
  GATEWAY_BATCH_SIZE_MAX,
  GATEWAY_BATCH_TIME_INTERVAL_MS_DEFAULT,
  GATEWAY_QUEUE_MEMORY_MEGABYTES_DEFAULT,
  GATEWAY_DISPATCHER_THREADS_DEFAULT,
} from '../core/config.ts';
export const GATEWAY_DISPATCHER_THREADS_MAX = 64;
/** Most entries a single config file may declare in `regions` or `gateway-senders`. */
export const DECLARATIONS_MAX = 10_000;

const ORDER_POLICIES = ['key', 'thread', 'partition'] as const;
export type OrderPolicy = (typeof ORDER_POLICIES)[number];

/** A gateway sender declared in strait.yaml (`gateway-senders.<id>`); the server runs it. */
export type GatewaySenderConfig = GatewaySenderSpec;

/** The gateway receiver declared in strait.yaml (`gateway-receiver`); the server runs it. */
export type GatewayReceiverConfig = GatewayReceiverSpec;

const REGION_KEYS = ['type', 'persistent', 'gateway-sender-ids'] as const;
const PARTITION_KEYS = [...REGION_KEYS, 'total-num-buckets', 'redundant-copies', 'recovery-delay', 'startup-recovery-delay'] as const;
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
  'gateway-event-filters',
] as const;
const GATEWAY_RECEIVER_KEYS = [
  'start-port', 'end-port', 'bind-address', 'hostname-for-clients', 'manual-start', 'dial-out',
] as const;

/** The settings of one declaration (`<prefix>.<key>`): where each came from, and each read with a default. */
function declarationSettings(settings: Record<string, unknown>, source: string, prefix: string) {
  const at = (key: string): Origin => ({ source, key: `${prefix}.${key}`, fromCommandLine: false });
  const optional = <T>(key: string, parse: Parser<T>, fallback: T): T =>
    settings[key] === undefined ? fallback : parse(settings[key], at(key));
  return { at, optional };
}

export function parseGatewaySenders(value: unknown, source: string): GatewaySenderConfig[] {
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
    const { at, optional } = declarationSettings(settings, source, prefix);
    if (settings['remote-site-id'] === undefined) {
      throw invalid(at('remote-site-id'), 'required: the site this sender replicates to');
    }
    const dispatcherThreads = integerIn(1, GATEWAY_DISPATCHER_THREADS_MAX);
    const parallel = optional('parallel', parseBoolean, false);
    const orderPolicy = optional('order-policy', oneOf(ORDER_POLICIES), 'key');
    const policyMismatch = orderPolicyMismatch(orderPolicy, parallel);
    if (policyMismatch !== undefined) throw invalid(at('order-policy'), policyMismatch);
    return {
      id,
      remoteSiteId: parseSiteId(settings['remote-site-id'], at('remote-site-id')),
      parallel,
      batchSize: optional('batch-size', integerIn(1, GATEWAY_BATCH_SIZE_MAX), GATEWAY_BATCH_SIZE_DEFAULT),
      batchTimeIntervalMs:
        optional('batch-time-interval', integerIn(1, 3_600_000), GATEWAY_BATCH_TIME_INTERVAL_MS_DEFAULT),
      maximumQueueMemoryMegabytes:
        optional('maximum-queue-memory', integerIn(1, 1_048_576), GATEWAY_QUEUE_MEMORY_MEGABYTES_DEFAULT),
      maximumQueueDiskMegabytes:
        optional('maximum-queue-disk', integerIn(1, 1_073_741_824), GATEWAY_QUEUE_DISK_MEGABYTES_DEFAULT),
      // `enable-persistence` is Geode's (and the issue's) name for the same setting.
      persistent: optional('persistent', parseBoolean, optional('enable-persistence', parseBoolean, false)),
      dispatcherThreads: optional('dispatcher-threads', dispatcherThreads, GATEWAY_DISPATCHER_THREADS_DEFAULT),
      orderPolicy,
      batchConflation: optional('batch-conflation', parseBoolean, false),
      manualStart: optional('manual-start', parseBoolean, false),
      compression: optional('compression', parseBoolean, false),
      ...(settings['gateway-event-filters'] !== undefined ? { eventFilters: optional('gateway-event-filters', parsePathList, []) } : {}),
    };
  });
}

export function parseGatewayReceiver(value: unknown, source: string, parseBindAddress: Parser<string> = parseHost): GatewayReceiverConfig {
  const settings = asMapping(value, { source, key: 'gateway-receiver', fromCommandLine: false });
  checkKeys(settings, GATEWAY_RECEIVER_KEYS, source, 'gateway-receiver');
  const { at, optional } = declarationSettings(settings, source, 'gateway-receiver');
  const startPort = optional('start-port', parsePort, GATEWAY_RECEIVER_START_PORT_DEFAULT);
  const endPort = optional('end-port', parsePort, GATEWAY_RECEIVER_END_PORT_DEFAULT);
  if (startPort > endPort) throw invalid(at('end-port'), `end-port ${endPort} is below start-port ${startPort}`);
  return {
    startPort,
    endPort,
    bindAddress: optional('bind-address', parseBindAddress, undefined),
    hostnameForClients: optional('hostname-for-clients', parseHost, undefined),
    manualStart: optional('manual-start', parseBoolean, false),
    dialOut: optional('dial-out', parseBoolean, false),
  };
}

/** A region declared in strait.yaml (`regions.<name>`) and the gateway senders it ships through. */
export interface RegionDeclaration {
  readonly spec: RegionSpec;
  readonly gatewaySenderIds: readonly string[];
}

export function parseRegions(
  value: unknown, source: string, senders: readonly GatewaySenderConfig[],
): RegionDeclaration[] {
  const regions = asMapping(value, { source, key: 'regions', fromCommandLine: false });
  const names = Object.keys(regions);
  if (names.length > DECLARATIONS_MAX) {
    throw invalid({ source, key: 'regions', fromCommandLine: false }, `more than ${DECLARATIONS_MAX} regions`);
  }
  return names.map((name) => {
    const prefix = `regions.${name}`;
    parseName(name, { source, key: prefix, fromCommandLine: false });
    const settings = asMapping(regions[name], { source, key: prefix, fromCommandLine: false });
    const { at, optional } = declarationSettings(settings, source, prefix);
    // The type decides which other keys make sense, so it is checked first.
    const type = optional('type', oneOf(['replicate', 'partition'] as const), 'replicate');
    checkKeys(settings, type === 'partition' ? PARTITION_KEYS : REGION_KEYS, source, prefix);
    const partition = type !== 'partition' ? undefined : {
      totalNumBuckets: optional('total-num-buckets', integerIn(1, PARTITION_BUCKETS_MAX), PARTITION_DEFAULTS.totalNumBuckets),
      redundantCopies: optional('redundant-copies', integerIn(0, PARTITION_REDUNDANT_COPIES_MAX), PARTITION_DEFAULTS.redundantCopies),
      recoveryDelayMs: optional('recovery-delay', integerIn(-1, 86_400_000), PARTITION_DEFAULTS.recoveryDelayMs),
      startupRecoveryDelayMs: optional('startup-recovery-delay', integerIn(-1, 86_400_000), PARTITION_DEFAULTS.startupRecoveryDelayMs),
    };
    const persistent = optional('persistent', parseBoolean, false);
    const gatewaySenderIds: readonly string[] = optional('gateway-sender-ids', parseStringList, []);
    for (const id of gatewaySenderIds) {
      const sender = senders.find((candidate) => candidate.id === id);
      if (sender === undefined) {
        const declared = senders.length === 0
          ? 'none are declared'
          : `declared: ${senders.map((declaredSender) => declaredSender.id).join(', ')}`;
        throw invalid(at('gateway-sender-ids'), `no gateway sender ${id} in gateway-senders (${declared})`);
      }
      const reason = senderMismatch(type, name, id, sender.parallel);
      if (reason !== undefined) throw invalid(at('gateway-sender-ids'), reason);
    }
    return { spec: { name, type, persistent, ...(partition !== undefined ? { partition } : {}) }, gatewaySenderIds };
  });
}
