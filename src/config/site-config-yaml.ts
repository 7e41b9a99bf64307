// The site configuration (config-service.ts) in strait.yaml's words, both ways: declarations
// written as strait.yaml keys (CLI flags, `strait.yaml` snippets) become the site
// configuration's declarations through the same parsers a server's strait.yaml goes through,
// and `strait export config` renders the site configuration as a strait.yaml.

import { stringify } from 'yaml';
import type { ReceiverDeclaration, RegionSpec, SenderDeclaration, SiteConfig } from '../protocol/messages.ts';
import type { GatewaySenderSpec } from '../core/config.ts';
import { formatHostPort } from './address.ts';
import { parseGatewayReceiver, parseGatewaySenders, parseRegions } from './declarations.ts';

/** `gateway-senders.<id>` keys → the site configuration's sender declaration (checked like strait.yaml). */
export function senderDeclaration(id: string, settings: Record<string, unknown>, source: string): SenderDeclaration {
  const [spec] = parseGatewaySenders({ [id]: settings }, source);
  const parsed = spec!;
  return {
    id: parsed.id,
    remoteSiteId: parsed.remoteSiteId,
    batchSize: parsed.batchSize,
    batchTimeIntervalMs: parsed.batchTimeIntervalMs,
    maximumQueueMemoryMegabytes: parsed.maximumQueueMemoryMegabytes,
    ...(parsed.maximumQueueDiskMegabytes !== undefined ? { maximumQueueDiskMegabytes: parsed.maximumQueueDiskMegabytes } : {}),
    persistent: parsed.persistent,
    orderPolicy: parsed.orderPolicy,
    manualStart: parsed.manualStart,
    compression: parsed.compression,
    ...(parsed.dispatcherThreads > 1 ? { dispatcherThreads: parsed.dispatcherThreads } : {}),
    ...(parsed.batchConflation ? { batchConflation: true } : {}),
    ...(parsed.parallel ? { parallel: true } : {}),
  };
}

/** `gateway-receiver` keys → the site configuration's receiver declaration. */
export function receiverDeclaration(settings: Record<string, unknown>, source: string): ReceiverDeclaration {
  const parsed = parseGatewayReceiver(settings, source);
  return {
    startPort: parsed.startPort,
    endPort: parsed.endPort,
    ...(parsed.bindAddress !== undefined ? { bindAddress: parsed.bindAddress } : {}),
    ...(parsed.hostnameForClients !== undefined ? { hostnameForClients: parsed.hostnameForClients } : {}),
    manualStart: parsed.manualStart,
    dialOut: parsed.dialOut ?? false,
  };
}

/**
 * `regions.<name>` keys → a region spec. The senders it names are checked by the locators
 * against the site configuration, so any id passes here.
 */
export function regionSpec(name: string, settings: Record<string, unknown>, source: string): RegionSpec {
  const ids = settings['gateway-sender-ids'];
  const named = ids === undefined ? [] : (typeof ids === 'string' ? ids.split(',') : (ids as unknown[]).map(String)).map((id) => id.trim()).filter((id) => id.length > 0);
  // Placeholders for the ids named, of the kind the region's type takes: parseRegions checks
  // the rest of the keys, the locators whether the senders are of that kind.
  const placeholders: GatewaySenderSpec[] = named.map((id) => ({
    id, remoteSiteId: 1, parallel: settings['type'] === 'partition', batchSize: 1, batchTimeIntervalMs: 1, maximumQueueMemoryMegabytes: 1, persistent: false,
    dispatcherThreads: 1, orderPolicy: 'key', batchConflation: false, manualStart: false, compression: false,
  }));
  const [region] = parseRegions({ [name]: settings }, source, placeholders);
  return region!.gatewaySenderIds.length === 0 ? region!.spec : { ...region!.spec, gatewaySenderIds: [...region!.gatewaySenderIds] };
}

function senderYaml(sender: SenderDeclaration): Record<string, unknown> {
  return {
    'remote-site-id': sender.remoteSiteId,
    ...(sender.batchSize !== undefined ? { 'batch-size': sender.batchSize } : {}),
    ...(sender.batchTimeIntervalMs !== undefined ? { 'batch-time-interval': sender.batchTimeIntervalMs } : {}),
    ...(sender.maximumQueueMemoryMegabytes !== undefined ? { 'maximum-queue-memory': sender.maximumQueueMemoryMegabytes } : {}),
    ...(sender.maximumQueueDiskMegabytes !== undefined ? { 'maximum-queue-disk': sender.maximumQueueDiskMegabytes } : {}),
    ...(sender.persistent !== undefined ? { persistent: sender.persistent } : {}),
    ...(sender.orderPolicy !== undefined ? { 'order-policy': sender.orderPolicy } : {}),
    ...(sender.manualStart !== undefined ? { 'manual-start': sender.manualStart } : {}),
    ...(sender.compression !== undefined ? { compression: sender.compression } : {}),
    ...(sender.parallel === true ? { parallel: true } : {}),
    ...(sender.dispatcherThreads !== undefined && sender.dispatcherThreads > 1 ? { 'dispatcher-threads': sender.dispatcherThreads } : {}),
    ...(sender.batchConflation === true ? { 'batch-conflation': true } : {}),
  };
}

function receiverYaml(receiver: ReceiverDeclaration): Record<string, unknown> {
  return {
    ...(receiver.startPort !== undefined ? { 'start-port': receiver.startPort } : {}),
    ...(receiver.endPort !== undefined ? { 'end-port': receiver.endPort } : {}),
    ...(receiver.bindAddress !== undefined ? { 'bind-address': receiver.bindAddress } : {}),
    ...(receiver.hostnameForClients !== undefined ? { 'hostname-for-clients': receiver.hostnameForClients } : {}),
    ...(receiver.manualStart !== undefined ? { 'manual-start': receiver.manualStart } : {}),
    ...(receiver.dialOut !== undefined ? { 'dial-out': receiver.dialOut } : {}),
  };
}

/**
 * The site configuration as a server's strait.yaml (its regions, gateway-senders and
 * gateway-receiver), with the locators' remote-locators as a comment: that key belongs in the
 * locators' strait.yaml.
 */
export function renderSiteConfigYaml(config: SiteConfig, site: number, exportedFrom: string): string {
  const document: Record<string, unknown> = {};
  if (config.regions.length > 0) {
    document['regions'] = Object.fromEntries(config.regions.map((region) => [region.name, {
      type: region.type,
      persistent: region.persistent,
      ...(region.partition !== undefined ? {
        'total-num-buckets': region.partition.totalNumBuckets,
        'redundant-copies': region.partition.redundantCopies,
        'recovery-delay': region.partition.recoveryDelayMs,
        'startup-recovery-delay': region.partition.startupRecoveryDelayMs,
      } : {}),
      ...(region.gatewaySenderIds !== undefined && region.gatewaySenderIds.length > 0 ? { 'gateway-sender-ids': [...region.gatewaySenderIds] } : {}),
    }]));
  }
  if (config.senders.length > 0) document['gateway-senders'] = Object.fromEntries(config.senders.map((sender) => [sender.id, senderYaml(sender)]));
  if (config.receiver !== null) document['gateway-receiver'] = receiverYaml(config.receiver);
  const lines = [
    `# The configuration of site ${site}, version ${config.version}, as its locators hold it (exported from ${exportedFrom}).`,
    '# Every server of the site runs it beside its own strait.yaml; as a server strait.yaml it declares the same.',
  ];
  if (config.remoteLocators.length > 0) {
    lines.push('# For the locators\' strait.yaml:', `# remote-locators: ${config.remoteLocators.map(formatHostPort).join(',')}`);
  }
  const body = Object.keys(document).length === 0 ? '{}\n' : stringify(document);
  return `${lines.join('\n')}\n${body}`;
}
