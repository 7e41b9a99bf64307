// The Runtime for real processes: wall and monotonic clocks, an entropy-seeded random source,
// Node timers, TCP through node:net, LMDB (or memory) storage and a pino logger.

import { createServer, connect as connectSocket, type AddressInfo, type Server, type Socket } from 'node:net';
import { zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { assert, StraitError } from '../../errors.ts';
import {
  formatAddress,
  type Address,
  type Clock,
  type Compression,
  type Listener,
  type ListenResult,
  type Logger,
  type Network,
  type Random,
  type Runtime,
  type Storage,
  type Stream,
  type StreamHandler,
  type Timer,
} from '../runtime.ts';
import { MemoryStorage } from '../memory-storage.ts';
import { LmdbStorage } from './lmdb-storage.ts';
import { createSeededRandom } from './random.ts';

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

/**
 * A network failure of one stream: `code` is the operating system's code (ECONNREFUSED,
 * ECONNRESET, ...) or ERR_RUNTIME_CLOSED, and the message names the peer.
 */
export class StreamError extends Error {
  readonly code: string;
  readonly address: string;

  constructor(address: string, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StreamError';
    this.code = code;
    this.address = address;
  }
}

function osCode(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

/**
 * One TCP connection. Accepted sockets arrive with reading paused (`pauseOnConnect`), and
 * reading starts only in `setHandler`, so no byte is lost before a handler exists; a close
 * that happens first is held and delivered to the handler.
 */
class NodeStream implements Stream {
  readonly remote: string;
  readonly #socket: Socket;
  readonly #onFinished: (stream: NodeStream) => void;
  #handler: StreamHandler | undefined;
  #connecting: boolean;
  #error: Error | undefined;
  #ending = false;
  /** The socket has closed; `onClose` was called, or will be when a handler is set. */
  #socketClosed = false;
  #closeDelivered = false;

  constructor(socket: Socket, remote: string, connecting: boolean, onFinished: (stream: NodeStream) => void) {
    this.#socket = socket;
    this.remote = remote;
    this.#connecting = connecting;
    this.#onFinished = onFinished;
    socket.on('connect', () => {
      this.#connecting = false;
      this.#handler?.onOpen();
    });
    socket.on('drain', () => this.#handler?.onDrain());
    socket.on('error', (error: Error) => {
      // The first error explains the close; `destroy(error)` sets it before destroying.
      if (this.#error !== undefined) return;
      const code = osCode(error);
      const what = this.#connecting ? 'failed' : 'lost';
      this.#error = new StreamError(this.remote, code, `connection to ${this.remote} ${what}: ${code}`, { cause: error });
    });
    socket.on('close', () => {
      this.#socketClosed = true;
      this.#onFinished(this);
      this.#deliverClose();
    });
  }

  setHandler(handler: StreamHandler): void {
    assert(this.#handler === undefined, `stream ${this.remote}: setHandler called twice`);
    this.#handler = handler;
    if (this.#socketClosed) {
      this.#deliverClose();
      return;
    }
    this.#socket.on('data', (chunk: Buffer) => this.#handler?.onData(chunk));
    // Accepted sockets start paused (readableFlowing false), so the listener alone does not
    // start reading.
    if (!this.#paused) this.#socket.resume();
  }

  #paused = false;

  get bufferedBytes(): number {
    return this.#socket.writableLength;
  }

  pause(): void {
    this.#paused = true;
    this.#socket.pause();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#handler !== undefined && !this.#socket.destroyed) this.#socket.resume();
  }

  #corked = false;

  write(bytes: Uint8Array): boolean {
    // Bytes written after close are dropped: the caller hears `onClose`, never `onDrain`.
    if (this.#ending || this.#socket.destroyed) return false;
    // Coalesce every write of this turn of the event loop into one writev system call: with
    // many small frames (pipelined requests, their responses) the syscall per write was most of
    // a server's CPU time.
    if (!this.#corked) {
      this.#corked = true;
      this.#socket.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.#socket.uncork();
      });
    }
    return this.#socket.write(bytes);
  }

  close(): void {
    if (this.#ending || this.#socket.destroyed) return;
    this.#ending = true;
    this.#socket.end();
  }

  destroy(error?: Error): void {
    if (this.#socket.destroyed) return;
    if (error !== undefined && this.#error === undefined) this.#error = error;
    this.#socket.destroy();
  }

  #deliverClose(): void {
    const handler = this.#handler;
    if (handler === undefined || this.#closeDelivered) return;
    this.#closeDelivered = true;
    handler.onClose(this.#error);
  }
}

/** What `connect` returns after the runtime closed: it fails without touching the network. */
class RefusedStream implements Stream {
  readonly remote: string;

  constructor(remote: string, handler: StreamHandler) {
    this.remote = remote;
    const error = new StreamError(remote, 'ERR_RUNTIME_CLOSED', `connection to ${remote} not attempted: the runtime is closed`);
    queueMicrotask(() => handler.onClose(error));
  }

  readonly bufferedBytes = 0;

  write(): boolean {
    return false;
  }

  pause(): void {}

  resume(): void {}

  close(): void {}

  destroy(): void {}

  setHandler(): void {
    assert(false, `stream ${this.remote}: setHandler on an outgoing stream`);
  }
}

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

class NodeNetwork implements Network {
  readonly #log: Logger;
  readonly #unrefConnections: boolean;
  readonly #servers = new Set<Server>();
  readonly #streams = new Set<NodeStream>();
  #closed = false;
  #closeCallback: (() => void) | undefined;
  #serversClosing = 0;
  #closeCalledBack = false;

  constructor(log: Logger, unrefConnections: boolean) {
    this.#log = log;
    this.#unrefConnections = unrefConnections;
  }

  listen(bind: Address, onStream: (stream: Stream) => void, ready: (result: ListenResult) => void): Listener {
    const address = formatAddress(bind);
    let settled = false;
    let listenerClosed = false;
    const settle = (result: ListenResult): void => {
      if (settled) return;
      settled = true;
      ready(result);
    };
    const fail = (error: unknown): void => {
      this.#servers.delete(server);
      const code = osCode(error);
      settle({
        ok: false,
        error:
          code === 'EADDRINUSE'
            ? new StraitError('STRAIT_PORT_IN_USE', { address }, { cause: error })
            : new StraitError('STRAIT_BIND_FAILED', { address, reason: error instanceof Error ? error.message : code }, { cause: error }),
      });
    };

    const server = createServer({ pauseOnConnect: true, noDelay: true });
    this.#servers.add(server);
    server.on('error', (error) => {
      if (!settled) {
        fail(error);
        return;
      }
      this.#log.error({ address, error }, `listener on ${address} failed: ${osCode(error)}; it accepts no more connections`);
    });
    server.on('listening', () => {
      if (listenerClosed || this.#closed) {
        // Closed while the bind was under way (host names resolve asynchronously).
        server.close();
        settle({ ok: false, error: new StraitError('STRAIT_BIND_FAILED', { address, reason: 'the listener was closed before it was bound' }) });
        return;
      }
      const bound = server.address() as AddressInfo;
      settle({ ok: true, address: { host: bound.address, port: bound.port } });
    });
    server.on('connection', (socket: Socket) => {
      if (listenerClosed || this.#closed) {
        socket.destroy();
        return;
      }
      const remote = `${socket.remoteAddress ?? 'unknown'}[${socket.remotePort ?? 0}]`;
      const stream = this.#track(socket, remote, false);
      onStream(stream);
    });
    if (this.#closed) {
      queueMicrotask(() => fail(new Error('the runtime is closed')));
    } else {
      try {
        server.listen({ host: bind.host, port: bind.port });
      } catch (error) {
        // Invalid ports and hosts throw at once; report them like any other bind failure.
        queueMicrotask(() => fail(error));
      }
    }

    return {
      close: () => {
        if (listenerClosed) return;
        listenerClosed = true;
        this.#servers.delete(server);
        // Not yet listening: the 'listening' handler closes it when the bind completes.
        if (server.listening) server.close();
        settle({ ok: false, error: new StraitError('STRAIT_BIND_FAILED', { address, reason: 'the listener was closed before it was bound' }) });
      },
    };
  }

  connect(target: Address, handler: StreamHandler): Stream {
    const remote = formatAddress(target);
    if (this.#closed) return new RefusedStream(remote, handler);
    const socket = connectSocket({ host: target.host, port: target.port, noDelay: true });
    if (this.#unrefConnections) socket.unref();
    const stream = this.#track(socket, remote, true);
    stream.setHandler(handler);
    return stream;
  }

  #track(socket: Socket, remote: string, connecting: boolean): NodeStream {
    const stream = new NodeStream(socket, remote, connecting, (finished) => {
      this.#streams.delete(finished);
      this.#checkClosed();
    });
    this.#streams.add(stream);
    return stream;
  }

  /**
   * Closes every listener and destroys every open stream; calls back once all listeners are
   * closed and every stream has had its `onClose`, so nothing touches storage afterwards.
   */
  close(callback: () => void): void {
    assert(this.#closeCallback === undefined, 'node network closed twice');
    this.#closed = true;
    this.#closeCallback = callback;
    const servers = [...this.#servers];
    this.#servers.clear();
    this.#serversClosing = servers.length;
    for (const server of servers) {
      server.close(() => {
        this.#serversClosing--;
        this.#checkClosed();
      });
    }
    for (const stream of [...this.#streams]) stream.destroy();
    queueMicrotask(() => this.#checkClosed());
  }

  #checkClosed(): void {
    const callback = this.#closeCallback;
    if (callback === undefined || this.#serversClosing > 0 || this.#streams.size > 0 || this.#closeCalledBack) return;
    this.#closeCalledBack = true;
    callback();
  }
}

/** zstd, as Node ships it. */
export const ZSTD: Compression = {
  compress: (bytes) => zstdCompressSync(bytes),
  decompress: (bytes, outputBytesMax) => {
    // zlib refuses a maximum below 1; an empty output is within any limit.
    const output = zstdDecompressSync(bytes, { maxOutputLength: Math.max(1, outputBytesMax) });
    if (output.length > outputBytesMax) throw new RangeError(`zstd output exceeds ${outputBytesMax} bytes`);
    return output;
  },
};

/** Creates the runtime of one real member process. */
export function createNodeRuntime(options: NodeRuntimeOptions): NodeRuntime {
  const clock: Clock = {
    now: () => Date.now(),
    monotonic: () => performance.now(),
  };
  const random: Random = createSeededRandom();
  const storage: Storage =
    options.storageDirectory === undefined ? new MemoryStorage() : new LmdbStorage(options.storageDirectory);
  const network = new NodeNetwork(options.logger, options.unrefConnections === true);
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
