// `strait/member`: locators, servers and routers inside an application's own Node service.
//
// Each start function takes the keys of strait.yaml as an object (`{ name, 'site-id', locators,
// 'server-port': 0, regions: { ... } }`) and validates them with the same loader as `strait run`
// (src/config/member-config.ts), so a mistake is the same coded error: STRAIT_CONFIG_UNKNOWN_KEY
// with a did-you-mean hint, or STRAIT_CONFIG_INVALID naming the key. The member is then wired by
// embedded-member.ts, exactly as `strait run` wires it, and the function resolves once it is
// ready, to a handle with its addresses and `stop()`.
//
// It takes nothing from the process: no pid file, no member.json, no signal handlers, no
// process.exit, no uncaught-error handlers. The application decides when to stop, and a failed
// assertion (a member whose state broke) is an uncaught exception, which ends the process unless
// the application catches those itself.

import { join } from 'node:path';
import { assert, StraitError } from '../errors.ts';
import { buildMemberConfig, type MemberConfig, type MemberRole, type RouterMemberConfig } from '../config/member-config.ts';
import { Router } from '../core/router.ts';
import { createLogger, type NodeLogger } from '../runtime/node/logger.ts';
import { createNodeRuntime } from '../runtime/node/node-runtime.ts';
import type { Address } from '../runtime/runtime.ts';
import { composeMember, type ReadyMember } from './embedded-member.ts';
import { CONFIG_FILE_BYTES_MAX, machineFacts } from './load-config.ts';
import { DATA_DIRECTORY_NAME } from './member-files.ts';
import { memberTls } from './member-tls.ts';
import { SHUTDOWN_TIMEOUT_MS } from './run.ts';

/** Nesting of a configuration object, at most: strait.yaml's deepest declarations are three levels down. */
const CONFIG_DEPTH_MAX = 16;

/** One address (`host[port]`, `host:port`) or a list of them, as strait.yaml takes them. */
export type AddressList = string | readonly string[];

/** `regions.<NAME>` of strait.yaml (docs/CLI.md#declarations). */
export interface RegionDeclaration {
  readonly type?: 'replicate' | 'partition';
  readonly persistent?: boolean;
  readonly 'gateway-sender-ids'?: string | readonly string[];
  readonly 'total-num-buckets'?: number;
  readonly 'redundant-copies'?: number;
  readonly 'recovery-delay'?: number;
  readonly 'startup-recovery-delay'?: number;
}

/** The keys every embedded member takes (docs/CLI.md lists what each means). */
export interface CommonSettings {
  readonly name: string;
  readonly 'bind-address'?: string;
  readonly 'hostname-for-clients'?: string;
  /** trace, debug, info (default), warn, error, fatal or silent. */
  readonly 'log-level'?: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** JSON lines on standard output (the default for an embedded member) or human-readable lines. */
  readonly 'log-format'?: 'json' | 'pretty';
  readonly routers?: AddressList;
  readonly 'router-secret-file'?: string;
  /** TLS on every listener and link: PEM file paths (docs/CLI.md); or the tls-* keys one by one. */
  readonly tls?: { readonly cert?: string; readonly key?: string; readonly ca?: string; readonly 'require-client-cert'?: boolean };
  readonly 'tls-cert'?: string;
  readonly 'tls-key'?: string;
  readonly 'tls-ca'?: string;
}

/** The keys locators and servers take. */
export interface MemberSettings extends CommonSettings {
  readonly 'site-id'?: number;
  readonly locators?: AddressList;
  /** The admin HTTP API's port; default 0, any free port. */
  readonly 'http-port'?: number;
  readonly 'member-timeout'?: number;
  readonly 'admin-token'?: string;
  readonly 'frame-bytes-max'?: number;
  readonly discovery?: Readonly<Record<string, unknown>>;
  readonly 'tls-require-client-cert'?: boolean;
  /** A file holding the token clients present when they have no certificate (needs tls). */
  readonly 'client-token-file'?: string;
}

/** What `startLocator` takes: strait.yaml's keys for a locator. */
export interface LocatorSettings extends MemberSettings {
  /** Default 10334; 0 takes any free port (the handle's `address` tells which). */
  readonly port?: number;
  readonly 'remote-locators'?: AddressList;
}

/** What `startServer` takes: strait.yaml's keys for a server. */
export interface ServerSettings extends MemberSettings {
  /** Default 40404; 0 takes any free port. */
  readonly 'server-port'?: number;
  readonly 'value-bytes-max'?: number;
  readonly regions?: Readonly<Record<string, RegionDeclaration>>;
  readonly 'gateway-senders'?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly 'gateway-receiver'?: Readonly<Record<string, unknown>>;
  /** Path of the module whose default export decides conflicts (relative to the working directory). */
  readonly 'conflict-resolver'?: string;
}

/** What `startRouter` takes: strait.yaml's keys for a router. */
export interface RouterSettings extends CommonSettings {
  /** Default 12001; 0 takes any free port. */
  readonly port?: number;
}

/** How the member lives in this process, beside its configuration. */
export interface EmbeddedOptions {
  /**
   * The member's directory, as `strait run --dir`: persistent regions and a locator's site
   * configuration are kept in `<dir>/data`. Default: none, everything in memory and lost when
   * the member stops.
   */
  readonly dir?: string;
  /** For `${NAME:default}` in string values and STRAIT_ROUTER_SECRET; default process.env. */
  readonly environment?: Readonly<Record<string, string | undefined>>;
  /**
   * Gives up starting: a server waits for its locators (or discovery) as long as it takes, so
   * this is how to bound it — `AbortSignal.timeout(30_000)`. The start then closes what it opened
   * and rejects with STRAIT_ABORTED. Aborting after the start has no effect: use `stop()`.
   */
  readonly signal?: AbortSignal;
}

/** A locator or server running in this process. */
export interface EmbeddedMember {
  readonly role: 'locator' | 'server';
  readonly name: string;
  /** Its site (a server learns it from the locators when `site-id` is not given). */
  readonly site: number;
  /** Where clients and other members reach it: the advertised host and the port it bound. */
  readonly address: Address;
  /** Where its admin HTTP API (health, regions, Prometheus /metrics, dashboard) listens. */
  readonly httpAddress: Address;
  /**
   * Leaves the site cleanly, then closes its ports, connections and storage; resolves once all
   * are closed (forcibly after SHUTDOWN_TIMEOUT_MS if the leave can't complete). Idempotent.
   */
  stop(): Promise<void>;
  /**
   * Settles once the member has stopped: with undefined after `stop()`, with the coded error when
   * it stopped on its own (a server whose disk refused a commit). Never rejects.
   */
  readonly stopped: Promise<StraitError | undefined>;
}

/** A router running in this process. */
export interface EmbeddedRouter {
  readonly role: 'router';
  readonly name: string;
  /** Where members and other routers reach it. */
  readonly address: Address;
  /** Closes its port and every link through it. Idempotent. */
  stop(): Promise<void>;
}

/** Starts a locator; resolves once it is ready (it leads its site or has joined it). */
export async function startLocator(config: LocatorSettings, options: EmbeddedOptions = {}): Promise<EmbeddedMember> {
  return startEmbedded(embeddedConfig('locator', config, options, 'startLocator'), options);
}

/** Starts a server; resolves once it has joined its site and took its regions' contents. */
export async function startServer(config: ServerSettings, options: EmbeddedOptions = {}): Promise<EmbeddedMember> {
  return startEmbedded(embeddedConfig('server', config, options, 'startServer'), options);
}

/** Starts a router of a mesh (docs/NAT.md); resolves once it listens. */
export async function startRouter(config: RouterSettings, options: EmbeddedOptions = {}): Promise<EmbeddedRouter> {
  const routerConfig = embeddedConfig('router', config, options, 'startRouter') as RouterMemberConfig;
  const logger = embeddedLogger(routerConfig);
  // As `strait run router` (run-router.ts): TLS on its port and links when the config has `tls`.
  const tls = memberTls({ role: 'router', name: routerConfig.name, site: undefined, tls: routerConfig.tls }, logger);
  const runtime = createNodeRuntime({ storageDirectory: undefined, logger, ...(tls?.runtime ?? {}) });
  const router = new Router(runtime, routerConfig.core);
  let closed: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    closed ??= new Promise<void>((resolve) => router.stop(() => {
      tls?.stop();
      runtime.close(() => resolve());
    }));
    return closed;
  };
  const address = await new Promise<Address>((resolve, reject) => router.start((result) => {
    if (result.ok && router.address !== undefined) {
      resolve(router.address);
      return;
    }
    const error = result.error ?? new StraitError('STRAIT_START_FAILED', { member: routerConfig.name, reason: 'unknown' });
    void stop().then(() => reject(error));
  }));
  return { role: 'router', name: routerConfig.name, address, stop };
}

/**
 * Validates `settings` with the loader of strait.yaml: the object is handed over as the text of a
 * file (JSON is YAML), so every rule, default and error of `strait run` applies unchanged.
 */
function embeddedConfig(role: MemberRole, settings: unknown, options: EmbeddedOptions, caller: string): MemberConfig {
  // The source named in errors; no '/' in it, so relative module paths resolve against the working directory.
  const source = `${caller}() config`;
  if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) {
    throw new StraitError('STRAIT_CONFIG_INVALID', { source, key: '(config)', reason: `expected an object of strait.yaml keys, got ${settings === null ? 'null' : Array.isArray(settings) ? 'an array' : typeof settings}` });
  }
  checkPlainData(settings, source, '', 0);
  const text = JSON.stringify(settings);
  if (text.length > CONFIG_FILE_BYTES_MAX) {
    throw new StraitError('STRAIT_CONFIG_INVALID', { source, key: '(config)', reason: `larger than ${CONFIG_FILE_BYTES_MAX} bytes as JSON` });
  }
  const machine = options.environment === undefined ? machineFacts() : { ...machineFacts(), environment: options.environment };
  return buildMemberConfig(role, {}, { path: source, text }, machine);
}

/**
 * Refuses what JSON would silently drop or change (functions, symbols, undefined in lists,
 * bigints, NaN, class instances such as Date), naming the key, so the member runs the
 * configuration it was given.
 */
function checkPlainData(value: unknown, source: string, key: string, depth: number): void {
  const refuse = (reason: string): never => {
    throw new StraitError('STRAIT_CONFIG_INVALID', { source, key: key === '' ? '(config)' : key, reason });
  };
  if (depth > CONFIG_DEPTH_MAX) refuse(`nested deeper than ${CONFIG_DEPTH_MAX} levels`);
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) refuse(`expected a finite number, got ${String(value)}`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item: unknown, index) => {
      if (item === undefined) refuse(`[${index}] is undefined`);
      checkPlainData(item, source, `${key}[${index}]`, depth + 1);
    });
    return;
  }
  if (typeof value === 'object') {
    const prototype: unknown = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) refuse('expected plain data (strings, numbers, booleans, lists, objects)');
    for (const [name, item] of Object.entries(value)) {
      if (item !== undefined) checkPlainData(item, source, key === '' ? name : `${key}.${name}`, depth + 1);
    }
    return;
  }
  refuse(`expected plain data (strings, numbers, booleans, lists, objects), got a ${typeof value}`);
}

function embeddedLogger(config: MemberConfig): NodeLogger {
  return createLogger({ name: config.name, level: config.logLevel, pretty: config.logFormat === 'pretty' });
}

async function startEmbedded(config: MemberConfig, options: EmbeddedOptions): Promise<EmbeddedMember> {
  assert(config.role === 'locator' || config.role === 'server', `startEmbedded: a ${config.role} is not a locator or server`);
  const { signal } = options;
  const aborted = (): StraitError => new StraitError('STRAIT_ABORTED', { operation: `the start of ${config.role} ${config.name}` });
  if (signal?.aborted === true) throw aborted();
  const storageDirectory = options.dir === undefined ? undefined : join(options.dir, DATA_DIRECTORY_NAME);
  const member = await composeMember(config, { storageDirectory, logger: embeddedLogger(config), signal });
  let settle: (error: StraitError | undefined) => void = () => {};
  const stopped = new Promise<StraitError | undefined>((resolve) => {
    settle = resolve;
  });
  member.onFatal((error) => {
    void member.close().then(() => settle(error));
  });
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= new Promise<void>((resolve) => {
      // A leave that can't complete (the coordinator is gone mid-leave) must not hold the application.
      const forced = setTimeout(() => void member.close().then(resolve), SHUTDOWN_TIMEOUT_MS);
      void member.stop().then(() => {
        clearTimeout(forced);
        resolve();
      });
    }).then(() => settle(undefined));
    return stopping;
  };
  // A server retries its locators until it joins: the signal is how the application gives up.
  const ready = await new Promise<ReadyMember>((resolve, reject) => {
    let abandoned = false;
    const abandon = (): void => {
      abandoned = true;
      void stop().then(() => reject(aborted()));
    };
    signal?.addEventListener('abort', abandon, { once: true });
    member.start().then((result) => {
      signal?.removeEventListener('abort', abandon);
      if (!abandoned) resolve(result);
    }, (error: unknown) => {
      signal?.removeEventListener('abort', abandon);
      if (!abandoned) reject(error);
    });
  });
  return {
    role: config.role,
    name: config.name,
    site: ready.site,
    address: ready.address,
    httpAddress: member.httpAddress,
    stop,
    stopped,
  };
}
