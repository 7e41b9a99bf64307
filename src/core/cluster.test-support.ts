// Test support shared by the in-process cluster tests (site.test.ts, wan.test.ts): a logger
// that keeps what members log, and starting a member over the real loopback network.
// Test code: like *.test.ts it may use real time and the Node runtime (see lint.test.ts).

import type { LogFields, Logger, Address } from '../runtime/runtime.ts';
import type { NodeRuntime } from '../runtime/node/node-runtime.ts';
import type { Locator } from './locator.ts';
import type { Server } from './server.ts';

export class CapturingLogger implements Logger {
  readonly lines: { level: string; fields: LogFields; message: string }[];
  constructor(lines: CapturingLogger['lines'] = []) {
    this.lines = lines;
  }
  debug(fields: LogFields, message: string) { this.lines.push({ level: 'debug', fields, message }); }
  info(fields: LogFields, message: string) { this.lines.push({ level: 'info', fields, message }); }
  warn(fields: LogFields, message: string) { this.lines.push({ level: 'warn', fields, message }); }
  error(fields: LogFields, message: string) { this.lines.push({ level: 'error', fields, message }); }
  child(bindings: LogFields): Logger {
    const parent = this;
    return {
      debug: (fields, message) => parent.debug({ ...bindings, ...fields }, message),
      info: (fields, message) => parent.info({ ...bindings, ...fields }, message),
      warn: (fields, message) => parent.warn({ ...bindings, ...fields }, message),
      error: (fields, message) => parent.error({ ...bindings, ...fields }, message),
      child: (more) => parent.child({ ...bindings, ...more }),
    };
  }
}

export interface Running<T> {
  readonly node: T;
  readonly runtime: NodeRuntime;
  readonly address: Address;
  readonly log: CapturingLogger;
}

/** Starts a member; resolves once it is ready, rejects with its coded error otherwise. */
export function started<T extends Locator | Server>(node: T, runtime: NodeRuntime, log: CapturingLogger): Promise<Running<T>> {
  return new Promise((resolve, reject) => {
    node.start((result) => {
      if (result.ok && result.address) resolve({ node, runtime, address: result.address, log });
      else reject(result.error);
    });
  });
}
