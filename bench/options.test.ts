// The site benchmark's options, and the peers they ask for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOptions, peersWanted, UsageError } from './options.ts';

test('options: defaults, --quick, --ops, and usage errors', () => {
  const full = parseOptions([]);
  assert.equal(full?.runs, 3);
  assert.equal(full?.opsPipelined, full!.opsOneInFlight * 10);
  const quick = parseOptions(['--quick']);
  assert.equal(quick?.runs, 1);
  assert.ok(quick!.opsOneInFlight < full!.opsOneInFlight);
  assert.equal(parseOptions(['--ops', '500'])?.opsOneInFlight, 500);
  assert.equal(parseOptions(['--help']), undefined);
  assert.throws(() => parseOptions(['--ops', '0']), UsageError);
  assert.throws(() => parseOptions(['--fast']), UsageError);
});

test('--without-peers measures Strait alone; otherwise the comparison needs Redis and the profile nothing', () => {
  const full = parseOptions([])!;
  assert.equal(full.withoutPeers, false);
  assert.deepEqual(peersWanted(full), ['redis']);
  const alone = parseOptions(['--quick', '--without-peers'])!;
  assert.equal(alone.withoutPeers, true);
  assert.deepEqual(peersWanted(alone), []);
  assert.deepEqual(peersWanted(parseOptions(['--profile'])!), []);
  assert.throws(() => parseOptions(['--without-peer']), UsageError);
});

test('--profile-operation and --profile-in-flight choose what the profiled phase does', () => {
  const defaults = parseOptions(['--profile'])!;
  assert.equal(defaults.profileOperation, 'put');
  assert.equal(defaults.profileInFlight, defaults.pipelineDepth);
  const gets = parseOptions(['--profile', '--profile-operation', 'get', '--profile-in-flight', '1'])!;
  assert.equal(gets.profileOperation, 'get');
  assert.equal(gets.profileInFlight, 1);
  assert.throws(() => parseOptions(['--profile', '--profile-operation', 'remove']), UsageError);
  assert.throws(() => parseOptions(['--profile', '--profile-in-flight', '0']), UsageError);
});
