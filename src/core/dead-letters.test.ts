import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage } from '../runtime/memory-storage.ts';
import type { GatewayEvent } from '../protocol/messages.ts';
import { DeadLetterStore } from './dead-letters.ts';

function event(n: number): GatewayEvent {
  return ['R', `key-${n}`, new Uint8Array([n]), [1, 1000 + n, 'server-1#a', n], false];
}

function open(storage: MemoryStorage, bytesMax?: number): DeadLetterStore {
  const letters = new DeadLetterStore(storage.open('dead-letters-to-2'), 'sender to-2', bytesMax);
  letters.recover();
  return letters;
}

test('dead letters written after a restart keep the ones from before', () => {
  const storage = new MemoryStorage();
  open(storage).add({ event: event(1), code: 'STRAIT_REGION_NOT_FOUND', message: 'no region R' });
  open(storage).add({ event: event(2), code: 'STRAIT_REGION_NOT_FOUND', message: 'no region R' });
  const restarted = open(storage);
  assert.equal(restarted.count, 2);
  assert.deepEqual(restarted.takeAll().map((letter) => letter.event[1]), ['key-1', 'key-2']);
});

test('taking the dead letters empties the store', () => {
  const storage = new MemoryStorage();
  const letters = open(storage);
  for (let n = 1; n <= 3; n++) letters.add({ event: event(n), code: 'STRAIT_REGION_NOT_FOUND', message: 'no region R' });
  assert.equal(letters.takeAll().length, 3);
  assert.equal(letters.count, 0);
  assert.equal(open(storage).count, 0);
});

test('a full store refuses a dead letter instead of dropping one; taking them makes room', () => {
  const storage = new MemoryStorage();
  const letters = open(storage, 300);
  let added = 0;
  while (letters.add({ event: event(added + 1), code: 'STRAIT_REGION_NOT_FOUND', message: 'no region R' })) added += 1;
  assert.ok(added >= 2 && letters.bytes <= 300, `${added} letters, ${letters.bytes} bytes`);
  assert.equal(open(storage, 300).count, added, 'all of them on disk');
  letters.takeAll();
  assert.equal(letters.add({ event: event(99), code: 'STRAIT_REGION_NOT_FOUND', message: 'no region R' }), true);
});
