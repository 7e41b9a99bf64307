// Real servers for the discovery plugins' tests, each on loopback, in a temporary directory, and
// stopped by the returned `stop()` (call it in t.after): a PostgreSQL cluster (Debian's
// `postgresql`, run as the postgres user), a dnsmasq serving SRV and A records, and an HTTPS
// server answering the Kubernetes API's pod list in its real shape with a self-signed
// certificate. `.ci/run` installs postgresql, dnsmasq and openssl.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../../bench/processes.ts';
import type { PublishedLocator } from './discovery.ts';

function postgresBin(tool: string): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  if (versions.length === 0) throw new Error('PostgreSQL is not installed (apt-get install postgresql; .ci/run does)');
  return join(root, versions[0]!, 'bin', tool);
}

export interface PostgresFixture {
  readonly url: string;
  stop(): void;
}

/** A throwaway PostgreSQL cluster on 127.0.0.1, trust auth, database postgres. */
export async function startPostgres(): Promise<PostgresFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'strait-pg-'));
  const data = join(dir, 'data');
  chownSync(dir, uidOf('postgres'), gidOf('postgres'));
  const port = await freePort();
  const asPostgres = (tool: string, args: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', postgresBin(tool), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = () => {
    try {
      asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']);
    } catch {
      // Not running.
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    asPostgres('initdb', ['-D', data, '--auth=trust', '-U', 'postgres', '--no-sync']);
    asPostgres('pg_ctl', ['-D', data, '-w', '-t', '30', '-l', join(dir, 'log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
  } catch (error) {
    stop();
    throw new Error(`PostgreSQL did not start: ${(error as { stderr?: Buffer }).stderr?.toString() ?? String(error)}`);
  }
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop };
}

function uidOf(user: string): number {
  return Number(execFileSync('id', ['-u', user]).toString().trim());
}

function gidOf(user: string): number {
  return Number(execFileSync('id', ['-g', user]).toString().trim());
}

export interface DnsFixture {
  readonly port: number;
  /** Serves these locators: SRV records of `srvName`, A records of `aName`. Restarts dnsmasq. */
  serve(locators: readonly PublishedLocator[]): Promise<void>;
  stop(): void;
}

/** dnsmasq on 127.0.0.1:<free port>, authoritative for the names it is given, no upstream. */
export async function startDns(srvName: string, aName: string): Promise<DnsFixture> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const stopChild = async () => {
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  return {
    port,
    async serve(locators) {
      await stopChild();
      const records = locators.flatMap((locator, index) => [
        `--srv-host=${srvName},${locator.name}.${aName},${locator.address.port},${index},10`,
        `--host-record=${locator.name}.${aName},${locator.address.host}`,
        `--host-record=${aName},${locator.address.host}`,
      ]);
      // A name with no records must still exist for dnsmasq to answer NODATA, not forward.
      child = spawn('dnsmasq', ['--no-daemon', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--bind-interfaces', '--listen-address=127.0.0.1',
        `--port=${port}`, '--user=root', `--local=/${aName.split('.').slice(-1)[0]}/`, ...records], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      // Ready once it answers (records or NODATA); refused means it is not listening yet. A
      // fixed wait lost this race on a loaded machine.
      const resolver = new Resolver({ timeout: 500, tries: 1 });
      resolver.setServers([`127.0.0.1:${port}`]);
      for (let attempt = 0; ; attempt++) {
        if (child.exitCode !== null) throw new Error(`dnsmasq exited (${child.exitCode}): ${stderr}`);
        const answered = await resolver.resolveSrv(srvName).then(() => true, (error: NodeJS.ErrnoException) => error.code !== 'ECONNREFUSED' && error.code !== 'ETIMEOUT');
        if (answered) break;
        if (attempt === 100) throw new Error(`dnsmasq on port ${port} did not answer within 10 s: ${stderr}`);
        await sleep(100);
      }
    },
    stop() {
      if (child !== undefined && child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

export interface KubernetesFixture {
  readonly apiUrl: string;
  readonly tokenFile: string;
  readonly caFile: string;
  /** The pods the API lists: running pods with a container port named `locator`. */
  serve(locators: readonly PublishedLocator[], extra?: readonly unknown[]): void;
  /** Requests it answered: path and query, and whether the token matched. */
  readonly requests: { path: string; labelSelector: string | null; authorized: boolean }[];
  stop(): Promise<void>;
}

/** An HTTPS server answering GET /api/v1/namespaces/<ns>/pods as the Kubernetes API does. */
export async function startKubernetesApi(namespace: string): Promise<KubernetesFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'strait-k8s-'));
  const keyFile = join(dir, 'key.pem');
  const caFile = join(dir, 'ca.crt');
  const tokenFile = join(dir, 'token');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', caFile, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const token = 'service-account-token-for-tests';
  execFileSync('sh', ['-c', `printf %s '${token}' > '${tokenFile}'`]);
  let items: unknown[] = [];
  const requests: KubernetesFixture['requests'] = [];
  const server: Server = createServer({ key: readFileSync(keyFile), cert: readFileSync(caFile) }, (request, response) => {
    const url = new URL(request.url ?? '/', 'https://127.0.0.1');
    const authorized = request.headers.authorization === `Bearer ${token}`;
    requests.push({ path: url.pathname, labelSelector: url.searchParams.get('labelSelector'), authorized });
    if (!authorized) {
      response.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401 }));
      return;
    }
    if (url.pathname !== `/api/v1/namespaces/${namespace}/pods`) {
      response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', status: 'Failure', reason: 'NotFound', code: 404 }));
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '1' }, items }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    apiUrl: `https://127.0.0.1:${port}`,
    tokenFile,
    caFile,
    requests,
    serve(locators, extra = []) {
      items = [...locators.map((locator) => pod(namespace, locator)), ...extra];
    },
    async stop() {
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A pod as the API returns it (the fields KUBE_PING-like discovery reads, and some it ignores). */
export function pod(namespace: string, locator: PublishedLocator, phase = 'Running'): unknown {
  return {
    metadata: { name: locator.name, namespace, labels: { app: 'strait-locator' }, uid: `uid-${locator.name}` },
    spec: { containers: [{ name: 'strait', image: 'strait:dev', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }, { name: 'locator', containerPort: locator.address.port, protocol: 'TCP' }] }] },
    status: { phase, podIP: locator.address.host, conditions: [{ type: 'Ready', status: 'True' }] },
  };
}
