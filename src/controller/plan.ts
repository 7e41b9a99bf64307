// What a topology needs at each site, and the steps that get it there from what the sites hold
// now: pure. The same planner serves a POST (from nothing), a PATCH (from the topology before)
// and a DELETE (to nothing). Each step is one site configuration change with its undo; the
// steps of a site are projected through `applyChange`, so each is computed from the
// configuration the previous ones leave, and a dry run shows exactly what would change.
//
// A topology owns only what it created: a region that already existed with the same settings
// is used, never destroyed by it; remote-locators and region sender lists are added to, and
// only its own additions are taken away again.

import { StraitError } from '../errors.ts';
import type { ConfigChange, ReceiverDeclaration, RegionSpec, SenderDeclaration, SiteConfig } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { applyChange, describeChange, normalizeSender } from '../core/site-config.ts';
import { senderIdOf, targetsOf, type Topology } from './topology.ts';

/** What the controller learned of a site before planning. */
export interface SiteFacts {
  readonly site: number;
  /** Its locators as they advertise themselves (what other sites' locators dial). */
  readonly locators: readonly Address[];
  readonly servers: number;
  /** Its members as the view lists them (the dashboard shows them). */
  readonly members?: readonly { readonly name: string; readonly role: string; readonly ready: boolean }[];
  /** Where its gateway receivers listen, as they advertise it (the seed's NAT mapping). */
  readonly receivers: readonly Address[];
  readonly config: SiteConfig;
}

/** What a topology created at a site, and so may take away again. */
export interface Owned {
  readonly regions: readonly string[];
  readonly receiver: boolean;
  readonly senders: readonly string[];
  readonly remoteLocators: readonly Address[];
  /** Per region, the sender ids it added to the region's list. */
  readonly regionSenders: Readonly<Record<string, readonly string[]>>;
}

export const NOTHING_OWNED: Owned = { regions: [], receiver: false, senders: [], remoteLocators: [], regionSenders: {} };

export const PHASES = ['teardown', 'regions', 'receivers', 'senders'] as const;
export type PhaseName = (typeof PHASES)[number];

export interface Step {
  readonly site: string;
  readonly phase: PhaseName;
  readonly change: ConfigChange;
  /** What reverses it (absent: nothing to reverse). */
  readonly undo: ConfigChange | undefined;
}

export interface Plan {
  readonly steps: readonly Step[];
  /** The edges to see connected once the steps ran. */
  readonly edges: readonly (readonly [string, string])[];
  /** What the topology owns at each site afterwards. */
  readonly owned: Readonly<Record<string, Owned>>;
}

/** A site's part of a topology. */
interface Desired {
  readonly regions: readonly RegionSpec[];
  readonly receiver: ReceiverDeclaration | undefined;
  readonly senders: readonly SenderDeclaration[];
  readonly remoteLocators: readonly Address[];
}

function desiredAt(topology: Topology, siteName: string, facts: Readonly<Record<string, SiteFacts>>): Desired {
  const tuning = topology.tuning ?? {};
  const targets = targetsOf(topology, siteName);
  const sources = topology.edges.filter(([, to]) => to === siteName).map(([from]) => from);
  const receiver = topology.sites[siteName]!.receiver;
  const neighbours = [...new Set([...targets, ...sources])];
  return {
    regions: Object.entries(topology.regions).map(([name, region]) => ({ name, type: region.type ?? 'replicate', persistent: region.persistent ?? false })),
    receiver: sources.length === 0 || receiver === undefined ? undefined : {
      startPort: receiver['start-port'],
      endPort: receiver['end-port'],
      ...(receiver['hostname-for-clients'] !== undefined ? { hostnameForClients: receiver['hostname-for-clients'] } : {}),
      ...(receiver['bind-address'] !== undefined ? { bindAddress: receiver['bind-address'] } : {}),
      ...(receiver['dial-out'] === true ? { dialOut: true } : {}),
    },
    senders: targets.map((target) => normalizeSender({
      id: senderIdOf(topology.name, target),
      remoteSiteId: facts[target]!.site,
      ...(tuning['batch-size'] !== undefined ? { batchSize: tuning['batch-size'] } : {}),
      ...(tuning['batch-time-interval'] !== undefined ? { batchTimeIntervalMs: tuning['batch-time-interval'] } : {}),
      ...(tuning['maximum-queue-memory'] !== undefined ? { maximumQueueMemoryMegabytes: tuning['maximum-queue-memory'] } : {}),
      ...(tuning['maximum-queue-disk'] !== undefined ? { maximumQueueDiskMegabytes: tuning['maximum-queue-disk'] } : {}),
      persistent: tuning.persistent ?? true,
      compression: tuning.compression ?? false,
    })),
    remoteLocators: neighbours.flatMap((neighbour) => facts[neighbour]?.locators ?? []),
  };
}

const EMPTY_DESIRED: Desired = { regions: [], receiver: undefined, senders: [], remoteLocators: [] };

const key = (address: Address): string => formatAddress(address);

/** The steps one site needs, projected through its configuration. */
class SitePlanner {
  readonly steps: Step[] = [];
  private config: SiteConfig;
  private readonly site: string;
  private readonly siteId: number;

  constructor(site: string, facts: SiteFacts) {
    this.site = site;
    this.siteId = facts.site;
    this.config = facts.config;
  }

  get current(): SiteConfig {
    return this.config;
  }

  add(phase: PhaseName, change: ConfigChange, undo: ConfigChange | undefined): void {
    let next: { config: SiteConfig; changed: boolean };
    try {
      next = applyChange(this.config, change, this.siteId);
    } catch (error) {
      if (error instanceof StraitError) throw new StraitError('STRAIT_SITE_REFUSED', { site: this.site, step: describeChange(change), reason: error.message }, { cause: error });
      throw error;
    }
    if (!next.changed) return;
    this.config = next.config;
    this.steps.push({ site: this.site, phase, change, undo });
  }

  regionSenders(name: string): string[] {
    return [...(this.config.regions.find((region) => region.name === name)?.gatewaySenderIds ?? [])];
  }
}

/**
 * The steps from `before` (what the topology owned at each site; nothing for a new topology) to
 * `topology` (null: take it down). Throws STRAIT_SITE_REFUSED naming the site and step when a
 * site holds something the topology can't use (a region of the same name with other settings).
 */
export function planTopology(
  topology: Topology | null, sites: readonly string[], before: Readonly<Record<string, Owned>>, facts: Readonly<Record<string, SiteFacts>>,
): Plan {
  const steps: Step[] = [];
  const owned: Record<string, Owned> = {};
  for (const site of sites) {
    const siteFacts = facts[site];
    if (siteFacts === undefined) continue;
    const desired = topology !== null && topology.sites[site] !== undefined ? desiredAt(topology, site, facts) : EMPTY_DESIRED;
    const had = before[site] ?? NOTHING_OWNED;
    const planner = new SitePlanner(site, siteFacts);
    const wantedSenders = new Set(desired.senders.map((sender) => sender.id));
    const wantedRegions = new Set(desired.regions.map((region) => region.name));
    const wantedLocators = new Set(desired.remoteLocators.map(key));

    // Teardown, in dependency order: detach, then drain and destroy senders, then the rest.
    for (const [region, ids] of Object.entries(had.regionSenders)) {
      const drop = ids.filter((id) => !wantedSenders.has(id) || !wantedRegions.has(region));
      if (drop.length === 0 || !planner.current.regions.some((spec) => spec.name === region)) continue;
      const current = planner.regionSenders(region);
      planner.add('teardown', { kind: 'alterRegion', name: region, gatewaySenderIds: current.filter((id) => !drop.includes(id)) }, { kind: 'alterRegion', name: region, gatewaySenderIds: current });
    }
    for (const id of had.senders.filter((sender) => !wantedSenders.has(sender))) {
      const spec = planner.current.senders.find((sender) => sender.id === id);
      planner.add('teardown', { kind: 'destroySender', id }, spec === undefined ? undefined : { kind: 'createSender', spec });
    }
    const droppedLocators = had.remoteLocators.filter((address) => !wantedLocators.has(key(address))).map(key);
    if (droppedLocators.length > 0) {
      const current = planner.current.remoteLocators;
      planner.add('teardown', { kind: 'setRemoteLocators', addresses: current.filter((address) => !droppedLocators.includes(key(address))) }, { kind: 'setRemoteLocators', addresses: [...current] });
    }
    if (had.receiver && desired.receiver === undefined && planner.current.receiver !== null) {
      planner.add('teardown', { kind: 'destroyReceiver' }, { kind: 'createReceiver', spec: planner.current.receiver });
    }
    for (const name of had.regions.filter((region) => !wantedRegions.has(region))) {
      const spec = planner.current.regions.find((region) => region.name === name);
      planner.add('teardown', { kind: 'destroyRegion', name }, spec === undefined ? undefined : { kind: 'createRegion', spec });
    }

    // Build-up: regions, the receiver, then senders, remote-locators and the regions' senders.
    const createdRegions = new Set(had.regions.filter((region) => wantedRegions.has(region)));
    for (const spec of desired.regions) {
      const existing = planner.current.regions.find((region) => region.name === spec.name);
      if (existing !== undefined) {
        if (existing.type !== spec.type || existing.persistent !== spec.persistent) {
          throw new StraitError('STRAIT_SITE_REFUSED', { site, step: `create region ${spec.name}`, reason: `the site already has region ${spec.name} with other settings (${existing.persistent ? 'persistent' : 'not persistent'})` });
        }
        continue;
      }
      planner.add('regions', { kind: 'createRegion', spec }, { kind: 'destroyRegion', name: spec.name });
      createdRegions.add(spec.name);
    }
    let ownsReceiver = had.receiver && desired.receiver !== undefined;
    if (desired.receiver !== undefined && planner.current.receiver === null) {
      planner.add('receivers', { kind: 'createReceiver', spec: desired.receiver }, { kind: 'destroyReceiver' });
      ownsReceiver = true;
    }
    const ownedSenders = new Set(had.senders.filter((id) => wantedSenders.has(id)));
    for (const spec of desired.senders) {
      const existing = planner.current.senders.find((sender) => sender.id === spec.id);
      if (existing === undefined) {
        planner.add('senders', { kind: 'createSender', spec }, { kind: 'destroySender', id: spec.id });
      } else if (existing.batchSize !== spec.batchSize || existing.batchTimeIntervalMs !== spec.batchTimeIntervalMs) {
        planner.add('senders', { kind: 'alterSender', id: spec.id, batchSize: spec.batchSize!, batchTimeIntervalMs: spec.batchTimeIntervalMs! }, { kind: 'alterSender', id: spec.id, batchSize: existing.batchSize!, batchTimeIntervalMs: existing.batchTimeIntervalMs! });
      }
      ownedSenders.add(spec.id);
    }
    const present = new Set(planner.current.remoteLocators.map(key));
    const addedLocators = desired.remoteLocators.filter((address) => !present.has(key(address)));
    const ownedLocators = [...had.remoteLocators.filter((address) => wantedLocators.has(key(address))), ...addedLocators];
    if (addedLocators.length > 0) {
      const current = planner.current.remoteLocators;
      planner.add('senders', { kind: 'setRemoteLocators', addresses: [...current, ...addedLocators] }, { kind: 'setRemoteLocators', addresses: [...current] });
    }
    const regionSenders: Record<string, string[]> = {};
    for (const spec of desired.regions) {
      const current = planner.regionSenders(spec.name);
      const ours = desired.senders.map((sender) => sender.id);
      const wanted = [...new Set([...current, ...ours])];
      // Sender ids carry the topology's name (senderIdOf): every one of ours on the region is ours.
      regionSenders[spec.name] = ours;
      if (wanted.length !== current.length) {
        planner.add('senders', { kind: 'alterRegion', name: spec.name, gatewaySenderIds: wanted }, { kind: 'alterRegion', name: spec.name, gatewaySenderIds: current });
      }
    }
    steps.push(...planner.steps);
    owned[site] = {
      regions: [...createdRegions],
      receiver: ownsReceiver,
      senders: [...ownedSenders],
      remoteLocators: ownedLocators,
      regionSenders: Object.fromEntries(Object.entries(regionSenders).filter(([, ids]) => ids.length > 0)),
    };
  }
  const ordered = PHASES.flatMap((phase) => steps.filter((step) => step.phase === phase));
  return { steps: ordered, edges: topology === null ? [] : topology.edges.map(([from, to]) => [from, to] as const), owned };
}

/** A plan in words, per site (a dry run's answer). */
export function describePlan(plan: Plan): Record<string, { phase: PhaseName; change: string }[]> {
  const bySite: Record<string, { phase: PhaseName; change: string }[]> = {};
  for (const step of plan.steps) (bySite[step.site] ??= []).push({ phase: step.phase, change: describeChange(step.change) });
  return bySite;
}
