import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createLogger, type NodeLogger } from './logger.ts';

function flush(logger: NodeLogger): Promise<void> {
  return new Promise((resolve, reject) => logger.flush((error) => (error ? reject(error) : resolve())));
}

function withDirectory(body: (directory: string) => Promise<void>): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), 'strait-logger-'));
  return body(directory).finally(() => rmSync(directory, { recursive: true, force: true }));
}

test('writes JSON lines with fields, message, name and child bindings; filters by level', () =>
  withDirectory(async (directory) => {
    const destination = join(directory, 'logs', 'member.log');
    const logger = createLogger({ name: 'server1', destination });
    logger.debug({ hidden: true }, 'below the level');
    logger.info({ site: 2 }, 'joined site 2');
    logger.child({ region: 'orders' }).warn({ key: 'k1' }, 'slow apply');
    await flush(logger);
    const lines = readFileSync(destination, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(lines.length, 2);
    assert.equal(lines[0]?.name, 'server1');
    assert.equal(lines[0]?.site, 2);
    assert.equal(lines[0]?.msg, 'joined site 2');
    assert.equal(lines[0]?.level, 30);
    assert.equal(lines[1]?.region, 'orders');
    assert.equal(lines[1]?.key, 'k1');
    assert.equal(lines[1]?.level, 40);
  }));

test('redacts tokens and passwords, also one object down', () =>
  withDirectory(async (directory) => {
    const destination = join(directory, 'member.log');
    const logger = createLogger({ name: 'server1', destination });
    logger.info({ token: 'secret-1', admin: { token: 'secret-2', password: 'secret-3' }, user: 'ops' }, 'admin login');
    await flush(logger);
    const content = readFileSync(destination, 'utf8');
    assert.ok(!content.includes('secret-'), content);
    const line = JSON.parse(content) as { token: string; admin: { token: string }; user: string };
    assert.equal(line.token, '[redacted]');
    assert.equal(line.admin.token, '[redacted]');
    assert.equal(line.user, 'ops');
  }));

test('pretty output is human-readable, not JSON', () =>
  withDirectory(async (directory) => {
    const destination = join(directory, 'pretty.log');
    const logger = createLogger({ name: 'server1', destination, pretty: true, level: 'debug' });
    logger.debug({ site: 1 }, 'pretty line');
    await flush(logger);
    const content = readFileSync(destination, 'utf8');
    assert.ok(content.includes('pretty line'));
    assert.throws(() => JSON.parse(content));
  }));

test('an unknown level is STRAIT_CONFIG_INVALID', () => {
  assert.throws(
    () => createLogger({ name: 'server1', level: 'verbose' }),
    (error: unknown) => (error as { code?: unknown }).code === 'STRAIT_CONFIG_INVALID',
  );
});

test('a destination that cannot be opened is STRAIT_CONFIG_INVALID', () =>
  withDirectory(async (directory) => {
    assert.throws(
      () => createLogger({ name: 'server1', destination: directory }),
      (error: unknown) => (error as { code?: unknown }).code === 'STRAIT_CONFIG_INVALID',
    );
  }));
