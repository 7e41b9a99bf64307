// `maximum-heap-memory` is applied by `strait start`, which starts the member's Node with
// --max-old-space-size. A member run in the foreground (`strait run`, a container's entry point)
// is already running when it reads its configuration, and V8 fixes its heap limit when the
// process starts: such a member checks the limit it got and says how to apply the setting.

import { getHeapStatistics } from 'node:v8';
import type { Logger } from '../runtime/runtime.ts';

const MEBIBYTE = 1024 * 1024;
/**
 * V8's limit is the old generation plus the young one and a little more (536 MiB for 512 with
 * 8 MiB semi-spaces, 704 with Node's default ones): more than this above the setting means it
 * was not applied.
 */
const HEAP_LIMIT_SLACK_MEGABYTES = 256;

/** Why the running heap limit is not the configured one, or undefined when it is (or none is set). */
export function heapLimitProblem(configuredMegabytes: number | undefined, limitBytes: number = getHeapStatistics().heap_size_limit): string | undefined {
  if (configuredMegabytes === undefined) return undefined;
  const limitMegabytes = Math.round(limitBytes / MEBIBYTE);
  if (limitMegabytes <= configuredMegabytes * 1.5 + HEAP_LIMIT_SLACK_MEGABYTES) return undefined;
  return `maximum-heap-memory is ${configuredMegabytes} MiB but this Node's heap limit is ${limitMegabytes} MiB: `
    + `V8 fixes it when the process starts, which strait start does for you; in the foreground (strait run, a container) `
    + `start Node with NODE_OPTIONS=--max-old-space-size=${configuredMegabytes}`;
}

/** Logs heapLimitProblem as a warning (code STRAIT_HEAP_LIMIT_NOT_APPLIED). */
export function warnIfHeapLimitNotApplied(configuredMegabytes: number | undefined, log: Logger): void {
  const problem = heapLimitProblem(configuredMegabytes);
  if (problem !== undefined) log.warn({ code: 'STRAIT_HEAP_LIMIT_NOT_APPLIED' }, problem);
}
