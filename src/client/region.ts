// A region as the application sees it: get, put, putAll, remove, keys (page by page), size and
// subscribe. Every call is a request through the client's server link (the gets and puts of one
// turn may share one, see batching.ts), so it fails over and retries like any other; every write
// carries a request id the client keeps across retries, so the servers apply it once.

import type { RequestBody, RequestOp, ResponseBody } from '../protocol/messages.ts';
import type { RequestOptions } from './server-link.ts';
import {
  openSubscription,
  type SubscribeOptions,
  type SubscriptionEvent,
  type SubscriptionOwner,
} from './subscriptions.ts';
import { decodeValue, encodeValue } from './values.ts';

/** What a region needs from its client (a StraitClient): requests, write ids, subscriptions. */
export interface RegionClient extends SubscriptionOwner {
  request<Op extends RequestOp>(op: Op, body: RequestBody<Op>, options?: RequestOptions): Promise<ResponseBody<Op>>;
  /** A get and a put, which the client may coalesce with others of the same turn (batching.ts). */
  getValue(region: string, key: string, options: RequestOptions): Promise<Uint8Array | null>;
  putValue(region: string, key: string, value: Uint8Array, options: RequestOptions): Promise<void>;
  nextRequestId(): string;
}

export class ClientRegion<V = unknown> {
  private readonly client: RegionClient;
  readonly name: string;

  constructor(client: RegionClient, name: string) {
    this.client = client;
    this.name = name;
  }

  get(key: string, options: RequestOptions = {}): Promise<V | undefined> {
    return this.client.getValue(this.name, key, options).then(decodeFound<V>);
  }

  /** Resolves once every server hosting the region has applied the write. */
  put(key: string, value: V, options: RequestOptions = {}): Promise<void> {
    let encoded: Uint8Array;
    try {
      encoded = encodeValue(value);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return this.client.putValue(this.name, key, encoded, options);
  }

  async putAll(entries: Iterable<readonly [string, V]>, options: RequestOptions = {}): Promise<void> {
    const encoded: [string, Uint8Array][] = [];
    for (const [key, value] of entries) encoded.push([key, encodeValue(value)]);
    const body = { region: this.name, entries: encoded, requestId: this.client.nextRequestId() };
    await this.client.request('putAll', body, options);
  }

  /** Resolves true if the key held a value. */
  async remove(key: string, options: RequestOptions = {}): Promise<boolean> {
    const body = { region: this.name, key, requestId: this.client.nextRequestId() };
    return (await this.client.request('remove', body, options)).existed;
  }

  /** Every live key, in sorted order (fetched page by page; each page is bounded). */
  async keys(options: RequestOptions = {}): Promise<string[]> {
    const keys: string[] = [];
    for await (const page of this.keyPages(options)) keys.push(...page);
    return keys;
  }

  /**
   * The live keys page by page, in sorted order. The server snapshots them at the first page:
   * keys written or removed meanwhile don't shift pages (after a failover the next server
   * continues after the last key received).
   */
  async *keyPages(options: RequestOptions & { pageKeys?: number } = {}): AsyncGenerator<string[]> {
    let after: string | null = null;
    const limit = options.pageKeys !== undefined ? { limit: options.pageKeys } : {};
    for (;;) {
      const body = { region: this.name, after, ...limit };
      const page: ResponseBody<'keys'> = await this.client.request('keys', body, options);
      if (page.keys.length > 0) yield page.keys;
      if (page.next === null) return;
      after = page.next;
    }
  }

  async size(options: RequestOptions = {}): Promise<number> {
    return (await this.client.request('size', { region: this.name }, options)).size;
  }

  /**
   * Changes applied to the region from now on, as an async iterator. Ends when the signal
   * aborts or the loop breaks. On server failover the subscription moves to the new server;
   * changes made during the switch may be missed, and a `gap` event marks where. The process
   * stays alive while a consumer
   * awaits the next event (a `for await` loop), not while the subscription is merely open.
   */
  subscribe(options: SubscribeOptions = {}): AsyncIterable<SubscriptionEvent<V>> & { ready: Promise<void> } {
    return openSubscription<V>(this.client, this.name, options);
  }
}

function decodeFound<V>(value: Uint8Array | null): V | undefined {
  return value === null ? undefined : decodeValue<V>(value);
}
