// The runtime a client library instance uses inside an application: the Node network, no
// storage of its own, silent logs, and a process lifetime that follows the application's
// awaits. Timers and connections are unref'd, so an idle client (connected, nothing pending)
// never keeps the application's process running; the client holds `keepAlive` while an
// operation is pending — connecting, a request, the failover sleeps between its attempts, a
// consumer awaiting the next subscription event — so the process can't exit under an await
// (Node exits with 13, "unsettled top-level await", when nothing ref'd is left).

import type { KeepAlive, Runtime, Timer } from '../runtime.ts';
import { SILENT_LOGGER } from '../runtime.ts';
import { createNodeRuntime } from './node-runtime.ts';

/**
 * The period of the ref'd timer that holds the process while the client has work pending. It
 * never needs to fire: it exists to be ref'd; a long period keeps the cost at nothing.
 */
const KEEP_ALIVE_INTERVAL_MS = 3_600_000;

export interface ClientRuntime {
  readonly runtime: Runtime;
  /** Held by the client while an operation is pending; see the file comment. */
  readonly keepAlive: KeepAlive;
  /** Closes the connections; pending operations fail. Idempotent. */
  close(): void;
}

/** A reference count over one ref'd timer: alive while any hold is outstanding. */
function createKeepAlive(): KeepAlive {
  let holds = 0;
  let handle: NodeJS.Timeout | undefined;
  return {
    hold(): () => void {
      holds += 1;
      handle ??= setInterval(() => {}, KEEP_ALIVE_INTERVAL_MS);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        holds -= 1;
        if (holds === 0 && handle !== undefined) {
          clearInterval(handle);
          handle = undefined;
        }
      };
    },
  };
}

export function createClientRuntime(): ClientRuntime {
  const base = createNodeRuntime({ logger: SILENT_LOGGER, unrefConnections: true });
  const runtime: Runtime = {
    clock: base.clock,
    random: base.random,
    network: base.network,
    storage: base.storage,
    compression: base.compression,
    log: base.log,
    defer: (callback) => process.nextTick(callback),
    setTimer(delayMs: number, callback: () => void): Timer {
      const handle = setTimeout(callback, Math.max(0, delayMs));
      handle.unref();
      return { cancel: () => clearTimeout(handle) };
    },
  };
  let closed = false;
  return {
    runtime,
    keepAlive: createKeepAlive(),
    close: () => {
      if (closed) return;
      closed = true;
      base.close(() => {});
    },
  };
}
