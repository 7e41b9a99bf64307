// Test support for the server's parts (write path, initial image, receiver, sender hosting):
// a stand-in for the peer pool that records requests and lets the test answer them, a
// stand-in for a connection, and view building. Test code, exempt from the layering lint.

import type { StraitError } from '../errors.ts';
import type { Connection } from '../protocol/connection.ts';
import type { MemberInfo, PushOp, RequestBody, RequestOp, ResponseBody, View } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';
import type { PeerPool } from './peer-pool.ts';

export interface RecordedRequest {
  readonly address: Address;
  readonly op: RequestOp;
  readonly body: unknown;
  answered: boolean;
  answer(error: StraitError | undefined, response?: unknown): void;
}

/** A PeerPool whose connections record requests instead of sending them. */
export class RecordingPool {
  readonly requests: RecordedRequest[] = [];

  get(address: Address): { request: <Op extends RequestOp>(op: Op, body: RequestBody<Op>, callback: (error: StraitError | undefined, response: ResponseBody<Op> | undefined) => void) => void } {
    return {
      request: (op, body, callback) => {
        const recorded: RecordedRequest = {
          address, op, body, answered: false,
          answer: (error, response) => {
            recorded.answered = true;
            callback(error, response as never);
          },
        };
        this.requests.push(recorded);
      },
    };
  }

  /** Requests of `op` not answered yet. */
  open(op: RequestOp): RecordedRequest[] {
    return this.requests.filter((request) => request.op === op && !request.answered);
  }

  asPool(): PeerPool {
    return this as unknown as PeerPool;
  }
}

let connectionNumber = 0;

export type RecordingConnection = Connection & {
  pushes: { op: PushOp; body: unknown }[];
  /** While true, pushes are refused as a backlogged connection refuses them. */
  backlogged: boolean;
};

/** A connection stand-in that records pushes. */
export function recordingConnection(label: string, role: 'client' | 'server' | 'gateway' = 'client'): RecordingConnection {
  const pushes: { op: PushOp; body: unknown }[] = [];
  const connection = {
    label,
    number: ++connectionNumber,
    peer: { role, name: label, site: 1, version: 2, frameBytesMax: 1 << 24 },
    state: 'open',
    pushes,
    backlogged: false,
    bufferedBytes: 0,
    isClosed: () => false,
    push(op: PushOp, body: unknown, options: { evenIfBacklogged?: boolean } = {}) {
      if (connection.backlogged && options.evenIfBacklogged !== true) return false;
      pushes.push({ op, body });
      return true;
    },
  };
  return connection as unknown as RecordingConnection;
}

export function serverInfo(name: string, extra: Partial<MemberInfo> = {}): MemberInfo {
  return { id: `${name}#1`, name, role: 'server', site: 1, address: { host: `host-${name}`, port: 40404 }, regions: ['R'], ...extra };
}

/** A view of the given servers, join order as listed. */
export function viewOf(members: readonly MemberInfo[], id = 1, ready: readonly boolean[] = []): View {
  return {
    site: 1, id, lineage: [0, 'locator#1'], coordinator: 'locator#1',
    members: members.map((info, index) => ({ info, joinSeq: index + 1, load: 0, ready: ready[index] ?? true })),
    departed: [],
  };
}
