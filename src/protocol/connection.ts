// One protocol connection over a runtime Stream: preamble, hello/welcome handshake with version
// negotiation, correlated requests (many in flight), responses and one-way pushes.
//
// Callback-driven and I/O-free: bytes come and go through the Stream, time through the
// Runtime's timers. A protocol violation (bad preamble, oversized or malformed frame, invalid
// message) sends a coded error frame when possible, logs it, and closes this connection only.
//
// Parts: handshake.ts checks and builds the hello and welcome, pending-requests.ts keeps this
// side's requests awaiting answers, incoming-requests.ts the peer's awaiting replies; this file
// ties them to the stream and the handler.

import { StraitError, errorFromWire } from '../errors.ts';
import type { Runtime, Stream, StreamHandler, Timer, Address } from '../runtime/runtime.ts';
import { encodeFrame, FRAME_LENGTH_BYTES, FrameDecoder } from './frame.ts';
import {
  helloBytes,
  peerFromHello,
  peerFromWelcome,
  welcomeBytes,
  withPreamble,
  type Identity,
  type PeerIdentity,
} from './handshake.ts';
import { authenticateHello, authenticateWelcome, mayConnect, OPEN_POLICY, operationRefusal, type SecurityPolicy } from './authentication.ts';
import { IncomingRequests, type IncomingRequest, type Reply } from './incoming-requests.ts';
import type { Envelope, PushBody, PushOp, RequestBody, RequestOp, ResponseBody } from './messages.ts';
import { PendingRequests, type PendingRequest } from './pending-requests.ts';
import { parseEnvelope, parsePushBody, parseRequestBody, parseResponseBody } from './validate.ts';

// Handlers and their owners use a connection's whole vocabulary through this module.
export type { Identity, PeerIdentity } from './handshake.ts';
export { answering, type IncomingRequest, type Reply } from './incoming-requests.ts';

export interface ConnectionHandler {
  /** The handshake completed; requests may now flow both ways. */
  onOpen(connection: Connection): void;
  /** A validated request. `request.body` matches the op's schema. */
  onRequest(connection: Connection, request: IncomingRequest, reply: Reply<RequestOp>): void;
  onPush(connection: Connection, op: PushOp, body: unknown): void;
  /** Called once. `error` is set unless the close was clean. */
  onClose(connection: Connection, error: Error | undefined): void;
  /** Everything written was taken by the peer, after a write the stream could not take at once. */
  onDrain?(connection: Connection): void;
}

export interface ConnectionOptions {
  readonly local: Identity;
  /** The largest frame body this side accepts (told to the peer in the handshake). */
  readonly frameBytesMax: number;
  readonly requestTimeoutMs: number;
  /**
   * How long the handshake may take before the connection gives up (a blackholed address never
   * answers). Default: `requestTimeoutMs`.
   */
  readonly handshakeTimeoutMs?: number;
  /** Requests this side sent awaiting a response, at most; more fail with STRAIT_TOO_MANY_IN_FLIGHT. */
  readonly requestsInFlightMax: number;
  /**
   * Requests from the peer awaiting this side's reply, at most; more are answered at once with
   * STRAIT_TOO_MANY_IN_FLIGHT. Default: no limit (a client's side).
   */
  readonly incomingRequestsMax?: number;
  /**
   * Output the peer has not taken, at most, in bytes. Past it an accepted connection stops
   * reading the peer's requests until the output drains (backpressure), and `push` refuses
   * (the caller decides: a subscription is cut off). Default: no limit.
   */
  readonly bufferedBytesMax?: number;
  /**
   * Sites this side accepts. A server or locator accepts only its own site's members; clients
   * (site null) are always accepted. undefined = accept any (a client connecting out).
   */
  readonly expectedSite?: number;
  /**
   * Byte arrays in received bodies: 'views' into the read chunks for a side that decodes every
   * one at once and keeps none (the client); default 'copies' that own their memory (frame.ts).
   */
  readonly byteArrays?: 'copies' | 'views';
  /** What an accepting side asks of clients and admins (authentication.ts). Default: OPEN_POLICY. */
  readonly security?: SecurityPolicy;
  /** A client's or admin's token, sent in the hello (only over a link whose peer proved itself, under TLS). */
  readonly token?: string | undefined;
  /** Every operation an accepted connection serves (a gateway receiver's port); default all. */
  readonly servedOperations?: ReadonlySet<RequestOp>;
  /**
   * A peer was refused: its credentials don't back its hello (STRAIT_UNAUTHENTICATED,
   * STRAIT_TLS_REFUSED) or it asked for an operation not for its role or this port
   * (STRAIT_FORBIDDEN). The refusal is also answered to the peer; this is for logs and metrics.
   */
  readonly onRefusal?: (error: StraitError, connection: Connection) => void;
}

export type ConnectionState = 'handshaking' | 'open' | 'closed';

let nextConnectionNumber = 0;

export class Connection {
  readonly runtime: Runtime;
  readonly stream: Stream;
  readonly outgoing: boolean;
  readonly number: number;
  private readonly options: ConnectionOptions;
  private readonly handler: ConnectionHandler;
  private readonly decoder: FrameDecoder;
  /** Requests sent (or held until the handshake completes) and awaiting an answer. */
  private readonly pending = new PendingRequests();
  /** Requests from the peer not answered yet. */
  private readonly incoming = new IncomingRequests();
  /** Reading stopped because the peer does not take our output (accepted connections). */
  private readPaused = false;
  private sweepTimer: Timer | undefined;
  private closeError: Error | undefined;
  state: ConnectionState = 'handshaking';
  peer: PeerIdentity | undefined;
  /** Free slot for the owner (e.g. a server's per-client state). */
  context: unknown;
  /** How long this side's requests wait; only ever raised (extendRequestTimeout). */
  private requestTimeoutMs: number;

  private constructor(
    runtime: Runtime, stream: Stream, outgoing: boolean, options: ConnectionOptions, handler: ConnectionHandler,
  ) {
    this.runtime = runtime;
    this.stream = stream;
    this.outgoing = outgoing;
    this.options = options;
    this.handler = handler;
    this.number = ++nextConnectionNumber;
    this.requestTimeoutMs = options.requestTimeoutMs;
    const frameBytesMax = options.frameBytesMax;
    this.decoder = new FrameDecoder({ peer: stream.remote, frameBytesMax, expectPreamble: true, byteArrays: options.byteArrays ?? 'copies' });
  }

  /** Opens a connection to `target`; `handler.onOpen` runs after the handshake. */
  static open(runtime: Runtime, target: Address, options: ConnectionOptions, handler: ConnectionHandler): Connection {
    let connection: Connection | undefined;
    const streamHandler: StreamHandler = {
      onOpen: () => connection?.sendHello(),
      onData: (bytes) => connection?.receive(bytes),
      onDrain: () => connection?.drained(),
      onClose: (error) => connection?.closed(error ?? connection.closedInHandshake()),
    };
    const stream = runtime.network.connect(target, streamHandler);
    connection = new Connection(runtime, stream, true, options, handler);
    connection.startSweep();
    return connection;
  }

  /** Takes over an accepted stream; the peer must open with the preamble and hello. */
  static accept(runtime: Runtime, stream: Stream, options: ConnectionOptions, handler: ConnectionHandler): Connection {
    const connection = new Connection(runtime, stream, false, options, handler);
    stream.setHandler({
      onOpen: () => {},
      onData: (bytes) => connection.receive(bytes),
      onDrain: () => connection.drained(),
      onClose: (error) => connection.closed(error),
    });
    connection.startSweep();
    // A TLS peer whose certificate isn't trusted (another CA, expired) is refused at once,
    // whatever it would claim: logged here, since it may never send a hello.
    const security = stream.security;
    if (security.kind === 'tls' && security.refusal !== undefined) {
      const error = new StraitError('STRAIT_TLS_REFUSED', { peer: stream.remote, reason: security.refusal });
      runtime.log.warn({ code: error.code, peer: stream.remote }, `refused a connection from ${stream.remote}: ${error.message}`);
      options.onRefusal?.(error, connection);
      connection.closeWithError(error);
    }
    return connection;
  }

  /**
   * Turns an accepted stream away before any handshake: the preamble and a coded error frame,
   * then close. Used when a listener is at its connection limit.
   */
  static refuse(stream: Stream, error: StraitError): void {
    stream.setHandler({ onOpen: () => {}, onData: () => {}, onDrain: () => {}, onClose: () => {} });
    stream.write(withPreamble(encodeFrame({ t: 'error', error: error.toJSON() })));
    stream.close();
  }

  get remote(): string {
    return this.stream.remote;
  }

  /** A label for logs: the peer's name when known, else its address. */
  get label(): string {
    return this.peer ? `${this.peer.name} (${this.stream.remote})` : this.stream.remote;
  }

  isClosed(): boolean {
    return this.state === 'closed';
  }

  get requestsInFlight(): number {
    return this.pending.size;
  }

  /**
   * Lets this side's later requests wait up to `timeoutMs` (never shortens it: requests expire
   * in issue order only while no later one has an earlier deadline). A server whose accepted
   * connection becomes a dial-out site's gateway link sends batches over it, which may wait as
   * long as a sender's own connection lets them.
   */
  extendRequestTimeout(timeoutMs: number): void {
    this.requestTimeoutMs = Math.max(this.requestTimeoutMs, timeoutMs);
  }

  request<Op extends RequestOp>(
    op: Op,
    body: RequestBody<Op>,
    callback: (error: StraitError | undefined, response: ResponseBody<Op> | undefined) => void,
  ): void {
    if (this.state === 'closed') {
      callback(this.closedError(op), undefined);
      return;
    }
    const limit = this.options.requestsInFlightMax;
    if (this.pending.size >= limit) {
      callback(new StraitError('STRAIT_TOO_MANY_IN_FLIGHT', { limit, peer: this.label }), undefined);
      return;
    }
    const id = this.pending.add({
      op,
      deadline: this.runtime.clock.monotonic() + this.requestTimeoutMs,
      callback: callback as PendingRequest['callback'],
    });
    const envelope: Envelope = { t: 'req', id, op, body };
    if (this.state === 'handshaking') {
      this.pending.hold({ envelope, id });
      return;
    }
    this.sendRequest(envelope, id);
  }

  /** Sends a request frame, or fails the request when the peer would refuse its size. */
  private sendRequest(envelope: Envelope, id: number): void {
    const frame = encodeFrame(envelope);
    if (this.fitsPeer(frame)) {
      this.stream.write(frame);
      return;
    }
    // Answered after the caller's turn, never inside its `request` call: a caller that reacts by
    // sending again (a sender splitting a batch) must not recurse once per refused frame.
    const refused = this.pending.take(id);
    const error = this.tooLarge(frame);
    if (refused !== undefined) this.runtime.defer(() => refused.callback(error, undefined));
  }

  /**
   * Sends a one-way message. False (nothing sent) when the connection is closed or not open yet,
   * when the frame is larger than the peer accepts, or when the peer has not taken
   * `bufferedBytesMax` of earlier output (unless `evenIfBacklogged`, for a small final notice):
   * the caller decides what a refused push means.
   */
  push<Op extends PushOp>(op: Op, body: PushBody<Op>, options: { evenIfBacklogged?: boolean } = {}): boolean {
    if (this.state !== 'open') return false;
    const limit = this.options.bufferedBytesMax;
    if (limit !== undefined && options.evenIfBacklogged !== true && this.stream.bufferedBytes > limit) return false;
    const frame = encodeFrame({ t: 'push', op, body });
    if (!this.fitsPeer(frame)) return false;
    this.stream.write(frame);
    return true;
  }

  /** Bytes the peer has not taken yet (see Stream.bufferedBytes). */
  get bufferedBytes(): number {
    return this.stream.bufferedBytes;
  }

  private fitsPeer(frame: Uint8Array): boolean {
    return frame.length - FRAME_LENGTH_BYTES <= (this.peer?.frameBytesMax ?? Number.POSITIVE_INFINITY);
  }

  private tooLarge(frame: Uint8Array): StraitError {
    const size = frame.length - FRAME_LENGTH_BYTES;
    return new StraitError('STRAIT_FRAME_TOO_LARGE', { size, peer: this.label, limit: this.peer?.frameBytesMax ?? 0 });
  }

  /** Closes gracefully: pending requests fail with STRAIT_CONNECTION_CLOSED. */
  close(): void {
    if (this.state === 'closed') return;
    this.stream.close();
    this.closed(undefined);
  }

  /** Sends a coded error frame, then closes. Used for protocol violations. */
  closeWithError(error: StraitError): void {
    if (this.state === 'closed') return;
    const frame = encodeFrame({ t: 'error', error: error.toJSON() });
    // Refusing a hello: the peer reads our preamble first, then why.
    this.stream.write(!this.outgoing && this.state === 'handshaking' ? withPreamble(frame) : frame);
    this.stream.close();
    this.closed(error);
  }

  /**
   * A peer that closes before it welcomed us is a failure, not a clean close: most often a TLS
   * port reached without TLS (the TLS side drops the plaintext bytes), or a port that is not Strait's.
   */
  private closedInHandshake(): StraitError | undefined {
    if (this.state !== 'handshaking') return undefined;
    return new StraitError('STRAIT_CONNECTION_CLOSED', { peer: this.stream.remote, type: 'hello (closed during the handshake: a TLS port reached without TLS, or not a Strait port?)' });
  }

  private startSweep(): void {
    // One timer per connection checks deadlines, instead of a timer per request: requests
    // time out in issue order, so the sweep stops at the first one still within its deadline.
    const timeoutMs = this.options.requestTimeoutMs;
    const intervalMs = Math.max(10, Math.min(1000, Math.floor(Math.min(timeoutMs, this.options.handshakeTimeoutMs ?? timeoutMs) / 4)));
    const handshakeTimeoutMs = this.options.handshakeTimeoutMs ?? timeoutMs;
    const openedBy = this.runtime.clock.monotonic() + handshakeTimeoutMs;
    const sweep = () => {
      if (this.state === 'closed') return;
      const now = this.runtime.clock.monotonic();
      if (this.state === 'handshaking' && now > openedBy) {
        // A peer behind a blackholed link never answers the hello: give up like a request would.
        const operation = `handshake with ${this.stream.remote}`;
        const error = new StraitError('STRAIT_TIMEOUT', { operation, timeoutMs: handshakeTimeoutMs });
        this.stream.destroy(error);
        this.closed(error);
        return;
      }
      this.pending.expire(now, (request) => {
        const operation = `${request.op} to ${this.label}`;
        request.callback(new StraitError('STRAIT_TIMEOUT', { operation, timeoutMs: this.requestTimeoutMs }), undefined);
      });
      this.sweepTimer = this.runtime.setTimer(intervalMs, sweep);
    };
    this.sweepTimer = this.runtime.setTimer(intervalMs, sweep);
  }

  private sendHello(): void {
    if (this.state === 'closed') return;
    // Nothing (a token least of all) goes to a peer that proved nothing on a TLS link.
    const refusal = mayConnect(this.stream.security, this.stream.remote);
    if (refusal !== undefined) {
      this.options.onRefusal?.(refusal, this);
      this.stream.destroy(refusal);
      this.closed(refusal);
      return;
    }
    this.stream.write(helloBytes(this.options.local, this.options.frameBytesMax, this.options.token));
  }

  private get policy(): SecurityPolicy {
    return this.options.security ?? OPEN_POLICY;
  }

  /** Runs a check of the peer's credentials; a refusal is reported, then thrown (and answered). */
  private authenticate(check: () => void): void {
    try {
      check();
    } catch (error) {
      if (error instanceof StraitError) this.options.onRefusal?.(error, this);
      throw error;
    }
  }

  /** Writes a reply (responses are only sent on open connections). */
  private sendResponse(id: number, envelope: Envelope): void {
    let frame = encodeFrame(envelope);
    if (!this.fitsPeer(frame)) frame = encodeFrame({ t: 'res', id, error: this.tooLarge(frame).toJSON() });
    if (!this.stream.write(frame)) this.applyBackpressure();
  }

  /**
   * An accepted connection whose peer does not take our replies stops reading its requests
   * until the output drains, so a client that pipelines without reading can't make this side
   * buffer without bound. Called only when a write returned false, so `onDrain` will follow.
   */
  private applyBackpressure(): void {
    const limit = this.options.bufferedBytesMax;
    if (this.outgoing || this.readPaused || limit === undefined || this.stream.bufferedBytes <= limit) return;
    this.readPaused = true;
    this.stream.pause();
  }

  private drained(): void {
    if (this.state === 'closed') return;
    if (this.readPaused) {
      this.readPaused = false;
      this.stream.resume();
    }
    this.handler.onDrain?.(this);
  }

  private writeFrame(envelope: Envelope): void {
    this.stream.write(encodeFrame(envelope));
  }

  private receive(bytes: Uint8Array): void {
    if (this.state === 'closed') return;
    let bodies: unknown[];
    try {
      bodies = this.decoder.push(bytes);
    } catch (error) {
      this.protocolViolation(error);
      return;
    }
    for (const body of bodies) {
      if (this.isClosed()) return;
      try {
        this.dispatch(parseEnvelope(body, this.stream.remote));
      } catch (error) {
        this.protocolViolation(error);
        return;
      }
    }
  }

  private protocolViolation(error: unknown): void {
    if (!(error instanceof StraitError)) throw error;
    this.runtime.log.warn(
      { code: error.code, peer: this.stream.remote, connection: this.number },
      `closing connection from ${this.stream.remote}: ${error.message}`,
    );
    this.closeWithError(error);
  }

  private dispatch(envelope: Envelope): void {
    switch (envelope.t) {
      case 'hello':
        this.onHello(envelope);
        return;
      case 'welcome':
        this.onWelcome(envelope);
        return;
      case 'error': {
        const error = errorFromWire(envelope.error);
        const message = `${this.label} closed the connection: ${error.message}`;
        this.runtime.log.warn({ code: error.code, peer: this.label }, message);
        this.stream.close();
        this.closed(error);
        return;
      }
      default:
        break;
    }
    if (this.state !== 'open') {
      throw new StraitError('STRAIT_HANDSHAKE_REQUIRED', { peer: this.stream.remote, type: envelope.t });
    }
    switch (envelope.t) {
      case 'req':
        this.onRequest(envelope.id, envelope.op, envelope.body);
        return;
      case 'res':
        this.onResponse(envelope.id, envelope.body, envelope.error);
        return;
      case 'push': {
        const body = parsePushBody(envelope.op, envelope.body, this.stream.remote);
        this.handler.onPush(this, envelope.op as PushOp, body);
        return;
      }
    }
  }

  private onHello(hello: Extract<Envelope, { t: 'hello' }>): void {
    if (this.outgoing || this.state !== 'handshaking') {
      throw new StraitError('STRAIT_MESSAGE_INVALID', { peer: this.stream.remote, reason: 'unexpected hello' });
    }
    const peer = peerFromHello(hello, this.stream.remote, this.options.expectedSite);
    this.authenticate(() => authenticateHello(peer, hello.token, this.stream.security, this.policy, this.stream.remote, this.options.expectedSite));
    this.peer = peer;
    this.stream.write(welcomeBytes(this.options.local, peer.version, this.options.frameBytesMax));
    this.opened();
  }

  private onWelcome(welcome: Extract<Envelope, { t: 'welcome' }>): void {
    if (!this.outgoing || this.state !== 'handshaking') {
      throw new StraitError('STRAIT_MESSAGE_INVALID', { peer: this.stream.remote, reason: 'unexpected welcome' });
    }
    const peer = peerFromWelcome(welcome, this.stream.remote);
    this.authenticate(() => authenticateWelcome(peer, this.stream.security, this.stream.remote));
    this.peer = peer;
    this.opened();
  }

  private opened(): void {
    this.state = 'open';
    for (const request of this.pending.takeHeld()) {
      if (this.state !== 'open') break;
      if (this.pending.has(request.id)) this.sendRequest(request.envelope, request.id);
    }
    this.handler.onOpen(this);
  }

  private onRequest(id: number, op: string, rawBody: unknown): void {
    const reply = this.incoming.reply(id, () => this.state !== 'closed', (response) => this.sendResponse(id, response));
    const limit = this.options.incomingRequestsMax;
    if (limit !== undefined && this.incoming.count > limit) {
      reply.fail(new StraitError('STRAIT_TOO_MANY_IN_FLIGHT', { limit, peer: this.label }));
      return;
    }
    // Who may ask is decided before the body is even read.
    const refusal = operationRefusal(op, this.peer!.role, this.options.servedOperations);
    if (refusal !== undefined) {
      const error = new StraitError('STRAIT_FORBIDDEN', { peer: this.label, role: this.peer!.role, op, reason: refusal });
      this.options.onRefusal?.(error, this);
      reply.fail(error);
      return;
    }
    let parsed: IncomingRequest;
    try {
      parsed = parseRequestBody(op, rawBody, this.stream.remote) as IncomingRequest;
    } catch (error) {
      // A bad request body is answered, not fatal to the connection: the frame itself was fine.
      if (error instanceof StraitError) {
        reply.fail(error);
        return;
      }
      throw error;
    }
    this.handler.onRequest(this, parsed, reply);
  }

  private onResponse(
    id: number, body: unknown, wireError: { code: string; message: string; retryable: boolean } | undefined,
  ): void {
    const request = this.pending.take(id);
    if (request === undefined) return; // timed out already
    if (wireError !== undefined) {
      request.callback(errorFromWire(wireError), undefined);
      return;
    }
    let parsed: unknown;
    try {
      parsed = parseResponseBody(request.op, body, this.stream.remote);
    } catch (error) {
      if (error instanceof StraitError) {
        request.callback(error, undefined);
        return;
      }
      throw error;
    }
    request.callback(undefined, parsed);
  }

  private closedError(op: string): StraitError {
    // A refusal of our credentials is the answer itself: the caller must hear why, not "closed".
    const cause = this.closeError;
    if (cause instanceof StraitError && (cause.code === 'STRAIT_TLS_REFUSED' || cause.code === 'STRAIT_UNAUTHENTICATED')) return cause;
    return new StraitError('STRAIT_CONNECTION_CLOSED', { peer: this.label, type: op }, { cause: this.closeError });
  }

  private closed(error: Error | undefined): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.closeError = error;
    this.sweepTimer?.cancel();
    this.pending.dropHeld();
    for (const request of this.pending.takeAll()) request.callback(this.closedError(request.op), undefined);
    this.handler.onClose(this, error);
  }
}
