// What the members said during a row: the warnings and errors of their JSON logs (pino: level
// 40 warn, 50 error, 60 fatal), grouped by message shape so a line repeated a thousand times
// with different numbers shows once with its count. The parsing is pure (logs.test.ts); reading
// the files is `readMemberLogs`.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const WARN_LEVEL = 40;
/** Distinct messages kept per row. */
const MESSAGES_MAX = 40;
const MESSAGE_CHARS_MAX = 300;

const LEVEL_NAMES: Readonly<Record<number, string>> = { 40: 'warn', 50: 'error', 60: 'fatal' };

export interface LogMessage {
  readonly member: string;
  readonly level: string;
  /** The first line of this shape, as written. */
  readonly example: string;
  readonly count: number;
}

/** A message with its numbers blanked, so lines that differ only in counts, ids or ports group together. */
export function messageShape(message: string): string {
  return message.replace(/\d+/g, '#');
}

/**
 * Groups the warning-and-worse lines of members' logs written at or after `sinceMs` (epoch ms,
 * pino's `time`; the start-up chatter of two sites finding each other comes before the load
 * starts); lines that are not JSON are skipped.
 */
export function digestLogLines(logs: readonly { member: string; text: string }[], sinceMs = 0): LogMessage[] {
  const groups = new Map<string, { member: string; level: number; example: string; count: number }>();
  for (const { member, text } of logs) {
    for (const line of text.split('\n')) {
      if (line.length === 0 || line[0] !== '{') continue;
      let record: { level?: unknown; msg?: unknown; time?: unknown };
      try {
        record = JSON.parse(line) as { level?: unknown; msg?: unknown; time?: unknown };
      } catch {
        continue;
      }
      if (typeof record.level !== 'number' || record.level < WARN_LEVEL) continue;
      if (typeof record.time === 'number' && record.time < sinceMs) continue;
      const message = typeof record.msg === 'string' ? record.msg : JSON.stringify(record).slice(0, MESSAGE_CHARS_MAX);
      const key = `${member}\u0000${record.level}\u0000${messageShape(message)}`;
      const group = groups.get(key);
      if (group === undefined) groups.set(key, { member, level: record.level, example: message.slice(0, MESSAGE_CHARS_MAX), count: 1 });
      else group.count += 1;
    }
  }
  return [...groups.values()]
    .sort((a, b) => b.level - a.level || b.count - a.count || a.member.localeCompare(b.member))
    .slice(0, MESSAGES_MAX)
    .map((group) => ({
      member: group.member,
      level: LEVEL_NAMES[group.level] ?? String(group.level),
      example: group.example,
      count: group.count,
    }));
}

/** Each member's log file, `<dir>/<name>.log` (every incarnation appends to it). */
export function readMemberLogs(members: readonly { name: string; dir: string }[]): { member: string; text: string }[] {
  return members.flatMap((member) => {
    const path = join(member.dir, `${member.name}.log`);
    return existsSync(path) ? [{ member: member.name, text: readFileSync(path, 'utf8') }] : [];
  });
}
