// A deterministic simulator in the manner of TigerBeetle's VOPR: one Node process runs many
// simulated hosts — each with an address, a disk and a process that can crash and restart —
// against a simulated network, in virtual time, from a single seed.
//
// Guarantees:
// - Determinism. Given the same seed and the same scenario code, every run processes the same
//   events in the same order at the same virtual times. Events are ordered by (time, sequence
//   number), so events due at the same time run first-scheduled first. All randomness comes
//   from SeededRandom streams forked from the seed by label (`network`, `disk:<host>`,
//   `process:<host>#<incarnation>`, `scenario`).
// - Virtual time. Nothing waits on real time; `run` jumps from event to event. `nowMs` starts at
//   0; a process's wall clock reads `wallClockEpochMs + nowMs + host.clockSkewMs`, its monotonic
//   clock `nowMs`.
// - Crashes. `SimHost.crash()` kills the running process: its timers and pending callbacks never
//   fire, its listeners close, its streams reset (peers see ECONNRESET), and its disk loses every
//   write not yet made durable by a completed `sync`. `runtime()` afterwards starts a new
//   incarnation over the same disk.
// - Failures. An exception thrown by any event callback stops `run` with a SimulationFailure
//   that names the virtual time and the seed, and how to replay it.

import { assert } from '../errors.ts';
import { MemoryStorage } from '../runtime/memory-storage.ts';
import type { Clock, Compression, LogFields, Logger, Runtime, Timer } from '../runtime/runtime.ts';
import { SeededRandom } from './random.ts';
import { SimNetwork, type EventOwner, type EventScheduler, type NetworkOptions } from './sim-network.ts';

/** What a process's wall clock reads at virtual time 0 (2023-11-14T22:13:20Z). */
export const wallClockEpochMs = 1_700_000_000_000;
/** Steps one `run` takes at most unless told otherwise, so a livelock ends instead of hanging. */
export const runStepsMaxDefault = 10_000_000;
/** Log records kept in 'collect' mode for `dumpLog`. */
export const logLinesMaxDefault = 2000;
/** A disk flush completes within 0..diskSyncDelayMaxMs ms of virtual time. */
const diskSyncDelayMaxMs = 2;
/** Node runs a timer no sooner than 1 ms after it was set; so does the simulator. */
const timerDelayMinMs = 1;

export type LogMode = 'silent' | 'collect' | 'print';

export interface SimulatorOptions {
  readonly seed: number;
  readonly network?: Partial<NetworkOptions>;
  /** 'silent' discards logs, 'collect' (default) keeps the last `logLinesMax` for `dumpLog`, 'print' also writes them to stdout. */
  readonly log?: LogMode;
  readonly logLinesMax?: number;
}

export interface HostOptions {
  /** Default: the next free of 10.0.0.1, 10.0.0.2, … */
  readonly address?: string;
  /** Added to the host's wall clock (never to its monotonic clock). */
  readonly clockSkewMs?: number;
}

export interface RunOptions {
  /** Stop once the next event is due after this virtual time; the clock then reads `untilMs`. */
  readonly untilMs?: number;
  /** Stop after this many events (default runStepsMaxDefault). */
  readonly maxSteps?: number;
  /** Stop as soon as this returns true; checked before every event. */
  readonly until?: () => boolean;
}

/** Why `run` returned: the predicate held, the time limit came, the step limit, or no events were left. */
export type RunStopReason = 'until' | 'time' | 'steps' | 'idle';

export interface RunResult {
  readonly reason: RunStopReason;
  /** Events processed by this call. */
  readonly steps: number;
  readonly nowMs: number;
}

/** An exception escaped a simulated callback. `seed` replays the run. */
export class SimulationFailure extends Error {
  readonly seed: number;
  readonly timeMs: number;
  readonly hostName: string | undefined;

  constructor(seed: number, timeMs: number, hostName: string | undefined, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const where = hostName === undefined ? '' : `${hostName}: `;
    super(`simulation failed at t=${timeMs}ms (seed ${seed}): ${where}${reason}; replay: npm run sim -- --seed ${seed}`, { cause });
    this.name = 'SimulationFailure';
    this.seed = seed;
    this.timeMs = timeMs;
    this.hostName = hostName;
  }
}

// --- the event queue ----------------------------------------------------------------------------

class QueuedEvent implements Timer {
  readonly timeMs: number;
  readonly sequence: number;
  readonly callback: () => void;
  readonly owner: EventOwner | undefined;
  cancelled = false;

  constructor(timeMs: number, sequence: number, callback: () => void, owner: EventOwner | undefined) {
    this.timeMs = timeMs;
    this.sequence = sequence;
    this.callback = callback;
    this.owner = owner;
  }

  cancel(): void {
    this.cancelled = true;
  }

  get live(): boolean {
    return !this.cancelled && (this.owner === undefined || this.owner.alive);
  }
}

function runsBefore(left: QueuedEvent, right: QueuedEvent): boolean {
  return left.timeMs < right.timeMs || (left.timeMs === right.timeMs && left.sequence < right.sequence);
}

/** A binary min-heap of events keyed by (time, sequence). */
class EventQueue {
  private readonly heap: QueuedEvent[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(event: QueuedEvent): void {
    const heap = this.heap;
    let index = heap.length;
    heap.push(event);
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex] as QueuedEvent;
      if (!runsBefore(event, parent)) break;
      heap[index] = parent;
      index = parentIndex;
    }
    heap[index] = event;
  }

  /** The next event that will run, dropping cancelled ones and those of dead processes. */
  peekLive(): QueuedEvent | undefined {
    let head = this.heap[0];
    while (head !== undefined && !head.live) {
      this.pop();
      head = this.heap[0];
    }
    return head;
  }

  pop(): QueuedEvent | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let index = 0;
    const length = heap.length;
    for (;;) {
      const leftIndex = 2 * index + 1;
      if (leftIndex >= length) break;
      const rightIndex = leftIndex + 1;
      let childIndex = leftIndex;
      if (rightIndex < length && runsBefore(heap[rightIndex] as QueuedEvent, heap[leftIndex] as QueuedEvent)) childIndex = rightIndex;
      const child = heap[childIndex] as QueuedEvent;
      if (!runsBefore(child, last)) break;
      heap[index] = child;
      index = childIndex;
    }
    heap[index] = last;
    return top;
  }
}

// --- logging ------------------------------------------------------------------------------------

type LogLevel = 'debug' | 'info' | 'warn' | 'error';

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
class LogSink {
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

class SimLogger implements Logger {
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

// --- hosts --------------------------------------------------------------------------------------

/** One incarnation of the process on a host; dies at the host's next crash. */
class SimProcess implements EventOwner {
  readonly hostName: string;
  readonly incarnation: number;
  alive = true;

  constructor(hostName: string, incarnation: number) {
    this.hostName = hostName;
    this.incarnation = incarnation;
  }
}

/** What a host needs from its simulator. */
interface HostKernel {
  readonly scheduler: EventScheduler;
  readonly network: SimNetwork;
  readonly random: SeededRandom;
  readonly logSink: LogSink;
}

/**
 * A simulated machine: an address, a disk that outlives crashes, and at most one running
 * process whose `Runtime` is `runtime()`.
 */
export class SimHost {
  readonly name: string;
  readonly address: string;
  /** The host's disk. Flushes complete 0–2 ms after `sync`; a crash loses what is not durable. */
  readonly storage: MemoryStorage;
  /** Added to this host's wall clock; change it to make the clock jump. */
  clockSkewMs: number;
  private readonly kernel: HostKernel;
  private process: SimProcess | undefined = undefined;
  private processRuntime: Runtime | undefined = undefined;
  private incarnationCount = 0;

  /** @internal Created by `Simulator.host`. */
  constructor(kernel: HostKernel, name: string, address: string, clockSkewMs: number) {
    this.kernel = kernel;
    this.name = name;
    this.address = address;
    this.clockSkewMs = clockSkewMs;
    const diskRandom = kernel.random.fork(`disk:${name}`);
    this.storage = new MemoryStorage({
      // A flush belongs to the process that asked for it: if it crashes first, the flush never completes.
      schedule: (callback) => kernel.scheduler.schedule(diskRandom.int(diskSyncDelayMaxMs + 1), callback, this.process),
    });
    this.start();
  }

  /** True while a process runs on this host (false between `crash()` and the next `runtime()`). */
  get alive(): boolean {
    return this.process !== undefined;
  }

  /** 1 for the first process, then one more per restart. */
  get incarnation(): number {
    return this.incarnationCount;
  }

  /** The Runtime of the running process; after a crash, starts a fresh process over the same disk. */
  runtime(): Runtime {
    if (this.processRuntime === undefined) this.start();
    return this.processRuntime as Runtime;
  }

  /** Kills the running process (kill -9 / power cut): see the module comment. No-op when none runs. */
  crash(): void {
    const process = this.process;
    if (process === undefined) return;
    process.alive = false;
    this.process = undefined;
    this.processRuntime = undefined;
    this.kernel.network.crash(this.name);
    this.storage.crash();
    this.kernel.logSink.write(this.name, 'info', {}, { incarnation: process.incarnation }, 'process crashed');
  }

  private start(): void {
    this.incarnationCount++;
    const incarnation = this.incarnationCount;
    const process = new SimProcess(this.name, incarnation);
    const scheduler = this.kernel.scheduler;
    const clock: Clock = {
      now: () => Math.floor(wallClockEpochMs + scheduler.nowMs + this.clockSkewMs),
      monotonic: () => scheduler.nowMs,
    };
    const label = incarnation === 1 ? this.name : `${this.name}#${incarnation}`;
    this.process = process;
    this.processRuntime = {
      clock,
      random: this.kernel.random.fork(`process:${this.name}#${incarnation}`),
      // Same virtual time, after the current event: events at equal times run in order.
      defer: (callback) => {
        scheduler.schedule(0, callback, process);
      },
      setTimer: (delayMs, callback) => {
        const delay = Number.isFinite(delayMs) && delayMs >= timerDelayMinMs ? delayMs : timerDelayMinMs;
        return scheduler.schedule(delay, callback, process);
      },
      network: this.kernel.network.attach(this.name, process),
      storage: this.storage,
      compression: SIM_COMPRESSION,
      log: new SimLogger(this.kernel.logSink, label, {}),
    };
  }
}

/** The first byte of the simulator's "compressed" form; anything else fails to decompress. */
const simCompressionMarker = 0x5a;

/**
 * The simulator's codec: a marker byte, then the bytes as they are. Reversible and pure, so the
 * compressed paths run (and garbage in them is caught) without a real compressor in the core.
 */
export const SIM_COMPRESSION: Compression = {
  compress(bytes) {
    const out = new Uint8Array(bytes.length + 1);
    out[0] = simCompressionMarker;
    out.set(bytes, 1);
    return out;
  },
  decompress(bytes, outputBytesMax) {
    if (bytes[0] !== simCompressionMarker) throw new Error('not the simulator codec');
    if (bytes.length - 1 > outputBytesMax) throw new Error(`decompresses past ${outputBytesMax} bytes`);
    return bytes.subarray(1);
  },
};

// --- the simulator ------------------------------------------------------------------------------

/** Runs simulated hosts and their network deterministically from one seed; see the module comment. */
export class Simulator {
  readonly seed: number;
  /** For scenario decisions (which host to crash, when); independent of the simulated components' streams. */
  readonly random: SeededRandom;
  readonly network: SimNetwork;
  /** For scenario code; lines appear under the host name "sim". */
  readonly log: Logger;
  private readonly queue = new EventQueue();
  private readonly hostsByName = new Map<string, SimHost>();
  private readonly kernel: HostKernel;
  private readonly logSink: LogSink;
  private currentMs = 0;
  private sequence = 0;
  private stepping = false;
  private failure: SimulationFailure | undefined = undefined;

  constructor(options: SimulatorOptions) {
    assert(Number.isSafeInteger(options.seed), `seed must be a safe integer, got ${options.seed}`);
    this.seed = options.seed;
    const root = new SeededRandom(options.seed);
    this.random = root.fork('scenario');
    this.logSink = new LogSink(options.log ?? 'collect', options.logLinesMax ?? logLinesMaxDefault, () => this.currentMs);
    this.log = new SimLogger(this.logSink, 'sim', {});
    const simulator = this;
    const scheduler: EventScheduler = {
      get nowMs(): number {
        return simulator.currentMs;
      },
      schedule: (delayMs, callback, owner) => this.enqueue(delayMs, callback, owner),
    };
    this.network = new SimNetwork(scheduler, root.fork('network'), new SimLogger(this.logSink, 'net', {}), options.network);
    this.kernel = { scheduler, network: this.network, random: root, logSink: this.logSink };
  }

  /** Virtual milliseconds since the simulation started. */
  get nowMs(): number {
    return this.currentMs;
  }

  /** Events waiting in the queue (including cancelled ones not yet discarded). */
  get pendingEvents(): number {
    return this.queue.size;
  }

  get hosts(): readonly SimHost[] {
    return [...this.hostsByName.values()];
  }

  /** Creates a host with a running process; names and addresses must be unique. */
  host(name: string, options: HostOptions = {}): SimHost {
    assert(name.length > 0 && !this.hostsByName.has(name), `host name ${JSON.stringify(name)} is empty or taken`);
    const address = options.address ?? this.nextAddress();
    this.network.addHost(name, address);
    const host = new SimHost(this.kernel, name, address, options.clockSkewMs ?? 0);
    this.hostsByName.set(name, host);
    return host;
  }

  /** The host named `name`; an assertion failure when there is none. */
  getHost(name: string): SimHost {
    const host = this.hostsByName.get(name);
    assert(host !== undefined, `no host named ${name}`);
    return host;
  }

  /** Runs `callback` after `delayMs` of virtual time; owned by no host, so crashes do not cancel it. */
  schedule(delayMs: number, callback: () => void): Timer {
    return this.enqueue(delayMs, callback, undefined);
  }

  /** Runs the next event, if any; returns whether one ran. */
  step(): boolean {
    assert(this.failure === undefined, `the simulation already failed: ${this.failure?.message}`);
    assert(!this.stepping, 'step() or run() called from inside a simulated callback');
    const event = this.queue.peekLive();
    if (event === undefined) return false;
    this.queue.pop();
    this.currentMs = event.timeMs;
    this.stepping = true;
    try {
      event.callback();
    } catch (error) {
      this.failure = new SimulationFailure(this.seed, this.currentMs, event.owner?.hostName, error);
      throw this.failure;
    } finally {
      this.stepping = false;
    }
    return true;
  }

  /** Runs events in order until a stop condition holds; see RunOptions. */
  run(options: RunOptions = {}): RunResult {
    assert(!this.stepping, 'step() or run() called from inside a simulated callback');
    const untilMs = options.untilMs ?? Number.POSITIVE_INFINITY;
    const stepsMax = options.maxSteps ?? runStepsMaxDefault;
    let steps = 0;
    for (;;) {
      if (options.until?.() === true) return { reason: 'until', steps, nowMs: this.currentMs };
      if (steps >= stepsMax) return { reason: 'steps', steps, nowMs: this.currentMs };
      const next = this.queue.peekLive();
      if (next === undefined || next.timeMs > untilMs) {
        if (untilMs === Number.POSITIVE_INFINITY) return { reason: 'idle', steps, nowMs: this.currentMs };
        this.currentMs = Math.max(this.currentMs, untilMs);
        return { reason: 'time', steps, nowMs: this.currentMs };
      }
      this.step();
      steps++;
    }
  }

  /** The collected log, oldest first ('' when the log mode is 'silent'). */
  dumpLog(): string {
    return this.logSink.dump();
  }

  private enqueue(delayMs: number, callback: () => void, owner: EventOwner | undefined): QueuedEvent {
    assert(Number.isFinite(delayMs) && delayMs >= 0, `event delay must be a finite number >= 0, got ${delayMs}`);
    const event = new QueuedEvent(this.currentMs + delayMs, this.sequence++, callback, owner);
    this.queue.push(event);
    return event;
  }

  private nextAddress(): string {
    const taken = new Set([...this.hostsByName.values()].map((host) => host.address));
    for (let index = 0; ; index++) {
      const address = `10.0.${Math.floor(index / 254)}.${(index % 254) + 1}`;
      if (!taken.has(address)) return address;
    }
  }
}
