// A small RESP2 client for the WAN benchmark: pipelined commands (many in flight on one
// connection) and pub/sub messages (keyspace notifications of a Redis replica). The parser
// accepts any chunk boundary and nested arrays.

import { createConnection, type Socket } from 'node:net';

export type RespValue = string | number | null | Error | RespValue[];

/** Incremental RESP2 parser: `push` chunks, `next()` until undefined (more bytes needed). */
export class RespParser {
  private buffer: Buffer = Buffer.alloc(0);
  private offset = 0;

  push(chunk: Buffer): void {
    this.buffer = this.offset < this.buffer.length ? Buffer.concat([this.buffer.subarray(this.offset), chunk]) : chunk;
    this.offset = 0;
  }

  next(): { value: RespValue } | undefined {
    const parsed = this.parseAt(this.offset);
    if (parsed === undefined) return undefined;
    this.offset = parsed.end;
    return { value: parsed.value };
  }

  private parseAt(start: number): { value: RespValue; end: number } | undefined {
    const lineEnd = this.buffer.indexOf('\r\n', start, 'latin1');
    if (lineEnd < 0) return undefined;
    const type = this.buffer[start];
    const line = this.buffer.toString('utf8', start + 1, lineEnd);
    const after = lineEnd + 2;
    switch (type) {
      case 0x2b: // +
        return { value: line, end: after };
      case 0x2d: // -
        return { value: new Error(line), end: after };
      case 0x3a: // :
        return { value: Number(line), end: after };
      case 0x24: { // $
        const length = Number(line);
        if (length < 0) return { value: null, end: after };
        if (this.buffer.length < after + length + 2) return undefined;
        return { value: this.buffer.toString('utf8', after, after + length), end: after + length + 2 };
      }
      case 0x2a: { // *
        const count = Number(line);
        if (count < 0) return { value: null, end: after };
        const items: RespValue[] = [];
        let at = after;
        for (let index = 0; index < count; index++) {
          const item = this.parseAt(at);
          if (item === undefined) return undefined;
          items.push(item.value);
          at = item.end;
        }
        return { value: items, end: at };
      }
      default:
        throw new Error(`unexpected RESP type byte ${type}`);
    }
  }
}

/** Encodes a command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly string[]): string {
  let text = `*${args.length}\r\n`;
  for (const arg of args) text += `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`;
  return text;
}

export class RespClient {
  private readonly socket: Socket;
  private readonly parser = new RespParser();
  private readonly waiting: { resolve: (value: RespValue) => void; reject: (error: Error) => void }[] = [];
  private onPush: ((message: RespValue[]) => void) | undefined;
  private corked = false;
  private failure: Error | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('redis connection closed')));
  }

  static open(port: number, host = '127.0.0.1'): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ host, port });
      socket.setNoDelay(true);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RespClient(socket));
      });
    });
  }

  /** Sends a command; resolves with its reply (an error reply rejects). */
  command(args: readonly string[]): Promise<RespValue> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.write(encodeCommand(args));
    });
  }

  /** Sends a command whose reply nobody waits for individually (it is still read in order). */
  send(args: readonly string[], onReply: (value: RespValue) => void): void {
    this.waiting.push({ resolve: onReply, reject: () => {} });
    this.write(encodeCommand(args));
  }

  /** PSUBSCRIBE: from now on every `pmessage` goes to `handler`. */
  async psubscribe(pattern: string, handler: (channel: string, message: string) => void): Promise<void> {
    this.onPush = (message) => {
      if (message[0] === 'pmessage') handler(String(message[2]), String(message[3]));
    };
    await this.command(['PSUBSCRIBE', pattern]);
  }

  close(): void {
    this.socket.destroy();
  }

  private write(text: string): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(text);
  }

  private receive(chunk: Buffer): void {
    this.parser.push(chunk);
    for (;;) {
      let parsed: { value: RespValue } | undefined;
      try {
        parsed = this.parser.next();
      } catch (error) {
        this.fail(error as Error);
        this.socket.destroy();
        return;
      }
      if (parsed === undefined) return;
      const value = parsed.value;
      if (this.onPush !== undefined && Array.isArray(value) && (value[0] === 'pmessage' || value[0] === 'message')) {
        this.onPush(value);
        continue;
      }
      const waiter = this.waiting.shift();
      if (waiter === undefined) continue;
      if (value instanceof Error) waiter.reject(value);
      else waiter.resolve(value);
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of this.waiting.splice(0)) waiter.reject(error);
  }
}
