import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AssertionFailure } from '../errors.ts';
import { SIM_COMPRESSION, SimulationFailure, Simulator, wallClockEpochMs } from './simulator.ts';
import { compressionTests } from '../runtime/compression-test-suite.ts';

compressionTests('simulator codec', SIM_COMPRESSION);

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function text(value: Uint8Array | undefined): string | undefined {
  return value === undefined ? undefined : new TextDecoder().decode(value);
}

describe('Simulator', () => {
  it('runs events in time order, and events due at the same time first-scheduled first', () => {
    const simulator = new Simulator({ seed: 1, log: 'silent' });
    const order: string[] = [];
    simulator.schedule(5, () => order.push('b@5'));
    simulator.schedule(1, () => order.push('a@1'));
    simulator.schedule(5, () => order.push('c@5'));
    simulator.schedule(0, () => {
      order.push('zero');
      simulator.schedule(5, () => order.push('d@5'));
    });
    const result = simulator.run();
    assert.deepEqual(order, ['zero', 'a@1', 'b@5', 'c@5', 'd@5']);
    assert.deepEqual(result, { reason: 'idle', steps: 5, nowMs: 5 });
  });

  it('stops on untilMs (advancing the clock), maxSteps and the until predicate', () => {
    const simulator = new Simulator({ seed: 2, log: 'silent' });
    let ticks = 0;
    const tick = () => {
      ticks++;
      simulator.schedule(10, tick);
    };
    simulator.schedule(0, tick);
    assert.deepEqual(simulator.run({ untilMs: 25 }), { reason: 'time', steps: 3, nowMs: 25 });
    assert.deepEqual(simulator.run({ maxSteps: 2 }), { reason: 'steps', steps: 2, nowMs: 40 });
    assert.deepEqual(simulator.run({ until: () => ticks === 7 }), { reason: 'until', steps: 2, nowMs: 60 });
    const idle = new Simulator({ seed: 2, log: 'silent' });
    assert.deepEqual(idle.run({ untilMs: 1000 }), { reason: 'time', steps: 0, nowMs: 1000 });
    assert.equal(idle.step(), false);
  });

  it('gives each host a wall clock with its skew and a shared monotonic clock', () => {
    const simulator = new Simulator({ seed: 3, log: 'silent' });
    const plain = simulator.host('plain').runtime();
    const skewedHost = simulator.host('skewed', { clockSkewMs: -250 });
    const skewed = skewedHost.runtime();
    simulator.run({ untilMs: 1000 });
    assert.equal(plain.clock.now(), wallClockEpochMs + 1000);
    assert.equal(skewed.clock.now(), wallClockEpochMs + 750);
    assert.equal(skewed.clock.monotonic(), 1000);
    skewedHost.clockSkewMs = 5000;
    assert.equal(skewed.clock.now(), wallClockEpochMs + 6000);
    assert.equal(skewed.clock.monotonic(), 1000);
  });

  it('assigns distinct addresses unless told, and rejects duplicate names and addresses', () => {
    const simulator = new Simulator({ seed: 4, log: 'silent' });
    assert.equal(simulator.host('a').address, '10.0.0.1');
    assert.equal(simulator.host('b', { address: '192.168.1.7' }).address, '192.168.1.7');
    assert.equal(simulator.host('c').address, '10.0.0.2');
    assert.throws(() => simulator.host('a'), AssertionFailure);
    assert.throws(() => simulator.host('d', { address: '10.0.0.1' }), AssertionFailure);
    assert.equal(simulator.getHost('b').address, '192.168.1.7');
  });

  it('fires timers no sooner than 1 ms and never once cancelled', () => {
    const simulator = new Simulator({ seed: 5, log: 'silent' });
    const runtime = simulator.host('a').runtime();
    const fired: number[] = [];
    runtime.setTimer(0, () => fired.push(simulator.nowMs));
    runtime.setTimer(7, () => fired.push(simulator.nowMs));
    runtime.setTimer(3, () => fired.push(-1)).cancel();
    simulator.run();
    assert.deepEqual(fired, [1, 7]);
  });

  it('cancels the timers of a crashed process, keeps scenario events, and restarts a fresh incarnation', () => {
    const simulator = new Simulator({ seed: 6, log: 'silent' });
    const host = simulator.host('a');
    const first = host.runtime();
    assert.equal(host.alive, true);
    assert.equal(host.incarnation, 1);
    const fired: string[] = [];
    first.setTimer(10, () => fired.push('old process timer'));
    simulator.schedule(10, () => fired.push('scenario event'));
    simulator.schedule(5, () => host.crash());
    simulator.run({ untilMs: 6 });
    assert.equal(host.alive, false);
    const second = host.runtime();
    assert.equal(host.alive, true);
    assert.equal(host.incarnation, 2);
    assert.notEqual(second, first);
    assert.equal(host.runtime(), second, 'the same process keeps its runtime');
    second.setTimer(10, () => fired.push('new process timer'));
    simulator.run();
    assert.deepEqual(fired, ['scenario event', 'new process timer']);
  });

  it('gives every process its own deterministic random stream', () => {
    const draw = (extraHost: boolean) => {
      const simulator = new Simulator({ seed: 7, log: 'silent' });
      if (extraHost) simulator.host('first');
      const host = simulator.host('a');
      const firstValues = [host.runtime().random.next(), host.runtime().random.next()];
      host.crash();
      const secondValues = [host.runtime().random.next(), host.runtime().random.next()];
      return { firstValues, secondValues };
    };
    const run = draw(false);
    assert.deepEqual(draw(false), run);
    assert.deepEqual(draw(true), run, 'another host does not shift this host\'s numbers');
    assert.notDeepEqual(run.firstValues, run.secondValues, 'a restarted process draws new numbers');
  });

  it('keeps synced writes and loses unsynced ones across a crash', () => {
    const simulator = new Simulator({ seed: 8, log: 'silent' });
    const host = simulator.host('a');
    const store = host.runtime().storage.open('queue');
    store.put('synced', bytes('kept'));
    let syncedAtMs: number | undefined;
    store.sync((error) => {
      assert.equal(error, undefined);
      syncedAtMs = simulator.nowMs;
    });
    simulator.run();
    assert.ok(syncedAtMs !== undefined && syncedAtMs >= 0 && syncedAtMs <= 2, `flush took ${syncedAtMs} ms`);
    store.put('unsynced', bytes('lost'));
    store.put('flush pending', bytes('lost too'));
    let lateSync = false;
    store.sync(() => {
      lateSync = true;
    });
    host.crash();
    simulator.run();
    assert.equal(lateSync, false, 'a flush of the dead process never completes');
    const reopened = host.runtime().storage.open('queue');
    assert.equal(text(reopened.get('synced')), 'kept');
    assert.equal(reopened.get('unsynced'), undefined);
    assert.equal(reopened.get('flush pending'), undefined);
  });

  it('turns an exception in a callback into a SimulationFailure naming the time and the seed', () => {
    const simulator = new Simulator({ seed: 424242, log: 'silent' });
    const runtime = simulator.host('server1').runtime();
    const cause = new Error('invariant broken');
    runtime.setTimer(12, () => {
      throw cause;
    });
    assert.throws(
      () => simulator.run(),
      (error: unknown) => {
        assert.ok(error instanceof SimulationFailure);
        assert.equal(error.seed, 424242);
        assert.equal(error.timeMs, 12);
        assert.equal(error.hostName, 'server1');
        assert.equal(error.cause, cause);
        assert.match(error.message, /seed 424242/);
        assert.match(error.message, /npm run sim -- --seed 424242/);
        return true;
      },
    );
    assert.throws(() => simulator.step(), AssertionFailure, 'a failed simulation does not continue');
  });

  it('refuses to run from inside a simulated callback', () => {
    const simulator = new Simulator({ seed: 9, log: 'silent' });
    simulator.schedule(1, () => simulator.run());
    assert.throws(() => simulator.run(), (error: unknown) => error instanceof SimulationFailure && error.cause instanceof AssertionFailure);
  });

  it('collects the last log lines with virtual time and host, and keeps nothing when silent', () => {
    const simulator = new Simulator({ seed: 10, log: 'collect', logLinesMax: 3 });
    const log = simulator.host('server1').runtime().log.child({ region: 'TEST' });
    for (let index = 0; index < 5; index++) simulator.schedule(index * 10, () => log.info({ index }, `line ${index}`));
    simulator.run();
    const lines = simulator.dumpLog().split('\n');
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /^\s*20ms server1 INFO line 2 region=TEST index=2$/);
    assert.match(lines[2]!, /^\s*40ms server1 INFO line 4/);

    const silent = new Simulator({ seed: 10, log: 'silent' });
    silent.host('a').runtime().log.error({}, 'nobody hears this');
    assert.equal(silent.dumpLog(), '');
  });

  it('labels the log of a restarted process with its incarnation', () => {
    const simulator = new Simulator({ seed: 11 });
    const host = simulator.host('server1');
    host.crash();
    host.runtime().log.warn({ peer: '10.0.0.2[7000]' }, 'rejoining');
    assert.match(simulator.dumpLog(), /server1#2 WARN rejoining peer=10.0.0.2\[7000\]/);
  });
});
