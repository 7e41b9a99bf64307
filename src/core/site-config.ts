// The site configuration as a value: what a change does to it, what the stored form holds,
// and the specs a server runs from it. Pure functions; the locators' agreement on it is
// config-service.ts, a server applying it is server-configuration.ts.

import { StraitError } from '../errors.ts';
import type { ConfigChange, ReceiverDeclaration, RegionSpec, SenderDeclaration, SiteConfig } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { normalizeRegionSpec } from './partition-map.ts';
import { orderPolicyMismatch, senderMismatch } from './config.ts';
import {
  GATEWAY_BATCH_SIZE_DEFAULT,
  GATEWAY_BATCH_TIME_INTERVAL_MS_DEFAULT,
  GATEWAY_DISPATCHER_THREADS_DEFAULT,
  GATEWAY_QUEUE_DISK_MEGABYTES_DEFAULT,
  GATEWAY_QUEUE_MEMORY_MEGABYTES_DEFAULT,
  GATEWAY_RECEIVER_END_PORT_DEFAULT,
  GATEWAY_RECEIVER_START_PORT_DEFAULT,
  type GatewayReceiverSpec,
  type GatewaySenderSpec,
} from './config.ts';

export const EMPTY_SITE_CONFIG: SiteConfig = { version: 0, regions: [], senders: [], receiver: null, remoteLocators: [] };

/** How long `destroy gateway-sender` waits for the queue to drain by default. */
export const SENDER_DRAIN_TIMEOUT_MS_DEFAULT = 60_000;

/** Every field filled with strait.yaml's defaults: the stored form. */
export function normalizeSender(declaration: SenderDeclaration): Required<SenderDeclaration> {
  return {
    id: declaration.id,
    remoteSiteId: declaration.remoteSiteId,
    batchSize: declaration.batchSize ?? GATEWAY_BATCH_SIZE_DEFAULT,
    batchTimeIntervalMs: declaration.batchTimeIntervalMs ?? GATEWAY_BATCH_TIME_INTERVAL_MS_DEFAULT,
    maximumQueueMemoryMegabytes: declaration.maximumQueueMemoryMegabytes ?? GATEWAY_QUEUE_MEMORY_MEGABYTES_DEFAULT,
    maximumQueueDiskMegabytes: declaration.maximumQueueDiskMegabytes ?? GATEWAY_QUEUE_DISK_MEGABYTES_DEFAULT,
    persistent: declaration.persistent ?? false,
    orderPolicy: declaration.orderPolicy ?? 'key',
    manualStart: declaration.manualStart ?? false,
    compression: declaration.compression ?? false,
    parallel: declaration.parallel ?? false,
    dispatcherThreads: declaration.dispatcherThreads ?? GATEWAY_DISPATCHER_THREADS_DEFAULT,
    batchConflation: declaration.batchConflation ?? false,
  };
}

/** The receiver's stored form: the port range filled in; addresses only when given. */
export function normalizeReceiver(declaration: ReceiverDeclaration): ReceiverDeclaration {
  const startPort = declaration.startPort ?? GATEWAY_RECEIVER_START_PORT_DEFAULT;
  const endPort = declaration.endPort ?? Math.max(startPort, GATEWAY_RECEIVER_END_PORT_DEFAULT);
  return {
    startPort,
    endPort,
    ...(declaration.bindAddress !== undefined ? { bindAddress: declaration.bindAddress } : {}),
    ...(declaration.hostnameForClients !== undefined ? { hostnameForClients: declaration.hostnameForClients } : {}),
    manualStart: declaration.manualStart ?? false,
    dialOut: declaration.dialOut ?? false,
  };
}

/**
 * A region's changes go through parallel senders when it is partitioned, through serial ones
 * when it is replicated (STRAIT_CONFIG_INVALID otherwise, with the reason).
 */
export function checkSenderFits(region: RegionSpec, sender: SenderDeclaration, source: string): void {
  const reason = senderMismatch(region.type, region.name, sender.id, sender.parallel === true);
  if (reason !== undefined) throw new StraitError('STRAIT_CONFIG_INVALID', { source, key: `regions.${region.name}.gateway-sender-ids`, reason });
}

/** The core's sender spec for a declaration. */
export function senderSpecOf(declaration: SenderDeclaration): GatewaySenderSpec {
  const full = normalizeSender(declaration);
  return {
    id: full.id,
    remoteSiteId: full.remoteSiteId,
    parallel: full.parallel,
    batchSize: full.batchSize,
    batchTimeIntervalMs: full.batchTimeIntervalMs,
    maximumQueueMemoryMegabytes: full.maximumQueueMemoryMegabytes,
    maximumQueueDiskMegabytes: full.maximumQueueDiskMegabytes,
    persistent: full.persistent,
    dispatcherThreads: full.dispatcherThreads,
    orderPolicy: full.orderPolicy,
    batchConflation: full.batchConflation,
    manualStart: full.manualStart,
    compression: full.compression,
  };
}

/** The core's receiver spec for a declaration. */
export function receiverSpecOf(declaration: ReceiverDeclaration): GatewayReceiverSpec {
  const full = normalizeReceiver(declaration);
  return {
    startPort: full.startPort ?? GATEWAY_RECEIVER_START_PORT_DEFAULT,
    endPort: full.endPort ?? GATEWAY_RECEIVER_END_PORT_DEFAULT,
    bindAddress: full.bindAddress,
    hostnameForClients: full.hostnameForClients,
    manualStart: full.manualStart ?? false,
    dialOut: full.dialOut ?? false,
  };
}

/** The settings of a sender that are part of its identity: changing them means a new sender. */
function senderIdentity(spec: GatewaySenderSpec): string {
  return JSON.stringify([spec.remoteSiteId, spec.persistent, spec.maximumQueueMemoryMegabytes, spec.maximumQueueDiskMegabytes, spec.orderPolicy, spec.manualStart, spec.compression, spec.parallel, spec.dispatcherThreads, spec.batchConflation]);
}

/** True when two sender specs name the same sender (batch settings may differ: they are alterable). */
export function sameSender(a: GatewaySenderSpec, b: GatewaySenderSpec): boolean {
  return a.id === b.id && senderIdentity(a) === senderIdentity(b);
}

export function sameReceiver(a: GatewayReceiverSpec, b: GatewayReceiverSpec): boolean {
  return a.startPort === b.startPort && a.endPort === b.endPort && a.bindAddress === b.bindAddress
    && a.hostnameForClients === b.hostnameForClients && a.manualStart === b.manualStart && (a.dialOut ?? false) === (b.dialOut ?? false);
}

/** Equal contents, whatever the versions. */
export function sameContents(a: SiteConfig, b: SiteConfig): boolean {
  return JSON.stringify({ ...a, version: 0 }) === JSON.stringify({ ...b, version: 0 });
}

/** A change in words, for answers and logs: "create region orders". */
export function describeChange(change: ConfigChange): string {
  switch (change.kind) {
    case 'createRegion': return `create region ${change.spec.name}`;
    case 'alterRegion': return `alter region ${change.name}`;
    case 'destroyRegion': return `destroy region ${change.name}`;
    case 'createSender': return `create gateway-sender ${change.spec.id}`;
    case 'alterSender': return `alter gateway-sender ${change.id}`;
    case 'destroySender': return `destroy gateway-sender ${change.id}`;
    case 'createReceiver': return 'create gateway-receiver';
    case 'destroyReceiver': return 'destroy gateway-receiver';
    case 'setRemoteLocators': return 'alter remote-locators';
  }
}

function sameRegion(a: RegionSpec, b: RegionSpec): boolean {
  return a.name === b.name && a.type === b.type && a.persistent === b.persistent
    && JSON.stringify(a.partition) === JSON.stringify(b.partition)
    && JSON.stringify(a.gatewaySenderIds ?? []) === JSON.stringify(b.gatewaySenderIds ?? []);
}

function regionWithSenders(spec: RegionSpec, ids: readonly string[]): RegionSpec {
  const { gatewaySenderIds: _ignored, ...rest } = spec;
  return ids.length === 0 ? rest : { ...rest, gatewaySenderIds: [...ids] };
}

function dedupeAddresses(addresses: readonly Address[]): Address[] {
  const seen = new Set<string>();
  return addresses.filter((address) => {
    const key = formatAddress(address);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * What `change` makes of `config` (the version unchanged: the caller numbers it), and whether it
 * changed anything: creating what already exists with the same settings changes nothing, so a
 * change may be sent again safely. Coded errors: STRAIT_CONFIG_CONFLICT (exists with other
 * settings, still in use), STRAIT_CONFIG_NOT_FOUND, STRAIT_CONFIG_INVALID.
 */
export function applyChange(config: SiteConfig, change: ConfigChange, site: number): { config: SiteConfig; changed: boolean } {
  const unchanged = { config, changed: false };
  const source = `site ${site} configuration`;
  const findSender = (id: string) => config.senders.find((sender) => sender.id === id);
  switch (change.kind) {
    case 'createRegion': {
      const spec = normalizeRegionSpec(regionWithSenders(change.spec, change.spec.gatewaySenderIds ?? []));
      for (const id of spec.gatewaySenderIds ?? []) {
        const sender = findSender(id);
        if (sender === undefined) throw new StraitError('STRAIT_CONFIG_NOT_FOUND', { what: `gateway sender ${id} (named by region ${spec.name})`, site });
        checkSenderFits(spec, sender, source);
      }
      const existing = config.regions.find((region) => region.name === spec.name);
      if (existing !== undefined) {
        if (sameRegion(existing, spec)) return unchanged;
        throw new StraitError('STRAIT_CONFIG_CONFLICT', { what: `region ${spec.name}`, reason: `it exists with other settings (${JSON.stringify(existing)}); alter or destroy it first` });
      }
      return { config: { ...config, regions: [...config.regions, spec] }, changed: true };
    }
    case 'alterRegion': {
      const existing = config.regions.find((region) => region.name === change.name);
      if (existing === undefined) throw new StraitError('STRAIT_CONFIG_NOT_FOUND', { what: `region ${change.name}`, site });
      const ids = [...new Set(change.gatewaySenderIds)];
      for (const id of ids) {
        const sender = findSender(id);
        if (sender === undefined) throw new StraitError('STRAIT_CONFIG_NOT_FOUND', { what: `gateway sender ${id}`, site });
        checkSenderFits(existing, sender, source);
      }
      const altered = normalizeRegionSpec(regionWithSenders(existing, ids));
      if (sameRegion(existing, altered)) return unchanged;
      return { config: { ...config, regions: config.regions.map((region) => (region.name === change.name ? altered : region)) }, changed: true };
    }
    case 'destroyRegion': {
      if (!config.regions.some((region) => region.name === change.name)) return unchanged;
      return { config: { ...config, regions: config.regions.filter((region) => region.name !== change.name) }, changed: true };
    }
    case 'createSender': {
      if (change.spec.remoteSiteId === site) {
        throw new StraitError('STRAIT_CONFIG_INVALID', { source, key: `gateway-senders.${change.spec.id}.remote-site-id`, reason: `${site} is this site` });
      }
      const spec = normalizeSender(change.spec);
      const policy = orderPolicyMismatch(spec.orderPolicy, spec.parallel);
      if (policy !== undefined) throw new StraitError('STRAIT_CONFIG_INVALID', { source, key: `gateway-senders.${spec.id}.order-policy`, reason: policy });
      const existing = findSender(spec.id);
      if (existing !== undefined) {
        if (JSON.stringify(normalizeSender(existing)) === JSON.stringify(spec)) return unchanged;
        throw new StraitError('STRAIT_CONFIG_CONFLICT', { what: `gateway sender ${spec.id}`, reason: `it exists with other settings (${JSON.stringify(existing)}); alter or destroy it first` });
      }
      if (config.senders.length >= 64) throw new StraitError('STRAIT_CONFIG_INVALID', { source, key: 'gateway-senders', reason: 'at most 64 senders' });
      return { config: { ...config, senders: [...config.senders, spec] }, changed: true };
    }
    case 'alterSender': {
      const existing = findSender(change.id);
      if (existing === undefined) throw new StraitError('STRAIT_CONFIG_NOT_FOUND', { what: `gateway sender ${change.id}`, site });
      const altered = normalizeSender({
        ...existing,
        ...(change.batchSize !== undefined ? { batchSize: change.batchSize } : {}),
        ...(change.batchTimeIntervalMs !== undefined ? { batchTimeIntervalMs: change.batchTimeIntervalMs } : {}),
      });
      if (JSON.stringify(normalizeSender(existing)) === JSON.stringify(altered)) return unchanged;
      return { config: { ...config, senders: config.senders.map((sender) => (sender.id === change.id ? altered : sender)) }, changed: true };
    }
    case 'destroySender': {
      if (findSender(change.id) === undefined) return unchanged;
      const users = config.regions.filter((region) => (region.gatewaySenderIds ?? []).includes(change.id)).map((region) => region.name);
      if (users.length > 0) {
        throw new StraitError('STRAIT_CONFIG_CONFLICT', {
          what: `gateway sender ${change.id}`,
          reason: `regions ${users.join(', ')} still ship through it; alter them first (strait alter region NAME --gateway-sender-id ...), so no new change is queued on it while it drains`,
        });
      }
      return { config: { ...config, senders: config.senders.filter((sender) => sender.id !== change.id) }, changed: true };
    }
    case 'createReceiver': {
      const spec = normalizeReceiver(change.spec);
      if ((spec.startPort ?? 0) > (spec.endPort ?? 0)) {
        throw new StraitError('STRAIT_CONFIG_INVALID', { source, key: 'gateway-receiver.end-port', reason: `end-port ${spec.endPort} is below start-port ${spec.startPort}` });
      }
      if (config.receiver !== null) {
        if (JSON.stringify(normalizeReceiver(config.receiver)) === JSON.stringify(spec)) return unchanged;
        throw new StraitError('STRAIT_CONFIG_CONFLICT', { what: 'the gateway receiver', reason: `it exists with other settings (${JSON.stringify(config.receiver)}); destroy it first` });
      }
      return { config: { ...config, receiver: spec }, changed: true };
    }
    case 'destroyReceiver':
      return config.receiver === null ? unchanged : { config: { ...config, receiver: null }, changed: true };
    case 'setRemoteLocators': {
      const addresses = dedupeAddresses(change.addresses);
      if (JSON.stringify(addresses) === JSON.stringify(config.remoteLocators)) return unchanged;
      return { config: { ...config, remoteLocators: addresses }, changed: true };
    }
  }
}
