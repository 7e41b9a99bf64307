// Connection over the simulated network: handshake, the peer's frame limit, the bound on
// requests awaiting replies, and backpressure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../errors.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { Simulator } from '../sim/simulator.ts';
import { Connection, type ConnectionHandler, type ConnectionOptions, type Reply } from './connection.ts';
import type { RequestOp } from './messages.ts';

const serverOptions: ConnectionOptions = {
  local: { role: 'server', name: 'server-1', site: 1 }, frameBytesMax: 64 * 1024, requestTimeoutMs: 5000, requestsInFlightMax: 1000,
};
const clientOptions: ConnectionOptions = {
  local: { role: 'client', name: 'client-1', site: null }, frameBytesMax: 1 << 24, requestTimeoutMs: 5000, requestsInFlightMax: 1000,
};

interface Setup {
  sim: Simulator;
  client: Connection;
  accepted: () => Connection;
  held: Reply<RequestOp>[];
  requests: string[];
}

/** A server that records requests and holds their replies; `answer` decides what it does. */
function setup(options: Partial<ConnectionOptions> = {}, answer: (op: string, reply: Reply<RequestOp>) => boolean = () => false): Setup {
  const sim = new Simulator({ seed: 3, log: 'silent', network: { rechunkProbability: 0 } });
  const serverRuntime: Runtime = sim.host('server', { address: '10.0.0.1' }).runtime();
  const clientRuntime: Runtime = sim.host('client', { address: '10.0.0.2' }).runtime();
  const held: Reply<RequestOp>[] = [];
  const requests: string[] = [];
  let serverSide: Connection | undefined;
  const handler: ConnectionHandler = {
    onOpen: () => {},
    onRequest: (_connection, request, reply) => {
      requests.push(request.op);
      if (!answer(request.op, reply)) held.push(reply);
    },
    onPush: () => {},
    onClose: () => {},
  };
  serverRuntime.network.listen({ host: '10.0.0.1', port: 7000 }, (stream) => {
    serverSide = Connection.accept(serverRuntime, stream, { ...serverOptions, ...options }, handler);
  }, () => {});
  const client = Connection.open(clientRuntime, { host: '10.0.0.1', port: 7000 }, clientOptions, {
    onOpen: () => {}, onRequest: (_c, _r, reply) => reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: 'server', reason: 'no' })), onPush: () => {}, onClose: () => {},
  });
  return { sim, client, accepted: () => serverSide!, held, requests };
}

function call(connection: Connection, op: 'ping' | 'put', body: object): { error: string | undefined; done: boolean } {
  const result = { error: undefined as string | undefined, done: false };
  connection.request(op, body as never, (error) => {
    result.done = true;
    result.error = error?.code;
  });
  return result;
}

test('each side learns the other\'s frame limit in the handshake', () => {
  const { sim, client, accepted } = setup();
  sim.run({ untilMs: 100 });
  assert.equal(client.peer?.frameBytesMax, serverOptions.frameBytesMax);
  assert.equal(accepted().peer?.frameBytesMax, clientOptions.frameBytesMax);
});

test('a request larger than the peer accepts fails with STRAIT_FRAME_TOO_LARGE and is never sent', () => {
  const { sim, client, requests } = setup();
  // Issued before the handshake: checked once the peer's limit is known.
  const early = call(client, 'put', { region: 'R', key: 'k', value: new Uint8Array(100 * 1024) });
  sim.run({ untilMs: 100 });
  const late = call(client, 'put', { region: 'R', key: 'k', value: new Uint8Array(100 * 1024) });
  const small = call(client, 'ping', {});
  sim.run({ untilMs: 200 });
  assert.deepEqual([early.error, late.error], ['STRAIT_FRAME_TOO_LARGE', 'STRAIT_FRAME_TOO_LARGE']);
  assert.equal(late.done, true, 'refused at once, without a round trip');
  assert.deepEqual(requests, ['ping'], 'only the small request reached the server');
  assert.equal(small.done, false, 'the connection stays usable');
  assert.equal(client.state, 'open');
});

test('a reply larger than the peer accepts becomes a STRAIT_FRAME_TOO_LARGE error reply', () => {
  const small: ConnectionOptions = { ...clientOptions, frameBytesMax: 1024 };
  const sim = new Simulator({ seed: 4, log: 'silent' });
  const serverRuntime = sim.host('server', { address: '10.0.0.1' }).runtime();
  const clientRuntime = sim.host('client', { address: '10.0.0.2' }).runtime();
  serverRuntime.network.listen({ host: '10.0.0.1', port: 7000 }, (stream) => {
    Connection.accept(serverRuntime, stream, serverOptions, {
      onOpen: () => {}, onRequest: (_c, _r, reply) => (reply as Reply<'get'>).ok({ value: new Uint8Array(4096) }), onPush: () => {}, onClose: () => {},
    });
  }, () => {});
  const client = Connection.open(clientRuntime, { host: '10.0.0.1', port: 7000 }, small, { onOpen: () => {}, onRequest: () => {}, onPush: () => {}, onClose: () => {} });
  let code: string | undefined;
  client.request('get', { region: 'R', key: 'k' }, (error) => { code = error?.code; });
  sim.run({ untilMs: 100 });
  assert.equal(code, 'STRAIT_FRAME_TOO_LARGE');
  assert.equal(client.state, 'open');
});

test('requests beyond incomingRequestsMax awaiting replies are refused with STRAIT_TOO_MANY_IN_FLIGHT', () => {
  const { sim, client, held } = setup({ incomingRequestsMax: 3 });
  const results = Array.from({ length: 5 }, () => call(client, 'ping', {}));
  sim.run({ untilMs: 100 });
  assert.deepEqual(results.map((result) => result.error), [undefined, undefined, undefined, 'STRAIT_TOO_MANY_IN_FLIGHT', 'STRAIT_TOO_MANY_IN_FLIGHT']);
  assert.equal(held.length, 3);
  for (const reply of held) reply.ok({});
  const after = call(client, 'ping', {});
  sim.run({ untilMs: 200 });
  assert.deepEqual([after.done, after.error], [false, undefined], 'room again once replies went out');
});

test('pushes are refused once the peer has not taken bufferedBytesMax of output', () => {
  const { sim, accepted } = setup({ bufferedBytesMax: 32 * 1024 });
  sim.run({ untilMs: 100 });
  const server = accepted();
  const body = { subscription: 1, region: 'R', key: 'k', value: new Uint8Array(8 * 1024), tag: [1, 1, 'm', 1] as [number, number, string, number] };
  const sent: boolean[] = [];
  for (let index = 0; index < 10; index++) sent.push(server.push('event', body));
  assert.ok(sent.slice(0, 4).every(Boolean));
  assert.equal(sent.at(-1), false);
  sim.run({ untilMs: 200 });
  assert.equal(server.push('event', body), true, 'once the output was taken, pushes go again');
});

test('an accepted connection whose replies back up stops reading requests until they drain', () => {
  const { sim, client, accepted, requests } = setup({ bufferedBytesMax: 16 * 1024, frameBytesMax: 1 << 20 },
    (_op, reply) => {
      (reply as Reply<'get'>).ok({ value: new Uint8Array(20 * 1024) });
      return true;
    });
  sim.run({ untilMs: 100 });
  // The client stops reading: the server's replies stay buffered.
  client.stream.pause();
  for (let index = 0; index < 20; index++) call(client, 'ping', {});
  sim.run({ untilMs: 300 });
  const taken = requests.length;
  assert.ok(taken < 20, `the server stopped taking requests (${taken} of 20)`);
  assert.ok(accepted().bufferedBytes > 16 * 1024);
  client.stream.resume();
  sim.run({ untilMs: 1000 });
  assert.equal(requests.length, 20, 'reading resumed once the replies drained');
});

test('a refused stream gets the coded reason before the close', () => {
  const sim = new Simulator({ seed: 5, log: 'silent' });
  const serverRuntime = sim.host('server', { address: '10.0.0.1' }).runtime();
  const clientRuntime = sim.host('client', { address: '10.0.0.2' }).runtime();
  serverRuntime.network.listen({ host: '10.0.0.1', port: 7000 }, (stream) => {
    Connection.refuse(stream, new StraitError('STRAIT_TOO_MANY_CONNECTIONS', { member: 'server-1', limit: 10_000 }));
  }, () => {});
  let closedWith: string | undefined;
  const client = Connection.open(clientRuntime, { host: '10.0.0.1', port: 7000 }, clientOptions, {
    onOpen: () => {}, onRequest: () => {}, onPush: () => {}, onClose: (_connection, error) => { closedWith = (error as StraitError | undefined)?.code; },
  });
  let requestFailedWith: string | undefined;
  client.request('ping', {}, (error) => { requestFailedWith = error?.code; });
  sim.run({ untilMs: 100 });
  assert.equal(closedWith, 'STRAIT_TOO_MANY_CONNECTIONS');
  assert.ok(requestFailedWith !== undefined);
});
