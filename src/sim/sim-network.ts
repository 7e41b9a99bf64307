// The simulated network behind `Runtime.network` for every host of a Simulator.
//
// Model. Each host has one address ("10.0.0.1") and a table of listening ports. Connections are
// TCP-like byte streams between two processes; everything happens as events in the simulator's
// virtual time, and every random choice comes from one seeded stream, so a seed replays a run.
//
// - Delay. Every packet-like step (SYN, SYN-ACK, a data chunk, FIN, RST) travels one way in
//   `baseDelayMs + jitter`, jitter a whole number of milliseconds in [0, jitterMs].
// - Order. Within one direction of one connection bytes arrive in the order written, exactly
//   once: a chunk is never delivered before the chunk written ahead of it (a later chunk whose
//   own delay is shorter waits for it). Different connections are independent, so jitter does
//   reorder messages ACROSS connections — that is the only "reordering" TCP allows, and the
//   only kind simulated.
// - Chunk boundaries are not preserved: with probability `rechunkProbability` a write is split
//   into several deliveries, or merged into the still-undelivered chunk before it, so decoders
//   see arbitrary boundaries.
// - Loss. TCP does not lose bytes silently; what a lossy path does to a TCP user is break the
//   connection. So "loss" here is a connection reset: with probability `resetProbability` per
//   write, or when a partition is placed between the two hosts, the connection breaks, the
//   bytes not yet delivered in both directions are dropped, and both sides get
//   `onClose(ECONNRESET)` one delay later. A SYN across a partition is lost: the connect fails
//   with ETIMEDOUT after `connectTimeoutMs`. Nothing else is ever dropped.
// - Connect. SYN reaches the target after one delay: no live listener there (nothing bound, or
//   the process crashed) → the connector gets ECONNREFUSED one delay later. Otherwise the
//   acceptor's `onStream` runs on SYN arrival and the connector's `onOpen` one delay after that.
//   Bytes the connector writes before `onOpen` are queued behind the SYN, as Node does.
// - `close()` sends FIN behind the data already written. The peer gets that data, then
//   `onClose(undefined)`, and closes its side too (Node's default `allowHalfOpen: false`): its
//   in-flight data still reaches the closer, then the closer gets `onClose(undefined)`.
// - `destroy(error)` is an abortive close (RST): the local handler gets `onClose(error)` on the
//   next event, the peer `onClose(ECONNRESET)` one delay later, and undelivered bytes in both
//   directions are dropped.
// - A process crash destroys every stream it owns (peers see ECONNRESET) and closes its
//   listeners; it gets no callbacks itself.
// - Backpressure. A stream's `bufferedBytes` are the bytes it wrote that the peer's handler has
//   not received: in flight, or held because the peer paused reading (`pause()`; a FIN that
//   arrives meanwhile waits behind the held data). `write` returns false once they exceed
//   `writeBufferBytes` (false too once this side closed or destroyed it), and `onDrain` follows
//   when they are back to zero — as Node's socket does. Bytes in flight are counted in `stats()`.
// - Error objects carry a Node-style `code` (ECONNREFUSED, ETIMEDOUT, ECONNRESET) like the
//   errors of the Node runtime, so callers handle both the same way.

import { StraitError, assert } from '../errors.ts';
import {
  formatAddress,
  type Address,
  type Listener,
  type ListenResult,
  type Logger,
  type Network,
  type Stream,
  type StreamHandler,
  type Timer,
} from '../runtime/runtime.ts';
import type { EventOwner, EventScheduler } from './event-queue.ts';
import type { SeededRandom } from './random.ts';

export type { EventOwner, EventScheduler } from './event-queue.ts';

export interface NetworkOptions {
  /** Fixed part of the one-way delay of every packet, in ms. */
  baseDelayMs: number;
  /** Random extra one-way delay, a whole number of ms uniform in [0, jitterMs]. */
  jitterMs: number;
  /** Probability that a write resets its connection. */
  resetProbability: number;
  /** How long a connect whose SYN was lost waits before failing with ETIMEDOUT, in ms. */
  connectTimeoutMs: number;
  /** Probability that a write is split into several deliveries, and (separately) merged into the previous undelivered one. */
  rechunkProbability: number;
  /** A write returns false once the stream's buffered bytes exceed this (Node's default high-water mark). */
  writeBufferBytes: number;
}

export const defaultNetworkOptions: Readonly<NetworkOptions> = Object.freeze({
  baseDelayMs: 1,
  jitterMs: 2,
  resetProbability: 0,
  connectTimeoutMs: 3000,
  rechunkProbability: 0.25,
  writeBufferBytes: 64 * 1024,
});

/** The most deliveries one write is split into. */
const rechunkPiecesMax = 4;
/** Ephemeral ports, as Linux hands them out by default. */
const ephemeralPortMin = 32768;
const ephemeralPortMax = 60999;
/** Consumed chunks kept at the head of a pipe's array before it is compacted. */
const pipeCompactChunksMin = 64;

export interface NetworkStats {
  readonly connectsAttempted: number;
  readonly connectionsEstablished: number;
  readonly connectionsRefused: number;
  readonly connectionsTimedOut: number;
  readonly connectionsReset: number;
  readonly connectionsOpen: number;
  readonly writes: number;
  readonly deliveries: number;
  readonly bytesWritten: number;
  readonly bytesDelivered: number;
  readonly bytesDropped: number;
  /** Written, and neither delivered nor dropped yet. */
  readonly bytesInFlight: number;
}

/** A socket-level failure, shaped like Node's errno errors (`error.code === 'ECONNRESET'`). */
export class NetworkError extends Error {
  readonly code: 'ECONNREFUSED' | 'ETIMEDOUT' | 'ECONNRESET';

  constructor(code: NetworkError['code'], remote: string) {
    const text = {
      ECONNREFUSED: `connect ECONNREFUSED ${remote}`,
      ETIMEDOUT: `connect ETIMEDOUT ${remote}`,
      ECONNRESET: `read ECONNRESET (connection with ${remote} reset)`,
    }[code];
    super(text);
    this.name = 'NetworkError';
    this.code = code;
  }
}

function validateOptions(options: NetworkOptions): NetworkOptions {
  for (const [name, value] of Object.entries(options)) {
    assert(typeof value === 'number' && Number.isFinite(value) && value >= 0, `network option ${name} must be a finite number >= 0, got ${String(value)}`);
  }
  assert(options.resetProbability <= 1, `network option resetProbability must be <= 1, got ${options.resetProbability}`);
  assert(options.rechunkProbability <= 1, `network option rechunkProbability must be <= 1, got ${options.rechunkProbability}`);
  return options;
}

function pairKey(nameA: string, nameB: string): string {
  return nameA < nameB ? `${nameA}\u0000${nameB}` : `${nameB}\u0000${nameA}`;
}

const loopbackHosts = new Set(['127.0.0.1', 'localhost', '::1']);
const wildcardHosts = new Set(['0.0.0.0', '::']);

interface SimNode {
  readonly name: string;
  readonly address: string;
  readonly listeners: Map<number, SimListener>;
  process: ProcessNetwork | undefined;
  nextEphemeralPort: number;
}

type DeliveryKind = 'syn' | 'synack' | 'data' | 'fin';

interface Delivery {
  readonly kind: DeliveryKind;
  byteCount: number;
  timer: Timer | undefined;
}

/** One direction of a connection: bytes written and not yet delivered, in order. */
class Pipe {
  private chunks: Uint8Array[] = [];
  private headIndex = 0;
  private headOffset = 0;
  queuedBytes = 0;
  /** Arrival time of the latest scheduled delivery; later ones never arrive before it. */
  lastArrivalMs = 0;
  /** The latest scheduled delivery while it has not arrived yet (a write may merge into it). */
  lastDelivery: Delivery | undefined = undefined;

  push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.queuedBytes += bytes.length;
  }

  /** Removes the next `count` bytes, copied into a fresh array the receiver may keep. */
  take(count: number): Uint8Array {
    assert(count <= this.queuedBytes, `pipe holds ${this.queuedBytes} bytes, ${count} requested`);
    const taken = new Uint8Array(count);
    let filled = 0;
    while (filled < count) {
      const head = this.chunks[this.headIndex] as Uint8Array;
      const length = Math.min(head.length - this.headOffset, count - filled);
      taken.set(head.subarray(this.headOffset, this.headOffset + length), filled);
      filled += length;
      this.headOffset += length;
      if (this.headOffset === head.length) {
        this.headIndex++;
        this.headOffset = 0;
      }
    }
    this.queuedBytes -= count;
    if (this.headIndex >= pipeCompactChunksMin && this.headIndex * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.headIndex);
      this.headIndex = 0;
    }
    return taken;
  }

  /** Drops everything queued; returns how many bytes were dropped. */
  clear(): number {
    const dropped = this.queuedBytes;
    this.chunks = [];
    this.headIndex = 0;
    this.headOffset = 0;
    this.queuedBytes = 0;
    this.lastDelivery = undefined;
    return dropped;
  }
}

class Connection {
  readonly connectorNode: SimNode;
  readonly targetNode: SimNode | undefined;
  readonly targetPort: number;
  readonly localPort: number;
  readonly startedMs: number;
  connector!: SimStream;
  acceptor: SimStream | undefined = undefined;
  /** Reset, refused or timed out: nothing more is delivered. */
  broken = false;

  constructor(connectorNode: SimNode, targetNode: SimNode | undefined, targetPort: number, localPort: number, startedMs: number) {
    this.connectorNode = connectorNode;
    this.targetNode = targetNode;
    this.targetPort = targetPort;
    this.localPort = localPort;
    this.startedMs = startedMs;
  }

  peerOf(stream: SimStream): SimStream | undefined {
    return stream === this.connector ? this.acceptor : this.connector;
  }
}

/** One end of a simulated connection. */
export class SimStream implements Stream {
  readonly remote: string;
  /** @internal */ readonly connection: Connection;
  /** @internal */ readonly process: ProcessNetwork;
  /** @internal */ readonly outgoing = new Pipe();
  /** @internal */ handler: StreamHandler | undefined = undefined;
  /** @internal Connector only: onOpen was delivered. */ opened = false;
  /** @internal This side sent FIN: no more writes. */ finSent = false;
  /** @internal This side was destroyed locally. */ destroyed = false;
  /** @internal onClose was delivered or scheduled (or the process died): the stream is over. */ closeNotified = false;
  /** @internal Reading paused: arriving data (and a FIN behind it) is held. */ paused = false;
  /** @internal What arrived while paused, in order; a FIN holds its sender. */ held: ({ bytes: Uint8Array } | { fin: SimStream })[] = [];
  /** @internal Data bytes in `held`. */ heldBytes = 0;
  /** @internal A write returned false: `onDrain` is owed once nothing is buffered. */ needDrain = false;
  private readonly core: NetworkCore;

  constructor(core: NetworkCore, connection: Connection, process: ProcessNetwork, remote: string) {
    this.core = core;
    this.connection = connection;
    this.process = process;
    this.remote = remote;
  }

  /** Bytes this side wrote that the peer has not received yet. */
  get bytesInFlight(): number {
    return this.outgoing.queuedBytes;
  }

  get bufferedBytes(): number {
    return this.outgoing.queuedBytes + (this.connection.peerOf(this)?.heldBytes ?? 0);
  }

  write(bytes: Uint8Array): boolean {
    return this.core.write(this, bytes);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.core.releaseHeld(this);
  }

  close(): void {
    this.core.close(this);
  }

  destroy(error?: Error): void {
    this.core.destroy(this, error);
  }

  setHandler(handler: StreamHandler): void {
    this.handler = handler;
  }
}

class SimListener implements Listener {
  readonly node: SimNode;
  readonly process: ProcessNetwork;
  readonly onStream: (stream: Stream) => void;
  port = 0;
  closed = false;

  constructor(node: SimNode, process: ProcessNetwork, onStream: (stream: Stream) => void) {
    this.node = node;
    this.process = process;
    this.onStream = onStream;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.node.listeners.get(this.port) === this) this.node.listeners.delete(this.port);
    this.process.listeners.delete(this);
  }
}

/** The `Network` one process (one incarnation of a host) sees. */
class ProcessNetwork implements Network {
  readonly node: SimNode;
  readonly owner: EventOwner;
  readonly listeners = new Set<SimListener>();
  readonly streams = new Set<SimStream>();
  private readonly core: NetworkCore;

  constructor(core: NetworkCore, node: SimNode, owner: EventOwner) {
    this.core = core;
    this.node = node;
    this.owner = owner;
  }

  listen(bind: Address, onStream: (stream: Stream) => void, ready: (result: ListenResult) => void): Listener {
    return this.core.listen(this, bind, onStream, ready);
  }

  connect(target: Address, handler: StreamHandler): Stream {
    return this.core.connect(this, target, handler);
  }
}

class NetworkCore {
  options: NetworkOptions;
  readonly scheduler: EventScheduler;
  readonly random: SeededRandom;
  readonly log: Logger;
  readonly nodesByName = new Map<string, SimNode>();
  readonly nodesByAddress = new Map<string, SimNode>();
  readonly connections = new Set<Connection>();
  readonly cuts = new Set<string>();
  readonly isolated = new Set<string>();
  readonly counters = {
    connectsAttempted: 0,
    connectionsEstablished: 0,
    connectionsRefused: 0,
    connectionsTimedOut: 0,
    connectionsReset: 0,
    writes: 0,
    deliveries: 0,
    bytesWritten: 0,
    bytesDelivered: 0,
    bytesDropped: 0,
  };

  constructor(scheduler: EventScheduler, random: SeededRandom, log: Logger, options: NetworkOptions) {
    this.scheduler = scheduler;
    this.random = random;
    this.log = log;
    this.options = options;
  }

  latencyMs(): number {
    const jitter = this.options.jitterMs >= 1 ? this.random.int(Math.floor(this.options.jitterMs) + 1) : 0;
    return this.options.baseDelayMs + jitter;
  }

  isBlocked(nodeA: SimNode, nodeB: SimNode): boolean {
    if (nodeA === nodeB) return false;
    return this.isolated.has(nodeA.name) || this.isolated.has(nodeB.name) || this.cuts.has(pairKey(nodeA.name, nodeB.name));
  }

  resolve(host: string, from: SimNode): SimNode | undefined {
    if (loopbackHosts.has(host) || wildcardHosts.has(host)) return from;
    return this.nodesByAddress.get(host) ?? this.nodesByName.get(host);
  }

  allocatePort(node: SimNode): number | undefined {
    const span = ephemeralPortMax - ephemeralPortMin + 1;
    for (let attempt = 0; attempt < span; attempt++) {
      const port = node.nextEphemeralPort;
      node.nextEphemeralPort = port === ephemeralPortMax ? ephemeralPortMin : port + 1;
      if (!node.listeners.has(port)) return port;
    }
    return undefined;
  }

  // --- listen -------------------------------------------------------------------------------

  listen(process: ProcessNetwork, bind: Address, onStream: (stream: Stream) => void, ready: (result: ListenResult) => void): Listener {
    const node = process.node;
    const listener = new SimListener(node, process, onStream);
    const result = this.bind(listener, bind);
    if (result.ok) process.listeners.add(listener);
    else listener.closed = true;
    // Reported on a later event, never synchronously, as a real listen is.
    this.scheduler.schedule(0, () => ready(result), process.owner);
    return listener;
  }

  private bind(listener: SimListener, bind: Address): ListenResult {
    const node = listener.node;
    const text = formatAddress(bind);
    if (!listener.process.owner.alive) {
      return { ok: false, error: new StraitError('STRAIT_BIND_FAILED', { address: text, reason: 'the process has crashed' }) };
    }
    const ownHost = bind.host === node.address || bind.host === node.name || loopbackHosts.has(bind.host) || wildcardHosts.has(bind.host);
    if (!ownHost) {
      return { ok: false, error: new StraitError('STRAIT_BIND_FAILED', { address: text, reason: `EADDRNOTAVAIL: ${bind.host} is not an address of ${node.name} (${node.address})` }) };
    }
    if (!Number.isInteger(bind.port) || bind.port < 0 || bind.port > 65535) {
      return { ok: false, error: new StraitError('STRAIT_BIND_FAILED', { address: text, reason: 'port must be an integer in 0..65535' }) };
    }
    let port = bind.port;
    if (port === 0) {
      const allocated = this.allocatePort(node);
      if (allocated === undefined) {
        return { ok: false, error: new StraitError('STRAIT_BIND_FAILED', { address: text, reason: 'no free ephemeral port' }) };
      }
      port = allocated;
    } else if (node.listeners.has(port)) {
      return { ok: false, error: new StraitError('STRAIT_PORT_IN_USE', { address: text }) };
    }
    listener.port = port;
    node.listeners.set(port, listener);
    return { ok: true, address: { host: bind.host, port } };
  }

  // --- connect ------------------------------------------------------------------------------

  connect(process: ProcessNetwork, target: Address, handler: StreamHandler): Stream {
    const fromNode = process.node;
    const targetNode = this.resolve(target.host, fromNode);
    const connection = new Connection(fromNode, targetNode, target.port, this.allocatePort(fromNode) ?? 0, this.scheduler.nowMs);
    const connector = new SimStream(this, connection, process, formatAddress(target));
    connector.handler = handler;
    connection.connector = connector;
    this.counters.connectsAttempted++;
    if (!process.owner.alive) {
      // A stale runtime of a crashed process: nothing it does has effects.
      connection.broken = true;
      connector.closeNotified = true;
      return connector;
    }
    process.streams.add(connector);
    this.connections.add(connection);
    if (targetNode === undefined || this.isBlocked(fromNode, targetNode)) {
      // Unknown hosts and partitioned ones both swallow the SYN.
      this.breakConnection(connection, 'partition', undefined);
    } else {
      this.scheduleDelivery(connector, 'syn', 0);
    }
    return connector;
  }

  private arriveSyn(connection: Connection): void {
    const targetNode = connection.targetNode;
    assert(targetNode !== undefined, 'SYN sent to an unknown host');
    if (this.isBlocked(connection.connectorNode, targetNode)) {
      this.breakConnection(connection, 'partition', undefined);
      return;
    }
    const listener = targetNode.listeners.get(connection.targetPort);
    const connector = connection.connector;
    if (listener === undefined || !listener.process.owner.alive) {
      connection.broken = true;
      this.counters.connectionsRefused++;
      this.dropPipes(connection);
      this.forget(connection);
      this.log.debug({ from: connection.connectorNode.name, to: connector.remote }, 'connection refused: nothing listens there');
      this.notifyClose(connector, new NetworkError('ECONNREFUSED', connector.remote), this.latencyMs());
      return;
    }
    const acceptor = new SimStream(this, connection, listener.process, `${connection.connectorNode.address}[${connection.localPort}]`);
    connection.acceptor = acceptor;
    listener.process.streams.add(acceptor);
    // The SYN-ACK leads the acceptor's direction, so the connector sees onOpen before any data.
    this.scheduleDelivery(acceptor, 'synack', 0);
    listener.onStream(acceptor);
    assert(acceptor.handler !== undefined || acceptor.closeNotified, `onStream of the listener at ${targetNode.address}[${listener.port}] must call setHandler`);
  }

  // --- writing and delivery -----------------------------------------------------------------

  write(stream: SimStream, bytes: Uint8Array): boolean {
    if (stream.finSent || stream.destroyed) return false;
    if (bytes.length === 0) return true;
    this.counters.writes++;
    this.counters.bytesWritten += bytes.length;
    if (stream.closeNotified) {
      // The connection already broke; like TCP, the write is accepted and lost.
      this.counters.bytesDropped += bytes.length;
      return true;
    }
    if (this.random.chance(this.options.resetProbability)) {
      this.counters.bytesDropped += bytes.length;
      this.log.debug({ stream: stream.remote }, 'network resets the connection (random loss)');
      this.breakConnection(stream.connection, 'reset', undefined);
      return true;
    }
    const pipe = stream.outgoing;
    pipe.push(bytes);
    const last = pipe.lastDelivery;
    const probability = this.options.rechunkProbability;
    if (last !== undefined && last.kind === 'data' && this.random.chance(probability)) {
      // Coalesce with the previous chunk still on the wire; it arrives no earlier than planned.
      last.timer?.cancel();
      last.byteCount += bytes.length;
      this.planArrival(stream, last);
    } else if (bytes.length >= 2 && this.random.chance(probability)) {
      let remaining = bytes.length;
      for (let pieces = this.random.range(2, Math.min(bytes.length, rechunkPiecesMax)); pieces > 1; pieces--) {
        const size = this.random.range(1, remaining - (pieces - 1));
        this.scheduleDelivery(stream, 'data', size);
        remaining -= size;
      }
      this.scheduleDelivery(stream, 'data', remaining);
    } else {
      this.scheduleDelivery(stream, 'data', bytes.length);
    }
    if (stream.bufferedBytes <= this.options.writeBufferBytes) return true;
    stream.needDrain = true;
    return false;
  }

  /** `sender` owes `onDrain` and nothing it wrote is buffered any more: deliver it. */
  private maybeDrain(sender: SimStream): void {
    if (!sender.needDrain || sender.bufferedBytes > 0 || sender.closeNotified) return;
    sender.needDrain = false;
    this.scheduler.schedule(0, () => {
      if (!sender.closeNotified) sender.handler?.onDrain();
    }, sender.process.owner);
  }

  /** `receiver` resumed reading: what it held is delivered, in order, until it pauses again. */
  releaseHeld(receiver: SimStream): void {
    this.scheduler.schedule(0, () => {
      const sender = receiver.connection.peerOf(receiver);
      while (!receiver.paused && receiver.held.length > 0 && !receiver.closeNotified) {
        const next = receiver.held.shift()!;
        if ('fin' in next) {
          this.deliverFin(next.fin, receiver);
          continue;
        }
        receiver.heldBytes -= next.bytes.length;
        this.counters.deliveries++;
        this.counters.bytesDelivered += next.bytes.length;
        receiver.handler?.onData(next.bytes);
      }
      if (sender !== undefined) this.maybeDrain(sender);
    }, receiver.process.owner);
  }

  private scheduleDelivery(sender: SimStream, kind: DeliveryKind, byteCount: number): void {
    const delivery: Delivery = { kind, byteCount, timer: undefined };
    this.planArrival(sender, delivery);
  }

  /** Schedules `delivery` one delay from now, but not before anything already sent that way. */
  private planArrival(sender: SimStream, delivery: Delivery): void {
    const pipe = sender.outgoing;
    const now = this.scheduler.nowMs;
    const arrivalMs = Math.max(pipe.lastArrivalMs, now + this.latencyMs());
    pipe.lastArrivalMs = arrivalMs;
    pipe.lastDelivery = delivery;
    delivery.timer = this.scheduler.schedule(arrivalMs - now, () => this.arrive(sender, delivery), undefined);
  }

  private arrive(sender: SimStream, delivery: Delivery): void {
    const pipe = sender.outgoing;
    if (pipe.lastDelivery === delivery) pipe.lastDelivery = undefined;
    const connection = sender.connection;
    if (connection.broken) return;
    switch (delivery.kind) {
      case 'syn':
        this.arriveSyn(connection);
        return;
      case 'synack': {
        const connector = connection.connector;
        connector.opened = true;
        this.counters.connectionsEstablished++;
        connector.handler?.onOpen();
        return;
      }
      case 'data': {
        const receiver = connection.peerOf(sender);
        assert(receiver !== undefined && !receiver.closeNotified, 'data arrived for a stream that is over');
        const bytes = pipe.take(delivery.byteCount);
        if (receiver.paused || receiver.held.length > 0) {
          receiver.held.push({ bytes });
          receiver.heldBytes += bytes.length;
          return;
        }
        this.counters.deliveries++;
        this.counters.bytesDelivered += bytes.length;
        receiver.handler?.onData(bytes);
        this.maybeDrain(sender);
        return;
      }
      case 'fin': {
        const receiver = connection.peerOf(sender);
        assert(receiver !== undefined && !receiver.closeNotified, 'FIN arrived for a stream that is over');
        if (receiver.paused || receiver.held.length > 0) receiver.held.push({ fin: sender });
        else this.deliverFin(sender, receiver);
        return;
      }
    }
  }

  private deliverFin(sender: SimStream, receiver: SimStream): void {
    if (!receiver.finSent) {
      // allowHalfOpen: false — the receiving side ends its direction too.
      receiver.finSent = true;
      this.scheduleDelivery(receiver, 'fin', 0);
    }
    receiver.closeNotified = true;
    receiver.process.streams.delete(receiver);
    if (sender.closeNotified) this.forget(sender.connection);
    receiver.handler?.onClose(undefined);
  }

  // --- closing ------------------------------------------------------------------------------

  close(stream: SimStream): void {
    if (stream.finSent || stream.destroyed || stream.closeNotified) return;
    stream.finSent = true;
    this.scheduleDelivery(stream, 'fin', 0);
  }

  destroy(stream: SimStream, error: Error | undefined): void {
    if (stream.destroyed || stream.closeNotified) return;
    stream.destroyed = true;
    this.notifyClose(stream, error, 0);
    this.breakConnection(stream.connection, 'reset', stream);
  }

  /**
   * Ends a connection abnormally: drops undelivered bytes and tells every side still open —
   * ETIMEDOUT at its connect deadline for a connector cut off by a partition before it opened,
   * ECONNRESET one delay from now otherwise.
   */
  breakConnection(connection: Connection, reason: 'reset' | 'partition', except: SimStream | undefined): void {
    if (connection.broken) return;
    connection.broken = true;
    this.dropPipes(connection);
    this.forget(connection);
    const connector = connection.connector;
    if (reason === 'partition' && !connector.opened) this.counters.connectionsTimedOut++;
    else this.counters.connectionsReset++;
    for (const stream of [connector, connection.acceptor]) {
      if (stream === undefined || stream === except || stream.closeNotified) continue;
      if (stream === connector && !connector.opened && reason === 'partition') {
        const deadlineMs = connection.startedMs + this.options.connectTimeoutMs;
        this.notifyClose(stream, new NetworkError('ETIMEDOUT', stream.remote), Math.max(0, deadlineMs - this.scheduler.nowMs));
      } else {
        this.notifyClose(stream, new NetworkError('ECONNRESET', stream.remote), this.latencyMs());
      }
    }
  }

  private notifyClose(stream: SimStream, error: Error | undefined, delayMs: number): void {
    stream.closeNotified = true;
    stream.process.streams.delete(stream);
    this.scheduler.schedule(delayMs, () => stream.handler?.onClose(error), stream.process.owner);
  }

  private dropPipes(connection: Connection): void {
    for (const stream of [connection.connector, connection.acceptor]) {
      if (stream === undefined) continue;
      this.counters.bytesDropped += stream.outgoing.clear() + stream.heldBytes;
      stream.held = [];
      stream.heldBytes = 0;
    }
  }

  private forget(connection: Connection): void {
    this.connections.delete(connection);
  }

  // --- faults -------------------------------------------------------------------------------

  /** The process attached to `node` died: its listeners close and its open streams reset. */
  crash(node: SimNode): void {
    const process = node.process;
    if (process === undefined) return;
    node.process = undefined;
    for (const listener of [...process.listeners]) listener.close();
    for (const stream of [...process.streams]) {
      // The dead process gets no callback; its peer sees the reset.
      stream.closeNotified = true;
      process.streams.delete(stream);
      this.breakConnection(stream.connection, 'reset', stream);
    }
  }

  /** Breaks every connection that now crosses a cut. */
  applyCuts(): void {
    for (const connection of [...this.connections]) {
      const targetNode = connection.targetNode;
      if (targetNode !== undefined && this.isBlocked(connection.connectorNode, targetNode)) {
        this.breakConnection(connection, 'partition', undefined);
      }
    }
  }
}

/**
 * The network of one simulation: the `Network` each process sees (`attach`) and the fault
 * controls scenario code drives (partitions, latency, resets). Deterministic given the
 * scheduler's event order and the random stream.
 */
export class SimNetwork {
  private readonly core: NetworkCore;

  constructor(scheduler: EventScheduler, random: SeededRandom, log: Logger, options: Partial<NetworkOptions> = {}) {
    this.core = new NetworkCore(scheduler, random, log, validateOptions({ ...defaultNetworkOptions, ...options }));
  }

  get options(): Readonly<NetworkOptions> {
    return this.core.options;
  }

  /** Registers a host; its name and address must be new. */
  addHost(name: string, address: string): void {
    const core = this.core;
    assert(!core.nodesByName.has(name), `a host named ${name} already exists`);
    assert(!core.nodesByAddress.has(address), `address ${address} is already taken by ${core.nodesByAddress.get(address)?.name}`);
    const node: SimNode = { name, address, listeners: new Map(), process: undefined, nextEphemeralPort: ephemeralPortMin };
    core.nodesByName.set(name, node);
    core.nodesByAddress.set(address, node);
  }

  /** The `Network` of a new process on host `name`; replaces a previous one (which must have crashed). */
  attach(name: string, owner: EventOwner): Network {
    const node = this.node(name);
    assert(node.process === undefined || !node.process.owner.alive, `host ${name} already runs a live process`);
    if (node.process !== undefined) this.core.crash(node);
    const process = new ProcessNetwork(this.core, node, owner);
    node.process = process;
    return process;
  }

  /** The process on host `name` died: its listeners close and every peer of its streams sees ECONNRESET. */
  crash(name: string): void {
    this.core.crash(this.node(name));
  }

  /** Cuts every host in `groupA` off from every host in `groupB`; connections across reset, new connects time out. */
  partition(groupA: readonly string[], groupB: readonly string[]): void {
    for (const nameA of groupA) {
      for (const nameB of groupB) {
        this.node(nameA);
        this.node(nameB);
        if (nameA !== nameB) this.core.cuts.add(pairKey(nameA, nameB));
      }
    }
    this.core.log.info({ groupA: groupA.join(','), groupB: groupB.join(',') }, 'network partitioned');
    this.core.applyCuts();
  }

  /** Cuts `name` off from every other host, present and future. */
  isolate(name: string): void {
    this.node(name);
    this.core.isolated.add(name);
    this.core.log.info({ host: name }, 'host isolated from the network');
    this.core.applyCuts();
  }

  /** Removes every partition and isolation. Broken connections stay broken; new ones succeed. */
  heal(): void {
    this.core.cuts.clear();
    this.core.isolated.clear();
    this.core.log.info({}, 'network healed');
  }

  /** True when packets between the two hosts are dropped. */
  isPartitioned(nameA: string, nameB: string): boolean {
    return this.core.isBlocked(this.node(nameA), this.node(nameB));
  }

  setLatency(latency: { baseMs?: number; jitterMs?: number }): void {
    this.configure({ baseDelayMs: latency.baseMs ?? this.core.options.baseDelayMs, jitterMs: latency.jitterMs ?? this.core.options.jitterMs });
  }

  setResetProbability(probability: number): void {
    this.configure({ resetProbability: probability });
  }

  configure(options: Partial<NetworkOptions>): void {
    this.core.options = validateOptions({ ...this.core.options, ...options });
  }

  stats(): NetworkStats {
    const counters = this.core.counters;
    return {
      ...counters,
      connectionsOpen: this.core.connections.size,
      bytesInFlight: counters.bytesWritten - counters.bytesDelivered - counters.bytesDropped,
    };
  }

  private node(name: string): SimNode {
    const node = this.core.nodesByName.get(name);
    assert(node !== undefined, `no host named ${name}`);
    return node;
  }
}
