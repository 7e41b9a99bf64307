// A userspace TCP proxy that makes a loopback link behave like a WAN: one-way delay with
// jitter (never reordering bytes within a connection), a bandwidth cap shared by all
// connections per direction, and partitions (every connection goes silent — a blackhole, as a
// failed WAN link looks — until healed). These machines have no `tc netem`; tests, the
// benchmark and `strait proxy` use this instead.
//
// An edge tool: it uses node:net and real timers directly.

import { createServer, connect as connectSocket, type Server as NetServer, type Socket } from 'node:net';
import type { Address } from '../runtime/runtime.ts';

export interface WanProxyOptions {
  readonly listen: Address;
  readonly target: Address;
  /** One-way delay added to each direction, ms (round-trip time = 2 × delay). */
  readonly delayMs?: number;
  /** Extra random delay 0..jitterMs per chunk, ms (bytes never overtake each other). */
  readonly jitterMs?: number;
  /** Per-direction bandwidth cap shared by all connections, bytes per second. */
  readonly bandwidthBytesPerSecond?: number;
}

/** Bytes waiting in one direction of one connection before its source is paused. */
const QUEUED_BYTES_MAX = 16 * 1024 * 1024;

interface Pending {
  readonly releaseAtMs: number;
  readonly chunk: Buffer;
}

class Direction {
  private readonly proxy: WanProxy;
  private readonly source: Socket;
  private readonly destination: () => Socket | undefined;
  private readonly link: { freeAtMs: number };
  private readonly queue: Pending[] = [];
  private queuedBytes = 0;
  private lastReleaseMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private waitingForDrain = false;
  bytes = 0;

  constructor(proxy: WanProxy, source: Socket, destination: () => Socket | undefined, link: { freeAtMs: number }) {
    this.proxy = proxy;
    this.source = source;
    this.destination = destination;
    this.link = link;
    source.on('data', (chunk: Buffer) => this.push(chunk));
  }

  private push(chunk: Buffer): void {
    const now = performance.now();
    let releaseAt = now + this.proxy.delayMs + Math.random() * this.proxy.jitterMs;
    const bandwidth = this.proxy.bandwidthBytesPerSecond;
    if (bandwidth !== undefined) {
      const start = Math.max(now, this.link.freeAtMs);
      this.link.freeAtMs = start + (chunk.length / bandwidth) * 1000;
      releaseAt = Math.max(releaseAt, this.link.freeAtMs + this.proxy.delayMs);
    }
    releaseAt = Math.max(releaseAt, this.lastReleaseMs);
    this.lastReleaseMs = releaseAt;
    this.queue.push({ releaseAtMs: releaseAt, chunk });
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > QUEUED_BYTES_MAX) this.source.pause();
    this.schedule();
  }

  schedule(): void {
    if (this.timer !== undefined || this.queue.length === 0 || this.proxy.partitioned) return;
    const destination = this.destination();
    if (destination === undefined) return;
    const delay = Math.max(0, this.queue[0]!.releaseAtMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.release();
    }, delay);
  }

  private release(): void {
    const destination = this.destination();
    if (destination === undefined || this.proxy.partitioned) return;
    const now = performance.now();
    let writable = true;
    while (this.queue.length > 0 && this.queue[0]!.releaseAtMs <= now + 0.5) {
      const { chunk } = this.queue.shift()!;
      this.queuedBytes -= chunk.length;
      this.bytes += chunk.length;
      writable = destination.write(chunk);
    }
    if (this.queuedBytes <= QUEUED_BYTES_MAX / 2) {
      if (writable) this.source.resume();
      else if (!this.waitingForDrain) {
        // One listener at a time: a listener per refused write piles up under load.
        this.waitingForDrain = true;
        destination.once('drain', () => {
          this.waitingForDrain = false;
          this.source.resume();
        });
      }
    }
    this.schedule();
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

interface ProxiedConnection {
  readonly client: Socket;
  upstream: Socket | undefined;
  up: Direction | undefined;
  down: Direction | undefined;
}

export class WanProxy {
  delayMs: number;
  jitterMs: number;
  bandwidthBytesPerSecond: number | undefined;
  partitioned = false;
  private readonly target: Address;
  private readonly server: NetServer;
  private readonly connections = new Set<ProxiedConnection>();
  private readonly upLink = { freeAtMs: 0 };
  private readonly downLink = { freeAtMs: 0 };
  private boundAddress: Address | undefined;
  readonly totals = { connections: 0, bytesUp: 0, bytesDown: 0 };

  private constructor(options: WanProxyOptions) {
    this.delayMs = options.delayMs ?? 0;
    this.jitterMs = options.jitterMs ?? 0;
    this.bandwidthBytesPerSecond = options.bandwidthBytesPerSecond;
    this.target = options.target;
    this.server = createServer((client) => this.accept(client));
  }

  /** Starts listening; resolves once bound (port 0 picks a free port). */
  static start(options: WanProxyOptions): Promise<WanProxy> {
    const proxy = new WanProxy(options);
    return new Promise((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(options.listen.port, options.listen.host, () => {
        const address = proxy.server.address();
        if (address === null || typeof address === 'string') {
          reject(new Error('proxy did not bind a TCP port'));
          return;
        }
        proxy.boundAddress = { host: options.listen.host, port: address.port };
        resolve(proxy);
      });
    });
  }

  get address(): Address {
    if (this.boundAddress === undefined) throw new Error('proxy not started');
    return this.boundAddress;
  }

  /** Round-trip time added = 2 × delayMs. */
  setDelay(delayMs: number, jitterMs = 0): void {
    this.delayMs = delayMs;
    this.jitterMs = jitterMs;
  }

  setBandwidth(bytesPerSecond: number | undefined): void {
    this.bandwidthBytesPerSecond = bytesPerSecond;
  }

  /** Cuts the link: every open connection is dropped; new ones are held silent until heal(). */
  partition(): void {
    this.partitioned = true;
    for (const connection of [...this.connections]) this.drop(connection);
  }

  heal(): void {
    this.partitioned = false;
    for (const connection of this.connections) {
      if (connection.upstream === undefined) this.connectUpstream(connection);
      connection.up?.schedule();
      connection.down?.schedule();
    }
  }

  private accept(client: Socket): void {
    client.setNoDelay(true);
    this.totals.connections += 1;
    const connection: ProxiedConnection = { client, upstream: undefined, up: undefined, down: undefined };
    this.connections.add(connection);
    client.on('error', () => this.drop(connection));
    client.on('close', () => this.drop(connection));
    connection.up = new Direction(this, client, () => connection.upstream, this.upLink);
    if (!this.partitioned) this.connectUpstream(connection);
  }

  private connectUpstream(connection: ProxiedConnection): void {
    const upstream = connectSocket(this.target.port, this.target.host);
    upstream.setNoDelay(true);
    connection.upstream = upstream;
    connection.down = new Direction(this, upstream, () => connection.client, this.downLink);
    upstream.on('connect', () => connection.up?.schedule());
    upstream.on('error', () => this.drop(connection));
    upstream.on('close', () => this.drop(connection));
  }

  private drop(connection: ProxiedConnection): void {
    if (!this.connections.delete(connection)) return;
    connection.up?.stop();
    connection.down?.stop();
    this.totals.bytesUp += connection.up?.bytes ?? 0;
    this.totals.bytesDown += connection.down?.bytes ?? 0;
    connection.client.destroy();
    connection.upstream?.destroy();
  }

  get openConnections(): number {
    return this.connections.size;
  }

  close(): Promise<void> {
    for (const connection of [...this.connections]) this.drop(connection);
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
