import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../errors.ts';
import { recordingConnection } from './parts.test-support.ts';
import { SUBSCRIPTIONS_PER_CONNECTION_MAX, Subscriptions } from './subscriptions.ts';

const tag: [number, number, string, number] = [1, 1000, 'server-1#a', 1];

test('a change reaches every subscriber of its region, and only them', () => {
  const subscriptions = new Subscriptions('server-1', 1 << 20);
  const first = recordingConnection('client-1');
  const second = recordingConnection('client-2');
  subscriptions.attach(first);
  subscriptions.attach(second);
  const id = subscriptions.subscribe(first, 'R');
  subscriptions.subscribe(second, 'S');
  subscriptions.notify('R', 'k', new Uint8Array([1]), tag);
  assert.deepEqual(first.pushes.map((push) => push.op), ['event']);
  assert.equal((first.pushes[0]!.body as { subscription: number }).subscription, id);
  assert.equal(second.pushes.length, 0);
});

test('unsubscribing and closing the connection end the subscriptions', () => {
  const subscriptions = new Subscriptions('server-1', 1 << 20);
  const client = recordingConnection('client-1');
  subscriptions.attach(client);
  const first = subscriptions.subscribe(client, 'R');
  subscriptions.subscribe(client, 'R');
  subscriptions.unsubscribe(client, first);
  subscriptions.notify('R', 'k', null, tag);
  assert.equal(client.pushes.length, 1);
  assert.equal(subscriptions.detach(client), true);
  subscriptions.notify('R', 'k', null, tag);
  assert.equal(client.pushes.length, 1);
  assert.equal(subscriptions.detach(client), false, 'a connection is detached once');
});

test('only attached clients subscribe, up to the per-connection limit', () => {
  const subscriptions = new Subscriptions('server-1', 1 << 20);
  const server = recordingConnection('server-2', 'server');
  assert.throws(() => subscriptions.subscribe(server, 'R'), (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_MESSAGE_INVALID');
  const client = recordingConnection('client-1');
  subscriptions.attach(client);
  for (let index = 0; index < SUBSCRIPTIONS_PER_CONNECTION_MAX; index++) subscriptions.subscribe(client, 'R');
  assert.throws(() => subscriptions.subscribe(client, 'R'), (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_TOO_MANY_IN_FLIGHT');
});

test('a subscriber that does not take its events is cut off with a coded notice; others go on', () => {
  const subscriptions = new Subscriptions('server-1', 1 << 20);
  const slow = recordingConnection('slow');
  const fast = recordingConnection('fast');
  subscriptions.attach(slow);
  subscriptions.attach(fast);
  const id = subscriptions.subscribe(slow, 'R');
  subscriptions.subscribe(fast, 'R');
  slow.backlogged = true;
  subscriptions.notify('R', 'k', null, tag);
  subscriptions.notify('R', 'k2', null, tag);
  assert.deepEqual(slow.pushes.map((push) => push.op), ['subscriptionEnded']);
  const notice = slow.pushes[0]!.body as { subscription: number; error: { code: string } };
  assert.equal(notice.subscription, id);
  assert.equal(notice.error.code, 'STRAIT_SUBSCRIBER_TOO_SLOW');
  assert.equal(fast.pushes.length, 2);
  assert.equal(subscriptions.slowSubscribersCut, 1);
  slow.backlogged = false;
  subscriptions.notify('R', 'k3', null, tag);
  assert.equal(slow.pushes.length, 1, 'the ended subscription gets nothing more');
});
