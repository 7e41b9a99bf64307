// The pieces of one simulated TCP connection, as the network of src/sim/sim-network.ts builds
// them: a host's node (address, listening ports, ephemeral ports), the `Pipe` that holds one
// direction's bytes in the order written, the connection between a connector and an acceptor,
// each end's `SimStream`, listeners, and the `Network` one process sees.
//
// These hold state and forward every action to the network that carries them (`StreamCarrier`,
// implemented by sim-network-core.ts), which decides when and whether bytes arrive. A pipe never
// reorders, duplicates or loses bytes on its own: dropping them is the carrier's decision.

import { assert } from '../errors.ts';
import { PLAINTEXT, type Address, type Listener, type ListenResult, type Network, type Stream, type StreamHandler, type StreamSecurity, type Timer } from '../runtime/runtime.ts';
import type { EventOwner } from './event-queue.ts';

/** Ephemeral ports, as Linux hands them out by default. */
const ephemeralPortMin = 32768;
const ephemeralPortMax = 60999;
/** Consumed chunks kept at the head of a pipe's array before it is compacted. */
const pipeCompactChunksMin = 64;

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

/** One host on the network: its address, what listens on it, and the process attached to it. */
export interface SimNode {
  readonly name: string;
  readonly address: string;
  readonly listeners: Map<number, SimListener>;
  process: ProcessNetwork | undefined;
  nextEphemeralPort: number;
}

/** A new host's node: nothing bound, no process, ephemeral ports from the bottom of the range. */
export function newSimNode(name: string, address: string): SimNode {
  return { name, address, listeners: new Map(), process: undefined, nextEphemeralPort: ephemeralPortMin };
}

/** The next free ephemeral port of `node`, round-robin; undefined when every one is bound. */
export function allocatePort(node: SimNode): number | undefined {
  const span = ephemeralPortMax - ephemeralPortMin + 1;
  for (let attempt = 0; attempt < span; attempt++) {
    const port = node.nextEphemeralPort;
    node.nextEphemeralPort = port === ephemeralPortMax ? ephemeralPortMin : port + 1;
    if (!node.listeners.has(port)) return port;
  }
  return undefined;
}

export type DeliveryKind = 'syn' | 'synack' | 'data' | 'fin';

/** One scheduled arrival on a pipe: a SYN, SYN-ACK or FIN, or the next `byteCount` data bytes. */
export interface Delivery {
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

/** One connection: its two ends, where it goes, and whether it broke. */
export class SimConnection {
  readonly connectorNode: SimNode;
  readonly targetNode: SimNode | undefined;
  readonly targetPort: number;
  readonly localPort: number;
  readonly startedMs: number;
  connector!: SimStream;
  acceptor: SimStream | undefined = undefined;
  /** Reset, refused or timed out: nothing more is delivered. */
  broken = false;

  constructor(
    connectorNode: SimNode, targetNode: SimNode | undefined, targetPort: number, localPort: number, startedMs: number,
  ) {
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

/**
 * What streams, listeners and a process's Network ask of the network that carries them. Every
 * effect (a delivery, a close, a refusal) happens there, in virtual time.
 */
export interface StreamCarrier {
  write(stream: SimStream, bytes: Uint8Array): boolean;
  releaseHeld(receiver: SimStream): void;
  close(stream: SimStream): void;
  destroy(stream: SimStream, error: Error | undefined): void;
  listen(
    process: ProcessNetwork, bind: Address, onStream: (stream: Stream) => void, ready: (result: ListenResult) => void,
  ): Listener;
  connect(process: ProcessNetwork, target: Address, handler: StreamHandler): Stream;
}

/** One end of a simulated connection. */
export class SimStream implements Stream {
  readonly remote: string;
  readonly security: StreamSecurity = PLAINTEXT;
  /** @internal */ readonly connection: SimConnection;
  /** @internal */ readonly process: ProcessNetwork;
  /** @internal */ readonly outgoing = new Pipe();
  /** @internal */ handler: StreamHandler | undefined = undefined;
  /** @internal Connector only: onOpen was delivered. */ opened = false;
  /** @internal This side sent FIN: no more writes. */ finSent = false;
  /** @internal This side was destroyed locally. */ destroyed = false;
  /** @internal onClose was delivered or scheduled (or the process died): the stream is over. */ closeNotified = false;
  /** @internal Reading paused: arriving data (and a FIN behind it) is held. */ paused = false;
  /** @internal What arrived while paused, in order; a FIN holds its sender. */
  held: ({ bytes: Uint8Array } | { fin: SimStream })[] = [];
  /** @internal Data bytes in `held`. */ heldBytes = 0;
  /** @internal A write returned false: `onDrain` is owed once nothing is buffered. */ needDrain = false;
  private readonly carrier: StreamCarrier;

  constructor(carrier: StreamCarrier, connection: SimConnection, process: ProcessNetwork, remote: string) {
    this.carrier = carrier;
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
    return this.carrier.write(this, bytes);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.carrier.releaseHeld(this);
  }

  close(): void {
    this.carrier.close(this);
  }

  destroy(error?: Error): void {
    this.carrier.destroy(this, error);
  }

  setHandler(handler: StreamHandler): void {
    this.handler = handler;
  }
}

/** A port a process listens on; closed by `close()` or when the process crashes. */
export class SimListener implements Listener {
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
export class ProcessNetwork implements Network {
  readonly node: SimNode;
  readonly owner: EventOwner;
  readonly listeners = new Set<SimListener>();
  readonly streams = new Set<SimStream>();
  private readonly carrier: StreamCarrier;

  constructor(carrier: StreamCarrier, node: SimNode, owner: EventOwner) {
    this.carrier = carrier;
    this.node = node;
    this.owner = owner;
  }

  listen(bind: Address, onStream: (stream: Stream) => void, ready: (result: ListenResult) => void): Listener {
    return this.carrier.listen(this, bind, onStream, ready);
  }

  connect(target: Address, handler: StreamHandler): Stream {
    return this.carrier.connect(this, target, handler);
  }
}
