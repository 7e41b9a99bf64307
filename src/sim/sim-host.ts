// A simulated machine and the Runtime of the process it runs: an address, a disk that outlives
// crashes, a wall clock that may be skewed, and at most one live process at a time.
//
// Guarantees (see also the opening comment of src/sim/simulator.ts):
// - A process's wall clock reads `wallClockEpochMs + nowMs + clockSkewMs`, its monotonic clock
//   `nowMs`; a timer runs no sooner than 1 ms after it was set, as in Node.
// - `crash()` kills the running process: its timers and pending callbacks never fire, its
//   listeners close, its streams reset (peers see ECONNRESET), and its disk loses every write not
//   yet made durable by a completed `sync`. `runtime()` afterwards starts a new incarnation over
//   the same disk, with a random stream of its own (`process:<host>#<incarnation>`).

import { MemoryStorage } from '../runtime/memory-storage.ts';
import type { Clock, Compression, Runtime } from '../runtime/runtime.ts';
import type { EventOwner, EventScheduler } from './event-queue.ts';
import type { SeededRandom } from './random.ts';
import type { SimNetwork } from './sim-network.ts';
import { SimLogger, type LogSink } from './sim-log.ts';

/** What a process's wall clock reads at virtual time 0 (2023-11-14T22:13:20Z). */
export const wallClockEpochMs = 1_700_000_000_000;
/** A disk flush completes within 0..diskSyncDelayMaxMs ms of virtual time. */
const diskSyncDelayMaxMs = 2;
/** Node runs a timer no sooner than 1 ms after it was set; so does the simulator. */
const timerDelayMinMs = 1;

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
export interface HostKernel {
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
