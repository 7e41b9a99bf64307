// The `strait` command line, in the spirit of gfsh. The command names and flags are the
// contract acceptance scripts use (BRIEF.md, "CLI and configuration contract"): add freely,
// never rename. docs/CLI.md documents every command.
//
// Modules that load the core or the client are imported when their command runs, so `--help`
// is fast and a command only depends on what it uses.

import { Argument, Command, CommanderError } from 'commander';
import { StraitError } from '../errors.ts';
import type { MemberRole } from '../config/member-config.ts';
import { parseAddressList } from '../config/address.ts';
import { EXIT_FAILURE, EXIT_USAGE, exitCodeFor, describeError } from './report.ts';
import {
  addMemberOptions,
  memberFlagValues,
  parseTimeoutSeconds,
  prepareStart,
  startCommand,
  stopCommand,
} from './member-commands.ts';
import { loadMemberConfig, locateMember } from './load-config.ts';
import { LOG_TAIL_LINES, START_TIMEOUT_MS_DEFAULT, STOP_TIMEOUT_MS_DEFAULT } from './process-control.ts';
import { CLIENT_REQUEST_TIMEOUT_MS_DEFAULT, LOCATOR_DEFAULT, type ClientCommandOptions, type ListWhat, type Output } from './client-commands.ts';
// `strait demo` lives in its own module (owned by the lead engineer); it registers itself here.
import { registerDemo } from './demo.ts';

/** Overrides the default locator of client commands (`--locator`). */
export const LOCATOR_ENVIRONMENT_VARIABLE = 'STRAIT_LOCATOR';

// A reader that stops early (`strait status | head`) closes the pipe: that is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

const output: Output = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

/** Prints `error STRAIT_CODE: message` and sets the exit status (2 usage/config, 1 otherwise). */
export function reportError(error: unknown): void {
  const { code, message } = describeError(error);
  output.err(`error ${code}: ${message}`);
  process.exitCode = exitCodeFor(error);
}

/** Runs an action, turning every failure into a coded message and exit status. */
function action<A extends unknown[]>(handler: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const status = await handler(...args);
      if (typeof status === 'number' && status !== 0) process.exitCode = status;
    } catch (error) {
      reportError(error);
    }
  };
}

const roleArgument = (): Argument => new Argument('<role>', 'locator or server').choices(['locator', 'server']);

function clientOptions(command: Command): Command {
  return command
    .option('--locator <addresses>', `a locator of the site, host[port],... (default ${LOCATOR_DEFAULT} or $${LOCATOR_ENVIRONMENT_VARIABLE})`)
    .option('--json', 'print JSON', false)
    .option('--request-timeout <ms>', `how long one request may take (default ${CLIENT_REQUEST_TIMEOUT_MS_DEFAULT})`);
}

function clientCommandOptions(options: { locator?: string; json?: boolean; requestTimeout?: string }): ClientCommandOptions {
  const text = options.locator ?? process.env[LOCATOR_ENVIRONMENT_VARIABLE] ?? LOCATOR_DEFAULT;
  let requestTimeoutMs = CLIENT_REQUEST_TIMEOUT_MS_DEFAULT;
  if (options.requestTimeout !== undefined) {
    requestTimeoutMs = Number(options.requestTimeout);
    if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs <= 0 || requestTimeoutMs > 3_600_000) {
      throw new StraitError('STRAIT_USAGE', { reason: `--request-timeout takes milliseconds from 1 to 3600000, got ${JSON.stringify(options.requestTimeout)}` });
    }
  }
  return { locators: parseAddressList(text, 10334), json: options.json === true, requestTimeoutMs };
}

export function buildProgram(): Command {
  const program = new Command('strait')
    .description('Strait: a multi-site replicated in-memory data grid. See docs/CLI.md.')
    .version('0.1.0')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => process.stdout.write(text),
      writeErr: (text) => process.stderr.write(text),
      // Usage mistakes print like every other error: a code and a message.
      outputError: (text, write) => write(`error STRAIT_USAGE: ${text.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ').replace(/\.$/, '')}; see strait --help\n`),
    });

  addMemberOptions(
    program
      .command('start')
      .description('start a locator or server in the background, wait until it is ready, print where it listens')
      .addArgument(roleArgument())
      .option('--timeout <seconds>', `how long to wait until the member is ready (default ${START_TIMEOUT_MS_DEFAULT / 1000})`)
      .option('--json', 'print the member record as JSON', false),
  ).action(
    action(async (role: MemberRole, options: Record<string, unknown>) => {
      const timeoutMs = parseTimeoutSeconds(options['timeout'] as string | undefined, START_TIMEOUT_MS_DEFAULT, '--timeout');
      const request = prepareStart(role, memberFlagValues(options), { dir: options['dir'] as string | undefined, config: options['config'] as string | undefined }, timeoutMs);
      const outcome = await startCommand(request, options['json'] === true, output);
      if (outcome.ok) return 0;
      reportError(outcome.error);
      if (outcome.logTail.length > 0) output.err(`last ${LOG_TAIL_LINES} lines of ${outcome.logFile}:\n${outcome.logTail}`);
      return exitCodeFor(outcome.error);
    }),
  );

  addMemberOptions(
    program.command('run').description('run a locator or server in the foreground (containers, systemd) until SIGTERM or SIGINT').addArgument(roleArgument()),
  ).action(
    action(async (role: MemberRole, options: Record<string, unknown>) => {
      const flags = memberFlagValues(options);
      const where = locateMember(options['dir'] as string | undefined, flags['name'], options['config'] as string | undefined);
      const config = loadMemberConfig(role, flags, where);
      const { runMember } = await import('./run.ts');
      await runMember(config, { dir: where.dir });
    }),
  );

  program
    .command('stop')
    .description('stop the locator or server running in a directory (a clean leave)')
    .addArgument(roleArgument())
    .option('--dir <dir>', 'the member directory (default: the current directory)')
    .option('--timeout <seconds>', `how long to wait for the process to exit (default ${STOP_TIMEOUT_MS_DEFAULT / 1000})`)
    .option('--force', 'kill the process (SIGKILL) if it has not exited after the timeout', false)
    .action(
      action(async (role: MemberRole, options: { dir?: string; timeout?: string; force: boolean }) => {
        const { resolve } = await import('node:path');
        const timeoutMs = parseTimeoutSeconds(options.timeout, STOP_TIMEOUT_MS_DEFAULT, '--timeout');
        await stopCommand(role, resolve(options.dir ?? '.'), timeoutMs, options.force, output);
      }),
    );

  clientOptions(program.command('status').description('members, regions and gateways of the site')).action(
    action(async (options: { locator?: string; json?: boolean; requestTimeout?: string }) => {
      const { statusCommand } = await import('./client-commands.ts');
      await statusCommand(clientCommandOptions(options), output);
    }),
  );

  clientOptions(
    program
      .command('list')
      .description('list the members, regions or gateways of the site')
      .addArgument(new Argument('<what>', 'members, regions or gateways').choices(['members', 'regions', 'gateways'])),
  ).action(
    action(async (what: ListWhat, options: { locator?: string; json?: boolean; requestTimeout?: string }) => {
      const { listCommand } = await import('./client-commands.ts');
      await listCommand(what, clientCommandOptions(options), output);
    }),
  );

  const entryOptions = (command: Command): Command =>
    clientOptions(command.requiredOption('--region <region>', 'region name').requiredOption('--key <key>', 'entry key'));

  entryOptions(program.command('put').description('store a string value under a key').requiredOption('--value <value>', 'the value (a string)')).action(
    action(async (options: { region: string; key: string; value: string; locator?: string; json?: boolean; requestTimeout?: string }) => {
      const { putCommand } = await import('./client-commands.ts');
      await putCommand({ region: options.region, key: options.key, value: options.value }, clientCommandOptions(options), output);
    }),
  );

  entryOptions(program.command('get').description('print the value of a key (exit 1 if absent)')).action(
    action(async (options: { region: string; key: string; locator?: string; json?: boolean; requestTimeout?: string }) => {
      const { getCommand } = await import('./client-commands.ts');
      const found = await getCommand({ region: options.region, key: options.key }, clientCommandOptions(options), output);
      return found ? 0 : EXIT_FAILURE;
    }),
  );

  entryOptions(program.command('remove').description('remove a key')).action(
    action(async (options: { region: string; key: string; locator?: string; json?: boolean; requestTimeout?: string }) => {
      const { removeCommand } = await import('./client-commands.ts');
      await removeCommand({ region: options.region, key: options.key }, clientCommandOptions(options), output);
    }),
  );

  registerDemo(program);
  return program;
}

async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; every other commander error is a usage mistake, already printed.
      const benign = error.code === 'commander.helpDisplayed' || error.code === 'commander.version';
      process.exitCode = benign ? 0 : EXIT_USAGE;
      return;
    }
    reportError(error);
  }
}

await main(process.argv);
