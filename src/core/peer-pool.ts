// Outgoing connections of a member, one per peer address, opened on demand and dropped when
// they close (the next `get` reconnects). Reconnect pacing is the caller's: membership retries
// on its heartbeat tick, replication on its backoff.

import type { Address, Runtime } from '../runtime/runtime.ts';
import { Connection, type ConnectionHandler, type ConnectionOptions } from '../protocol/connection.ts';

export function addressKey(address: Address): string {
  return `${address.host}:${address.port}`;
}

export class PeerPool {
  private readonly runtime: Runtime;
  private options: ConnectionOptions;
  private readonly handler: ConnectionHandler;
  private readonly connections = new Map<string, Connection>();
  private closed = false;

  constructor(runtime: Runtime, options: ConnectionOptions, handler: ConnectionHandler) {
    this.runtime = runtime;
    this.options = options;
    this.handler = handler;
  }

  /** The open (or opening) connection to `address`, opening one if there is none. */
  get(address: Address): Connection {
    const key = addressKey(address);
    const existing = this.connections.get(key);
    if (existing !== undefined && existing.state !== 'closed') return existing;
    const connection = Connection.open(this.runtime, address, this.options, {
      onOpen: (opened) => this.handler.onOpen(opened),
      onRequest: (from, request, reply) => this.handler.onRequest(from, request, reply),
      onPush: (from, op, body) => this.handler.onPush(from, op, body),
      onClose: (closedConnection, error) => {
        if (this.connections.get(key) === closedConnection) this.connections.delete(key);
        this.handler.onClose(closedConnection, error);
      },
    });
    if (this.closed) {
      connection.close();
      return connection;
    }
    this.connections.set(key, connection);
    return connection;
  }

  /** Uses `options` for connections opened from now on (a server that learned its site id). */
  reconfigure(options: ConnectionOptions): void {
    this.options = options;
    for (const connection of [...this.connections.values()]) connection.close();
    this.connections.clear();
  }

  /** The connection to `address` if one is open or opening. */
  peek(address: Address): Connection | undefined {
    const connection = this.connections.get(addressKey(address));
    return connection?.state === 'closed' ? undefined : connection;
  }

  drop(address: Address): void {
    this.connections.get(addressKey(address))?.close();
  }

  closeAll(): void {
    this.closed = true;
    for (const connection of [...this.connections.values()]) connection.close();
    this.connections.clear();
  }
}
