// What the soak wrote and what it found: the ledger of every write a load generator attempted
// (and whether the site acknowledged it), the checker that judges a value read back from a
// server against it, and the counter of writes a subscriber saw applied twice. Pure: no I/O, no
// clock (times are passed in), so the rules are unit-tested in ledger.test.ts.
//
// Every write has an identity, `<key>@<version>`: version 1 creates the key, version n + 1 is
// issued only after version n was acknowledged, by the one writer that owns the key. The value
// carries the identity, so a read or a subscription event says exactly which write it shows.

/** What became of one attempted write. */
export type WriteOutcome = 'pending' | 'acknowledged' | 'failed';

/** The version a server must hold (at least) for one key, and the newest one ever attempted. */
export interface Expectation {
  readonly key: string;
  /** Site whose writer owns the key. */
  readonly site: number;
  /** The newest acknowledged version; a server holding an older one (or none) lost a write. */
  readonly version: number;
  /**
   * The newest version attempted so far. A version above `version` may legitimately be held:
   * a write that failed or timed out at the client may still have been applied.
   */
  readonly attemptedVersionMax: number;
}

/** How a value read back from a server compares with the expectation. */
export type ReadVerdict = 'ok' | 'missing' | 'older' | 'foreign';

const IDENTITY_END = '|';
/** Examples kept of each kind of finding. */
const EXAMPLES_MAX = 10;
/** Characters of a foreign value kept in a finding. */
const SHOWN_CHARS_MAX = 40;

/** The value of write `key@version`, padded with `x` to `valueBytes` characters (ASCII). */
export function writeValue(key: string, version: number, valueBytes: number): string {
  const head = `${key}@${version}${IDENTITY_END}`;
  return head.length >= valueBytes ? head : head + 'x'.repeat(valueBytes - head.length);
}

/** The write a value shows, or undefined when it is not a soak value. */
export function parseWriteValue(value: unknown): { key: string; version: number } | undefined {
  if (typeof value !== 'string') return undefined;
  const end = value.indexOf(IDENTITY_END);
  if (end < 0) return undefined;
  const at = value.lastIndexOf('@', end);
  if (at <= 0) return undefined;
  const version = Number(value.slice(at + 1, end));
  if (!Number.isSafeInteger(version) || version < 1) return undefined;
  return { key: value.slice(0, at), version };
}

/** What a value read back shows, for a finding: its write identity, or a clip of anything else. */
export function shownWrite(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const shown = parseWriteValue(value);
  if (shown !== undefined) return `${shown.key}@${shown.version}`;
  return JSON.stringify(value).slice(0, SHOWN_CHARS_MAX);
}

/**
 * Judges what a server returned for `expected.key`: `missing` (no value), `older` (a version
 * below the acknowledged one: an acknowledged write was lost or overwritten by an older one),
 * `foreign` (a value no writer produced for this key: another key's, a version never
 * attempted, or not a soak value at all), else `ok`.
 */
export function judgeRead(expected: Expectation, value: unknown): ReadVerdict {
  if (value === undefined || value === null) return 'missing';
  const shown = parseWriteValue(value);
  if (shown === undefined || shown.key !== expected.key || shown.version > expected.attemptedVersionMax) return 'foreign';
  return shown.version < expected.version ? 'older' : 'ok';
}

interface KeyRecord {
  readonly site: number;
  /** outcomes[v - 1] is version v's. */
  readonly outcomes: WriteOutcome[];
  /** When version v was issued and settled (the caller's clock, ms): issuedAtMs[v - 1], settledAtMs[v - 1]. */
  readonly issuedAtMs: number[];
  readonly settledAtMs: number[];
  /** Newest acknowledged version, 0 = none yet. */
  acknowledgedVersion: number;
}

export interface LedgerCounts {
  /** Writes issued. */
  readonly attempted: number;
  readonly acknowledged: number;
  /** Writes the client reported failed (timeout, no server): they may or may not have been applied. */
  readonly failed: number;
  /** Writes neither acknowledged nor failed yet. */
  readonly pending: number;
  /** Distinct keys with at least one acknowledged write. */
  readonly keysAcknowledged: number;
}

/** Every write of a row's load generators, keyed by key. */
export class WriteLedger {
  private readonly records = new Map<string, KeyRecord>();
  private attempted = 0;
  private acknowledged = 0;
  private failed = 0;

  /** Records an attempt at the next version of `key` (owned by `site`) at `atMs`; returns that version. */
  begin(site: number, key: string, atMs: number): number {
    let record = this.records.get(key);
    if (record === undefined) {
      record = { site, outcomes: [], issuedAtMs: [], settledAtMs: [], acknowledgedVersion: 0 };
      this.records.set(key, record);
    } else if (record.site !== site) {
      throw new Error(`key ${key} belongs to the writer of site ${record.site}, not site ${site}`);
    }
    const previous = record.outcomes.at(-1);
    if (previous === 'pending') throw new Error(`${key}@${record.outcomes.length} is still pending; a key has one write in flight at most`);
    record.outcomes.push('pending');
    record.issuedAtMs.push(atMs);
    record.settledAtMs.push(Number.NaN);
    this.attempted += 1;
    return record.outcomes.length;
  }

  /** Records what became of `key@version`, at `atMs`. */
  settle(key: string, version: number, acknowledged: boolean, atMs: number): void {
    const record = this.records.get(key);
    if (record === undefined || record.outcomes[version - 1] !== 'pending') throw new Error(`${key}@${version} was not pending`);
    record.outcomes[version - 1] = acknowledged ? 'acknowledged' : 'failed';
    record.settledAtMs[version - 1] = atMs;
    if (acknowledged) {
      this.acknowledged += 1;
      record.acknowledgedVersion = Math.max(record.acknowledgedVersion, version);
    } else {
      this.failed += 1;
    }
  }

  outcome(key: string, version: number): WriteOutcome | undefined {
    return this.records.get(key)?.outcomes[version - 1];
  }

  /** When `key@version` was issued and settled (NaN while pending); undefined for a write never issued. */
  timing(key: string, version: number): { issuedAtMs: number; settledAtMs: number } | undefined {
    const record = this.records.get(key);
    const issuedAtMs = record?.issuedAtMs[version - 1];
    return issuedAtMs === undefined ? undefined : { issuedAtMs, settledAtMs: record!.settledAtMs[version - 1]! };
  }

  counts(): LedgerCounts {
    let keysAcknowledged = 0;
    for (const record of this.records.values()) if (record.acknowledgedVersion > 0) keysAcknowledged += 1;
    return {
      attempted: this.attempted,
      acknowledged: this.acknowledged,
      failed: this.failed,
      pending: this.attempted - this.acknowledged - this.failed,
      keysAcknowledged,
    };
  }

  /** What every server must hold now: each key's newest acknowledged version. */
  expectations(): Expectation[] {
    const expectations: Expectation[] = [];
    for (const [key, record] of this.records) {
      if (record.acknowledgedVersion === 0) continue;
      expectations.push({ key, site: record.site, version: record.acknowledgedVersion, attemptedVersionMax: record.outcomes.length });
    }
    return expectations;
  }

  /**
   * `expectation` with its newest-attempted bound refreshed: a snapshot taken earlier must still
   * accept versions written since.
   */
  refresh(expectation: Expectation): Expectation {
    const record = this.records.get(expectation.key);
    if (record === undefined) return expectation;
    return { ...expectation, attemptedVersionMax: record.outcomes.length };
  }
}

/**
 * Counts writes one subscriber saw applied more than once. A subscription only reports writes
 * that changed the server's copy (an event carrying a version the server already holds is not
 * applied, hence not reported), so a write reported twice on one subscription was applied twice
 * by that server — for example a client's retried put stored under a second version tag.
 */
export class DeliveryCounter {
  private readonly seen = new Set<string>();
  events = 0;
  duplicates = 0;
  /** The first few writes seen twice, `<key>@<version>`. */
  readonly examples: string[] = [];
  /** Events whose value is not a soak write (should stay 0). */
  foreign = 0;

  /** One subscription event; returns true when it repeats a write already seen. */
  observe(value: unknown): boolean {
    this.events += 1;
    const shown = parseWriteValue(value);
    if (shown === undefined) {
      this.foreign += 1;
      return false;
    }
    const identity = `${shown.key}@${shown.version}`;
    if (this.seen.has(identity)) {
      this.duplicates += 1;
      if (this.examples.length < EXAMPLES_MAX) this.examples.push(identity);
      return true;
    }
    this.seen.add(identity);
    return false;
  }
}

/** A write found wrong at one server. */
export interface Finding {
  readonly key: string;
  /** The site of the server that lacks it (not the writer's). */
  readonly site: number;
  readonly member: string;
  readonly verdict: Exclude<ReadVerdict, 'ok'>;
  /** The write identity the server showed, when it showed one. */
  readonly shown: string | undefined;
  readonly expectedVersion: number;
}

export interface LossSummary {
  /** Distinct acknowledged writes missing, older or foreign at one server of some site or more. */
  readonly lost: number;
  /** Per site: distinct writes lost there (at any of its servers). */
  readonly lostBySite: Readonly<Record<string, number>>;
  readonly byVerdict: Readonly<Record<Exclude<ReadVerdict, 'ok'>, number>>;
  /** A few findings, to look up in the members' logs. */
  readonly examples: readonly Finding[];
}

/** Folds per-server findings into the row's loss figures: a write counts once however many servers lack it. */
export function summarizeLosses(findings: readonly Finding[]): LossSummary {
  const lostWrites = new Set<string>();
  const lostBySite = new Map<number, Set<string>>();
  const byVerdict = { missing: 0, older: 0, foreign: 0 };
  for (const finding of findings) {
    lostWrites.add(finding.key);
    let site = lostBySite.get(finding.site);
    if (site === undefined) lostBySite.set(finding.site, (site = new Set()));
    site.add(finding.key);
    byVerdict[finding.verdict] += 1;
  }
  return {
    lost: lostWrites.size,
    lostBySite: Object.fromEntries([...lostBySite].sort(([a], [b]) => a - b).map(([site, keys]) => [String(site), keys.size])),
    byVerdict,
    examples: findings.slice(0, EXAMPLES_MAX),
  };
}
