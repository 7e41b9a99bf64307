// The soak's view of every server: one connection per server incarnation that subscribes to the
// region (to count writes applied twice) and reads acknowledged writes back (to find lost ones
// and to time convergence). Reads go to each server directly, so a server that lacks a write is
// found even when its neighbour has it.

import { createClientRuntime } from '../src/runtime/node/client-runtime.ts';
import type { Runtime } from '../src/runtime/runtime.ts';
import { Grid, SOAK_REGION, type Member } from './grid.ts';
import { DeliveryCounter, judgeRead, shownWrite, type Expectation, type Finding, type WriteLedger } from './ledger.ts';
import { MemberConnection } from './member-connection.ts';

export interface SubscriberFigures {
  readonly member: string;
  readonly pid: number;
  readonly events: number;
  readonly duplicates: number;
  readonly foreign: number;
  /** The first writes this subscription saw twice, `<key>@<version>`. */
  readonly duplicateExamples: readonly string[];
}

interface Incarnation {
  readonly member: Member;
  readonly pid: number;
  readonly connection: MemberConnection;
  readonly counter: DeliveryCounter;
}

export class ServerAudit {
  private readonly grid: Grid;
  private readonly runtime: Runtime;
  private readonly closeRuntime: () => void;
  private readonly incarnations: Incarnation[] = [];
  /** Why the last attempt to connect to a member failed, for the row's notes. */
  readonly connectFailures = new Map<string, string>();

  constructor(grid: Grid) {
    this.grid = grid;
    const { runtime, close } = createClientRuntime();
    this.runtime = runtime;
    this.closeRuntime = close;
  }

  /** The open connection to `member`'s current incarnation, opening (and subscribing) it if needed. */
  private async connection(member: Member): Promise<MemberConnection | undefined> {
    if (!member.running) return undefined;
    const current = this.incarnations.find((incarnation) => incarnation.member === member && incarnation.pid === member.pid);
    if (current !== undefined && !current.connection.closed) return current.connection;
    if (current !== undefined) return undefined; // that incarnation's connection broke: it is dying
    try {
      const connection = await MemberConnection.open(this.runtime, member.name, Grid.clientAddress(member), `soak-audit-${member.name}`);
      const counter = new DeliveryCounter();
      const incarnation: Incarnation = { member, pid: member.pid, connection, counter };
      // A region missing at this site is not an error yet; subscribe once it exists.
      this.incarnations.push(incarnation);
      await connection.subscribe(SOAK_REGION, (event) => counter.observe(event.value)).catch((error: unknown) => {
        this.incarnations.splice(this.incarnations.indexOf(incarnation), 1);
        connection.close();
        throw error;
      });
      this.connectFailures.delete(member.name);
      return connection;
    } catch (error) {
      this.connectFailures.set(member.name, error instanceof Error ? error.message : String(error));
      return undefined;
    }
  }

  /** Opens the connections that are missing (new incarnations, or a region that now exists). */
  async refresh(): Promise<void> {
    await Promise.all(this.grid.servers().map((member) => this.connection(member)));
  }

  /**
   * Reads `expectations` from every running server once; returns, per server, those it does not
   * hold yet (with the verdict). A server that can't be read keeps all of them, as missing.
   */
  async readBack(expectations: ReadonlyMap<string, readonly Expectation[]>, ledger: WriteLedger): Promise<Map<string, Finding[]>> {
    const remaining = new Map<string, Finding[]>();
    await Promise.all(this.grid.servers().map(async (member) => {
      // Refreshed: a version written since the expectation was taken is not foreign.
      const wanted = (expectations.get(member.name) ?? []).map((expectation) => ledger.refresh(expectation));
      remaining.set(member.name, await this.readServer(member, wanted));
    }));
    return remaining;
  }

  private async readServer(member: Member, wanted: readonly Expectation[]): Promise<Finding[]> {
    if (wanted.length === 0) return [];
    const connection = await this.connection(member);
    const keys = wanted.map((expectation) => expectation.key);
    const values = connection === undefined ? undefined : await connection.getMany(SOAK_REGION, keys).catch(() => undefined);
    const findings: Finding[] = [];
    wanted.forEach((expectation, index) => {
      const value = values?.[index];
      const verdict = values === undefined ? 'missing' : judgeRead(expectation, value);
      if (verdict === 'ok') return;
      findings.push({
        key: expectation.key, site: member.site, member: member.name, verdict, shown: shownWrite(value), expectedVersion: expectation.version,
      });
    });
    return findings;
  }

  /** What each subscription saw, one entry per server incarnation. */
  subscribers(): SubscriberFigures[] {
    return this.incarnations.map(({ member, pid, counter }) => ({
      member: member.name,
      pid,
      events: counter.events,
      duplicates: counter.duplicates,
      foreign: counter.foreign,
      duplicateExamples: [...counter.examples],
    }));
  }

  close(): void {
    for (const incarnation of this.incarnations) incarnation.connection.close();
    this.closeRuntime();
  }
}

/** The same expectations for every server of the grid. */
export function forEveryServer(grid: Grid, expectations: readonly Expectation[]): Map<string, readonly Expectation[]> {
  return new Map(grid.servers().map((member) => [member.name, expectations]));
}

/** Findings back to expectations, per server, for the next poll. */
export function stillExpected(
  findings: ReadonlyMap<string, readonly Finding[]>,
  byKey: ReadonlyMap<string, Expectation>,
): Map<string, Expectation[]> {
  return new Map([...findings].map(([member, list]) => [member, list.map((finding) => byKey.get(finding.key)!)]));
}
