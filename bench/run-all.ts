// `npm run bench [-- --quick]`: the site benchmark (put/get beside Redis primary→replica), then
// the WAN benchmark (two sites through the WAN proxy beside Redis and NATS JetStream).
// `--site` or `--wan` runs one of them; other arguments go to both.
//
// The peers both need are found (or installed, as root) before either starts, so a machine
// without them stops at once with the command to run, not after the site benchmark's minutes.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseOptions, peersWanted } from './options.ts';
import { ensurePeers, machinePeerHost, WITHOUT_PEERS_FLAG, type PeerName } from './peers.ts';
import { parseWanOptions, peersWanted as wanPeersWanted } from './wan/options.ts';

const args = process.argv.slice(2);
const only = args.includes('--site') ? 'site' : args.includes('--wan') ? 'wan' : undefined;
const passed = args.filter((arg) => arg !== '--site' && arg !== '--wan');

/** The peers a bench wants for these arguments; none when they don't parse (the bench says why). */
function peersFor<O>(parse: (args: readonly string[]) => O | undefined, wants: (options: O) => PeerName[]): () => PeerName[] {
  return () => {
    try {
      const options = parse(passed);
      return options === undefined ? [] : wants(options);
    } catch {
      return [];
    }
  };
}
const sitePeers = peersFor(parseOptions, peersWanted);
const wanPeers = peersFor(parseWanOptions, wanPeersWanted);

const benches = [
  { name: 'site', script: fileURLToPath(new URL('./main.ts', import.meta.url)), peers: sitePeers },
  { name: 'wan', script: fileURLToPath(new URL('./wan/main.ts', import.meta.url)), peers: wanPeers },
].filter((bench) => only === undefined || bench.name === only);

const wanted = [...new Set(benches.flatMap((bench) => bench.peers()))];
const check = await ensurePeers(wanted, passed.includes(WITHOUT_PEERS_FLAG), machinePeerHost());
if (check.kind === 'stop') {
  console.error(`bench: ${check.message}`);
  process.exit(1);
}

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
