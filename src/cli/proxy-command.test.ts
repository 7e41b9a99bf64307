import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { StraitError } from '../errors.ts';
import { controlReply, handleControlLine, parseBandwidth, parseMilliseconds, parseProxyOptions, proxyStats, runProxy, type ControlledProxy } from './proxy-command.ts';

/** Records what the control lines asked of the proxy. */
class FakeProxy implements ControlledProxy {
  delayMs = 0;
  jitterMs = 0;
  bandwidthBytesPerSecond: number | undefined = undefined;
  partitioned = false;
  openConnections = 3;
  readonly totals = { connections: 7, bytesUp: 100, bytesDown: 200 };
  setDelay(delayMs: number, jitterMs = 0): void {
    this.delayMs = delayMs;
    this.jitterMs = jitterMs;
  }
  setBandwidth(bytesPerSecond: number | undefined): void {
    this.bandwidthBytesPerSecond = bytesPerSecond;
  }
  partition(): void {
    this.partitioned = true;
    this.openConnections = 0;
  }
  heal(): void {
    this.partitioned = false;
  }
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof StraitError ? error.code : 'not a StraitError';
  }
  return undefined;
}

test('delay sets the one-way delay and jitter', () => {
  const proxy = new FakeProxy();
  const result = handleControlLine(proxy, 'delay 50 5');
  assert.equal(proxy.delayMs, 50);
  assert.equal(proxy.jitterMs, 5);
  assert.equal(result.quit, false);
  assert.ok(result.reply.startsWith('ok '));
  handleControlLine(proxy, '  DELAY   10  ');
  assert.equal(proxy.delayMs, 10);
  assert.equal(proxy.jitterMs, 0, 'jitter defaults to 0 when not given');
});

test('bandwidth sets and removes the cap', () => {
  const proxy = new FakeProxy();
  handleControlLine(proxy, 'bandwidth 1000000');
  assert.equal(proxy.bandwidthBytesPerSecond, 1_000_000);
  handleControlLine(proxy, 'bandwidth off');
  assert.equal(proxy.bandwidthBytesPerSecond, undefined);
});

test('partition and heal reach the proxy', () => {
  const proxy = new FakeProxy();
  assert.ok(handleControlLine(proxy, 'partition').reply.startsWith('ok '));
  assert.equal(proxy.partitioned, true);
  assert.ok(handleControlLine(proxy, 'heal').reply.startsWith('ok '));
  assert.equal(proxy.partitioned, false);
});

test('stats prints one line of JSON with settings and traffic', () => {
  const proxy = new FakeProxy();
  proxy.setDelay(10, 2);
  const { reply } = handleControlLine(proxy, 'stats');
  assert.ok(reply.startsWith('stats '));
  const stats = JSON.parse(reply.slice('stats '.length)) as Record<string, unknown>;
  assert.deepEqual(stats, proxyStats(proxy));
  assert.equal(stats['roundTripAddedMs'], 20);
  assert.equal(stats['connectionsAccepted'], 7);
  assert.equal(stats['bandwidthBytesPerSecond'], null);
});

test('quit asks to close; blank lines and comments do nothing', () => {
  const proxy = new FakeProxy();
  assert.equal(handleControlLine(proxy, 'quit').quit, true);
  assert.deepEqual(handleControlLine(proxy, '   '), { reply: '', quit: false });
  assert.deepEqual(handleControlLine(proxy, '# a note'), { reply: '', quit: false });
});

test('bad lines are STRAIT_USAGE and change nothing', () => {
  const proxy = new FakeProxy();
  proxy.setDelay(7, 1);
  for (const line of ['delay', 'delay -1', 'delay 1.5', 'delay abc', 'delay 1 2 3', 'delay 99999999', 'bandwidth', 'bandwidth fast', 'bandwidth -5', 'partition now', 'stats please', 'teleport', 'x'.repeat(2000)]) {
    assert.equal(codeOf(() => handleControlLine(proxy, line)), 'STRAIT_USAGE', line.slice(0, 40));
  }
  assert.equal(proxy.delayMs, 7);
  assert.equal(proxy.jitterMs, 1);
  assert.equal(proxy.partitioned, false);
  const reply = controlReply(proxy, 'teleport');
  assert.ok(reply.reply.startsWith('error STRAIT_USAGE: '));
  assert.equal(reply.quit, false);
});

test('option parsing: addresses, delays and bandwidth', () => {
  const options = parseProxyOptions({ listen: '127.0.0.2:7000', target: 'localhost[7001]', delayMs: '10', jitterMs: '2', bandwidth: '125000' });
  assert.deepEqual(options, {
    listen: { host: '127.0.0.2', port: 7000 },
    target: { host: 'localhost', port: 7001 },
    delayMs: 10,
    jitterMs: 2,
    bandwidthBytesPerSecond: 125000,
  });
  assert.deepEqual(parseProxyOptions({ listen: '127.0.0.1:0', target: '127.0.0.1:1' }).bandwidthBytesPerSecond, undefined);
  assert.equal(codeOf(() => parseProxyOptions({ target: '127.0.0.1:1' })), 'STRAIT_USAGE');
  assert.equal(codeOf(() => parseProxyOptions({ listen: '127.0.0.1:0' })), 'STRAIT_USAGE');
  assert.equal(codeOf(() => parseProxyOptions({ listen: 'not an address:x', target: '127.0.0.1:1' })), 'STRAIT_USAGE');
  assert.equal(codeOf(() => parseProxyOptions({ listen: '127.0.0.1:0', target: '127.0.0.1:0' })), 'STRAIT_USAGE');
  assert.equal(codeOf(() => parseProxyOptions({ listen: '127.0.0.1:0', target: '127.0.0.1:1', delayMs: 'soon' })), 'STRAIT_USAGE');
  assert.equal(parseMilliseconds('0', 'x'), 0);
  assert.equal(parseBandwidth('none', 'x'), undefined);
});

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

test('runProxy forwards bytes, obeys control lines from its input and closes on quit', async (t) => {
  const echo = createServer((socket) => socket.pipe(socket));
  const echoPort = await listen(echo);
  t.after(() => echo.close());
  const input = new PassThrough();
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  const out = (text: string): void => {
    lines.push(text);
    waiters.splice(0).forEach((wake) => wake());
  };
  const nextLine = async (count: number): Promise<string> => {
    while (lines.length < count) await new Promise<void>((resolve) => waiters.push(resolve));
    return lines[count - 1]!;
  };
  const running = runProxy(parseProxyOptions({ listen: '127.0.0.1:0', target: `127.0.0.1:${echoPort}` }), { input, out });
  const banner = await nextLine(1);
  const port = Number(/127\.0\.0\.1:(\d+)/.exec(banner)?.[1]);
  assert.ok(port > 0, banner);

  const socket: Socket = connect(port, '127.0.0.1');
  t.after(() => socket.destroy());
  const echoed = new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString('utf8'))));
  socket.write('hello');
  assert.equal(await echoed, 'hello');

  input.write('delay 5 1\n');
  assert.ok((await nextLine(2)).startsWith('ok delay 5 ms'));
  input.write('stats\n');
  const stats = JSON.parse((await nextLine(3)).slice('stats '.length)) as { delayMs: number; openConnections: number };
  assert.equal(stats.delayMs, 5);
  assert.equal(stats.openConnections, 1);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  input.write('partition\n');
  assert.ok((await nextLine(4)).startsWith('ok partitioned: 1 connection dropped'));
  await closed;
  input.write('bogus\n');
  assert.ok((await nextLine(5)).startsWith('error STRAIT_USAGE: '));
  input.write('heal\n');
  assert.ok((await nextLine(6)).startsWith('ok healed'));
  input.write('quit\n');
  assert.equal(await running, 0);
});

test('runProxy refuses a listen address in use with STRAIT_PORT_IN_USE', async (t) => {
  const taken = createServer();
  const port = await listen(taken);
  t.after(() => taken.close());
  await assert.rejects(
    runProxy(parseProxyOptions({ listen: `127.0.0.1:${port}`, target: '127.0.0.1:1' }), { input: new PassThrough(), out: () => {} }),
    (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_PORT_IN_USE',
  );
});
