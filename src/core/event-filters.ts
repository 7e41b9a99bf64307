// A gateway sender's event filters (`gateway-event-filters`): user modules with hooks called
// before an event is queued, before it is sent, and after the remote site acknowledged it.
//
// A hook that throws must never lose an event: the failure is logged with STRAIT_FILTER_FAILED
// (at most every FILTER_FAILURE_LOG_INTERVAL_MS), counted, and the event goes on as if the hook
// were absent. Values are decoded only when a hook reads them.

import { Packr } from 'msgpackr';
import { StraitError } from '../errors.ts';
import type { GatewayEvent } from '../protocol/messages.ts';
import type { Clock, Logger } from '../runtime/runtime.ts';
import type { GatewayEventFilter, GatewayEventView } from './config.ts';

const FILTER_FAILURE_LOG_INTERVAL_MS = 10_000;
const valuePackr = new Packr({ useRecords: false, mapsAsObjects: true });

type Hook = 'beforeEnqueue' | 'beforeTransmit' | 'afterAcknowledgement';

function viewOf(event: GatewayEvent): GatewayEventView {
  let decoded: { value: unknown } | undefined;
  return {
    region: event[0],
    key: event[1],
    get value(): unknown {
      decoded ??= { value: event[2] === null ? undefined : valuePackr.unpack(event[2]) };
      return decoded.value;
    },
    removed: event[2] === null,
    originSite: event[3][0],
    possibleDuplicate: event[4],
  };
}

export class EventFilters {
  private readonly filters: readonly GatewayEventFilter[];
  private readonly senderId: string;
  private readonly clock: Clock;
  private readonly log: Logger;
  private lastFailureLogMs = -Infinity;
  /** Hook calls that threw (the event went on). */
  failures = 0;

  constructor(filters: readonly GatewayEventFilter[], senderId: string, clock: Clock, log: Logger) {
    this.filters = filters;
    this.senderId = senderId;
    this.clock = clock;
    this.log = log;
  }

  get active(): boolean {
    return this.filters.length > 0;
  }

  /** False when a filter keeps the event out of the queue. */
  beforeEnqueue(event: GatewayEvent): boolean {
    return this.passes('beforeEnqueue', event);
  }

  /** False when a filter keeps the event from being sent. */
  beforeTransmit(event: GatewayEvent): boolean {
    return this.passes('beforeTransmit', event);
  }

  afterAcknowledgement(event: GatewayEvent): void {
    if (!this.active) return;
    const view = viewOf(event);
    for (const filter of this.filters) {
      if (filter.afterAcknowledgement === undefined) continue;
      try {
        filter.afterAcknowledgement(view);
      } catch (error) {
        this.failed('afterAcknowledgement', event, error);
      }
    }
  }

  private passes(hook: 'beforeEnqueue' | 'beforeTransmit', event: GatewayEvent): boolean {
    if (!this.active) return true;
    const view = viewOf(event);
    for (const filter of this.filters) {
      const check = filter[hook];
      if (check === undefined) continue;
      try {
        if (check.call(filter, view) === false) return false;
      } catch (error) {
        this.failed(hook, event, error);
      }
    }
    return true;
  }

  private failed(hook: Hook, event: GatewayEvent, error: unknown): void {
    this.failures += 1;
    const now = this.clock.monotonic();
    if (now - this.lastFailureLogMs < FILTER_FAILURE_LOG_INTERVAL_MS) return;
    this.lastFailureLogMs = now;
    const failure = new StraitError('STRAIT_FILTER_FAILED', { sender: this.senderId, hook, region: event[0], key: event[1], reason: error instanceof Error ? error.message : String(error) }, { cause: error });
    this.log.error({ code: failure.code, sender: this.senderId, hook, failures: this.failures }, `${failure.message} (${this.failures} so far)`);
  }
}
