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
  MEMBER_FLAGS,
  ROLE_ENVIRONMENT_VARIABLE,
  addMemberOptions,
  memberFlagValues,
  memberLocationFlags,
  namingEnvironmentVariables,
  parseTimeoutSeconds,
  prepareStart,
  runRole,
  startCommand,
  startFailureLines,
  stopCommand,
} from './member-commands.ts';
import { loadMemberConfig, locateMember } from './load-config.ts';
import { START_TIMEOUT_MS_DEFAULT, STOP_TIMEOUT_MS_DEFAULT } from './process-control.ts';
import {
  CLIENT_CONNECT_TIMEOUT_MS_DEFAULT,
  CLIENT_REQUEST_TIMEOUT_MS_DEFAULT,
  LOCATOR_DEFAULT,
  type ClientCommandOptions,
  type ListWhat,
  type Output,
} from './client-commands.ts';
import type { SenderControlRequest } from './gateway-commands.ts';
// `strait demo` lives in its own module (owned by the lead engineer); it registers itself here.
import { registerDemo } from './demo.ts';
import { registerProxy } from './proxy-command.ts';
import { registerChat } from './chat.ts';
import { registerConfigCommands } from './config-commands.ts';
import { registerTopologyCommands } from './topology-commands.ts';
import { registerTlsCommands } from './tls-commands.ts';
import { installStandardOutput, standardOutput, writeErr, writeOut } from './standard-output.ts';

/** Overrides the default locator of client commands (`--locator`). */
export const LOCATOR_ENVIRONMENT_VARIABLE = 'STRAIT_LOCATOR';

// A reader that stops early (`strait status | head`) closes the pipe: that is not an error.
installStandardOutput();

const output: Output = standardOutput;

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

const GATEWAY_SENDER = 'gateway-sender';
/** `start` and `stop` act on members (by directory) and on gateway senders (by id, through a locator). */
const roleOrSenderArgument = (): Argument =>
  new Argument('<role>', `locator, server, router or controller (by --dir), or ${GATEWAY_SENDER} (by --id)`).choices(['locator', 'server', 'router', 'controller', GATEWAY_SENDER]);
const senderArgument = (): Argument => new Argument('<what>', GATEWAY_SENDER).choices([GATEWAY_SENDER]);

function locatorOption(command: Command): Command {
  return command.option('--locator <addresses>', `a locator of the site, host[port],... (default ${LOCATOR_DEFAULT} or $${LOCATOR_ENVIRONMENT_VARIABLE})`);
}

/** --request-timeout and --connect-timeout, which come together. */
function requestTimeoutOption(command: Command): Command {
  return command
    .option('--request-timeout <ms>', `how long one request may take (default ${CLIENT_REQUEST_TIMEOUT_MS_DEFAULT})`)
    .option(
      '--connect-timeout <ms>',
      `how long to keep trying to reach a locator and a ready server (default ${CLIENT_CONNECT_TIMEOUT_MS_DEFAULT})`,
    );
}

function clientOptions(command: Command): Command {
  return requestTimeoutOption(locatorOption(command).option('--json', 'print JSON', false));
}

/** --id and --member of the gateway-sender commands (their --locator and --json come with the command). */
function senderOptions(command: Command): Command {
  return command
    .option('--id <sender>', `${GATEWAY_SENDER}: the sender id (gateway-senders.<id> in strait.yaml)`)
    .option('--member <name>', `${GATEWAY_SENDER}: act on this server's copy only (default: every server hosting the sender)`);
}

function camelCase(key: string): string {
  return key.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/** Refuses options of the other kind of target: member flags for a sender, sender flags for a member. */
function checkTargetOptions(role: string, options: Record<string, unknown>, memberOnly: readonly string[], senderOnly: readonly string[]): void {
  const given = (flag: string): boolean => options[camelCase(flag)] !== undefined && options[camelCase(flag)] !== false;
  const misplaced = role === GATEWAY_SENDER ? memberOnly.filter(given) : senderOnly.filter(given);
  if (misplaced.length > 0) {
    const applies = role === GATEWAY_SENDER ? 'locator|server' : GATEWAY_SENDER;
    throw new StraitError('STRAIT_USAGE', { reason: `${misplaced.map((flag) => `--${flag}`).join(', ')} applies to ${applies}, not ${role}` });
  }
  if (role === GATEWAY_SENDER && (typeof options['id'] !== 'string' || options['id'].length === 0)) {
    throw new StraitError('STRAIT_USAGE', { reason: `${GATEWAY_SENDER} needs --id <sender>` });
  }
}

const SENDER_ONLY_FLAGS = ['id', 'member', 'locator', 'request-timeout', 'connect-timeout'] as const;

function senderRequest(command: SenderControlRequest['command'], options: Record<string, unknown>, drainTimeoutMs: number, replayDeadLetters: boolean): SenderControlRequest {
  return { id: options['id'] as string, command, member: options['member'] as string | undefined, drainTimeoutMs, replayDeadLetters };
}

/** Longest --request-timeout and --connect-timeout accepted. */
const CLIENT_TIMEOUT_MS_MAX = 3_600_000;

function parseMilliseconds(text: string | undefined, fallbackMs: number, flag: string): number {
  if (text === undefined) return fallbackMs;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0 || value > CLIENT_TIMEOUT_MS_MAX) {
    const reason = `${flag} takes milliseconds from 1 to ${CLIENT_TIMEOUT_MS_MAX}, got ${JSON.stringify(text)}`;
    throw new StraitError('STRAIT_USAGE', { reason });
  }
  return value;
}

interface ClientFlags {
  locator?: string | undefined;
  json?: boolean | undefined;
  requestTimeout?: string | undefined;
  connectTimeout?: string | undefined;
}

function clientCommandOptions(options: ClientFlags): ClientCommandOptions {
  const text = options.locator ?? process.env[LOCATOR_ENVIRONMENT_VARIABLE] ?? LOCATOR_DEFAULT;
  return {
    locators: parseAddressList(text, 10334),
    json: options.json === true,
    requestTimeoutMs: parseMilliseconds(options.requestTimeout, CLIENT_REQUEST_TIMEOUT_MS_DEFAULT, '--request-timeout'),
    connectTimeoutMs: parseMilliseconds(options.connectTimeout, CLIENT_CONNECT_TIMEOUT_MS_DEFAULT, '--connect-timeout'),
  };
}

export function buildProgram(): Command {
  const program = new Command('strait')
    .description('Strait: a multi-site replicated in-memory data grid. See docs/CLI.md.')
    .version('0.1.0')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => writeOut(text),
      writeErr: (text) => writeErr(text),
      // Usage mistakes print like every other error: a code and a message.
      outputError: (text, write) => write(`error STRAIT_USAGE: ${text.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ').replace(/\.$/, '')}; see strait --help\n`),
    });

  requestTimeoutOption(locatorOption(senderOptions(addMemberOptions(
    program
      .command('start')
      .description(`start a locator or server in the background, wait until it is ready, print where it listens; or start a stopped ${GATEWAY_SENDER}`)
      .addArgument(roleOrSenderArgument())
      .option('--timeout <seconds>', `how long to wait until the member is ready (default ${START_TIMEOUT_MS_DEFAULT / 1000})`)
      .option('--json', 'print the member record (or the senders\' states) as JSON', false),
  )))).action(
    action(async (role: MemberRole | typeof GATEWAY_SENDER, options: Record<string, unknown>) => {
      checkTargetOptions(role, options, ['dir', 'config', 'timeout', ...MEMBER_FLAGS.map((flag) => flag.key)], SENDER_ONLY_FLAGS);
      if (role === GATEWAY_SENDER) {
        const { senderControlCommand } = await import('./gateway-commands.ts');
        await senderControlCommand(senderRequest('start', options, 0, false), clientCommandOptions(options), output);
        return 0;
      }
      const timeoutMs = parseTimeoutSeconds(options['timeout'] as string | undefined, START_TIMEOUT_MS_DEFAULT, '--timeout');
      const request = namingEnvironmentVariables(options, process.env, () => prepareStart(role, memberFlagValues(options), memberLocationFlags(options), timeoutMs));
      const outcome = await startCommand(request, options['json'] === true, output);
      if (outcome.ok) return 0;
      reportError(outcome.error);
      for (const line of startFailureLines(outcome)) output.err(line);
      return exitCodeFor(outcome.error);
    }),
  );

  addMemberOptions(
    program
      .command('run')
      .description('run a locator, server, router or controller in the foreground (containers, systemd) until SIGTERM or SIGINT; every flag may come from the environment (STRAIT_NAME for --name, ...)')
      .addArgument(new Argument('[role]', `locator, server, router or controller (default $${ROLE_ENVIRONMENT_VARIABLE})`).choices(['locator', 'server', 'router', 'controller'])),
  ).action(
    action(async (given: MemberRole | undefined, options: Record<string, unknown>) => {
      const role = runRole(given);
      const { config, where } = namingEnvironmentVariables(options, process.env, () => {
        const flags = memberFlagValues(options);
        const location = memberLocationFlags(options);
        const found = locateMember(location.dir, flags['name'], location.config);
        return { config: loadMemberConfig(role, flags, found), where: found };
      });
      const { runMember } = await import('./run.ts');
      await runMember(config, { dir: where.dir });
    }),
  );

  requestTimeoutOption(locatorOption(senderOptions(
    program
      .command('stop')
      .description(`stop the locator or server running in a directory (a clean leave); or stop a ${GATEWAY_SENDER} (events are no longer queued)`)
      .addArgument(roleOrSenderArgument())
      .option('--dir <dir>', 'the member directory (default $STRAIT_DIR, else the current directory)')
      .option('--timeout <seconds>', `how long to wait for the process to exit (default ${STOP_TIMEOUT_MS_DEFAULT / 1000})`)
      .option('--force', 'kill the process (SIGKILL) if it has not exited after the timeout', false),
  )))
    .option('--drain-timeout <ms>', `${GATEWAY_SENDER}: wait this long for the queue to drain before stopping; -1 = until drained (default 0)`)
    .option('--json', `${GATEWAY_SENDER}: print the senders' states as JSON`, false)
    .action(
      action(async (role: MemberRole | typeof GATEWAY_SENDER, options: { dir?: string; timeout?: string; force: boolean; drainTimeout?: string; json: boolean } & Record<string, unknown>) => {
        checkTargetOptions(role, options, ['dir', 'timeout', 'force'], [...SENDER_ONLY_FLAGS, 'drain-timeout', 'json']);
        if (role === GATEWAY_SENDER) {
          const { parseDrainTimeout, senderControlCommand } = await import('./gateway-commands.ts');
          const drainTimeoutMs = parseDrainTimeout(options.drainTimeout);
          await senderControlCommand(senderRequest('stop', options, drainTimeoutMs, false), clientCommandOptions(options), output);
          return;
        }
        const { resolve } = await import('node:path');
        const timeoutMs = parseTimeoutSeconds(options.timeout, STOP_TIMEOUT_MS_DEFAULT, '--timeout');
        await stopCommand(role, resolve(options.dir ?? memberLocationFlags({}).dir ?? '.'), timeoutMs, options.force, output);
      }),
    );

  clientOptions(
    program
      .command('rebalance')
      .description('even out the partitioned regions\' buckets and primaries over their servers (after servers joined); waits until every move completed')
      .option('--simulate', 'only print the plan: what would move', false)
      .option('--region <name...>', 'only these regions (default: every partitioned region)')
      .option('--timeout <seconds>', 'stop waiting after this long (the moves go on)', '600'),
  ).action(
    action(async (options: ClientFlags & { simulate?: boolean; region?: string[]; timeout?: string }) => {
      const { rebalanceCommand } = await import('./partition-commands.ts');
      return rebalanceCommand({
        simulate: options.simulate === true, regions: options.region ?? [], timeoutMs: parseTimeoutSeconds(options.timeout, 600_000, '--timeout'),
      }, clientCommandOptions(options), output);
    }),
  );

  clientOptions(
    program
      .command('status')
      .description(`members, regions and gateways of the site; every copy of one ${GATEWAY_SENDER} (with --id); or one region's buckets per server (region R)`)
      .addArgument(new Argument('[what]', `${GATEWAY_SENDER} for one sender's status, region for one region's`).choices([GATEWAY_SENDER, 'region']))
      .addArgument(new Argument('[name]', 'region: its name'))
      .option('--id <sender>', `${GATEWAY_SENDER}: the sender id`),
  ).action(
    action(async (what: string | undefined, name: string | undefined, options: ClientFlags & { id?: string }) => {
      if (what === 'region') {
        if (name === undefined || name.length === 0) throw new StraitError('STRAIT_USAGE', { reason: 'status region needs the region name: strait status region R' });
        const { regionStatusCommand } = await import('./partition-commands.ts');
        await regionStatusCommand(name, clientCommandOptions(options), output);
        return;
      }
      if (name !== undefined) throw new StraitError('STRAIT_USAGE', { reason: `unexpected argument ${name}` });
      if (what === GATEWAY_SENDER) {
        if (options.id === undefined || options.id.length === 0) throw new StraitError('STRAIT_USAGE', { reason: `status ${GATEWAY_SENDER} needs --id <sender>` });
        const { senderStatusCommand } = await import('./gateway-commands.ts');
        await senderStatusCommand(options.id, clientCommandOptions(options), output);
        return;
      }
      if (options.id !== undefined) throw new StraitError('STRAIT_USAGE', { reason: `--id applies to status ${GATEWAY_SENDER}` });
      const { statusCommand } = await import('./client-commands.ts');
      await statusCommand(clientCommandOptions(options), output);
    }),
  );

  clientOptions(
    senderOptions(program.command('pause').description(`pause a ${GATEWAY_SENDER}: events keep queueing, none is sent (at most one batch in flight still arrives)`).addArgument(senderArgument())),
  ).action(
    action(async (_what: string, options: Record<string, unknown>) => {
      checkTargetOptions(GATEWAY_SENDER, options, [], []);
      const { senderControlCommand } = await import('./gateway-commands.ts');
      await senderControlCommand(senderRequest('pause', options, 0, false), clientCommandOptions(options), output);
    }),
  );

  clientOptions(
    senderOptions(program.command('resume').description(`resume a paused ${GATEWAY_SENDER}`).addArgument(senderArgument()))
      .option('--replay-dead-letters', 'also put the events the remote site refused back in the queue (after fixing the cause, e.g. creating the region there)', false),
  ).action(
    action(async (_what: string, options: Record<string, unknown>) => {
      checkTargetOptions(GATEWAY_SENDER, options, [], []);
      const { senderControlCommand } = await import('./gateway-commands.ts');
      await senderControlCommand(senderRequest('resume', options, 0, options['replayDeadLetters'] === true), clientCommandOptions(options), output);
    }),
  );

  clientOptions(
    program
      .command('list')
      .description('list the members, regions or gateways of the site; or what a router holds (routers --router H[P])')
      .addArgument(new Argument('<what>', 'members, regions, gateways or routers').choices(['members', 'regions', 'gateways', 'routers']))
      .option('--router <address>', 'routers: the router to ask, host[port] (default port 12001)')
      .option('--router-secret-file <file>', 'routers: file holding the mesh secret (default: $STRAIT_ROUTER_SECRET)'),
  ).action(
    action(async (what: ListWhat | 'routers', options: ClientFlags & { router?: string; routerSecretFile?: string }) => {
      if (what === 'routers') {
        if (options.router === undefined) throw new StraitError('STRAIT_USAGE', { reason: 'list routers needs --router host[port]' });
        const { listRoutersCommand } = await import('./router-commands.ts');
        await listRoutersCommand({ router: options.router, secretFile: options.routerSecretFile, json: options.json === true, timeoutMs: CLIENT_REQUEST_TIMEOUT_MS_DEFAULT }, output);
        return;
      }
      const { listCommand } = await import('./client-commands.ts');
      await listCommand(what, clientCommandOptions(options), output);
    }),
  );

  const entryOptions = (command: Command): Command =>
    clientOptions(command.requiredOption('--region <region>', 'region name').requiredOption('--key <key>', 'entry key'));

  entryOptions(program.command('put').description('store a string value under a key').requiredOption('--value <value>', 'the value (a string)')).action(
    action(async (options: { region: string; key: string; value: string } & ClientFlags) => {
      const { putCommand } = await import('./client-commands.ts');
      await putCommand({ region: options.region, key: options.key, value: options.value }, clientCommandOptions(options), output);
    }),
  );

  entryOptions(program.command('get').description('print the value of a key (exit 1 if absent)')).action(
    action(async (options: { region: string; key: string } & ClientFlags) => {
      const { getCommand } = await import('./client-commands.ts');
      const found = await getCommand({ region: options.region, key: options.key }, clientCommandOptions(options), output);
      return found ? 0 : EXIT_FAILURE;
    }),
  );

  entryOptions(program.command('remove').description('remove a key')).action(
    action(async (options: { region: string; key: string } & ClientFlags) => {
      const { removeCommand } = await import('./client-commands.ts');
      await removeCommand({ region: options.region, key: options.key }, clientCommandOptions(options), output);
    }),
  );

  registerConfigCommands(program, {
    locatorOption,
    options: (flags, requestTimeoutMsDefault) => {
      const client = clientCommandOptions({ ...flags, requestTimeout: undefined } as ClientFlags);
      return { locators: client.locators, json: flags['json'] === true, requestTimeoutMs: parseMilliseconds(flags['requestTimeout'] as string | undefined, requestTimeoutMsDefault, '--request-timeout') };
    },
    action,
    output,
  });
  registerTopologyCommands(program, { action, output });
  registerTlsCommands(program, { action, output });
  registerDemo(program);
  registerProxy(program);
  registerChat(program);
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
