// `npm run bench -- --profile`: where a Strait server spends its CPU during pipelined puts.
//
// A locator is started with `strait start`; the two servers run in the foreground under
// `node --cpu-prof bin/strait.js run server …` (children of the bench). After a warm-up the
// bench drives pipelined puts for a few seconds, then stops the servers with SIGTERM (a clean
// leave; Node writes the profile as the process exits). Only the samples taken while the puts
// ran are counted: V8's profile timestamps and process.hrtime read the same monotonic clock.
// The bench's own client is profiled in-process over the same window.

import { spawn } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '../src/client/client.ts';
import { summarizeProfile, type CpuProfile, type ProfileSummary, type Window } from './cpu-profile.ts';
import { Cleanup, waitForExit } from './processes.ts';
import { BENCH_REGION, STRAIT_BIN_PATH, benchServerConfig, startMember } from './strait-site.ts';
import { runLoadForSeconds, warmUp, Workload, type LoadRun } from './strait-load.ts';

const SERVER_READY_TIMEOUT_MS = 60_000;
const SERVER_STOP_TIMEOUT_MS = 30_000;

export interface ProfileOptions {
  readonly seconds: number;
  readonly pipelineDepth: number;
  readonly keyCount: number;
  readonly valueBytes: number;
  readonly limit: number;
}

export interface ServerProfile {
  readonly name: string;
  /** 'coordinator': took the client's puts and replicated them; 'replica': applied them. */
  readonly part: 'coordinator' | 'replica';
  readonly file: string;
  readonly summary: ProfileSummary;
}

export interface ProfileReport {
  readonly command: string;
  readonly load: LoadRun;
  readonly servers: readonly ServerProfile[];
  readonly client: ProfileSummary;
}

interface RunningServer {
  readonly name: string;
  readonly dir: string;
  readonly profileDir: string;
  readonly pid: number;
  readonly command: string;
}

function nowMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** `node --cpu-prof … bin/strait.js run server …` in the foreground; resolves once it is ready. */
async function runProfiledServer(cleanup: Cleanup, root: string, name: string, locators: string): Promise<RunningServer> {
  const dir = join(root, name);
  const profileDir = join(dir, 'cpu-profile');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'strait.yaml'), benchServerConfig());
  const args = [
    '--cpu-prof', '--cpu-prof-dir', profileDir,
    STRAIT_BIN_PATH, 'run', 'server', '--name', name, '--dir', dir, '--server-port', '0', '--bind-address', '127.0.0.1', '--locators', locators, '--log-format', 'json',
  ];
  const log = openSync(join(dir, `${name}.log`), 'a');
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', log, log] });
  closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not run ${process.execPath} for ${name}`);
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  cleanup.add(`profiled server ${name}`, pid, async () => {
    if (exited) return;
    child.kill('SIGTERM');
    if (!(await waitForExit(pid, SERVER_STOP_TIMEOUT_MS))) throw new Error(`profiled server ${name} did not exit after SIGTERM`);
  });
  const memberFile = join(dir, 'member.json');
  const deadline = performance.now() + SERVER_READY_TIMEOUT_MS;
  for (;;) {
    if (existsSync(memberFile)) {
      const record = JSON.parse(readFileSync(memberFile, 'utf8')) as { pid: number; state: string };
      if (record.pid === pid && record.state === 'ready') break;
      if (record.pid === pid && record.state === 'failed') throw new Error(`${name} failed to start; see ${join(dir, `${name}.log`)}`);
    }
    if (exited) throw new Error(`${name} exited before it was ready; see ${join(dir, `${name}.log`)}`);
    if (performance.now() >= deadline) throw new Error(`${name} not ready within ${SERVER_READY_TIMEOUT_MS} ms`);
    await sleep(50);
  }
  return { name, dir, profileDir, pid, command: `node ${args.map((arg) => (arg === STRAIT_BIN_PATH ? 'bin/strait.js' : arg)).join(' ')}` };
}

function readProfile(directory: string): { file: string; profile: CpuProfile } {
  const files = existsSync(directory) ? readdirSync(directory).filter((file) => file.endsWith('.cpuprofile')) : [];
  if (files.length !== 1) throw new Error(`expected one .cpuprofile in ${directory}, found ${files.length}`);
  const file = join(directory, files[0]!);
  return { file, profile: JSON.parse(readFileSync(file, 'utf8')) as CpuProfile };
}

/** Runs the profiling step under `root`; everything it starts is stopped before it returns. */
export async function runProfile(cleanup: Cleanup, root: string, repositoryRoot: string, options: ProfileOptions): Promise<ProfileReport> {
  const locator = await startMember(cleanup, 'locator', 'bench-locator', join(root, 'bench-locator'), ['--port', '0']);
  const servers = [
    await runProfiledServer(cleanup, root, 'bench-server-1', locator.address),
    await runProfiledServer(cleanup, root, 'bench-server-2', locator.address),
  ];

  const workload = new Workload(options.keyCount, options.valueBytes);
  const client = await connect({ locators: locator.address, name: 'bench-profile' });
  const session = new Session();
  let load: LoadRun;
  let window: Window;
  let clientProfile: CpuProfile;
  let coordinator: string | undefined;
  try {
    const region = client.region<string>(BENCH_REGION);
    await warmUp(region, workload, options.pipelineDepth, 2);
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    const fromMicros = nowMicros();
    load = await runLoadForSeconds(region, workload, 'put', options.seconds, options.pipelineDepth);
    window = { fromMicros, toMicros: nowMicros() };
    clientProfile = (await session.post('Profiler.stop')).profile as unknown as CpuProfile;
    coordinator = client.currentServer;
  } finally {
    session.disconnect();
    await client.close();
    // SIGTERM: a clean leave, after which Node writes the .cpuprofile.
    for (const server of [...servers].reverse()) await cleanup.stop(server.pid);
    await cleanup.stop(locator.pid);
  }

  const profiles: ServerProfile[] = servers.map((server) => {
    const { file, profile } = readProfile(server.profileDir);
    return {
      name: server.name,
      part: server.name === coordinator ? 'coordinator' : 'replica',
      file,
      summary: summarizeProfile(profile, repositoryRoot, options.limit, window),
    };
  });
  profiles.sort((a, b) => (a.part === b.part ? 0 : a.part === 'coordinator' ? -1 : 1));
  return {
    command: servers[0]!.command,
    load,
    servers: profiles,
    client: summarizeProfile(clientProfile, repositoryRoot, options.limit, window),
  };
}
