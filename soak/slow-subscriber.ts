// The slow subscriber of the `slow-subscriber` row, a process of its own:
//
//   node soak/slow-subscriber.ts --locators 127.0.0.1[P] --region SOAK [--subscriptions N]
//
// connects through the locator, subscribes to the region N times (default 1) on its one
// connection, reads events as a healthy consumer does and prints one line, `subscribed
// <server>`, once the subscriptions are in place. The soak
// then stops it with SIGSTOP: a consumer that stops reading (a hung process, a long GC pause, a
// full disk it writes to) while its TCP connection stays open, so the server it subscribed at
// has to hold or drop what it can't send. The soak ends it with SIGKILL.

import { parseArgs } from 'node:util';
import { connect } from '../src/client/connect.ts';

/** Generous: the client fails the subscription beyond it, and the point is the server's buffer. */
const BUFFERED_EVENTS_MAX = 10_000_000;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { locators: { type: 'string' }, region: { type: 'string' }, subscriptions: { type: 'string', default: '1' } },
    strict: true,
  });
  const count = Number(values.subscriptions);
  if (values.locators === undefined || values.region === undefined || !Number.isInteger(count) || count < 1) {
    throw new Error('usage: slow-subscriber.ts --locators <host[port]> --region <name> [--subscriptions N]');
  }
  const client = await connect({ locators: values.locators, name: 'soak-slow-subscriber' });
  const region = client.region(values.region);
  const subscriptions = Array.from({ length: count }, () => region.subscribe({ bufferedEventsMax: BUFFERED_EVENTS_MAX }));
  await Promise.all(subscriptions.map((subscription) => subscription.ready));
  process.stdout.write(`subscribed ${client.currentServer ?? 'unknown'}\n`);
  let events = 0;
  await Promise.all(subscriptions.map(async (subscription) => {
    for await (const _event of subscription) events += 1;
  }));
  process.stderr.write(`slow subscriber: subscriptions ended after ${events} events\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`slow subscriber: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
