import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shortUrl, summarizeProfile, type CpuProfile } from './cpu-profile.ts';

const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber, columnNumber: 0 });

// Samples at t = 1010, 1020, 1030, 1040 (µs), profile ending at 1050: each lasts 10 µs.
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 3, 4, 5] },
    { id: 2, callFrame: frame('encodeFrame', 'file:///repo/src/protocol/frame.ts', 57) },
    { id: 3, callFrame: frame('encodeFrame', 'file:///repo/src/protocol/frame.ts', 57) },
    { id: 4, callFrame: frame('(idle)') },
    { id: 5, callFrame: frame('writeBuffer') },
  ],
  startTime: 1000,
  endTime: 1050,
  samples: [2, 3, 4, 5],
  timeDeltas: [10, 10, 10, 10],
};

test('sums self time per function and file across nodes, leaving idle out of the shares', () => {
  const summary = summarizeProfile(profile, '/repo', 10);
  assert.equal(summary.windowMs, 0.04);
  assert.equal(summary.idleMs, 0.01);
  assert.ok(Math.abs(summary.busyMs - 0.03) < 1e-12);
  assert.equal(summary.functions[0]?.name, 'encodeFrame src/protocol/frame.ts:58');
  assert.equal(summary.functions[0]?.selfMs, 0.02);
  assert.ok(Math.abs(summary.functions[0]!.share - 2 / 3) < 1e-9);
  assert.equal(summary.functions[1]?.name, 'writeBuffer');
  assert.deepEqual(summary.files.map((entry) => entry.name), ['src/protocol/frame.ts', '(native)']);
});

test('counts only samples inside the window', () => {
  const summary = summarizeProfile(profile, '/repo', 10, { fromMicros: 1030, toMicros: 1050 });
  assert.equal(summary.windowMs, 0.02);
  assert.deepEqual(summary.functions.map((entry) => entry.name), ['writeBuffer']);
});

test('shortens project and node_modules URLs', () => {
  assert.equal(shortUrl('file:///work/main/src/core/server.ts', '/work/main/'), 'src/core/server.ts');
  assert.equal(shortUrl('file:///work/main/node_modules/msgpackr/pack.js', '/work/main/'), 'node_modules/msgpackr/pack.js');
  assert.equal(shortUrl('node:internal/buffer', '/work/main/'), 'node:internal/buffer');
});
