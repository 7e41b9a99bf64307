// `strait list routers --router H[P]`: what one router holds — per site, the members registered
// and on which routers of the mesh, since when (JGroups' RouterStubGet) — and the mesh, each
// peer with its state. Asked over the router's own port with the mesh's secret.

import { readFileSync } from 'node:fs';
import { StraitError } from '../errors.ts';
import { parseAddress } from '../config/address.ts';
import { ROUTER_SECRET_ENVIRONMENT_VARIABLE } from '../config/member-config.ts';
import { ROUTER_PORT_DEFAULT } from '../core/router.ts';
import { Connection } from '../protocol/connection.ts';
import type { ResponseBody } from '../protocol/messages.ts';
import { createClientRuntime } from '../runtime/node/client-runtime.ts';
import { formatAddress } from '../runtime/runtime.ts';
import type { Output } from './client-commands.ts';
import { formatAge } from './gateway-report.ts';
import { table } from './report.ts';
import { cliCredentials } from './cli-credentials.ts';

export interface ListRoutersRequest {
  readonly router: string;
  readonly secretFile: string | undefined;
  readonly json: boolean;
  readonly timeoutMs: number;
}

function secretFrom(request: ListRoutersRequest): string {
  if (request.secretFile !== undefined) {
    try {
      return readFileSync(request.secretFile, 'utf8').trim();
    } catch (error) {
      throw new StraitError('STRAIT_USAGE', { reason: `--router-secret-file ${request.secretFile} can't be read: ${(error as Error).message}` });
    }
  }
  const secret = process.env[ROUTER_SECRET_ENVIRONMENT_VARIABLE]?.trim();
  if (secret === undefined || secret.length === 0) {
    throw new StraitError('STRAIT_USAGE', { reason: `list routers needs the mesh secret: --router-secret-file FILE or $${ROUTER_SECRET_ENVIRONMENT_VARIABLE}` });
  }
  return secret;
}

/** Asks one router for its table. */
export function fetchRouterTable(router: string, secret: string, timeoutMs: number): Promise<ResponseBody<'routerList'>> {
  const address = parseAddress(router, ROUTER_PORT_DEFAULT);
  // As an admin: a router with TLS wants an admin certificate ($STRAIT_TLS_CA/CERT/KEY).
  const credentials = cliCredentials();
  const { runtime, close, keepAlive } = createClientRuntime(credentials.tls === undefined ? {} : { tls: credentials.tls });
  const release = keepAlive.hold();
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, response: ResponseBody<'routerList'> | undefined) => {
      if (settled) return;
      settled = true;
      release();
      connection.close();
      close();
      if (error !== undefined || response === undefined) reject(error ?? new Error('no response'));
      else resolve(response);
    };
    const connection = Connection.open(runtime, address, {
      local: { role: 'admin', name: 'strait-cli', site: null },
      frameBytesMax: 64 * 1024 * 1024,
      requestTimeoutMs: timeoutMs,
      requestsInFlightMax: 4,
    }, {
      onOpen: (opened) => opened.request('routerList', { secret }, finish),
      onRequest: (_connection, _request, reply) => reply.fail(new StraitError('STRAIT_MESSAGE_INVALID', { peer: router, reason: 'the CLI serves no requests' })),
      onPush: () => {},
      onClose: (_closed, error) => finish(error ?? new StraitError('STRAIT_CONNECTION_CLOSED', { peer: formatAddress(address), type: 'routerList' }), undefined),
    });
  });
}

export function routerTableText(response: ResponseBody<'routerList'>, nowMs: number): string {
  const lines = [`Router ${response.router} at ${formatAddress(response.address)}`, ''];
  const bySite = [...response.registrations].sort((a, b) => a.site - b.site || a.name.localeCompare(b.name));
  if (bySite.length === 0) lines.push('No members registered on the mesh.');
  else {
    const rows = [['SITE', 'MEMBER', 'ROLE', 'ROUTERS', 'SINCE']];
    for (const registration of bySite) rows.push([String(registration.site), registration.name, registration.role, registration.routers.join(','), formatAge(registration.sinceMs, nowMs)]);
    lines.push(table(rows));
  }
  lines.push('');
  if (response.peers.length === 0) lines.push('Mesh: no other routers.');
  else {
    const rows = [['MESH PEER', 'ADDRESS', 'STATE', 'SINCE', 'REGISTRATIONS', 'ERROR']];
    for (const peer of response.peers) {
      rows.push([peer.name ?? '?', peer.address === null ? '-' : formatAddress(peer.address), peer.state, formatAge(peer.sinceMs, nowMs), String(peer.registrations), peer.error ?? '']);
    }
    lines.push(table(rows));
  }
  return lines.join('\n');
}

export async function listRoutersCommand(request: ListRoutersRequest, output: Output): Promise<void> {
  const response = await fetchRouterTable(request.router, secretFrom(request), request.timeoutMs);
  output.out(request.json ? JSON.stringify(response, null, 2) : routerTableText(response, Date.now()));
}
