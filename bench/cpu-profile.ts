// Reading V8 .cpuprofile files (what `node --cpu-prof` and the inspector's Profiler write):
// self time per function and per source file, optionally only within a time window.

export interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  /** 0-based. */
  readonly lineNumber: number;
  readonly columnNumber: number;
}

export interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  /** Microseconds on the monotonic clock (the one process.hrtime reads, divided by 1000). */
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  /** Microseconds from the previous sample (the first: from startTime). */
  readonly timeDeltas: readonly number[];
}

export interface SelfTime {
  /** Function name and where it is, e.g. "encodeFrame src/protocol/frame.ts:58". */
  readonly name: string;
  readonly selfMs: number;
  /** Share of the busy (non-idle) time in the window, 0..1. */
  readonly share: number;
}

export interface ProfileSummary {
  /** Length of the window analysed. */
  readonly windowMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly functions: readonly SelfTime[];
  readonly files: readonly SelfTime[];
}

/** Microsecond bounds on the profile's clock; samples outside are ignored. */
export interface Window {
  readonly fromMicros: number;
  readonly toMicros: number;
}

/** Makes a script URL readable: repository-relative for project files and node_modules. */
export function shortUrl(url: string, root: string): string {
  let path = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) path = path.slice(modules + 1);
  else if (path.startsWith(root)) path = path.slice(root.length).replace(/^\//, '');
  return path;
}

function describeFrame(frame: CallFrame, root: string): { function: string; file: string } {
  const functionName = frame.functionName.length > 0 ? frame.functionName : '(anonymous)';
  if (frame.url.length === 0) return { function: functionName, file: functionName.startsWith('(') ? functionName : '(native)' };
  const file = shortUrl(frame.url, root);
  return { function: `${functionName} ${file}:${frame.lineNumber + 1}`, file };
}

function top(totals: Map<string, number>, busyMs: number, limit: number): SelfTime[] {
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, selfMs]) => ({ name, selfMs, share: busyMs > 0 ? selfMs / busyMs : 0 }));
}

/**
 * Self time per function (functionName + url:line, summed over every node of that function)
 * and per file. A sample lasts until the next one (the last until endTime), as DevTools counts
 * it. `(idle)` is left out of the shares: they are shares of the time the thread was working.
 */
export function summarizeProfile(profile: CpuProfile, root: string, limit: number, window?: Window): ProfileSummary {
  const frames = new Map<number, { function: string; file: string }>();
  for (const node of profile.nodes) frames.set(node.id, describeFrame(node.callFrame, root));
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let windowMs = 0;
  let idleMs = 0;
  let timestamp = profile.startTime;
  const timestamps: number[] = [];
  for (const delta of profile.timeDeltas) {
    timestamp += delta;
    timestamps.push(timestamp);
  }
  for (let index = 0; index < profile.samples.length; index++) {
    const at = timestamps[index]!;
    if (window !== undefined && (at < window.fromMicros || at >= window.toMicros)) continue;
    const next = index + 1 < timestamps.length ? timestamps[index + 1]! : profile.endTime;
    const durationMs = Math.max(0, next - at) / 1000;
    const frame = frames.get(profile.samples[index]!);
    if (frame === undefined) continue;
    windowMs += durationMs;
    if (frame.function === '(idle)') {
      idleMs += durationMs;
      continue;
    }
    byFunction.set(frame.function, (byFunction.get(frame.function) ?? 0) + durationMs);
    byFile.set(frame.file, (byFile.get(frame.file) ?? 0) + durationMs);
  }
  const busyMs = windowMs - idleMs;
  return { windowMs, idleMs, busyMs, functions: top(byFunction, busyMs, limit), files: top(byFile, busyMs, limit) };
}
