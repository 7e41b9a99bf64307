// A client connection to one given server, bypassing the locator's choice: the soak reads every
// acknowledged write back from every server (not from whichever one a locator picks) and
// watches each server's own subscription stream. Built on the protocol's Connection, as the
// TypeScript client is; values are decoded the client's way.

import { decodeValue } from '../src/client/client.ts';
import { StraitError } from '../src/errors.ts';
import { Connection, type ConnectionOptions } from '../src/protocol/connection.ts';
import type { PushOp } from '../src/protocol/messages.ts';
import type { Address, Runtime } from '../src/runtime/runtime.ts';

/** A read or subscribe that takes longer than this fails (the server is down or stuck). */
const REQUEST_TIMEOUT_MS = 10_000;
/** Gets kept in flight by `getMany`. */
const GETS_IN_FLIGHT_MAX = 256;
/** The largest frame accepted from the server (a get answer carries one value). */
const FRAME_BYTES_MAX = 64 * 1024 * 1024;

export interface SubscriptionEvent {
  readonly key: string;
  /** undefined for a removal. */
  readonly value: unknown;
}

export class MemberConnection {
  readonly member: string;
  private readonly connection: Connection;
  private readonly onEvent: Map<number, (event: SubscriptionEvent) => void> = new Map();
  private closedWith: Error | undefined | null = null;

  private constructor(member: string, connection: Connection) {
    this.member = member;
    this.connection = connection;
  }

  /** Opens a connection to `member` at `address`; resolves after the handshake. */
  static open(runtime: Runtime, member: string, address: Address, clientName: string): Promise<MemberConnection> {
    const options: ConnectionOptions = {
      local: { role: 'client', name: clientName, site: null },
      frameBytesMax: FRAME_BYTES_MAX,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      requestsInFlightMax: GETS_IN_FLIGHT_MAX * 2,
    };
    return new Promise((resolve, reject) => {
      let opened: MemberConnection | undefined;
      const connection = Connection.open(runtime, address, options, {
        onOpen: () => resolve(opened!),
        onRequest: (_connection, _request, reply) => {
          reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: member, reason: 'the soak serves no requests' }));
        },
        onPush: (_connection, op: PushOp, body) => {
          if (op !== 'event') return;
          const event = body as { subscription: number; key: string; value: Uint8Array | null };
          opened?.onEvent.get(event.subscription)?.({ key: event.key, value: event.value === null ? undefined : decodeValue(event.value) });
        },
        onClose: (_connection, error) => {
          if (opened !== undefined) opened.closedWith = error;
          reject(error ?? new Error(`connection to ${member} closed during the handshake`));
        },
      });
      opened = new MemberConnection(member, connection);
    });
  }

  /** True once the connection closed (the server died, or `close()`). */
  get closed(): boolean {
    return this.closedWith !== null || this.connection.isClosed();
  }

  get(region: string, key: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.connection.request('get', { region, key }, (error, response) => {
        if (error !== undefined || response === undefined) reject(error ?? new Error(`get ${key} from ${this.member}: no answer`));
        else resolve(response.value === null ? undefined : decodeValue(response.value));
      });
    });
  }

  /** Reads `keys` (at most GETS_IN_FLIGHT_MAX at a time); one value (undefined = absent) per key, in order. */
  async getMany(region: string, keys: readonly string[]): Promise<unknown[]> {
    const values: unknown[] = new Array(keys.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < keys.length) {
        const index = next++;
        values[index] = await this.get(region, keys[index]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(GETS_IN_FLIGHT_MAX, keys.length) }, worker));
    return values;
  }

  /** Subscribes to `region`; `onEvent` gets every change this server applies from now on. */
  subscribe(region: string, onEvent: (event: SubscriptionEvent) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.connection.request('subscribe', { region }, (error, response) => {
        if (error !== undefined || response === undefined) {
          reject(error ?? new Error(`subscribe to ${region} at ${this.member}: no answer`));
          return;
        }
        this.onEvent.set(response.subscription, onEvent);
        resolve();
      });
    });
  }

  close(): void {
    this.connection.close();
  }
}
