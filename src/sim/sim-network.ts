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
//   once they are back to half of it (Node drains when its own buffer is empty, the kernel's
//   not counted; here in-flight bytes stand for both). Bytes in flight are counted in `stats()`.
// - Error objects carry a Node-style `code` (ECONNREFUSED, ETIMEDOUT, ECONNRESET) like the
//   errors of the Node runtime, so callers handle both the same way.
//
// Parts: sim-stream.ts holds a connection's pieces (pipes, streams, listeners, each process's
// Network); sim-network-core.ts carries them under this model; this file is the public face.

import { assert } from '../errors.ts';
import type { Logger, Network } from '../runtime/runtime.ts';
import type { EventOwner, EventScheduler } from './event-queue.ts';
import type { SeededRandom } from './random.ts';
import { NetworkCore, defaultNetworkOptions, type NetworkOptions } from './sim-network-core.ts';
import { ProcessNetwork, newSimNode, type SimNode } from './sim-stream.ts';

// The network's whole public surface is importable from here, wherever each part lives.
export type { EventOwner, EventScheduler } from './event-queue.ts';
export { defaultNetworkOptions, type NetworkOptions } from './sim-network-core.ts';
export { NetworkError, SimStream } from './sim-stream.ts';

function validateOptions(options: NetworkOptions): NetworkOptions {
  for (const [name, value] of Object.entries(options)) {
    const valid = typeof value === 'number' && Number.isFinite(value) && value >= 0;
    assert(valid, `network option ${name} must be a finite number >= 0, got ${String(value)}`);
  }
  const { resetProbability, rechunkProbability } = options;
  assert(resetProbability <= 1, `network option resetProbability must be <= 1, got ${resetProbability}`);
  assert(rechunkProbability <= 1, `network option rechunkProbability must be <= 1, got ${rechunkProbability}`);
  return options;
}

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
    const holder = core.nodesByAddress.get(address);
    assert(holder === undefined, `address ${address} is already taken by ${holder?.name}`);
    const node = newSimNode(name, address);
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
        if (nameA !== nameB) this.core.cut(nameA, nameB);
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

  /**
   * Puts `hosts` behind one NAT named `nat` that lets connections out only (a masquerading NAT
   * with no port forward): connects into them from any host outside it are lost, as the SYN of
   * a real one is. Connections they open work both ways. Permanent for the run.
   */
  behindNat(nat: string, hosts: readonly string[]): void {
    for (const name of hosts) {
      this.node(name);
      this.core.natOf.set(name, nat);
    }
    this.core.log.info({ nat, hosts: hosts.join(',') }, 'hosts behind a NAT that lets connections out only');
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
    const { baseDelayMs, jitterMs } = this.core.options;
    this.configure({ baseDelayMs: latency.baseMs ?? baseDelayMs, jitterMs: latency.jitterMs ?? jitterMs });
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
