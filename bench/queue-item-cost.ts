// What one event held in a sender queue's memory costs: V8 heap plus array buffers per item,
// for events decoded from replicate frames as a server receives them (fresh strings and value
// buffers each), against what eventBytes() counts. Calibrates QUEUE_ITEM_OVERHEAD_BYTES in
// src/core/sender-queue.ts:
//   node --expose-gc bench/queue-item-cost.ts
import { Packr } from 'msgpackr';
import { MemoryStorage } from '../src/runtime/memory-storage.ts';
import { SenderQueue, eventBytes } from '../src/core/sender-queue.ts';
import type { GatewayEvent } from '../src/protocol/messages.ts';

const decoder = new Packr({ useRecords: false, mapsAsObjects: true, copyBuffers: true } as ConstructorParameters<typeof Packr>[0]);
const encoder = new Packr({ useRecords: false, mapsAsObjects: true });
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');
const ITEMS = 100_000;

function liveBytes(): number {
  gc!();
  gc!();
  const memory = process.memoryUsage();
  return memory.heapUsed + memory.arrayBuffers;
}

for (const [valueBytes, keyLength] of [[10, 8], [100, 8], [100, 40], [1000, 8]] as const) {
  const queue = new SenderQueue(new MemoryStorage().open('queue'), { now: () => 0, monotonic: () => 0 }, { name: 'queue', persistent: false, memoryBytesMax: Number.MAX_SAFE_INTEGER });
  const frame = encoder.pack(Array.from({ length: 1000 }, (_, index) => [
    'REGION', 'k'.repeat(keyLength - 6) + String(index).padStart(6, '0'), new Uint8Array(valueBytes), [1, 1_700_000_000_000 + index, 'server1-1#abc123', index], false,
  ]));
  const before = liveBytes();
  let counted = 0;
  for (let round = 0; round < ITEMS / 1000; round++) {
    const events = decoder.unpack(frame) as GatewayEvent[];
    for (const [index, event] of events.entries()) {
      event[3][3] = round * 1000 + index;
      queue.enqueue(event);
      counted += eventBytes(event);
    }
  }
  const perItem = (liveBytes() - before) / queue.size;
  console.log(`value ${valueBytes} B, key ${keyLength} chars: ${perItem.toFixed(0)} B per item held, eventBytes ${(counted / ITEMS).toFixed(0)} B, overhead ${(perItem - counted / ITEMS).toFixed(0)} B`);
}
