// A site over the real network (Node runtime, loopback, free ports) in one process: a locator
// and two servers, the TypeScript client, failover, persistence, and hostile input on the
// member ports. The CLI's real-process tests live in src/cli/cli.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as connectSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type StraitClient } from '../client/client.ts';
import { connect } from '../client/connect.ts';
import { StraitError } from '../errors.ts';
import type { Address } from '../runtime/runtime.ts';
import { createNodeRuntime } from '../runtime/node/node-runtime.ts';
import { DEFAULT_TIMING, FRAME_BYTES_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT, type MembershipTiming } from './config.ts';
import { Locator } from './locator.ts';
import { NO_METRICS } from './member-admin.ts';
import { Server } from './server.ts';
import { CapturingLogger, started, type Running } from './cluster.test-support.ts';

const TIMING: MembershipTiming = { ...DEFAULT_TIMING, memberTimeoutMs: 1500, heartbeatIntervalMs: 250, discoveryTimeoutMs: 300 };


function startLocator(name: string, locators: Address[], port = 0): Promise<Running<Locator>> {
  const log = new CapturingLogger();
  const runtime = createNodeRuntime({ logger: log });
  const node = new Locator(runtime, {
    name, site: 1, bind: { host: '127.0.0.1', port }, hostnameForClients: undefined, locators, remoteLocators: [], timing: TIMING,
    frameBytesMax: 64 * 1024, pid: undefined, httpAddress: undefined,
  }, NO_METRICS);
  return started(node, runtime, log);
}

function startServer(name: string, locators: Address[], storageDirectory?: string, port = 0): Promise<Running<Server>> {
  const log = new CapturingLogger();
  const runtime = createNodeRuntime({ logger: log, ...(storageDirectory ? { storageDirectory } : {}) });
  const node = new Server(runtime, {
    name, site: undefined, bind: { host: '127.0.0.1', port }, hostnameForClients: undefined, locators,
    regions: [{ name: 'TEST', type: 'replicate', persistent: false }, { name: 'DURABLE', type: 'replicate', persistent: true }],
    timing: TIMING, frameBytesMax: FRAME_BYTES_MAX_DEFAULT, valueBytesMax: VALUE_BYTES_MAX_DEFAULT, gatewaySenders: [], gatewayReceiver: undefined, conflictResolver: undefined, pid: undefined, httpAddress: undefined,
  }, NO_METRICS);
  return started(node, runtime, log);
}

function stop(running: Running<Locator | Server> | undefined): Promise<void> {
  if (running === undefined) return Promise.resolve();
  return new Promise((resolve) => running.node.stop(() => running.runtime.close(() => resolve())));
}

/** Kills a member the hard way: no leave, connections reset (as kill -9 looks to peers). */
function crash(running: Running<Locator | Server>): Promise<void> {
  return new Promise((resolve) => running.runtime.close(() => resolve()));
}

async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`timed out waiting until ${what}`);
}

function sendRaw(address: Address, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    const socket = connectSocket(address.port, address.host, () => socket.write(bytes));
    socket.on('error', () => {});
    socket.on('close', () => resolve());
    socket.on('data', () => {});
    setTimeout(() => socket.destroy(), 2000).unref();
  });
}

test('a site: put/get through any server, failover after a crash, rejoin with the data', async (t) => {
  const members: Running<Locator | Server>[] = [];
  let client: StraitClient | undefined;
  t.after(async () => {
    await client?.close();
    for (const member of members.reverse()) await stop(member).catch(() => {});
  });
  const locator = await startLocator('locator-1', []);
  members.push(locator);
  const server1 = await startServer('server-1', [locator.address]);
  members.push(server1);
  const server2 = await startServer('server-2', [locator.address]);
  members.push(server2);

  client = await connect({ locators: [locator.address], requestTimeoutMs: 20_000 });
  const region = client.region<{ n: number }>('TEST');
  for (let n = 0; n < 100; n++) await region.put(`key-${n}`, { n });
  // distributed-ack: both servers hold every acknowledged write.
  assert.equal(server1.node.region('TEST')!.size, 100);
  assert.equal(server2.node.region('TEST')!.size, 100);
  assert.deepEqual(await region.get('key-42'), { n: 42 });
  assert.equal(await region.size(), 100);
  assert.equal(await region.remove('key-0'), true);
  assert.equal(await region.get('key-0'), undefined);
  assert.equal(server1.node.region('TEST')!.get('key-0'), undefined);

  // Pipelined writes from one client all land.
  await Promise.all(Array.from({ length: 500 }, (_, n) => region.put(`pipelined-${n}`, { n })));
  assert.equal(server2.node.region('TEST')!.size, 599);

  // Crash the server the client uses; the client moves to the other one.
  const used = client.currentServer === 'server-1' ? server1 : server2;
  const other = used === server1 ? server2 : server1;
  await crash(used);
  members.splice(members.indexOf(used), 1);
  assert.deepEqual(await region.get('key-7'), { n: 7 });
  await region.put('after-crash', { n: -1 });
  assert.equal(client.currentServer, other === server1 ? 'server-1' : 'server-2');
  await eventually(() => locator.node.admin.view()!.members.length === 2, 'the crashed server leaves the view');
  const departed = locator.node.admin.view()!.departed;
  assert.equal(departed[0]?.reason, 'crashed');

  // Restart it on the same port: it rejoins and takes the region's contents before serving.
  const restarted = await startServer(used === server1 ? 'server-1' : 'server-2', [locator.address], undefined, used.address.port);
  members.push(restarted);
  assert.equal(restarted.node.region('TEST')!.size, 600);
  assert.notEqual(restarted.node.region('TEST')!.get('after-crash'), undefined);

  // A clean leave is told apart from a crash.
  await stop(restarted);
  members.splice(members.indexOf(restarted), 1);
  await eventually(() => locator.node.admin.view()!.members.length === 2, 'the stopped server leaves the view');
  assert.equal(locator.node.admin.view()!.departed[0]?.reason, 'left');
});

test('a second locator keeps the site working when the first dies', async (t) => {
  const members: Running<Locator | Server>[] = [];
  t.after(async () => {
    for (const member of members.reverse()) await stop(member).catch(() => {});
  });
  const locator1 = await startLocator('locator-1', []);
  members.push(locator1);
  const locator2 = await startLocator('locator-2', [locator1.address]);
  members.push(locator2);
  const seeds = [locator1.address, locator2.address];
  const server1 = await startServer('server-1', seeds);
  members.push(server1);
  await crash(locator1);
  members.splice(members.indexOf(locator1), 1);
  await eventually(() => locator2.node.admin.view()?.coordinator === locator2.node.admin.status().info.id, 'locator-2 coordinates');
  const server2 = await startServer('server-2', seeds);
  members.push(server2);
  const client = await connect({ locators: seeds });
  try {
    await client.region('TEST').put('k', 'v');
    assert.equal(server1.node.region('TEST')!.get('k') !== undefined, true);
    assert.equal(server2.node.region('TEST')!.get('k') !== undefined, true);
  } finally {
    await client.close();
  }
});

test('a persistent region survives stopping and starting every member', async (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'strait-persist-'));
  const members: Running<Locator | Server>[] = [];
  t.after(async () => {
    for (const member of members.reverse()) await stop(member).catch(() => {});
    rmSync(directory, { recursive: true, force: true });
  });
  let locator = await startLocator('locator-1', []);
  members.push(locator);
  let server1 = await startServer('server-1', [locator.address], join(directory, 's1'));
  let server2 = await startServer('server-2', [locator.address], join(directory, 's2'));
  members.push(server1, server2);
  let client = await connect({ locators: [locator.address] });
  await client.region('DURABLE').putAll(Array.from({ length: 50 }, (_, n) => [`k${n}`, n] as const));
  await client.region('DURABLE').remove('k0');
  await client.close();
  for (const member of members.splice(0).reverse()) await stop(member);

  locator = await startLocator('locator-1', [], locator.address.port);
  members.push(locator);
  server1 = await startServer('server-1', [locator.address], join(directory, 's1'));
  server2 = await startServer('server-2', [locator.address], join(directory, 's2'));
  members.push(server1, server2);
  client = await connect({ locators: [locator.address] });
  try {
    assert.equal(await client.region('DURABLE').size(), 49);
    assert.equal(await client.region('DURABLE').get('k7'), 7);
    assert.equal(await client.region('DURABLE').get('k0'), undefined);
  } finally {
    await client.close();
  }
});

test('garbage and oversized frames get a coded error and a closed connection; the member keeps serving', async (t) => {
  const members: Running<Locator | Server>[] = [];
  t.after(async () => {
    for (const member of members.reverse()) await stop(member).catch(() => {});
  });
  const locator = await startLocator('locator-1', []);
  members.push(locator);
  const server = await startServer('server-1', [locator.address]);
  members.push(server);
  const random = new Uint8Array(4096);
  for (let index = 0; index < random.length; index++) random[index] = (index * 7919 + 13) & 0xff;
  const oversized = new Uint8Array([0x53, 0x54, 0x52, 0x54, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
  const truncatedMsgpack = new Uint8Array([0x53, 0x54, 0x52, 0x54, 0, 0, 0, 3, 0xdc, 0xff, 0xff]);
  for (const target of [locator, server]) {
    for (const bytes of [random, oversized, truncatedMsgpack]) await sendRaw(target.address, bytes);
    const codes = target.log.lines.filter((line) => line.level === 'warn').map((line) => line.fields.code);
    assert.ok(codes.includes('STRAIT_BAD_MAGIC'), `${target.node.admin.status().info.name} logged STRAIT_BAD_MAGIC`);
    assert.ok(codes.includes('STRAIT_FRAME_TOO_LARGE'));
    assert.ok(codes.includes('STRAIT_FRAME_MALFORMED'));
  }
  const client = await connect({ locators: [locator.address] });
  try {
    await client.region('TEST').put('still', 'serving');
    assert.equal(await client.region('TEST').get('still'), 'serving');
    await assert.rejects(client.region('NOPE').get('x'), (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_REGION_NOT_FOUND');
  } finally {
    await client.close();
  }
});
