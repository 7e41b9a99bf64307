// `npm run bench [-- --quick]`: the site benchmark (put/get beside Redis primary→replica), then
// the WAN benchmark (two sites through the WAN proxy beside Redis and NATS JetStream).
// `--site` or `--wan` runs one of them; other arguments go to both.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const only = args.includes('--site') ? 'site' : args.includes('--wan') ? 'wan' : undefined;
const passed = args.filter((arg) => arg !== '--site' && arg !== '--wan');
const benches = [
  { name: 'site', script: fileURLToPath(new URL('./main.ts', import.meta.url)) },
  { name: 'wan', script: fileURLToPath(new URL('./wan/main.ts', import.meta.url)) },
].filter((bench) => only === undefined || bench.name === only);

let failed = 0;
for (const bench of benches) {
  console.log(`\n=== ${bench.name} benchmark ===\n`);
  const result = spawnSync(process.execPath, [bench.script, ...passed], { stdio: 'inherit' });
  if (result.status !== 0) {
    failed += 1;
    console.error(`${bench.name} benchmark exited with ${result.status ?? result.signal}`);
  }
}
process.exitCode = failed > 0 ? 1 : 0;
