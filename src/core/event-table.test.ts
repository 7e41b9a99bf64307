// The event table against a Map model: any mix of counters and operations gives the Map's
// answers, and the window costs about what it holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CounterTable, EventTable } from './event-table.ts';

type Operation = { kind: 'set' | 'delete' | 'get'; member: number; counter: number };

const counter = fc.oneof(
  fc.integer({ min: 0, max: 64 }),
  fc.integer({ min: 0, max: 20_000 }),
  fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
);
const operation: fc.Arbitrary<Operation> = fc.record({
  kind: fc.constantFrom('set', 'delete', 'get'),
  member: fc.integer({ min: 0, max: 2 }),
  counter,
});

test('event table: set, get and delete answer as a Map of member:counter does', () => {
  fc.assert(fc.property(fc.array(operation, { maxLength: 400, size: 'max' }), (operations) => {
    const table = new EventTable<number>();
    const model = new Map<string, number>();
    operations.forEach(({ kind, member, counter: value }, step) => {
      // New string objects each time, as decoded events bring them.
      const name = `site-1/member-${member}`.slice(0);
      const key = `${name}:${value}`;
      if (kind === 'set') {
        table.set(name, value, step);
        model.set(key, step);
      } else if (kind === 'delete') {
        table.delete(name, value);
        model.delete(key);
      }
      assert.equal(table.get(name, value), model.get(key));
    });
    for (const key of model.keys()) {
      const at = key.lastIndexOf(':');
      assert.equal(table.get(key.slice(0, at), Number(key.slice(at + 1))), model.get(key));
    }
  }), { numRuns: 300 });
});

test('event table: ascending runs with oldest-first removal, gaps and strays', () => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), fc.boolean()), { minLength: 1, maxLength: 3000, size: 'max' }), (steps) => {
    const table = new CounterTable<number>();
    const model = new Map<number, number>();
    const held: number[] = [];
    let next = 1_000;
    for (const [stride, remove] of steps) {
      next += stride;
      table.set(next, next);
      model.set(next, next);
      held.push(next);
      if (remove && held.length > 0) {
        // Mostly the oldest, sometimes one from the middle.
        const index = next % 7 === 0 ? Math.floor(held.length / 2) : 0;
        const [gone] = held.splice(index, 1);
        table.delete(gone!);
        model.delete(gone!);
      }
    }
    assert.equal(table.size, model.size);
    for (const [key, value] of model) assert.equal(table.get(key), value);
    assert.equal(table.get(next + 1), undefined);
  }), { numRuns: 100 });
});

test('event table: a queue\'s pattern — ascending in, oldest first out — stays in the window, its leading free slots dropped', () => {
  const table = new CounterTable<number>();
  for (let value = 0; value < 200_000; value++) {
    table.set(value, value);
    if (value >= 500) table.delete(value - 500);
    if (value % 997 === 0) {
      assert.equal(table.outsideCount, 0, `at ${value}`);
      assert.ok(table.footprint <= 500 * 2 + 4096, `footprint ${table.footprint} at ${value}`);
    }
  }
  assert.equal(table.size, 500);
  assert.equal(table.outsideCount, 0);
  assert.ok(table.footprint <= 500 * 2 + 4096, `footprint ${table.footprint} for 500 values`);
});

test('event table: memory stays about what it holds — an old counter kept while the rest move on, thinned-out counters', () => {
  const stuck = new CounterTable<number>();
  stuck.set(0, 0); // never removed
  for (let value = 1; value <= 200_000; value++) {
    stuck.set(value, value);
    if (value > 100) stuck.delete(value - 100);
  }
  assert.equal(stuck.size, 101);
  assert.ok(stuck.footprint < 101 * 4 + 4096 + 101, `footprint ${stuck.footprint} for 101 values`);
  assert.equal(stuck.get(0), 0);
  assert.equal(stuck.get(200_000), 200_000);

  const thin = new CounterTable<number>();
  for (let value = 0; value < 1_000_000; value += 1000) thin.set(value, value);
  assert.equal(thin.size, 1000);
  assert.ok(thin.footprint < 1000 * 4 + 4096 + 1000, `footprint ${thin.footprint} for 1000 values`);
  for (let value = 0; value < 1_000_000; value += 1000) assert.equal(thin.get(value), value);

  const emptied = new CounterTable<number>();
  for (let value = 0; value < 100_000; value++) emptied.set(value, value);
  for (let value = 0; value < 100_000; value++) emptied.delete(value);
  assert.equal(emptied.size, 0);
  assert.equal(emptied.footprint, 0);
});

test('event table: members that come and go leave no tables behind', () => {
  const table = new EventTable<boolean>();
  for (let member = 0; member < 1000; member++) {
    table.set(`m${member}`, 1, true);
    table.delete(`m${member}`, 1);
  }
  // Only the few kept for reuse remain: a member seen again starts empty.
  assert.equal(table.get('m5', 1), undefined);
  assert.ok(table.memberCount <= 17, `${table.memberCount} member tables`);
});
