// The gateway-sender commands: `strait status gateway-sender` and
// `strait pause|resume|stop|start gateway-sender`. They reach the site through its locator and
// act on every server hosting the sender (or on one, with --member), printing each member's
// resulting state.

import { StraitError, errorFromWire } from '../errors.ts';
import type { StraitClient } from '../client/client.ts';
import type { RequestBody, SenderStatus } from '../protocol/messages.ts';
import { withClient, type ClientCommandOptions, type Output } from './client-commands.ts';
import { senderDetail, sortCopies } from './gateway-report.ts';
import { table } from './report.ts';

export type SenderAction = RequestBody<'senderControl'>['action'];

/** Longest a `stop --drain-timeout -1` waits for the drain before the CLI gives up waiting. */
export const DRAIN_WAIT_MS_MAX = 86_400_000;

export interface SenderControlRequest {
  readonly id: string;
  /** The command the user typed: pause, resume, stop or start. */
  readonly command: 'pause' | 'resume' | 'stop' | 'start';
  /** Only this member's copy; every hosting server otherwise. */
  readonly member: string | undefined;
  /** stop only: wait this long for the queue to drain first; -1 = until drained; 0 = at once. */
  readonly drainTimeoutMs: number;
  /** resume only: put the dead letters back in the queue as well. */
  readonly replayDeadLetters: boolean;
}

export interface MemberState {
  readonly member: string;
  readonly state: string;
}

/** Parses `--drain-timeout`: milliseconds, -1 = until drained. */
export function parseDrainTimeout(text: string | undefined): number {
  if (text === undefined) return 0;
  const value = Number(text.trim());
  if (text.trim() === '' || !Number.isInteger(value) || value < -1 || value > DRAIN_WAIT_MS_MAX) {
    throw new StraitError('STRAIT_USAGE', { reason: `--drain-timeout takes milliseconds from -1 (until drained) to ${DRAIN_WAIT_MS_MAX}, got ${JSON.stringify(text)}` });
  }
  return value;
}

/** Every copy of the sender; STRAIT_SENDER_NOT_FOUND when no server of the site answers for it. */
async function senderCopies(client: StraitClient, id: string): Promise<SenderStatus[]> {
  const copies = await client.gatewaySenders(id);
  if (copies.length === 0) {
    const view = await client.view();
    throw new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: id, member: `any reachable server of site ${view.site}` });
  }
  return sortCopies(copies);
}

/** `strait status gateway-sender --id S`: every copy's figures and problems. */
export async function senderStatusCommand(id: string, options: ClientCommandOptions, output: Output): Promise<void> {
  await withClient(options, async (client) => {
    const copies = await senderCopies(client, id);
    output.out(options.json ? JSON.stringify(copies, null, 2) : senderDetail(copies, Date.now()));
  });
}

/**
 * Stops with a drain wait, one member at a time in parallel: each member answers when its own
 * queue drained (or the wait ran out), however long that takes.
 */
async function stopDraining(client: StraitClient, request: SenderControlRequest): Promise<MemberState[]> {
  const members = request.member !== undefined ? [request.member] : [...new Set((await senderCopies(client, request.id)).map((copy) => copy.member))];
  const results = await Promise.all(
    members.map((member) =>
      client.controlSender(request.id, 'stop', { member, drainTimeoutMs: request.drainTimeoutMs }).catch((error: unknown) => [
        { member, state: `error ${error instanceof StraitError ? error.code : 'STRAIT_INTERNAL'}` },
      ]),
    ),
  );
  return results.flat();
}

async function control(client: StraitClient, request: SenderControlRequest): Promise<MemberState[]> {
  const target = request.member === undefined ? {} : { member: request.member };
  if (request.command === 'stop') {
    if (request.drainTimeoutMs !== 0) return stopDraining(client, request);
    return client.controlSender(request.id, 'stop', target);
  }
  const states = await client.controlSender(request.id, request.command, target);
  if (request.command === 'resume' && request.replayDeadLetters) return client.controlSender(request.id, 'replayDeadLetters', target);
  return states;
}

/** `strait pause|resume|stop|start gateway-sender --id S`: prints each member's resulting state. */
export async function senderControlCommand(request: SenderControlRequest, options: ClientCommandOptions, output: Output): Promise<void> {
  // A drain may take as long as the user allows: the request must not time out first.
  const waitMs = request.command !== 'stop' || request.drainTimeoutMs === 0
    ? options.requestTimeoutMs
    : request.drainTimeoutMs < 0 ? DRAIN_WAIT_MS_MAX : Math.min(DRAIN_WAIT_MS_MAX, request.drainTimeoutMs + options.requestTimeoutMs);
  await withClient({ ...options, requestTimeoutMs: waitMs }, async (client) => {
    const members = [...(await control(client, request))].sort((a, b) => a.member.localeCompare(b.member));
    const failed = members.filter((member) => member.state.startsWith('error '));
    if (options.json) {
      output.out(JSON.stringify({ sender: request.id, action: request.command, replayedDeadLetters: request.replayDeadLetters, members }, null, 2));
    } else {
      const rows = [['MEMBER', 'STATE'], ...members.map((member) => [member.member, member.state])];
      const replayed = request.replayDeadLetters ? ' (dead letters queued again)' : '';
      output.out(`Gateway sender ${request.id}: ${request.command}${replayed} on ${members.length} ${members.length === 1 ? 'member' : 'members'}`);
      output.out(table(rows));
    }
    const firstFailure = failed[0];
    if (firstFailure !== undefined) {
      // The member's own code, so scripts see why (e.g. STRAIT_TIMEOUT, STRAIT_CONNECTION_CLOSED).
      const code = firstFailure.state.slice('error '.length);
      const where = failed.map((member) => `${member.member} (${member.state.slice('error '.length)})`).join(', ');
      throw errorFromWire({ code, message: `${request.command} gateway-sender ${request.id} failed on ${where}`, retryable: false });
    }
  });
}
