import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Address, Logger, Stream, StreamHandler } from '../runtime.ts';
import { LmdbStorage } from './lmdb-storage.ts';
import { MemoryStorage } from '../memory-storage.ts';
import { createNodeRuntime, ZSTD, type NodeRuntime } from './node-runtime.ts';
import { compressionTests } from '../compression-test-suite.ts';

compressionTests('zstd', ZSTD);

const silent: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silent;
  },
};

/** A StreamHandler that records everything and lets tests await the close. */
class RecordingHandler implements StreamHandler {
  opened = 0;
  drained = 0;
  closes: Array<Error | undefined> = [];
  readonly chunks: Uint8Array[] = [];
  readonly closed: Promise<Error | undefined>;
  readonly #resolveClosed: (error: Error | undefined) => void;
  #dataWaiter: { bytes: number; resolve: () => void } | undefined;
  #drainWaiter: (() => void) | undefined;

  constructor() {
    let resolveClosed!: (error: Error | undefined) => void;
    this.closed = new Promise((resolve) => (resolveClosed = resolve));
    this.#resolveClosed = resolveClosed;
  }

  get received(): Uint8Array {
    return Buffer.concat(this.chunks);
  }

  /** Resolves once at least `bytes` bytes have arrived in total. */
  receivedAtLeast(bytes: number): Promise<void> {
    if (this.received.length >= bytes) return Promise.resolve();
    return new Promise((resolve) => (this.#dataWaiter = { bytes, resolve }));
  }

  onOpen(): void {
    this.opened++;
  }

  onData(bytes: Uint8Array): void {
    this.chunks.push(Uint8Array.from(bytes));
    if (this.#dataWaiter !== undefined && this.received.length >= this.#dataWaiter.bytes) {
      const { resolve } = this.#dataWaiter;
      this.#dataWaiter = undefined;
      resolve();
    }
  }

  onDrain(): void {
    this.drained++;
    this.#drainWaiter?.();
    this.#drainWaiter = undefined;
  }

  /** Resolves at the next onDrain (or at once if one already came). */
  drainedOnce(): Promise<void> {
    if (this.drained > 0) return Promise.resolve();
    return new Promise((resolve) => (this.#drainWaiter = resolve));
  }

  onClose(error: Error | undefined): void {
    this.closes.push(error);
    this.#resolveClosed(error);
  }
}

/** Lets every already-due event run, so a second (wrong) onClose would have been recorded. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

function listen(runtime: NodeRuntime, onStream: (stream: Stream) => void, bind: Address = { host: '127.0.0.1', port: 0 }) {
  return new Promise<{ address: Address; close: () => void }>((resolve, reject) => {
    const listener = runtime.network.listen(bind, onStream, (result) => {
      if (result.ok) resolve({ address: result.address, close: () => listener.close() });
      else reject(result.error);
    });
  });
}

function closeRuntime(runtime: NodeRuntime): Promise<void> {
  return new Promise((resolve, reject) => runtime.close((error) => (error === undefined ? resolve() : reject(error))));
}

/** A server that records each accepted stream with a RecordingHandler. */
async function startServer(runtime: NodeRuntime) {
  const accepted: Array<{ stream: Stream; handler: RecordingHandler }> = [];
  let notify: (() => void) | undefined;
  const listener = await listen(runtime, (stream) => {
    const handler = new RecordingHandler();
    stream.setHandler(handler);
    accepted.push({ stream, handler });
    notify?.();
  });
  const nextAccepted = async (index: number) => {
    while (accepted.length <= index) await new Promise<void>((resolve) => (notify = resolve));
    return accepted[index] as { stream: Stream; handler: RecordingHandler };
  };
  return { ...listener, accepted, nextAccepted };
}

function text(value: string): Uint8Array {
  return new TextEncoder().encode(value);
}

describe('node runtime network', () => {
  let runtime: NodeRuntime;
  before(() => {
    runtime = createNodeRuntime({ logger: silent });
  });
  after(() => closeRuntime(runtime));

  test('listening on port 0 reports the real port; bytes flow both ways; a clean close reaches both sides once', async () => {
    const server = await startServer(runtime);
    assert.equal(server.address.host, '127.0.0.1');
    assert.ok(server.address.port > 0);

    const client = new RecordingHandler();
    const stream = runtime.network.connect(server.address, client);
    assert.equal(stream.remote, `127.0.0.1[${server.address.port}]`);
    assert.equal(stream.write(text('hello server')), true, 'writes before the connection opens are queued');
    const { stream: accepted, handler: serverSide } = await server.nextAccepted(0);
    assert.match(accepted.remote, /^127\.0\.0\.1\[\d+\]$/);

    await serverSide.receivedAtLeast(12);
    assert.equal(new TextDecoder().decode(serverSide.received), 'hello server');
    accepted.write(text('hello client'));
    await client.receivedAtLeast(12);
    assert.equal(new TextDecoder().decode(client.received), 'hello client');
    assert.equal(client.opened, 1);
    assert.equal(serverSide.opened, 0, 'accepted streams get no onOpen');

    stream.close();
    stream.close();
    assert.equal(await client.closed, undefined);
    assert.equal(await serverSide.closed, undefined);
    await settle();
    assert.deepEqual(client.closes, [undefined]);
    assert.deepEqual(serverSide.closes, [undefined]);
    assert.equal(stream.write(text('late')), false, 'writes after close are dropped');
    server.close();
  });

  test('close flushes what was written before it', async () => {
    const server = await startServer(runtime);
    const client = new RecordingHandler();
    const stream = runtime.network.connect(server.address, client);
    const payload = new Uint8Array(1024 * 1024).map((_, index) => index & 0xff);
    stream.write(payload);
    stream.close();
    const { handler: serverSide } = await server.nextAccepted(0);
    await serverSide.closed;
    assert.deepEqual(serverSide.received, Buffer.from(payload));
    await client.closed;
    server.close();
  });

  test('destroy closes both sides exactly once; destroy(error) hands that error to onClose', async () => {
    const server = await startServer(runtime);

    const plain = new RecordingHandler();
    const first = runtime.network.connect(server.address, plain);
    const { handler: firstServerSide } = await server.nextAccepted(0);
    first.destroy();
    first.destroy();
    assert.equal(await plain.closed, undefined);
    await firstServerSide.closed;

    const reason = new Error('protocol violation');
    const withReason = new RecordingHandler();
    const second = runtime.network.connect(server.address, withReason);
    const { stream: secondAccepted, handler: secondServerSide } = await server.nextAccepted(1);
    secondAccepted.write(text('unread bytes'));
    second.destroy(reason);
    second.close();
    assert.equal(await withReason.closed, reason);
    await secondServerSide.closed;

    await settle();
    assert.equal(plain.closes.length, 1);
    assert.equal(firstServerSide.closes.length, 1);
    assert.equal(withReason.closes.length, 1);
    assert.equal(secondServerSide.closes.length, 1);
    server.close();
  });

  test('connecting to a closed port ends in one onClose with ECONNREFUSED and no onOpen', async () => {
    const server = await startServer(runtime);
    const target = server.address;
    server.close();
    const client = new RecordingHandler();
    const stream = runtime.network.connect(target, client);
    const error = (await client.closed) as Error & { code?: string; cause?: { code?: string } };
    assert.ok(error instanceof Error);
    assert.equal(error.code, 'ECONNREFUSED');
    assert.equal(error.cause?.code, 'ECONNREFUSED');
    assert.equal(stream.write(text('x')), false);
    await settle();
    assert.equal(client.opened, 0);
    assert.equal(client.closes.length, 1);
  });

  test('listening on a port in use is STRAIT_PORT_IN_USE', async () => {
    const server = await startServer(runtime);
    await assert.rejects(
      listen(runtime, () => {}, server.address),
      (error: unknown) => (error as { code?: unknown }).code === 'STRAIT_PORT_IN_USE',
    );
    server.close();
  });

  test('listening on an address this host does not have is STRAIT_BIND_FAILED', async () => {
    // 192.0.2.0/24 is reserved for documentation and never assigned to a local interface.
    await assert.rejects(
      listen(runtime, () => {}, { host: '192.0.2.1', port: 0 }),
      (error: unknown) => (error as { code?: unknown }).code === 'STRAIT_BIND_FAILED',
    );
    await assert.rejects(
      listen(runtime, () => {}, { host: '127.0.0.1', port: 70000 }),
      (error: unknown) => (error as { code?: unknown }).code === 'STRAIT_BIND_FAILED',
    );
  });

  test('an accepted stream holds its data and its close until the handler is set', async () => {
    const held: Stream[] = [];
    let accepted: (() => void) | undefined;
    const listener = await listen(runtime, (stream) => {
      held.push(stream);
      accepted?.();
    });
    const client = new RecordingHandler();
    const stream = runtime.network.connect(listener.address, client);
    stream.write(text('early bytes'));
    stream.close();
    while (held.length === 0) await new Promise<void>((resolve) => (accepted = resolve));
    // The bytes and the client's FIN arrive while no handler exists; nothing may be lost.
    await new Promise<void>((resolve) => setTimeout(resolve, 20));

    const late = new RecordingHandler();
    (held[0] as Stream).setHandler(late);
    await late.closed;
    assert.equal(new TextDecoder().decode(late.received), 'early bytes');
    await client.closed;
    await settle();
    assert.equal(late.closes.length, 1);
    assert.equal(client.closes.length, 1);
    listener.close();
  });

  test('write returns false when the buffer is full, and onDrain follows', async () => {
    const server = await startServer(runtime);
    const client = new RecordingHandler();
    const stream = runtime.network.connect(server.address, client);
    const chunk = new Uint8Array(64 * 1024);
    let written = 0;
    while (stream.write(chunk)) written += chunk.length;
    written += chunk.length;
    const { handler: serverSide } = await server.nextAccepted(0);
    await serverSide.receivedAtLeast(written);
    await client.drainedOnce();
    assert.equal(serverSide.received.length, written);
    stream.close();
    await client.closed;
    server.close();
  });

  test('a paused reader makes the writer back up; resuming delivers everything', async () => {
    const server = await startServer(runtime);
    const client = new RecordingHandler();
    const stream = runtime.network.connect(server.address, client);
    const { stream: accepted, handler: serverSide } = await server.nextAccepted(0);
    accepted.pause();
    const chunk = new Uint8Array(256 * 1024);
    let written = 0;
    for (let round = 0; round < 200 && stream.bufferedBytes === 0; round++) {
      for (let index = 0; index < 16; index++) {
        stream.write(chunk);
        written += chunk.length;
      }
      await settle();
    }
    assert.ok(stream.bufferedBytes > 0, 'the writer holds what the paused reader does not take');
    const receivedWhilePaused = serverSide.received.length;
    await settle();
    assert.equal(serverSide.received.length, receivedWhilePaused, 'nothing is delivered while paused');
    accepted.resume();
    await serverSide.receivedAtLeast(written);
    assert.equal(serverSide.received.length, written);
    stream.close();
    await client.closed;
    server.close();
  });
});

describe('node runtime timers, clock and random', () => {
  let runtime: NodeRuntime;
  before(() => {
    runtime = createNodeRuntime({ logger: silent });
  });
  after(() => closeRuntime(runtime));

  test('timers fire; a cancelled timer never does', async () => {
    const fired: string[] = [];
    const cancelled = runtime.setTimer(1, () => fired.push('cancelled'));
    runtime.setTimer(0, () => fired.push('first'));
    cancelled.cancel();
    cancelled.cancel();
    await new Promise<void>((resolve) =>
      runtime.setTimer(20, () => {
        fired.push('last');
        resolve();
      }),
    );
    assert.deepEqual(fired, ['first', 'last']);
  });

  test('the monotonic clock never goes backwards and the wall clock is epoch milliseconds', () => {
    let previous = runtime.clock.monotonic();
    for (let index = 0; index < 1000; index++) {
      const current = runtime.clock.monotonic();
      assert.ok(current >= previous);
      previous = current;
    }
    assert.ok(runtime.clock.now() > Date.UTC(2024, 0, 1));
  });

  test('random values stay in range', () => {
    for (const bound of [1, 2, 7, 1000, 2 ** 32, 2 ** 40]) {
      for (let index = 0; index < 2000; index++) {
        const value = runtime.random.int(bound);
        assert.ok(Number.isInteger(value) && value >= 0 && value < bound, `${value} not in [0, ${bound})`);
      }
    }
    for (let index = 0; index < 2000; index++) {
      const value = runtime.random.next();
      assert.ok(value >= 0 && value < 1);
    }
  });
});

describe('node runtime close', () => {
  test('close ends streams, stops listeners and timers, and later connects fail at once', async () => {
    const runtime = createNodeRuntime({ logger: silent });
    const server = await startServer(runtime);
    const client = new RecordingHandler();
    runtime.network.connect(server.address, client);
    const { handler: serverSide } = await server.nextAccepted(0);
    let timerFired = false;
    runtime.setTimer(10, () => (timerFired = true));

    await closeRuntime(runtime);
    assert.equal(client.closes.length, 1, 'streams closed before the close callback');
    assert.equal(serverSide.closes.length, 1);

    const late = new RecordingHandler();
    runtime.network.connect(server.address, late);
    const error = (await late.closed) as Error & { code?: string };
    assert.equal(error.code, 'ERR_RUNTIME_CLOSED');

    const other = createNodeRuntime({ logger: silent });
    const refused = new RecordingHandler();
    other.network.connect(server.address, refused);
    assert.equal(((await refused.closed) as Error & { code?: string }).code, 'ECONNREFUSED', 'the listener is gone');
    await new Promise<void>((resolve) => other.setTimer(30, resolve));
    assert.equal(timerFired, false);
    await closeRuntime(other);
  });

  test('storage is LMDB with a directory, memory without; close closes it', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'strait-runtime-'));
    try {
      const inMemory = createNodeRuntime({ logger: silent });
      assert.ok(inMemory.storage instanceof MemoryStorage);
      await closeRuntime(inMemory);

      const onDisk = createNodeRuntime({ logger: silent, storageDirectory: directory });
      assert.ok(onDisk.storage instanceof LmdbStorage);
      onDisk.storage.open('regions').put('k', text('v'));
      await closeRuntime(onDisk);

      const reopened = createNodeRuntime({ logger: silent, storageDirectory: directory });
      assert.deepEqual([...(reopened.storage.open('regions').get('k') ?? [])], [...text('v')]);
      await closeRuntime(reopened);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
