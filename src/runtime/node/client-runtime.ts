// The runtime a client library instance uses inside an application: the Node network, no
// storage of its own, silent logs, and timers that don't keep the application's process alive
// (request timeouts and retries only matter while something awaits them).

import type { Runtime, Timer } from '../runtime.ts';
import { SILENT_LOGGER } from '../runtime.ts';
import { createNodeRuntime } from './node-runtime.ts';

export function createClientRuntime(): { runtime: Runtime; close: () => void } {
  const base = createNodeRuntime({ logger: SILENT_LOGGER });
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
    close: () => {
      if (closed) return;
      closed = true;
      base.close(() => {});
    },
  };
}
