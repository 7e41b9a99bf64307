// Values by event id (the member that made a change, and its counter), for the sender queue's
// hot path: every queued, read-back and acknowledged event looks itself up here once or more.
//
// A member's counters reach a queue mostly in ascending order, and leave it (acknowledged, or
// forgotten by the acknowledged-id ring) oldest first. So each member's counters are kept in a
// window: an array indexed by `counter - base`, whose leading free slots are dropped as the
// oldest leave. A counter far outside the window goes to a Map instead. A window that has
// become mostly holes (counters thinned out, one old counter kept while the rest move on) is
// moved into the Map, so memory stays about proportional to what is held.
//
// Why: the Map per member this replaced cost ~0.4 µs per event for its set/get/delete (hashing
// large, churning tables), ~18% of site 1's CPU while draining a backlog. A window slot costs
// an array index.
//
// Pure: no I/O.

/** Free slots a window may skip to reach a new counter past its end, rather than use the Map. */
const WINDOW_GAP_MAX = 4096;
/** A window longer than this many times what it holds (plus the slack) moves into the Map. */
const WINDOW_SPARSENESS_MAX = 4;
const WINDOW_SLACK = 4096;
/** Leading slots dropped before the array is copied down. */
const WINDOW_COMPACT_AT = 4096;
/** Empty member tables kept for reuse; beyond, members that come and go leave nothing behind. */
const EMPTY_MEMBER_TABLES_KEPT = 16;

/** One member's counters. */
export class CounterTable<T> {
  private slots: (T | undefined)[] = [];
  /** Index in `slots` of the window's first slot, which holds counter `base`. */
  private head = 0;
  private base = 0;
  /** Values in the window. */
  private inWindow = 0;
  private readonly outside = new Map<number, T>();

  get size(): number {
    return this.inWindow + this.outside.size;
  }

  /** Values kept in the Map rather than the window (tests check the hot path uses the window). */
  get outsideCount(): number {
    return this.outside.size;
  }

  /** Slots held, free ones in the window included: what the table costs (tests bound it). */
  get footprint(): number {
    return this.slots.length - this.head + this.outside.size;
  }

  get(counter: number): T | undefined {
    const index = counter - this.base;
    if (index >= 0 && index < this.slots.length - this.head) {
      const value = this.slots[this.head + index];
      if (value !== undefined) return value;
    }
    return this.outside.size === 0 ? undefined : this.outside.get(counter);
  }

  set(counter: number, value: T): void {
    if (!Number.isSafeInteger(counter)) {
      this.outside.set(counter, value);
      return;
    }
    if (this.outside.size > 0) this.outside.delete(counter);
    const length = this.slots.length - this.head;
    if (this.inWindow === 0) {
      // An empty window starts again at this counter.
      this.slots = [value];
      this.head = 0;
      this.base = counter;
      this.inWindow = 1;
      return;
    }
    const index = counter - this.base;
    if (index >= 0 && index < length) {
      if (this.slots[this.head + index] === undefined) this.inWindow += 1;
      this.slots[this.head + index] = value;
      return;
    }
    if (index >= length && index - length <= WINDOW_GAP_MAX) {
      for (let gap = length; gap < index; gap++) this.slots.push(undefined);
      this.slots.push(value);
      this.inWindow += 1;
      if (this.slots.length - this.head > WINDOW_SPARSENESS_MAX * this.inWindow + WINDOW_SLACK) this.moveWindowOutside();
      return;
    }
    this.outside.set(counter, value);
  }

  delete(counter: number): void {
    const index = counter - this.base;
    const length = this.slots.length - this.head;
    if (index >= 0 && index < length && this.slots[this.head + index] !== undefined) {
      this.slots[this.head + index] = undefined;
      this.inWindow -= 1;
      if (this.inWindow === 0) {
        this.slots = [];
        this.head = 0;
        return;
      }
      if (index === 0) this.dropLeadingFree();
      return;
    }
    if (this.outside.size > 0) this.outside.delete(counter);
  }

  private dropLeadingFree(): void {
    while (this.slots[this.head] === undefined) {
      this.head += 1;
      this.base += 1;
    }
    if (this.head >= WINDOW_COMPACT_AT && this.head * 2 >= this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.head = 0;
    }
  }

  private moveWindowOutside(): void {
    for (let index = this.head; index < this.slots.length; index++) {
      const value = this.slots[index];
      if (value !== undefined) this.outside.set(this.base + index - this.head, value);
    }
    this.slots = [];
    this.head = 0;
    this.inWindow = 0;
  }
}

/** Values by (member, counter). */
export class EventTable<T> {
  private readonly members = new Map<string, CounterTable<T>>();
  /** The member looked up last, and its table: consecutive events are mostly of one member. */
  private lastMember: string | undefined;
  private lastTable: CounterTable<T> | undefined;

  /** Member tables held (tests bound it). */
  get memberCount(): number {
    return this.members.size;
  }

  private table(member: string): CounterTable<T> | undefined {
    if (member === this.lastMember) return this.lastTable;
    const table = this.members.get(member);
    if (table !== undefined) {
      this.lastMember = member;
      this.lastTable = table;
    }
    return table;
  }

  get(member: string, counter: number): T | undefined {
    return this.table(member)?.get(counter);
  }

  set(member: string, counter: number, value: T): void {
    let table = this.table(member);
    if (table === undefined) {
      table = new CounterTable();
      this.members.set(member, table);
      this.lastMember = member;
      this.lastTable = table;
    }
    table.set(counter, value);
  }

  delete(member: string, counter: number): void {
    const table = this.table(member);
    if (table === undefined) return;
    table.delete(counter);
    // An empty table is kept for the next id of its member (a queue that empties often would
    // make one per event), unless many members' are: members that come and go leave nothing.
    if (table.size === 0 && this.members.size > EMPTY_MEMBER_TABLES_KEPT) {
      this.members.delete(member);
      if (this.lastTable === table) {
        this.lastMember = undefined;
        this.lastTable = undefined;
      }
    }
  }
}
