// The one test suite every discovery plugin passes (CONVENTIONS 10). `setup` gives the plugin
// under test and `seed`, which makes the store hold exactly these locators: by publishing them
// (directory, postgres) or by serving them (a DNS server's records, the Kubernetes API's pods).

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { SILENT_LOGGER, formatAddress } from '../runtime/runtime.ts';
import { findLocators, type LocatorDiscovery, type PublishedLocator } from './discovery.ts';

export interface DiscoveryUnderTest {
  readonly discovery: LocatorDiscovery;
  seed(locators: readonly PublishedLocator[]): Promise<void>;
  /** True when the store knows sites (directory, postgres): other sites' entries are not found. */
  readonly knowsSites: boolean;
  /**
   * The addresses the plugin returns for the seeded locators, when not their own: SRV records
   * name hosts, A records carry no port (the configured one is used).
   */
  readonly expected?: (locators: readonly PublishedLocator[]) => { host: string; port: number }[];
}

const SITE_1 = [
  { site: 1, name: 'locator-a', address: { host: '10.1.0.11', port: 10334 } },
  { site: 1, name: 'locator-b', address: { host: '10.1.0.12', port: 10335 } },
];
const SITE_2 = [{ site: 2, name: 'locator-x', address: { host: '10.2.0.11', port: 10334 } }];

const sorted = (addresses: readonly { host: string; port: number }[]) => addresses.map(formatAddress).sort();

export function discoveryTestSuite(name: string, setup: (t: TestContext) => Promise<DiscoveryUnderTest>): void {
  test(`${name} discovery: finds every locator it holds`, async (t) => {
    const { discovery, seed, knowsSites, expected } = await setup(t);
    await seed(knowsSites ? [...SITE_1, ...SITE_2] : SITE_1);
    const want = expected?.(SITE_1) ?? SITE_1.map((locator) => locator.address);
    assert.deepEqual(sorted(await discovery.find(1)), sorted(want));
  });

  test(`${name} discovery: finds nothing when nothing is held, and says so while retrying`, async (t) => {
    const { discovery, seed } = await setup(t);
    await seed([]);
    assert.deepEqual(await discovery.find(1), []);
    const lines: string[] = [];
    const log = { ...SILENT_LOGGER, warn: (_fields: unknown, message: string) => lines.push(message), info: (_fields: unknown, message: string) => lines.push(message) };
    assert.deepEqual(await findLocators(discovery, 1, log, { giveUpAfterMs: 100 }), []);
    assert.ok(lines.some((line) => line.includes(discovery.description) && /found no locators/.test(line)), lines.join('\n'));
  });

  test(`${name} discovery: a locator no longer held is no longer found`, async (t) => {
    const { discovery, seed, expected } = await setup(t);
    await seed(SITE_1);
    await seed(SITE_1.slice(0, 1));
    const want = expected?.(SITE_1.slice(0, 1)) ?? [SITE_1[0]!.address];
    assert.deepEqual(sorted(await discovery.find(1)), sorted(want));
  });
}
