// The one seam between Strait's core and the outside world. Locators, servers, senders and
// receivers get time, timers, randomness, the network, storage and logging only through a
// Runtime. Two implementations exist: the Node runtime (src/runtime/node/) for real processes
// and the simulated runtime (src/sim/) that runs many members deterministically from one seed.
//
// Everything here is callback-driven: a handler runs to completion, the core never awaits.

import type { StraitError } from '../errors.ts';

export interface Address {
  readonly host: string;
  readonly port: number;
}

export function formatAddress(address: Address): string {
  return `${address.host}[${address.port}]`;
}

export interface Clock {
  /** Wall-clock milliseconds since the epoch; used for version tags and lag. May jump. */
  now(): number;
  /** Milliseconds from an arbitrary origin that never goes backwards; used for timeouts. */
  monotonic(): number;
}

export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, bound). */
  int(bound: number): number;
}

export interface Timer {
  cancel(): void;
}

/** Receives the events of one byte stream. Exactly one `onClose` ends every stream. */
export interface StreamHandler {
  /** The outgoing connection is established (not called for accepted streams). */
  onOpen(): void;
  onData(bytes: Uint8Array): void;
  /** Everything written was taken by the peer, after `write` returned false. */
  onDrain(): void;
  /** The stream closed; `error` says why when it was not a clean close. */
  onClose(error: Error | undefined): void;
}

/**
 * What a certificate says its holder is: a member (locator or server) of one site, a router,
 * a client or an operator's tool (admin). Carried in the certificate as a SPIFFE ID in a URI
 * subject alternative name (certificate-identity.ts).
 */
export type CertificateRole = 'locator' | 'server' | 'router' | 'client' | 'admin';

export interface CertificateIdentity {
  readonly role: CertificateRole;
  /** The site of a locator or server; null for routers, clients and admins. */
  readonly site: number | null;
}

/** "server of site 1", "router": for logs and errors. */
export function describeIdentity(identity: CertificateIdentity): string {
  return identity.site === null ? identity.role : `${identity.role} of site ${identity.site}`;
}

/**
 * How a stream's peer was authenticated by the transport, before any Strait byte. The protocol
 * checks a peer's hello (its claimed role and site) against this (protocol/authentication.ts).
 */
export type StreamSecurity =
  /** Plain TCP (or the simulator): the transport vouches for nothing. */
  | { readonly kind: 'plaintext' }
  /**
   * TLS. `identity` is set only when the peer presented a certificate that chains to a trusted
   * CA, is within its validity and carries a Strait identity; otherwise `refusal` says why there
   * is none (no certificate, another CA, expired, no identity), undefined when none was sent.
   */
  | { readonly kind: 'tls'; readonly identity: CertificateIdentity | undefined; readonly refusal: string | undefined }
  /**
   * A tunnel relayed by a router (router-links.ts): the router authenticated the member that
   * opened it as a member of `site` when it registered.
   */
  | { readonly kind: 'routed'; readonly site: number };

export const PLAINTEXT: StreamSecurity = { kind: 'plaintext' };

/** A reliable, ordered byte stream (TCP, or a simulated equivalent). */
export interface Stream {
  /** The peer's address as text, for logs and errors. */
  readonly remote: string;
  /** How the transport authenticated the peer; known from `onOpen` (outgoing) or acceptance. */
  readonly security: StreamSecurity;
  /**
   * Bytes written that the peer has not taken yet (the socket's send buffer; in the simulator,
   * bytes in flight or held by a paused reader). What backpressure decisions look at.
   */
  readonly bufferedBytes: number;
  /** Queues bytes; returns false when the caller should wait for `onDrain`. */
  write(bytes: Uint8Array): boolean;
  /**
   * Stops delivering `onData` until `resume` (a close that arrives meanwhile waits behind the
   * held data). The peer's writes then back up: TCP backpressure. Idempotent.
   */
  pause(): void;
  resume(): void;
  /** Flushes what was written, then closes. Idempotent. */
  close(): void;
  /** Closes at once, discarding unsent bytes. Idempotent. */
  destroy(error?: Error): void;
  setHandler(handler: StreamHandler): void;
}

export type ListenResult =
  | { readonly ok: true; readonly address: Address }
  | { readonly ok: false; readonly error: StraitError };

export interface Listener {
  close(): void;
}

export interface Network {
  /**
   * Listens on `bind` (port 0 picks a free port). `ready` is called once with the bound address
   * or a coded error (STRAIT_PORT_IN_USE, STRAIT_BIND_FAILED). Each accepted stream is handed to
   * `onStream`, which must call `setHandler` before returning.
   */
  listen(bind: Address, onStream: (stream: Stream) => void, ready: (result: ListenResult) => void): Listener;
  /** Opens a stream; `handler.onOpen` on success, `handler.onClose(error)` on failure. */
  connect(target: Address, handler: StreamHandler): Stream;
}

/** One named key → bytes table on this member's disk. */
export interface Store {
  get(key: string): Uint8Array | undefined;
  /** Visible to `get` at once; durable after the next `sync` callback. */
  put(key: string, value: Uint8Array): void;
  remove(key: string): void;
  /** Every entry, in key order. */
  entries(): Iterable<readonly [string, Uint8Array]>;
  /** Calls back once every write issued before this call is durable (or failed). */
  sync(callback: (error: Error | undefined) => void): void;
}

export interface Storage {
  /** Opens (creating if needed) the named store. Throws STRAIT_STORAGE. */
  open(name: string): Store;
  /** Flushes and releases every open store. */
  close(callback: (error: Error | undefined) => void): void;
}

/**
 * Compression of gateway batches. Both functions are pure: the same input gives the same
 * output. The Node runtime uses zstd; the simulator a trivial reversible codec, so the core
 * never depends on which.
 */
export interface Compression {
  compress(bytes: Uint8Array): Uint8Array;
  /** Throws when `bytes` is not this codec's output or would decompress past `outputBytesMax`. */
  decompress(bytes: Uint8Array, outputBytesMax: number): Uint8Array;
}

export type LogFields = Readonly<Record<string, unknown>>;

/** A structured logger (pino's shape). Messages name the member, site, address and next step. */
export interface Logger {
  debug(fields: LogFields, message: string): void;
  info(fields: LogFields, message: string): void;
  warn(fields: LogFields, message: string): void;
  error(fields: LogFields, message: string): void;
  child(bindings: LogFields): Logger;
}

/**
 * What keeps the process running while work it started is pending. A library living inside an
 * application (the client) holds it while an operation the application awaits is under way and
 * releases it when idle: the application can't exit under a pending await, and an idle library
 * never keeps it running. The simulator needs none (it runs until its queue is empty).
 */
export interface KeepAlive {
  /** Keeps the process alive until the returned release is called. Holds nest; release is idempotent. */
  hold(): () => void;
}

export interface Runtime {
  readonly clock: Clock;
  readonly random: Random;
  setTimer(delayMs: number, callback: () => void): Timer;
  /**
   * Runs `callback` once the current handler (and whatever it synchronously triggered) has
   * finished, before the next network or timer event: lets a handler that receives many
   * messages in one chunk coalesce the work they cause (one replication batch, not many).
   */
  defer(callback: () => void): void;
  readonly network: Network;
  readonly storage: Storage;
  readonly compression: Compression;
  readonly log: Logger;
}

/** A logger that drops everything (clients, tests). */
export const SILENT_LOGGER: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return SILENT_LOGGER;
  },
};
