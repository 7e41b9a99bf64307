// The WAN benchmark's options, and the peers they ask for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWanOptions, peersWanted, WanUsageError } from './options.ts';

test('options: quick, full, --only and bad flags', () => {
  const quick = parseWanOptions(['--quick'])!;
  assert.equal(quick.runs, 1);
  assert.equal(quick.backlogEvents, 1_000_000);
  const full = parseWanOptions([])!;
  assert.equal(full.runs, 3);
  assert.equal(full.backlogEvents, 10_000_000);
  assert.deepEqual(full.systems, ['strait', 'redis', 'nats']);
  assert.deepEqual(parseWanOptions(['--only', 'strait,nats'])!.systems, ['strait', 'nats']);
  assert.equal(parseWanOptions(['--help']), undefined);
  assert.throws(() => parseWanOptions(['--only', 'kafka']), WanUsageError);
  assert.throws(() => parseWanOptions(['--runs', '0']), WanUsageError);
  assert.throws(() => parseWanOptions(['--bogus']), WanUsageError);
  assert.equal(full.profileDrainEvents, undefined);
  assert.equal(parseWanOptions(['--profile', '--profile-drain', '500000'])!.profileDrainEvents, 500_000);
  assert.throws(() => parseWanOptions(['--profile-drain', '500000']), /goes with --profile/);
});

test('the peers a run needs: the selected ones; none with --without-peers or --profile', () => {
  assert.deepEqual(peersWanted(parseWanOptions([])!), ['redis', 'nats']);
  assert.deepEqual(peersWanted(parseWanOptions(['--only', 'strait,nats'])!), ['nats']);
  assert.deepEqual(peersWanted(parseWanOptions(['--only', 'strait'])!), []);
  const alone = parseWanOptions(['--quick', '--without-peers'])!;
  assert.equal(alone.withoutPeers, true);
  assert.deepEqual(peersWanted(alone), []);
  assert.deepEqual(peersWanted(parseWanOptions(['--profile'])!), []);
  assert.throws(() => parseWanOptions(['--without-peers', '--only', 'redis']), /leaves Strait out/);
});
