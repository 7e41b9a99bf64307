// Coalescing of a client's puts and gets. The puts (or gets) an application starts on one region
// in one event-loop turn — a pipelining application's, or many concurrent requests' — go to the
// server as one `putBatch` (`getBatch`), answered entry by entry: the server decodes one frame,
// checks and remembers one request id and answers once, instead of once per operation. A lone
// operation goes as a plain `put` / `get`, so one in flight costs what it did.
//
// Order is kept: a batch holds consecutive calls of one operation on one region; any other call
// (another region, a remove, a size, ...) first sends what is batched, so the server sees every
// call in the order the application made it, as with one request each. Each batch is one request
// through the server link: it fails over and is retried whole under its one request id, which
// the servers recognise (src/core/write-path.ts `writeBatch`). An entry the server refused alone
// fails alone with its code; one it refused with a retryable code (a partitioned region's bucket
// moving) is sent again as a put of its own, under the id the server gave it. A partitioned
// region's batch goes in parts, one per primary, each straight to it (single-hop), falling back
// to the server link under the same request id.

import { errorFromWire, type StraitError } from '../errors.ts';
import type { EntryRefusal, RequestBody, RequestOp, ResponseBody } from '../protocol/messages.ts';
import { formatAddress, type Address } from '../runtime/runtime.ts';

/** Operations in one batch, at most (the servers take up to BATCH_ENTRIES_MAX). */
export const CLIENT_BATCH_ENTRIES_MAX = 512;
/**
 * Value bytes in one put batch, at most; a value larger than CLIENT_BATCH_VALUE_BYTES_MAX goes as
 * a put of its own. Both keep a batch far below any frame limit and small enough for the servers
 * to replicate it in one message, with its id (REPLICATION_BATCH_BYTES_MAX).
 */
export const CLIENT_BATCH_BYTES_MAX = 256 * 1024;
export const CLIENT_BATCH_VALUE_BYTES_MAX = 16 * 1024;

/** What the batcher needs from its client: requests through the server link, write ids, a turn's end. */
export interface BatchClient {
  /**
   * Sends a request: straight to the member at `via` (single-hop), or when that gives no answer
   * to rely on (or `via` is undefined) through the server link, with the same request id.
   */
  send<Op extends RequestOp>(op: Op, body: RequestBody<Op>, via?: Address): Promise<ResponseBody<Op>>;
  /** Whether single-hop knows `region`'s primaries (a partitioned region), and each key's. */
  routes(region: string): boolean;
  primaryOf(region: string, key: string): Address | undefined;
  nextRequestId(): string;
  /** Runs `callback` once the current turn's work is done (Runtime.defer). */
  defer(callback: () => void): void;
  /**
   * Keeps the process alive until the returned release is called (KeepAlive.hold): the batcher
   * holds once per batch while operations are batched or sent, not once per operation.
   */
  hold(): () => void;
}

interface Waiting {
  readonly key: string;
  readonly value: Uint8Array | undefined;
  readonly resolve: (value: Uint8Array | null) => void;
  readonly reject: (error: StraitError) => void;
}

interface Run {
  readonly op: 'put' | 'get';
  readonly region: string;
  readonly waiting: Waiting[];
  bytes: number;
  /** Keeps the process alive until the run is sent (each request then holds its own). */
  readonly release: () => void;
}

export class OperationBatcher {
  private readonly client: BatchClient;
  private run: Run | undefined;
  private scheduled = false;
  /** Batches sent, and the operations they carried (tests, status). */
  batches = 0;
  batchedOperations = 0;

  constructor(client: BatchClient) {
    this.client = client;
  }

  /** Resolves once the put is applied (as `put` does); large values go alone, at once. */
  put(region: string, key: string, value: Uint8Array): Promise<void> {
    if (value.length > CLIENT_BATCH_VALUE_BYTES_MAX) {
      this.flush();
      return this.held(this.client.send('put', { region, key, value, requestId: this.client.nextRequestId() })).then(() => undefined);
    }
    return this.add('put', region, key, value).then(() => undefined);
  }

  /** The key's value, null when absent. */
  get(region: string, key: string): Promise<Uint8Array | null> {
    return this.add('get', region, key, undefined);
  }

  /**
   * Sends what is batched now: before any other request, so the server sees the calls in order.
   * A partitioned region's batch is split by primary, each part sent straight to it.
   */
  flush(): void {
    const run = this.run;
    if (run === undefined) return;
    this.run = undefined;
    try {
      for (const { via, waiting } of this.partsOf(run)) {
        if (waiting.length === 1) this.sendOne(run.op, run.region, waiting[0]!, undefined, via);
        else if (run.op === 'put') this.sendPuts(run.region, waiting, via);
        else this.sendGets(run.region, waiting, via);
      }
    } finally {
      run.release();
    }
  }

  /** Keeps the process alive until `request` settles. */
  private held<T>(request: Promise<T>): Promise<T> {
    const release = this.client.hold();
    request.then(release, release);
    return request;
  }

  private partsOf(run: Run): { via: Address | undefined; waiting: Waiting[] }[] {
    if (!this.client.routes(run.region)) return [{ via: undefined, waiting: run.waiting }];
    const parts = new Map<string, { via: Address | undefined; waiting: Waiting[] }>();
    for (const waiting of run.waiting) {
      const via = this.client.primaryOf(run.region, waiting.key);
      const where = via === undefined ? '' : formatAddress(via);
      let part = parts.get(where);
      if (part === undefined) {
        part = { via, waiting: [] };
        parts.set(where, part);
      }
      part.waiting.push(waiting);
    }
    return [...parts.values()];
  }

  private add(op: 'put' | 'get', region: string, key: string, value: Uint8Array | undefined): Promise<Uint8Array | null> {
    const bytes = value?.length ?? 0;
    const current = this.run;
    if (current !== undefined && (current.op !== op || current.region !== region || current.waiting.length >= CLIENT_BATCH_ENTRIES_MAX || current.bytes + bytes > CLIENT_BATCH_BYTES_MAX)) {
      this.flush();
    }
    const run = this.run ??= { op, region, waiting: [], bytes: 0, release: this.client.hold() };
    run.bytes += bytes;
    const promise = new Promise<Uint8Array | null>((resolve, reject) => run.waiting.push({ key, value, resolve, reject }));
    if (!this.scheduled) {
      this.scheduled = true;
      this.client.defer(() => {
        this.scheduled = false;
        this.flush();
      });
    }
    return promise;
  }

  private sendOne(op: 'put' | 'get', region: string, waiting: Waiting, requestId?: string, via?: Address): void {
    const sent = op === 'put'
      ? this.client.send('put', { region, key: waiting.key, value: waiting.value!, requestId: requestId ?? this.client.nextRequestId() }, via).then(() => null)
      : this.client.send('get', { region, key: waiting.key }, via).then((response) => response.value);
    this.held(sent).then(waiting.resolve, waiting.reject);
  }

  private sendPuts(region: string, batch: readonly Waiting[], via: Address | undefined): void {
    const requestId = this.client.nextRequestId();
    const entries = batch.map((waiting): [string, Uint8Array] => [waiting.key, waiting.value!]);
    this.counted(batch);
    this.held(this.client.send('putBatch', { region, entries, requestId }, via)).then((response) => {
      const refused = byIndex(response.refused);
      for (const [index, waiting] of batch.entries()) {
        const refusal = refused.get(index);
        if (refusal === undefined) waiting.resolve(null);
        // The server gave entry i the id `<id>#<i>` in a partitioned region (none for a longer id).
        else if (refusal.retryable) this.sendOne('put', region, waiting, requestId.length <= 120 ? `${requestId}#${index}` : undefined);
        else waiting.reject(errorFromWire(refusal));
      }
    }, (error: StraitError) => {
      for (const waiting of batch) waiting.reject(error);
    });
  }

  private sendGets(region: string, batch: readonly Waiting[], via: Address | undefined): void {
    this.counted(batch);
    this.held(this.client.send('getBatch', { region, keys: batch.map((waiting) => waiting.key) }, via)).then((response) => {
      const refused = byIndex(response.refused);
      for (const [index, waiting] of batch.entries()) {
        const refusal = refused.get(index);
        if (refusal === undefined) waiting.resolve(response.values[index] ?? null);
        else if (refusal.retryable) this.sendOne('get', region, waiting);
        else waiting.reject(errorFromWire(refusal));
      }
    }, (error: StraitError) => {
      for (const waiting of batch) waiting.reject(error);
    });
  }

  private counted(batch: readonly Waiting[]): void {
    this.batches += 1;
    this.batchedOperations += batch.length;
  }
}

function byIndex(refused: readonly EntryRefusal[]): ReadonlyMap<number, EntryRefusal> {
  return refused.length === 0 ? EMPTY : new Map(refused.map((refusal) => [refusal.index, refusal]));
}

const EMPTY: ReadonlyMap<number, EntryRefusal> = new Map();
