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
import type { PartitionedRegions } from './partitioned-regions.ts';

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
  /** Partitioned regions: operations go to the primary of the key's bucket. */
  readonly partitions: PartitionedRegions;
}

export function regionRequestHandlers(parts: RegionRequestParts): HandlerTable {
  const { regions, writes, pager, subscriptions, creation, partitions } = parts;
  const checkValue = (value: Uint8Array): void => {
    if (value.length > parts.valueBytesMax) throw new StraitError('STRAIT_VALUE_TOO_LARGE', { size: value.length, limit: parts.valueBytesMax });
  };
  return {
    get: (_connection, body, reply) => {
      parts.requireReady();
      const region = regions.require(body.region);
      if (region.spec.partition !== undefined) partitions.get(region, body, reply);
      else reply.ok({ value: region.get(body.key) ?? null });
    },
    put: (_connection, body, reply) => {
      parts.requireReady();
      checkValue(body.value);
      const region = regions.require(body.region);
      if (region.spec.partition !== undefined) partitions.write('put', region, body, [[body.key, body.value]], reply, () => ({}));
      else writes.write(region, [[body.key, body.value]], body.requestId, (error) => (error === undefined ? reply.ok({}) : reply.fail(error)));
    },
    putAll: (_connection, body, reply) => {
      parts.requireReady();
      for (const [, value] of body.entries) checkValue(value);
      const region = regions.require(body.region);
      if (region.spec.partition !== undefined && body.entries.length > 0) partitions.putAll(region, body, reply);
      else writes.write(region, body.entries, body.requestId, (error) => (error === undefined ? reply.ok({}) : reply.fail(error)));
    },
    putBatch: (_connection, body, reply) => {
      parts.requireReady();
      const region = regions.require(body.region);
      if (region.spec.partition !== undefined) partitions.putBatch(region, body, checkValue, reply);
      else writes.writeBatch(region, body.entries, body.requestId, checkValue, (error, refused) => (error === undefined ? reply.ok({ refused: [...refused] }) : reply.fail(error)));
    },
    getBatch: (_connection, body, reply) => {
      parts.requireReady();
      const region = regions.require(body.region);
      if (region.spec.partition !== undefined) partitions.getBatch(region, body, reply);
      else reply.ok({ values: body.keys.map((key) => region.get(key) ?? null), refused: [] });
    },
    remove: (_connection, body, reply) => {
      parts.requireReady();
      const region = regions.require(body.region);
      if (region.spec.partition !== undefined) partitions.write('remove', region, body, [[body.key, null]], reply, (existed) => ({ existed }));
      else writes.write(region, [[body.key, null]], body.requestId, (error, existed) => (error === undefined ? reply.ok({ existed }) : reply.fail(error)));
    },
    keys: (connection, body, reply) => {
      parts.requireReady();
      const region = regions.require(body.region);
      if (region.spec.partition !== undefined) {
        partitions.keys(connection, region, body, reply, body.limit ?? KEY_PAGE_KEYS_MAX);
        return;
      }
      const page = pager.page(connection.number, 'keys', body.region, () => region.keys(), body.after ?? null, body.limit ?? KEY_PAGE_KEYS_MAX);
      reply.ok({ keys: page.keys, next: page.done ? null : page.keys.at(-1) ?? null });
    },
    size: (_connection, body, reply) => {
      parts.requireReady();
      const region = regions.require(body.region);
      if (region.spec.partition !== undefined) partitions.size(region, reply);
      else reply.ok({ size: region.size });
    },
    bucketAdmit: (_connection, body, reply) => {
      parts.requireReady();
      partitions.onBucketAdmit(regions.require(body.region), body, reply);
    },
    bucketKeys: (_connection, body, reply) => {
      const region = regions.require(body.region);
      reply.ok(partitions.bucketKeys(region, body.buckets, body.countOnly === true));
    },
    subscribe: (connection, body, reply) => {
      // A server sees only the changes of the buckets it is primary or a copy of.
      if (regions.require(body.region).spec.partition !== undefined) {
        throw new StraitError('STRAIT_UNSUPPORTED', { what: `subscriptions to the partitioned region ${body.region}`, reason: 'not available yet for partitioned regions; subscribe to a replicate region' });
      }
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
