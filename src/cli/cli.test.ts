// Drives the real `strait` command as a user would: background members in temporary
// directories, client commands through the locator, and the coded failures acceptance scripts
// rely on. Every process a test starts is killed by pid in `after`, even when a test fails.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server as NetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { assertOk, cleanupWorkspace, eventuallyGet, freePort, killLeftovers, memberDir, root, start, strait, type Started } from './cli-process.test-support.ts';

after(cleanupWorkspace);

interface SenderCopy {
  readonly id: string;
  readonly member: string;
  readonly role: 'primary' | 'secondary';
  readonly state: string;
  readonly queueEvents: number;
  readonly problem: string | null;
}

async function senderCopies(locator: string, id: string): Promise<SenderCopy[]> {
  const result = await strait(['status', 'gateway-sender', '--id', id, '--locator', locator, '--json']);
  assertOk(result, `status gateway-sender --id ${id}`);
  return JSON.parse(result.stdout) as SenderCopy[];
}

// The suites use separate sites and directories, so they run side by side; each one's `after`
// kills only its own members.
describe('strait CLI', { concurrency: true }, () => {
  describe('strait CLI with a running site', { concurrency: 1 }, () => {
    let locator: Started;
    let server: Started;
    let locatorAddress: string;

    before(async () => {
      locator = await start('locator', 'locator-1', ['--port', '0', '--site-id', '3']);
      locatorAddress = `${locator.address.host}[${locator.address.port}]`;
      const serverDir = memberDir('server1-1');
      writeFileSync(join(serverDir, 'strait.yaml'), 'maximum-heap-memory: 256\nregions:\n  TEST: { type: replicate }\n');
      server = await start('server', 'server1-1', ['--server-port', '0', '--locators', locatorAddress]);
    });

    after(() => {
      killLeftovers('locator-1');
      killLeftovers('server1-1');
    });

    it('start wrote the pid file and member.json of each member', () => {
      const dir = join(root, 'locator-1');
      assert.equal(Number(readFileSync(join(dir, 'locator.pid'), 'utf8').trim()), locator.pid);
      const record = JSON.parse(readFileSync(join(dir, 'member.json'), 'utf8'));
      assert.equal(record.state, 'ready');
      assert.equal(record.site, 3);
      assert.ok(existsSync(join(dir, 'locator-1.log')));
    });

    it('start runs the member with the memory settings it documents, unless the operator set their own', () => {
      const commandLine = readFileSync(`/proc/${locator.pid}/cmdline`, 'utf8').split('\0');
      const environment = readFileSync(`/proc/${locator.pid}/environ`, 'utf8').split('\0');
      if (!(process.env.NODE_OPTIONS ?? '').includes('--max-semi-space-size')) assert.ok(commandLine.includes('--max-semi-space-size=8'), commandLine.join(' '));
      assert.ok(environment.includes(`MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX ?? '2'}`));
      // maximum-heap-memory becomes the server's V8 heap limit; the locator has none set.
      const serverCommandLine = readFileSync(`/proc/${server.pid}/cmdline`, 'utf8').split('\0');
      if (!(process.env.NODE_OPTIONS ?? '').includes('--max-old-space-size')) assert.ok(serverCommandLine.includes('--max-old-space-size=256'), serverCommandLine.join(' '));
      assert.ok(!commandLine.some((flag) => flag.startsWith('--max-old-space-size')), commandLine.join(' '));
      assert.ok(!readFileSync(join(root, 'server1-1', 'server1-1.log'), 'utf8').includes('STRAIT_HEAP_LIMIT_NOT_APPLIED'), 'the limit was applied');
    });

    it('puts then gets a value through the locator, host[port] and host:port alike', async () => {
      assertOk(await strait(['put', '--locator', locatorAddress, '--region', 'TEST', '--key', 'k1', '--value', 'hello world']), 'put');
      const got = await strait(['get', '--locator', `${locator.address.host}:${locator.address.port}`, '--region', 'TEST', '--key', 'k1']);
      assertOk(got, 'get');
      assert.equal(got.stdout, 'hello world\n');
      const json = await strait(['get', '--locator', locatorAddress, '--region', 'TEST', '--key', 'k1', '--json']);
      assert.equal(JSON.parse(json.stdout), 'hello world');
    });

    it('get of a missing key exits 1', async () => {
      const result = await strait(['get', '--locator', locatorAddress, '--region', 'TEST', '--key', 'absent']);
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
    });

    it('remove deletes the key', async () => {
      assertOk(await strait(['put', '--locator', locatorAddress, '--region', 'TEST', '--key', 'k2', '--value', 'v']), 'put');
      const removed = await strait(['remove', '--locator', locatorAddress, '--region', 'TEST', '--key', 'k2', '--json']);
      assertOk(removed, 'remove');
      assert.equal(JSON.parse(removed.stdout).existed, true);
      assert.equal((await strait(['get', '--locator', locatorAddress, '--region', 'TEST', '--key', 'k2'])).code, 1);
    });

    it('status lists both members and the region', async () => {
      const result = await strait(['status', '--locator', locatorAddress, '--json']);
      assertOk(result, 'status');
      const status = JSON.parse(result.stdout);
      assert.equal(status.site, 3);
      assert.deepEqual(status.members.map((member: { name: string }) => member.name).sort(), ['locator-1', 'server1-1']);
      assert.deepEqual(status.members.map((member: { role: string }) => member.role).sort(), ['locator', 'server']);
      assert.ok(status.regions.some((region: { spec: { name: string } }) => region.spec.name === 'TEST'));
      const text = await strait(['status', '--locator', locatorAddress]);
      assertOk(text, 'status (text)');
      assert.match(text.stdout, /server1-1/);
    });

    it('list members and regions', async () => {
      const members = await strait(['list', 'members', '--locator', locatorAddress, '--json']);
      assertOk(members, 'list members');
      assert.equal(JSON.parse(members.stdout).length, 2);
      const regions = await strait(['list', 'regions', '--locator', locatorAddress, '--json']);
      assertOk(regions, 'list regions');
      assert.deepEqual(JSON.parse(regions.stdout).map((region: { spec: { name: string } }) => region.spec.name), ['TEST']);
    });

    it('the admin HTTP API answers', async () => {
      const response = await fetch(`http://${locator.httpAddress.host}:${locator.httpAddress.port}/health`);
      assert.equal(response.status, 200);
      assert.equal(((await response.json()) as { status: string }).status, 'ok');
    });

    it('refuses to start a second member in the same directory', async () => {
      const result = await strait(['start', 'locator', '--name', 'locator-1', '--dir', join(root, 'locator-1'), '--port', '0']);
      assert.notEqual(result.code, 0);
      assert.match(result.stderr, /STRAIT_ALREADY_RUNNING/);
    });

    it('stop stops both, then reports STRAIT_NOT_RUNNING', async () => {
      assertOk(await strait(['stop', 'server', '--dir', join(root, 'server1-1')]), 'stop server');
      assertOk(await strait(['stop', 'locator', '--dir', join(root, 'locator-1')]), 'stop locator');
      assert.equal(existsSync(join(root, 'locator-1', 'locator.pid')), false);
      assert.equal(existsSync(join(root, 'server1-1', 'server.pid')), false);
      const again = await strait(['stop', 'locator', '--dir', join(root, 'locator-1')]);
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /error STRAIT_NOT_RUNNING/);
    });
  });

  /** Replication between two sites configured by strait.yaml alone, driven through the CLI. */
  describe('strait CLI with two sites replicating both ways', { concurrency: 1 }, () => {
    /** site → its locator, host[port]. */
    const locators = new Map<number, string>();
    const at = (site: number): string => locators.get(site)!;
    /** site → its server, as `start --json` reported it. */
    const servers = new Map<number, Started>();

    before(async () => {
      // Each locator binds a port of its own choosing; site 2's names site 1's as its remote
      // locator and site 1 learns site 2 from that exchange. (Ports picked ahead so that both
      // could name each other raced with other tests for those ports.)
      const first = await start('locator', 'wan-locator-1', ['--port', '0', '--site-id', '1']);
      locators.set(1, `127.0.0.1[${first.address.port}]`);
      const second = await start('locator', 'wan-locator-2', ['--port', '0', '--site-id', '2', '--remote-locators', at(1)]);
      locators.set(2, `127.0.0.1[${second.address.port}]`);
      // The sites are independent until their locators exchange catalogues: start the servers side by side.
      await Promise.all([1, 2].map(async (site) => {
        const other = site === 1 ? 2 : 1;
        const name = `wan-server${site}-1`;
        const receiverStart = await freePort();
        writeFileSync(
          join(memberDir(name), 'strait.yaml'),
          [
            'regions:',
            `  TEST: { type: replicate, gateway-sender-ids: [to-site-${other}] }`,
            'gateway-senders:',
            `  to-site-${other}: { remote-site-id: ${other}, batch-size: 100, batch-time-interval: 50 }`,
            `gateway-receiver: { start-port: ${receiverStart}, end-port: ${Math.min(65535, receiverStart + 20)} }`,
            '',
          ].join('\n'),
        );
        servers.set(site, await start('server', name, ['--server-port', '0', '--locators', at(site)]));
      }));
    });

    after(() => killLeftovers('wan-'));

    it('a put at site 1 arrives at site 2, and a put at site 2 at site 1', async () => {
      assertOk(await strait(['put', '--locator', at(1), '--region', 'TEST', '--key', 'from-1', '--value', 'hello from site 1']), 'put at site 1');
      assert.equal(await eventuallyGet(at(2), 'from-1', 20_000), 'hello from site 1');
      assertOk(await strait(['put', '--locator', at(2), '--region', 'TEST', '--key', 'from-2', '--value', 'hello from site 2']), 'put at site 2');
      assert.equal(await eventuallyGet(at(1), 'from-2', 20_000), 'hello from site 2');
    });

    it('status gateway-sender shows a running primary whose queue drains to 0', async () => {
      assertOk(await strait(['put', '--locator', at(1), '--region', 'TEST', '--key', 'drain', '--value', 'd']), 'put');
      let primary: SenderCopy | undefined;
      const deadline = performance.now() + 20_000;
      do {
        primary = (await senderCopies(at(1), 'to-site-2')).find((copy) => copy.role === 'primary');
      } while ((primary === undefined || primary.queueEvents !== 0) && performance.now() < deadline);
      assert.ok(primary !== undefined, 'a primary copy');
      assert.equal(primary.member, 'wan-server1-1');
      assert.equal(primary.state, 'running');
      assert.equal(primary.queueEvents, 0);
      assert.equal(primary.problem, null);
      const text = await strait(['status', 'gateway-sender', '--id', 'to-site-2', '--locator', at(1)]);
      assertOk(text, 'status gateway-sender (text)');
      assert.match(text.stdout, /wan-server1-1\s+primary\s+running/);
    });

    it('pause holds events in the queue; resume delivers them', async () => {
      const paused = await strait(['pause', 'gateway-sender', '--id', 'to-site-2', '--locator', at(1), '--json']);
      assertOk(paused, 'pause');
      assert.deepEqual(JSON.parse(paused.stdout).members, [{ member: 'wan-server1-1', state: 'paused' }]);
      try {
        assertOk(await strait(['put', '--locator', at(1), '--region', 'TEST', '--key', 'while-paused', '--value', 'held']), 'put while paused');
        // Paused: nothing is dispatched, so absence is certain, not a race.
        assert.equal(await eventuallyGet(at(2), 'while-paused', 2000), undefined);
        const primary = (await senderCopies(at(1), 'to-site-2')).find((copy) => copy.role === 'primary');
        assert.equal(primary?.state, 'paused');
        assert.ok((primary?.queueEvents ?? 0) >= 1, `queue holds the put: ${JSON.stringify(primary)}`);
      } finally {
        const resumed = await strait(['resume', 'gateway-sender', '--id', 'to-site-2', '--locator', at(1), '--json']);
        assertOk(resumed, 'resume');
        assert.deepEqual(JSON.parse(resumed.stdout).members, [{ member: 'wan-server1-1', state: 'running' }]);
      }
      assert.equal(await eventuallyGet(at(2), 'while-paused', 20_000), 'held');
    });

    it('stop and start gateway-sender report each member\'s state', async () => {
      const stopped = await strait(['stop', 'gateway-sender', '--id', 'to-site-1', '--locator', at(2), '--member', 'wan-server2-1', '--drain-timeout', '5000', '--json']);
      assertOk(stopped, 'stop gateway-sender');
      assert.deepEqual(JSON.parse(stopped.stdout).members, [{ member: 'wan-server2-1', state: 'stopped' }]);
      const started = await strait(['start', 'gateway-sender', '--id', 'to-site-1', '--locator', at(2)]);
      assertOk(started, 'start gateway-sender');
      assert.match(started.stdout, /wan-server2-1\s+running/);
      assertOk(await strait(['put', '--locator', at(2), '--region', 'TEST', '--key', 'after-restart', '--value', 'r']), 'put');
      assert.equal(await eventuallyGet(at(1), 'after-restart', 20_000), 'r');
    });

    it('list gateways and status show senders and receivers', async () => {
      const listed = await strait(['list', 'gateways', '--locator', at(1), '--json']);
      assertOk(listed, 'list gateways');
      const gateways = JSON.parse(listed.stdout) as { senders: SenderCopy[]; receivers: { member: string; address: { host: string; port: number } }[] };
      assert.deepEqual(gateways.senders.map((sender) => [sender.id, sender.member, sender.role]), [['to-site-2', 'wan-server1-1', 'primary']]);
      assert.deepEqual(gateways.receivers.map((receiver) => receiver.member), ['wan-server1-1']);
      const status = await strait(['status', '--locator', at(2), '--json']);
      assertOk(status, 'status');
      const site = JSON.parse(status.stdout) as { site: number; gateways: typeof gateways };
      assert.equal(site.site, 2);
      assert.deepEqual(site.gateways.senders.map((sender) => sender.id), ['to-site-1']);
      assert.deepEqual(site.gateways.receivers.map((receiver) => receiver.member), ['wan-server2-1']);
      const text = await strait(['list', 'gateways', '--locator', at(1)]);
      assertOk(text, 'list gateways (text)');
      assert.match(text.stdout, /to-site-2\s+wan-server1-1\s+2\s+primary/);
    });

    it('the server\'s admin API and metrics show its sender and receiver', async () => {
      const http = servers.get(1)!.httpAddress;
      const gateways = (await (await fetch(`http://${http.host}:${http.port}/gateways`)).json()) as { senders: SenderCopy[]; receiver: { port: number } | null };
      assert.deepEqual(gateways.senders.map((sender) => [sender.id, sender.role]), [['to-site-2', 'primary']]);
      assert.ok(gateways.receiver !== null && gateways.receiver.port > 0);
      const metrics = await (await fetch(`http://${http.host}:${http.port}/metrics`)).text();
      assert.match(metrics, /^strait_gateway_sender_primary\{sender="to-site-2",remote_site="2",[^}]*\} 1$/m);
      assert.match(metrics, /^strait_gateway_sender_events_sent\{sender="to-site-2",remote_site="2",[^}]*\} [1-9][0-9]*$/m);
      assert.match(metrics, /^strait_gateway_receiver_up\{[^}]*\} 1$/m);
    });

    it('an unknown sender is STRAIT_SENDER_NOT_FOUND (exit 1); a missing --id is STRAIT_USAGE (exit 2)', async () => {
      const notFound = [['status', 'gateway-sender', '--id', 'nope'], ['pause', 'gateway-sender', '--id', 'nope']];
      const usage = [['status', 'gateway-sender'], ['resume', 'gateway-sender'], ['stop', 'gateway-sender', '--drain-timeout', 'x', '--id', 'to-site-2'], ['stop', 'server', '--id', 'to-site-2']];
      const expectations = [...notFound.map((args) => [args, 1, 'STRAIT_SENDER_NOT_FOUND'] as const), ...usage.map((args) => [args, 2, 'STRAIT_USAGE'] as const)];
      await Promise.all(expectations.map(async ([args, code, errorCode]) => {
        const result = await strait([...args, '--locator', at(1)]);
        assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
        assert.match(result.stderr, new RegExp(`^error ${errorCode}: `, 'm'));
      }));
    });
  });

  describe('strait CLI failures', () => {
    it('an unknown key in strait.yaml exits 2 naming the code', async () => {
      const dir = memberDir('bad-config');
      writeFileSync(join(dir, 'strait.yaml'), 'name: bad-config\nprot: 10334\n');
      const result = await strait(['start', 'locator', '--dir', dir]);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /^error STRAIT_CONFIG_UNKNOWN_KEY: /m);
      assert.match(result.stderr, /prot/);
      assert.equal(existsSync(join(dir, 'locator.pid')), false);
    });

    it('a bad flag value exits 2 with STRAIT_CONFIG_INVALID', async () => {
      const result = await strait(['start', 'server', '--name', 's', '--dir', memberDir('bad-flag'), '--locators', 'localhost[1]', '--site-id', '0']);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /^error STRAIT_CONFIG_INVALID: /m);
    });

    it('an unknown flag exits 2 with STRAIT_USAGE', async () => {
      const result = await strait(['start', 'locator', '--name', 'x', '--prot', '1']);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /^error STRAIT_USAGE: /m);
    });

    it('a port in use fails the start with STRAIT_PORT_IN_USE', async () => {
      const blocker: NetServer = createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      try {
        const port = (blocker.address() as AddressInfo).port;
        const dir = memberDir('port-in-use');
        const result = await strait(['start', 'locator', '--name', 'port-in-use', '--dir', dir, '--bind-address', '127.0.0.1', '--port', String(port)]);
        assert.equal(result.code, 1);
        assert.match(result.stderr, /^error STRAIT_PORT_IN_USE: /m);
        assert.equal(existsSync(join(dir, 'locator.pid')), false);
        assert.equal(JSON.parse(readFileSync(join(dir, 'member.json'), 'utf8')).error.code, 'STRAIT_PORT_IN_USE');
      } finally {
        blocker.close();
      }
    });

    it('a server with no reachable locator says why while waiting, then the problem and the next step, no raw JSON', async () => {
      const locator = `127.0.0.1[${await freePort()}]`;
      const dir = memberDir('no-locator');
      // Progress is reported every 5 s: a 10 s timeout leaves room for one report at least.
      const result = await strait([
        'start', 'server', '--name', 'no-locator', '--dir', dir, '--bind-address', '127.0.0.1', '--server-port', '0',
        '--locators', locator, '--timeout', '10',
      ]);
      const what = `exit ${result.code}\n${result.stderr}`;
      assert.equal(result.code, 1, what);
      assert.equal(result.stdout, '');
      const lines = result.stderr.split('\n').filter((line) => line.length > 0);
      const progress = lines.filter((line) => line.startsWith('no-locator: still starting after '));
      assert.ok(progress.length >= 1, what);
      assert.ok(progress.every((line) => line.includes(locator) && line.includes('ECONNREFUSED')), what);
      const failure = lines.find((line) => line.startsWith('error STRAIT_START_FAILED: '));
      assert.ok(failure !== undefined && failure.includes(locator) && failure.includes('ECONNREFUSED'), what);
      assert.ok(lines.some((line) => line.startsWith('next step: ') && line.includes(locator)), what);
      assert.ok(lines.some((line) => line.includes(join(dir, 'no-locator.log'))), what);
      assert.deepEqual(lines.filter((line) => line.trimStart().startsWith('{')), [], 'no raw JSON log lines');
    });

    it('stop without a running member exits 1 with STRAIT_NOT_RUNNING', async () => {
      const result = await strait(['stop', 'server', '--dir', memberDir('nothing')]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /^error STRAIT_NOT_RUNNING: /m);
    });

    it('every client command against a closed port exits 1: STRAIT_NO_LOCATOR, the address, ECONNREFUSED', async () => {
      const locator = `127.0.0.1[${await freePort()}]`;
      const commands = [
        ['get', '--region', 'R', '--key', 'k'],
        ['put', '--region', 'R', '--key', 'k', '--value', 'v'],
        ['remove', '--region', 'R', '--key', 'k'],
        ['status'],
        ['list', 'members'],
        ['list', 'regions'],
        ['list', 'gateways'],
        ['status', 'gateway-sender', '--id', 'to-site-2'],
        ['pause', 'gateway-sender', '--id', 'to-site-2'],
        ['resume', 'gateway-sender', '--id', 'to-site-2'],
        ['stop', 'gateway-sender', '--id', 'to-site-2'],
        ['start', 'gateway-sender', '--id', 'to-site-2'],
      ];
      // The bound: far above the 5 s connect deadline, far below "waits for the request timeout".
      const boundMs = 30_000;
      await Promise.all(commands.map(async (args) => {
        const result = await strait([...args, '--locator', locator], {}, boundMs);
        const what = `${args.join(' ')}: exit ${result.code}\n${result.stderr}`;
        assert.equal(result.code, 1, what);
        assert.match(result.stderr, /^error STRAIT_NO_LOCATOR: /m, what);
        assert.ok(result.stderr.includes(locator), what);
        assert.match(result.stderr, /ECONNREFUSED/, what);
      }));
    });

    it('a bad --connect-timeout exits 2 with STRAIT_USAGE', async () => {
      const result = await strait(['get', '--region', 'R', '--key', 'k', '--connect-timeout', '0']);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /^error STRAIT_USAGE: /m);
    });

    it('a client command with a bad address exits 2 with STRAIT_ADDRESS_INVALID', async () => {
      const result = await strait(['get', '--locator', 'host[x]', '--region', 'R', '--key', 'k']);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /^error STRAIT_ADDRESS_INVALID: /m);
    });
  });
});
