// A parallel gateway sender as a user runs it, with the real `strait` command: site 1 has three
// servers and a partitioned region shipped to site 2 by a parallel sender; site 2 has two
// servers and the same partitioned region. While writers load 20,000 keys at site 1, one
// site-1 server is killed with SIGKILL. Every acknowledged key arrives at site 2 with its last
// value, the receivers saw no duplicate their sender did not flag, and `strait status
// gateway-sender` shows each live server dispatching its own buckets. The sender runs with two
// dispatcher threads and a gateway event filter module (keys `tmp-*` stay at site 1). A serial
// sender named by a partitioned region, and a filter module with no hooks, are refused with
// coded errors. Waiting is by polling with a deadline.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../client/connect.ts';
import type { SenderStatus } from '../protocol/messages.ts';
import { assertOk, cleanupWorkspace, freePort, memberDir, start, strait, until as pollUntil, type Started } from './cli-process.test-support.ts';

after(cleanupWorkspace);

const KEYS = 20_000;
const WAIT_MS = 90_000;

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  await pollUntil(what, check, WAIT_MS);
}

async function metric(server: Started, name: string): Promise<number> {
  const text = await (await fetch(`http://${server.httpAddress.host}:${server.httpAddress.port}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) total += Number(line.split(' ').at(-1));
  return total;
}

async function senderCopies(locator: string): Promise<SenderStatus[]> {
  const result = await strait(['status', 'gateway-sender', '--id', 'to-2', '--json', '--locator', locator]);
  assertOk(result, 'status gateway-sender');
  return JSON.parse(result.stdout) as SenderStatus[];
}

describe('a parallel gateway sender through the CLI', () => {
  it('kill -9 of a site-1 server under load: every acknowledged key reaches site 2 once, each live server dispatches its own buckets', async () => {
    const port1 = await freePort();
    const locator1 = `127.0.0.1[${port1}]`;
    await start('locator', 'ps-locator-1', ['--port', String(port1), '--http-port', '0', '--site-id', '1']);
    const second = await start('locator', 'ps-locator-2', ['--port', '0', '--http-port', '0', '--site-id', '2', '--remote-locators', locator1]);
    const locator2 = `127.0.0.1[${second.address.port}]`;
    const region = (senders: string) => `regions:\n  orders: { type: partition, redundant-copies: 1${senders} }\n`;
    const site1: Started[] = [];
    for (let index = 1; index <= 3; index++) {
      const name = `ps-s1-server-${index}`;
      writeFileSync(join(memberDir(name), 'local-only.ts'), "export default { beforeEnqueue(event: { key: string }): boolean { return !event.key.startsWith('tmp-'); } };\n");
      writeFileSync(join(memberDir(name), 'strait.yaml'), `${region(', gateway-sender-ids: [to-2]')}gateway-senders:\n  to-2: { remote-site-id: 2, parallel: true, dispatcher-threads: 2, order-policy: partition, batch-size: 200, batch-time-interval: 20, gateway-event-filters: [./local-only.ts] }\n`);
      site1.push(await start('server', name, ['--server-port', '0', '--http-port', '0', '--locators', locator1]));
    }
    const site2: Started[] = [];
    for (let index = 1; index <= 2; index++) {
      const name = `ps-s2-server-${index}`;
      const receiverStart = await freePort();
      writeFileSync(join(memberDir(name), 'strait.yaml'), `${region('')}gateway-receiver: { start-port: ${receiverStart}, end-port: ${Math.min(65535, receiverStart + 20)} }\n`);
      site2.push(await start('server', name, ['--server-port', '0', '--http-port', '0', '--locators', locator2]));
    }

    // Writers load the keys through a client of site 1; server 2 dies partway.
    const client = await connect({ locators: [{ host: '127.0.0.1', port: port1 }], name: 'loader', requestTimeoutMs: 30_000 });
    const orders = client.region<string>('orders');
    let written = 0;
    const writers = Array.from({ length: 16 }, async (_, writer) => {
      for (let key = writer; key < KEYS; key += 16) {
        await orders.put(`key-${key}`, `value-${key}`);
        written += 1;
      }
    });
    await until('a third of the keys written', async () => written >= KEYS / 3);
    process.kill(site1[1]!.pid, 'SIGKILL');
    await Promise.all(writers);
    await orders.putAll(Array.from({ length: 200 }, (_, index) => [`tmp-${index}`, 'stays at site 1'] as const));
    await client.close();

    const reader = await connect({ locators: [{ host: '127.0.0.1', port: second.address.port }], name: 'checker' });
    try {
      const remote = reader.region<string>('orders');
      let missing: string[] = [];
      await until('every key at site 2', async () => {
        missing = [];
        for (let first = 0; first < KEYS; first += 1000) {
          const values = await Promise.all(Array.from({ length: 1000 }, (_, index) => remote.get(`key-${first + index}`)));
          values.forEach((value, index) => { if (value !== `value-${first + index}`) missing.push(`key-${first + index}`); });
        }
        return missing.length === 0;
      }).catch((error: Error) => {
        throw new Error(`${error.message}: ${missing.length} keys missing at site 2, e.g. ${missing.slice(0, 5).join(', ')}`);
      });
      assert.equal(await remote.size(), KEYS, 'the filtered tmp- keys stayed at site 1');
      assert.equal(await remote.get('tmp-0'), undefined);
    } finally {
      await reader.close();
    }
    let unflagged = 0;
    let duplicates = 0;
    for (const server of site2) {
      unflagged += await metric(server, 'strait_gateway_receiver_unflagged_duplicates_total');
      duplicates += await metric(server, 'strait_gateway_receiver_events_total{outcome="duplicate"');
    }
    assert.equal(unflagged, 0, `every event site 2 got twice was flagged possible-duplicate by its sender (${duplicates} duplicates, no second effect)`);

    await until('the queues drain on both live servers', async () => (await senderCopies(locator1)).every((copy) => copy.queueEvents === 0));
    const copies = await senderCopies(locator1);
    assert.deepEqual(copies.map((copy) => copy.member).sort(), ['ps-s1-server-1', 'ps-s1-server-3']);
    for (const copy of copies) {
      assert.equal(copy.role, 'primary', `${copy.member} dispatches its buckets`);
      assert.ok((copy.parallel?.dispatching ?? 0) > 0 && copy.parallel?.undispatched === 0, JSON.stringify(copy.parallel));
    }
    assert.equal(copies.reduce((sum, copy) => sum + copy.parallel!.dispatching, 0), 113, 'each bucket dispatched by one server');
    const text = await strait(['status', 'gateway-sender', '--id', 'to-2', '--locator', locator1]);
    assertOk(text, 'status gateway-sender');
    assert.match(text.stdout, /ps-s1-server-1\s+primary\s+running/);

    // A serial sender can't carry a partitioned region.
    assertOk(await strait(['create', 'gateway-sender', '--id', 'serial-2', '--remote-site-id', '2', '--locator', locator1]), 'create serial sender');
    const refused = await strait(['create', 'region', '--name', 'sessions', '--type', 'partition', '--gateway-sender-ids', 'serial-2', '--locator', locator1]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /STRAIT_CONFIG_INVALID.*sender serial-2 is serial; the partitioned region sessions needs parallel senders/s);

    for (const name of ['ps-s1-server-1', 'ps-s1-server-3', 'ps-s2-server-1', 'ps-s2-server-2']) assertOk(await strait(['stop', 'server', '--dir', memberDir(name)]), `stop ${name}`);
    for (const name of ['ps-locator-1', 'ps-locator-2']) assertOk(await strait(['stop', 'locator', '--dir', memberDir(name)]), `stop ${name}`);
  });

  it('a gateway event filter module that exports no hook stops the server from starting, with a coded error naming the key', async () => {
    const name = 'ps-bad-filter';
    writeFileSync(join(memberDir(name), 'nothing.ts'), 'export const answer = 42;\n');
    writeFileSync(join(memberDir(name), 'strait.yaml'), 'regions:\n  orders: { type: partition, gateway-sender-ids: [to-2] }\ngateway-senders:\n  to-2: { remote-site-id: 2, parallel: true, gateway-event-filters: [./nothing.ts] }\n');
    const result = await strait(['start', 'server', '--name', name, '--dir', memberDir(name), '--server-port', '0', '--locators', '127.0.0.1[1]']);
    assert.notEqual(result.code, 0);
    assert.match(`${result.stdout}${result.stderr}`, /STRAIT_CONFIG_INVALID.*gateway-senders\.to-2\.gateway-event-filters.*exports none of beforeEnqueue/s);
  });
});
