import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../errors.ts';
import type { StreamSecurity } from '../runtime/runtime.ts';
import {
  authenticateHello, authenticateWelcome, mayConnect, OPEN_POLICY, OPERATION_AUDIENCES, operationRefusal, tokensMatch, type Claim, type SecurityPolicy,
} from './authentication.ts';
import { REQUESTS, type RequestOp } from './messages.ts';

const TLS: SecurityPolicy = OPEN_POLICY;
const server1: StreamSecurity = { kind: 'tls', identity: { role: 'server', site: 1 }, refusal: undefined };
const server2: StreamSecurity = { kind: 'tls', identity: { role: 'server', site: 2 }, refusal: undefined };
const noCertificate: StreamSecurity = { kind: 'tls', identity: undefined, refusal: undefined };
const otherCa: StreamSecurity = { kind: 'tls', identity: undefined, refusal: 'its certificate is not trusted (unable to verify the first certificate)' };

const claim = (role: Claim['role'], site: number | null): Claim => ({ role, site, name: `a-${role}` });

function refusedWith(code: string, run: () => void): void {
  assert.throws(run, (error: unknown) => error instanceof StraitError && error.code === code);
}

test('a member certificate backs its own role and site only', () => {
  authenticateHello(claim('server', 1), undefined, server1, TLS, 'peer');
  authenticateHello(claim('gateway', 2), undefined, server2, TLS, 'peer');
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('server', 1), undefined, server2, TLS, 'peer'));
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('locator', 1), undefined, server1, TLS, 'peer'));
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('gateway', 1), undefined, server2, TLS, 'peer'));
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('admin', null), undefined, server1, TLS, 'peer'));
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('router', null), undefined, server1, TLS, 'peer'));
});

test('under TLS, a member role without a certificate, or with an untrusted one, is refused', () => {
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('server', 1), undefined, noCertificate, TLS, 'peer'));
  refusedWith('STRAIT_TLS_REFUSED', () => authenticateHello(claim('server', 1), undefined, otherCa, TLS, 'peer'));
  refusedWith('STRAIT_TLS_REFUSED', () => authenticateHello(claim('client', null), undefined, otherCa, TLS, 'peer'));
  // Without TLS member roles are taken as claimed (docs/SECURITY.md): the transport proves nothing.
  authenticateHello(claim('server', 1), undefined, { kind: 'plaintext' }, TLS, 'peer');
});

test('clients: anonymous unless the site sets a client token or requires certificates', () => {
  authenticateHello(claim('client', null), undefined, noCertificate, TLS, 'peer');
  const withToken = { ...TLS, clientToken: 'client-secret-0123' };
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('client', null), undefined, noCertificate, withToken, 'peer'));
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('client', null), 'client-secret-0124', noCertificate, withToken, 'peer'));
  authenticateHello(claim('client', null), 'client-secret-0123', noCertificate, withToken, 'peer');
  authenticateHello(claim('client', null), undefined, { kind: 'tls', identity: { role: 'client', site: null }, refusal: undefined }, withToken, 'peer');
  const certificates = { ...TLS, requireClientCertificate: true };
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('client', null), 'client-secret-0123', noCertificate, certificates, 'peer'));
});

test('admins: the admin token or an admin certificate wherever the site has any security setting', () => {
  authenticateHello(claim('admin', null), undefined, { kind: 'plaintext' }, OPEN_POLICY, 'peer');
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('admin', null), undefined, noCertificate, TLS, 'peer'));
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('admin', null), 'client-secret-0123', noCertificate, { ...TLS, clientToken: 'client-secret-0123' }, 'peer'));
  const admin = { ...OPEN_POLICY, adminToken: 'admin-secret-0123' };
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('admin', null), undefined, { kind: 'plaintext' }, admin, 'peer'));
  authenticateHello(claim('admin', null), 'admin-secret-0123', { kind: 'plaintext' }, admin, 'peer');
  authenticateHello(claim('admin', null), undefined, { kind: 'tls', identity: { role: 'admin', site: null }, refusal: undefined }, TLS, 'peer');
});

test('a routed tunnel backs a member of the site the router authenticated, nothing else', () => {
  const routed: StreamSecurity = { kind: 'routed', site: 2 };
  authenticateHello(claim('gateway', 2), undefined, routed, TLS, 'peer');
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('gateway', 3), undefined, routed, TLS, 'peer'));
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateHello(claim('client', null), undefined, routed, OPEN_POLICY, 'peer'));
});

test('the connecting side sends no hello to a TLS peer without a trusted certificate, and checks the welcome', () => {
  assert.equal(mayConnect(server1, 'peer'), undefined);
  assert.equal(mayConnect({ kind: 'plaintext' }, 'peer'), undefined);
  assert.equal(mayConnect(noCertificate, 'peer')?.code, 'STRAIT_TLS_REFUSED');
  assert.equal(mayConnect(otherCa, 'peer')?.code, 'STRAIT_TLS_REFUSED');
  authenticateWelcome(claim('server', 1), server1, 'peer');
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateWelcome(claim('server', 1), server2, 'peer'));
  refusedWith('STRAIT_UNAUTHENTICATED', () => authenticateWelcome(claim('locator', 1), server1, 'peer'));
});

test('every request operation has an audience; member-only operations are refused to clients and on a receiver port', () => {
  assert.deepEqual(Object.keys(OPERATION_AUDIENCES).sort(), Object.keys(REQUESTS).sort());
  const memberOnly: RequestOp[] = ['replicate', 'senderAck', 'senderHandoff', 'senderImage', 'image', 'join', 'heartbeat', 'configApply', 'bucketAdmit'];
  for (const op of memberOnly) {
    assert.ok(operationRefusal(op, 'client', undefined) !== undefined, op);
    assert.ok(operationRefusal(op, 'admin', undefined) !== undefined, op);
    assert.ok(operationRefusal(op, 'gateway', undefined) !== undefined, op);
    assert.equal(operationRefusal(op, 'server', undefined), undefined, op);
  }
  for (const op of ['senderControl', 'configChange', 'createRegion'] as const) {
    assert.ok(operationRefusal(op, 'client', undefined) !== undefined, op);
    assert.equal(operationRefusal(op, 'admin', undefined), undefined, op);
  }
  assert.ok(operationRefusal('catalogue', 'client', undefined) !== undefined);
  assert.equal(operationRefusal('catalogue', 'gateway', undefined), undefined);
  const receiverPort = new Set<RequestOp>(['gatewayBatch', 'ping']);
  assert.equal(operationRefusal('gatewayBatch', 'gateway', receiverPort), undefined);
  assert.ok(operationRefusal('put', 'gateway', receiverPort) !== undefined);
  assert.ok(operationRefusal('replicate', 'server', receiverPort) !== undefined);
});

test('tokens compare equal only when equal', () => {
  assert.ok(tokensMatch('abc', 'abc'));
  assert.ok(!tokensMatch('abd', 'abc'));
  assert.ok(!tokensMatch('abc', 'abcd'));
  assert.ok(!tokensMatch(undefined, 'abc'));
  assert.ok(!tokensMatch('', 'a'));
});
