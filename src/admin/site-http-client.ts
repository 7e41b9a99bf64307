// A site as the controller reaches it (SiteApi), over the admin HTTP API of one of its locators:
// GET /view and /config to learn who it is, POST /config/changes to change it, GET
// /site/gateways for its senders. Every request has a deadline; a coded error from the site is
// passed on as it is, anything else (refused, timed out, not JSON) is STRAIT_SITE_UNREACHABLE.

import { StraitError, errorFromWire, isErrorCode } from '../errors.ts';
import type { ConfigChangeResult, SenderStatus, SiteConfig, View } from '../protocol/messages.ts';
import type { SiteApi } from '../controller/apply.ts';
import type { SiteFacts } from '../controller/plan.ts';
import type { TopologySite } from '../controller/topology.ts';

/** A read (view, configuration, senders) that takes longer than this is a site not answering. */
export const SITE_READ_TIMEOUT_MS = 10_000;
/** A change answers once every server runs it (a sender's drain: up to 10 min): as long as a locator forwards one. */
export const SITE_CHANGE_TIMEOUT_MS = 15 * 60 * 1000;
/** Largest answer read from a site. */
const SITE_ANSWER_BYTES_MAX = 16 * 1024 * 1024;

async function call<T>(site: TopologySite, method: 'GET' | 'POST', path: string, body: unknown, timeoutMs: number): Promise<T> {
  const url = new URL(path, site.admin.endsWith('/') ? site.admin : `${site.admin}/`);
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(site.token !== undefined ? { authorization: `Bearer ${site.token}` } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = error instanceof Error && error.name === 'TimeoutError'
      ? `no answer within ${timeoutMs} ms`
      : `${(error as Error).message}${cause?.code !== undefined ? ` (${cause.code})` : cause?.message !== undefined ? ` (${cause.message})` : ''}`;
    throw new StraitError('STRAIT_SITE_UNREACHABLE', { site: url.host, admin: site.admin, reason: `${method} ${url.pathname}: ${reason}` }, { cause: error });
  }
  const text = await response.text();
  if (text.length > SITE_ANSWER_BYTES_MAX) throw new StraitError('STRAIT_SITE_UNREACHABLE', { site: url.host, admin: site.admin, reason: `${method} ${url.pathname}: an answer larger than ${SITE_ANSWER_BYTES_MAX} bytes` });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new StraitError('STRAIT_SITE_UNREACHABLE', { site: url.host, admin: site.admin, reason: `${method} ${url.pathname}: HTTP ${response.status}, not JSON (is this a Strait locator's admin API?)` });
  }
  if (!response.ok) {
    const wire = parsed as { code?: unknown; message?: unknown; retryable?: unknown };
    if (typeof wire.code === 'string' && isErrorCode(wire.code)) {
      return Promise.reject(errorFromWire({ code: wire.code, message: String(wire.message ?? ''), retryable: wire.retryable === true }));
    }
    throw new StraitError('STRAIT_SITE_UNREACHABLE', { site: url.host, admin: site.admin, reason: `${method} ${url.pathname}: HTTP ${response.status}` });
  }
  return parsed as T;
}

function settle<T>(promise: Promise<T>, callback: (error: StraitError | undefined, value: T | undefined) => void): void {
  promise.then((value) => callback(undefined, value), (error: unknown) => {
    callback(error instanceof StraitError ? error : new StraitError('STRAIT_INTERNAL', { reason: String(error) }, { cause: error }), undefined);
  });
}

export function siteHttpClient(site: TopologySite): SiteApi {
  return {
    describe(callback) {
      settle((async (): Promise<SiteFacts> => {
        const [view, config] = await Promise.all([
          call<View>(site, 'GET', 'view', undefined, SITE_READ_TIMEOUT_MS),
          call<SiteConfig>(site, 'GET', 'config', undefined, SITE_READ_TIMEOUT_MS),
        ]);
        return {
          site: view.site,
          locators: view.members.filter((member) => member.info.role === 'locator').map((member) => member.info.address),
          members: view.members.map((member) => ({ name: member.info.name, role: member.info.role, ready: member.ready })),
          servers: view.members.filter((member) => member.info.role === 'server').length,
          receivers: view.members.flatMap((member) => (member.info.receiver !== undefined && member.ready ? [member.info.receiver] : [])),
          config,
        };
      })(), callback);
    },
    change(change, callback) {
      settle(call<ConfigChangeResult>(site, 'POST', 'config/changes', { change }, SITE_CHANGE_TIMEOUT_MS), callback);
    },
    senders(callback) {
      settle(call<{ senders: SenderStatus[] }>(site, 'GET', 'site/gateways', undefined, SITE_READ_TIMEOUT_MS).then((answer) => answer.senders), callback);
    },
  };
}
