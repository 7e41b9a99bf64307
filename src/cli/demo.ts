// `strait demo`: runs a site on this machine so a newcomer can try Strait in one command.
//
// This first version starts ONE site — a locator and two servers hosting region TEST — through
// the same code path as `strait start`, in a temporary directory, on free ports. The lead
// engineer replaces it with the two-site, replicating-both-ways demo of the WAN release; main.ts
// only calls `registerDemo(program)`.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { formatAddress, type Address } from '../runtime/runtime.ts';
import { prepareStart, startCommand } from './member-commands.ts';
import { START_TIMEOUT_MS_DEFAULT, STOP_TIMEOUT_MS_DEFAULT, stopMember } from './process-control.ts';
import { CONFIG_FILE_NAME } from './member-files.ts';
import type { MemberRole } from '../config/member-config.ts';
import type { Output } from './client-commands.ts';
import { describeError, EXIT_FAILURE } from './report.ts';

const DEMO_REGION = 'TEST';
const DEMO_SERVERS = ['server1-1', 'server1-2'] as const;

interface Started {
  readonly role: MemberRole;
  readonly dir: string;
}

const output: Output = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

async function stopAll(started: readonly Started[]): Promise<void> {
  // Servers first, so the locator sees clean leaves.
  for (const member of [...started].reverse()) {
    try {
      await stopMember(member.dir, member.role, STOP_TIMEOUT_MS_DEFAULT, true);
      output.out(`stopped ${member.role} in ${member.dir}`);
    } catch (error) {
      const { code, message } = describeError(error);
      output.err(`error ${code}: ${message}`);
    }
  }
}

async function runDemo(): Promise<number> {
  const root = mkdtempSync(join(tmpdir(), 'strait-demo-'));
  const started: Started[] = [];
  output.out(`Strait demo: one site in ${root}`);

  const start = async (role: MemberRole, name: string, flags: Record<string, string>): Promise<Address | undefined> => {
    const dir = join(root, name);
    const request = prepareStart(role, { name, 'bind-address': '127.0.0.1', ...flags }, { dir }, START_TIMEOUT_MS_DEFAULT);
    const outcome = await startCommand(request, false, output);
    if (!outcome.ok) {
      output.err(`error ${outcome.error.code}: ${outcome.error.message}`);
      if (outcome.logTail.length > 0) output.err(outcome.logTail);
      return undefined;
    }
    started.push({ role, dir });
    return outcome.record.address;
  };

  const locator = await start('locator', 'locator-1', { port: '0', 'site-id': '1' });
  let ok = locator !== undefined;
  for (const name of DEMO_SERVERS) {
    if (!ok || locator === undefined) break;
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, CONFIG_FILE_NAME), `regions:\n  ${DEMO_REGION}: { type: replicate }\n`);
    ok = (await start('server', name, { 'server-port': '0', locators: formatAddress(locator) })) !== undefined;
  }
  if (!ok || locator === undefined) {
    await stopAll(started);
    return EXIT_FAILURE;
  }

  const at = `--locator '${formatAddress(locator)}'`;
  output.out('');
  output.out('Try, in another terminal:');
  output.out(`  npx strait put ${at} --region ${DEMO_REGION} --key greeting --value hello`);
  output.out(`  npx strait get ${at} --region ${DEMO_REGION} --key greeting`);
  output.out(`  npx strait status ${at}`);
  output.out('');
  output.out('Press Ctrl-C to stop the site.');

  await new Promise<void>((resolve) => {
    // Signal listeners don't keep Node's event loop alive; this timer does until Ctrl-C.
    const keepAlive = setInterval(() => {}, 60_000);
    const onSignal = (): void => {
      clearInterval(keepAlive);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  output.out('');
  await stopAll(started);
  return 0;
}

/** Registers `strait demo` on the program. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run a Strait site on this machine (a locator and two servers with region TEST) until Ctrl-C')
    .action(async () => {
      try {
        const status = await runDemo();
        if (status !== 0) process.exitCode = status;
      } catch (error) {
        const { code, message } = describeError(error);
        output.err(`error ${code}: ${message}`);
        process.exitCode = EXIT_FAILURE;
      }
    });
}
