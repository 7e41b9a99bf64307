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
//
// Parts: the event queue (event-queue.ts), hosts and the Runtime of their processes
// (sim-host.ts), the log (sim-log.ts) and the network (sim-network.ts); this file ties them to
// one clock and one seed.

import { assert } from '../errors.ts';
import type { Logger, Timer } from '../runtime/runtime.ts';
import { EventQueue, QueuedEvent, type EventOwner, type EventScheduler } from './event-queue.ts';
import { SeededRandom } from './random.ts';
import { SimHost, type HostKernel } from './sim-host.ts';
import { LogSink, SimLogger, type LogMode } from './sim-log.ts';
import { SimNetwork, type NetworkOptions } from './sim-network.ts';

// Scenario code builds a whole simulation from this module alone.
export { SIM_COMPRESSION, SimHost, wallClockEpochMs } from './sim-host.ts';
export type { LogMode } from './sim-log.ts';

/** Steps one `run` takes at most unless told otherwise, so a livelock ends instead of hanging. */
export const runStepsMaxDefault = 10_000_000;
/** Log records kept in 'collect' mode for `dumpLog`. */
export const logLinesMaxDefault = 2000;

export interface SimulatorOptions {
  readonly seed: number;
  readonly network?: Partial<NetworkOptions>;
  /**
   * 'silent' discards logs, 'collect' (default) keeps the last `logLinesMax` for `dumpLog`,
   * 'print' also writes them to stdout.
   */
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
    const replay = `npm run sim -- --seed ${seed}`;
    super(`simulation failed at t=${timeMs}ms (seed ${seed}): ${where}${reason}; replay: ${replay}`, { cause });
    this.name = 'SimulationFailure';
    this.seed = seed;
    this.timeMs = timeMs;
    this.hostName = hostName;
  }
}

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
    const logLinesMax = options.logLinesMax ?? logLinesMaxDefault;
    this.logSink = new LogSink(options.log ?? 'collect', logLinesMax, () => this.currentMs);
    this.log = new SimLogger(this.logSink, 'sim', {});
    const simulator = this;
    const scheduler: EventScheduler = {
      get nowMs(): number {
        return simulator.currentMs;
      },
      schedule: (delayMs, callback, owner) => this.enqueue(delayMs, callback, owner),
    };
    const networkLog = new SimLogger(this.logSink, 'net', {});
    this.network = new SimNetwork(scheduler, root.fork('network'), networkLog, options.network);
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
