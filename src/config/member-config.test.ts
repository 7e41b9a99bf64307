import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../errors.ts';
import { DEFAULT_TIMING, FRAME_BYTES_MAX_DEFAULT, VALUE_BYTES_MAX_DEFAULT } from '../core/config.ts';
import {
  buildMemberConfig,
  closest,
  type LocatorMemberConfig,
  type MemberConfig,
  type ServerMemberConfig,
} from './member-config.ts';

const FILE = '/members/s1/strait.yaml';

function file(text: string): { path: string; text: string } {
  return { path: FILE, text };
}

function locator(flags: Record<string, string | undefined>, text?: string): LocatorMemberConfig {
  const config = buildMemberConfig('locator', flags, text === undefined ? undefined : file(text));
  assert.equal(config.role, 'locator');
  return config as LocatorMemberConfig;
}

function server(flags: Record<string, string | undefined>, text?: string): ServerMemberConfig {
  const config = buildMemberConfig('server', flags, text === undefined ? undefined : file(text));
  assert.equal(config.role, 'server');
  return config as ServerMemberConfig;
}

function assertCode(fn: () => MemberConfig, code: string, details: Record<string, unknown> = {}): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof StraitError, `expected StraitError, got ${String(error)}`);
    assert.equal(error.code, code);
    for (const [key, value] of Object.entries(details)) assert.equal(error.details[key], value, `details.${key}`);
    return true;
  });
}

describe('locator defaults', () => {
  it('binds all interfaces on 10334, site 1, advertises loopback', () => {
    const config = locator({ name: 'locator-1' });
    assert.equal(config.name, 'locator-1');
    assert.deepEqual(config.core.bind, { host: '0.0.0.0', port: 10334 });
    assert.equal(config.core.site, 1);
    assert.equal(config.core.hostnameForClients, '127.0.0.1');
    assert.equal(config.advertisedHost, '127.0.0.1');
    assert.deepEqual(config.core.locators, []);
    assert.deepEqual(config.remoteLocators, []);
    assert.deepEqual(config.core.timing, DEFAULT_TIMING);
    assert.equal(config.core.frameBytesMax, FRAME_BYTES_MAX_DEFAULT);
    assert.deepEqual(config.httpBind, { host: '0.0.0.0', port: 0 });
    assert.equal(config.logLevel, 'info');
    assert.equal(config.logFormat, undefined);
    assert.equal(config.adminToken, undefined);
    assert.equal(config.configFile, undefined);
  });

  it('advertises a specific bind address as itself', () => {
    const config = locator({ name: 'l', 'bind-address': '10.0.0.5' });
    assert.equal(config.core.hostnameForClients, undefined);
    assert.equal(config.advertisedHost, '10.0.0.5');
    assert.deepEqual(config.httpBind, { host: '10.0.0.5', port: 0 });
  });

  it('advertises hostname-for-clients as a name, unresolved', () => {
    const config = locator({ name: 'l', 'hostname-for-clients': 'site1.example.com' });
    assert.equal(config.core.hostnameForClients, 'site1.example.com');
    assert.equal(config.advertisedHost, 'site1.example.com');
    assert.equal(config.core.bind.host, '0.0.0.0');
  });

  it('requires a name', () => {
    assertCode(() => locator({}), 'STRAIT_CONFIG_INVALID', { key: 'name' });
  });
});

describe('command-line flags', () => {
  it('parses every locator flag', () => {
    const config = locator({
      name: 'locator-2',
      port: '0',
      'bind-address': '127.0.0.1',
      'site-id': '7',
      locators: 'h1[1],h2:2,h3',
      'remote-locators': 'r1[10334]',
      'http-port': '7070',
      'member-timeout': '2000',
      'log-level': 'debug',
      'log-format': 'json',
      'admin-token': 'secret',
      'frame-bytes-max': '65536',
    });
    assert.deepEqual(config.core.bind, { host: '127.0.0.1', port: 0 });
    assert.equal(config.core.site, 7);
    assert.deepEqual(config.core.locators, [
      { host: 'h1', port: 1 },
      { host: 'h2', port: 2 },
      { host: 'h3', port: 10334 },
    ]);
    assert.deepEqual(config.remoteLocators, [{ host: 'r1', port: 10334 }]);
    assert.deepEqual(config.httpBind, { host: '127.0.0.1', port: 7070 });
    assert.equal(config.core.timing.memberTimeoutMs, 2000);
    assert.ok(config.core.timing.heartbeatIntervalMs * 2 <= 2000);
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.logFormat, 'json');
    assert.equal(config.adminToken, 'secret');
    assert.equal(config.core.frameBytesMax, 65536);
  });

  it('keeps several heartbeats within a short member timeout', () => {
    const config = locator({ name: 'l', 'member-timeout': '200' });
    assert.equal(config.core.timing.memberTimeoutMs, 200);
    assert.ok(config.core.timing.heartbeatIntervalMs <= 50);
  });

  const bad: Array<[string, string]> = [
    ['port', '65536'],
    ['port', '-1'],
    ['port', 'abc'],
    ['port', '1.5'],
    ['site-id', '0'],
    ['site-id', '256'],
    ['site-id', 'one'],
    ['http-port', '70000'],
    ['member-timeout', '10'],
    ['member-timeout', 'soon'],
    ['log-level', 'loud'],
    ['log-format', 'xml'],
    ['bind-address', 'not a host'],
    ['hostname-for-clients', 'a:b'],
    ['locators', 'h1[x]'],
    ['remote-locators', ''],
    ['name', 'bad/name'],
    ['name', ' '],
    ['frame-bytes-max', '10'],
  ];
  for (const [key, value] of bad) {
    it(`rejects --${key} ${JSON.stringify(value)} naming the flag`, () => {
      assertCode(() => locator({ name: 'l', [key]: value }), 'STRAIT_CONFIG_INVALID', { key: `--${key}`, source: 'command line' });
    });
  }

  it('rejects a server flag on a locator', () => {
    assertCode(() => locator({ name: 'l', 'server-port': '1' }), 'STRAIT_CONFIG_INVALID', { key: '--server-port' });
  });

  it('rejects an unknown flag name with a hint', () => {
    assertCode(() => locator({ name: 'l', prot: '1' }), 'STRAIT_CONFIG_UNKNOWN_KEY', { key: '--prot', hint: ' (did you mean --port?)' });
  });
});

describe('server', () => {
  it('uses 40404, leaves the site to the locator, requires locators', () => {
    const config = server({ name: 'server1-1', locators: 'localhost[10334]' });
    assert.deepEqual(config.core.bind, { host: '0.0.0.0', port: 40404 });
    assert.equal(config.core.site, undefined);
    assert.deepEqual(config.core.locators, [{ host: 'localhost', port: 10334 }]);
    assert.deepEqual(config.core.regions, []);
    assert.equal(config.core.valueBytesMax, VALUE_BYTES_MAX_DEFAULT);
    assert.deepEqual(config.gatewaySenders, []);
    assert.equal(config.gatewayReceiver, undefined);
    assertCode(() => server({ name: 's' }), 'STRAIT_CONFIG_INVALID', { key: 'locators' });
  });

  it('takes --server-port and --site-id', () => {
    const config = server({ name: 's', locators: 'l:1', 'server-port': '0', 'site-id': '2' });
    assert.equal(config.core.bind.port, 0);
    assert.equal(config.core.site, 2);
  });

  it('rejects the locator-only keys', () => {
    assertCode(() => server({ name: 's', locators: 'l:1', port: '1' }), 'STRAIT_CONFIG_INVALID', { key: '--port' });
    assertCode(() => server({ name: 's', locators: 'l:1' }, 'remote-locators: "a[1]"'), 'STRAIT_CONFIG_INVALID', {
      key: 'remote-locators',
      source: FILE,
    });
  });

  it('bounds value-bytes-max by frame-bytes-max', () => {
    assertCode(
      () => server({ name: 's', locators: 'l:1', 'frame-bytes-max': '4096', 'value-bytes-max': '8192' }),
      'STRAIT_CONFIG_INVALID',
      { key: '--value-bytes-max' },
    );
  });

  it('leaves a frame room for the key, tag and envelope beside a value', () => {
    const limit = 1024 * 1024;
    assertCode(
      () => server({ name: 's', locators: 'l:1', 'frame-bytes-max': String(limit), 'value-bytes-max': String(limit) }),
      'STRAIT_CONFIG_INVALID',
      { key: '--value-bytes-max' },
    );
    const fitted = server({ name: 's', locators: 'l:1', 'frame-bytes-max': String(limit) });
    assert.ok(fitted.core.valueBytesMax <= limit - 16 * 1024, 'the default shrinks with a small frame limit');
  });
});

describe('strait.yaml', () => {
  const brief = `
name: server2-1
locators: localhost[10335]
server-port: 0
site-id: 2
regions:
  TEST: { type: replicate, gateway-sender-ids: [sender1] }
  SESSIONS: { type: replicate, persistent: true }
gateway-senders:
  sender1: { remote-site-id: 1, parallel: false, batch-size: 100, batch-time-interval: 1000 }
gateway-receiver: { start-port: 1530, end-port: 1551, hostname-for-clients: site2.example.com }
`;

  it('parses the brief example', () => {
    const config = server({}, brief);
    assert.equal(config.name, 'server2-1');
    assert.equal(config.configFile, FILE);
    assert.equal(config.core.site, 2);
    assert.equal(config.core.bind.port, 0);
    assert.deepEqual(config.core.locators, [{ host: 'localhost', port: 10335 }]);
    // The core gets each region's senders in its spec; a region without senders has none.
    assert.deepEqual(config.core.regions, [
      { name: 'TEST', type: 'replicate', persistent: false, gatewaySenderIds: ['sender1'] },
      { name: 'SESSIONS', type: 'replicate', persistent: true },
    ]);
    assert.deepEqual(config.regionGatewaySenderIds, { TEST: ['sender1'], SESSIONS: [] });
    assert.deepEqual(config.core.gatewaySenders, config.gatewaySenders);
    assert.deepEqual(config.core.gatewayReceiver, config.gatewayReceiver);
    assert.deepEqual(config.gatewaySenders, [
      {
        id: 'sender1',
        remoteSiteId: 1,
        parallel: false,
        batchSize: 100,
        batchTimeIntervalMs: 1000,
        maximumQueueMemoryMegabytes: 100,
        maximumQueueDiskMegabytes: 10_240,
        persistent: false,
        dispatcherThreads: 1,
        orderPolicy: 'key',
        batchConflation: false,
        manualStart: false,
        compression: false,
      },
    ]);
    assert.deepEqual(config.gatewayReceiver, {
      startPort: 1530,
      endPort: 1551,
      bindAddress: undefined,
      hostnameForClients: 'site2.example.com',
      manualStart: false,
      dialOut: false,
    });
  });

  it('lets flags override the file', () => {
    const config = server({ 'server-port': '5000', name: 'other', locators: 'x[1]' }, brief);
    assert.equal(config.core.bind.port, 5000);
    assert.equal(config.name, 'other');
    assert.deepEqual(config.core.locators, [{ host: 'x', port: 1 }]);
    assert.equal(config.core.site, 2);
  });

  it('accepts locators as a comma-separated string', () => {
    const config = locator({}, 'name: l\nlocators: "a[1], b:2"\nremote-locators:\n  - r[3]');
    assert.deepEqual(config.core.locators, [
      { host: 'a', port: 1 },
      { host: 'b', port: 2 },
    ]);
    assert.deepEqual(config.remoteLocators, [{ host: 'r', port: 3 }]);
  });

  it('accepts an empty file and null values', () => {
    assert.equal(locator({ name: 'l' }, '').core.bind.port, 10334);
    assert.equal(locator({ name: 'l' }, 'port:\n').core.bind.port, 10334);
  });

  it('defaults a region to replicate, not persistent', () => {
    const config = server({ name: 's', locators: 'l:1' }, 'regions:\n  A: {}\n  B:\n');
    assert.deepEqual(config.core.regions, [
      { name: 'A', type: 'replicate', persistent: false },
      { name: 'B', type: 'replicate', persistent: false },
    ]);
  });

  it('reads a partitioned region with its settings, defaults filled in', () => {
    const config = server({ name: 's', locators: 'l:1' }, 'regions:\n  P: { type: partition, redundant-copies: 2, recovery-delay: 5000, persistent: true }\n  Q: { type: partition }\n');
    assert.deepEqual(config.core.regions, [
      { name: 'P', type: 'partition', persistent: true, partition: { totalNumBuckets: 113, redundantCopies: 2, recoveryDelayMs: 5000, startupRecoveryDelayMs: 0 } },
      { name: 'Q', type: 'partition', persistent: false, partition: { totalNumBuckets: 113, redundantCopies: 1, recoveryDelayMs: 0, startupRecoveryDelayMs: 0 } },
    ]);
  });

  it('names an unknown top-level key with a did-you-mean hint', () => {
    assertCode(() => locator({ name: 'l' }, 'prot: 1'), 'STRAIT_CONFIG_UNKNOWN_KEY', { key: 'prot', source: FILE, hint: ' (did you mean port?)' });
    assertCode(() => locator({ name: 'l' }, 'site_id: 1'), 'STRAIT_CONFIG_UNKNOWN_KEY', { key: 'site_id', hint: ' (did you mean site-id?)' });
    assertCode(() => locator({ name: 'l' }, 'completely-unrelated: 1'), 'STRAIT_CONFIG_UNKNOWN_KEY', {
      key: 'completely-unrelated',
      hint: '',
    });
  });

  it('names unknown keys inside declarations', () => {
    const flags = { name: 's', locators: 'l:1' };
    assertCode(() => server(flags, 'regions:\n  T: { type: replicate, persistant: true }'), 'STRAIT_CONFIG_UNKNOWN_KEY', {
      key: 'regions.T.persistant',
      hint: ' (did you mean persistent?)',
    });
    assertCode(() => server(flags, 'gateway-senders:\n  s1: { remote-site-id: 2, batch-sise: 5 }'), 'STRAIT_CONFIG_UNKNOWN_KEY', {
      key: 'gateway-senders.s1.batch-sise',
      hint: ' (did you mean batch-size?)',
    });
    assertCode(() => server(flags, 'gateway-receiver: { start-port: 1, end-prt: 2 }'), 'STRAIT_CONFIG_UNKNOWN_KEY', {
      key: 'gateway-receiver.end-prt',
    });
  });

  const badValues: Array<[string, string, string]> = [
    ['site-id out of range', 'site-id: 300', 'site-id'],
    ['port as text', 'server-port: ten', 'server-port'],
    ['port out of range', 'server-port: 70000', 'server-port'],
    ['port as a list', 'server-port: [1]', 'server-port'],
    ['a bad region name', 'regions:\n  "bad/name": {}', 'regions.bad/name'],
    ['regions as a list', 'regions: [A]', 'regions'],
    ['unknown region type', 'regions:\n  A: { type: mirror }', 'regions.A.type'],
    ['too many redundant copies', 'regions:\n  A: { type: partition, redundant-copies: 9 }', 'regions.A.redundant-copies'],
    ['buckets out of range', 'regions:\n  A: { type: partition, total-num-buckets: 0 }', 'regions.A.total-num-buckets'],
    ['a serial sender on a partitioned region', 'gateway-senders:\n  s: { remote-site-id: 2 }\nregions:\n  A: { type: partition, gateway-sender-ids: [s] }', 'regions.A.gateway-sender-ids'],
    ['persistent not a boolean', 'regions:\n  A: { persistent: maybe }', 'regions.A.persistent'],
    ['undeclared sender', 'regions:\n  A: { gateway-sender-ids: [nope] }', 'regions.A.gateway-sender-ids'],
    [
      'a parallel sender on a replicate region',
      'gateway-senders:\n  p: { remote-site-id: 2, parallel: true }\nregions:\n  A: { gateway-sender-ids: [p] }',
      'regions.A.gateway-sender-ids',
    ],
    ['sender without remote site', 'gateway-senders:\n  s: { parallel: false }', 'gateway-senders.s.remote-site-id'],
    ['sender remote site out of range', 'gateway-senders:\n  s: { remote-site-id: 0 }', 'gateway-senders.s.remote-site-id'],
    ['sender batch size zero', 'gateway-senders:\n  s: { remote-site-id: 2, batch-size: 0 }', 'gateway-senders.s.batch-size'],
    ['sender order policy', 'gateway-senders:\n  s: { remote-site-id: 2, order-policy: random }', 'gateway-senders.s.order-policy'],
    ['sender not a mapping', 'gateway-senders:\n  s: 5', 'gateway-senders.s'],
    ['receiver ports reversed', 'gateway-receiver: { start-port: 2000, end-port: 1000 }', 'gateway-receiver.end-port'],
    ['receiver port out of range', 'gateway-receiver: { start-port: 99999 }', 'gateway-receiver.start-port'],
    ['receiver bind address', 'gateway-receiver: { bind-address: "a b" }', 'gateway-receiver.bind-address'],
    ['file not YAML', 'regions: [unclosed', '(file)'],
    ['file a list', '- a\n- b', '(file)'],
    ['duplicate key', 'server-port: 1\nserver-port: 2', '(file)'],
  ];
  for (const [title, text, key] of badValues) {
    it(`rejects ${title} naming ${key} and the file`, () => {
      assertCode(() => server({ name: 's', locators: 'l:1' }, text), 'STRAIT_CONFIG_INVALID', { key, source: FILE });
    });
  }

  it('rejects a name that is not a string', () => {
    assertCode(() => locator({}, 'name: 5'), 'STRAIT_CONFIG_INVALID', { key: 'name', source: FILE });
  });

  it('rejects server declarations in a locator file', () => {
    assertCode(() => locator({ name: 'l' }, 'regions:\n  A: {}'), 'STRAIT_CONFIG_INVALID', { key: 'regions', source: FILE });
  });

  it('never puts the admin token in an error', () => {
    try {
      buildMemberConfig('locator', { name: 'l', 'admin-token': 'hunter2' }, file('port: x'));
      assert.fail('expected an error');
    } catch (error) {
      assert.ok(error instanceof StraitError);
      assert.ok(!error.message.includes('hunter2'));
    }
  });
});

describe('closest', () => {
  it('suggests near misses only', () => {
    assert.equal(closest('bind-adress', ['bind-address', 'port']), 'bind-address');
    assert.equal(closest('Site_ID', ['site-id', 'port']), 'site-id');
    assert.equal(closest('zzzzzz', ['site-id', 'port']), undefined);
  });
});

describe('gateway sender settings of later releases, and the conflict resolver', () => {
  const base = 'name: s\nlocators: localhost[10334]\n';
  it('accepts enable-persistence as the name of persistent', () => {
    const config = server({}, `${base}gateway-senders:\n  to2: { remote-site-id: 2, enable-persistence: true }\n`);
    assert.equal(config.core.gatewaySenders[0]?.persistent, true);
  });
  it('takes a parallel sender for a partitioned region', () => {
    const config = server({}, `${base}gateway-senders:\n  to2: { remote-site-id: 2, parallel: true }\nregions:\n  P: { type: partition, gateway-sender-ids: [to2] }\n`);
    assert.equal(config.core.gatewaySenders[0]?.parallel, true);
    assert.deepEqual(config.core.regions[0]?.gatewaySenderIds, ['to2']);
  });
  it('takes dispatcher threads with an order policy and batch conflation; refuses a policy the kind of sender cannot keep', () => {
    const config = server({}, `${base}gateway-senders:\n  to2: { remote-site-id: 2, dispatcher-threads: 4, order-policy: thread, batch-conflation: true }\n`);
    assert.deepEqual([config.core.gatewaySenders[0]?.dispatcherThreads, config.core.gatewaySenders[0]?.orderPolicy, config.core.gatewaySenders[0]?.batchConflation], [4, 'thread', true]);
    assertCode(() => server({}, `${base}gateway-senders:\n  to2: { remote-site-id: 2, dispatcher-threads: 65 }\n`), 'STRAIT_CONFIG_INVALID', { key: 'gateway-senders.to2.dispatcher-threads' });
    assertCode(() => server({}, `${base}gateway-senders:\n  to2: { remote-site-id: 2, order-policy: partition }\n`), 'STRAIT_CONFIG_INVALID', { key: 'gateway-senders.to2.order-policy' });
    assertCode(() => server({}, `${base}gateway-senders:\n  to2: { remote-site-id: 2, parallel: true, order-policy: thread }\n`), 'STRAIT_CONFIG_INVALID', { key: 'gateway-senders.to2.order-policy' });
  });
  it('resolves conflict-resolver relative to strait.yaml', () => {
    assert.equal(server({}, `${base}conflict-resolver: ./resolver.ts\n`).conflictResolverModule, '/members/s1/./resolver.ts');
    assert.equal(server({}, `${base}conflict-resolver: /opt/r.ts\n`).conflictResolverModule, '/opt/r.ts');
    assert.equal(server({}, base).conflictResolverModule, undefined);
  });
});

describe('dial-out receivers', () => {
  it('reads gateway-receiver.dial-out and refuses a value that is not a boolean', () => {
    const text = 'name: s1\nlocators: l1[10334]\ngateway-receiver: { dial-out: true }\n';
    assert.equal(server({}, text).gatewayReceiver?.dialOut, true);
    assertCode(() => server({}, 'name: s1\nlocators: l1[10334]\ngateway-receiver: { dial-out: maybe }\n'), 'STRAIT_CONFIG_INVALID', { key: 'gateway-receiver.dial-out' });
  });
});

describe('routers and the mesh secret', () => {
  const machine = (environment: Record<string, string>, files: Record<string, string> = {}) => ({
    environment, interfaces: {}, readFile: (path: string) => {
      const text = files[path];
      if (text === undefined) throw new Error('ENOENT');
      return text;
    },
  });

  it('builds a router: default port 12001, its mesh peers, the secret from the environment', () => {
    const config = buildMemberConfig('router', { name: 'r1', routers: 'r2.example[12001],r3.example' }, undefined, machine({ STRAIT_ROUTER_SECRET: 'sixteen-chars-or-more' }));
    assert.equal(config.role, 'router');
    if (config.role !== 'router') return;
    assert.equal(config.core.bind.port, 12001);
    assert.deepEqual(config.core.routers, [{ host: 'r2.example', port: 12001 }, { host: 'r3.example', port: 12001 }]);
    assert.equal(config.core.secret, 'sixteen-chars-or-more');
  });

  it('reads router-secret-file relative to strait.yaml, and members with routers get it', () => {
    const files = { '/members/s1/mesh.secret': 'the-secret-in-a-file\n' };
    const config = buildMemberConfig('server', {}, file('name: s1\nlocators: l1[10334]\nrouters: r1[12001]\nrouter-secret-file: mesh.secret\n'), machine({}, files));
    assert.equal(config.role, 'server');
    if (config.role !== 'server') return;
    assert.deepEqual(config.core.routers, { addresses: [{ host: 'r1', port: 12001 }], secret: 'the-secret-in-a-file' });
  });

  it('refuses routers without a secret, a short secret and an unreadable file, naming the key and never the secret', () => {
    assertCode(() => buildMemberConfig('locator', { name: 'l1', routers: 'r1' }, undefined, machine({})), 'STRAIT_CONFIG_INVALID', { key: 'router-secret-file' });
    assertCode(() => buildMemberConfig('router', { name: 'r1' }, undefined, machine({ STRAIT_ROUTER_SECRET: 'short' })), 'STRAIT_CONFIG_INVALID', { key: 'router-secret-file' });
    assertCode(() => buildMemberConfig('router', { name: 'r1', 'router-secret-file': '/nope' }, undefined, machine({})), 'STRAIT_CONFIG_INVALID', { key: '--router-secret-file' });
    try {
      buildMemberConfig('router', { name: 'r1' }, undefined, machine({ STRAIT_ROUTER_SECRET: 'tiny-secret' }));
    } catch (error) {
      assert.doesNotMatch(String((error as Error).message), /tiny-secret/);
    }
  });

  it('a member without routers needs no secret, and a bad router address is refused naming routers', () => {
    const config = buildMemberConfig('locator', { name: 'l1' }, undefined, machine({}));
    assert.equal(config.role === 'locator' ? config.core.routers : 'x', undefined);
    assertCode(() => buildMemberConfig('locator', { name: 'l1', routers: 'bad host!' }, undefined, machine({ STRAIT_ROUTER_SECRET: 'sixteen-chars-or-more' })), 'STRAIT_CONFIG_INVALID', { key: '--routers' });
  });

  it('refuses keys a router does not have', () => {
    assertCode(() => buildMemberConfig('router', { name: 'r1', locators: 'l1' }, undefined, machine({ STRAIT_ROUTER_SECRET: 'sixteen-chars-or-more' })), 'STRAIT_CONFIG_INVALID', { key: '--locators' });
  });
});

describe('discovery', () => {
  it('parses each type with its defaults, and lets a server go without locators', () => {
    const config = server({}, 'name: s1\ndiscovery: { type: dns, name: locators.site1.example, record: a, servers: [127.0.0.1:5353] }\n');
    assert.deepEqual(config.discovery, { type: 'dns', name: 'locators.site1.example', record: 'a', port: 10334, servers: [{ host: '127.0.0.1', port: 5353 }] });
    assert.deepEqual(locator({}, 'name: l1\ndiscovery: { type: postgres, url: "postgres://u@db/strait" }\n').discovery, { type: 'postgres', url: 'postgres://u@db/strait', table: 'strait_members' });
    const kubernetes = locator({}, 'name: l1\ndiscovery: { type: kubernetes, namespace: nyc, label-selector: app=strait, port-name: locator }\n').discovery;
    assert.equal(kubernetes?.type === 'kubernetes' ? kubernetes.tokenFile : '', '/var/run/secrets/kubernetes.io/serviceaccount/token');
  });

  it('refuses a bad discovery setting at start, naming the key', () => {
    assertCode(() => server({}, 'name: s1\ndiscovery: { type: zookeeper }\n'), 'STRAIT_CONFIG_INVALID', { key: 'discovery.type' });
    assertCode(() => server({}, 'name: s1\ndiscovery: { type: directory }\n'), 'STRAIT_CONFIG_INVALID', { key: 'discovery.path' });
    assertCode(() => server({}, 'name: s1\ndiscovery: { type: postgres, url: "mysql://x", table: t }\n'), 'STRAIT_CONFIG_INVALID', { key: 'discovery.url' });
    assertCode(() => server({}, 'name: s1\ndiscovery: { type: postgres, url: "postgres://x/y", table: "t; drop table x" }\n'), 'STRAIT_CONFIG_INVALID', { key: 'discovery.table' });
    assertCode(() => server({}, 'name: s1\ndiscovery: { type: dns, name: x, record: mx }\n'), 'STRAIT_CONFIG_INVALID', { key: 'discovery.record' });
    assertCode(() => server({}, 'name: s1\ndiscovery: { type: directory, path: /x, colour: red }\n'), 'STRAIT_CONFIG_UNKNOWN_KEY', { key: 'discovery.colour' });
    assertCode(() => server({}, 'name: s1\n'), 'STRAIT_CONFIG_INVALID', { key: 'locators' });
    // A shared store holds every site's locators: a server must name its site.
    assertCode(() => server({}, 'name: s1\ndiscovery: { type: directory, path: /x }\n'), 'STRAIT_CONFIG_INVALID', { key: 'site-id' });
    assert.equal(server({}, 'name: s1\nsite-id: 2\ndiscovery: { type: directory, path: /x }\n').discovery?.type, 'directory');
  });
});
