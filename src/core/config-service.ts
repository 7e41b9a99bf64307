// The site configuration service every locator runs (Geode's cluster configuration service):
// the site's regions, gateway senders, gateway receiver and remote-locators, held durably and
// agreed on by the locators, and run by every server.
//
// A change goes to the coordinator (any locator forwards it), which runs one change at a time:
//   1. quorum: a majority of the site's known locators must be in the view, so two sides of a
//      locator partition can't both change the configuration;
//   2. catch up: it asks every other locator of the view for its configuration and adopts the
//      newest (a majority answered, so it sees every change the site ever agreed on);
//   3. the new configuration, numbered version + 1, is stored on every locator of the view;
//   4. every server of the view applies it; if one refuses (a port in use, a conflict with its
//      strait.yaml, a sender that did not drain), the previous contents are stored and applied
//      again under the next version and the change fails, naming the member and the reason.
// `destroy gateway-sender` first waits for every copy of the queue to drain. Servers report
// the version they run in heartbeats; one that missed a change gets it from the coordinator.
//
// A state machine: callbacks run to completion; time and I/O come through the Runtime.

import { StraitError } from '../errors.ts';
import { Connection, type ConnectionOptions, type Reply } from '../protocol/connection.ts';
import type { ConfigChange, ConfigChangeResult, RequestBody, RequestOp, ResponseBody, SiteConfig, View, ViewMember } from '../protocol/messages.ts';
import { parseResponseBody } from '../protocol/validate.ts';
import type { Address, Logger, Runtime, Store } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import type { PeerPool } from './peer-pool.ts';
import { applyChange, describeChange, EMPTY_SITE_CONFIG, SENDER_DRAIN_TIMEOUT_MS_DEFAULT } from './site-config.ts';
import { findMember, locatorsOf, serversOf } from './views.ts';

/** The key of the configuration in the locator's `site-config` store. */
const STORE_KEY = 'config';
/** Changes waiting behind the one running, at most. */
export const CONFIG_CHANGES_WAITING_MAX = 100;
/** Delay before asking a member again after a transport failure. */
const RETRY_MS = 200;
/** How often `destroy gateway-sender` looks at the queues it waits for. */
const DRAIN_POLL_MS = 250;
/**
 * How long a forwarded change may take, at most: a sender's drain (at most 10 min) and the
 * servers' applies. The member pool's request timeout is far shorter.
 */
export const CONFIG_CHANGE_TIMEOUT_MS = 15 * 60 * 1000;

export interface ConfigServiceHost {
  readonly name: string;
  readonly site: number;
  /** How many distinct locators the site is configured with, this one included: the quorum's base. */
  readonly knownLocators: number;
  memberId(): string | undefined;
  view(): View | null;
  isCoordinator(): boolean;
  /** The configuration in effect changed (a locator runs its remote-locators). */
  changed(config: SiteConfig): void;
}

interface Waiting {
  readonly change: ConfigChange;
  readonly reply: Reply<'configChange'>;
}

/** Errors that say the member could not be asked, not that it refused: ask again while it is in the view. */
function transient(error: StraitError): boolean {
  return error.code === 'STRAIT_CONNECTION_CLOSED' || error.code === 'STRAIT_TIMEOUT' || error.code === 'STRAIT_NOT_READY'
    || error.code === 'STRAIT_TOO_MANY_IN_FLIGHT' || error.code === 'STRAIT_NO_LOCATOR';
}

export class ConfigService {
  private readonly runtime: Runtime;
  private readonly pool: PeerPool;
  private readonly store: Store;
  private readonly host: ConfigServiceHost;
  private readonly log: Logger;
  private readonly options: ConnectionOptions;
  private config: SiteConfig;
  private readonly waiting: Waiting[] = [];
  private running = false;
  /** Servers the coordinator is bringing up to date after a heartbeat showed them behind. */
  private readonly catchingUp = new Set<string>();

  constructor(runtime: Runtime, pool: PeerPool, options: ConnectionOptions, store: Store, host: ConfigServiceHost, log: Logger) {
    this.runtime = runtime;
    this.options = options;
    this.pool = pool;
    this.store = store;
    this.host = host;
    this.log = log;
    this.config = EMPTY_SITE_CONFIG;
  }

  /** Reads the stored configuration (at start); STRAIT_STORAGE when it can't be read back. */
  load(): StraitError | undefined {
    const stored = this.store.get(STORE_KEY);
    if (stored === undefined) return undefined;
    try {
      this.config = parseResponseBody('siteConfig', { config: JSON.parse(new TextDecoder().decode(stored)) }, 'the site-config store').config;
    } catch (error) {
      return new StraitError('STRAIT_STORAGE', { path: 'site-config', reason: `the stored site configuration is unreadable: ${error instanceof Error ? error.message : String(error)}` }, { cause: error });
    }
    this.log.info({ version: this.config.version }, `locator ${this.host.name}: site configuration version ${this.config.version} recovered from disk (${this.config.regions.length} regions, ${this.config.senders.length} gateway senders, ${this.config.receiver === null ? 'no' : 'a'} gateway receiver)`);
    this.host.changed(this.config);
    return undefined;
  }

  get current(): SiteConfig {
    return this.config;
  }

  onGet(): ResponseBody<'siteConfig'> {
    return { config: this.config };
  }

  /** Another locator (the coordinator) stores a newer configuration here. */
  onCommit(body: RequestBody<'configCommit'>, reply: Reply<'configCommit'>): void {
    if (body.config.version <= this.config.version) {
      reply.ok({ version: this.config.version });
      return;
    }
    this.adopt(body.config, (error) => (error === undefined ? reply.ok({ version: body.config.version }) : reply.fail(error)));
  }

  /** A change from the admin API, the CLI or another locator. */
  onChange(body: RequestBody<'configChange'>, reply: Reply<'configChange'>): void {
    const view = this.host.view();
    if (view === null) throw new StraitError('STRAIT_NOT_READY', { member: this.host.name, state: 'no view installed' });
    if (!this.host.isCoordinator()) {
      const coordinator = findMember(view, view.coordinator);
      if (coordinator === undefined) throw new StraitError('STRAIT_NOT_READY', { member: this.host.name, state: 'no coordinator' });
      forwardChange(this.runtime, coordinator.info.address, this.options, body, (error, response) => {
        if (error !== undefined || response === undefined) reply.fail(error ?? new StraitError('STRAIT_INTERNAL', { reason: 'empty configChange response' }));
        else reply.ok(response);
      });
      return;
    }
    if (this.waiting.length >= CONFIG_CHANGES_WAITING_MAX) {
      throw new StraitError('STRAIT_CONFIG_BUSY', { locator: this.host.name, limit: CONFIG_CHANGES_WAITING_MAX });
    }
    this.waiting.push({ change: body.change, reply });
    this.next();
  }

  /**
   * Coordinator: a member's heartbeat said which configuration version it runs; a server
   * behind gets the current one (it missed an apply while it was unreachable).
   */
  heard(member: ViewMember, configVersion: number | undefined): void {
    if (!this.host.isCoordinator() || this.running || member.info.role !== 'server' || configVersion === undefined) return;
    if (configVersion >= this.config.version || this.catchingUp.has(member.info.id)) return;
    this.catchingUp.add(member.info.id);
    const config = this.config;
    this.pool.get(member.info.address).request('configApply', { config }, (error) => {
      this.catchingUp.delete(member.info.id);
      if (error !== undefined) this.log.warn({ member: member.info.name, code: error.code }, `locator ${this.host.name}: ${member.info.name} runs configuration version ${configVersion}, not ${config.version}, and could not apply it: ${error.message}; trying again at its next heartbeat`);
    });
  }

  // ---- Running changes, one at a time ----

  private next(): void {
    if (this.running) return;
    const item = this.waiting.shift();
    if (item === undefined) return;
    this.running = true;
    const done = (error: StraitError | undefined, result?: ConfigChangeResult) => {
      this.running = false;
      if (error !== undefined) item.reply.fail(error);
      else if (result !== undefined) item.reply.ok(result);
      this.next();
    };
    try {
      this.requireQuorum();
    } catch (error) {
      done(error as StraitError);
      return;
    }
    this.catchUp((error) => {
      if (error !== undefined) {
        done(error);
        return;
      }
      let planned: { config: SiteConfig; changed: boolean };
      try {
        planned = applyChange(this.config, item.change, this.host.site);
      } catch (refusal) {
        if (refusal instanceof StraitError) {
          done(refusal);
          return;
        }
        throw refusal;
      }
      if (!planned.changed) {
        done(undefined, { version: this.config.version, changed: false, members: [] });
        return;
      }
      const then = (drainError: StraitError | undefined) => {
        if (drainError !== undefined) {
          done(drainError);
          return;
        }
        this.publish(planned.config, item.change, done);
      };
      if (item.change.kind === 'destroySender') this.awaitDrained(item.change.id, item.change.drainTimeoutMs ?? SENDER_DRAIN_TIMEOUT_MS_DEFAULT, then);
      else then(undefined);
    });
  }

  private requireQuorum(): void {
    const present = locatorsOf(this.host.view()).length;
    const known = Math.max(this.host.knownLocators, present);
    const needed = Math.floor(known / 2) + 1;
    if (present < needed) throw new StraitError('STRAIT_CONFIG_NO_QUORUM', { locator: this.host.name, present, known, needed });
  }

  /** Adopts the newest configuration any locator of the view holds; fails without answers from a majority. */
  private catchUp(done: (error: StraitError | undefined) => void): void {
    const me = this.host.memberId();
    const others = locatorsOf(this.host.view()).filter((locator) => locator.info.id !== me);
    const known = Math.max(this.host.knownLocators, others.length + 1);
    const needed = Math.floor(known / 2) + 1;
    let answered = 1;
    let pending = others.length;
    let newest: SiteConfig | undefined;
    const finish = () => {
      if (answered < needed) {
        done(new StraitError('STRAIT_CONFIG_NO_QUORUM', { locator: this.host.name, present: answered, known, needed }));
        return;
      }
      if (newest !== undefined && newest.version > this.config.version) {
        this.log.info({ version: newest.version }, `locator ${this.host.name}: another locator holds site configuration version ${newest.version}, newer than ours (${this.config.version}); adopting it`);
        this.adopt(newest, done);
        return;
      }
      done(undefined);
    };
    if (pending === 0) {
      finish();
      return;
    }
    for (const locator of others) {
      this.pool.get(locator.info.address).request('siteConfig', {}, (error, response) => {
        pending -= 1;
        if (error === undefined && response !== undefined) {
          answered += 1;
          if (newest === undefined || response.config.version > newest.version) newest = response.config;
        }
        if (pending === 0) finish();
      });
    }
  }

  /** Waits until no server of the view holds events in its copy of sender `id`'s queue. */
  private awaitDrained(id: string, timeoutMs: number, done: (error: StraitError | undefined) => void): void {
    const deadline = this.runtime.clock.monotonic() + timeoutMs;
    const look = () => {
      const hosts = serversOf(this.host.view()).filter((member) => (member.info.senders ?? []).some((sender) => sender.id === id));
      let pending = hosts.length;
      let holding: { member: string; events: number } | undefined;
      if (pending === 0) {
        done(undefined);
        return;
      }
      for (const member of hosts) {
        this.pool.get(member.info.address).request('senderStatus', { id }, (error, response) => {
          pending -= 1;
          const events = error !== undefined || response === undefined ? Number.POSITIVE_INFINITY : response.senders.reduce((sum, sender) => sum + sender.queueEvents, 0);
          // A member that can't answer may still hold events: it counts as not drained.
          if (events > 0 && error?.code !== 'STRAIT_SENDER_NOT_FOUND') holding ??= { member: member.info.name, events };
          if (pending > 0) return;
          if (holding === undefined) {
            done(undefined);
            return;
          }
          if (this.runtime.clock.monotonic() >= deadline) {
            const remote = this.config.senders.find((sender) => sender.id === id)?.remoteSiteId ?? 0;
            done(new StraitError('STRAIT_SENDER_NOT_DRAINED', { sender: id, member: holding.member, events: Number.isFinite(holding.events) ? holding.events : 'an unknown number of', timeoutMs, site: remote }));
            return;
          }
          this.runtime.setTimer(DRAIN_POLL_MS, look);
        });
      }
    };
    look();
  }

  /**
   * Stores `contents` as the next version on every locator, then has every server apply it.
   * A server's refusal rolls the contents back (as the version after) and fails the change.
   */
  private publish(contents: SiteConfig, change: ConfigChange, done: (error: StraitError | undefined, result?: ConfigChangeResult) => void): void {
    const previous = this.config;
    const config: SiteConfig = { ...contents, version: previous.version + 1 };
    this.commit(config, (commitError) => {
      if (commitError !== undefined) {
        done(commitError);
        return;
      }
      this.applyEverywhere(config, (refusals, members) => {
        if (refusals.length === 0) {
          this.log.info({ version: config.version, change: describeChange(change) }, `locator ${this.host.name}: site ${this.host.site} configuration version ${config.version}: ${describeChange(change)}, applied on ${members.length} servers`);
          done(undefined, { version: config.version, changed: true, members });
          return;
        }
        const first = refusals[0]!;
        this.log.warn({ member: first.member, code: first.error.code, change: describeChange(change) }, `locator ${this.host.name}: ${first.member} refused ${describeChange(change)}: ${first.error.message}; rolling the site configuration back`);
        const rollback: SiteConfig = { ...previous, version: config.version + 1 };
        this.commit(rollback, (rollbackError) => {
          if (rollbackError !== undefined) this.log.error({ code: rollbackError.code }, `locator ${this.host.name}: could not store the rolled-back configuration: ${rollbackError.message}`);
          this.applyEverywhere(rollback, (again) => {
            for (const refusal of again) this.log.error({ member: refusal.member, code: refusal.error.code }, `locator ${this.host.name}: ${refusal.member} could not apply the rolled-back configuration version ${rollback.version}: ${refusal.error.message}`);
            done(new StraitError('STRAIT_CONFIG_APPLY_FAILED', { member: first.member, change: describeChange(change), reason: first.error.message, site: this.host.site }, { cause: first.error }));
          });
        });
      });
    });
  }

  /** Stores `config` here, then on every other locator of the view (each until it answers or leaves the view). */
  private commit(config: SiteConfig, done: (error: StraitError | undefined) => void): void {
    this.adopt(config, (error) => {
      if (error !== undefined) {
        done(error);
        return;
      }
      const me = this.host.memberId();
      const others = locatorsOf(this.host.view()).filter((locator) => locator.info.id !== me);
      let pending = others.length;
      let failure: StraitError | undefined;
      if (pending === 0) {
        done(undefined);
        return;
      }
      for (const locator of others) {
        this.untilAnswered(locator, 'configCommit', { config }, (commitError) => {
          pending -= 1;
          failure ??= commitError;
          if (pending === 0) done(failure);
        });
      }
    });
  }

  private applyEverywhere(config: SiteConfig, done: (refusals: { member: string; error: StraitError }[], members: { member: string; version: number }[]) => void): void {
    const servers = serversOf(this.host.view());
    const refusals: { member: string; error: StraitError }[] = [];
    const members: { member: string; version: number }[] = [];
    let pending = servers.length;
    if (pending === 0) {
      done(refusals, members);
      return;
    }
    for (const server of servers) {
      this.untilAnswered(server, 'configApply', { config }, (error, response) => {
        pending -= 1;
        if (error !== undefined) refusals.push({ member: server.info.name, error });
        else if (response !== undefined) members.push({ member: server.info.name, version: response.version });
        if (pending === 0) done(refusals, members);
      });
    }
  }

  /**
   * Sends a request to a member of the view, again after transport failures, until it answers
   * or leaves the view (then it counts as done: it will catch up when it comes back).
   */
  private untilAnswered<Op extends 'configCommit' | 'configApply'>(
    member: ViewMember, op: Op, body: RequestBody<Op>, done: (error: StraitError | undefined, response: ResponseBody<Op> | undefined) => void,
  ): void {
    const attempt = () => {
      this.pool.get(member.info.address).request(op as RequestOp, body as RequestBody<RequestOp>, (error, response) => {
        if (error === undefined) {
          done(undefined, response as ResponseBody<Op>);
          return;
        }
        const wire = error;
        if (!transient(wire)) {
          done(wire, undefined);
          return;
        }
        if (findMember(this.host.view(), member.info.id) === undefined) {
          done(undefined, undefined);
          return;
        }
        this.log.debug({ member: member.info.name, address: formatAddress(member.info.address), code: wire.code }, `locator ${this.host.name}: ${op} to ${member.info.name} failed (${wire.message}); asking again`);
        this.runtime.setTimer(RETRY_MS, attempt);
      });
    };
    attempt();
  }

  /** Stores `config` durably here and makes it current. */
  private adopt(config: SiteConfig, done: (error: StraitError | undefined) => void): void {
    try {
      this.store.put(STORE_KEY, new TextEncoder().encode(JSON.stringify(config)));
    } catch (error) {
      done(error instanceof StraitError ? error : new StraitError('STRAIT_STORAGE', { path: 'site-config', reason: String(error) }, { cause: error }));
      return;
    }
    this.store.sync((error) => {
      if (error !== undefined) {
        done(new StraitError('STRAIT_STORAGE', { path: 'site-config', reason: error.message }, { cause: error }));
        return;
      }
      this.config = config;
      this.host.changed(config);
      done(undefined);
    });
  }
}

/**
 * Sends a configuration change to the locator at `address` on a connection of its own: the
 * change may take longer (a sender's drain) than a member pool's requests may.
 */
export function forwardChange(
  runtime: Runtime, address: Address, options: ConnectionOptions, body: RequestBody<'configChange'>,
  callback: (error: StraitError | undefined, response: ConfigChangeResult | undefined) => void,
): void {
  const connection = Connection.open(runtime, address, { ...options, requestTimeoutMs: CONFIG_CHANGE_TIMEOUT_MS }, {
    onOpen: () => {},
    onRequest: (_connection, _request, refuse) => refuse.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: formatAddress(address), reason: 'a request on a forwarded configuration change' })),
    onPush: () => {},
    onClose: () => {},
  });
  connection.request('configChange', body, (error, response) => {
    connection.close();
    callback(error, response);
  });
}

/** The addresses of `remote-locators` in strait.yaml and the site configuration, without repeats. */
export function mergedRemoteLocators(declared: readonly Address[], config: SiteConfig): Address[] {
  const seen = new Set<string>();
  return [...declared, ...config.remoteLocators].filter((address) => {
    const key = formatAddress(address);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
