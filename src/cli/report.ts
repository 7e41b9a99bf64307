// How the CLI reports members and errors: exit statuses, `{ code, message }` of any error, and
// the one-line summary of a started member.

import { AssertionFailure, StraitError } from '../errors.ts';
import { formatHostPort } from '../config/address.ts';
import { formatAddress } from '../runtime/runtime.ts';
import type { ListeningMemberRecord } from './member-files.ts';

export const EXIT_FAILURE = 1;
/** Usage and configuration mistakes: fix the command or strait.yaml. */
export const EXIT_USAGE = 2;
/** A member whose invariants broke (EX_SOFTWARE): it must not keep running. */
export const EXIT_FATAL = 70;

/** Exit status for an error: 2 for configuration and usage mistakes, 1 for everything else. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof StraitError) {
    // Bad input. The site's own refusals (STRAIT_CONFIG_CONFLICT, _NOT_FOUND, _NO_QUORUM, ...) are failures.
    if (error.code === 'STRAIT_CONFIG_INVALID' || error.code === 'STRAIT_CONFIG_UNKNOWN_KEY' || error.code === 'STRAIT_ADDRESS_INVALID' || error.code === 'STRAIT_USAGE') return EXIT_USAGE;
  }
  return EXIT_FAILURE;
}

/** `{ code, message }` of any error, for member.json and the CLI. */
export function describeError(error: unknown): { code: string; message: string } {
  if (error instanceof StraitError) return { code: error.code, message: error.message };
  if (error instanceof AssertionFailure) return { code: 'STRAIT_INTERNAL', message: `assertion failed: ${error.message}` };
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'STRAIT_INTERNAL', message };
}

/** The one-line summary `start` prints and `run` logs once the member is ready. */
export function describeReadyMember(record: ListeningMemberRecord, logFile?: string): string {
  const role = record.role === 'locator' ? 'Locator' : record.role === 'router' ? 'Router' : 'Server';
  const log = logFile === undefined ? '' : `, log ${logFile}`;
  if (record.role === 'router') return `Router ${record.name} listening on ${formatAddress(record.address)}, pid ${record.pid}${log}`;
  const scheme = record.https === true ? 'https' : 'http';
  if (record.role === 'controller') return `Controller ${record.name} listening on ${scheme}://${formatHostPort(record.address)} (API /v1/topologies, dashboard /), pid ${record.pid}${log}`;
  return (
    `${role} ${record.name} (site ${record.site}) listening on ${formatAddress(record.address)}${record.https === true ? ' (TLS)' : ''}, ` +
    `admin ${scheme}://${formatHostPort(record.httpAddress)}, pid ${record.pid}${log}`
  );
}

/** Left-aligned columns two spaces apart; the first row is the header. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0))).join('  ')).join('\n');
}
