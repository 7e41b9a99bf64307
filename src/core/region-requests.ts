// The handlers of the client-facing region operations a server serves: get, put, putAll,
// remove, keys (paged), size, subscribe, unsubscribe, listRegions and createRegion. Each checks
// what the request may ask (the server is ready, values within the limit), then hands the work
// to the part that owns it: the write path, the key pager, subscriptions, region creation.

import { StraitError } from '../errors.ts';
import type { HandlerTable } from './handlers.ts';
import { KEY_PAGE_KEYS_MAX, type KeyPager } from './key-pager.ts';
import type { RegionCreation } from './region-creation.ts';
import type { RegionTable } from './region-table.ts';
import type { Subscriptions } from './subscriptions.ts';
import type { WritePath } from './write-path.ts';

export interface RegionRequestParts {
  readonly memberName: string;
  /** The largest value a put may carry. */
  readonly valueBytesMax: number;
  /** Throws STRAIT_NOT_READY unless the server serves. */
  requireReady(): void;
  readonly regions: RegionTable;
  readonly writes: WritePath;
  readonly pager: KeyPager;
  readonly subscriptions: Subscriptions;
  readonly creation: RegionCreation;
}

export function regionRequestHandlers(parts: RegionRequestParts): HandlerTable {
  const { regions, writes, pager, subscriptions, creation } = parts;
  const checkValue = (value: Uint8Array): void => {
    if (value.length > parts.valueBytesMax) throw new StraitError('STRAIT_VALUE_TOO_LARGE', { size: value.length, limit: parts.valueBytesMax });
  };
  return {
    get: (_connection, body, reply) => {
      parts.requireReady();
      reply.ok({ value: regions.require(body.region).get(body.key) ?? null });
    },
    put: (_connection, body, reply) => {
      parts.requireReady();
      checkValue(body.value);
      writes.write(regions.require(body.region), [[body.key, body.value]], body.requestId, (error) => (error === undefined ? reply.ok({}) : reply.fail(error)));
    },
    putAll: (_connection, body, reply) => {
      parts.requireReady();
      for (const [, value] of body.entries) checkValue(value);
      writes.write(regions.require(body.region), body.entries, body.requestId, (error) => (error === undefined ? reply.ok({}) : reply.fail(error)));
    },
    remove: (_connection, body, reply) => {
      parts.requireReady();
      writes.write(regions.require(body.region), [[body.key, null]], body.requestId, (error, existed) => (error === undefined ? reply.ok({ existed }) : reply.fail(error)));
    },
    keys: (connection, body, reply) => {
      parts.requireReady();
      const region = regions.require(body.region);
      const page = pager.page(connection.number, 'keys', body.region, () => region.keys(), body.after ?? null, body.limit ?? KEY_PAGE_KEYS_MAX);
      reply.ok({ keys: page.keys, next: page.done ? null : page.keys.at(-1) ?? null });
    },
    size: (_connection, body, reply) => {
      parts.requireReady();
      reply.ok({ size: regions.require(body.region).size });
    },
    subscribe: (connection, body, reply) => {
      regions.require(body.region);
      reply.ok({ subscription: subscriptions.subscribe(connection, body.region) });
    },
    unsubscribe: (connection, body, reply) => {
      subscriptions.unsubscribe(connection, body.subscription);
      reply.ok({});
    },
    listRegions: (_connection, _body, reply) => reply.ok({
      regions: regions.statuses().map((status) => {
        const hosts = regions.expectedHostsOf(status.spec.name);
        return { ...status, ...(hosts.length > 0 ? { hosts } : {}), ...(regions.isConfigured(status.spec.name) ? { fromConfig: true } : {}) };
      }),
    }),
    createRegion: (connection, body, reply) => {
      // Between servers it is one host's part of a creation; from a client, the whole of it.
      if (connection.peer?.role === 'server') {
        reply.ok(creation.createHere(body.spec, body.hosts ?? []));
        return;
      }
      creation.createEverywhere(body.spec, (error, result) => (error !== undefined || result === undefined ? reply.fail(error!) : reply.ok(result)));
    },
  };
}
