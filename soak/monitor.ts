// Watches every member process of a row while it runs: anonymous resident memory (RssAnon in
// /proc/<pid>/status — the heap and other private memory, without LMDB's file-mapped pages,
// which VmRSS also counts) sampled on a fixed interval, and members that exit without being
// killed by the soak (an assertion stops a member with exit status 70).

import { isAlive } from '../bench/processes.ts';
import { anonymousResidentBytes } from '../bench/wan/load.ts';
import type { Grid } from './grid.ts';

const SAMPLE_INTERVAL_MS = 500;
/** The results file keeps one sample per member this often: how memory moved, not just its peak. */
const SERIES_INTERVAL_MS = 2_000;
const MEBIBYTE = 1024 * 1024;

export interface MemberMemory {
  readonly member: string;
  /** The first sample of the row (after the grid started), MiB. */
  readonly firstMiB: number;
  readonly peakMiB: number;
  /** The last sample taken, MiB (after recovery: whether the peak was given back). */
  readonly lastMiB: number;
  /** Seconds into the row at the peak. */
  readonly peakAtSeconds: number;
  /** [seconds into the row, MiB], one every SERIES_INTERVAL_MS. */
  readonly series: readonly (readonly [number, number])[];
}

export interface UnexpectedExit {
  readonly member: string;
  readonly pid: number;
  readonly atSeconds: number;
}

interface Track {
  first: number;
  peak: number;
  last: number;
  peakAtMs: number;
  readonly series: [number, number][];
  seriesAtMs: number;
}

export class MemberMonitor {
  private readonly grid: Grid;
  private readonly startedMs: number;
  private readonly tracks = new Map<string, Track>();
  private readonly exits: UnexpectedExit[] = [];
  private readonly reportedPids = new Set<number>();
  private sampling = true;
  private readonly loop: Promise<void>;

  constructor(grid: Grid, startedMs: number) {
    this.grid = grid;
    this.startedMs = startedMs;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.sampling) {
      await this.sample();
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_INTERVAL_MS));
    }
  }

  private async sample(): Promise<void> {
    const now = performance.now();
    for (const member of this.grid.members) {
      if (!member.running) continue;
      const pid = member.pid;
      if (!isAlive(pid)) {
        // Killed by the soak between the check and now? Then `running` is false already.
        if (member.running && !this.reportedPids.has(pid)) {
          this.reportedPids.add(pid);
          this.exits.push({ member: member.name, pid, atSeconds: (now - this.startedMs) / 1000 });
        }
        continue;
      }
      const bytes = await anonymousResidentBytes(pid);
      if (Number.isNaN(bytes)) continue;
      const track = this.tracks.get(member.name);
      const point: [number, number] = [Math.round((now - this.startedMs) / 100) / 10, Math.round((bytes / MEBIBYTE) * 10) / 10];
      if (track === undefined) {
        this.tracks.set(member.name, { first: bytes, peak: bytes, last: bytes, peakAtMs: now, series: [point], seriesAtMs: now });
        continue;
      }
      track.last = bytes;
      if (now - track.seriesAtMs >= SERIES_INTERVAL_MS) {
        track.series.push(point);
        track.seriesAtMs = now;
      }
      if (bytes > track.peak) {
        track.peak = bytes;
        track.peakAtMs = now;
      }
    }
  }

  /** Members that died on their own so far. */
  unexpectedExits(): readonly UnexpectedExit[] {
    return this.exits;
  }

  async stop(): Promise<{ members: MemberMemory[]; unexpectedExits: UnexpectedExit[] }> {
    this.sampling = false;
    await this.loop;
    await this.sample();
    const members = [...this.tracks].map(([member, track]) => ({
      member,
      firstMiB: track.first / MEBIBYTE,
      peakMiB: track.peak / MEBIBYTE,
      lastMiB: track.last / MEBIBYTE,
      peakAtSeconds: (track.peakAtMs - this.startedMs) / 1000,
      series: track.series,
    }));
    return { members, unexpectedExits: [...this.exits] };
  }
}
