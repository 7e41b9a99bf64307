// Creating a region at runtime on every server of the site, acknowledged.
//
// The server a client or operator asks creates the region, then asks every other server of
// its view to create it too, naming all of them as its hosts, and answers only when each has
// it — or has left the view (it learns the region when it rejoins, from the regions of the
// servers it images from). A server that can't be reached is asked again with backoff; one
// that refuses (the region exists there with other settings) fails the creation with its
// code. Because every host knows the others host the region, a write replicated to one that
// has not created it yet is retried, never counted as applied.
//
// A state machine: callbacks run to completion; time and I/O come through the Runtime.

import { StraitError } from '../errors.ts';
import type { MemberInfo, RegionSpec, View } from '../protocol/messages.ts';
import type { Logger, Runtime } from '../runtime/runtime.ts';
import { Backoff } from './backoff.ts';
import type { PeerPool } from './peer-pool.ts';
import type { RegionTable } from './region-table.ts';
import { findMember, serversOf } from './views.ts';

export interface CreationHost {
  readonly memberName: string;
  memberId(): string | undefined;
  view(): View | null;
  /** True while the server runs (asking a peer again is pointless once it stops). */
  running(): boolean;
}

export class RegionCreation {
  private readonly runtime: Runtime;
  private readonly pool: PeerPool;
  private readonly host: CreationHost;
  private readonly regions: RegionTable;
  private readonly log: Logger;

  constructor(runtime: Runtime, pool: PeerPool, host: CreationHost, regions: RegionTable, log: Logger) {
    this.runtime = runtime;
    this.pool = pool;
    this.host = host;
    this.regions = regions;
    this.log = log;
  }

  /** A server of the site asks us to host `spec` too (`hosts`: every member that will). */
  createHere(spec: RegionSpec, hosts: readonly string[]): { created: boolean } {
    const created = !this.regions.has(spec.name);
    this.regions.open(spec);
    this.regions.expectHosts(spec.name, hosts);
    if (created) this.log.info({ region: spec.name, persistent: spec.persistent }, `server ${this.host.memberName}: created region ${spec.name}`);
    return { created };
  }

  /** Creates `spec` here and on every other server of the view; see the module comment. */
  createEverywhere(spec: RegionSpec, callback: (error: StraitError | undefined, result: { created: boolean } | undefined) => void): void {
    const me = this.host.memberId();
    const peers = serversOf(this.host.view()).filter((member) => member.info.id !== me).map((member) => member.info);
    const hosts = [...(me === undefined ? [] : [me]), ...peers.map((peer) => peer.id)];
    let result: { created: boolean };
    try {
      result = this.createHere(spec, hosts);
    } catch (error) {
      callback(error instanceof StraitError ? error : new StraitError('STRAIT_INTERNAL', { reason: String(error) }), undefined);
      return;
    }
    let waiting = peers.length;
    let refusal: StraitError | undefined;
    const peerDone = (error: StraitError | undefined): void => {
      refusal ??= error;
      waiting -= 1;
      if (waiting > 0) return;
      if (refusal !== undefined) callback(refusal, undefined);
      else callback(undefined, result);
    };
    if (waiting === 0) {
      callback(undefined, result);
      return;
    }
    for (const peer of peers) this.ask(peer, spec, hosts, new Backoff(this.runtime.random, { initialDelayMs: 50, maximumDelayMs: 2000 }), peerDone);
  }

  private ask(peer: MemberInfo, spec: RegionSpec, hosts: readonly string[], backoff: Backoff, done: (error: StraitError | undefined) => void): void {
    if (!this.host.running() || findMember(this.host.view(), peer.id) === undefined) {
      done(undefined); // left the view: it learns the region from the others when it rejoins
      return;
    }
    this.pool.get(peer.address).request('createRegion', { spec, hosts: [...hosts] }, (error) => {
      if (error === undefined) {
        done(undefined);
        return;
      }
      if (!error.retryable) {
        this.log.warn({ code: error.code, peer: peer.name }, `server ${this.host.memberName}: ${peer.name} refused to create region ${spec.name}: ${error.message}`);
        const refused = new StraitError(error.code, {}, { cause: error });
        refused.message = `${peer.name}: ${error.message}`;
        done(refused);
        return;
      }
      this.runtime.setTimer(backoff.nextDelayMs(), () => this.ask(peer, spec, hosts, backoff, done));
    });
  }
}
