// The Node network: TCP through node:net, or TLS through node:tls when the member has
// credentials. Shared by members (node-runtime.ts) and the client (client-runtime.ts), which is
// why it lives apart from storage: a client loads no LMDB.
//
// TLS is mutual where it can be: a TLS listener asks every peer for a certificate but does not
// reject one without (or with a bad one) during the TLS handshake; it records what the
// certificate proved (Stream.security) and the protocol decides, with a coded error the peer
// can read, whether that backs the role the peer claims (protocol/authentication.ts). Host names
// are not checked: a peer is identified by the Strait identity in its certificate, not by the
// address it was reached at (routers, NAT and advertised host names make addresses unreliable).

import { createServer, connect as connectSocket, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, connect as connectTls, type TLSSocket, type Server as TlsServer } from 'node:tls';
import { assert, StraitError } from '../../errors.ts';
import {
  formatAddress,
  PLAINTEXT,
  type Address,
  type Listener,
  type ListenResult,
  type Logger,
  type Network,
  type Stream,
  type StreamHandler,
  type StreamSecurity,
} from '../runtime.ts';
import { certificateSecurity, type TlsContext } from './tls-credentials.ts';

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
  /** Plaintext until a TLS socket completes its handshake (accepted TLS streams arrive complete). */
  security: StreamSecurity;
  readonly #socket: Socket;
  readonly #onFinished: (stream: NodeStream) => void;
  #handler: StreamHandler | undefined;
  #connecting: boolean;
  #error: Error | undefined;
  #ending = false;
  /** The socket has closed; `onClose` was called, or will be when a handler is set. */
  #socketClosed = false;
  #closeDelivered = false;

  constructor(socket: Socket, remote: string, connecting: boolean, security: StreamSecurity, onFinished: (stream: NodeStream) => void) {
    this.#socket = socket;
    this.remote = remote;
    this.security = security;
    this.#connecting = connecting;
    this.#onFinished = onFinished;
    // A TLS stream is open once its handshake is done, and then knows what the peer proved.
    const tls = security.kind === 'tls';
    socket.on(tls ? 'secureConnect' : 'connect', () => {
      this.#connecting = false;
      if (tls) this.security = certificateSecurity(socket as TLSSocket);
      this.#handler?.onOpen();
    });
    socket.on('drain', () => this.#handler?.onDrain());
    socket.on('error', (error: Error) => {
      // The first error explains the close; `destroy(error)` sets it before destroying.
      if (this.#error !== undefined) return;
      const code = osCode(error);
      const what = this.#connecting ? 'failed' : 'lost';
      // A TLS failure names its reason (another CA, a plaintext peer) and what to check.
      const tlsFailure = code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || (code === 'ECONNRESET' && this.security.kind === 'tls' && this.#connecting);
      const detail = tlsFailure
        ? `${code} (TLS: ${error.message.trim()}; check that both sides have tls configured with the same CA)`
        : code;
      this.#error = new StreamError(this.remote, code, `connection to ${this.remote} ${what}: ${detail}`, { cause: error });
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
  readonly security = PLAINTEXT;

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

export interface NodeNetworkOptions {
  readonly log: Logger;
  /** See NodeRuntimeOptions.unrefConnections. */
  readonly unrefConnections: boolean;
  /** TLS on every listener and connection; plain TCP when absent. */
  readonly tls?: TlsContext | undefined;
  /** A peer failed the TLS handshake on one of our listeners (a plaintext peer, a bad certificate). */
  readonly onTlsRefused?: (remote: string, reason: string) => void;
}

export class NodeNetwork implements Network {
  readonly #log: Logger;
  readonly #unrefConnections: boolean;
  readonly #tls: TlsContext | undefined;
  readonly #onTlsRefused: ((remote: string, reason: string) => void) | undefined;
  readonly #servers = new Set<Server>();
  readonly #streams = new Set<NodeStream>();
  #closed = false;
  #closeCallback: (() => void) | undefined;
  #serversClosing = 0;
  #closeCalledBack = false;

  constructor(options: NodeNetworkOptions) {
    this.#log = options.log;
    this.#unrefConnections = options.unrefConnections;
    this.#tls = options.tls;
    this.#onTlsRefused = options.onTlsRefused;
    // New credentials (rotated files) apply to every listener's next handshake.
    this.#tls?.onReload(() => {
      for (const server of this.#servers) {
        if ('setSecureContext' in server) (server as TlsServer).setSecureContext(this.#tls!.serverOptions());
      }
    });
  }

  /** A plain TCP server, or a TLS one that asks for (but does not demand) a client certificate. */
  #createServer(): Server {
    if (this.#tls === undefined) return createServer({ pauseOnConnect: true, noDelay: true });
    const server = createTlsServer({ ...this.#tls.serverOptions(), requestCert: true, rejectUnauthorized: false, noDelay: true });
    server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
      const remote = `${socket.remoteAddress ?? 'unknown'}[${socket.remotePort ?? 0}]`;
      const reason = `${osCode(error)}: ${error.message}`;
      this.#log.warn({ code: 'STRAIT_TLS_REFUSED', peer: remote, reason }, `refused a connection from ${remote}: its TLS handshake failed (${reason}); a plaintext peer, or one without this site's CA`);
      this.#onTlsRefused?.(remote, reason);
    });
    return server;
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

    const server = this.#createServer();
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
    // A TLS server hands over its sockets once their handshake is done.
    server.on(this.#tls === undefined ? 'connection' : 'secureConnection', (socket: Socket) => {
      if (listenerClosed || this.#closed) {
        socket.destroy();
        return;
      }
      const remote = `${socket.remoteAddress ?? 'unknown'}[${socket.remotePort ?? 0}]`;
      const security = this.#tls === undefined ? PLAINTEXT : certificateSecurity(socket as TLSSocket);
      // TLS sockets start flowing after the handshake; hold them paused until a handler exists.
      if (this.#tls !== undefined) socket.pause();
      const stream = this.#track(socket, remote, false, security);
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
    const tls = this.#tls;
    const socket = tls === undefined
      ? connectSocket({ host: target.host, port: target.port, noDelay: true })
      // Identity is the certificate's Strait identity, checked by the protocol: no host name check.
      : connectTls({ host: target.host, port: target.port, ...tls.clientOptions(), rejectUnauthorized: false, checkServerIdentity: () => undefined }).setNoDelay(true);
    if (this.#unrefConnections) socket.unref();
    const stream = this.#track(socket, remote, true, tls === undefined ? PLAINTEXT : { kind: 'tls', identity: undefined, refusal: 'the TLS handshake has not completed' });
    stream.setHandler(handler);
    return stream;
  }

  #track(socket: Socket, remote: string, connecting: boolean, security: StreamSecurity): NodeStream {
    const stream = new NodeStream(socket, remote, connecting, security, (finished) => {
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

