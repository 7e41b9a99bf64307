// The Runtime for real processes: wall and monotonic clocks, an entropy-seeded random source,
// Node timers, TCP or TLS (node-network.ts), LMDB (or memory) storage and a pino logger.

import { assert } from '../../errors.ts';
import type { Clock, Logger, Random, Runtime, Storage, Timer } from '../runtime.ts';
import { MemoryStorage } from '../memory-storage.ts';
import { LmdbStorage } from './lmdb-storage.ts';
import { ZSTD } from './node-compression.ts';
import { NodeNetwork } from './node-network.ts';
import { createSeededRandom } from './random.ts';
import type { TlsContext } from './tls-credentials.ts';

export { StreamError } from './node-network.ts';
export { ZSTD } from './node-compression.ts';

/** Wall-clock and monotonic time, as every real process reads them. */
export const NODE_CLOCK: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
};

export interface NodeRuntimeOptions {
  /** Directory of the LMDB environment; in-memory storage (lost on exit) when absent. */
  readonly storageDirectory?: string;
  readonly logger: Logger;
  /**
   * Outgoing connections don't keep the process alive (Node's `unref`), so a library's idle
   * connection never holds its application open; whoever awaits work on them must keep the
   * process alive another way (a `KeepAlive`). Default false: a member's links are its work.
   */
  readonly unrefConnections?: boolean;
  /** TLS on every listener and connection (node-network.ts); plain TCP when absent. */
  readonly tls?: TlsContext | undefined;
  /** A peer failed the TLS handshake on one of this member's listeners. */
  readonly onTlsRefused?: (remote: string, reason: string) => void;
}

export interface NodeRuntime extends Runtime {
  /**
   * Stops everything this runtime started: closes listeners, destroys open streams (each gets
   * its `onClose`), cancels timers and closes storage. Afterwards timers never fire and
   * `connect` fails at once. Calls back with the first error.
   */
  close(callback: (error: Error | undefined) => void): void;
}

/** Node caps timer delays at 2^31-1 ms and fires longer ones at once; we cap instead. */
const timerDelayMsMax = 2_147_483_647;

class NodeTimer implements Timer {
  readonly #timers: Set<NodeTimer>;
  readonly #handle: NodeJS.Timeout;

  constructor(timers: Set<NodeTimer>, delayMs: number, callback: () => void) {
    this.#timers = timers;
    this.#handle = setTimeout(() => {
      this.#timers.delete(this);
      callback();
    }, Math.min(delayMs, timerDelayMsMax));
    timers.add(this);
  }

  cancel(): void {
    clearTimeout(this.#handle);
    this.#timers.delete(this);
  }
}

const inertTimer: Timer = { cancel() {} };

/** Creates the runtime of one real member process. */
export function createNodeRuntime(options: NodeRuntimeOptions): NodeRuntime {
  const clock = NODE_CLOCK;
  const random: Random = createSeededRandom();
  const storage: Storage =
    options.storageDirectory === undefined ? new MemoryStorage() : new LmdbStorage(options.storageDirectory);
  const network = new NodeNetwork({ log: options.logger, unrefConnections: options.unrefConnections === true, tls: options.tls, onTlsRefused: options.onTlsRefused });
  const timers = new Set<NodeTimer>();
  let closed = false;

  return {
    clock,
    random,
    network,
    storage,
    compression: ZSTD,
    log: options.logger,

    defer(callback: () => void): void {
      if (!closed) process.nextTick(callback);
    },

    setTimer(delayMs: number, callback: () => void): Timer {
      assert(Number.isFinite(delayMs) && delayMs >= 0, `timer delay must be a finite number of ms >= 0, got ${delayMs}`);
      if (closed) return inertTimer;
      return new NodeTimer(timers, delayMs, callback);
    },

    close(callback: (error: Error | undefined) => void): void {
      assert(!closed, 'node runtime closed twice');
      closed = true;
      for (const timer of [...timers]) timer.cancel();
      network.close(() => storage.close(callback));
    },
  };
}
