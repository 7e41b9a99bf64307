import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Packr } from 'msgpackr';
import { StraitError } from '../errors.ts';
import type { VersionTag } from '../protocol/messages.ts';
import { MemoryStorage } from '../runtime/memory-storage.ts';
import { Region, compareTags } from './region.ts';

const spec = { name: 'R', type: 'replicate' as const, persistent: true };
const bytes = (text: string) => new TextEncoder().encode(text);
const tag = (timestamp: number, site = 1, member = 'm', counter = 1): VersionTag => [site, timestamp, member, counter];

test('version tags order by timestamp, then site, member and counter', () => {
  assert.ok(compareTags(tag(2), tag(1)) > 0);
  assert.ok(compareTags(tag(1, 2), tag(1, 1)) > 0);
  assert.ok(compareTags(tag(1, 1, 'b'), tag(1, 1, 'a')) > 0);
  assert.ok(compareTags(tag(1, 1, 'a', 2), tag(1, 1, 'a', 1)) > 0);
  assert.equal(compareTags(tag(1), tag(1)), 0);
});

test('apply keeps the newest write whatever the arrival order; a tombstone hides an older put', () => {
  const writes: [Uint8Array | null, VersionTag][] = [[bytes('a'), tag(1)], [null, tag(3)], [bytes('b'), tag(2)]];
  for (const order of [[0, 1, 2], [2, 1, 0], [1, 0, 2]]) {
    const region = new Region(spec, undefined);
    for (const index of order) region.apply('k', writes[index]![0], writes[index]![1]);
    assert.equal(region.get('k'), undefined);
    assert.equal(region.size, 0);
    assert.deepEqual(region.entry('k')?.tag, tag(3));
  }
});

test('a resolver decides conflicts instead of the timestamp', () => {
  const packr = new Packr({ useRecords: false, mapsAsObjects: true });
  const region = new Region(spec, undefined, (_key, existing, incoming) => (Number(incoming.value) > Number(existing.value) ? 'incoming' : 'existing'));
  region.apply('k', packr.pack(5), tag(1));
  assert.equal(region.apply('k', packr.pack(3), tag(9)), 'stale');
  assert.equal(region.apply('k', packr.pack(7), tag(0)), 'applied');
  assert.equal(packr.unpack(region.get('k')!), 7);
});

test('a persistent region reads back what it wrote, tombstones included, and refuses a corrupt record', () => {
  const storage = new MemoryStorage();
  const first = new Region(spec, storage.open('region-R'));
  first.apply('a', bytes('1'), tag(1));
  first.apply('b', bytes('2'), tag(1));
  first.apply('b', null, tag(2));
  const again = new Region(spec, storage.open('region-R'));
  assert.deepEqual([...again.get('a')!], [...bytes('1')]);
  assert.equal(again.get('b'), undefined);
  assert.deepEqual(again.entry('b')?.tag, tag(2));
  storage.open('region-R').put('c', bytes('not a record'));
  assert.throws(() => new Region(spec, storage.open('region-R')), (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_STORAGE');
});

test('a tombstone sweep drops only old tombstones and looks at no more than its limit', () => {
  const region = new Region({ ...spec, persistent: false }, undefined);
  for (let index = 0; index < 10; index++) region.apply(`old-${index}`, null, tag(100));
  for (let index = 0; index < 10; index++) region.apply(`young-${index}`, null, tag(1000));
  assert.equal(region.purgeTombstones(500, 4), 4);
  assert.equal(region.purgeTombstones(500, 100), 6);
  assert.equal(region.purgeTombstones(500, 100), 0);
  assert.deepEqual(region.entry('young-3')?.tag, tag(1000));
});

test('a resolver that throws, or a value it cannot decode, refuses the write and changes nothing', () => {
  const packr = new Packr({ useRecords: false, mapsAsObjects: true });
  const throwing = new Region({ name: 'R', type: 'replicate', persistent: false }, undefined, () => { throw new Error('resolver bug'); });
  throwing.apply('k', packr.pack('first'), tag(1));
  assert.throws(() => throwing.apply('k', packr.pack('second'), tag(2)), (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_RESOLVER_FAILED');
  assert.deepEqual([...throwing.get('k')!], [...packr.pack('first')]);
  const picky = new Region({ name: 'R', type: 'replicate', persistent: false }, undefined, () => 'incoming');
  picky.apply('k', packr.pack('first'), tag(1));
  assert.throws(() => picky.apply('k', new Uint8Array([0xa5, 0x66]), tag(2)), (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_RESOLVER_FAILED');
  assert.equal(picky.apply('k', packr.pack('second'), tag(3), true), 'applied', 'last-writer-wins does not consult the resolver');
});

test('a key the store cannot hold is refused with memory and disk unchanged', () => {
  const storage = new MemoryStorage();
  const region = new Region(spec, storage.open('region-R'));
  assert.throws(() => region.apply('k'.repeat(3000), bytes('v'), tag(1)), (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_KEY_INVALID');
  assert.equal(region.size, 0);
  assert.equal(region.entry('k'.repeat(3000)), undefined);
});
