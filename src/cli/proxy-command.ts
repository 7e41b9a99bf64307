// `strait proxy`: the WAN delay / partition proxy (src/tools/wan-proxy.ts) in the foreground,
// steered by lines on standard input, so a person or a script (the WAN benchmark) can add delay,
// cap bandwidth, cut and heal a link between two sites on one machine:
//
//   delay <ms> [jitter-ms]     one-way delay per direction (round trip + 2 × ms)
//   bandwidth <bytes/s|off>    per-direction cap shared by all connections
//   partition                  drop every connection; new ones are held silent until heal
//   heal                       let traffic flow again
//   stats                      one line of JSON: settings, connections, bytes
//   quit                       close the proxy and exit 0
//
// Each command prints exactly one line: `ok <what it did>`, `stats {json}`, or
// `error STRAIT_USAGE: <why>` for a line it can't use (the proxy keeps running). SIGINT and
// SIGTERM close it, as `quit` does.

import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { StraitError } from '../errors.ts';
import { parseAddress, formatHostPort } from '../config/address.ts';
import type { Address } from '../runtime/runtime.ts';
import { WanProxy } from '../tools/wan-proxy.ts';
import { describeError, EXIT_FAILURE, exitCodeFor } from './report.ts';

/** Largest delay or jitter accepted, ms: an hour is far beyond any WAN. */
export const PROXY_DELAY_MS_MAX = 3_600_000;
/** Largest bandwidth cap accepted, bytes per second (1 TB/s: effectively unlimited). */
export const PROXY_BANDWIDTH_BYTES_PER_SECOND_MAX = 1e12;
/** A control line longer than this is refused rather than parsed. */
const CONTROL_LINE_CHARACTERS_MAX = 1024;

export interface ProxyCommandOptions {
  readonly listen: Address;
  readonly target: Address;
  readonly delayMs: number;
  readonly jitterMs: number;
  readonly bandwidthBytesPerSecond: number | undefined;
}

/** The proxy as the control lines see it: what `WanProxy` offers, narrowed for tests. */
export interface ControlledProxy {
  readonly delayMs: number;
  readonly jitterMs: number;
  readonly bandwidthBytesPerSecond: number | undefined;
  readonly partitioned: boolean;
  readonly openConnections: number;
  readonly totals: { readonly connections: number; readonly bytesUp: number; readonly bytesDown: number };
  setDelay(delayMs: number, jitterMs?: number): void;
  setBandwidth(bytesPerSecond: number | undefined): void;
  partition(): void;
  heal(): void;
}

/** What one control line did: the line to print, and whether the proxy should now close. */
export interface ControlResult {
  readonly reply: string;
  readonly quit: boolean;
}

function usage(reason: string): StraitError {
  return new StraitError('STRAIT_USAGE', { reason });
}

/** A whole number of milliseconds in 0..PROXY_DELAY_MS_MAX; `what` names it in the error. */
export function parseMilliseconds(text: string | undefined, what: string): number {
  const value = Number(text);
  if (text === undefined || text.trim() === '' || !Number.isInteger(value) || value < 0 || value > PROXY_DELAY_MS_MAX) {
    throw usage(`${what} takes whole milliseconds from 0 to ${PROXY_DELAY_MS_MAX}, got ${JSON.stringify(text ?? '')}`);
  }
  return value;
}

/** Bytes per second (a positive whole number), or `off` / `none` / `0` for no cap (undefined). */
export function parseBandwidth(text: string | undefined, what: string): number | undefined {
  if (text === 'off' || text === 'none' || text === '0') return undefined;
  const value = Number(text);
  if (text === undefined || text.trim() === '' || !Number.isInteger(value) || value < 1 || value > PROXY_BANDWIDTH_BYTES_PER_SECOND_MAX) {
    throw usage(`${what} takes bytes per second (1..${PROXY_BANDWIDTH_BYTES_PER_SECOND_MAX}) or off, got ${JSON.stringify(text ?? '')}`);
  }
  return value;
}

function parseProxyAddress(text: string | undefined, flag: string): Address {
  if (text === undefined || text.length === 0) throw usage(`strait proxy needs ${flag} host:port`);
  try {
    return parseAddress(text);
  } catch (cause) {
    if (cause instanceof StraitError) throw new StraitError('STRAIT_USAGE', { reason: `${flag}: ${cause.message}` }, { cause });
    throw cause;
  }
}

/** Validates the command-line options of `strait proxy` (commander gives them as strings). */
export function parseProxyOptions(options: { listen?: string; target?: string; delayMs?: string; jitterMs?: string; bandwidth?: string }): ProxyCommandOptions {
  const listen = parseProxyAddress(options.listen, '--listen');
  const target = parseProxyAddress(options.target, '--target');
  if (target.port === 0) throw usage('--target needs a port other than 0');
  return {
    listen,
    target,
    delayMs: options.delayMs === undefined ? 0 : parseMilliseconds(options.delayMs, '--delay-ms'),
    jitterMs: options.jitterMs === undefined ? 0 : parseMilliseconds(options.jitterMs, '--jitter-ms'),
    bandwidthBytesPerSecond: options.bandwidth === undefined ? undefined : parseBandwidth(options.bandwidth, '--bandwidth'),
  };
}

/** The `stats` object: settings and traffic so far (closed connections' bytes plus nothing in flight). */
export function proxyStats(proxy: ControlledProxy): Record<string, number | boolean | null> {
  return {
    delayMs: proxy.delayMs,
    jitterMs: proxy.jitterMs,
    roundTripAddedMs: proxy.delayMs * 2,
    bandwidthBytesPerSecond: proxy.bandwidthBytesPerSecond ?? null,
    partitioned: proxy.partitioned,
    openConnections: proxy.openConnections,
    connectionsAccepted: proxy.totals.connections,
    bytesUpClosed: proxy.totals.bytesUp,
    bytesDownClosed: proxy.totals.bytesDown,
  };
}

function describeBandwidth(bytesPerSecond: number | undefined): string {
  return bytesPerSecond === undefined ? 'unlimited' : `${bytesPerSecond} bytes/s per direction`;
}

/**
 * Applies one control line to the proxy and says what it did. Blank lines and `#` comments do
 * nothing (reply ''); a line it can't use throws STRAIT_USAGE and changes nothing.
 */
export function handleControlLine(proxy: ControlledProxy, line: string): ControlResult {
  if (line.length > CONTROL_LINE_CHARACTERS_MAX) throw usage(`control line longer than ${CONTROL_LINE_CHARACTERS_MAX} characters`);
  const words = line.trim().split(/\s+/).filter((word) => word.length > 0);
  const [command, ...args] = words;
  if (command === undefined || command.startsWith('#')) return { reply: '', quit: false };
  const arity = (min: number, max: number): void => {
    if (args.length < min || args.length > max) {
      throw usage(`${command} takes ${min === max ? min : `${min} to ${max}`} argument${max === 1 ? '' : 's'}, got ${args.length}`);
    }
  };
  switch (command.toLowerCase()) {
    case 'delay': {
      arity(1, 2);
      const delayMs = parseMilliseconds(args[0], 'delay');
      const jitterMs = args[1] === undefined ? 0 : parseMilliseconds(args[1], 'delay jitter');
      proxy.setDelay(delayMs, jitterMs);
      return { reply: `ok delay ${delayMs} ms, jitter ${jitterMs} ms per direction (round trip +${delayMs * 2} ms)`, quit: false };
    }
    case 'bandwidth': {
      arity(1, 1);
      const bytesPerSecond = parseBandwidth(args[0], 'bandwidth');
      proxy.setBandwidth(bytesPerSecond);
      return { reply: `ok bandwidth ${describeBandwidth(bytesPerSecond)}`, quit: false };
    }
    case 'partition': {
      arity(0, 0);
      const dropped = proxy.openConnections;
      proxy.partition();
      return { reply: `ok partitioned: ${dropped} connection${dropped === 1 ? '' : 's'} dropped; new ones are held silent until heal`, quit: false };
    }
    case 'heal': {
      arity(0, 0);
      const was = proxy.partitioned;
      proxy.heal();
      return { reply: was ? 'ok healed: traffic flows again' : 'ok healed (was not partitioned)', quit: false };
    }
    case 'stats':
      arity(0, 0);
      return { reply: `stats ${JSON.stringify(proxyStats(proxy))}`, quit: false };
    case 'quit':
    case 'exit':
      arity(0, 0);
      return { reply: 'ok closing', quit: true };
    default:
      throw usage(`unknown proxy command ${JSON.stringify(command)}: use delay <ms> [jitter], bandwidth <bytes/s|off>, partition, heal, stats or quit`);
  }
}

/** Like handleControlLine, but a bad line becomes an `error CODE: message` reply. */
export function controlReply(proxy: ControlledProxy, line: string): ControlResult {
  try {
    return handleControlLine(proxy, line);
  } catch (error) {
    const { code, message } = describeError(error);
    return { reply: `error ${code}: ${message}`, quit: false };
  }
}

export interface ProxyIo {
  readonly input: NodeJS.ReadableStream;
  readonly out: (text: string) => void;
}

/**
 * Runs the proxy until `quit`, SIGINT or SIGTERM, then closes it and resolves with the exit
 * status. The end of standard input does not stop it: a proxy started in the background with
 * stdin from /dev/null keeps running. A listen address in use is STRAIT_PORT_IN_USE.
 */
export async function runProxy(options: ProxyCommandOptions, io: ProxyIo): Promise<number> {
  let proxy: WanProxy;
  try {
    proxy = await WanProxy.start({
      listen: options.listen,
      target: options.target,
      delayMs: options.delayMs,
      jitterMs: options.jitterMs,
      ...(options.bandwidthBytesPerSecond !== undefined ? { bandwidthBytesPerSecond: options.bandwidthBytesPerSecond } : {}),
    });
  } catch (cause) {
    const address = formatHostPort(options.listen);
    if ((cause as { code?: string }).code === 'EADDRINUSE') throw new StraitError('STRAIT_PORT_IN_USE', { address }, { cause });
    throw new StraitError('STRAIT_BIND_FAILED', { address, reason: cause instanceof Error ? cause.message : String(cause) }, { cause });
  }
  io.out(
    `Proxy listening on ${formatHostPort(proxy.address)} → ${formatHostPort(options.target)}, delay ${options.delayMs} ms, jitter ${options.jitterMs} ms, ` +
      `bandwidth ${describeBandwidth(options.bandwidthBytesPerSecond)}; commands on stdin: delay <ms> [jitter], bandwidth <bytes/s|off>, partition, heal, stats, quit`,
  );
  return new Promise<number>((resolve) => {
    let closing = false;
    const lines = createInterface({ input: io.input, terminal: false });
    const close = (status: number): void => {
      if (closing) return;
      closing = true;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      lines.close();
      void proxy.close().then(() => resolve(status));
    };
    const onSignal = (): void => close(0);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    lines.on('line', (line) => {
      const result = controlReply(proxy, line);
      if (result.reply.length > 0) io.out(result.reply);
      if (result.quit) close(0);
    });
  });
}

/** Adds `strait proxy` to the program. */
export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description('run a WAN delay / partition proxy in the foreground; control lines on stdin: delay <ms> [jitter], bandwidth <bytes/s|off>, partition, heal, stats, quit')
    .option('--listen <host:port>', 'address to listen on (port 0 = any free port)')
    .option('--target <host:port>', 'address to forward every connection to')
    .option('--delay-ms <ms>', 'one-way delay added per direction (default 0)')
    .option('--jitter-ms <ms>', 'extra random delay per chunk, 0..ms (default 0; bytes never overtake each other)')
    .option('--bandwidth <bytes/s>', 'per-direction cap shared by all connections (default none)')
    .action(async (options: { listen?: string; target?: string; delayMs?: string; jitterMs?: string; bandwidth?: string }) => {
      try {
        const parsed = parseProxyOptions(options);
        const status = await runProxy(parsed, {
          input: process.stdin,
          out: (text) => process.stdout.write(`${text}\n`),
        });
        process.exitCode = status;
      } catch (error) {
        const { code, message } = describeError(error);
        process.stderr.write(`error ${code}: ${message}\n`);
        process.exitCode = error instanceof StraitError ? exitCodeFor(error) : EXIT_FAILURE;
      }
    });
}
