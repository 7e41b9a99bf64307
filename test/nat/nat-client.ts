// A client the NAT tests run inside a site's network namespace (`ip netns exec NS node
// test/nat/nat-client.ts ...`), where the test process itself has no address:
//
//   write --locators L --region R --prefix P --keys N [--rate W]   writes P-0..P-(N-1) twice
//        each (values 1 then 2, so a replay of the first write after the second would show),
//        retrying a failed put until it is acknowledged, at most W puts per second when given
//        (so a fault can land mid-stream); prints {"acknowledged": 2N}
//   dump --locators L --region R --prefix P             prints {"P-0": 2, ...}: every entry of R
//        whose key starts with P
//
// Exits non-zero with the error on standard error when it can't do its job.

import { parseArgs } from 'node:util';
import { connect } from '../../src/client/connect.ts';

/** Puts in flight at once. */
const CONCURRENCY = 64;
/** Attempts of one put before the tool gives up. */
const PUT_ATTEMPTS_MAX = 50;

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { locators: { type: 'string' }, region: { type: 'string' }, prefix: { type: 'string' }, keys: { type: 'string' }, rate: { type: 'string' } },
});
const command = positionals[0];
const region = values.region ?? 'NAT';
const prefix = values.prefix ?? 'k';

const client = await connect({ locators: values.locators ?? '', name: `nat-client-${process.pid}`, connectTimeoutMs: 30_000 });
try {
  const entries = client.region<number>(region);
  if (command === 'write') {
    const keys = Number(values.keys ?? 100);
    const rate = values.rate === undefined ? Infinity : Number(values.rate);
    const startedMs = Date.now();
    let issued = 0;
    let acknowledged = 0;
    for (const value of [1, 2]) {
      let next = 0;
      const worker = async () => {
        while (next < keys) {
          const key = `${prefix}-${next++}`;
          issued += 1;
          const dueMs = startedMs + (issued / rate) * 1000;
          if (dueMs > Date.now()) await new Promise((resolve) => setTimeout(resolve, dueMs - Date.now()));
          for (let attempt = 1; ; attempt++) {
            try {
              await entries.put(key, value);
              acknowledged += 1;
              break;
            } catch (error) {
              if (attempt >= PUT_ATTEMPTS_MAX) throw error;
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    }
    process.stdout.write(`${JSON.stringify({ acknowledged })}\n`);
  } else if (command === 'dump') {
    const keys = (await entries.keys()).filter((key) => key.startsWith(`${prefix}-`));
    const result: Record<string, number | null> = {};
    for (let index = 0; index < keys.length; index += CONCURRENCY) {
      const slice = keys.slice(index, index + CONCURRENCY);
      const values = await Promise.all(slice.map((key) => entries.get(key)));
      slice.forEach((key, position) => {
        result[key] = values[position] ?? null;
      });
    }
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } else {
    throw new Error(`unknown command ${String(command)}: write or dump`);
  }
} finally {
  await client.close();
}
