// deploy/Dockerfile and .dockerignore, read as text (no Docker engine on the test machine): what
// the image must be — multi-stage on Node 24 slim, built with npm ci and npm run build, production
// dependencies only at run time, a non-root user, strait as the entrypoint, a data volume, the
// default ports, a health check — and that everything it copies from the build context is there
// and not ignored.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { REPOSITORY } from './kubernetes-schema.test-support.ts';
import { environmentOf, jsonForm, lastInstruction, parseDockerfile, type Stage } from './dockerfile.test-support.ts';

const dockerfile = parseDockerfile(readFileSync(join(REPOSITORY, 'deploy', 'Dockerfile'), 'utf8'));
const runtime = dockerfile.stages.at(-1)!;
const NODE_24_SLIM = /^node:24(\.\d+){0,2}-(bookworm-|trixie-)?slim(@sha256:[0-9a-f]{64})?$/;

function runs(stage: Stage, pattern: RegExp): boolean {
  return stage.instructions.some((instruction) => instruction.keyword === 'RUN' && pattern.test(instruction.arguments));
}

function stageNamed(name: string): Stage {
  const stage = dockerfile.stages.find((candidate) => candidate.name === name);
  assert.ok(stage !== undefined, `no stage ${name}`);
  return stage;
}

/** `COPY [--from=S] [--chown=..] src... dest` → { from, sources, destination (absolute, from the WORKDIR then) }. */
function copies(stage: Stage): { from: string | undefined; sources: string[]; destination: string }[] {
  const found: { from: string | undefined; sources: string[]; destination: string }[] = [];
  let directory = '/';
  for (const instruction of stage.instructions) {
    if (instruction.keyword === 'WORKDIR') directory = posix.resolve(directory, instruction.arguments);
    if (instruction.keyword !== 'COPY') continue;
    const words = instruction.arguments.split(/\s+/);
    const from = words.find((word) => word.startsWith('--from='))?.slice('--from='.length);
    const paths = words.filter((word) => !word.startsWith('--'));
    found.push({ from, sources: paths.slice(0, -1), destination: posix.resolve(directory, paths.at(-1)!) });
  }
  return found;
}

function workdir(stage: Stage): string {
  return lastInstruction(stage, 'WORKDIR')?.arguments ?? '/';
}

/** .dockerignore patterns as matchers of context paths (a pattern also excludes what is below it). */
function dockerignore(): ((path: string) => boolean)[] {
  const lines = readFileSync(join(REPOSITORY, '.dockerignore'), 'utf8').split('\n').map((line) => line.trim());
  return lines.filter((line) => line.length > 0 && !line.startsWith('#')).map((pattern) => {
    assert.ok(!pattern.startsWith('!'), 'exceptions (!) are not expected in .dockerignore');
    const parts = pattern.replace(/^\/+/, '').split('/').map((part) => (part === '**'
      ? '**'
      : part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '[^/]*').replaceAll('?', '[^/]')));
    // `**/` matches any number of directories, none included.
    const body = parts.join('/').replaceAll('**/', '(?:.*/)?').replaceAll('**', '.*');
    const expression = new RegExp(`^${body}(?:/.*)?$`);
    return (path: string) => expression.test(path);
  });
}

describe('the image (deploy/Dockerfile)', () => {
  it('is multi-stage, every stage on Node 24 slim', () => {
    assert.ok(dockerfile.stages.length >= 2, 'at least a build and a runtime stage');
    for (const stage of dockerfile.stages) assert.match(stage.image, NODE_24_SLIM, `stage ${stage.name}`);
  });

  it('builds with npm ci and npm run build, and runs with production dependencies only', () => {
    const build = dockerfile.stages.find((stage) => runs(stage, /\bnpm run build\b/));
    assert.ok(build !== undefined, 'a stage runs npm run build');
    assert.ok(runs(build, /\bnpm ci\b(?!.*--omit=dev)/), 'the build stage installs every dependency with npm ci');
    assert.ok(!runs(runtime, /\bnpm (ci|install)\b/), 'the runtime stage installs nothing itself');
    const modules = copies(runtime).find((copy) => copy.sources.some((source) => source.endsWith('node_modules')));
    assert.ok(modules?.from !== undefined, 'the runtime stage copies node_modules from a stage');
    assert.ok(runs(stageNamed(modules.from), /\bnpm ci\b.*--omit=dev/), `stage ${modules.from} installs production dependencies only`);
    const compiled = copies(runtime).find((copy) => copy.sources.some((source) => source.endsWith('/dist')));
    assert.equal(compiled?.from, build.name, 'the runtime stage takes dist/ from the build stage');
  });

  it('runs as a non-root user, with strait as the entrypoint and `run` (the role from STRAIT_ROLE) as the command', () => {
    const user = lastInstruction(runtime, 'USER')?.arguments;
    assert.ok(user !== undefined, 'USER');
    assert.match(user, /^[1-9][0-9]*(:[1-9][0-9]*)?$/, 'a numeric non-root user (Kubernetes runAsNonRoot can check it)');
    const entrypoint = jsonForm(lastInstruction(runtime, 'ENTRYPOINT')?.arguments ?? '');
    assert.ok(entrypoint !== undefined, 'ENTRYPOINT in JSON form (signals reach the process)');
    assert.equal(entrypoint.at(-1), 'strait');
    if (entrypoint.length > 1) assert.deepEqual(entrypoint.slice(0, -1), ['/usr/bin/tini', '--'], 'an init in front of strait: tini');
    if (entrypoint[0] === '/usr/bin/tini') assert.ok(runs(runtime, /apt-get install .*\btini\b/), 'tini is installed');
    assert.ok(runs(runtime, /ln -s \/opt\/strait\/bin\/strait\.js \/usr\/local\/bin\/strait/), 'strait is on the PATH');
    assert.deepEqual(jsonForm(lastInstruction(runtime, 'CMD')?.arguments ?? ''), ['run']);
    assert.equal(lastInstruction(runtime, 'STOPSIGNAL')?.arguments ?? 'SIGTERM', 'SIGTERM');
  });

  it('keeps the member directory in a volume owned by that user', () => {
    const directory = environmentOf(runtime)['STRAIT_DIR'];
    assert.ok(directory !== undefined, 'ENV STRAIT_DIR');
    assert.deepEqual(jsonForm(lastInstruction(runtime, 'VOLUME')?.arguments ?? ''), [directory]);
    const user = lastInstruction(runtime, 'USER')!.arguments;
    assert.ok(runs(runtime, new RegExp(`chown ${user} ${directory}\\b`)), `${directory} is owned by ${user}`);
    assert.equal(environmentOf(runtime)['STRAIT_LOG_FORMAT'], 'json');
  });

  it('exposes the default ports and checks health on the admin API', () => {
    const exposed = (lastInstruction(runtime, 'EXPOSE')?.arguments ?? '').split(/\s+/);
    for (const port of ['10334', '40404', '12001', '9090', '7070']) assert.ok(exposed.includes(port), `EXPOSE ${port}`);
    assert.ok(exposed.some((port) => /^5000(-\d+)?$/.test(port)), 'EXPOSE the gateway receiver ports from 5000');
    const healthcheck = lastInstruction(runtime, 'HEALTHCHECK')?.arguments ?? '';
    const command = jsonForm(healthcheck.replace(/^.*?\bCMD\s+/, ''));
    assert.deepEqual(command, ['node', '/opt/strait/healthcheck.mjs']);
    assert.ok(copies(runtime).some((copy) => copy.destination === command?.[1]), `the health check is copied to ${command?.[1]}`);
    assert.match(healthcheck, /--interval=\d+s/);
    assert.match(healthcheck, /--start-period=\d+s/);
  });

  it('copies only what the build context has and .dockerignore keeps', () => {
    const ignored = dockerignore();
    const isIgnored = (path: string): boolean => ignored.some((matches) => matches(path));
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'src/cli/main.ts', 'bin/strait.js', 'deploy/healthcheck.mjs']) {
      assert.ok(existsSync(join(REPOSITORY, needed)), `${needed} exists`);
      assert.ok(!isIgnored(needed), `.dockerignore leaves ${needed} in the build context`);
    }
    for (const excluded of ['node_modules', 'node_modules/yaml/package.json', '.git', 'dist/cli/main.js']) assert.ok(isIgnored(excluded), `.dockerignore keeps ${excluded} out`);
    for (const stage of dockerfile.stages) {
      for (const copy of copies(stage)) {
        if (copy.from === undefined) {
          for (const source of copy.sources) assert.ok(existsSync(join(REPOSITORY, source)) && (source === '.' || !isIgnored(source)), `COPY ${source} (stage ${stage.name})`);
          continue;
        }
        // From another stage: a path below its WORKDIR that its build made or took from the context.
        const from = stageNamed(copy.from);
        for (const source of copy.sources) {
          const inContext = posix.relative(workdir(from), source);
          assert.ok(!inContext.startsWith('..'), `COPY --from=${copy.from} ${source} is below its WORKDIR`);
          const made = ['node_modules', 'dist'].some((output) => inContext === output || inContext.startsWith(`${output}/`));
          assert.ok(made || (existsSync(join(REPOSITORY, inContext)) && !isIgnored(inContext)), `COPY --from=${copy.from} ${source}: ${inContext} is not in the build context`);
        }
      }
    }
  });
});
