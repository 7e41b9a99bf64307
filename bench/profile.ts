// `npm run bench -- --profile`: where a Strait server spends its CPU during pipelined puts.
//
// A locator is started with `strait start`; the two servers run in the foreground under
// `node --cpu-prof bin/strait.js run server …` (children of the bench). After a warm-up the
// bench drives pipelined puts for a few seconds, then stops the servers with SIGTERM (a clean
// leave; Node writes the profile as the process exits). Only the samples taken while the puts
// ran are counted: V8's profile timestamps and process.hrtime read the same monotonic clock.
// The bench's own client is profiled in-process over the same window.

import { Session } from 'node:inspector/promises';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../src/client/connect.ts';
import { summarizeProfile, type CpuProfile, type ProfileSummary, type Window } from './cpu-profile.ts';
import type { Cleanup } from './processes.ts';
import { BENCH_REGION, benchServerConfig, startMember, startProfiledServer } from './strait-site.ts';
import { runLoadForSeconds, warmUp, Workload, type LoadRun } from './strait-load.ts';


export interface ProfileOptions {
  readonly seconds: number;
  readonly operation: 'put' | 'get';
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

/** A profiled server with the bench's region declared. */
async function runProfiledServer(cleanup: Cleanup, root: string, name: string, locators: string): Promise<RunningServer> {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'strait.yaml'), benchServerConfig());
  const server = await startProfiledServer(cleanup, name, dir, locators);
  return { name, dir, profileDir: server.profileDir, pid: server.pid, command: server.command };
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
    load = await runLoadForSeconds(region, workload, options.operation, options.seconds, options.pipelineDepth);
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
