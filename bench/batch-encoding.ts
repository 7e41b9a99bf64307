// What a serial sender spends per event turning a queue record it read back into batches:
// decoding the record and packing each batch's events again (before gatewayBatch.packed),
// against decoding it, telling its events' bytes apart and sending those (encodeBatchEvents).
// A 1,024-event record, two 512-event batches, 100-byte and 1 KiB values, three rounds each:
//   node bench/batch-encoding.ts
import { eventPackr, queueRecordSlices, encodeBatchEvents } from '../src/core/sender-queue.ts';
import type { GatewayEvent } from '../src/protocol/messages.ts';
for (const size of [100, 1024]) {
  const record = Buffer.from(eventPackr.pack(Array.from({ length: 1024 }, (_, i): GatewayEvent => ['BENCH', `key:${i}`, Buffer.alloc(size, 1), [1, 1_764_000_000_000 + i, 'site-1/server-a#3f2a', i], false])));
  for (let round = 0; round < 3; round++) {
    let t = performance.now(); let n = 0;
    for (let r = 0; r < 1000; r++) {
      const events = eventPackr.unpack(record) as GatewayEvent[];
      for (let b = 0; b < 1024; b += 512) { n += eventPackr.pack(events.slice(b, b + 512)).length; }
    }
    const a = performance.now() - t;
    t = performance.now();
    for (let r = 0; r < 1000; r++) {
      const events = eventPackr.unpack(record) as GatewayEvent[];
      const slices = queueRecordSlices(record, 1024)!;
      const items = events.map((event, i) => ({ event, encoded: slices[i], possibleDuplicate: false }));
      for (let b = 0; b < 1024; b += 512) { n += encodeBatchEvents(items.slice(b, b + 512)).length; }
    }
    const c = performance.now() - t;
    console.log(size, 'B: decode+pack', (a * 1000 / 1024 / 1000).toFixed(3), 'µs/event; decode+slices+encode', (c * 1000 / 1024 / 1000).toFixed(3), 'µs/event');
  }
}
