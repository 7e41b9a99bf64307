// `strait chat --locator H[P] --name NAME`: the cross-site chat of JGroups' RelayDemo, built on
// Strait's own regions and subscriptions. Every line typed reaches every chat member of every
// site; each member that receives it answers, so the sender sees `<< response from NAME:site`
// from everyone, itself included.
//
// All of it is entries of one replicated region (`--region`, default CHAT, which the site's
// servers must declare with gateway senders to the other sites, so it replicates):
//   member/<site>/<name>        a chat member's presence: its site's sender primaries (the
//                               "site masters"), refreshed every PRESENCE_INTERVAL_MS, removed
//                               on exit; older than PRESENCE_STALE_MS is gone
//   message/<site>/<name>/<n>   a line someone typed
//   response/<site>/<name>/<n>/<site>/<name>   an answer to that line
// A member subscribes to the region and reacts to changes: it prints messages and answers them,
// and prints the responses to its own messages. Works with piped stdin (lines are read until
// end of input, then it waits WAIT_AFTER_INPUT_MS for the answers and leaves).

import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import type { StraitClient } from '../client/client.ts';
import { connect } from '../client/connect.ts';
import { StraitError } from '../errors.ts';
import { describeError, EXIT_FAILURE, table } from './report.ts';

const writeOut = standardOutput.out;
const writeErr = standardOutput.err;
import { standardOutput } from './standard-output.ts';

export const CHAT_REGION_DEFAULT = 'CHAT';
const PRESENCE_INTERVAL_MS = 2000;
const PRESENCE_STALE_MS = 10_000;
/** With piped input: how long to wait for answers after the last line. */
const WAIT_AFTER_INPUT_MS = 5000;
/** Characters per chat line, at most. */
const LINE_LENGTH_MAX = 4096;

interface Presence {
  readonly name: string;
  readonly site: number;
  readonly atMs: number;
  /** Per sender id: the member that is primary for it at this member's site. */
  readonly siteMasters: Readonly<Record<string, string>>;
}

interface ChatMessage {
  readonly from: string;
  readonly site: number;
  readonly text: string;
}

interface ChatResponse {
  readonly from: string;
  readonly site: number;
}

export interface ChatOptions {
  readonly locator: string;
  readonly name: string;
  readonly region: string;
  readonly interactive: boolean;
  /** Answer only, reading no input, until SIGINT / SIGTERM (a member left running in the background). */
  readonly listen: boolean;
}

const HELP = [
  'commands:',
  '  <text>   send a line to every chat member of every site; each answers',
  '  topo     the chat members of every site, and each site\'s sender primaries (site masters)',
  '  help     this list',
  '  quit     leave (also Ctrl-D)',
].join('\n');

function checkName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) {
    throw new StraitError('STRAIT_USAGE', { reason: `--name ${JSON.stringify(name)}: letters, digits, '.', '_' and '-', at most 128` });
  }
}

async function siteMasters(client: StraitClient): Promise<Record<string, string>> {
  try {
    const senders = await client.gatewaySenders(undefined, { signal: AbortSignal.timeout(3000) });
    const masters: Record<string, string> = {};
    for (const sender of senders) if (sender.role === 'primary') masters[sender.id] = sender.member;
    return masters;
  } catch {
    return {};
  }
}

export function topologyText(presences: readonly Presence[], nowMs: number, self: { name: string; site: number }): string {
  const live = presences.filter((presence) => nowMs - presence.atMs <= PRESENCE_STALE_MS);
  if (live.length === 0) return 'No chat members.';
  const lines: string[] = [];
  for (const site of [...new Set(live.map((presence) => presence.site))].sort((a, b) => a - b)) {
    const members = live.filter((presence) => presence.site === site).sort((a, b) => a.name.localeCompare(b.name));
    const masters = new Map<string, string>();
    for (const member of members) for (const [sender, master] of Object.entries(member.siteMasters)) masters.set(sender, master);
    lines.push(`site ${site}:`);
    const rows = [['  MEMBER', 'NOTE']];
    for (const member of members) rows.push([`  ${member.name}`, member.name === self.name && member.site === self.site ? '(me)' : '']);
    lines.push(table(rows));
    lines.push(masters.size === 0
      ? '  site master: none (no gateway sender is primary here)'
      : `  site master: ${[...masters].map(([sender, master]) => `${master} (primary of ${sender})`).join(', ')}`);
    lines.push('');
  }
  return lines.join('\n').trimEnd();
}

export async function chatCommand(options: ChatOptions): Promise<number> {
  checkName(options.name);
  const client = await connect({ locators: options.locator, name: `chat-${options.name}` });
  const site = (await client.view()).site;
  const region = client.region<Presence | ChatMessage | ChatResponse>(options.region);
  const me = `${site}/${options.name}`;
  const presenceKey = `member/${me}`;
  const abort = new AbortController();
  const presences = new Map<string, Presence>();
  let sequence = 0;

  const refreshPresence = async (): Promise<void> => {
    const presence: Presence = { name: options.name, site, atMs: Date.now(), siteMasters: await siteMasters(client) };
    await region.put(presenceKey, presence);
  };
  // Every member present already, then every change as it comes.
  const subscription = region.subscribe({ signal: abort.signal });
  await subscription.ready;
  for (const key of await region.keys()) {
    if (!key.startsWith('member/')) continue;
    const value = await region.get(key);
    if (value !== undefined) presences.set(key, value as Presence);
  }
  await refreshPresence();
  const presenceTimer = setInterval(() => {
    refreshPresence().catch((error: unknown) => writeErr(`chat: presence not refreshed: ${describeError(error).message}`));
  }, PRESENCE_INTERVAL_MS);

  const react = (async () => {
    try {
      for await (const event of subscription) {
        if (event.kind !== 'change') {
          writeErr('chat: the subscription moved to another server; a line sent meanwhile may have been missed');
          continue;
        }
        const { key, value } = event;
        if (key.startsWith('member/')) {
          if (value === undefined) presences.delete(key);
          else presences.set(key, value as Presence);
        } else if (key.startsWith('message/') && value !== undefined) {
          const message = value as ChatMessage;
          writeOut(`<< ${message.text} from ${message.from}${message.site === site ? '' : `:${message.site}`}`);
          // Answer, so the sender learns who received it.
          await region.put(`response/${key.slice('message/'.length)}/${me}`, { from: options.name, site });
        } else if (key.startsWith(`response/${me}/`) && value !== undefined) {
          const response = value as ChatResponse;
          writeOut(`<< response from ${response.from}:${response.site}`);
        }
      }
    } catch (error) {
      if (!abort.signal.aborted) writeErr(`chat: ${describeError(error).message}`);
    }
  })();

  if (options.interactive) writeOut(`chat ${options.name} at site ${site} (region ${options.region}); type a line, or help`);
  if (options.listen) writeOut(`chat ${options.name} at site ${site} (region ${options.region}): listening`);
  const input = createInterface({ input: options.listen ? Readable.from([]) : process.stdin, terminal: false });
  const leave = async (): Promise<void> => {
    clearInterval(presenceTimer);
    input.close();
    try {
      await region.remove(presenceKey);
    } catch {
      // Leaving anyway; the presence goes stale.
    }
    abort.abort();
    await react;
    await client.close();
  };
  const onSignal = () => {
    void leave().then(() => process.exit(0));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  if (options.listen) {
    input.close();
    await new Promise(() => {}); // until a signal: onSignal leaves and exits
  }
  for await (const raw of input) {
    const line = raw.trim();
    if (line.length === 0) continue;
    if (line === 'quit' || line === 'exit') break;
    if (line === 'help') {
      writeOut(HELP);
      continue;
    }
    if (line === 'topo') {
      writeOut(topologyText([...presences.values()], Date.now(), { name: options.name, site }));
      continue;
    }
    sequence += 1;
    await region.put(`message/${me}/${Date.now()}-${sequence}`, { from: options.name, site, text: line.slice(0, LINE_LENGTH_MAX) });
  }
  if (!options.interactive) await new Promise((resolve) => setTimeout(resolve, WAIT_AFTER_INPUT_MS));
  await leave();
  return 0;
}

export function registerChat(program: Command): void {
  program
    .command('chat')
    .description('cross-site chat (JGroups RelayDemo): every line reaches every chat member of every site, and each answers')
    .option('--locator <address>', 'a locator of this site, host[port]', '127.0.0.1[10334]')
    .requiredOption('--name <name>', 'this chat member\'s name')
    .option('--region <region>', `the replicated region the chat uses (default ${CHAT_REGION_DEFAULT})`, CHAT_REGION_DEFAULT)
    .option('--listen', 'read no input: print and answer what arrives until Ctrl-C or SIGTERM (a member in the background)', false)
    .action(async (flags: { locator: string; name: string; region: string; listen: boolean }) => {
      try {
        process.exitCode = await chatCommand({ ...flags, interactive: process.stdin.isTTY === true && !flags.listen });
      } catch (error) {
        const { code, message } = describeError(error);
        writeErr(`error ${code}: ${message}`);
        process.exitCode = EXIT_FAILURE;
      }
    });
}
