// Replication as a service as a new user runs it: three sites started with `strait start` and no
// WAN settings anywhere, a controller, and one `strait topology apply -f` of a ring; writes at
// each site reach the others; `topology get` shows every edge; a changed file adds a fourth
// site (a PATCH of the difference); `topology delete` leaves every site as it was. A third site
// that refuses (its receiver ports taken, a wrong token, unreachable) leaves the other two
// exactly as they were, and the error names the site and the step. Bad bodies get coded 4xx
// answers and the controller keeps serving; a restarted controller still knows its topologies.
// Waiting is by polling with a deadline; nothing asserts on timing.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { connect, createServer, type Server as NetServer } from 'node:net';
import { join } from 'node:path';
import { assertOk, cleanupWorkspace, eventuallyGet, freePort, memberDir, start, strait, type Started } from './cli-process.test-support.ts';

after(cleanupWorkspace);

const REPLICATION_WAIT_MS = 60_000;
const TOKEN = 'a-long-admin-token-for-site-north';

interface Site {
  readonly name: string;
  readonly locator: string;
  readonly admin: string;
  readonly receiverPort: number;
}

function at(member: Started): string {
  return `${member.address.host}[${member.address.port}]`;
}

async function startSite(name: string, id: number, extra: readonly string[] = []): Promise<Site> {
  const locator = await start('locator', `${name}-locator`, ['--port', '0', '--site-id', String(id), '--http-port', '0', ...extra]);
  await start('server', `${name}-server`, ['--server-port', '0', '--http-port', '0', '--locators', at(locator), ...extra]);
  return { name, locator: at(locator), admin: `http://${locator.httpAddress.host}:${locator.httpAddress.port}`, receiverPort: await freePort() };
}

function topology(sites: readonly Site[], edges: readonly (readonly [string, string])[], tokens: Record<string, string> = {}): Record<string, unknown> {
  return {
    name: 'ring',
    sites: Object.fromEntries(sites.map((site) => [site.name, {
      admin: site.admin,
      ...(tokens[site.name] !== undefined ? { token: tokens[site.name] } : {}),
      receiver: { 'start-port': site.receiverPort, 'end-port': site.receiverPort },
    }])),
    edges,
    regions: { orders: { type: 'replicate', persistent: true } },
    tuning: { 'batch-time-interval': 50 },
  };
}

/**
 * Announces a `length`-byte POST and reads the answer before sending any of the body. Sending the
 * body while the server refuses it would race: the server closes with the upload unread, its kernel
 * resets the connection, and a reset discards an answer the client had not read yet.
 */
function postAnnounced(url: string, length: number): Promise<{ status: number; body: string }> {
  const { hostname, port, pathname } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no answer to a ${length}-byte POST in 10 s`)); }, 10_000);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const declared = /\r\ncontent-length: *(\d+)/i.exec(text);
      if (split < 0 || declared === null || Buffer.byteLength(text.slice(split + 4)) < Number(declared[1])) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: Number(text.split(' ')[1]), body: text.slice(split + 4) });
    });
    socket.on('error', (error) => { clearTimeout(timer); reject(error); });
    socket.write(`POST ${pathname} HTTP/1.1\r\nhost: ${hostname}:${port}\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`);
  });
}

function writeTopology(name: string, body: unknown): string {
  const file = join(memberDir('topologies'), `${name}.json`);
  writeFileSync(file, typeof body === 'string' ? body : JSON.stringify(body, null, 2));
  return file;
}

async function exported(site: Site): Promise<{ version: number; regions: unknown[]; senders: unknown[]; receiver: unknown; remoteLocators: unknown[] }> {
  const result = await strait(['export', 'config', '--json', '--locator', site.locator], { STRAIT_ADMIN_TOKEN: '' });
  assertOk(result, `export config of ${site.name}`);
  return JSON.parse(result.stdout);
}

/** The contents of a site's configuration, without its version. */
async function contents(site: Site): Promise<string> {
  const { version: _version, ...rest } = await exported(site);
  return JSON.stringify(rest);
}

describe('replication as a service', { concurrency: 1 }, () => {
  let controller: string;
  let east: Site;
  let west: Site;
  let north: Site;
  const topologyCli = (...args: string[]) => strait(['topology', ...args, '--controller', controller]);

  before(async () => {
    const controllerMember = await start('controller', 'controller-1', ['--port', '0']);
    controller = `http://${controllerMember.address.host}:${controllerMember.address.port}`;
    east = await startSite('east', 1);
    west = await startSite('west', 2);
    north = await startSite('north', 3);
  });

  it('a ring from one apply replicates everywhere; a changed file adds a site; delete leaves every site as it was', async () => {
    const before = await Promise.all([east, west, north].map(contents));
    const file = writeTopology('ring', topology([east, west, north], [['east', 'west'], ['west', 'north'], ['north', 'east']]));
    const dry = await topologyCli('apply', '-f', file, '--dry-run');
    assertOk(dry, 'apply --dry-run');
    assert.match(dry.stdout, /east: \[regions\] create region orders/);
    assert.deepEqual(await Promise.all([east, west, north].map(contents)), before, 'a dry run changes nothing');

    const applied = await topologyCli('apply', '-f', file);
    assertOk(applied, 'apply');
    assert.match(applied.stdout, /topology ring: applied, .* every edge connected/);
    assert.match(applied.stderr, /\[receivers\] north: create gateway-receiver … done/, 'progress per phase and site');
    for (const site of [east, west, north]) assertOk(await strait(['put', '--locator', site.locator, '--region', 'orders', '--key', `from-${site.name}`, '--value', site.name]), `put at ${site.name}`);
    for (const site of [east, west, north]) {
      for (const from of [east, west, north]) assert.equal(await eventuallyGet(site.locator, `from-${from.name}`, REPLICATION_WAIT_MS, 'orders'), from.name, `${from.name}'s write at ${site.name}`);
    }
    const shown = await topologyCli('get', 'ring', '--json');
    assertOk(shown, 'get');
    const status = JSON.parse(shown.stdout) as { edges: { from: string; to: string; state: string; lagMs: number; eventsSent: number }[] };
    assert.deepEqual(status.edges.map((edge) => `${edge.from}>${edge.to} ${edge.state}`), ['east>west connected', 'west>north connected', 'north>east connected']);
    assert.ok(status.edges.every((edge) => typeof edge.lagMs === 'number' && edge.eventsSent >= 1));
    assert.match((await topologyCli('get', 'ring')).stdout, /LAG MS/);
    assert.match((await topologyCli('apply', '-f', file)).stdout, /already applied, nothing changed/);

    const south = await startSite('south', 4);
    const southBefore = await contents(south);
    const grown = writeTopology('ring', topology([east, west, north, south], [['east', 'west'], ['west', 'north'], ['north', 'south'], ['south', 'east']]));
    assertOk(await topologyCli('apply', '-f', grown), 'apply of the grown ring (a PATCH)');
    assertOk(await strait(['put', '--locator', south.locator, '--region', 'orders', '--key', 'from-south', '--value', 'south']), 'put at south');
    assertOk(await strait(['put', '--locator', north.locator, '--region', 'orders', '--key', 'north-later', '--value', 'north']), 'put at north');
    assert.equal(await eventuallyGet(east.locator, 'from-south', REPLICATION_WAIT_MS, 'orders'), 'south');
    assert.equal(await eventuallyGet(south.locator, 'north-later', REPLICATION_WAIT_MS, 'orders'), 'north');

    // A restarted controller still knows the topology.
    assertOk(await strait(['stop', 'controller', '--dir', memberDir('controller-1')]), 'stop controller');
    const again = await start('controller', 'controller-1', ['--port', String(new URL(controller).port)]);
    assert.equal(`http://${again.address.host}:${again.address.port}`, controller);
    assert.match((await topologyCli('list')).stdout, /^ring\s+4\s+4\s+applied/m);

    const deleted = await topologyCli('delete', 'ring');
    assertOk(deleted, 'delete');
    assert.deepEqual(await Promise.all([east, west, north].map(contents)), before, 'every site is as it was');
    assert.equal(await contents(south), southBefore);
    assert.match((await topologyCli('list')).stdout, /no topology/);
  });

  it('a third site that refuses leaves the other two exactly as they were; the error names the site and the step', async () => {
    const before = await Promise.all([east, west, north].map(contents));
    // Something else listens on north's whole receiver range.
    const squatter: NetServer = createServer();
    await new Promise<void>((resolve) => squatter.listen(north.receiverPort, '0.0.0.0', resolve));
    try {
      const file = writeTopology('refused', topology([east, west, north], [['east', 'west'], ['west', 'north'], ['north', 'east']]));
      const refused = await topologyCli('apply', '-f', file);
      assert.equal(refused.code, 1, refused.stdout + refused.stderr);
      assert.match(refused.stderr, /STRAIT_SITE_REFUSED: site north, step "create gateway-receiver": STRAIT_CONFIG_APPLY_FAILED/);
      assert.match(refused.stderr, /undone/, 'the progress shows the steps undone');
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }
    assert.deepEqual(await Promise.all([east, west, north].map(contents)), before, 'no site kept anything');
    assert.match((await topologyCli('list')).stdout, /no topology/);
  });

  it('a wrong token or an unreachable site fails before anything changes', async () => {
    const guarded = await startSite('guarded', 5, ['--admin-token', TOKEN]);
    const before = await Promise.all([east, guarded].map((site) => strait(['export', 'config', '--json', '--locator', site.locator])));
    const wrong = writeTopology('wrong-token', topology([east, guarded], [['east', 'guarded']], { guarded: 'not-the-token-at-all' }));
    const refused = await topologyCli('apply', '-f', wrong, '--json');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /STRAIT_SITE_UNREACHABLE: .*guarded.*STRAIT_UNAUTHORIZED/);
    const right = writeTopology('right-token', { ...topology([east, guarded], [['east', 'guarded']], { guarded: TOKEN }), name: 'right-token' });
    assertOk(await topologyCli('apply', '-f', right, '--dry-run'), 'the right token gets through');
    const gone = writeTopology('gone', topology([east, { ...west, name: 'gone', admin: `http://127.0.0.1:${await freePort()}` }], [['east', 'gone']]));
    const unreachable = await topologyCli('apply', '-f', gone);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /STRAIT_SITE_UNREACHABLE: site gone .*ECONNREFUSED/);
    const after = await Promise.all([east, guarded].map((site) => strait(['export', 'config', '--json', '--locator', site.locator])));
    assert.deepEqual(after.map((result) => result.stdout), before.map((result) => result.stdout));
  });

  it('bad bodies get coded 4xx answers listing every problem; the controller keeps serving', async () => {
    const post = (body: string | Uint8Array, name = 'bad') => fetch(`${controller}/v1/topologies/${name}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const malformed = await post('{"sites": ');
    assert.equal(malformed.status, 400);
    assert.equal(((await malformed.json()) as { code: string }).code, 'STRAIT_BAD_REQUEST');
    // The controller answers 413 from the declared length, before reading any of 10 MB.
    const huge = await postAnnounced(`${controller}/v1/topologies/huge`, 10 * 1024 * 1024);
    assert.equal(huge.status, 413);
    assert.equal((JSON.parse(huge.body) as { code: string }).code, 'STRAIT_BODY_TOO_LARGE');
    const wrong = await post(JSON.stringify({ sites: { a: { admin: 'http://a', receiver: { 'start-port': 'one' } } }, edges: [['a', 'nowhere']], regions: { r: {} }, colour: 'blue' }));
    assert.equal(wrong.status, 400);
    const body = await wrong.json() as { code: string; problems: { path: string; code: string }[] };
    assert.equal(body.code, 'STRAIT_TOPOLOGY_INVALID');
    const listed = body.problems.map((problem) => `${problem.path} ${problem.code}`);
    for (const expected of ['/colour STRAIT_TOPOLOGY_FIELD_UNKNOWN', '/edges/0/1 STRAIT_TOPOLOGY_EDGE_UNKNOWN_SITE']) assert.ok(listed.includes(expected), `${expected} in ${listed.join(', ')}`);
    assert.ok(listed.some((problem) => problem.startsWith('/sites/a/receiver/start-port ')), listed.join(', '));
    const openapi = await fetch(`${controller}/openapi.json`);
    assert.equal(openapi.status, 200);
    assert.ok(((await openapi.json()) as { paths: Record<string, unknown> }).paths['/v1/topologies/{name}'] !== undefined);
    assert.equal((await fetch(`${controller}/v1/topologies`)).status, 200, 'still serving');
  });
});
