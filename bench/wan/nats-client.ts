// A minimal NATS client for the benchmark, over node:net: CONNECT, PUB, SUB, request/reply
// with one wildcard inbox, PING/PONG flush, and a parser for MSG and HMSG that accepts any
// chunk boundary. Enough to drive JetStream through its JSON API ($JS.API.*) and to publish with
// acknowledgements; not a general client (no reconnect, no auth, no TLS).

import { createConnection, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

export type MessageHandler = (subject: string, payload: Buffer, reply: string | undefined) => void;

/** A request that has no reply after this long fails. */
const REQUEST_TIMEOUT_MS = 10_000;
const CRLF = Buffer.from('\r\n');

export interface ParsedMessage {
  readonly subject: string;
  readonly sid: number;
  readonly reply: string | undefined;
  /** The payload without headers. */
  readonly payload: Buffer;
}

export type ParsedOp =
  | { readonly op: 'msg'; readonly message: ParsedMessage }
  | { readonly op: 'ping' | 'pong' | 'ok' }
  | { readonly op: 'info'; readonly info: string }
  | { readonly op: 'err'; readonly error: string };

/**
 * Incremental parser of the server → client protocol. `push` a chunk, then `next()` until it
 * returns undefined (more bytes needed).
 */
export class NatsParser {
  private buffer: Buffer = Buffer.alloc(0);
  private offset = 0;

  push(chunk: Buffer): void {
    this.buffer = this.offset < this.buffer.length ? Buffer.concat([this.buffer.subarray(this.offset), chunk]) : chunk;
    this.offset = 0;
  }

  next(): ParsedOp | undefined {
    const lineEnd = this.buffer.indexOf(CRLF, this.offset);
    if (lineEnd < 0) return undefined;
    const line = this.buffer.toString('latin1', this.offset, lineEnd);
    const space = line.indexOf(' ');
    const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    if (verb === 'MSG' || verb === 'HMSG') {
      const parts = line.split(' ');
      const headers = verb === 'HMSG';
      // MSG subject sid [reply] size | HMSG subject sid [reply] hdrsize totalsize
      const fixed = headers ? 5 : 4;
      const reply = parts.length > fixed ? parts[3] : undefined;
      const total = Number(parts[parts.length - 1]);
      const headerBytes = headers ? Number(parts[parts.length - 2]) : 0;
      const bodyStart = lineEnd + 2;
      if (this.buffer.length < bodyStart + total + 2) return undefined;
      const payload = this.buffer.subarray(bodyStart + headerBytes, bodyStart + total);
      this.offset = bodyStart + total + 2;
      return { op: 'msg', message: { subject: parts[1]!, sid: Number(parts[2]), reply, payload } };
    }
    this.offset = lineEnd + 2;
    if (verb === 'PING') return { op: 'ping' };
    if (verb === 'PONG') return { op: 'pong' };
    if (verb === '+OK') return { op: 'ok' };
    if (verb === 'INFO') return { op: 'info', info: line.slice(5) };
    if (verb === '-ERR') return { op: 'err', error: line.slice(5) };
    throw new Error(`unexpected NATS protocol line: ${line.slice(0, 200)}`);
  }
}

export class NatsConnection {
  private readonly socket: Socket;
  private readonly parser = new NatsParser();
  private readonly handlers = new Map<number, MessageHandler>();
  private readonly pongs: ((error?: Error) => void)[] = [];
  private readonly pending = new Map<number, { resolve: (payload: Buffer) => void; reject: (error: Error) => void; timer: NodeJS.Timeout | undefined }>();
  private readonly inbox = `_INBOX.${randomBytes(8).toString('hex')}`;
  private nextSid = 1;
  private nextRequest = 1;
  private inboxSid = 0;
  private corked = false;
  private failure: Error | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('NATS connection closed')));
  }

  static open(port: number, host = '127.0.0.1'): Promise<NatsConnection> {
    return new Promise((resolve, reject) => {
      const socket = createConnection({ host, port });
      socket.setNoDelay(true);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        const connection = new NatsConnection(socket);
        connection.write(`CONNECT ${JSON.stringify({ verbose: false, pedantic: false, headers: true, no_responders: true, protocol: 1, name: 'strait-wan-bench' })}\r\n`);
        connection.inboxSid = connection.subscribe(`${connection.inbox}.*`, (subject, payload) => connection.answer(subject, payload));
        connection.flush().then(() => resolve(connection), reject);
      });
    });
  }

  private write(text: string | Buffer): void {
    if (this.failure !== undefined) throw this.failure;
    // Writes of one tick go out together.
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

  subscribe(subject: string, handler: MessageHandler): number {
    const sid = this.nextSid++;
    this.handlers.set(sid, handler);
    this.write(`SUB ${subject} ${sid}\r\n`);
    return sid;
  }

  unsubscribe(sid: number): void {
    this.handlers.delete(sid);
    this.write(`UNSUB ${sid}\r\n`);
  }

  publish(subject: string, payload: Buffer | string, reply?: string): void {
    const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
    this.write(`PUB ${subject}${reply === undefined ? '' : ` ${reply}`} ${body.length}\r\n`);
    this.write(body);
    this.write(CRLF);
  }

  /**
   * Publishes with a reply inbox and resolves with the reply's payload. `timeoutMs` 0 sets no
   * timer (the benchmark's many in-flight publishes; the connection failing still rejects).
   */
  request(subject: string, payload: Buffer | string, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Buffer> {
    const id = this.nextRequest++;
    return new Promise((resolve, reject) => {
      const timer = timeoutMs === 0 ? undefined : setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`NATS request ${subject} had no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.publish(subject, payload, `${this.inbox}.${id}`);
    });
  }

  /** A JetStream API call: JSON in, JSON out; an `error` member in the answer rejects. */
  async api<T>(subject: string, body: unknown): Promise<T> {
    const reply = JSON.parse((await this.request(subject, body === undefined ? '' : JSON.stringify(body))).toString('utf8')) as T & { error?: { description?: string; code?: number } };
    if (reply.error !== undefined) throw new Error(`${subject}: ${reply.error.description ?? JSON.stringify(reply.error)}`);
    return reply;
  }

  /** Resolves once the server has processed everything written so far. */
  flush(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pongs.push((error) => (error === undefined ? resolve() : reject(error)));
      this.write('PING\r\n');
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private answer(subject: string, payload: Buffer): void {
    const id = Number(subject.slice(this.inbox.length + 1));
    const waiting = this.pending.get(id);
    if (waiting === undefined) return;
    this.pending.delete(id);
    clearTimeout(waiting.timer);
    // The payload is a view of the receive buffer: copy what outlives this call.
    waiting.resolve(Buffer.from(payload));
  }

  private receive(chunk: Buffer): void {
    this.parser.push(chunk);
    for (;;) {
      let parsed: ParsedOp | undefined;
      try {
        parsed = this.parser.next();
      } catch (error) {
        this.fail(error as Error);
        this.socket.destroy();
        return;
      }
      if (parsed === undefined) return;
      switch (parsed.op) {
        case 'msg':
          this.handlers.get(parsed.message.sid)?.(parsed.message.subject, parsed.message.payload, parsed.message.reply);
          break;
        case 'ping':
          this.write('PONG\r\n');
          break;
        case 'pong':
          this.pongs.shift()?.();
          break;
        case 'err':
          this.fail(new Error(`NATS server error: ${parsed.error}`));
          break;
        default:
          break;
      }
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const pong of this.pongs.splice(0)) pong(error);
    for (const [id, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject(error);
      this.pending.delete(id);
    }
  }

  get inboxSubscription(): number {
    return this.inboxSid;
  }
}
