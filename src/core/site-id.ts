// A server started without `site-id` takes its site's from a locator: the site a locator states
// in its handshake. The locators are tried in turn, with jittered backoff, until one answers or
// the server stops; a warning names them (and the last failure) after each full round.

import { StraitError } from '../errors.ts';
import { Connection, type ConnectionOptions } from '../protocol/connection.ts';
import type { Address, Logger, Runtime } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { Backoff } from './backoff.ts';

export interface SiteIdSearch {
  readonly memberName: string;
  readonly locators: readonly Address[];
  readonly options: ConnectionOptions;
  /** True once the server stopped: the search ends without calling back. */
  stopped(): boolean;
}

/** Calls back with the site id, or STRAIT_NO_LOCATOR when a locator answers without one. */
export function learnSiteId(runtime: Runtime, search: SiteIdSearch, log: Logger, done: (site: number | StraitError) => void): void {
  const backoff = new Backoff(runtime.random, { initialDelayMs: 100, maximumDelayMs: 2000 });
  const names = search.locators.map(formatAddress).join(', ');
  let found = false;
  const ask = (attempt: number): void => {
    if (search.stopped()) return;
    const locator = search.locators[attempt % search.locators.length]!;
    Connection.open(runtime, locator, search.options, {
      onOpen: (opened) => {
        found = true;
        const site = opened.peer?.site ?? null;
        opened.close();
        if (site === null || site === 0) done(new StraitError('STRAIT_NO_LOCATOR', { locators: formatAddress(locator), reason: 'the locator did not state its site' }));
        else done(site);
      },
      onRequest: (_connection, _request, reply) => reply.fail(new StraitError('STRAIT_NOT_READY', { member: search.memberName, state: 'learning its site id' })),
      onPush: () => {},
      onClose: (_closed, error) => {
        if (found || search.stopped()) return;
        if (attempt > 0 && attempt % search.locators.length === 0) {
          log.warn({ locators: search.locators.map(formatAddress), reason: error?.message }, `server ${search.memberName}: no locator answered at ${names} (${error?.message ?? 'closed'}); retrying`);
        }
        runtime.setTimer(backoff.nextDelayMs(), () => ask(attempt + 1));
      },
    });
  };
  ask(0);
}
