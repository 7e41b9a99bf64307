// `strait tls init`: registered here, loaded on use (tls-init.ts brings @peculiar/x509, which
// no other command needs at startup).

import { resolve } from 'node:path';
import type { Command } from 'commander';

/** `strait tls init`. */
export function registerTlsCommands(
  program: Command, context: { action: <A extends unknown[]>(handler: (...args: A) => Promise<number | void>) => (...args: A) => Promise<void>; output: { out(text: string): void } },
): void {
  const tls = program.command('tls').description('TLS certificates for a deployment (docs/SECURITY.md)');
  tls.command('init')
    .description('create a development CA and certificates for the given sites\' locators and servers, routers, admins and clients')
    .requiredOption('--dir <dir>', 'where to write them (an existing CA there is reused)')
    .requiredOption('--sites <ids>', 'site ids, e.g. 1,2')
    .option('--hosts <names>', 'extra host names and addresses for every certificate, for HTTPS clients of the admin API (localhost and 127.0.0.1 are always in)')
    .option('--days <days>', 'validity of the certificates (default 365; the CA gets twice as long)')
    .option('--force', 'issue new certificates even where some exist')
    .action(context.action(async (options: { dir: string; sites: string; hosts?: string; days?: string; force?: boolean }) => {
      const { initTls, parseDays, parseSites } = await import('./tls-init.ts');
      const dir = resolve(options.dir);
      const result = await initTls({
        dir,
        sites: parseSites(options.sites),
        hosts: (options.hosts ?? '').split(',').map((host) => host.trim()).filter((host) => host.length > 0),
        days: parseDays(options.days),
        force: options.force === true,
      }, (done, total, file) => context.output.out(`[${done}/${total}] ${file}`));
      context.output.out(`${result.caCreated ? 'created a CA' : 'reused the CA'} in ${dir}: ${result.written.length} files written, ${result.kept.length} kept`);
      context.output.out(`a server of site N runs with: --tls-cert ${dir}/site-N/server.crt --tls-key ${dir}/site-N/server.key --tls-ca ${dir}/ca.crt`);
      context.output.out(`the CLI: STRAIT_TLS_CA=${dir}/ca.crt STRAIT_TLS_CERT=${dir}/admin.crt STRAIT_TLS_KEY=${dir}/admin.key strait status ...`);
      context.output.out(`keep ${dir}/ca.key away from the members: it issues certificates`);
    }));
}
