// `strait create|alter|destroy region|gateway-sender|gateway-receiver`, `strait alter
// remote-locators` and `strait export config`: the site configuration its locators hold
// (config-service.ts), in the spirit of gfsh. Flags are strait.yaml's keys and go through the
// same parsers; the change goes to a locator of the site (any: it forwards to the coordinator),
// which answers once every locator stored it and every server runs it — or rolled it back.

import { writeFileSync } from 'node:fs';
import { Argument, type Command } from 'commander';
import { StraitError } from '../errors.ts';
import type { ConfigChange, ConfigChangeResult, RequestBody, RequestOp, ResponseBody, SiteConfig } from '../protocol/messages.ts';
import type { Address } from '../runtime/runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import { parseAddressList } from '../config/address.ts';
import { SENDER_DRAIN_TIMEOUT_MS_DEFAULT } from '../core/site-config.ts';
import { receiverDeclaration, regionSpec, renderSiteConfigYaml, senderDeclaration } from '../config/site-config-yaml.ts';
import type { Output } from './client-commands.ts';

export interface ConfigCommandOptions {
  readonly locators: readonly Address[];
  readonly json: boolean;
  readonly requestTimeoutMs: number;
}

/** A change answers once every server runs it: allow for that beyond the drain. */
export const CONFIG_CHANGE_REQUEST_TIMEOUT_MS_DEFAULT = 120_000;

/** Transport failures: the next locator may answer. Anything else is the site's answer. */
function unreachable(error: unknown): boolean {
  return error instanceof StraitError && (error.code === 'STRAIT_CONNECTION_CLOSED' || error.code === 'STRAIT_TIMEOUT' || error.code === 'STRAIT_NO_LOCATOR');
}

/** One request to the first locator that answers; a locator's refusal is the answer. */
async function askLocator<Op extends RequestOp>(options: ConfigCommandOptions, op: Op, body: RequestBody<Op>): Promise<{ response: ResponseBody<Op>; from: Address }> {
  const { StraitClient } = await import('../client/client.ts');
  const { createClientRuntime } = await import('../runtime/node/client-runtime.ts');
  const { cliCredentials } = await import('./cli-credentials.ts');
  const credentials = cliCredentials();
  const created = createClientRuntime(credentials.tls === undefined ? {} : { tls: credentials.tls });
  const client = new StraitClient(created.runtime, options.locators, {
    ...credentials, locators: options.locators, name: 'strait-cli', requestTimeoutMs: options.requestTimeoutMs, keepAlive: created.keepAlive,
  }, () => created.close());
  const failures: string[] = [];
  try {
    for (const locator of options.locators) {
      try {
        return { response: await client.askMember(locator, op, body), from: locator };
      } catch (error) {
        if (!unreachable(error)) throw error;
        failures.push(`${formatAddress(locator)}: ${(error as Error).message}`);
      }
    }
  } finally {
    await client.close();
  }
  throw new StraitError('STRAIT_NO_LOCATOR', { locators: options.locators.map(formatAddress).join(', '), reason: failures.join('; ') });
}

export function describeResult(change: string, result: ConfigChangeResult): string {
  if (!result.changed) return `${change}: nothing to do, the site configuration (version ${result.version}) already says so`;
  const members = result.members.map((member) => member.member).sort();
  return `${change}: site configuration version ${result.version}, running on ${members.length === 0 ? 'no server yet' : members.join(', ')}`;
}

export async function configChangeCommand(change: ConfigChange, what: string, options: ConfigCommandOptions, output: Output): Promise<void> {
  const { response } = await askLocator(options, 'configChange', { change });
  output.out(options.json ? JSON.stringify(response, null, 2) : describeResult(what, response));
}

export async function exportConfigCommand(options: ConfigCommandOptions, file: string | undefined, output: Output): Promise<void> {
  const { response, from } = await askLocator(options, 'siteConfig', {});
  const info = await askLocator(options, 'memberInfo', {});
  const config: SiteConfig = response.config;
  const text = options.json ? `${JSON.stringify(config, null, 2)}\n` : renderSiteConfigYaml(config, info.response.info.site, `${info.response.info.name} at ${formatAddress(from)}`);
  if (file === undefined) {
    output.out(text.replace(/\n$/, ''));
    return;
  }
  writeFileSync(file, text);
  output.out(`wrote the configuration of site ${info.response.info.site} (version ${config.version}) to ${file}`);
}

// ---- Flags → changes ----

const FLAG_SOURCE = 'command line';

/** The flags given, by strait.yaml key. */
function settingsOf(options: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const key of keys) {
    const value = options[key.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase())];
    if (value !== undefined) settings[key] = value;
  }
  return settings;
}

function required(options: Record<string, unknown>, flag: 'name' | 'id', what: string): string {
  const value = options[flag];
  if (typeof value !== 'string' || value.length === 0) throw new StraitError('STRAIT_USAGE', { reason: `${what} needs --${flag} <${flag === 'name' ? 'region' : 'sender'}>` });
  return value;
}

const SENDER_KEYS = ['remote-site-id', 'parallel', 'dispatcher-threads', 'batch-conflation', 'batch-size', 'batch-time-interval', 'maximum-queue-memory', 'maximum-queue-disk', 'persistent', 'order-policy', 'manual-start', 'compression'] as const;
const RECEIVER_KEYS = ['start-port', 'end-port', 'bind-address', 'hostname-for-clients', 'manual-start', 'dial-out'] as const;

export type ConfigTarget = 'region' | 'gateway-sender' | 'gateway-receiver' | 'remote-locators';

/** The flags each target takes, as options keys (beyond --locator, --json, --request-timeout). */
const TARGET_FLAGS: Readonly<Record<ConfigTarget, readonly string[]>> = {
  region: ['name', 'type', 'persistent', 'gatewaySenderIds', 'totalNumBuckets', 'redundantCopies', 'recoveryDelay', 'startupRecoveryDelay'],
  'gateway-sender': ['id', 'remoteSiteId', 'parallel', 'dispatcherThreads', 'batchConflation', 'batchSize', 'batchTimeInterval', 'maximumQueueMemory', 'maximumQueueDisk', 'persistent', 'orderPolicy', 'manualStart', 'compression', 'drainTimeout'],
  'gateway-receiver': ['startPort', 'endPort', 'bindAddress', 'hostnameForClients', 'manualStart', 'dialOut'],
  'remote-locators': [],
};
const COMMON_FLAGS = ['locator', 'json', 'requestTimeout'];

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/** The change `strait <verb> <target>` asks for. */
export function changeFromFlags(verb: 'create' | 'alter' | 'destroy', target: ConfigTarget, options: Record<string, unknown>, addresses: readonly string[]): { change: ConfigChange; what: string } {
  const what = `${verb} ${target}`;
  const misplaced = (flag: string) => new StraitError('STRAIT_USAGE', { reason: `${what} takes no ${flag}` });
  const foreign = Object.keys(options).filter((key) => options[key] !== undefined && options[key] !== false
    && !COMMON_FLAGS.includes(key) && !TARGET_FLAGS[target].includes(key));
  if (foreign.length > 0) throw misplaced(foreign.map((key) => `--${kebab(key)}`).join(', '));
  if (target === 'remote-locators') {
    if (verb !== 'alter') throw new StraitError('STRAIT_USAGE', { reason: `remote-locators are altered (strait alter remote-locators H[P] ...), not ${verb}d` });
    return { change: { kind: 'setRemoteLocators', addresses: addresses.flatMap((text) => parseAddressList(text, 10334)) }, what };
  }
  if (addresses.length > 0) throw misplaced(`address arguments (${addresses.join(' ')})`);
  if (target === 'region') {
    const name = required(options, 'name', what);
    if (verb === 'create') return { change: { kind: 'createRegion', spec: regionSpec(name, settingsOf(options, ['type', 'persistent', 'gateway-sender-ids', 'total-num-buckets', 'redundant-copies', 'recovery-delay', 'startup-recovery-delay']), FLAG_SOURCE) }, what: `${what} ${name}` };
    if (verb === 'alter') {
      const ids = options['gatewaySenderIds'];
      if (typeof ids !== 'string') throw new StraitError('STRAIT_USAGE', { reason: 'alter region needs --gateway-sender-ids <ids> (a comma list; "" for none)' });
      const spec = regionSpec(name, { 'gateway-sender-ids': ids }, FLAG_SOURCE);
      return { change: { kind: 'alterRegion', name, gatewaySenderIds: [...(spec.gatewaySenderIds ?? [])] }, what: `${what} ${name}` };
    }
    return { change: { kind: 'destroyRegion', name }, what: `${what} ${name}` };
  }
  if (target === 'gateway-sender') {
    const id = required(options, 'id', what);
    if (verb === 'create') return { change: { kind: 'createSender', spec: senderDeclaration(id, settingsOf(options, SENDER_KEYS), FLAG_SOURCE) }, what: `${what} ${id}` };
    if (verb === 'alter') {
      const settings = settingsOf(options, ['batch-size', 'batch-time-interval']);
      if (Object.keys(settings).length === 0) throw new StraitError('STRAIT_USAGE', { reason: 'alter gateway-sender needs --batch-size and/or --batch-time-interval' });
      const parsed = senderDeclaration(id, { 'remote-site-id': 1, ...settings }, FLAG_SOURCE);
      return {
        change: {
          kind: 'alterSender', id,
          ...(settings['batch-size'] !== undefined ? { batchSize: parsed.batchSize! } : {}),
          ...(settings['batch-time-interval'] !== undefined ? { batchTimeIntervalMs: parsed.batchTimeIntervalMs! } : {}),
        },
        what: `${what} ${id}`,
      };
    }
    const drain = options['drainTimeout'];
    const drainTimeoutMs = drain === undefined ? SENDER_DRAIN_TIMEOUT_MS_DEFAULT : Number(drain);
    if (!Number.isInteger(drainTimeoutMs) || drainTimeoutMs < 0 || drainTimeoutMs > 600_000) {
      throw new StraitError('STRAIT_USAGE', { reason: `--drain-timeout takes milliseconds from 0 to 600000, got ${JSON.stringify(drain)}` });
    }
    return { change: { kind: 'destroySender', id, drainTimeoutMs }, what: `${what} ${id}` };
  }
  if (verb === 'create') return { change: { kind: 'createReceiver', spec: receiverDeclaration(settingsOf(options, RECEIVER_KEYS), FLAG_SOURCE) }, what };
  if (verb === 'alter') throw new StraitError('STRAIT_USAGE', { reason: 'a gateway receiver is not altered: destroy it and create it again' });
  return { change: { kind: 'destroyReceiver' }, what };
}

/** Registers create, alter, destroy and export on the program. */
export function registerConfigCommands(program: Command, common: {
  locatorOption: (command: Command) => Command;
  options: (flags: Record<string, unknown>, requestTimeoutMsDefault: number) => ConfigCommandOptions;
  action: <A extends unknown[]>(handler: (...args: A) => Promise<number | void>) => (...args: A) => Promise<void>;
  output: Output;
}): void {
  const targets = ['region', 'gateway-sender', 'gateway-receiver', 'remote-locators'];
  for (const verb of ['create', 'alter', 'destroy'] as const) {
    const command = common.locatorOption(program
      .command(verb)
      .description(`${verb} a region, gateway sender or gateway receiver in the site configuration the locators hold${verb === 'alter' ? '; or set the locators\' remote-locators' : ''}`)
      .addArgument(new Argument('<what>', targets.join(', ')).choices(verb === 'alter' ? targets : targets.slice(0, 3)))
      .addArgument(new Argument('[addresses...]', 'remote-locators: host[port] of other sites\' locators (none: clear them)'))
      .option('--name <region>', 'region: its name')
      .option('--id <sender>', 'gateway-sender: its id')
      .option('--json', 'print the answer as JSON', false)
      .option('--request-timeout <ms>', `how long to wait for the site's answer (default ${CONFIG_CHANGE_REQUEST_TIMEOUT_MS_DEFAULT}, more for a sender's drain)`));
    if (verb === 'create' || verb === 'alter') {
      command
        .option('--type <type>', 'region: replicate (default) or partition')
        .option('--total-num-buckets <n>', 'region (partition): buckets, 1-4096 (default 113)')
        .option('--redundant-copies <n>', 'region (partition): copies besides the primary, 0-3 (default 1)')
        .option('--recovery-delay <ms>', 'region (partition): restore copies this long after a server is lost; -1 never (default 0)')
        .option('--startup-recovery-delay <ms>', 'region (partition): give missing copies to a joining server after this long; -1 never (default 0)')
        .option('--persistent', 'region: keep its entries on disk; gateway-sender: keep the queue on disk')
        .option('--gateway-sender-ids <ids>', 'region: the senders its changes ship through, a comma list')
        .option('--remote-site-id <site>', 'gateway-sender: the site it replicates to')
        .option('--parallel', 'gateway-sender: a queue per bucket, dispatched by each bucket\'s primary (for partitioned regions)')
        .option('--dispatcher-threads <n>', 'gateway-sender: concurrent dispatchers, each with its own connection (1-64, default 1)')
        .option('--batch-conflation', 'gateway-sender: within a batch, send only the latest event of each key')
        .option('--batch-size <events>', 'gateway-sender: events per batch')
        .option('--batch-time-interval <ms>', 'gateway-sender: a partly filled batch goes out after this long')
        .option('--maximum-queue-memory <MiB>', 'gateway-sender: queue memory; beyond it events wait on disk')
        .option('--maximum-queue-disk <MiB>', 'gateway-sender: queue on disk, at most')
        .option('--order-policy <policy>', 'gateway-sender: key (default), thread (serial) or partition (parallel): what keeps its order across dispatcher threads')
        .option('--manual-start', 'gateway-sender, gateway-receiver: created stopped')
        .option('--compression', 'gateway-sender: zstd-compress batches')
        .option('--start-port <port>', 'gateway-receiver: first port of its range')
        .option('--end-port <port>', 'gateway-receiver: last port of its range')
        .option('--bind-address <address>', 'gateway-receiver: the address it listens on')
        .option('--hostname-for-clients <host>', 'gateway-receiver: the host other sites connect to')
        .option('--dial-out', 'gateway-receiver: listen on nothing; open the gateway links to the sending sites');
    } else {
      command.option('--drain-timeout <ms>', `gateway-sender: wait this long for every copy of its queue to drain (default ${SENDER_DRAIN_TIMEOUT_MS_DEFAULT}); nothing is destroyed if it does not`);
    }
    command.action(common.action(async (target: ConfigTarget, addresses: string[], options: Record<string, unknown>) => {
      const { change, what } = changeFromFlags(verb, target, options, addresses);
      const drain = change.kind === 'destroySender' ? change.drainTimeoutMs ?? 0 : 0;
      await configChangeCommand(change, what, common.options(options, CONFIG_CHANGE_REQUEST_TIMEOUT_MS_DEFAULT + drain), common.output);
    }));
  }
  common.locatorOption(program
    .command('export')
    .description('print the site configuration the locators hold as strait.yaml')
    .addArgument(new Argument('<what>', 'config').choices(['config']))
    .option('--file <file>', 'write it to this file instead')
    .option('--json', 'print the configuration as JSON', false)
    .option('--request-timeout <ms>', 'how long to wait for the answer (default 15000)'))
    .action(common.action(async (_what: string, options: Record<string, unknown>) => {
      await exportConfigCommand(common.options(options, 15_000), options['file'] as string | undefined, common.output);
    }));
}
