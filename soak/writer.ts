// The load generator of one site: puts at a steady rate through the TypeScript client (which
// finds a server through the site's locator and fails over as an application's would), each put
// recorded in the row's WriteLedger before it is sent and settled when the client answers.
//
// Most writes create a new key (`s<site>-<n>`); a share (the row's) update a key of this writer whose last
// write was acknowledged and that has none in flight, so a server that kept an older version is
// caught ("older" rather than "missing"). Which keys are updated is drawn from a seeded random.

import { setTimeout as sleep } from 'node:timers/promises';
import { type ClientRegion, type StraitClient } from '../src/client/client.ts';
import { connect } from '../src/client/connect.ts';
import { StraitError } from '../src/errors.ts';
import type { SeededRandom } from '../src/sim/random.ts';
import { writeValue, type WriteLedger } from './ledger.ts';

/** Puts outstanding per writer, at most; beyond it the writer waits (and falls behind its rate). */
const IN_FLIGHT_MAX = 64;
/** A put the client could not complete in this long (failover included) counts as failed. */
export const WRITE_TIMEOUT_MS = 15_000;
/**
 * A writer more than this far behind its schedule (a stalled site) skips the missed slots
 * instead of bursting them all out on recovery.
 */
const BACKLOG_MAX_MS = 1_000;
const IDLE_TICK_MS = 2;

export interface WriterFigures {
  readonly site: number;
  readonly targetPerSecond: number;
  readonly issued: number;
  readonly seconds: number;
  /** Writes skipped because the writer was more than BACKLOG_MAX_MS behind (site stalled). */
  readonly skipped: number;
  /** Error codes of failed writes, with counts. */
  readonly errors: Readonly<Record<string, number>>;
}

export interface WriterLoad {
  readonly ratePerSecond: number;
  readonly valueBytes: number;
  /** Share of writes that update an existing key rather than create one, 0..1. */
  readonly updateShare: number;
}

export class SiteWriter {
  readonly site: number;
  private readonly client: StraitClient;
  private readonly region: ClientRegion<string>;
  private readonly ledger: WriteLedger;
  private readonly random: SeededRandom;
  private readonly ratePerSecond: number;
  private readonly valueBytes: number;
  /** Share of writes that update an existing key rather than create one. */
  private readonly updateShare: number;
  /** Keys whose newest write is acknowledged and none is in flight: candidates for an update. */
  private readonly updatable: string[] = [];
  private readonly errors = new Map<string, number>();
  private nextKeyNumber = 0;
  private outstanding = 0;
  private issued = 0;
  private skipped = 0;
  private stopping = false;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private startedMs = 0;
  private stoppedMs = 0;

  private constructor(site: number, client: StraitClient, region: string, ledger: WriteLedger, random: SeededRandom, load: WriterLoad) {
    this.site = site;
    this.client = client;
    this.region = client.region<string>(region);
    this.ledger = ledger;
    this.random = random;
    this.ratePerSecond = load.ratePerSecond;
    this.valueBytes = load.valueBytes;
    this.updateShare = load.updateShare;
  }

  static async open(
    site: number,
    locators: string,
    region: string,
    ledger: WriteLedger,
    random: SeededRandom,
    load: WriterLoad,
  ): Promise<SiteWriter> {
    const client = await connect({ locators, name: `soak-writer-${site}`, requestTimeoutMs: WRITE_TIMEOUT_MS });
    return new SiteWriter(site, client, region, ledger, random, load);
  }

  start(): void {
    this.startedMs = performance.now();
    this.running = this.loop();
  }

  /** Stops issuing, waits for every outstanding put to settle, closes the client. */
  async stop(): Promise<WriterFigures> {
    this.stopping = true;
    this.wake?.();
    await this.running;
    await this.client.close();
    return {
      site: this.site,
      targetPerSecond: this.ratePerSecond,
      issued: this.issued,
      seconds: (this.stoppedMs - this.startedMs) / 1000,
      skipped: this.skipped,
      errors: Object.fromEntries(this.errors),
    };
  }

  private async loop(): Promise<void> {
    let slots = 0;
    while (!this.stopping) {
      const due = Math.floor(((performance.now() - this.startedMs) / 1000) * this.ratePerSecond) + 1;
      const backlogMax = Math.max(1, Math.ceil((this.ratePerSecond * BACKLOG_MAX_MS) / 1000));
      if (due - slots > backlogMax) {
        this.skipped += due - slots - backlogMax;
        slots = due - backlogMax;
      }
      while (slots < due && this.outstanding < IN_FLIGHT_MAX && !this.stopping) {
        slots += 1;
        this.issue();
      }
      if (this.outstanding >= IN_FLIGHT_MAX) await new Promise<void>((resolve) => (this.wake = resolve));
      else await sleep(IDLE_TICK_MS);
      this.wake = undefined;
    }
    this.stoppedMs = performance.now();
    while (this.outstanding > 0) await new Promise<void>((resolve) => (this.wake = resolve));
  }

  private issue(): void {
    let key: string;
    if (this.updatable.length > 0 && this.random.chance(this.updateShare)) {
      // Take the key out of the candidates while its update is in flight.
      const index = this.random.int(this.updatable.length);
      key = this.updatable[index]!;
      this.updatable[index] = this.updatable[this.updatable.length - 1]!;
      this.updatable.pop();
    } else {
      key = `s${this.site}-${String(this.nextKeyNumber++).padStart(7, '0')}`;
    }
    const version = this.ledger.begin(this.site, key, performance.now());
    this.outstanding += 1;
    this.issued += 1;
    this.region.put(key, writeValue(key, version, this.valueBytes)).then(
      () => {
        this.ledger.settle(key, version, true, performance.now());
        this.updatable.push(key);
        this.settled();
      },
      (error: unknown) => {
        this.ledger.settle(key, version, false, performance.now());
        const code = error instanceof StraitError ? error.code : error instanceof Error ? error.name : 'unknown';
        this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
        this.settled();
      },
    );
  }

  private settled(): void {
    this.outstanding -= 1;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
