// Routers in the simulator: the mesh carries a tunnel between members registered on different
// routers (no partial partition), tunnels survive as streams end to end, and bad peers — a wrong
// secret, a push before registering, garbage, a connection that never registers — are closed
// with coded errors while the router keeps serving.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Connection } from '../protocol/connection.ts';
import type { Address, Stream } from '../runtime/runtime.ts';
import { Simulator, type SimHost } from '../sim/simulator.ts';
import { Router } from './router.ts';
import { RouterLinks, routedAddress, routedNetwork, routedTarget } from './router-links.ts';

const SECRET = 'a-mesh-secret-of-some-length';
const PORT = 12001;

function startRouter(sim: Simulator, name: string, address: string, peers: readonly Address[]): { router: Router; host: SimHost } {
  const host = sim.host(name, { address });
  const router = new Router(host.runtime(), { name, bind: { host: address, port: PORT }, hostnameForClients: undefined, routers: peers, secret: SECRET });
  router.start((result) => assert.ok(result.ok, String(result.error)));
  return { router, host };
}

/** A member whose accepted tunnels echo what they receive, prefixed with its name. */
function member(sim: Simulator, name: string, address: string, site: number, routers: readonly Address[], secret = SECRET) {
  const runtime = sim.host(name, { address }).runtime();
  const received: string[] = [];
  const links = new RouterLinks(runtime, routers, secret, {
    accept: (stream: Stream) => stream.setHandler({
      onOpen: () => {},
      onData: (bytes) => {
        received.push(Buffer.from(bytes).toString());
        stream.write(Buffer.from(`${name} got ${Buffer.from(bytes).toString()}`));
      },
      onDrain: () => {},
      onClose: () => {},
    }),
  }, runtime.log);
  links.start({ site, name, role: 'server' });
  return { runtime, links, received, network: routedNetwork(runtime.network, links) };
}

test('routed addresses round-trip and ordinary ones are not routed', () => {
  assert.deepEqual(routedTarget(routedAddress(7, 'server7-1')), { site: 7, name: 'server7-1' });
  assert.equal(routedTarget({ host: '10.0.0.1', port: 1 }), undefined);
  assert.equal(routedTarget({ host: 'router:x/y', port: 0 }), undefined);
});

test('a member registered only on router 1 reaches one registered only on router 2: the mesh relays', () => {
  const sim = new Simulator({ seed: 3, log: 'silent' });
  const r1 = { host: '10.9.0.1', port: PORT };
  const r2 = { host: '10.9.0.2', port: PORT };
  startRouter(sim, 'router-1', r1.host, [r2]);
  startRouter(sim, 'router-2', r2.host, []);
  const a = member(sim, 'a', '10.1.0.1', 1, [r1]);
  const b = member(sim, 'b', '10.2.0.1', 2, [r2]);
  sim.run({ untilMs: 2000 });
  assert.ok(a.links.registered && b.links.registered);
  const replies: string[] = [];
  let closed: Error | undefined | null = null;
  const stream = a.network.connect(routedAddress(2, 'b'), {
    onOpen: () => stream.write(Buffer.from('hello')),
    onData: (bytes) => replies.push(Buffer.from(bytes).toString()),
    onDrain: () => {},
    onClose: (error) => {
      closed = error;
    },
  });
  sim.run({ untilMs: 4000 });
  assert.deepEqual(b.received, ['hello']);
  assert.deepEqual(replies, ['b got hello']);
  stream.close();
  sim.run({ untilMs: 5000 });
  assert.equal(closed, undefined, 'a clean close ends the tunnel without an error');
});

test('a tunnel to a member no router holds closes at once with the reason', () => {
  const sim = new Simulator({ seed: 4, log: 'silent' });
  const r1 = { host: '10.9.0.1', port: PORT };
  startRouter(sim, 'router-1', r1.host, []);
  const a = member(sim, 'a', '10.1.0.1', 1, [r1]);
  sim.run({ untilMs: 1000 });
  let error: Error | undefined;
  a.network.connect(routedAddress(2, 'nobody'), { onOpen: () => {}, onData: () => {}, onDrain: () => {}, onClose: (closeError) => { error = closeError; } });
  sim.run({ untilMs: 2000 });
  assert.match(String(error?.message), /no router of the mesh holds a registration of nobody of site 2/);
});

test('when the router under a tunnel dies, the tunnel closes and a new one goes through the other router', () => {
  const sim = new Simulator({ seed: 5, log: 'silent' });
  const r1 = { host: '10.9.0.1', port: PORT };
  const r2 = { host: '10.9.0.2', port: PORT };
  const first = startRouter(sim, 'router-1', r1.host, [r2]);
  startRouter(sim, 'router-2', r2.host, [r1]);
  const a = member(sim, 'a', '10.1.0.1', 1, [r1, r2]);
  const b = member(sim, 'b', '10.2.0.1', 2, [r1, r2]);
  sim.run({ untilMs: 2000 });
  let firstClosed: Error | undefined | null = null;
  a.network.connect(routedAddress(2, 'b'), { onOpen: () => {}, onData: () => {}, onDrain: () => {}, onClose: (error) => { firstClosed = error; } });
  sim.run({ untilMs: 2500 });
  first.host.crash();
  sim.run({ untilMs: 8000 });
  assert.ok(firstClosed !== null && firstClosed !== undefined, 'the tunnel over the dead router ended with an error');
  const replies: string[] = [];
  const second = a.network.connect(routedAddress(2, 'b'), {
    onOpen: () => second.write(Buffer.from('again')),
    onData: (bytes) => replies.push(Buffer.from(bytes).toString()),
    onDrain: () => {},
    onClose: () => {},
  });
  sim.run({ untilMs: 10_000 });
  assert.deepEqual(replies, ['b got again']);
  assert.deepEqual(b.received, ['again']);
});

test('a wrong secret, a push before registering, garbage and a silent connection are closed; the router keeps serving', () => {
  const sim = new Simulator({ seed: 6, log: 'silent' });
  const r1 = { host: '10.9.0.1', port: PORT };
  startRouter(sim, 'router-1', r1.host, []);
  // A wrong secret: registration refused with a coded error, connection closed.
  const intruder = member(sim, 'intruder', '10.6.0.1', 6, [r1], 'not-the-mesh-secret-at-all');
  // A push before registering.
  const pusherRuntime = sim.host('pusher', { address: '10.6.0.2' }).runtime();
  let pusherError: Error | undefined;
  Connection.open(pusherRuntime, r1, { local: { role: 'server', name: 'pusher', site: 6 }, frameBytesMax: 1 << 20, requestTimeoutMs: 1000, requestsInFlightMax: 4 }, {
    onOpen: (connection) => connection.push('tunnelOpen', { tunnel: 'x', from: { site: 6, name: 'pusher' }, to: { site: 1, name: 'a' } }),
    onRequest: () => {}, onPush: () => {}, onClose: (_connection, error) => { pusherError = error; },
  });
  // Garbage bytes, and a connection that opens and never registers.
  const rawRuntime = sim.host('raw', { address: '10.6.0.3' }).runtime();
  let garbageClosed = false;
  const garbage = rawRuntime.network.connect(r1, {
    onOpen: () => garbage.write(Buffer.from('GET / HTTP/1.1\r\n\r\n')), onData: () => {}, onDrain: () => {}, onClose: () => { garbageClosed = true; },
  });
  let silentError: Error | undefined;
  Connection.open(rawRuntime, r1, { local: { role: 'server', name: 'silent', site: 6 }, frameBytesMax: 1 << 20, requestTimeoutMs: 60_000, requestsInFlightMax: 4 }, {
    onOpen: () => {}, onRequest: () => {}, onPush: () => {}, onClose: (_connection, error) => { silentError = error; },
  });
  sim.run({ untilMs: 8000 });
  assert.equal(intruder.links.registered, false);
  assert.match(String(intruder.links.statuses()[0]?.error), /router secret does not match/);
  assert.match(String(pusherError?.message), /before registering/);
  assert.ok(garbageClosed, 'garbage closed the connection');
  assert.match(String(silentError?.message), /registration .* timed out/);
  // Still serving: a good member registers, and two members talk.
  const a = member(sim, 'a', '10.1.0.1', 1, [r1]);
  const b = member(sim, 'b', '10.2.0.1', 2, [r1]);
  sim.run({ untilMs: 10_000 });
  assert.ok(a.links.registered && b.links.registered);
  const replies: string[] = [];
  const stream = a.network.connect(routedAddress(2, 'b'), {
    onOpen: () => stream.write(Buffer.from('still here')), onData: (bytes) => replies.push(Buffer.from(bytes).toString()), onDrain: () => {}, onClose: () => {},
  });
  sim.run({ untilMs: 12_000 });
  assert.deepEqual(replies, ['b got still here']);
});

test('a member may open tunnels only in its own name', () => {
  const sim = new Simulator({ seed: 7, log: 'silent' });
  const r1 = { host: '10.9.0.1', port: PORT };
  startRouter(sim, 'router-1', r1.host, []);
  const b = member(sim, 'b', '10.2.0.1', 2, [r1]);
  const runtime = sim.host('spoofer', { address: '10.6.0.9' }).runtime();
  const closes: string[] = [];
  Connection.open(runtime, r1, { local: { role: 'server', name: 'spoofer', site: 6 }, frameBytesMax: 1 << 20, requestTimeoutMs: 1000, requestsInFlightMax: 4 }, {
    onOpen: (connection) => connection.request('routerRegister', { secret: SECRET, kind: 'member', site: 6, name: 'spoofer' }, () => {
      connection.push('tunnelOpen', { tunnel: 't1', from: { site: 2, name: 'someone-else' }, to: { site: 2, name: 'b' } });
    }),
    onRequest: () => {},
    onPush: (_connection, op, body) => {
      if (op === 'tunnelClose') closes.push((body as { reason: string }).reason);
    },
    onClose: () => {},
  });
  sim.run({ untilMs: 3000 });
  assert.equal(closes.length, 1);
  assert.match(closes[0]!, /opens tunnels as itself/);
  assert.deepEqual(b.received, []);
});

test('a member cut off from the router loses its registration; a refused registration is closed', async () => {
  const sim = new Simulator({ seed: 8, log: 'silent' });
  const r1 = { host: '10.9.0.1', port: PORT };
  startRouter(sim, 'router-1', r1.host, []);
  const a = member(sim, 'a', '10.1.0.1', 1, [r1]);
  const b = member(sim, 'b', '10.2.0.1', 2, [r1]);
  // A locator-role connection that registers without a site: refused, then closed.
  const runtime = sim.host('odd', { address: '10.6.0.5' }).runtime();
  let refused: string | undefined;
  let oddClosed = false;
  Connection.open(runtime, r1, { local: { role: 'server', name: 'odd', site: 6 }, frameBytesMax: 1 << 20, requestTimeoutMs: 1000, requestsInFlightMax: 4 }, {
    onOpen: (connection) => connection.request('routerRegister', { secret: SECRET, kind: 'member', site: null, name: 'odd' }, (error) => { refused = error?.code; }),
    onRequest: () => {}, onPush: () => {}, onClose: () => { oddClosed = true; },
  });
  sim.run({ untilMs: 2000 });
  assert.ok(a.links.registered && b.links.registered);
  assert.equal(refused, 'STRAIT_MESSAGE_INVALID');
  sim.network.isolate('b');
  sim.run({ untilMs: 20_000 });
  assert.ok(oddClosed, 'the refused connection was closed by the registration timeout');
  let error: Error | undefined;
  a.network.connect(routedAddress(2, 'b'), { onOpen: () => {}, onData: () => {}, onDrain: () => {}, onClose: (closeError) => { error = closeError; } });
  sim.run({ untilMs: 21_000 });
  assert.match(String(error?.message), /no router of the mesh holds a registration of b of site 2/);
});
