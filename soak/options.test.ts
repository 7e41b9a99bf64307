import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DURATION_SECONDS_MIN, parseOptions, reproduceCommand, ROW_NAMES, UsageError } from './options.ts';

const seed = () => 1234;

test('defaults, --quick, and the seed drawn when none is given', () => {
  const full = parseOptions([], seed)!;
  assert.deepEqual(full.rows, ROW_NAMES);
  assert.equal(full.durationSeconds, 60);
  assert.equal(full.ratePerSecond, 200);
  assert.equal(full.seed, 1234);
  assert.equal(full.keep, false);
  const quick = parseOptions(['--quick'], seed)!;
  assert.ok(quick.durationSeconds < full.durationSeconds && quick.ratePerSecond < full.ratePerSecond);
  assert.ok(quick.convergeTimeoutSeconds <= full.convergeTimeoutSeconds);
  assert.equal(parseOptions(['--help'], seed), undefined);
});

test('explicit values win over --quick', () => {
  const options = parseOptions(['--quick', '--duration-s', '30', '--rate', '10', '--converge-timeout-s', '5', '--seed', '7', '--keep'], seed)!;
  assert.deepEqual([options.durationSeconds, options.ratePerSecond, options.convergeTimeoutSeconds, options.seed, options.keep], [30, 10, 5, 7, true]);
});

test('--rows keeps the matrix order and refuses unknown rows', () => {
  assert.deepEqual(parseOptions(['--rows', 'site, primary-sender'], seed)!.rows, ['primary-sender', 'site']);
  assert.deepEqual(parseOptions(['--rows', 'locator,locator'], seed)!.rows, ['locator']);
  assert.throws(() => parseOptions(['--rows', 'primary,site'], seed), (error: Error) => error instanceof UsageError && /unknown row "primary"/.test(error.message));
  assert.throws(() => parseOptions(['--rows', ','], seed), UsageError);
});

test('usage errors name the flag', () => {
  const cases: [string[], RegExp][] = [
    [['--duration-s', String(DURATION_SECONDS_MIN - 1)], /--duration-s/],
    [['--duration-s', '1.5'], /--duration-s/],
    [['--rate', '0'], /--rate/],
    [['--rate', ''], /--rate/],
    [['--seed', '-1'], /--seed/],
    [['--converge-timeout-s', 'x'], /--converge-timeout-s/],
    [['--fast'], /fast/],
    [['extra'], /extra/],
  ];
  for (const [args, pattern] of cases) assert.throws(() => parseOptions(args, seed), (error: Error) => error instanceof UsageError && pattern.test(error.message), args.join(' '));
});

test('the reproduce command repeats rows, duration, rate and seed', () => {
  const options = parseOptions(['--quick', '--seed', '99'], seed)!;
  assert.equal(reproduceCommand(options, ['site']), 'npm run soak -- --rows site --duration-s 20 --rate 50 --seed 99');
});
