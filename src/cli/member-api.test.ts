import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StraitError, type ErrorCode } from '../errors.ts';
import { connect } from '../client/connect.ts';
import { startLocator, startRouter, startServer, type ServerSettings } from './member-api.ts';

const LOCAL = { 'bind-address': '127.0.0.1', 'log-level': 'silent' } as const;

function hasCode(code: ErrorCode): (error: unknown) => boolean {
  return (error) => error instanceof StraitError && error.code === code;
}

/** A port taken by a plain TCP listener, and how to free it. */
async function occupiedPort(): Promise<{ port: number; server: NetServer }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

/** True when nothing listens on `port` any more: binding it succeeds. */
async function isFree(port: number): Promise<boolean> {
  const probe = createServer();
  return new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

describe('strait/member: embedded members', () => {
  it('validates the object with the strait.yaml loader: same codes, keys named, did-you-mean', async () => {
    await assert.rejects(startServer({ name: 's', 'server-prot': 0 } as unknown as ServerSettings), (error: unknown) =>
      hasCode('STRAIT_CONFIG_UNKNOWN_KEY')(error) && /startServer\(\) config: unknown key server-prot \(did you mean server-port\?\)/.test((error as Error).message));
    await assert.rejects(startServer({ name: 's', ...LOCAL, locators: '127.0.0.1[1]', regions: { R: { type: 'bogus' as 'partition' } } }),
      (error: unknown) => hasCode('STRAIT_CONFIG_INVALID')(error) && /regions\.R\.type/.test((error as Error).message));
    // A locator's key is refused for a server, as strait.yaml does.
    await assert.rejects(startServer({ name: 's', port: 1 } as unknown as ServerSettings), hasCode('STRAIT_CONFIG_INVALID'));
    await assert.rejects(startServer({ name: 's' }), (error: unknown) => hasCode('STRAIT_CONFIG_INVALID')(error) && /locators/.test((error as Error).message));
  });

  it('refuses what JSON would drop or change, naming the key', async () => {
    const cases: [unknown, RegExp][] = [
      [{ name: 's', locators: 'a[1]', 'server-port': () => 1 }, /server-port: .*function/],
      [{ name: 's', locators: 'a[1]', 'member-timeout': Number.NaN }, /member-timeout: expected a finite number/],
      [{ name: 's', locators: ['a[1]', undefined] }, /locators: \[1\] is undefined/],
      [{ name: 's', locators: 'a[1]', regions: { R: { persistent: new Date(0) } } }, /regions\.R\.persistent: expected plain data/],
      ['name: s', /\(config\): expected an object/],
    ];
    for (const [settings, message] of cases) {
      await assert.rejects(startServer(settings as ServerSettings), (error: unknown) => hasCode('STRAIT_CONFIG_INVALID')(error) && message.test((error as Error).message), String(message));
    }
  });

  it('starts a locator and a server on free ports, serves a client, and stops cleanly', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'strait-member-api-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const locator = await startLocator({ name: 'locator1', port: 0, ...LOCAL });
    const server = await startServer({
      name: 'server1', locators: [`127.0.0.1[${locator.address.port}]`], 'server-port': 0, ...LOCAL,
      regions: { TEST: { type: 'replicate', persistent: true } },
    }, { dir: join(dir, 'server1') });
    try {
      assert.equal(locator.role, 'locator');
      assert.equal(server.role, 'server');
      assert.equal(server.site, 1, 'the server learned its site from the locator');
      assert.ok(server.address.port > 0 && server.httpAddress.port > 0);
      const health = await fetch(`http://127.0.0.1:${server.httpAddress.port}/health`);
      assert.equal(health.status, 200);
      const client = await connect({ locators: [locator.address] });
      await client.region('TEST').put('k', { n: 1 });
      assert.deepEqual(await client.region('TEST').get('k'), { n: 1 });
      await client.close();
    } finally {
      await server.stop();
      await locator.stop();
    }
    assert.equal(await server.stopped, undefined);
    await server.stop(); // idempotent
    assert.equal(await isFree(server.address.port), true, 'the server port is closed');
    assert.equal(await isFree(server.httpAddress.port), true, 'the admin port is closed');
  });

  it('a start that fails closes what it opened and rejects with the coded error', async () => {
    const taken = await occupiedPort();
    const admin = await occupiedPort();
    const adminPort = admin.port;
    await new Promise<void>((resolve) => admin.server.close(() => resolve()));
    try {
      // The admin API listens on adminPort, then the locator's own port is in use.
      await assert.rejects(startLocator({ name: 'locator1', port: taken.port, 'http-port': adminPort, ...LOCAL }), hasCode('STRAIT_PORT_IN_USE'));
      assert.equal(await isFree(adminPort), true, 'the admin port was closed');
      // An admin port in use fails before anything else is opened.
      await assert.rejects(startLocator({ name: 'locator1', port: 0, 'http-port': taken.port, ...LOCAL }), hasCode('STRAIT_PORT_IN_USE'));
    } finally {
      await new Promise<void>((resolve) => taken.server.close(() => resolve()));
    }
  });

  it('an aborted start stops waiting for the locators and rejects with STRAIT_ABORTED', async () => {
    const closed = await occupiedPort();
    await new Promise<void>((resolve) => closed.server.close(() => resolve()));
    const started = Date.now();
    await assert.rejects(
      startServer({ name: 'server1', locators: `127.0.0.1[${closed.port}]`, 'server-port': 0, ...LOCAL }, { signal: AbortSignal.timeout(300) }),
      hasCode('STRAIT_ABORTED'),
    );
    assert.ok(Date.now() - started < 10_000);
    await assert.rejects(startServer({ name: 'server1', locators: '127.0.0.1[1]', ...LOCAL }, { signal: AbortSignal.abort() }), hasCode('STRAIT_ABORTED'));
  });

  it('starts a router, with the mesh secret from the environment it is given', async () => {
    await assert.rejects(startRouter({ name: 'router1', port: 0, ...LOCAL }, { environment: {} }), hasCode('STRAIT_CONFIG_INVALID'));
    const router = await startRouter({ name: 'router1', port: 0, ...LOCAL }, { environment: { STRAIT_ROUTER_SECRET: 'a-secret-of-the-mesh-0123' } });
    assert.equal(router.role, 'router');
    assert.ok(router.address.port > 0);
    await router.stop();
    await router.stop();
    assert.equal(await isFree(router.address.port), true);
  });
});
