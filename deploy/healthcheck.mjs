#!/usr/bin/env node
// @ts-check
// The container health check of a Strait member (Docker HEALTHCHECK, compose, a Kubernetes exec
// readiness probe): exits 0 when the member in this container is ready, 1 when it is not, and
// prints one line saying which and why.
//
//   node healthcheck.mjs [--live] [--port N] [--host H] [--timeout-ms N]
//
// Why not an HTTP probe of GET /health alone: /health answers 200 as soon as the member exists,
// in every state (`starting`, `joining`, `initializing` while a server takes its regions' images,
// then `ready`); before the member exists (a server still looking for its locators) it answers
// 503. So "ready" here means 200 *and* `state: "ready"`; with --live, any answer at all (the
// process and its event loop are alive), which is what a liveness check wants.
//
// Which member: the role is STRAIT_ROLE (else member.json's). The port is --port, else the
// variable the member itself reads (STRAIT_HTTP_PORT for locators and servers, STRAIT_PORT for
// controllers and routers), else the port in <STRAIT_DIR>/member.json. A router has no HTTP API:
// it is ready when its port accepts a connection. A controller answers /health with no state.
//
// Plain JavaScript with no dependencies, so it runs in a few tens of milliseconds whatever the
// image holds (src/ or dist/); test/deploy/entrypoint.test.ts runs it against real members.

import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';

const ROLES = ['locator', 'server', 'router', 'controller'];
const TIMEOUT_MS_DEFAULT = 3000;

/**
 * @param {boolean} ok
 * @param {string} line
 */
function verdict(ok, line) {
  process.stdout.write(`${ok ? 'ready' : 'not ready'}: ${line}\n`);
  process.exitCode = ok ? 0 : 1;
}

/** @returns {{ live: boolean, port: string | undefined, host: string | undefined, timeoutMs: number }} */
function parseArguments(argv) {
  const options = { live: false, port: undefined, host: undefined, timeoutMs: TIMEOUT_MS_DEFAULT };
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index];
    const value = () => {
      const next = argv[++index];
      if (next === undefined) throw new Error(`${argument} needs a value`);
      return next;
    };
    if (argument === '--live') options.live = true;
    else if (argument === '--port') options.port = value();
    else if (argument === '--host') options.host = value();
    else if (argument === '--timeout-ms') options.timeoutMs = Number(value());
    else throw new Error(`unknown argument ${argument}; usage: healthcheck.mjs [--live] [--port N] [--host H] [--timeout-ms N]`);
  }
  if (!Number.isInteger(options.timeoutMs) || options.timeoutMs <= 0) throw new Error('--timeout-ms takes a positive integer');
  return options;
}

/** member.json of the member directory, or undefined. */
function memberRecord(environment) {
  try {
    return JSON.parse(readFileSync(join(environment.STRAIT_DIR || '.', 'member.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** A port the member's own variables or record name; undefined when none does (or it is 0). */
function portOf(role, given, environment, record) {
  const fromVariable = given ?? (role === 'locator' || role === 'server' ? environment.STRAIT_HTTP_PORT : environment.STRAIT_PORT);
  if (fromVariable !== undefined && fromVariable !== '' && fromVariable !== '0') return Number(fromVariable);
  const address = role === 'router' ? record?.address : record?.httpAddress;
  if (Number.isInteger(address?.port) && address.port > 0) return address.port;
  if (role === 'router') return 12001;
  if (role === 'controller') return 9090;
  return undefined;
}

/** Where to connect: --host, else the member's bind address when it is one plain address, else loopback. */
function hostOf(given, environment) {
  if (given !== undefined) return given;
  const bind = environment.STRAIT_BIND_ADDRESS;
  if (bind !== undefined && /^[0-9.]+$/.test(bind) && bind !== '0.0.0.0') return bind;
  return '127.0.0.1';
}

function tcpCheck(host, port, timeoutMs) {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok, line) => {
      socket.destroy();
      resolve({ ok, line });
    };
    socket.setTimeout(timeoutMs, () => done(false, `no connection to ${host}:${port} within ${timeoutMs} ms`));
    socket.once('connect', () => done(true, `router accepts connections at ${host}:${port}`));
    socket.once('error', (error) => done(false, `connection to ${host}:${port} failed: ${error.message}`));
  });
}

async function httpCheck(role, host, port, timeoutMs, live) {
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/health`;
  let response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
    return { ok: false, line: `GET ${url} failed: ${cause}` };
  }
  const text = await response.text();
  if (live) return { ok: true, line: `${role} answers GET ${url} (${response.status})` };
  /** @type {{ status?: string, state?: string, code?: string }} */
  let body = {};
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: judged by the status alone below.
  }
  if (response.status !== 200) return { ok: false, line: `GET ${url} answered ${response.status} ${body.code ?? text.slice(0, 200)}` };
  if (role === 'controller') return { ok: body.status === 'ok', line: `controller at ${url}: ${body.status ?? text.slice(0, 200)}` };
  return { ok: body.state === 'ready', line: `${role} at ${url} is ${body.state ?? 'in an unknown state'}` };
}

async function main() {
  const options = parseArguments(process.argv.slice(2));
  const environment = process.env;
  const record = memberRecord(environment);
  const role = environment.STRAIT_ROLE || record?.role;
  if (!ROLES.includes(role)) {
    verdict(false, `no role: set STRAIT_ROLE (${ROLES.join(', ')}), or wait for member.json in ${environment.STRAIT_DIR || '.'}`);
    return;
  }
  const port = portOf(role, options.port, environment, record);
  if (port === undefined || !Number.isInteger(port) || port <= 0 || port > 65535) {
    verdict(false, `${role}: no admin port known yet (give --port, set STRAIT_HTTP_PORT, or wait for member.json in ${environment.STRAIT_DIR || '.'})`);
    return;
  }
  const host = hostOf(options.host, environment);
  const result = role === 'router'
    ? await tcpCheck(host, port, options.timeoutMs)
    : await httpCheck(role, host, port, options.timeoutMs, options.live);
  verdict(result.ok, result.line);
}

main().catch((error) => verdict(false, error instanceof Error ? error.message : String(error)));
