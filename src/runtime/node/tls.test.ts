// TLS in the Node network, with the protocol's authentication on top: real sockets on loopback,
// certificates from `strait tls init` (two CAs, to play a stranger).

import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { connect as connectPlain } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { StraitError } from '../../errors.ts';
import { initTls } from '../../cli/tls-init.ts';
import { Connection, type ConnectionHandler, type ConnectionOptions } from '../../protocol/connection.ts';
import type { SecurityPolicy } from '../../protocol/authentication.ts';
import type { Role } from '../../protocol/messages.ts';
import type { Address, Logger } from '../runtime.ts';
import { createNodeRuntime, type NodeRuntime } from './node-runtime.ts';
import { TlsCredentials, trustingOnly, type TlsContext } from './tls-credentials.ts';
import { NodeNetwork } from './node-network.ts';

const warnings: string[] = [];
const log: Logger = {
  debug() {},
  info() {},
  warn(_fields, message) {
    warnings.push(message);
  },
  error(_fields, message) {
    warnings.push(message);
  },
  child() {
    return log;
  },
};

let dir: string;
let strangers: string;
const runtimes: NodeRuntime[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'strait-tls-'));
  strangers = mkdtempSync(join(tmpdir(), 'strait-tls-strangers-'));
  await initTls({ dir, sites: [1, 2], hosts: [], days: 30, force: false });
  await initTls({ dir: strangers, sites: [1], hosts: [], days: 30, force: false });
});

after(async () => {
  for (const runtime of runtimes) await new Promise<void>((resolve) => runtime.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
  rmSync(strangers, { recursive: true, force: true });
});

function credentials(base: string, name: string): TlsCredentials {
  return TlsCredentials.load({ cert: join(base, `${name}.crt`), key: join(base, `${name}.key`), ca: join(base, 'ca.crt') }, log);
}

function runtimeWith(tls: TlsContext | undefined, refused?: (remote: string, reason: string) => void): NodeRuntime {
  const runtime = createNodeRuntime({ logger: log, tls, ...(refused === undefined ? {} : { onTlsRefused: refused }) });
  runtimes.push(runtime);
  return runtime;
}

function options(role: Role, site: number | null, extra: Partial<ConnectionOptions> = {}): ConnectionOptions {
  return { local: { role, name: `${role}-${site ?? 'x'}`, site }, frameBytesMax: 1 << 20, requestTimeoutMs: 5000, requestsInFlightMax: 16, ...extra };
}

/** A listener whose accepted connections answer ping and replicate (to see audiences refuse). */
function listen(runtime: NodeRuntime, policy: SecurityPolicy | undefined, refusals: StraitError[]): Promise<Address> {
  const handler: ConnectionHandler = {
    onOpen() {},
    onRequest(_connection, request, reply) {
      (reply as { ok(body: unknown): void }).ok({});
    },
    onPush() {},
    onClose() {},
  };
  return new Promise((resolve, reject) => {
    runtime.network.listen({ host: '127.0.0.1', port: 0 }, (stream) => {
      Connection.accept(runtime, stream, options('server', 1, {
        expectedSite: 1, ...(policy === undefined ? {} : { security: policy }), onRefusal: (error) => refusals.push(error),
      }), handler);
    }, (result) => (result.ok ? resolve(result.address) : reject(result.error)));
  });
}

/** Opens a connection and resolves with its peer once open, or the error it closed with. */
function open(runtime: NodeRuntime, target: Address, connectionOptions: ConnectionOptions): Promise<{ connection: Connection; error: Error | undefined }> {
  return new Promise((resolve) => {
    const connection = Connection.open(runtime, target, connectionOptions, {
      onOpen: (opened) => resolve({ connection: opened, error: undefined }),
      onRequest() {},
      onPush() {},
      onClose: (closed, error) => resolve({ connection: closed, error }),
    });
  });
}

function ping(connection: Connection, op: 'ping' | 'replicate' = 'ping'): Promise<StraitError | undefined> {
  return new Promise((resolve) => {
    const body = op === 'ping' ? {} : { region: 'R', entries: [] };
    (connection.request as (op: string, body: unknown, callback: (error: StraitError | undefined) => void) => void)(op, body, (error) => resolve(error));
  });
}

const codeOf = (error: Error | undefined): string | undefined => (error instanceof StraitError ? error.code : error === undefined ? undefined : `uncoded: ${error.message}`);

test('members of a site connect over mutual TLS, each seeing the other\'s certificate identity', async () => {
  const refusals: StraitError[] = [];
  const address = await listen(runtimeWith(credentials(dir, 'site-1/server')), undefined, refusals);
  const { connection, error } = await open(runtimeWith(credentials(dir, 'site-1/server')), address, options('server', 1));
  assert.equal(error, undefined);
  assert.deepEqual(connection.stream.security, { kind: 'tls', identity: { role: 'server', site: 1 }, refusal: undefined });
  assert.equal(await ping(connection), undefined);
  assert.equal(await ping(connection, 'replicate'), undefined);
  connection.close();
  assert.deepEqual(refusals, []);
});

test('a certificate of another CA, of another site or of another role is refused with a coded error; so is a member without one', async () => {
  const refusals: StraitError[] = [];
  const address = await listen(runtimeWith(credentials(dir, 'site-1/server')), undefined, refusals);
  // A stranger's CA: our listener refuses its certificate, and the stranger refuses ours first.
  const stranger = await open(runtimeWith(credentials(strangers, 'site-1/server')), address, options('server', 1));
  assert.equal(codeOf(stranger.error), 'STRAIT_TLS_REFUSED');
  // Trusting our CA but with a stranger's certificate (as an attacker with a copy of ca.crt would).
  const site2AsSite1 = await open(runtimeWith(credentials(dir, 'site-2/server')), address, options('server', 1));
  assert.equal(codeOf(site2AsSite1.error), 'STRAIT_UNAUTHENTICATED');
  const routerAsServer = await open(runtimeWith(credentials(dir, 'router')), address, options('server', 1));
  assert.equal(codeOf(routerAsServer.error), 'STRAIT_UNAUTHENTICATED');
  const anonymousServer = await open(runtimeWith(trustingOnly(join(dir, 'ca.crt'))), address, options('server', 1));
  assert.equal(codeOf(anonymousServer.error), 'STRAIT_UNAUTHENTICATED');
  assert.deepEqual(refusals.map((refusal) => refusal.code).sort(), ['STRAIT_UNAUTHENTICATED', 'STRAIT_UNAUTHENTICATED', 'STRAIT_UNAUTHENTICATED']);
});

test('a client with only the CA connects as a client, may ping but not replicate; a client token is checked', async () => {
  const refusals: StraitError[] = [];
  const policy: SecurityPolicy = { requireClientCertificate: false, clientToken: 'a-client-token-of-length', adminToken: undefined };
  const address = await listen(runtimeWith(credentials(dir, 'site-1/server')), policy, refusals);
  const client = runtimeWith(trustingOnly(join(dir, 'ca.crt')));
  const withoutToken = await open(client, address, options('client', null));
  assert.equal(codeOf(withoutToken.error), 'STRAIT_UNAUTHENTICATED');
  const withToken = await open(client, address, options('client', null, { token: 'a-client-token-of-length' }));
  assert.equal(withToken.error, undefined);
  assert.equal(await ping(withToken.connection), undefined);
  assert.equal((await ping(withToken.connection, 'replicate'))?.code, 'STRAIT_FORBIDDEN');
  // A client certificate stands in for the token.
  const certified = await open(runtimeWith(credentials(dir, 'client')), address, options('client', null));
  assert.equal(certified.error, undefined);
  assert.deepEqual(refusals.map((refusal) => refusal.code), ['STRAIT_UNAUTHENTICATED', 'STRAIT_FORBIDDEN']);
});

test('a client does not send its hello (nor its token) to a TLS peer whose certificate it cannot trust', async () => {
  const address = await listen(runtimeWith(credentials(strangers, 'site-1/server')), undefined, []);
  const result = await open(runtimeWith(trustingOnly(join(dir, 'ca.crt'))), address, options('client', null, { token: 'a-client-token-of-length' }));
  assert.equal(codeOf(result.error), 'STRAIT_TLS_REFUSED');
});

test('a plaintext peer on a TLS port is refused and the attempt is logged and reported', async () => {
  const reported: string[] = [];
  const address = await listen(runtimeWith(credentials(dir, 'site-1/server'), (remote) => reported.push(remote)), undefined, []);
  const plaintext = await open(runtimeWith(undefined), address, options('server', 1));
  assert.ok(plaintext.error !== undefined, 'a plaintext hello is never answered with a welcome');
  // Raw garbage too.
  await new Promise<void>((resolve) => {
    const socket = connectPlain({ host: address.host, port: address.port }, () => socket.end('GET / HTTP/1.0\r\n\r\n'));
    socket.on('close', () => resolve());
    socket.on('error', () => {});
  });
  for (let attempt = 0; attempt < 50 && reported.length < 2; attempt++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(reported.length >= 2, `refusals reported: ${reported.length}`);
  assert.ok(warnings.some((warning) => warning.includes('its TLS handshake failed')));
});

test('a TLS peer on a plaintext port fails with a message that says TLS', async () => {
  const address = await listen(runtimeWith(undefined), undefined, []);
  const result = await open(runtimeWith(credentials(dir, 'site-1/server')), address, options('server', 1, { handshakeTimeoutMs: 2000 }));
  assert.match(result.error?.message ?? '', /TLS: .*check that both sides have tls configured/);
});

test('new certificate files are taken without a restart: new connections present the new certificate', async () => {
  const rotating = mkdtempSync(join(tmpdir(), 'strait-tls-rotate-'));
  try {
    for (const file of ['server.crt', 'server.key']) copyFileSync(join(dir, 'site-1', file), join(rotating, file));
    copyFileSync(join(dir, 'ca.crt'), join(rotating, 'ca.crt'));
    const served = credentials(rotating, 'server');
    const listener = runtimeWith(served);
    const address = await listen(listener, undefined, []);
    const before = served.status.fingerprint;
    assert.equal(served.reloadIfChanged(), false);
    // Issue a new server certificate for site 1 from the same CA, and move it into place.
    const next = mkdtempSync(join(tmpdir(), 'strait-tls-next-'));
    copyFileSync(join(dir, 'ca.crt'), join(next, 'ca.crt'));
    copyFileSync(join(dir, 'ca.key'), join(next, 'ca.key'));
    await initTls({ dir: next, sites: [1], hosts: ['rotated.example'], days: 30, force: true });
    for (const file of ['server.crt', 'server.key']) copyFileSync(join(next, 'site-1', file), join(rotating, file));
    const later = new Date(Date.now() + 5000);
    for (const file of ['server.crt', 'server.key']) utimesSync(join(rotating, file), later, later);
    rmSync(next, { recursive: true, force: true });
    assert.equal(served.reloadIfChanged(), true);
    assert.notEqual(served.status.fingerprint, before);
    const seen = await new Promise<string>((resolve, reject) => {
      const network = new NodeNetwork({ log, unrefConnections: true, tls: trustingOnly(join(dir, 'ca.crt')) });
      const stream = network.connect(address, {
        onOpen: () => {
          resolve(JSON.stringify(stream.security));
          network.close(() => {});
        },
        onData() {},
        onDrain() {},
        onClose: (error) => reject(error ?? new Error('closed')),
      });
    });
    assert.match(seen, /"role":"server","site":1/);
    // A file that is not a certificate is refused, and the current one stays.
    const kept = served.status.fingerprint;
    copyFileSync(join(dir, 'site-1', 'server.key'), join(rotating, 'server.crt'));
    const evenLater = new Date(Date.now() + 10_000);
    utimesSync(join(rotating, 'server.crt'), evenLater, evenLater);
    assert.equal(served.reloadIfChanged(), false);
    assert.equal(served.status.fingerprint, kept);
    assert.ok(warnings.some((warning) => warning.includes('were not taken')));
  } finally {
    rmSync(rotating, { recursive: true, force: true });
  }
});

test('a certificate within 30 days of its expiry is warned about when it is read', () => {
  // The certificates of this file are made for 30 days: inside the warning window from the start.
  const before = warnings.length;
  const loaded = credentials(dir, 'site-1/locator');
  assert.ok(loaded.status.expiresAtMs - Date.now() <= 30 * 86_400_000);
  assert.ok(warnings.slice(before).some((warning) => /expires in \d+ days/.test(warning)), warnings.slice(before).join('\n'));
});

test('credentials that cannot work are refused when read, naming the file', () => {
  const refusal = (files: { cert: string; key: string; ca: string }) => {
    try {
      TlsCredentials.load(files, log);
      return undefined;
    } catch (error) {
      return error instanceof StraitError ? `${error.code}: ${error.message}` : String(error);
    }
  };
  // A key that is not the certificate's.
  assert.match(refusal({ cert: join(dir, 'site-1/server.crt'), key: join(dir, 'site-2/server.key'), ca: join(dir, 'ca.crt') }) ?? '', /STRAIT_TLS_INVALID: .*server.key is not the key/);
  // A certificate the CA did not issue.
  assert.match(refusal({ cert: join(strangers, 'site-1/server.crt'), key: join(strangers, 'site-1/server.key'), ca: join(dir, 'ca.crt') }) ?? '', /STRAIT_TLS_INVALID: .*was not issued by the CA/);
  assert.match(refusal({ cert: join(dir, 'missing.crt'), key: join(dir, 'site-1/server.key'), ca: join(dir, 'ca.crt') }) ?? '', /STRAIT_TLS_INVALID: .*missing.crt cannot be read/);
});
