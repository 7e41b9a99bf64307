// The parsers of single configuration values, shared by the member's keys (member-config.ts)
// and its declarations (declarations.ts). A command-line value is always a string, a file value
// keeps its YAML type; each parser accepts both where that makes sense and returns the value in
// its checked form. Every refusal is STRAIT_CONFIG_INVALID naming the key as the user wrote it
// and where it came from; an unknown key is STRAIT_CONFIG_UNKNOWN_KEY with a did-you-mean hint.

import { StraitError } from '../errors.ts';
import type { Address } from '../runtime/runtime.ts';
import { parseAddress, parseAddressList } from './address.ts';

/** Where one value came from, for error messages. */
export interface Origin {
  readonly source: string;
  /** The key as the user wrote it: `--port` on the command line, `regions.TEST.type` in a file. */
  readonly key: string;
  /** Command-line values are always strings; file values keep their YAML type. */
  readonly fromCommandLine: boolean;
}

/** Parses one value, or throws STRAIT_CONFIG_INVALID naming `origin`. */
export type Parser<T> = (value: unknown, origin: Origin) => T;

export function invalid(origin: Origin, reason: string): StraitError {
  return new StraitError('STRAIT_CONFIG_INVALID', { source: origin.source, key: origin.key, reason });
}

export function unknownKey(source: string, key: string, candidates: readonly string[]): StraitError {
  const suggestion = closest(key.split('.').at(-1) ?? key, candidates);
  const hint = suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`;
  return new StraitError('STRAIT_CONFIG_UNKNOWN_KEY', { source, key, hint });
}

// --- Did-you-mean -------------------------------------------------------------------------------

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The candidate nearest to `key`, if it is near enough to be a typo of it. */
export function closest(key: string, candidates: readonly string[]): string | undefined {
  const normalized = key.toLowerCase().replaceAll('_', '-');
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = normalized === candidate ? 0 : editDistance(normalized, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const allowed = Math.max(2, Math.floor(key.length / 3));
  return bestDistance <= allowed ? best : undefined;
}

// --- Scalar parsers ----------------------------------------------------------------------------

export function parseInteger(value: unknown, origin: Origin, minimum: number, maximum: number): number {
  let number: number;
  if (typeof value === 'number') number = value;
  else if (typeof value === 'string' && /^-?[0-9]+$/.test(value.trim())) number = Number(value.trim());
  else throw invalid(origin, `expected an integer from ${minimum} to ${maximum}, got ${describe(value)}`);
  if (!Number.isInteger(number) || number < minimum || number > maximum) {
    throw invalid(origin, `expected an integer from ${minimum} to ${maximum}, got ${describe(value)}`);
  }
  return number;
}

/** A parser of integers from `minimum` to `maximum`. */
export function integerIn(minimum: number, maximum: number): Parser<number> {
  return (value, origin) => parseInteger(value, origin, minimum, maximum);
}

export function parsePort(value: unknown, origin: Origin): number {
  return parseInteger(value, origin, 0, 65535);
}

export function parseSiteId(value: unknown, origin: Origin): number {
  return parseInteger(value, origin, 1, 255);
}

export function parseBoolean(value: unknown, origin: Origin): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw invalid(origin, `expected true or false, got ${describe(value)}`);
}

export function parseString(value: unknown, origin: Origin, lengthMax = 256): string {
  if (typeof value !== 'string' || value.trim().length === 0) {
    throw invalid(origin, `expected a non-empty string, got ${describe(value)}`);
  }
  if (value.length > lengthMax) throw invalid(origin, `longer than ${lengthMax} characters`);
  return value.trim();
}

export function parseChoice<T extends string>(value: unknown, origin: Origin, choices: readonly T[]): T {
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
  throw invalid(origin, `expected one of ${choices.join(', ')}, got ${describe(value)}`);
}

/** A parser of one of `choices`. */
export function oneOf<T extends string>(choices: readonly T[]): Parser<T> {
  return (value, origin) => parseChoice(value, origin, choices);
}

// Member and region names end up in file names and log lines.
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function parseName(value: unknown, origin: Origin): string {
  const name = parseString(value, origin);
  if (!NAME_PATTERN.test(name)) {
    const rule = "must start with a letter or digit and hold only letters, digits, '.', '_' and '-'";
    throw invalid(origin, `${JSON.stringify(name)} ${rule}`);
  }
  return name;
}

export function parseHost(value: unknown, origin: Origin): string {
  const host = parseString(value, origin, 253);
  try {
    // A host is an address without a port: reuse the address rules with a placeholder port.
    return parseAddress(host, 1).host;
  } catch (cause) {
    if (cause instanceof StraitError) throw invalid(origin, `${JSON.stringify(host)} is not a host name or IP address`);
    throw cause;
  }
}

export function parseAddresses(value: unknown, origin: Origin, defaultPort: number): Address[] {
  const text = Array.isArray(value)
    ? value.map((item) => (typeof item === 'string' ? item : describe(item))).join(',')
    : value;
  if (typeof text !== 'string') throw invalid(origin, `expected a list of host[port], got ${describe(value)}`);
  try {
    return parseAddressList(text, defaultPort);
  } catch (cause) {
    if (cause instanceof StraitError) throw invalid(origin, cause.message);
    throw cause;
  }
}

export function parseStringList(value: unknown, origin: Origin): string[] {
  if (typeof value === 'string') return value.split(',').map((item) => item.trim()).filter((item) => item.length > 0);
  if (!Array.isArray(value)) throw invalid(origin, `expected a list of names, got ${describe(value)}`);
  return value.map((item, index) => parseName(item, { ...origin, key: `${origin.key}[${index}]` }));
}

/** A list of paths (a YAML list, or one comma-separated string), each at most 4096 characters. */
export function parsePathList(value: unknown, origin: Origin): string[] {
  const items: unknown[] = typeof value === 'string' ? value.split(',').map((item) => item.trim()).filter((item) => item.length > 0) : Array.isArray(value) ? value : [];
  if (typeof value !== 'string' && !Array.isArray(value)) throw invalid(origin, `expected a list of paths, got ${describe(value)}`);
  if (items.length > 16) throw invalid(origin, 'at most 16 paths');
  return items.map((item, index) => parseString(item, { ...origin, key: `${origin.key}[${index}]` }, 4096));
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

export function asMapping(value: unknown, origin: Origin): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(origin, `expected a mapping, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Every key of `mapping` (at `prefix`) is one of `allowed`, or STRAIT_CONFIG_UNKNOWN_KEY with a hint. */
export function checkKeys(
  mapping: Record<string, unknown>, allowed: readonly string[], source: string, prefix: string,
): void {
  for (const key of Object.keys(mapping)) {
    if (!allowed.includes(key)) throw unknownKey(source, `${prefix}.${key}`, allowed);
  }
}
