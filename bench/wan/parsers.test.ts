// The WAN benchmark's pure parts: the NATS and RESP parsers at any chunk boundary, stamped
// values, lag summaries and the options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NatsParser, type ParsedOp } from './nats-client.ts';
import { RespParser, encodeCommand, type RespValue } from './resp-client.ts';
import { LagRecorder, sentAt, stampedValue } from './load.ts';
import { parseWanOptions, WanUsageError } from './options.ts';

const NATS_STREAM = Buffer.from(
  'INFO {"server_id":"x"}\r\nPING\r\nMSG a.b 1 5\r\nhello\r\nMSG _INBOX.x.7 2 _INBOX.r 2\r\n{}\r\n' +
  'HMSG m 3 12 17\r\nNATS/1.0\r\n\r\nhello\r\n+OK\r\nPONG\r\n-ERR \'x\'\r\n',
);

function parseNats(chunks: readonly Buffer[]): ParsedOp[] {
  const parser = new NatsParser();
  const ops: ParsedOp[] = [];
  for (const chunk of chunks) {
    parser.push(chunk);
    for (let op = parser.next(); op !== undefined; op = parser.next()) {
      // Payloads are views of the parser's buffer: copy before the next push.
      ops.push(op.op === 'msg' ? { op: 'msg', message: { ...op.message, payload: Buffer.from(op.message.payload) } } : op);
    }
  }
  return ops;
}

test('NATS parser: every op, whole and split at every byte', () => {
  const whole = parseNats([NATS_STREAM]);
  assert.deepEqual(whole.map((op) => op.op), ['info', 'ping', 'msg', 'msg', 'msg', 'ok', 'pong', 'err']);
  const messages = whole.filter((op) => op.op === 'msg').map((op) => (op as Extract<ParsedOp, { op: 'msg' }>).message);
  assert.deepEqual(messages.map((m) => [m.subject, m.sid, m.reply, m.payload.toString()]), [
    ['a.b', 1, undefined, 'hello'],
    ['_INBOX.x.7', 2, '_INBOX.r', '{}'],
    ['m', 3, undefined, 'hello'],
  ]);
  for (let split = 1; split < NATS_STREAM.length; split++) {
    assert.deepEqual(parseNats([NATS_STREAM.subarray(0, split), NATS_STREAM.subarray(split)]), whole, `split at ${split}`);
  }
  assert.deepEqual(parseNats([...NATS_STREAM].map((byte) => Buffer.from([byte]))), whole);
});

test('NATS parser refuses an unknown line', () => {
  const parser = new NatsParser();
  parser.push(Buffer.from('BOGUS\r\n'));
  assert.throws(() => parser.next());
});

const RESP_STREAM = Buffer.from('+OK\r\n-ERR bad\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*3\r\n$8\r\npmessage\r\n$1\r\n*\r\n*1\r\n:7\r\n*-1\r\n');

function parseResp(chunks: readonly Buffer[]): RespValue[] {
  const parser = new RespParser();
  const values: RespValue[] = [];
  for (const chunk of chunks) {
    parser.push(chunk);
    for (let value = parser.next(); value !== undefined; value = parser.next()) values.push(value.value);
  }
  return values;
}

test('RESP parser: every type, nested arrays, split at every byte', () => {
  const whole = parseResp([RESP_STREAM]);
  assert.equal(whole.length, 7);
  assert.equal(whole[0], 'OK');
  assert.ok(whole[1] instanceof Error);
  assert.deepEqual(whole.slice(2), [42, 'hello', null, ['pmessage', '*', [7]], null]);
  for (let split = 1; split < RESP_STREAM.length; split++) {
    assert.deepEqual(parseResp([RESP_STREAM.subarray(0, split), RESP_STREAM.subarray(split)]), whole, `split at ${split}`);
  }
  assert.equal(encodeCommand(['SET', 'k', 'vé']), '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nvé\r\n');
});

test('stamped values have the exact size and give back their send time and run', () => {
  const value = stampedValue('lag3', 1234.5678, 100);
  assert.equal(value.length, 100);
  assert.equal(sentAt(value, 'lag3'), 1234.568);
  assert.equal(sentAt(value, 'lag4'), undefined);
  assert.equal(sentAt('x'.repeat(100), 'lag3'), undefined);
  assert.equal(stampedValue('r', 1, 1024).length, 1024);
});

test('lag recorder percentiles', () => {
  const recorder = new LagRecorder(4);
  for (let lag = 1; lag <= 1000; lag++) recorder.add(lag);
  const summary = recorder.summary();
  assert.equal(summary.events, 1000);
  assert.equal(summary.p50Ms, 500);
  assert.equal(summary.p99Ms, 990);
  assert.equal(summary.p999Ms, 999);
  assert.equal(summary.maxMs, 1000);
});

test('options: quick, full, --only and bad flags', () => {
  const quick = parseWanOptions(['--quick'])!;
  assert.equal(quick.runs, 1);
  assert.equal(quick.backlogEvents, 50_000);
  const full = parseWanOptions([])!;
  assert.equal(full.runs, 3);
  assert.equal(full.backlogEvents, 1_000_000);
  assert.deepEqual(full.systems, ['strait', 'redis', 'nats']);
  assert.deepEqual(parseWanOptions(['--only', 'strait,nats'])!.systems, ['strait', 'nats']);
  assert.equal(parseWanOptions(['--help']), undefined);
  assert.throws(() => parseWanOptions(['--only', 'kafka']), WanUsageError);
  assert.throws(() => parseWanOptions(['--runs', '0']), WanUsageError);
  assert.throws(() => parseWanOptions(['--bogus']), WanUsageError);
});
