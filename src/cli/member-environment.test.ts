// Member flags from the environment (member-commands.ts): every flag of MEMBER_FLAGS has its
// STRAIT_<FLAG> variable with no list to keep, the command line wins, an empty variable is unset,
// and a refused value names the variable. test/deploy/entrypoint.test.ts runs real members this way.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { StraitError } from '../errors.ts';
import { buildMemberConfig } from '../config/member-config.ts';
import {
  ADMIN_TOKEN_ENVIRONMENT_VARIABLE,
  MEMBER_FLAGS,
  addMemberOptions,
  environmentVariableFor,
  memberFlagValues,
  memberLocationFlags,
  namingEnvironmentVariables,
  prepareStart,
  runRole,
} from './member-commands.ts';

function refusal(action: () => unknown): StraitError {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof StraitError, String(error));
    return error;
  }
  assert.fail('expected a refusal');
}

describe('member flags from the environment', () => {
  it('names each flag\'s variable STRAIT_ and the flag in upper snake case', () => {
    assert.equal(environmentVariableFor('site-id'), 'STRAIT_SITE_ID');
    assert.equal(environmentVariableFor('hostname-for-clients'), 'STRAIT_HOSTNAME_FOR_CLIENTS');
    assert.equal(environmentVariableFor('dir'), 'STRAIT_DIR');
    assert.equal(environmentVariableFor('admin-token'), ADMIN_TOKEN_ENVIRONMENT_VARIABLE);
    const variables = MEMBER_FLAGS.map((flag) => environmentVariableFor(flag.key));
    assert.equal(new Set(variables).size, variables.length, 'one variable per flag');
    for (const variable of variables) assert.match(variable, /^STRAIT_[A-Z0-9]+(_[A-Z0-9]+)*$/);
  });

  it('takes every member flag from its variable, with nothing listed by hand', () => {
    for (const flag of MEMBER_FLAGS) {
      assert.deepEqual(memberFlagValues({}, { [environmentVariableFor(flag.key)]: 'from-environment' }), { [flag.key]: 'from-environment' }, flag.key);
    }
  });

  it('lets the command line win, and takes an empty variable as unset', () => {
    const environment = { STRAIT_NAME: 'from-environment', STRAIT_SITE_ID: '3', STRAIT_LOCATORS: '' };
    assert.deepEqual(memberFlagValues({ name: 'from-flag' }, environment), { name: 'from-flag', 'site-id': '3' });
    assert.deepEqual(memberLocationFlags({ dir: '/flag' }, { STRAIT_DIR: '/environment', STRAIT_CONFIG: '/etc/strait.yaml' }), { dir: '/flag', config: '/etc/strait.yaml' });
    assert.deepEqual(memberLocationFlags({}, { STRAIT_DIR: '' }), { dir: undefined, config: undefined });
  });

  it('builds a member from variables alone', () => {
    const environment = { STRAIT_NAME: 'locator-9', STRAIT_SITE_ID: '9', STRAIT_PORT: '10399', STRAIT_HTTP_PORT: '7070', STRAIT_HOSTNAME_FOR_CLIENTS: 'l9.example' };
    const config = buildMemberConfig(runRole(undefined, { STRAIT_ROLE: 'locator' }), memberFlagValues({}, environment));
    assert.ok(config.role === 'locator');
    assert.deepEqual([config.name, config.core.site, config.core.bind.port, config.httpBind.port, config.advertisedHost], ['locator-9', 9, 10399, 7070, 'l9.example']);
  });

  it('takes the role of `run` from its argument, else STRAIT_ROLE', () => {
    assert.equal(runRole('server', { STRAIT_ROLE: 'locator' }), 'server');
    assert.equal(runRole(undefined, { STRAIT_ROLE: 'router' }), 'router');
    assert.equal(refusal(() => runRole(undefined, {})).code, 'STRAIT_USAGE');
    const wrong = refusal(() => runRole(undefined, { STRAIT_ROLE: 'gateway-sender' }));
    assert.equal(wrong.code, 'STRAIT_CONFIG_INVALID');
    assert.equal(wrong.details['key'], 'STRAIT_ROLE');
  });

  it('names the variable when its value is refused, and the flag when the flag\'s is', () => {
    const load = (options: Record<string, unknown>, environment: Record<string, string>) => refusal(() =>
      namingEnvironmentVariables(options, environment, () => buildMemberConfig('locator', memberFlagValues(options, environment))));
    const fromEnvironment = load({}, { STRAIT_NAME: 'l', STRAIT_PORT: 'ten' });
    assert.equal(fromEnvironment.code, 'STRAIT_CONFIG_INVALID');
    assert.deepEqual([fromEnvironment.details['source'], fromEnvironment.details['key']], ['environment', 'STRAIT_PORT']);
    assert.ok(fromEnvironment.cause instanceof StraitError);
    const fromFlag = load({ port: 'ten' }, { STRAIT_NAME: 'l', STRAIT_PORT: 'ten' });
    assert.deepEqual([fromFlag.details['source'], fromFlag.details['key']], ['command line', '--port']);
    const notForRole = load({}, { STRAIT_NAME: 'l', STRAIT_SERVER_PORT: '40404' });
    assert.deepEqual([notForRole.code, notForRole.details['key']], ['STRAIT_CONFIG_INVALID', 'STRAIT_SERVER_PORT']);
  });

  it('says so when a variable is one Kubernetes sets for a Service (service links)', () => {
    const error = refusal(() => namingEnvironmentVariables({}, { STRAIT_SERVER_PORT: 'tcp://10.96.0.12:40404' }, () =>
      buildMemberConfig('server', memberFlagValues({}, { STRAIT_NAME: 's', STRAIT_LOCATORS: 'l', STRAIT_SERVER_PORT: 'tcp://10.96.0.12:40404' }))));
    assert.equal(error.details['key'], 'STRAIT_SERVER_PORT');
    assert.match(error.message, /a Service named strait-server: set enableServiceLinks: false/);
  });

  it('start passes what it read from the environment as flags, and withholds the variables from the member', () => {
    const options = { name: 'l1' };
    const environment = { STRAIT_SITE_ID: '4', STRAIT_ADMIN_TOKEN: 'a-token-of-sixteen-characters' };
    const request = prepareStart('locator', memberFlagValues(options, environment), { dir: '/nonexistent/strait-l1' }, 1000);
    assert.ok(request.config.role === 'locator' && request.config.core.site === 4);
    assert.ok(request.runArguments.join(' ').includes('--site-id 4'));
    assert.ok(!request.runArguments.includes('--admin-token'), 'the token travels in the environment only');
    const withheld = new Set(request.withheldEnvironment);
    for (const flag of MEMBER_FLAGS.filter((each) => each.key !== 'admin-token')) assert.ok(withheld.has(environmentVariableFor(flag.key)), flag.key);
    assert.ok(withheld.has('STRAIT_DIR') && withheld.has('STRAIT_CONFIG'));
    assert.ok(!withheld.has(ADMIN_TOKEN_ENVIRONMENT_VARIABLE));
  });

  it('shows each flag\'s variable in the help', () => {
    const help = addMemberOptions(new Command('run')).helpInformation().replace(/\s+/g, ' ');
    for (const flag of [...MEMBER_FLAGS.map((each) => each.key), 'dir', 'config']) {
      assert.ok(help.includes(`(env: ${environmentVariableFor(flag)})`), `${flag} in:\n${help}`);
    }
  });
});
