// The runtime a client library instance uses inside an application: the Node network, no
// storage of its own, silent logs, and a process lifetime that follows the application's
// awaits. Timers and connections are unref'd, so an idle client (connected, nothing pending)
// never keeps the application's process running; the client holds `keepAlive` while an
// operation is pending — connecting, a request, the failover sleeps between its attempts, a
// consumer awaiting the next subscription event — so the process can't exit under an await
// (Node exits with 13, "unsettled top-level await", when nothing ref'd is left).

//
// It loads neither LMDB nor a logger: an application that only uses the client installs and
// loads the protocol's packages (msgpackr, TypeBox) and nothing of a member's.

import type { KeepAlive, Runtime, Timer } from '../runtime.ts';
import { SILENT_LOGGER } from '../runtime.ts';
import { MemoryStorage } from '../memory-storage.ts';
import { ZSTD } from './node-compression.ts';
import { NodeNetwork } from './node-network.ts';
import { createSeededRandom } from './random.ts';
import { StraitError } from '../../errors.ts';
import { TlsCredentials, trustingOnly, type TlsContext } from './tls-credentials.ts';

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

export interface ClientRuntimeOptions {
  /** TLS to the site: the CA that signs its members, and this client's certificate if the site wants one. */
  readonly tls?: { readonly ca: string; readonly cert?: string | undefined; readonly key?: string | undefined } | undefined;
}

/** Throws STRAIT_TLS_INVALID when the TLS files can't be used. */
export function createClientRuntime(options: ClientRuntimeOptions = {}): ClientRuntime {
  const files = options.tls;
  let tls: TlsContext | undefined;
  if (files !== undefined) {
    if ((files.cert === undefined) !== (files.key === undefined)) {
      throw new StraitError('STRAIT_TLS_INVALID', { file: files.cert ?? files.key ?? files.ca, reason: 'comes without its pair: give both tls cert and key, or neither' });
    }
    tls = files.cert === undefined || files.key === undefined ? trustingOnly(files.ca) : TlsCredentials.load({ ca: files.ca, cert: files.cert, key: files.key }, SILENT_LOGGER);
  }
  const network = new NodeNetwork({ log: SILENT_LOGGER, unrefConnections: true, tls });
  const runtime: Runtime = {
    clock: { now: () => Date.now(), monotonic: () => performance.now() },
    random: createSeededRandom(),
    network,
    storage: new MemoryStorage(),
    compression: ZSTD,
    log: SILENT_LOGGER,
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
      network.close(() => {});
    },
  };
}
