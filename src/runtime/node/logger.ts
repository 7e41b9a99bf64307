// Structured logging for real processes: pino, one JSON object per line, or a human-readable
// rendering with `pretty`. Secrets that may end up in logged fields (admin tokens, passwords)
// are replaced before anything is written.
//
// Lines are written synchronously: a member that stops on a failed assertion must leave its
// last lines behind, and Strait logs events (joins, failures, state changes), not every
// operation, so the write cost does not matter.

import { mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino, type DestinationStream, type LevelWithSilent } from 'pino';
import pretty from 'pino-pretty';
import { StraitError } from '../../errors.ts';
import type { Logger } from '../runtime.ts';

export interface LoggerOptions {
  /** Written as the `name` field of every line, e.g. the member name. */
  readonly name: string;
  /** trace, debug, info (default), warn, error, fatal or silent. */
  readonly level?: string;
  /** Human-readable lines instead of JSON; written synchronously. */
  readonly pretty?: boolean;
  /** A file to append to (its directory is created); standard output when absent. */
  readonly destination?: string;
}

/** A Logger that can also push out lines still buffered for the destination (none when sync). */
export interface NodeLogger extends Logger {
  child(bindings: Readonly<Record<string, unknown>>): NodeLogger;
  flush(callback?: (error?: Error) => void): void;
}

const levels: readonly LevelWithSilent[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** Field paths whose values never reach a log: top level and one object down. */
export const redactedPaths: readonly string[] = [
  'token',
  'password',
  'secret',
  'authorization',
  '*.token',
  '*.password',
  '*.secret',
  '*.authorization',
];

function openLogFile(path: string): number {
  try {
    mkdirSync(dirname(path), { recursive: true });
    return openSync(path, 'a');
  } catch (error) {
    throw new StraitError(
      'STRAIT_CONFIG_INVALID',
      { source: 'logging', key: 'destination', reason: `cannot open ${path}: ${(error as { code?: string }).code ?? String(error)}` },
      { cause: error },
    );
  }
}

function isLevel(level: string): level is LevelWithSilent {
  return (levels as readonly string[]).includes(level);
}

/** Creates the process logger. Throws STRAIT_CONFIG_INVALID for an unknown level. */
export function createLogger(options: LoggerOptions): NodeLogger {
  const level = options.level ?? 'info';
  if (!isLevel(level)) {
    throw new StraitError('STRAIT_CONFIG_INVALID', {
      source: 'logging',
      key: 'level',
      reason: `unknown level ${JSON.stringify(level)}; use one of ${levels.join(', ')}`,
    });
  }
  let stream: DestinationStream;
  if (options.pretty === true) {
    stream = pretty({
      sync: true,
      colorize: options.destination === undefined && process.stdout.isTTY === true,
      destination: options.destination ?? 1,
      mkdir: true,
      translateTime: 'SYS:standard',
    });
  } else if (options.destination !== undefined) {
    // Opened here so a bad path fails at startup, naming the option.
    stream = pino.destination({ dest: openLogFile(options.destination), sync: true });
  } else {
    stream = pino.destination({ dest: 1, sync: true });
  }
  return pino(
    {
      name: options.name,
      level,
      redact: { paths: [...redactedPaths], censor: '[redacted]' },
    },
    stream,
  );
}
