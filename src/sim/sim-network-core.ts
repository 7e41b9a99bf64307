// The simulated network's engine: it carries every SimStream's bytes and implements the model
// described in the opening comment of src/sim/sim-network.ts — one-way delay with jitter,
// in-order exactly-once delivery per direction, re-chunking, resets instead of silent loss,
// connect refusals and timeouts, FIN and RST, backpressure, crashes and partitions.
//
// Every step is an event on the simulator's scheduler and every random choice is drawn from one
// seeded stream, so a seed replays a run. The counters it keeps are what `SimNetwork.stats()`
// reports.

import { StraitError, assert } from '../errors.ts';
import {
  formatAddress,
  type Address,
  type Listener,
  type ListenResult,
  type Logger,
  type Stream,
  type StreamHandler,
} from '../runtime/runtime.ts';
import type { EventScheduler } from './event-queue.ts';
import type { SeededRandom } from './random.ts';
import {
  NetworkError,
  SimConnection,
  SimListener,
  SimStream,
  allocatePort,
  type Delivery,
  type DeliveryKind,
  type ProcessNetwork,
  type SimNode,
  type StreamCarrier,
} from './sim-stream.ts';

/** The knobs of the model; `SimNetwork.configure` changes them during a run. */
export interface NetworkOptions {
  /** Fixed part of the one-way delay of every packet, in ms. */
  baseDelayMs: number;
  /** Random extra one-way delay, a whole number of ms uniform in [0, jitterMs]. */
  jitterMs: number;
  /** Probability that a write resets its connection. */
  resetProbability: number;
  /** How long a connect whose SYN was lost waits before failing with ETIMEDOUT, in ms. */
  connectTimeoutMs: number;
  /**
   * Probability that a write is split into several deliveries, and (separately) merged into the
   * previous undelivered one.
   */
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

function pairKey(nameA: string, nameB: string): string {
  return nameA < nameB ? `${nameA}\u0000${nameB}` : `${nameB}\u0000${nameA}`;
}

const loopbackHosts = new Set(['127.0.0.1', 'localhost', '::1']);
const wildcardHosts = new Set(['0.0.0.0', '::']);

/** Carries the streams of every process of one simulation; SimNetwork is its public face. */
export class NetworkCore implements StreamCarrier {
  options: NetworkOptions;
  readonly scheduler: EventScheduler;
  readonly random: SeededRandom;
  readonly log: Logger;
  readonly nodesByName = new Map<string, SimNode>();
  readonly nodesByAddress = new Map<string, SimNode>();
  readonly connections = new Set<SimConnection>();
  readonly cuts = new Set<string>();
  readonly isolated = new Set<string>();
  /**
   * Hosts behind a NAT that lets connections out only, by host name → the NAT's name. A connect
   * into such a host from outside its NAT is lost (the SYN finds no mapping); connections it
   * opened carry data both ways. `heal` does not remove a NAT: it is the network's shape.
   */
  readonly natOf = new Map<string, string>();
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

  /** Packets between the two hosts are dropped from now on, until `heal`. */
  cut(nameA: string, nameB: string): void {
    this.cuts.add(pairKey(nameA, nameB));
  }

  isBlocked(nodeA: SimNode, nodeB: SimNode): boolean {
    if (nodeA === nodeB) return false;
    if (this.isolated.has(nodeA.name) || this.isolated.has(nodeB.name)) return true;
    return this.cuts.has(pairKey(nodeA.name, nodeB.name));
  }

  /** True when a connect from `from` can't reach `to`: `to` is behind a NAT `from` is outside of. */
  isBehindNat(from: SimNode, to: SimNode): boolean {
    const nat = this.natOf.get(to.name);
    return nat !== undefined && this.natOf.get(from.name) !== nat && from !== to;
  }

  resolve(host: string, from: SimNode): SimNode | undefined {
    if (loopbackHosts.has(host) || wildcardHosts.has(host)) return from;
    return this.nodesByAddress.get(host) ?? this.nodesByName.get(host);
  }

  // --- listen -------------------------------------------------------------------------------

  listen(
    process: ProcessNetwork, bind: Address, onStream: (stream: Stream) => void, ready: (result: ListenResult) => void,
  ): Listener {
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
    const bindFailed = (reason: string): ListenResult =>
      ({ ok: false, error: new StraitError('STRAIT_BIND_FAILED', { address: text, reason }) });
    if (!listener.process.owner.alive) return bindFailed('the process has crashed');
    const host = bind.host;
    const ownHost = host === node.address || host === node.name || loopbackHosts.has(host) || wildcardHosts.has(host);
    if (!ownHost) return bindFailed(`EADDRNOTAVAIL: ${host} is not an address of ${node.name} (${node.address})`);
    if (!Number.isInteger(bind.port) || bind.port < 0 || bind.port > 65535) {
      return bindFailed('port must be an integer in 0..65535');
    }
    let port = bind.port;
    if (port === 0) {
      const allocated = allocatePort(node);
      if (allocated === undefined) return bindFailed('no free ephemeral port');
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
    const localPort = allocatePort(fromNode) ?? 0;
    const connection = new SimConnection(fromNode, targetNode, target.port, localPort, this.scheduler.nowMs);
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
    if (targetNode === undefined || this.isBlocked(fromNode, targetNode) || this.isBehindNat(fromNode, targetNode)) {
      // Unknown hosts, partitioned ones and hosts behind a NAT all swallow the SYN.
      this.breakConnection(connection, 'partition', undefined);
    } else {
      this.scheduleDelivery(connector, 'syn', 0);
    }
    return connector;
  }

  private arriveSyn(connection: SimConnection): void {
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
      const fields = { from: connection.connectorNode.name, to: connector.remote };
      this.log.debug(fields, 'connection refused: nothing listens there');
      this.notifyClose(connector, new NetworkError('ECONNREFUSED', connector.remote), this.latencyMs());
      return;
    }
    const remote = `${connection.connectorNode.address}[${connection.localPort}]`;
    const acceptor = new SimStream(this, connection, listener.process, remote);
    connection.acceptor = acceptor;
    listener.process.streams.add(acceptor);
    // The SYN-ACK leads the acceptor's direction, so the connector sees onOpen before any data.
    this.scheduleDelivery(acceptor, 'synack', 0);
    listener.onStream(acceptor);
    assert(
      acceptor.handler !== undefined || acceptor.closeNotified,
      `onStream of the listener at ${targetNode.address}[${listener.port}] must call setHandler`,
    );
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

  /**
   * `sender` owes `onDrain` and its buffered bytes fell to half the write buffer: deliver it.
   * Node drains once its own buffer is empty — what it handed the kernel no longer counts —
   * so a steady writer still drains there; half the buffer stands for the kernel's room here,
   * where in-flight bytes are all there is.
   */
  private maybeDrain(sender: SimStream): void {
    if (!sender.needDrain || sender.bufferedBytes > this.options.writeBufferBytes / 2 || sender.closeNotified) return;
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
  breakConnection(connection: SimConnection, reason: 'reset' | 'partition', except: SimStream | undefined): void {
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
        const delayMs = Math.max(0, deadlineMs - this.scheduler.nowMs);
        this.notifyClose(stream, new NetworkError('ETIMEDOUT', stream.remote), delayMs);
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

  private dropPipes(connection: SimConnection): void {
    for (const stream of [connection.connector, connection.acceptor]) {
      if (stream === undefined) continue;
      this.counters.bytesDropped += stream.outgoing.clear() + stream.heldBytes;
      stream.held = [];
      stream.heldBytes = 0;
    }
  }

  private forget(connection: SimConnection): void {
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
