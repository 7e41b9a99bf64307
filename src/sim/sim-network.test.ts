import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Address, ListenResult, Runtime, Stream, StreamHandler } from '../runtime/runtime.ts';
import { SeededRandom } from './random.ts';
import { Simulator } from './simulator.ts';

/** Everything one stream saw, in order. */
class Recorder implements StreamHandler {
  opened = false;
  readonly chunks: Uint8Array[] = [];
  closes: (Error | undefined)[] = [];
  closedAtMs: number | undefined = undefined;
  private readonly simulator: Simulator;
  private readonly onDataHook: ((bytes: Uint8Array) => void) | undefined;

  constructor(simulator: Simulator, onData?: (bytes: Uint8Array) => void) {
    this.simulator = simulator;
    this.onDataHook = onData;
  }

  onOpen(): void {
    assert.equal(this.opened, false, 'onOpen twice');
    assert.equal(this.closes.length, 0, 'onOpen after onClose');
    this.opened = true;
  }

  onData(bytes: Uint8Array): void {
    assert.equal(this.closes.length, 0, 'onData after onClose');
    this.chunks.push(bytes);
    this.onDataHook?.(bytes);
  }

  onDrain(): void {}

  onClose(error: Error | undefined): void {
    assert.equal(this.closes.length, 0, 'onClose twice');
    this.closes.push(error);
    this.closedAtMs = this.simulator.nowMs;
  }

  get closed(): boolean {
    return this.closes.length > 0;
  }

  get closeCode(): string | undefined {
    const error = this.closes[0];
    return error === undefined ? undefined : (error as { code?: string }).code;
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

/** Listens on `runtime` and records every accepted stream. */
function listenRecording(simulator: Simulator, runtime: Runtime, bind: Address) {
  const accepted: { stream: Stream; recorder: Recorder }[] = [];
  const results: ListenResult[] = [];
  const listener = runtime.network.listen(
    bind,
    (stream) => {
      const recorder = new Recorder(simulator);
      stream.setHandler(recorder);
      accepted.push({ stream, recorder });
    },
    (result) => results.push(result),
  );
  return { listener, accepted, results };
}

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function errorCode(error: Error | undefined): string | undefined {
  return (error as { code?: string } | undefined)?.code;
}

/** A scripted echo exchange; returns its trace of (time, host, event). */
function echoTrace(seed: number): string[] {
  const simulator = new Simulator({ seed, log: 'silent' });
  const trace: string[] = [];
  const record = (host: string, event: string) => trace.push(`${simulator.nowMs} ${host} ${event}`);
  const server = simulator.host('server').runtime();
  const client = simulator.host('client').runtime();
  server.network.listen(
    { host: '0.0.0.0', port: 7000 },
    (stream) => {
      record('server', `accept ${stream.remote}`);
      stream.setHandler({
        onOpen: () => record('server', 'open'),
        onData: (data) => {
          record('server', `data ${Buffer.from(data).toString()}`);
          stream.write(data);
        },
        onDrain: () => {},
        onClose: (error) => record('server', `close ${errorCode(error)}`),
      });
    },
    (result) => record('server', `listening ${result.ok}`),
  );
  let echoed = '';
  const expected = Array.from({ length: 20 }, (_, index) => `message-${index};`).join('');
  simulator.schedule(5, () => {
    const stream = client.network.connect(
      { host: '10.0.0.1', port: 7000 },
      {
        onOpen: () => {
          record('client', 'open');
          for (let index = 0; index < 20; index++) stream.write(bytes(`message-${index};`));
        },
        onData: (data) => {
          echoed += Buffer.from(data).toString();
          record('client', `data ${Buffer.from(data).toString()}`);
          if (echoed === expected) stream.close();
        },
        onDrain: () => {},
        onClose: (error) => record('client', `close ${errorCode(error)}`),
      },
    );
  });
  const result = simulator.run();
  assert.equal(result.reason, 'idle');
  assert.equal(echoed, expected);
  return trace;
}

describe('SimNetwork', () => {
  it('replays the same trace from the same seed, and another from another seed', () => {
    const first = echoTrace(42);
    assert.deepEqual(echoTrace(42), first);
    assert.notDeepEqual(echoTrace(43), first);
    assert.ok(first.includes('0 server listening true'));
    assert.ok(first.at(-1)?.endsWith('client close undefined'));
  });

  it('delivers every byte exactly once and in order, whatever the jitter and chunking', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 }), (seed) => {
        const simulator = new Simulator({ seed, log: 'silent', network: { jitterMs: 30, rechunkProbability: 0.5 } });
        const server = simulator.host('server').runtime();
        const client = simulator.host('client').runtime();
        const sizes = new SeededRandom(seed).fork('sizes');
        const makePayload = (count: number) => {
          const writes: Uint8Array[] = [];
          for (let index = 0; index < count; index++) {
            const chunk = new Uint8Array(sizes.range(1, 300));
            for (let offset = 0; offset < chunk.length; offset++) chunk[offset] = sizes.int(256);
            writes.push(chunk);
          }
          return writes;
        };
        const toServer = makePayload(200);
        const toClient = makePayload(200);
        const { accepted } = listenRecording(simulator, server, { host: '0.0.0.0', port: 9000 });
        const clientRecorder = new Recorder(simulator);
        const stream = client.network.connect({ host: 'server', port: 9000 }, clientRecorder);
        // Some writes before the connection opens, the rest spread over virtual time.
        for (const [index, chunk] of toServer.entries()) {
          if (index < 20) stream.write(chunk);
          else simulator.schedule(index, () => stream.write(chunk));
        }
        simulator.run({ until: () => accepted.length === 1 });
        const acceptedStream = accepted[0]!.stream;
        // Several writes per millisecond, so chunks of one burst can merge.
        for (const [index, chunk] of toClient.entries()) simulator.schedule(Math.floor(index / 4), () => acceptedStream.write(chunk));
        simulator.run();
        // Buffer.equals rather than deepEqual: a diff of 30 kB would take minutes to print.
        assert.ok(Buffer.concat(accepted[0]!.recorder.chunks).equals(Buffer.concat(toServer)), 'client → server bytes differ');
        assert.ok(Buffer.concat(clientRecorder.chunks).equals(Buffer.concat(toClient)), 'server → client bytes differ');
        const lengths = (chunks: Uint8Array[]) => chunks.map((chunk) => chunk.length);
        assert.notDeepEqual(lengths(clientRecorder.chunks), lengths(toClient), 'chunk boundaries were rearranged');
        const stats = simulator.network.stats();
        assert.equal(stats.bytesInFlight, 0);
        assert.equal(stats.bytesDropped, 0);
      }),
      { numRuns: 30 },
    );
  });

  it('calls ready asynchronously with the bound port; port 0 picks distinct free ports', () => {
    const simulator = new Simulator({ seed: 1, log: 'silent' });
    const runtime = simulator.host('a').runtime();
    const first = listenRecording(simulator, runtime, { host: '0.0.0.0', port: 0 });
    const second = listenRecording(simulator, runtime, { host: '10.0.0.1', port: 0 });
    assert.equal(first.results.length, 0, 'ready is never synchronous');
    simulator.run();
    const [firstResult] = first.results;
    const [secondResult] = second.results;
    assert.ok(firstResult?.ok === true && secondResult?.ok === true);
    assert.ok(firstResult.address.port > 0 && secondResult.address.port > 0);
    assert.notEqual(firstResult.address.port, secondResult.address.port);
    assert.equal(secondResult.address.host, '10.0.0.1');
  });

  it('reports STRAIT_PORT_IN_USE for a taken port and STRAIT_BIND_FAILED for a foreign address', () => {
    const simulator = new Simulator({ seed: 2, log: 'silent' });
    const runtime = simulator.host('a').runtime();
    simulator.host('b');
    listenRecording(simulator, runtime, { host: '10.0.0.1', port: 7000 });
    const clash = listenRecording(simulator, runtime, { host: '127.0.0.1', port: 7000 });
    const foreign = listenRecording(simulator, runtime, { host: '10.0.0.2', port: 7001 });
    simulator.run();
    const [clashResult] = clash.results;
    const [foreignResult] = foreign.results;
    assert.ok(clashResult?.ok === false && foreignResult?.ok === false);
    assert.equal(clashResult.error.code, 'STRAIT_PORT_IN_USE');
    assert.equal(foreignResult.error.code, 'STRAIT_BIND_FAILED');
  });

  it('refuses connections nobody listens for, and after the listener closes', () => {
    const simulator = new Simulator({ seed: 3, log: 'silent' });
    const server = simulator.host('server').runtime();
    const client = simulator.host('client').runtime();
    const refused = new Recorder(simulator);
    client.network.connect({ host: '10.0.0.1', port: 7000 }, refused);
    simulator.run();
    assert.equal(refused.opened, false);
    assert.equal(refused.closeCode, 'ECONNREFUSED');

    const { listener } = listenRecording(simulator, server, { host: '0.0.0.0', port: 7000 });
    simulator.run();
    const accepted = new Recorder(simulator);
    client.network.connect({ host: '10.0.0.1', port: 7000 }, accepted);
    simulator.run();
    assert.equal(accepted.opened, true);
    listener.close();
    const late = new Recorder(simulator);
    client.network.connect({ host: '10.0.0.1', port: 7000 }, late);
    simulator.run();
    assert.equal(late.closeCode, 'ECONNREFUSED');
    assert.equal(accepted.closed, false, 'closing a listener leaves accepted streams open');
  });

  it('times out connects to unknown hosts', () => {
    const simulator = new Simulator({ seed: 4, log: 'silent' });
    const client = simulator.host('client').runtime();
    const recorder = new Recorder(simulator);
    client.network.connect({ host: '10.9.9.9', port: 7000 }, recorder);
    simulator.run();
    assert.equal(recorder.closeCode, 'ETIMEDOUT');
    assert.equal(recorder.closedAtMs, simulator.network.options.connectTimeoutMs);
  });

  it('queues writes made before onOpen behind the handshake', () => {
    const simulator = new Simulator({ seed: 5, log: 'silent' });
    const server = simulator.host('server').runtime();
    const client = simulator.host('client').runtime();
    const { accepted } = listenRecording(simulator, server, { host: '0.0.0.0', port: 7000 });
    const stream = client.network.connect({ host: '10.0.0.1', port: 7000 }, new Recorder(simulator));
    stream.write(bytes('early '));
    stream.write(bytes('bird'));
    simulator.run();
    assert.equal(accepted[0]?.recorder.text, 'early bird');
  });

  it('close() flushes data both ways, then each side gets exactly one clean onClose', () => {
    const simulator = new Simulator({ seed: 6, log: 'silent', network: { jitterMs: 10 } });
    const server = simulator.host('server').runtime();
    const client = simulator.host('client').runtime();
    const { accepted } = listenRecording(simulator, server, { host: '0.0.0.0', port: 7000 });
    const clientRecorder = new Recorder(simulator);
    const stream = client.network.connect({ host: '10.0.0.1', port: 7000 }, clientRecorder);
    simulator.run({ until: () => clientRecorder.opened });
    accepted[0]!.stream.write(bytes('reply'));
    for (let index = 0; index < 10; index++) stream.write(bytes(`${index}`));
    stream.close();
    assert.equal(stream.write(bytes('too late')), false);
    simulator.run();
    assert.equal(accepted[0]!.recorder.text, '0123456789');
    assert.deepEqual(accepted[0]!.recorder.closes, [undefined]);
    assert.equal(clientRecorder.text, 'reply');
    assert.deepEqual(clientRecorder.closes, [undefined]);
    assert.equal(simulator.network.stats().connectionsOpen, 0);
  });

  it('destroy() tells the local side at once and resets the peer', () => {
    const simulator = new Simulator({ seed: 7, log: 'silent' });
    const server = simulator.host('server').runtime();
    const client = simulator.host('client').runtime();
    const { accepted } = listenRecording(simulator, server, { host: '0.0.0.0', port: 7000 });
    const clientRecorder = new Recorder(simulator);
    const stream = client.network.connect({ host: '10.0.0.1', port: 7000 }, clientRecorder);
    simulator.run({ until: () => clientRecorder.opened });
    const reason = new Error('done with it');
    stream.destroy(reason);
    stream.destroy();
    simulator.run();
    assert.deepEqual(clientRecorder.closes, [reason]);
    assert.equal(accepted[0]!.recorder.closeCode, 'ECONNRESET');
  });

  it('resets connections across a partition, times out new connects, and heals', () => {
    const simulator = new Simulator({ seed: 8, log: 'silent' });
    const server = simulator.host('server').runtime();
    const client = simulator.host('client').runtime();
    simulator.host('bystander');
    const { accepted } = listenRecording(simulator, server, { host: '0.0.0.0', port: 7000 });
    const before = new Recorder(simulator);
    const stream = client.network.connect({ host: '10.0.0.1', port: 7000 }, before);
    simulator.run({ until: () => before.opened });
    stream.write(bytes('in flight when the partition comes'));
    simulator.network.partition(['client'], ['server']);
    assert.equal(simulator.network.isPartitioned('server', 'client'), true);
    assert.equal(simulator.network.isPartitioned('server', 'bystander'), false);
    simulator.run();
    assert.equal(before.closeCode, 'ECONNRESET');
    assert.equal(accepted[0]!.recorder.closeCode, 'ECONNRESET');
    assert.equal(accepted[0]!.recorder.text, '', 'bytes in flight are dropped, never delivered late');

    const startedMs = simulator.nowMs;
    const during = new Recorder(simulator);
    client.network.connect({ host: '10.0.0.1', port: 7000 }, during);
    simulator.run();
    assert.equal(during.closeCode, 'ETIMEDOUT');
    assert.equal(during.closedAtMs, startedMs + simulator.network.options.connectTimeoutMs);
    assert.equal(accepted.length, 1, 'the SYN never reached the server');

    simulator.network.heal();
    const after = new Recorder(simulator);
    const healed = client.network.connect({ host: '10.0.0.1', port: 7000 }, after);
    simulator.run({ until: () => after.opened });
    healed.write(bytes('hello again'));
    simulator.run();
    assert.equal(accepted[1]?.recorder.text, 'hello again');
  });

  it('isolates a host from every other host but not from itself', () => {
    const simulator = new Simulator({ seed: 9, log: 'silent' });
    const lonely = simulator.host('lonely').runtime();
    const other = simulator.host('other').runtime();
    listenRecording(simulator, lonely, { host: '0.0.0.0', port: 7000 });
    simulator.network.isolate('lonely');
    const fromOther = new Recorder(simulator);
    const fromSelf = new Recorder(simulator);
    other.network.connect({ host: '10.0.0.1', port: 7000 }, fromOther);
    lonely.network.connect({ host: '127.0.0.1', port: 7000 }, fromSelf);
    simulator.run();
    assert.equal(fromOther.closeCode, 'ETIMEDOUT');
    assert.equal(fromSelf.opened, true);
  });

  it('resets the connection of a write with resetProbability 1, dropping its bytes', () => {
    const simulator = new Simulator({ seed: 10, log: 'silent' });
    const server = simulator.host('server').runtime();
    const client = simulator.host('client').runtime();
    const { accepted } = listenRecording(simulator, server, { host: '0.0.0.0', port: 7000 });
    const recorder = new Recorder(simulator);
    const stream = client.network.connect({ host: '10.0.0.1', port: 7000 }, recorder);
    simulator.run({ until: () => recorder.opened });
    simulator.network.setResetProbability(1);
    assert.equal(stream.write(bytes('lost')), true);
    simulator.run();
    assert.equal(recorder.closeCode, 'ECONNRESET');
    assert.equal(accepted[0]!.recorder.closeCode, 'ECONNRESET');
    assert.equal(accepted[0]!.recorder.text, '');
    const stats = simulator.network.stats();
    assert.equal(stats.connectionsReset, 1);
    assert.equal(stats.bytesDropped, 4);
    assert.equal(stats.bytesInFlight, 0);
  });

  it('resets the streams of a crashed process for its peers and refuses new connects', () => {
    const simulator = new Simulator({ seed: 11, log: 'silent' });
    const serverHost = simulator.host('server');
    const client = simulator.host('client').runtime();
    const { accepted } = listenRecording(simulator, serverHost.runtime(), { host: '0.0.0.0', port: 7000 });
    const recorder = new Recorder(simulator);
    client.network.connect({ host: '10.0.0.1', port: 7000 }, recorder);
    simulator.run({ until: () => recorder.opened });
    serverHost.crash();
    simulator.run();
    assert.equal(recorder.closeCode, 'ECONNRESET');
    assert.equal(accepted[0]!.recorder.closed, false, 'the dead process hears nothing');

    const refused = new Recorder(simulator);
    client.network.connect({ host: '10.0.0.1', port: 7000 }, refused);
    simulator.run();
    assert.equal(refused.closeCode, 'ECONNREFUSED');

    // The restarted process can bind the same port again.
    const restarted = listenRecording(simulator, serverHost.runtime(), { host: '0.0.0.0', port: 7000 });
    const again = new Recorder(simulator);
    client.network.connect({ host: '10.0.0.1', port: 7000 }, again);
    simulator.run();
    assert.equal(restarted.results[0]?.ok, true);
    assert.equal(again.opened, true);
  });

  it('reorders messages across connections through jitter', () => {
    const simulator = new Simulator({ seed: 12, log: 'silent', network: { jitterMs: 20, rechunkProbability: 0 } });
    const server = simulator.host('server').runtime();
    const arrivals: string[] = [];
    server.network.listen(
      { host: '0.0.0.0', port: 7000 },
      (stream) => stream.setHandler({ onOpen() {}, onData: (data) => arrivals.push(Buffer.from(data).toString()), onDrain() {}, onClose() {} }),
      () => {},
    );
    const sent: string[] = [];
    for (let index = 0; index < 20; index++) {
      const client = simulator.host(`client${index}`).runtime();
      const stream = client.network.connect({ host: '10.0.0.1', port: 7000 }, { onOpen() {}, onData() {}, onDrain() {}, onClose() {} });
      simulator.schedule(100, () => stream.write(bytes(`${index}`)));
      sent.push(`${index}`);
    }
    simulator.run();
    assert.deepEqual([...arrivals].sort(), [...sent].sort());
    assert.notDeepEqual(arrivals, sent);
  });

  it('a paused reader holds data and the FIN behind it; the writer backs up, then drains', () => {
    const simulator = new Simulator({ seed: 7, log: 'silent', network: { rechunkProbability: 0 } });
    const server = simulator.host('server', { address: '10.0.0.1' }).runtime();
    const client = simulator.host('client', { address: '10.0.0.2' }).runtime();
    const { accepted } = listenRecording(simulator, server, { host: '10.0.0.1', port: 7000 });
    let drains = 0;
    const writes: boolean[] = [];
    const stream = client.network.connect({ host: '10.0.0.1', port: 7000 }, {
      onOpen: () => {}, onData: () => {}, onDrain: () => { drains += 1; }, onClose: () => {},
    });
    simulator.run({ untilMs: 10 });
    const reader = accepted[0]!;
    reader.stream.pause();
    const chunk = new Uint8Array(16 * 1024).fill(1);
    for (let index = 0; index < 8; index++) writes.push(stream.write(chunk));
    stream.close();
    simulator.run({ untilMs: 100 });
    assert.equal(reader.recorder.chunks.length, 0, 'nothing delivered while paused');
    assert.equal(reader.recorder.closed, false, 'the FIN waits behind the held data');
    assert.equal(stream.bufferedBytes, 8 * chunk.length, 'held bytes count as buffered at the writer');
    assert.deepEqual(writes.slice(0, 4), [true, true, true, true]);
    assert.equal(writes.at(-1), false, 'past the write buffer, write says wait');
    assert.equal(drains, 0);
    reader.stream.resume();
    simulator.run({ untilMs: 200 });
    assert.equal(Buffer.concat(reader.recorder.chunks).length, 8 * chunk.length);
    assert.equal(reader.recorder.closed, true);
    assert.equal(drains, 1);
  });

  it('runs thousands of messages quickly in virtual time', () => {
    const simulator = new Simulator({ seed: 13, log: 'silent' });
    const server = simulator.host('server').runtime();
    const client = simulator.host('client').runtime();
    const messagesCount = 5000;
    let received = 0;
    server.network.listen(
      { host: '0.0.0.0', port: 7000 },
      (stream) => stream.setHandler({ onOpen() {}, onData: (data) => void stream.write(data), onDrain() {}, onClose() {} }),
      () => {},
    );
    const stream = client.network.connect(
      { host: '10.0.0.1', port: 7000 },
      {
        onOpen() {},
        onData: (data) => {
          received += data.length;
        },
        onDrain() {},
        onClose() {},
      },
    );
    for (let index = 0; index < messagesCount; index++) simulator.schedule(index % 100, () => stream.write(new Uint8Array(100)));
    simulator.run();
    assert.equal(received, messagesCount * 100);
  });
});
