// A gateway sender's control (`senderControl`): pause, resume, stop (with a drain wait), start,
// or replay the dead letters of this server's copy and, with `everyMember`, of every copy in the
// view, answering each member's resulting state.

import { StraitError } from '../errors.ts';
import type { Reply } from '../protocol/connection.ts';
import type { RequestBody, View } from '../protocol/messages.ts';
import type { GatewaySender } from './gateway-sender.ts';
import type { PeerPool } from './peer-pool.ts';
import { serversOf } from './views.ts';

export interface ControlContext {
  readonly pool: PeerPool;
  readonly memberName: string;
  readonly selfId: string | undefined;
  readonly view: View | null;
}

/** Runs `body.action` on `sender` (this server's copy, if it hosts one) and the other copies asked for. */
export function controlSender(context: ControlContext, sender: GatewaySender | undefined, body: RequestBody<'senderControl'>, reply: Reply<'senderControl'>): void {
  const me = context.selfId;
  const results: { member: string; state: string }[] = [];
  const others = body.everyMember === true
    ? serversOf(context.view).filter((member) => member.info.id !== me && (member.info.senders ?? []).some((candidate) => candidate.id === body.id))
    : [];
  if (sender === undefined && others.length === 0) throw new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: body.id, member: context.memberName });
  let waiting = others.length + 1;
  const done = () => {
    waiting -= 1;
    if (waiting === 0) reply.ok({ members: results });
  };
  for (const member of others) {
    context.pool.get(member.info.address).request('senderControl', { ...body, everyMember: false }, (error, response) => {
      if (response !== undefined) results.push(...response.members);
      else results.push({ member: member.info.name, state: `error ${error?.code ?? 'STRAIT_INTERNAL'}` });
      done();
    });
  }
  if (sender === undefined) {
    done();
    return;
  }
  const local = () => results.push({ member: context.memberName, state: sender.state });
  switch (body.action) {
    case 'pause':
      // Answered once this copy's batches in flight have landed: after `strait pause`
      // returns, nothing more arrives at the remote site.
      sender.pause(() => {
        local();
        done();
      });
      return;
    case 'resume':
      sender.resume();
      break;
    case 'start':
      sender.start();
      break;
    case 'replayDeadLetters':
      sender.replayDeadLetters();
      break;
    case 'stop':
      sender.stop(body.drainTimeoutMs ?? 0, () => {
        local();
        done();
      });
      return;
  }
  local();
  done();
}
