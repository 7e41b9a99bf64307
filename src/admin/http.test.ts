import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createAdminServer } from './http.ts';
import { createMetrics } from './metrics.ts';
import { StraitError } from '../errors.ts';
import type { MemberAdmin, MemberStatus, RegionStatus } from '../core/member-admin.ts';
import type { ConfigChange, RegionSpec, RequestBody, SenderStatus, View } from '../protocol/messages.ts';
import type { Address, Logger } from '../runtime/runtime.ts';

const INFO = {
  id: 'server1-1-abc',
  name: 'server1-1',
  role: 'server' as const,
  site: 1,
  address: { host: '127.0.0.1', port: 40404 },
  regions: ['TEST'],
};

const VIEW: View = {
  site: 1,
  id: 3,
  lineage: [1, 'locator-1-xyz'],
  coordinator: 'locator-1-xyz',
  members: [{ info: INFO, joinSeq: 2, load: 0, ready: true }],
  departed: [],
};

const SENDER: SenderStatus = {
  id: 'to-site-2',
  member: 'server1-1',
  remoteSite: 2,
  role: 'primary',
  state: 'running',
  connectedReceiver: { host: '10.0.0.2', port: 5001 },
  queueEvents: 3,
  queueBytes: 420,
  overflowEvents: 0,
  batchesInFlight: 1,
  eventsSent: 1200,
  lastAckAtMs: 1_700_000_000_000,
  lagMs: 12,
  deadLetters: 0,
  problem: null,
};

const RECEIVER: Address = { host: '10.0.0.1', port: 5000 };

interface FakeAdmin extends MemberAdmin {
  readonly specs: Map<string, RegionSpec>;
  /** Every configuration change, in order. */
  readonly changes: ConfigChange[];
  /** Every controlSender request, in order. */
  readonly controls: RequestBody<'senderControl'>[];
}

/** A test double of a server's admin interface, holding regions in a map and one sender. */
function fakeAdmin(options: { view?: View | null; failWith?: Error; senders?: SenderStatus[]; receiver?: Address | null } = {}): FakeAdmin {
  const specs = new Map<string, RegionSpec>([['TEST', { name: 'TEST', type: 'replicate', persistent: false }]]);
  const senders = new Map((options.senders ?? [SENDER]).map((sender) => [sender.id, { ...sender }]));
  const controls: RequestBody<'senderControl'>[] = [];
  const changes: ConfigChange[] = [];
  return {
    specs,
    controls,
    changes,
    catalogue() {
      return [];
    },
    siteSenders(callback) {
      callback([...senders.values()]);
    },
    siteConfig() {
      return { version: changes.length, regions: [], senders: [], receiver: null, remoteLocators: [] };
    },
    changeConfig(change, callback) {
      if (change.kind === 'destroySender' && change.id === 'busy') {
        callback(new StraitError('STRAIT_SENDER_NOT_DRAINED', { sender: 'busy', member: INFO.name, events: 3, timeoutMs: change.drainTimeoutMs ?? 0, site: 2 }), undefined);
        return;
      }
      changes.push(change);
      callback(undefined, { version: changes.length, changed: true, members: [{ member: INFO.name, version: changes.length }] });
    },
    senders() {
      return [...senders.values()];
    },
    receiver() {
      return options.receiver === undefined ? RECEIVER : options.receiver;
    },
    gatewayLinks() {
      return { dialOut: [], dialIn: [] };
    },
    controlSender(request, callback) {
      controls.push(request);
      const sender = senders.get(request.id);
      if (sender === undefined) {
        callback(new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: request.id, member: INFO.name }), undefined);
        return;
      }
      const states = { pause: 'paused', resume: 'running', stop: 'stopped', start: 'running', replayDeadLetters: sender.state } as const;
      sender.state = states[request.action];
      const members = [{ member: INFO.name, state: sender.state }];
      if (request.everyMember === true) members.push({ member: 'server1-2', state: sender.state });
      callback(undefined, members);
    },
    status(): MemberStatus {
      return { info: INFO, state: 'ready', viewId: 3, coordinator: 'locator-1-xyz' };
    },
    view() {
      return options.view === undefined ? VIEW : options.view;
    },
    regions(): RegionStatus[] {
      if (options.failWith !== undefined) throw options.failWith;
      return [...specs.values()].map((spec) => ({ spec, size: 0 }));
    },
    createRegion(spec, callback) {
      const existing = specs.get(spec.name);
      if (existing !== undefined) {
        if (existing.persistent !== spec.persistent) callback(new StraitError('STRAIT_REGION_EXISTS', { region: spec.name, member: INFO.name }), undefined);
        else callback(undefined, { created: false });
        return;
      }
      specs.set(spec.name, spec);
      callback(undefined, { created: true });
    },
  };
}

function recordingLogger(): Logger & { errors: string[] } {
  const errors: string[] = [];
  const logger: Logger & { errors: string[] } = {
    errors,
    debug() {},
    info() {},
    warn() {},
    error(_fields, message) {
      errors.push(message);
    },
    child() {
      return logger;
    },
  };
  return logger;
}

function build(options: { admin?: MemberAdmin; token?: string } = {}) {
  const logger = recordingLogger();
  const metrics = createMetrics('server', 'server1-1', 1);
  const app = createAdminServer({ admin: options.admin ?? fakeAdmin(), metricsRegistry: metrics.registry, logger, token: options.token });
  return { app, logger, metrics };
}

describe('admin HTTP API', () => {
  it('GET /health answers ok with the member state', async () => {
    const { app } = build();
    const response = await app.inject({ method: 'GET', url: '/health' });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { status: 'ok', state: 'ready' });
  });

  it('GET /ready answers 200 once the member serves, 503 STRAIT_NOT_READY before', async () => {
    const { app } = build();
    const ready = await app.inject({ method: 'GET', url: '/ready' });
    assert.equal(ready.statusCode, 200);
    assert.deepEqual(ready.json(), { status: 'ready' });
    const joining = fakeAdmin();
    const { app: starting } = build({ admin: { ...joining, status: () => ({ ...joining.status(), state: 'joining' }) } });
    const notReady = await starting.inject({ method: 'GET', url: '/ready' });
    assert.equal(notReady.statusCode, 503);
    assert.equal(notReady.json().code, 'STRAIT_NOT_READY');
  });

  it('GET /member answers the member status', async () => {
    const { app } = build();
    const response = await app.inject({ method: 'GET', url: '/member' });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { info: INFO, state: 'ready', viewId: 3, coordinator: 'locator-1-xyz' });
  });

  it('GET /view answers the view, or STRAIT_NOT_READY before one is installed', async () => {
    const { app } = build();
    const response = await app.inject({ method: 'GET', url: '/view' });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), VIEW);

    const { app: starting } = build({ admin: fakeAdmin({ view: null }) });
    const notReady = await starting.inject({ method: 'GET', url: '/view' });
    assert.equal(notReady.statusCode, 503);
    assert.equal(notReady.json().code, 'STRAIT_NOT_READY');
    assert.equal(notReady.json().retryable, true);
  });

  it('GET /regions lists regions with sizes', async () => {
    const { app } = build();
    const response = await app.inject({ method: 'GET', url: '/regions' });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { regions: [{ spec: { name: 'TEST', type: 'replicate', persistent: false }, size: 0 }] });
  });

  it('POST /regions creates (201), finds existing (200), reports conflicts (409)', async () => {
    const admin = fakeAdmin();
    const { app } = build({ admin });
    const spec = { name: 'CARTS', type: 'replicate', persistent: true };
    const created = await app.inject({ method: 'POST', url: '/regions', payload: spec });
    assert.equal(created.statusCode, 201);
    assert.deepEqual(created.json(), { created: true, spec });
    assert.deepEqual(admin.specs.get('CARTS'), spec);

    const again = await app.inject({ method: 'POST', url: '/regions', payload: spec });
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().created, false);

    const conflict = await app.inject({ method: 'POST', url: '/regions', payload: { ...spec, persistent: false } });
    assert.equal(conflict.statusCode, 409);
    assert.deepEqual(Object.keys(conflict.json()).sort(), ['code', 'message', 'retryable']);
    assert.equal(conflict.json().code, 'STRAIT_REGION_EXISTS');
    assert.equal(conflict.json().retryable, false);
  });

  const badBodies: Array<[string, unknown]> = [
    ['missing name', { type: 'replicate', persistent: false }],
    ['empty name', { name: '', type: 'replicate', persistent: false }],
    ['unknown type', { name: 'A', type: 'mirror', persistent: false }],
    ['persistent as text', { name: 'A', type: 'replicate', persistent: 'yes' }],
    ['extra property', { name: 'A', type: 'replicate', persistent: false, extra: 1 }],
    ['an array', [1, 2]],
  ];
  for (const [title, payload] of badBodies) {
    it(`POST /regions rejects a body with ${title} as STRAIT_BAD_REQUEST`, async () => {
      const admin = fakeAdmin();
      const { app } = build({ admin });
      const response = await app.inject({ method: 'POST', url: '/regions', payload: payload as object });
      assert.equal(response.statusCode, 400);
      assert.equal(response.json().code, 'STRAIT_BAD_REQUEST');
      assert.equal(admin.specs.size, 1);
    });
  }

  it('the /config routes turn each request into one site configuration change', async () => {
    const admin = fakeAdmin();
    const { app } = build({ admin });
    const calls: { method: 'POST' | 'PATCH' | 'PUT' | 'DELETE'; url: string; payload?: object }[] = [
      { method: 'POST', url: '/config/regions', payload: { name: 'orders', type: 'replicate', persistent: true } },
      { method: 'PATCH', url: '/config/regions/orders', payload: { gatewaySenderIds: ['to-2'] } },
      { method: 'DELETE', url: '/config/regions/orders' },
      { method: 'POST', url: '/config/gateway-senders', payload: { id: 'to-2', remoteSiteId: 2, batchSize: 50 } },
      { method: 'PATCH', url: '/config/gateway-senders/to-2', payload: { batchTimeIntervalMs: 20 } },
      { method: 'DELETE', url: '/config/gateway-senders/to-2?drainTimeoutMs=5000' },
      { method: 'PUT', url: '/config/gateway-receiver', payload: { startPort: 5000, endPort: 5010 } },
      { method: 'DELETE', url: '/config/gateway-receiver' },
      { method: 'PUT', url: '/config/remote-locators', payload: { addresses: [{ host: '10.0.0.2', port: 10334 }] } },
      { method: 'POST', url: '/config/changes', payload: { change: { kind: 'destroyRegion', name: 'x' } } },
    ];
    for (const call of calls) {
      const response = await app.inject(call.payload === undefined ? { method: call.method, url: call.url } : { method: call.method, url: call.url, payload: call.payload });
      assert.equal(response.statusCode, 200, `${call.method} ${call.url}: ${response.body}`);
      assert.equal(response.json().changed, true);
    }
    assert.deepEqual(admin.changes.map((change) => change.kind), [
      'createRegion', 'alterRegion', 'destroyRegion', 'createSender', 'alterSender', 'destroySender', 'createReceiver', 'destroyReceiver', 'setRemoteLocators', 'destroyRegion',
    ]);
    assert.deepEqual(admin.changes[5], { kind: 'destroySender', id: 'to-2', drainTimeoutMs: 5000 });
    const config = await app.inject({ method: 'GET', url: '/config' });
    assert.equal(config.json().version, calls.length);
  });

  it('the /config routes refuse bad bodies with coded errors and pass the site\'s refusals on', async () => {
    const admin = fakeAdmin();
    const { app } = build({ admin });
    const bad = [
      { method: 'POST' as const, url: '/config/gateway-senders', payload: { id: 'to-2', remoteSiteId: 2, dispatcherThreads: 99 } },
      { method: 'POST' as const, url: '/config/gateway-senders', payload: { id: 'to-2', remoteSiteId: 300 } },
      { method: 'PUT' as const, url: '/config/gateway-receiver', payload: { startPort: 'five' } },
      { method: 'DELETE' as const, url: '/config/gateway-senders/to-2?drainTimeoutMs=9999999' },
      { method: 'POST' as const, url: '/config/changes', payload: { change: { kind: 'dropEverything' } } },
    ];
    for (const call of bad) {
      const response = await app.inject(call.method === 'DELETE' ? { method: call.method, url: call.url } : { method: call.method, url: call.url, payload: (call as { payload: object }).payload });
      assert.equal(response.statusCode, 400, `${call.method} ${call.url}: ${response.body}`);
      assert.equal(response.json().code, 'STRAIT_BAD_REQUEST');
    }
    assert.equal(admin.changes.length, 0, 'nothing reached the member');
    const refused = await app.inject({ method: 'DELETE', url: '/config/gateway-senders/busy' });
    assert.equal(refused.statusCode, 409);
    assert.equal(refused.json().code, 'STRAIT_SENDER_NOT_DRAINED');
  });

  it('rejects malformed JSON as STRAIT_BAD_REQUEST', async () => {
    const { app } = build();
    const response = await app.inject({
      method: 'POST',
      url: '/regions',
      headers: { 'content-type': 'application/json' },
      payload: '{"name": ',
    });
    assert.equal(response.statusCode, 400);
    assert.equal(response.json().code, 'STRAIT_BAD_REQUEST');
  });

  it('answers unknown routes with STRAIT_ROUTE_NOT_FOUND', async () => {
    const { app } = build();
    const response = await app.inject({ method: 'GET', url: '/nope' });
    assert.equal(response.statusCode, 404);
    assert.equal(response.json().code, 'STRAIT_ROUTE_NOT_FOUND');
  });

  it('turns an unexpected exception into STRAIT_INTERNAL and logs it', async () => {
    const { app, logger } = build({ admin: fakeAdmin({ failWith: new TypeError('boom') }) });
    const response = await app.inject({ method: 'GET', url: '/regions' });
    assert.equal(response.statusCode, 500);
    assert.equal(response.json().code, 'STRAIT_INTERNAL');
    assert.equal(logger.errors.length, 1);
  });

  it('GET /gateways answers this member\'s senders and receiver', async () => {
    const { app } = build();
    const response = await app.inject({ method: 'GET', url: '/gateways' });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { senders: [SENDER], receiver: RECEIVER, links: { dialOut: [], dialIn: [] } });

    const { app: bare } = build({ admin: fakeAdmin({ senders: [], receiver: null }) });
    assert.deepEqual((await bare.inject({ method: 'GET', url: '/gateways' })).json(), { senders: [], receiver: null, links: { dialOut: [], dialIn: [] } });
  });

  it('GET /gateways/senders/:id answers one sender, STRAIT_SENDER_NOT_FOUND for another', async () => {
    const { app } = build();
    const found = await app.inject({ method: 'GET', url: '/gateways/senders/to-site-2' });
    assert.equal(found.statusCode, 200);
    assert.deepEqual(found.json(), SENDER);
    const missing = await app.inject({ method: 'GET', url: '/gateways/senders/to-site-9' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().code, 'STRAIT_SENDER_NOT_FOUND');
  });

  it('POST /gateways/senders/:id/:action maps each action onto controlSender', async () => {
    const admin = fakeAdmin();
    const { app } = build({ admin });
    const expected = [
      ['pause', 'pause', 'paused'],
      ['resume', 'resume', 'running'],
      ['stop', 'stop', 'stopped'],
      ['start', 'start', 'running'],
      ['replay-dead-letters', 'replayDeadLetters', 'running'],
    ] as const;
    for (const [segment, action, state] of expected) {
      const response = await app.inject({ method: 'POST', url: `/gateways/senders/to-site-2/${segment}` });
      assert.equal(response.statusCode, 200, `${segment}: ${response.body}`);
      assert.deepEqual(response.json(), { sender: 'to-site-2', action: segment, members: [{ member: 'server1-1', state }] });
      assert.deepEqual(admin.controls.at(-1), { id: 'to-site-2', action, everyMember: false });
    }
  });

  it('POST /gateways/senders/:id/stop passes drainTimeoutMs and everyMember', async () => {
    const admin = fakeAdmin();
    const { app } = build({ admin });
    const response = await app.inject({ method: 'POST', url: '/gateways/senders/to-site-2/stop', payload: { drainTimeoutMs: -1, everyMember: true } });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json().members, [{ member: 'server1-1', state: 'stopped' }, { member: 'server1-2', state: 'stopped' }]);
    assert.deepEqual(admin.controls, [{ id: 'to-site-2', action: 'stop', everyMember: true, drainTimeoutMs: -1 }]);
  });

  it('POST /gateways/senders/:id/:action answers STRAIT_SENDER_NOT_FOUND for an unknown sender', async () => {
    const { app } = build();
    const response = await app.inject({ method: 'POST', url: '/gateways/senders/nope/pause' });
    assert.equal(response.statusCode, 404);
    assert.equal(response.json().code, 'STRAIT_SENDER_NOT_FOUND');
  });

  const badActions: Array<[string, string, unknown]> = [
    ['an unknown action', '/gateways/senders/to-site-2/explode', undefined],
    ['drainTimeoutMs below -1', '/gateways/senders/to-site-2/stop', { drainTimeoutMs: -2 }],
    ['drainTimeoutMs as text', '/gateways/senders/to-site-2/stop', { drainTimeoutMs: '10' }],
    ['drainTimeoutMs on pause', '/gateways/senders/to-site-2/pause', { drainTimeoutMs: 10 }],
    ['everyMember as text', '/gateways/senders/to-site-2/pause', { everyMember: 'yes' }],
    ['an extra property', '/gateways/senders/to-site-2/pause', { force: true }],
    ['an array body', '/gateways/senders/to-site-2/pause', [1]],
  ];
  for (const [title, url, payload] of badActions) {
    it(`POST ${url} rejects ${title} as STRAIT_BAD_REQUEST`, async () => {
      const admin = fakeAdmin();
      const { app } = build({ admin });
      const response = await app.inject({ method: 'POST', url, ...(payload === undefined ? {} : { payload: payload as object }) });
      assert.equal(response.statusCode, 400, response.body);
      assert.equal(response.json().code, 'STRAIT_BAD_REQUEST');
      assert.equal(admin.controls.length, 0);
    });
  }

  it('GET /metrics answers Prometheus text', async () => {
    const { app, metrics } = build();
    metrics.sink.operation('put', 1, true);
    const response = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/plain/);
    assert.match(response.body, /^strait_operations_total\{.*op="put".*\} 1$/m);
  });
});

describe('admin HTTP API with a token', () => {
  const token = 's3cret-token';

  it('leaves /health and /ready open', async () => {
    const { app } = build({ token });
    for (const url of ['/health', '/ready']) assert.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url);
  });

  for (const [method, url] of [
    ['GET', '/member'],
    ['GET', '/view'],
    ['GET', '/regions'],
    ['POST', '/regions'],
    ['GET', '/metrics'],
    ['GET', '/gateways'],
    ['GET', '/gateways/senders/to-site-2'],
    ['POST', '/gateways/senders/to-site-2/pause'],
  ] as const) {
    it(`requires the token on ${method} ${url}`, async () => {
      const admin = fakeAdmin();
      const { app } = build({ admin, token });
      const payload = method === 'POST' && url === '/regions' ? { name: 'NEW', type: 'replicate', persistent: false } : undefined;
      for (const authorization of [undefined, 'Bearer wrong', `Basic ${token}`, 'Bearer ']) {
        const headers = authorization === undefined ? {} : { authorization };
        const response = await app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload }) });
        assert.equal(response.statusCode, 401, `${authorization}`);
        assert.equal(response.json().code, 'STRAIT_UNAUTHORIZED');
      }
      assert.equal(admin.specs.has('NEW'), false);
      assert.equal(admin.controls.length, 0);
      const accepted = await app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload === undefined ? {} : { payload }) });
      assert.ok(accepted.statusCode === 200 || accepted.statusCode === 201, `status ${accepted.statusCode}`);
    });
  }
});
