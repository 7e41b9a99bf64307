import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StraitError } from '../errors.ts';
import { substituteEnvironment } from './environment.ts';
import { isBindSelector, resolveBindSelector, type NetworkInterfaces } from './interfaces.ts';
import { buildMemberConfig, type MachineFacts, type ServerMemberConfig } from './member-config.ts';

const FILE = '/members/s1/strait.yaml';

function refusal(fn: () => unknown, key: string, reasonPart: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof StraitError, `expected StraitError, got ${String(error)}`);
    assert.equal(error.code, 'STRAIT_CONFIG_INVALID');
    assert.equal(error.details['key'], key);
    assert.match(String(error.details['reason']), reasonPart);
    return true;
  });
}

// A container's interfaces: loopback, a pod network (site-local), a public one, link-local IPv6.
const CONTAINER: NetworkInterfaces = {
  lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }, { address: '::1', family: 'IPv6', internal: true }],
  eth0: [{ address: 'fe80::1', family: 'IPv6', internal: false }, { address: '10.244.1.7', family: 'IPv4', internal: false }],
  eth1: [{ address: '203.0.113.9', family: 'IPv4', internal: false }],
};

describe('${NAME:default} in strait.yaml', () => {
  it('substitutes set variables, defaults, escapes, in nested mappings and lists', () => {
    const parsed = {
      'hostname-for-clients': '${STRAIT_EXTERNAL_ADDR:127.0.0.1}',
      port: '${PORT}',
      locators: ['${LOCATOR_A}[10334]', 'b[${PORT_B:1}]'],
      'gateway-receiver': { 'hostname-for-clients': 'gw-${SITE}.example' },
      literal: 'cost $${HOME}',
      number: 7,
    };
    const result = substituteEnvironment(parsed, { PORT: '10400', LOCATOR_A: 'loc-a', SITE: 'nyc', HOME: '/root' }, FILE);
    assert.deepEqual(result, {
      'hostname-for-clients': '127.0.0.1',
      port: '10400',
      locators: ['loc-a[10334]', 'b[1]'],
      'gateway-receiver': { 'hostname-for-clients': 'gw-nyc.example' },
      literal: 'cost ${HOME}',
      number: 7,
    });
  });

  it('takes the default for an empty variable, and an empty default', () => {
    assert.equal(substituteEnvironment('${A:x}', { A: '' }, FILE), 'x');
    assert.equal(substituteEnvironment('a${B:}b', {}, FILE), 'ab');
  });

  it('refuses an unset variable without a default, naming the key and the variable', () => {
    refusal(() => substituteEnvironment({ 'gateway-receiver': { 'hostname-for-clients': '${EXTERNAL}' } }, {}, FILE),
      'gateway-receiver.hostname-for-clients', /EXTERNAL is not set/);
    refusal(() => substituteEnvironment({ locators: ['ok', '${NOPE}'] }, {}, FILE), 'locators[1]', /NOPE/);
  });

  it('refuses an unterminated or malformed reference', () => {
    refusal(() => substituteEnvironment({ name: 'a-${NAME' }, { NAME: 'x' }, FILE), 'name', /no closing/);
    refusal(() => substituteEnvironment({ name: '${1BAD}' }, {}, FILE), 'name', /not a variable reference/);
  });

  it('applies when a member configuration is built from a file', () => {
    const machine: MachineFacts = { environment: { STRAIT_EXTERNAL_ADDR: 'nyc.example.com', STRAIT_PORT: '40500' }, interfaces: {} };
    const text = 'name: s1\nlocators: l1[10334]\nserver-port: ${STRAIT_PORT:40404}\nhostname-for-clients: ${STRAIT_EXTERNAL_ADDR:127.0.0.1}\n';
    const config = buildMemberConfig('server', {}, { path: FILE, text }, machine) as ServerMemberConfig;
    assert.equal(config.core.bind.port, 40500);
    assert.equal(config.core.hostnameForClients, 'nyc.example.com');
    const defaults = buildMemberConfig('server', {}, { path: FILE, text }) as ServerMemberConfig;
    assert.equal(defaults.core.bind.port, 40404);
    assert.equal(defaults.core.hostnameForClients, '127.0.0.1');
  });
});

describe('bind-address interface selectors', () => {
  const refuse = (reason: string) => new StraitError('STRAIT_CONFIG_INVALID', { source: FILE, key: 'bind-address', reason });

  it('tells selectors from hosts', () => {
    assert.equal(isBindSelector('site-local'), true);
    assert.equal(isBindSelector('match-interface:eth0,loopback'), true);
    assert.equal(isBindSelector('10.0.0.1'), false);
    assert.equal(isBindSelector('locator.example.com'), false);
  });

  it('takes the first selector that matches, preferring IPv4 and skipping link-local', () => {
    assert.equal(resolveBindSelector('match-interface:eth0', CONTAINER, refuse), '10.244.1.7');
    assert.equal(resolveBindSelector('match-interface:eth9,site-local,loopback', CONTAINER, refuse), '10.244.1.7');
    assert.equal(resolveBindSelector('match-interface:eth9,loopback', CONTAINER, refuse), '127.0.0.1');
    assert.equal(resolveBindSelector('global', CONTAINER, refuse), '203.0.113.9');
    assert.equal(resolveBindSelector('non-loopback', CONTAINER, refuse), '10.244.1.7');
    assert.equal(resolveBindSelector('link-local', CONTAINER, refuse), 'fe80::1');
    assert.equal(resolveBindSelector('match-interface:eth.*', CONTAINER, refuse), '10.244.1.7');
    assert.equal(resolveBindSelector('match-address:203\\..*', CONTAINER, refuse), '203.0.113.9');
  });

  it('knows the private ranges', () => {
    const only = (address: string): NetworkInterfaces => ({ x: [{ address, family: address.includes(':') ? 'IPv6' : 'IPv4', internal: false }] });
    for (const address of ['10.1.2.3', '172.16.0.1', '172.31.255.1', '192.168.0.1', 'fd00::1']) {
      assert.equal(resolveBindSelector('site-local', only(address), refuse), address);
    }
    for (const address of ['172.32.0.1', '11.0.0.1', '192.169.0.1']) {
      assert.throws(() => resolveBindSelector('site-local', only(address), refuse), /no address of this machine/);
    }
  });

  it('refuses no match, an unknown selector and a bad pattern, naming the key', () => {
    const build = (bind: string) => () => buildMemberConfig('locator', { name: 'l1', 'bind-address': bind }, undefined, { environment: {}, interfaces: CONTAINER });
    refusal(build('match-interface:wlan0'), '--bind-address', /no address of this machine matches match-interface:wlan0 \(its addresses: eth0 fe80::1, eth0 10\.244\.1\.7/);
    refusal(build('site-local,bogus'), '--bind-address', /"bogus" is not a selector/);
    refusal(build('match-interface:(eth'), '--bind-address', /not a regular expression/);
  });

  it('binds and advertises the address a selector picks, in flags and in the gateway receiver', () => {
    const machine: MachineFacts = { environment: {}, interfaces: CONTAINER };
    const text = 'name: s1\nlocators: l1[10334]\nbind-address: match-interface:eth0\ngateway-receiver:\n  bind-address: global\n';
    const config = buildMemberConfig('server', {}, { path: FILE, text }, machine) as ServerMemberConfig;
    assert.equal(config.core.bind.host, '10.244.1.7');
    assert.equal(config.advertisedHost, '10.244.1.7');
    assert.equal(config.gatewayReceiver?.bindAddress, '203.0.113.9');
  });
});
