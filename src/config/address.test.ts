import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatHostPort, parseAddress, parseAddressList } from './address.ts';
import { StraitError } from '../errors.ts';
import { formatAddress } from '../runtime/runtime.ts';

function assertInvalid(fn: () => unknown): void {
  assert.throws(fn, (error: unknown) => error instanceof StraitError && error.code === 'STRAIT_ADDRESS_INVALID');
}

describe('parseAddress', () => {
  const valid: Array<[string, number | undefined, string, number]> = [
    ['localhost[10334]', undefined, 'localhost', 10334],
    ['10.0.0.1[1]', undefined, '10.0.0.1', 1],
    ['site2.example.com[40404]', undefined, 'site2.example.com', 40404],
    ['localhost:10334', undefined, 'localhost', 10334],
    ['127.0.0.1:0', undefined, '127.0.0.1', 0],
    ['host-with_dash:65535', undefined, 'host-with_dash', 65535],
    ['[::1]:10334', undefined, '::1', 10334],
    ['[fe80::1%eth0]:7', undefined, 'fe80::1%eth0', 7],
    ['::1[10334]', undefined, '::1', 10334],
    ['2001:db8::1[99]', undefined, '2001:db8::1', 99],
    ['localhost', 10334, 'localhost', 10334],
    ['10.1.2.3', 40404, '10.1.2.3', 40404],
    ['::1', 5, '::1', 5],
    ['2001:db8::1', 5, '2001:db8::1', 5],
    ['[::1]', 6, '::1', 6],
    ['  spaced[12]  ', undefined, 'spaced', 12],
  ];
  for (const [text, defaultPort, host, port] of valid) {
    it(`accepts ${JSON.stringify(text)}`, () => {
      assert.deepEqual(parseAddress(text, defaultPort), { host, port });
    });
  }

  const invalid: Array<[string, number | undefined]> = [
    ['', 10334],
    ['   ', 10334],
    ['localhost', undefined],
    ['::1', undefined],
    ['[::1]', undefined],
    ['host[]', undefined],
    ['host[abc]', undefined],
    ['host[65536]', undefined],
    ['host[-1]', undefined],
    ['host:', undefined],
    [':10334', undefined],
    ['[10334]', undefined],
    ['host:99999', undefined],
    ['host:12x', undefined],
    ['host[1]x', undefined],
    ['[::1]:', undefined],
    ['[::1]x', undefined],
    ['[localhost]:1', undefined],
    ['ho st:1', undefined],
    ['host/path:1', undefined],
    ['a[b][1]', undefined],
    ['http://host:1', undefined],
    [`${'a'.repeat(254)}:1`, undefined],
  ];
  for (const [text, defaultPort] of invalid) {
    it(`rejects ${JSON.stringify(text.slice(0, 40))} with STRAIT_ADDRESS_INVALID`, () => {
      assertInvalid(() => parseAddress(text, defaultPort));
    });
  }

  it('round-trips through formatAddress', () => {
    for (const address of [
      { host: 'localhost', port: 10334 },
      { host: '::1', port: 1 },
      { host: '10.0.0.1', port: 0 },
    ]) {
      assert.deepEqual(parseAddress(formatAddress(address)), address);
      assert.deepEqual(parseAddress(formatHostPort(address)), address);
    }
  });
});

describe('parseAddressList', () => {
  it('parses mixed forms', () => {
    assert.deepEqual(parseAddressList('h1[1],h2:2, [::1]:3 ,h4', 10334), [
      { host: 'h1', port: 1 },
      { host: 'h2', port: 2 },
      { host: '::1', port: 3 },
      { host: 'h4', port: 10334 },
    ]);
  });

  it('skips empty items', () => {
    assert.deepEqual(parseAddressList('h1[1],'), [{ host: 'h1', port: 1 }]);
  });

  it('rejects an empty list', () => {
    assertInvalid(() => parseAddressList(''));
    assertInvalid(() => parseAddressList(' , '));
  });

  it('rejects when any item is invalid', () => {
    assertInvalid(() => parseAddressList('h1[1],h2[x]'));
  });
});

describe('formatHostPort', () => {
  it('brackets IPv6 literals', () => {
    assert.equal(formatHostPort({ host: '::1', port: 80 }), '[::1]:80');
    assert.equal(formatHostPort({ host: 'example.com', port: 80 }), 'example.com:80');
  });
});
