// What `strait start` reads in a member's log to tell an operator why the member is not ready:
// the latest problem it logged (a warn, error or fatal line), in words. The raw lines stay in
// the log file; an operator is never shown JSON.
//
// The member logs JSON lines (pino: `level` as a number, `msg`) unless its strait.yaml asks for
// `log-format: pretty`; both are understood.

import { tailOfFile } from './member-files.ts';

/** How many lines at the end of the log are searched for the latest problem. */
const PROBLEM_SEARCH_LINES = 200;
/** pino's level number for `warn`; problems are warn and above. */
const WARN_LEVEL = 40;
/** A problem longer than this is cut: one sentence is wanted, not a dump. */
const PROBLEM_CHARS_MAX = 600;

const PRETTY_PROBLEM = /^\[[^\]]*\]\s+(?:WARN|ERROR|FATAL)\b[^:]*?:\s*(.+)$/;
// pino-pretty colours its output when it writes to a terminal.
const TERMINAL_COLOURS = /\x1b\[[0-9;]*m/g;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The member's messages start with its own name ("server s1: ...", "locator l1 (site 1): ...");
 * the CLI names the member itself, so the prefix goes.
 */
function withoutMemberPrefix(message: string, memberName: string): string {
  const prefix = new RegExp(`^(?:server |locator )?${escapeRegExp(memberName)}(?: \\(site \\d+\\))?: `);
  return message.replace(prefix, '');
}

function problemOf(line: string): string | undefined {
  if (line.startsWith('{')) {
    try {
      const entry = JSON.parse(line) as { level?: unknown; msg?: unknown };
      const problem = typeof entry.level === 'number' && entry.level >= WARN_LEVEL;
      if (problem && typeof entry.msg === 'string') return entry.msg;
    } catch {
      // Not a log line (or a torn last line being written): not a problem report.
    }
    return undefined;
  }
  return PRETTY_PROBLEM.exec(line.replace(TERMINAL_COLOURS, ''))?.[1];
}

/** The latest problem among `lines` (oldest first), without the member's name; undefined if none. */
export function latestProblem(lines: readonly string[], memberName: string): string | undefined {
  for (let index = lines.length - 1; index >= 0; index--) {
    const problem = problemOf(lines[index]!.trim());
    if (problem === undefined) continue;
    const sentence = withoutMemberPrefix(problem.trim(), memberName);
    return sentence.length > PROBLEM_CHARS_MAX ? `${sentence.slice(0, PROBLEM_CHARS_MAX)}…` : sentence;
  }
  return undefined;
}

/** The latest problem the member logged in `logFile`; undefined when it logged none (or no file). */
export function latestLoggedProblem(logFile: string, memberName: string): string | undefined {
  return latestProblem(tailOfFile(logFile, PROBLEM_SEARCH_LINES).split('\n'), memberName);
}
