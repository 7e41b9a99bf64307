import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { WanProxy } from './wan-proxy.ts';

function echoServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    resolve({
      port: address.port,
      close: () => new Promise((done) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => done());
      }),
    });
  }));
}

function exchange(port: number, payload: Buffer, timeoutMs = 5000): Promise<{ echoed: Buffer; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(payload));
    const chunks: Buffer[] = [];
    let length = 0;
    const timer = setTimeout(() => reject(new Error('no echo')), timeoutMs);
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= payload.length) {
        clearTimeout(timer);
        resolve({ echoed: Buffer.concat(chunks), socket });
      }
    });
  });
}

test('bytes pass through in order with delay, jitter and a bandwidth cap', async (t) => {
  const echo = await echoServer();
  const proxy = await WanProxy.start({ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: echo.port }, delayMs: 5, jitterMs: 5, bandwidthBytesPerSecond: 10_000_000 });
  t.after(async () => {
    await proxy.close();
    await echo.close();
  });
  const payload = Buffer.alloc(200_000);
  for (let index = 0; index < payload.length; index++) payload[index] = index % 251;
  const { echoed, socket } = await exchange(proxy.address.port, payload);
  socket.destroy();
  assert.equal(Buffer.compare(echoed, payload), 0);
  assert.equal(proxy.totals.connections, 1);
});

test('a partition silences the link until healed', async (t) => {
  const echo = await echoServer();
  const proxy = await WanProxy.start({ listen: { host: '127.0.0.1', port: 0 }, target: { host: '127.0.0.1', port: echo.port } });
  t.after(async () => {
    await proxy.close();
    await echo.close();
  });
  proxy.partition();
  await assert.rejects(exchange(proxy.address.port, Buffer.from('hello'), 300));
  proxy.heal();
  const { echoed, socket } = await exchange(proxy.address.port, Buffer.from('again'));
  socket.destroy();
  assert.equal(echoed.toString(), 'again');
});
