import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../errors.ts';
import type { Connection } from '../protocol/connection.ts';
import type { SiteEntry } from '../protocol/messages.ts';
import { SILENT_LOGGER } from '../runtime/runtime.ts';
import { Simulator } from '../sim/simulator.ts';
import { recordingConnection, serverInfo, viewOf } from './parts.test-support.ts';
import { WanDiscovery } from './wan-discovery.ts';

function discovery(sim: Simulator, remoteLocators = [{ host: '10.0.0.9', port: 10334 }]) {
  const runtime = sim.host('locator-1', { address: '10.0.0.1' }).runtime();
  const locator = { ...serverInfo('locator-1'), role: 'locator' as const, address: { host: '10.0.0.1', port: 10334 } };
  const view = viewOf([locator, serverInfo('server-1', { receiver: { host: '10.0.0.3', port: 5000 }, senders: [{ id: 'to-2', remoteSite: 2 }] })]);
  return new WanDiscovery(runtime, {
    name: 'locator-1', site: 1, remoteLocators, routed: false, routedLocators: () => [], memberId: () => locator.id, view: () => view, ready: () => true,
  }, { local: { role: 'locator', name: 'locator-1', site: 1 }, frameBytesMax: 1 << 24, requestTimeoutMs: 1000, requestsInFlightMax: 100 },
  { onOpen: () => {}, onRequest: () => {}, onPush: () => {}, onClose: () => {} }, SILENT_LOGGER);
}

const remoteEntry: SiteEntry = { site: 2, locators: [{ host: '10.0.0.9', port: 10334 }], receivers: [{ host: '10.0.0.8', port: 5000 }], edges: [1], version: [5, 'locator-2#1'] };

test('an exchange merges the other site\'s entries and answers with ours, derived from the view', () => {
  const sim = new Simulator({ seed: 1, log: 'silent' });
  const wan = discovery(sim);
  const answer = wan.onExchange(recordingConnection('locator-2', 'gateway') as Connection, { from: 2, catalogue: [remoteEntry] });
  const sites = answer.catalogue.map((entry) => [entry.site, entry.receivers.length, entry.edges]);
  assert.deepEqual(sites, [[1, 1, [2]], [2, 1, [1]]]);
});

test('a remote locator claiming our own site id is refused', () => {
  const sim = new Simulator({ seed: 1, log: 'silent' });
  const wan = discovery(sim);
  assert.throws(() => wan.onExchange(recordingConnection('locator-x', 'gateway') as Connection, { from: 1, catalogue: [] }),
    (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_SITE_MISMATCH');
});

test('a failed exchange is reported to the servers with the address and the reason', () => {
  const sim = new Simulator({ seed: 1, log: 'silent' });
  sim.host('locator-2', { address: '10.0.0.9' }); // up, but nothing listens on its port
  const wan = discovery(sim);
  wan.tick();
  sim.run({ untilMs: 5000 });
  const { failures } = wan.onCatalogue();
  assert.equal(failures.length, 1);
  assert.deepEqual(failures[0]!.address, { host: '10.0.0.9', port: 10334 });
  assert.match(failures[0]!.error, /ECONNREFUSED/);
  wan.stop();
});
