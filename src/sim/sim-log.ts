// The simulator's log: every host's Logger writes to one sink, stamped with the virtual time and
// the host's name, so a failing seed's log reads as one timeline. The sink keeps nothing
// ('silent'), the last records in a ring buffer for `Simulator.dumpLog` ('collect'), or also
// prints each record as it is written ('print'). A record is formatted only when it is printed
// or dumped, and the ring buffer's capacity bounds what the simulator holds.

import { assert } from '../errors.ts';
import type { LogFields, Logger } from '../runtime/runtime.ts';

export type LogMode = 'silent' | 'collect' | 'print';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

interface LogRecord {
  readonly timeMs: number;
  readonly host: string;
  readonly level: LogLevel;
  readonly message: string;
  readonly bindings: LogFields;
  readonly fields: LogFields;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[\w.:[\]/#@-]*$/.test(value) && value !== '' ? value : JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value instanceof Uint8Array) return `<${value.length} bytes>`;
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return JSON.stringify(typeof code === 'string' ? `${code}: ${value.message}` : value.message);
  }
  if (typeof value !== 'object' || value === null) return String(value);
  try {
    return JSON.stringify(value, (_key, item: unknown) => {
      if (typeof item === 'bigint') return `${item}n`;
      if (item instanceof Uint8Array) return `<${item.length} bytes>`;
      return item;
    });
  } catch {
    return '[unserializable]';
  }
}

function formatRecord(record: LogRecord): string {
  let line = `${String(record.timeMs).padStart(9)}ms ${record.host} ${record.level.toUpperCase()} ${record.message}`;
  for (const fields of [record.bindings, record.fields]) {
    for (const [key, value] of Object.entries(fields)) line += ` ${key}=${formatValue(value)}`;
  }
  return line;
}

/** Where every host's log records go: nowhere, a ring buffer, or the ring buffer and stdout. */
export class LogSink {
  readonly mode: LogMode;
  private readonly capacity: number;
  private readonly records: (LogRecord | undefined)[];
  private nextIndex = 0;
  private count = 0;
  private readonly clock: () => number;

  constructor(mode: LogMode, capacity: number, clock: () => number) {
    assert(Number.isSafeInteger(capacity) && capacity > 0, `logLinesMax must be a positive integer, got ${capacity}`);
    this.mode = mode;
    this.capacity = capacity;
    this.records = mode === 'silent' ? [] : new Array<LogRecord | undefined>(capacity);
    this.clock = clock;
  }

  write(host: string, level: LogLevel, bindings: LogFields, fields: LogFields, message: string): void {
    if (this.mode === 'silent') return;
    const record: LogRecord = { timeMs: this.clock(), host, level, message, bindings, fields };
    this.records[this.nextIndex] = record;
    this.nextIndex = (this.nextIndex + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
    if (this.mode === 'print') process.stdout.write(`${formatRecord(record)}\n`);
  }

  dump(): string {
    const lines: string[] = [];
    const start = (this.nextIndex - this.count + this.capacity) % this.capacity;
    for (let offset = 0; offset < this.count; offset++) {
      const record = this.records[(start + offset) % this.capacity];
      if (record !== undefined) lines.push(formatRecord(record));
    }
    return lines.join('\n');
  }
}

export class SimLogger implements Logger {
  private readonly sink: LogSink;
  private readonly host: string;
  private readonly bindings: LogFields;

  constructor(sink: LogSink, host: string, bindings: LogFields) {
    this.sink = sink;
    this.host = host;
    this.bindings = bindings;
  }

  debug(fields: LogFields, message: string): void {
    this.sink.write(this.host, 'debug', this.bindings, fields, message);
  }

  info(fields: LogFields, message: string): void {
    this.sink.write(this.host, 'info', this.bindings, fields, message);
  }

  warn(fields: LogFields, message: string): void {
    this.sink.write(this.host, 'warn', this.bindings, fields, message);
  }

  error(fields: LogFields, message: string): void {
    this.sink.write(this.host, 'error', this.bindings, fields, message);
  }

  child(bindings: LogFields): Logger {
    return new SimLogger(this.sink, this.host, { ...this.bindings, ...bindings });
  }
}
