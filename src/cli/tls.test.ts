// Security as a user runs it, with the real `strait` command: `strait tls init` makes the
// certificates; two sites run with TLS on every link and a client token, and replicate both
// ways. A server with a certificate of another CA, and one with the certificate of another
// site, are refused with coded errors and their attempts are in the site's log; a plaintext peer
// on a TLS port is refused; a script without credentials tries every member-only operation on
// every port and each is refused, with nothing changed; the secrets show in no log, error,
// /metrics or `strait export config` output. The site keeps serving throughout.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../client/connect.ts';
import { StraitError } from '../errors.ts';
import { Connection } from '../protocol/connection.ts';
import { OPERATION_AUDIENCES } from '../protocol/authentication.ts';
import type { RequestOp, Role } from '../protocol/messages.ts';
import { createClientRuntime } from '../runtime/node/client-runtime.ts';
import { trustForHttps } from './cli-credentials.ts';
import type { Address } from '../runtime/runtime.ts';
import { spawn } from 'node:child_process';
import { BIN, assertOk, cleanupWorkspace, freePort, memberDir, root, start, strait, until, type Started } from './cli-process.test-support.ts';

after(cleanupWorkspace);

const WAIT_MS = 60_000;
const CLIENT_TOKEN = 'client-token-1234567890-abcdef';
const ADMIN_TOKEN = 'admin-token-1234567890-abcdef';

const certs = join(root, 'certs');
const strangers = join(root, 'stranger-certs');

function tlsFlags(base: string, site: number, role: 'locator' | 'server'): string[] {
  return ['--tls-cert', join(base, `site-${site}`, `${role}.crt`), '--tls-key', join(base, `site-${site}`, `${role}.key`), '--tls-ca', join(base, 'ca.crt')];
}

/** The CLI as an operator runs it against these sites. */
const adminEnvironment = { STRAIT_TLS_CA: join(certs, 'ca.crt'), STRAIT_TLS_CERT: join(certs, 'admin.crt'), STRAIT_TLS_KEY: join(certs, 'admin.key') };

async function metrics(member: Started): Promise<string> {
  const response = await fetch(`https://127.0.0.1:${member.httpAddress.port}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  return response.text();
}

function refusals(text: string, code: string): number {
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith('strait_security_refusals_total') && line.includes(`code="${code}"`)) total += Number(line.split(' ').at(-1));
  return total;
}

/** Opens a raw protocol connection claiming `role`, and sends `op` with an empty body; the error, or undefined. */
async function attempt(address: Address, role: Role, op: RequestOp, tls: { ca: string; cert?: string; key?: string } | undefined, token?: string): Promise<string> {
  const created = createClientRuntime(tls === undefined ? {} : { tls });
  const release = created.keepAlive.hold();
  try {
    return await new Promise<string>((resolve) => {
      let settled = false;
      const finish = (outcome: string) => {
        if (settled) return;
        settled = true;
        resolve(outcome);
      };
      const connection = Connection.open(created.runtime, address, {
        local: { role, name: 'intruder', site: role === 'client' || role === 'admin' ? null : 1 },
        frameBytesMax: 1 << 20, requestTimeoutMs: 5000, requestsInFlightMax: 4, ...(token === undefined ? {} : { token }),
      }, {
        onOpen: (opened) => (opened.request as (op: string, body: unknown, callback: (error: StraitError | undefined) => void) => void)(op, {}, (error) => {
          finish(error === undefined ? 'served' : error.code);
          opened.close();
        }),
        onRequest() {},
        onPush() {},
        onClose: (_closed, error) => finish(error instanceof StraitError ? error.code : `closed: ${error?.message ?? 'cleanly'}`),
      });
      void connection;
    });
  } finally {
    release();
    created.close();
  }
}

/** Runs `strait` in the foreground until its output matches `wanted` (or 20 s), then stops it by pid; its output. */
function runBriefly(args: readonly string[], wanted: RegExp): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const stop = () => {
      clearTimeout(timer);
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    };
    const timer = setTimeout(stop, 20_000);
    const take = (chunk: Buffer) => {
      output += chunk.toString();
      if (wanted.test(output)) stop();
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('close', () => resolve(output));
  });
}

describe('TLS and authenticated roles through the CLI', () => {
  it('two TLS sites replicate both ways; strangers, plaintext peers and member-only operations are refused with coded errors', async () => {
    assertOk(await strait(['tls', 'init', '--dir', certs, '--sites', '1,2']), 'tls init');
    assertOk(await strait(['tls', 'init', '--dir', strangers, '--sites', '1']), 'tls init (another CA)');
    // The members started below take their tokens from the environment, as an operator's would.
    process.env['STRAIT_CLIENT_TOKEN'] = CLIENT_TOKEN;
    process.env['STRAIT_ADMIN_TOKEN'] = ADMIN_TOKEN;
    const port1 = await freePort();
    const locator1 = `127.0.0.1[${port1}]`;
    await start('locator', 'tls-locator-1', ['--port', String(port1), '--http-port', '0', '--site-id', '1', ...tlsFlags(certs, 1, 'locator')]);
    const second = await start('locator', 'tls-locator-2', ['--port', '0', '--http-port', '0', '--site-id', '2', '--remote-locators', locator1, ...tlsFlags(certs, 2, 'locator')]);
    const locator2 = `127.0.0.1[${second.address.port}]`;
    const servers: Started[] = [];
    for (const site of [1, 2]) {
      const name = `tls-server-${site}`;
      const receiverStart = await freePort();
      writeFileSync(join(memberDir(name), 'strait.yaml'), [
        `regions:\n  TEST: { type: replicate, gateway-sender-ids: [to-${3 - site}] }`,
        `gateway-senders:\n  to-${3 - site}: { remote-site-id: ${3 - site}, batch-size: 50, batch-time-interval: 20 }`,
        `gateway-receiver: { start-port: ${receiverStart}, end-port: ${Math.min(65535, receiverStart + 20)} }`,
        '',
      ].join('\n'));
      servers.push(await start('server', name, ['--server-port', '0', '--http-port', '0', '--locators', site === 1 ? locator1 : locator2, ...tlsFlags(certs, site, 'server')]));
    }

    assert.equal((servers[0] as Started & { https?: boolean }).https, true, 'member.json says the admin API is HTTPS');

    // Replication both ways, through the CLI as an admin with the admin certificate.
    assertOk(await strait(['put', '--locator', locator1, '--region', 'TEST', '--key', 'from-1', '--value', 'one'], adminEnvironment), 'put at site 1');
    assertOk(await strait(['put', '--locator', locator2, '--region', 'TEST', '--key', 'from-2', '--value', 'two'], adminEnvironment), 'put at site 2');
    await until('both keys at both sites', async () => {
      for (const locator of [locator1, locator2]) {
        for (const key of ['from-1', 'from-2']) {
          const result = await strait(['get', '--locator', locator, '--region', 'TEST', '--key', key], adminEnvironment);
          if (result.code !== 0) return false;
        }
      }
      return true;
    }, WAIT_MS);

    // An application client with the CA and the client token; without the token it is refused.
    const ca = join(certs, 'ca.crt');
    trustForHttps(ca);
    const client = await connect({ locators: locator1, tls: { ca }, token: CLIENT_TOKEN, name: 'app' });
    await client.region<string>('TEST').put('from-app', 'hello');
    assert.equal(await client.region<string>('TEST').get('from-1'), 'one');
    await assert.rejects(client.createRegion({ name: 'SNEAKY', type: 'replicate', persistent: false }), (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_FORBIDDEN');
    await client.close();
    await assert.rejects(connect({ locators: locator1, tls: { ca }, name: 'no-token', connectTimeoutMs: 3000 }), (error: unknown) => error instanceof StraitError && /STRAIT_UNAUTHENTICATED|client token/.test(`${error.code} ${error.message}`));
    // Plaintext to a TLS site: refused, with a message that says why.
    const plain = await strait(['get', '--locator', locator1, '--region', 'TEST', '--key', 'from-1', '--connect-timeout', '3000'], { STRAIT_TLS_CA: '' });
    assert.notEqual(plain.code, 0);

    // A server with another CA's certificate, and one with site 2's certificate, can't join site 1.
    const stranger = await runBriefly(['run', 'server', '--name', 'tls-stranger', '--dir', memberDir('tls-stranger'), '--bind-address', '127.0.0.1', '--server-port', '0', '--http-port', '0', '--locators', locator1, '--site-id', '1', '--log-format', 'json', ...tlsFlags(strangers, 1, 'server')], /STRAIT_TLS_REFUSED/);
    assert.match(stranger, /STRAIT_TLS_REFUSED/, 'the stranger hears why');
    const wrongSite = await strait(['start', 'server', '--name', 'tls-wrong-site', '--dir', memberDir('tls-wrong-site'), '--bind-address', '127.0.0.1', '--server-port', '0', '--http-port', '0', '--locators', locator1, '--site-id', '1', ...tlsFlags(certs, 2, 'server')]);
    assert.notEqual(wrongSite.code, 0);
    assert.match(`${wrongSite.stdout}${wrongSite.stderr}`, /STRAIT_TLS_INVALID/);
    const locatorLog = readFileSync(join(memberDir('tls-locator-1'), 'tls-locator-1.log'), 'utf8');
    assert.match(locatorLog, /STRAIT_TLS_REFUSED|its TLS handshake failed/, 'the stranger\'s attempt is in the locator\'s log');

    // Every member-only operation, on every port, without credentials (plaintext, and TLS with only the CA).
    const memberOnly = (Object.keys(OPERATION_AUDIENCES) as RequestOp[]).filter((op) => OPERATION_AUDIENCES[op] !== 'clients');
    const receiverPort = (await (await fetch(`https://127.0.0.1:${servers[1]!.httpAddress.port}/gateways`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { receiver: Address | null };
    const ports: Address[] = [second.address, servers[1]!.address, { host: '127.0.0.1', port: port1 }, servers[0]!.address];
    if (receiverPort.receiver !== null) ports.push({ host: "127.0.0.1", port: receiverPort.receiver.port });
    const outcomes = new Map<string, number>();
    for (const address of ports) {
      for (const op of memberOnly) {
        for (const role of ['client', 'server', 'gateway', 'admin'] as const) {
          for (const [tls, token] of [[undefined, undefined], [{ ca }, undefined], [{ ca }, CLIENT_TOKEN]] as const) {
            const outcome = await attempt(address, role, op, tls, token);
            assert.notEqual(outcome, 'served', `${op} as ${role} ${tls === undefined ? 'in plaintext' : 'with only the CA'} on ${address.port}`);
            outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
          }
        }
      }
    }
    assert.ok((outcomes.get('STRAIT_FORBIDDEN') ?? 0) > 0, 'a client with the token reaches the audience check');
    assert.ok([...outcomes.keys()].every((outcome) => /STRAIT_(UNAUTHENTICATED|FORBIDDEN|TLS_REFUSED|CONNECTION_CLOSED|SITE_MISMATCH)/.test(outcome)), JSON.stringify([...outcomes]));
    // Nothing changed: the region holds the three keys written above and no other, at both sites.
    for (const locator of [locator1, locator2]) {
      const admin = await connect({ locators: locator, tls: { ca, cert: join(certs, 'admin.crt'), key: join(certs, 'admin.key') }, role: 'admin', name: 'checker' });
      try {
        await until(`site of ${locator} holds exactly the three keys`, async () => (await admin.region<string>('TEST').size()) === 3, WAIT_MS);
        assert.deepEqual((await admin.region<string>('TEST').keys()).sort(), ['from-1', 'from-2', 'from-app']);
      } finally {
        await admin.close();
      }
    }
    const sent = await strait(['status', 'gateway-sender', '--id', 'to-2', '--json', '--locator', locator1], adminEnvironment);
    assertOk(sent, 'status gateway-sender (still running)');
    assert.match(sent.stdout, /"state":\s*"running"/);

    // Refusals are counted; no secret appears in a log, /metrics or the exported configuration.
    const text = await metrics(servers[0]!);
    assert.ok(refusals(text, 'STRAIT_UNAUTHENTICATED') + refusals(text, 'STRAIT_FORBIDDEN') > 0, text.split('\n').filter((line) => line.includes('refusal')).join('\n'));
    assert.match(text, /strait_tls_certificate_expiry_seconds\{[^}]*\} \d+/);
    const exported = await strait(['export', 'config', '--locator', locator1], adminEnvironment);
    for (const name of ['tls-locator-1', 'tls-locator-2', 'tls-server-1', 'tls-server-2']) {
      const dir = memberDir(name);
      const log = readFileSync(join(dir, `${name}.log`), 'utf8');
      for (const secret of [CLIENT_TOKEN, ADMIN_TOKEN, readFileSync(join(certs, 'site-1', 'server.key'), 'utf8').split('\n')[1]!]) {
        assert.ok(!log.includes(secret), `${name}'s log holds a secret`);
        assert.ok(!text.includes(secret) && !exported.stdout.includes(secret) && !exported.stderr.includes(secret), 'a secret in /metrics or export config');
      }
    }
  });

  it('a router with TLS takes members with certificates of their site, and answers admins with an admin certificate only', async () => {
    if (!existsSync(join(certs, 'router.crt'))) assertOk(await strait(['tls', 'init', '--dir', certs, '--sites', '1,2']), 'tls init');
    // A router has no admin token: the variable the first test exported for the sites is not its.
    const secret = { STRAIT_ROUTER_SECRET: 'router-mesh-secret-1234567890', STRAIT_ADMIN_TOKEN: '', STRAIT_CLIENT_TOKEN: '' };
    const routerPort = await freePort();
    const router = `127.0.0.1[${routerPort}]`;
    const flags = (name: string) => ['--tls-cert', join(certs, `${name}.crt`), '--tls-key', join(certs, `${name}.key`), '--tls-ca', join(certs, 'ca.crt')];
    assertOk(await strait(['start', 'router', '--name', 'tls-router', '--dir', memberDir('tls-router'), '--port', String(routerPort), '--bind-address', '127.0.0.1', ...flags('router')], secret), 'start router');
    assertOk(await strait(['start', 'locator', '--name', 'tls-routed-locator', '--dir', memberDir('tls-routed-locator'), '--bind-address', '127.0.0.1', '--port', '0', '--http-port', '0', '--site-id', '1', '--routers', router, ...tlsFlags(certs, 1, 'locator')], secret), 'start locator with routers');
    await until('the locator registered with the router over TLS', async () => {
      const listed = await strait(['list', 'routers', '--router', router, '--json'], { ...secret, ...adminEnvironment });
      return listed.code === 0 && listed.stdout.includes('tls-routed-locator');
    }, WAIT_MS);
    const anonymous = await strait(['list', 'routers', '--router', router, '--json'], { ...secret, STRAIT_TLS_CA: join(certs, 'ca.crt'), STRAIT_TLS_CERT: '', STRAIT_TLS_KEY: '', STRAIT_ADMIN_TOKEN: '' });
    assert.notEqual(anonymous.code, 0);
    assert.match(`${anonymous.stdout}${anonymous.stderr}`, /STRAIT_UNAUTHENTICATED/);
  });
});
