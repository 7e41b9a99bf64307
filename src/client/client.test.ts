// The client's failures an application can act on, and its process lifetime: what it retries
// (the error registry's `retryable` flag), how connect() fails against a wrong or dead address
// (STRAIT_NO_LOCATOR naming each locator and the OS reason; STRAIT_NO_SERVER), and that a
// script whose only work is a client call neither exits under the pending await (Node's exit 13,
// "unsettled top-level await") nor is held open by an idle client.
//
// The site runs in this process over the loopback network; the scripts run in child processes
// (this Node, a temporary directory), each killed by pid if it outlives the test.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type StraitClient } from './client.ts';
import { connect } from './connect.ts';
import { ERROR_SPECS, StraitError } from '../errors.ts';
import { formatAddress, type Address } from '../runtime/runtime.ts';
import { createNodeRuntime } from '../runtime/node/node-runtime.ts';
import { DEFAULT_TIMING, type MembershipTiming } from '../core/config.ts';
import { Locator } from '../core/locator.ts';
import { NO_METRICS } from '../core/member-admin.ts';
import { Server } from '../core/server.ts';
import { CapturingLogger, started, type Running } from '../core/cluster.test-support.ts';

const TIMING: MembershipTiming = { ...DEFAULT_TIMING, memberTimeoutMs: 1500, heartbeatIntervalMs: 250, discoveryTimeoutMs: 300 };
/** The servers' frame limit: small, so a frame over it is cheap to build. */
const FRAME_BYTES_MAX = 64 * 1024;
const VALUE_BYTES_MAX = 16 * 1024;
/** A child script that has not exited by then is killed (and the test fails on its exit code). */
const SCRIPT_TIMEOUT_MS = 60_000;
const CLIENT_URL = pathToFileURL(join(import.meta.dirname, 'connect.ts')).href;

const scriptDir = mkdtempSync(join(tmpdir(), 'strait-client-test-'));
after(() => rmSync(scriptDir, { recursive: true, force: true }));

function startLocator(name: string): Promise<Running<Locator>> {
  const log = new CapturingLogger();
  const runtime = createNodeRuntime({ logger: log });
  const node = new Locator(runtime, {
    name, site: 1, bind: { host: '127.0.0.1', port: 0 }, hostnameForClients: undefined, locators: [], remoteLocators: [],
    timing: TIMING, frameBytesMax: FRAME_BYTES_MAX, pid: undefined, httpAddress: undefined,
  }, NO_METRICS);
  return started(node, runtime, log);
}

function startServer(name: string, locators: Address[]): Promise<Running<Server>> {
  const log = new CapturingLogger();
  const runtime = createNodeRuntime({ logger: log });
  const node = new Server(runtime, {
    name, site: undefined, bind: { host: '127.0.0.1', port: 0 }, hostnameForClients: undefined, locators,
    regions: [{ name: 'TEST', type: 'replicate', persistent: false }],
    timing: TIMING, frameBytesMax: FRAME_BYTES_MAX, valueBytesMax: VALUE_BYTES_MAX, gatewaySenders: [],
    gatewayReceiver: undefined, conflictResolver: undefined, pid: undefined, httpAddress: undefined,
  }, NO_METRICS);
  return started(node, runtime, log);
}

function stop(running: Running<Locator | Server> | undefined): Promise<void> {
  if (running === undefined) return Promise.resolve();
  return new Promise((resolve) => running.node.stop(() => running.runtime.close(() => resolve())));
}

/** A port nothing listens on right now (another process could take it, which no test here does). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

interface ScriptResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

let scriptNumber = 0;

/** Runs `body` as a module of its own in a child Node process; `client` is the client module. */
function runScript(body: string): Promise<ScriptResult> {
  const path = join(scriptDir, `script-${++scriptNumber}.mjs`);
  writeFileSync(path, `import { connect } from ${JSON.stringify(CLIENT_URL)};\n${body}\n`);
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [path], { timeout: SCRIPT_TIMEOUT_MS, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, signal: child.signalCode, stdout, stderr });
    });
  });
}

function describeResult(result: ScriptResult): string {
  return `exit ${result.code} (signal ${result.signal})\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
}

/** Node's exit status for a top-level await that can never settle. */
const EXIT_UNSETTLED_TOP_LEVEL_AWAIT = 13;

describe('the client against nothing listening', () => {
  it('a script whose only work is connect and a put exits with the coded error, not 13', async () => {
    const port = await closedPort();
    const result = await runScript(`
const client = await connect({ locators: '127.0.0.1[${port}]' });
await client.region('TEST').put('k', 'v');
`);
    assert.notEqual(result.code, null, describeResult(result));
    assert.notEqual(result.code, 0, describeResult(result));
    assert.notEqual(result.code, EXIT_UNSETTLED_TOP_LEVEL_AWAIT, describeResult(result));
    assert.match(result.stderr, /STRAIT_NO_LOCATOR/);
    assert.ok(result.stderr.includes(`127.0.0.1[${port}]`), describeResult(result));
    assert.match(result.stderr, /ECONNREFUSED/);
  });

  it('connect() fails with STRAIT_NO_LOCATOR naming every locator and the OS reason', async () => {
    const ports = [await closedPort(), await closedPort()];
    const locators = ports.map((port) => ({ host: '127.0.0.1', port }));
    const error = await connect({ locators, connectTimeoutMs: 500 }).then(
      () => assert.fail('connected to nothing'),
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof StraitError);
    assert.equal(error.code, 'STRAIT_NO_LOCATOR');
    for (const locator of locators) assert.ok(error.message.includes(formatAddress(locator)), error.message);
    assert.match(String(error.details['reason']), /ECONNREFUSED/);
  });

  it('refuses a connect timeout that is not whole positive milliseconds, naming the option', async () => {
    for (const connectTimeoutMs of [0, -1, 1.5, Number.NaN]) {
      await assert.rejects(connect({ locators: '127.0.0.1[1]', connectTimeoutMs }), (error: unknown) =>
        error instanceof StraitError && error.code === 'STRAIT_CONFIG_INVALID' && error.details['key'] === 'connectTimeoutMs');
    }
  });
});

describe('the client against a locator without servers', () => {
  let locator: Running<Locator> | undefined;
  before(async () => {
    locator = await startLocator('lonely-locator');
  });
  after(() => stop(locator));

  it('connect() fails with STRAIT_NO_SERVER once its deadline passes', async () => {
    await assert.rejects(connect({ locators: [locator!.address], connectTimeoutMs: 500 }), (error: unknown) =>
      error instanceof StraitError && error.code === 'STRAIT_NO_SERVER');
  });
});

describe('the client against a running site', () => {
  let locator: Running<Locator> | undefined;
  let server: Running<Server> | undefined;
  let client: StraitClient | undefined;
  let locatorText = '';

  before(async () => {
    locator = await startLocator('locator-1');
    server = await startServer('server-1', [locator.address]);
    locatorText = formatAddress(locator.address);
    client = await connect({ locators: [locator.address] });
  });
  after(async () => {
    await client?.close();
    await stop(server);
    await stop(locator);
  });

  it('limits, bad input and protocol mismatches are never retried; lost connections are', () => {
    const never = [
      'STRAIT_VALUE_TOO_LARGE', 'STRAIT_FRAME_TOO_LARGE', 'STRAIT_FRAME_MALFORMED', 'STRAIT_PROTOCOL_VERSION',
      'STRAIT_TOO_MANY_IN_FLIGHT', 'STRAIT_REGION_NOT_FOUND',
    ] as const;
    for (const code of never) assert.equal(ERROR_SPECS[code].retryable, false, code);
    const always = [
      'STRAIT_CONNECTION_CLOSED', 'STRAIT_TIMEOUT', 'STRAIT_NOT_READY', 'STRAIT_NOT_MEMBER', 'STRAIT_NO_LOCATOR', 'STRAIT_NO_SERVER',
    ] as const;
    for (const code of always) assert.equal(ERROR_SPECS[code].retryable, true, code);
  });

  it('values read back are right and own their memory: a byte array in one never pins the network chunk it came in', async () => {
    // The client decodes what it receives as views into its read chunks (frame.ts 'views');
    // decodeValue copies the byte arrays inside a value out of them.
    const region = client!.region<{ n: number; blob: Uint8Array }>('TEST');
    const keys = Array.from({ length: 64 }, (_, index) => `blob-${index}`);
    await Promise.all(keys.map((key, index) => region.put(key, { n: index, blob: new Uint8Array(200).fill(index) })));
    const values = await Promise.all(keys.map((key) => region.get(key)));
    for (const [index, value] of values.entries()) {
      assert.equal(value?.n, index);
      assert.ok(value.blob instanceof Uint8Array);
      assert.deepEqual([...value.blob], Array.from({ length: 200 }, () => index));
      assert.equal(value.blob.buffer.byteLength, 200, `blob-${index} owns exactly its 200 bytes`);
    }
  });

  it('a value over the server\'s limit fails with STRAIT_VALUE_TOO_LARGE, and the client carries on', async () => {
    const region = client!.region<string>('TEST');
    await assert.rejects(region.put('big', 'x'.repeat(VALUE_BYTES_MAX + 1)), (error: unknown) =>
      error instanceof StraitError && error.code === 'STRAIT_VALUE_TOO_LARGE');
    await region.put('small', 'fits');
    assert.equal(await region.get('small'), 'fits');
  });

  it('a frame over the server\'s limit fails with STRAIT_FRAME_TOO_LARGE instead of being retried', async () => {
    const region = client!.region<string>('TEST');
    await assert.rejects(region.put('huge', 'x'.repeat(FRAME_BYTES_MAX + 1)), (error: unknown) =>
      error instanceof StraitError && error.code === 'STRAIT_FRAME_TOO_LARGE');
    // The server closed that connection; the next request opens another.
    await region.put('after-huge', 'fits');
    assert.equal(await region.get('after-huge'), 'fits');
  });

  it('a script whose only work is an oversized put exits with STRAIT_FRAME_TOO_LARGE, not 13', async () => {
    const result = await runScript(`
const client = await connect({ locators: ${JSON.stringify(locatorText)} });
await client.region('TEST').put('huge', 'x'.repeat(${FRAME_BYTES_MAX + 1}));
`);
    assert.notEqual(result.code, null, describeResult(result));
    assert.notEqual(result.code, 0, describeResult(result));
    assert.notEqual(result.code, EXIT_UNSETTLED_TOP_LEVEL_AWAIT, describeResult(result));
    assert.match(result.stderr, /STRAIT_FRAME_TOO_LARGE/);
  });

  it('an idle client does not keep its script running: no close() needed to exit', async () => {
    const result = await runScript(`
const client = await connect({ locators: ${JSON.stringify(locatorText)} });
await client.region('TEST').put('from-script', 'hello');
console.log(await client.region('TEST').get('from-script'));
`);
    assert.equal(result.code, 0, describeResult(result));
    assert.equal(result.stdout, 'hello\n');
  });

  it('a consumer awaiting a subscription keeps its script running until the event arrives', async () => {
    const key = 'for-the-subscriber';
    const run = runScript(`
const client = await connect({ locators: ${JSON.stringify(locatorText)} });
const changes = client.region('TEST').subscribe();
await changes.ready;
console.log('subscribed');
for await (const change of changes) {
  if (change.key === ${JSON.stringify(key)}) {
    console.log(change.value);
    break;
  }
}
`);
    // Put until the subscriber has seen it and exited: the script may subscribe at any time.
    let result: ScriptResult | undefined;
    void run.then((finished) => {
      result = finished;
    });
    const region = client!.region<string>('TEST');
    while (result === undefined) {
      await region.put(key, 'delivered');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(result.code, 0, describeResult(result));
    assert.equal(result.stdout, 'subscribed\ndelivered\n');
  });
});
