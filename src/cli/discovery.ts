// The discovery plugins (`discovery:` in strait.yaml, src/config/discovery-config.ts): where a
// member finds its site's locators beyond the static `locators` list. One interface, one shared
// test suite (discovery-test-suite.ts) every plugin passes.
//
//   directory   JGroups FILE_PING: a locator writes <path>/site-<N>/<name>.json and refreshes it;
//               readers take the files of their site refreshed within DISCOVERY_STALE_MS.
//   postgres    JDBC_PING: one row per locator (site, name, host, port, updated_at) in a table
//               it creates if missing; same refresh and staleness.
//   dns         DNS_PING: SRV records (host and port) or A records (+ the configured port) of a
//               name, from the system's resolver or the configured servers. Read only.
//   kubernetes  KUBE_PING: the running pods of a namespace matching a label selector, at the
//               container port of the given name, from the API with the pod's service-account
//               token. Read only.
//
// The member process resolves discovery before it starts the member (run.ts): a server waits
// until something is found, retrying with backoff and saying what it looked at; a locator waits
// a short while and then starts with what it found, alone if nothing (it may be the first).

import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import pg from 'pg';
import { describeDiscovery, type DiscoveryConfig } from '../config/discovery-config.ts';
import { Backoff } from '../core/backoff.ts';
import { createSeededRandom } from '../runtime/node/random.ts';
import type { Address, Logger } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';

/** A published entry not refreshed for this long is a locator that is gone. */
export const DISCOVERY_STALE_MS = 60_000;
/** How often a locator refreshes its entry. */
export const DISCOVERY_REFRESH_MS = 10_000;
/** One lookup may take this long. */
const LOOKUP_TIMEOUT_MS = 5000;
/** Addresses one lookup returns, at most. */
const FOUND_MAX = 1024;

export interface PublishedLocator {
  readonly site: number;
  readonly name: string;
  readonly address: Address;
}

export interface LocatorDiscovery {
  /** What it looks at, for log lines. */
  readonly description: string;
  /** The locators of `site` (any site when undefined) it finds now. */
  find(site: number | undefined): Promise<Address[]>;
  /** Publishes (or refreshes) a locator; read-only plugins do nothing. */
  publish(locator: PublishedLocator): Promise<void>;
  /** Removes a published locator. */
  unpublish(locator: PublishedLocator): Promise<void>;
  close(): Promise<void>;
}

// ---- directory ----

function siteDirectory(root: string, site: number): string {
  return join(root, `site-${site}`);
}

export function directoryDiscovery(path: string, now: () => number = Date.now): LocatorDiscovery {
  return {
    description: `directory ${path}`,
    async find(site) {
      const sites = site !== undefined ? [siteDirectory(path, site)] : readdirSafe(path).filter((name) => /^site-\d+$/.test(name)).map((name) => join(path, name));
      const found: Address[] = [];
      for (const dir of sites) {
        for (const file of readdirSafe(dir)) {
          if (!file.endsWith('.json') || found.length >= FOUND_MAX) continue;
          try {
            const full = join(dir, file);
            if (now() - statSync(full).mtimeMs > DISCOVERY_STALE_MS) continue;
            const entry = JSON.parse(readFileSync(full, 'utf8')) as { address?: Address };
            if (entry.address !== undefined && typeof entry.address.host === 'string' && Number.isInteger(entry.address.port)) found.push({ host: entry.address.host, port: entry.address.port });
          } catch {
            // Being replaced, or not ours: skip it.
          }
        }
      }
      return found;
    },
    async publish(locator) {
      const dir = siteDirectory(path, locator.site);
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `${locator.name}.json`);
      const temporary = `${file}.tmp-${process.pid}`;
      writeFileSync(temporary, `${JSON.stringify({ site: locator.site, name: locator.name, address: locator.address })}\n`);
      renameSync(temporary, file);
    },
    async unpublish(locator) {
      rmSync(join(siteDirectory(path, locator.site), `${locator.name}.json`), { force: true });
    },
    async close() {},
  };
}

function readdirSafe(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

// ---- postgres ----

export function postgresDiscovery(url: string, table: string): LocatorDiscovery {
  // One small pool: a lookup and a refresh now and then.
  const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: LOOKUP_TIMEOUT_MS, idleTimeoutMillis: 30_000 });
  pool.on('error', () => {
    // An idle connection broke (the database restarted): the next query opens another.
  });
  let created = false;
  const ensureTable = async (): Promise<void> => {
    if (created) return;
    // `table` was checked to be a plain identifier (discovery-config.ts); values are parameters.
    await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (site integer NOT NULL, name text NOT NULL, host text NOT NULL, port integer NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (site, name))`);
    created = true;
  };
  return {
    description: `postgres table ${table} at ${url.replace(/\/\/[^@/]*@/, '//')}`,
    async find(site) {
      await ensureTable();
      const staleSeconds = DISCOVERY_STALE_MS / 1000;
      const result = site === undefined
        ? await pool.query(`SELECT host, port FROM ${table} WHERE updated_at > now() - make_interval(secs => $1) ORDER BY site, name LIMIT ${FOUND_MAX}`, [staleSeconds])
        : await pool.query(`SELECT host, port FROM ${table} WHERE site = $1 AND updated_at > now() - make_interval(secs => $2) ORDER BY name LIMIT ${FOUND_MAX}`, [site, staleSeconds]);
      return result.rows.map((row: { host: string; port: number }) => ({ host: row.host, port: Number(row.port) }));
    },
    async publish(locator) {
      await ensureTable();
      await pool.query(
        `INSERT INTO ${table} (site, name, host, port, updated_at) VALUES ($1, $2, $3, $4, now()) ON CONFLICT (site, name) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port, updated_at = now()`,
        [locator.site, locator.name, locator.address.host, locator.address.port],
      );
    },
    async unpublish(locator) {
      await ensureTable();
      await pool.query(`DELETE FROM ${table} WHERE site = $1 AND name = $2`, [locator.site, locator.name]);
    },
    async close() {
      await pool.end();
    },
  };
}

// ---- dns ----

export function dnsDiscovery(name: string, record: 'srv' | 'a', port: number, servers: readonly Address[]): LocatorDiscovery {
  const resolver = new Resolver({ timeout: LOOKUP_TIMEOUT_MS, tries: 2 });
  if (servers.length > 0) resolver.setServers(servers.map((server) => (server.host.includes(':') ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`)));
  const description = `DNS ${record.toUpperCase()} records of ${name}${servers.length > 0 ? ` (asking ${servers.map(formatAddress).join(', ')})` : ''}`;
  return {
    description,
    async find() {
      try {
        if (record === 'srv') {
          const answers = await resolver.resolveSrv(name);
          return answers.sort((a, b) => a.priority - b.priority || b.weight - a.weight || a.name.localeCompare(b.name))
            .slice(0, FOUND_MAX).map((answer) => ({ host: answer.name, port: answer.port }));
        }
        const answers = await resolver.resolve4(name);
        return answers.sort().slice(0, FOUND_MAX).map((host) => ({ host, port }));
      } catch (error) {
        // No such name yet is "nothing found"; other failures are worth their message.
        const code = (error as { code?: string }).code;
        if (code === 'ENOTFOUND' || code === 'ENODATA') return [];
        throw error;
      }
    },
    async publish() {},
    async unpublish() {},
    async close() {},
  };
}

// ---- kubernetes ----

interface PodList {
  readonly items?: readonly {
    readonly metadata?: { readonly name?: string; readonly deletionTimestamp?: string };
    readonly status?: { readonly phase?: string; readonly podIP?: string };
    readonly spec?: { readonly containers?: readonly { readonly ports?: readonly { readonly name?: string; readonly containerPort?: number }[] }[] };
  }[];
}

export function kubernetesDiscovery(config: Extract<DiscoveryConfig, { type: 'kubernetes' }>, environment: NodeJS.ProcessEnv = process.env): LocatorDiscovery {
  const apiUrl = config.apiUrl ?? (environment['KUBERNETES_SERVICE_HOST'] === undefined
    ? undefined
    : `https://${environment['KUBERNETES_SERVICE_HOST']}:${environment['KUBERNETES_SERVICE_PORT'] ?? '443'}`);
  return {
    description: describeDiscovery(config),
    async find() {
      if (apiUrl === undefined) throw new Error('no Kubernetes API: KUBERNETES_SERVICE_HOST is not set (not in a pod?) and discovery.api-url is not given');
      const token = readFileSync(config.tokenFile, 'utf8').trim();
      const url = new URL(`/api/v1/namespaces/${encodeURIComponent(config.namespace)}/pods`, apiUrl);
      url.searchParams.set('labelSelector', config.labelSelector);
      const body = await getJson(url, token, url.protocol === 'https:' ? readFileSync(config.caFile) : undefined);
      const found: Address[] = [];
      for (const pod of (body as PodList).items ?? []) {
        if (pod.status?.phase !== 'Running' || pod.status.podIP === undefined || pod.metadata?.deletionTimestamp !== undefined) continue;
        const port = (pod.spec?.containers ?? []).flatMap((container) => container.ports ?? []).find((candidate) => candidate.name === config.portName)?.containerPort;
        if (port !== undefined && found.length < FOUND_MAX) found.push({ host: pod.status.podIP, port });
      }
      return found.sort((a, b) => a.host.localeCompare(b.host));
    },
    async publish() {},
    async unpublish() {},
    async close() {},
  };
}

/** Response bodies larger than this are refused (a pod list of a few thousand pods fits). */
const KUBERNETES_RESPONSE_BYTES_MAX = 32 * 1024 * 1024;

function getJson(url: URL, token: string, ca: Buffer | undefined): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const options = { method: 'GET', headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, timeout: LOOKUP_TIMEOUT_MS, ...(ca !== undefined ? { ca } : {}) };
    const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, options, (response) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes > KUBERNETES_RESPONSE_BYTES_MAX) request.destroy(new Error(`the API answered more than ${KUBERNETES_RESPONSE_BYTES_MAX} bytes`));
        else chunks.push(chunk);
      });
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (response.statusCode !== 200) {
          reject(new Error(`the Kubernetes API answered ${response.statusCode} to GET ${url.pathname}: ${text.slice(0, 300)}`));
          return;
        }
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new Error(`the Kubernetes API answered something that is not JSON to GET ${url.pathname}`));
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url.href} timed out after ${LOOKUP_TIMEOUT_MS} ms`)));
    request.on('error', reject);
    request.end();
  });
}

// ---- choosing and waiting ----

export function createDiscovery(config: DiscoveryConfig): LocatorDiscovery {
  switch (config.type) {
    case 'directory': return directoryDiscovery(config.path);
    case 'postgres': return postgresDiscovery(config.url, config.table);
    case 'dns': return dnsDiscovery(config.name, config.record, config.port, config.servers);
    case 'kubernetes': return kubernetesDiscovery(config);
  }
}

export interface WaitOptions {
  /** Give up (returning what was found, maybe nothing) after this long; undefined = keep trying. */
  readonly giveUpAfterMs: number | undefined;
  readonly signal?: AbortSignal;
}

/**
 * Looks until something is found: every failure or empty answer is logged with what was looked
 * at, and retried with the members' backoff (500 ms doubling to 10 s, jittered).
 */
export async function findLocators(discovery: LocatorDiscovery, site: number | undefined, log: Logger, options: WaitOptions): Promise<Address[]> {
  const startedMs = Date.now();
  const backoff = new Backoff(createSeededRandom(), { initialDelayMs: 500, maximumDelayMs: 10_000 });
  for (;;) {
    let problem: string;
    try {
      const found = await discovery.find(site);
      if (found.length > 0) {
        log.info({ discovery: discovery.description, found: found.map(formatAddress) }, `discovery (${discovery.description}) found locators ${found.map(formatAddress).join(', ')}`);
        return found;
      }
      problem = 'found no locators';
    } catch (error) {
      problem = `failed: ${error instanceof Error ? error.message : String(error)}`;
    }
    if (options.giveUpAfterMs !== undefined && Date.now() - startedMs >= options.giveUpAfterMs) {
      log.info({ discovery: discovery.description }, `discovery (${discovery.description}) ${problem}${site === undefined ? '' : ` of site ${site}`}; starting without`);
      return [];
    }
    const wait = backoff.nextDelayMs();
    log.warn({ discovery: discovery.description, retryInMs: wait }, `discovery (${discovery.description}) ${problem}${site === undefined ? '' : ` of site ${site}`}; looking again in ${wait} ms`);
    await new Promise((resolve) => setTimeout(resolve, wait));
    if (options.signal?.aborted === true) return [];
  }
}
