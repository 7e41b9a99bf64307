// deploy/compose.yaml, checked without a Docker engine: its structure (services, build context and
// Dockerfile, mounted files, networks, health-gated start order), and each member's configuration
// built from the service's environment and mounted strait.yaml by the code `strait run` uses — two
// sites replicating both ways (a sender to the other site and a receiver on each), reaching each
// other only through the router.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { environmentVariableFor } from '../../src/cli/member-commands.ts';
import type { MemberConfig } from '../../src/config/member-config.ts';
import { DEPLOY_DIRECTORY, REPOSITORY } from './kubernetes-schema.test-support.ts';
import { isRole, memberConfigFromEnvironment, unknownStraitVariables } from './deploy.test-support.ts';

interface ComposeService {
  image?: string;
  build?: { context?: string; dockerfile?: string };
  environment?: Record<string, string | number | boolean | null> | string[];
  networks?: string[] | Record<string, unknown>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition?: string }> | string[];
}

interface ComposeFile {
  name?: string;
  services: Record<string, ComposeService>;
  networks?: Record<string, unknown>;
  volumes?: Record<string, unknown>;
}

const COMPOSE_FILE = join(DEPLOY_DIRECTORY, 'compose.yaml');

/** Compose's own interpolation of `${NAME:-default}`, `${NAME-default}`, `${NAME}` and `$$`, with nothing set. */
function interpolate(text: string, environment: Readonly<Record<string, string>> = {}): string {
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}/g, (match, name?: string, operator?: string, fallback?: string) => {
    if (match === '$$') return '$';
    const value = environment[name ?? ''];
    if (operator === ':-') return value === undefined || value === '' ? (fallback ?? '') : value;
    if (operator === '-') return value ?? fallback ?? '';
    return value ?? '';
  });
}

// Merge keys (`<<: *strait`) are YAML 1.1; compose resolves them, and so does `merge: true`.
const compose = parse(interpolate(readFileSync(COMPOSE_FILE, 'utf8')), { merge: true }) as ComposeFile;
const services = Object.entries(compose.services);

function environmentOf(service: ComposeService): Record<string, string> {
  const environment = service.environment ?? {};
  if (Array.isArray(environment)) return Object.fromEntries(environment.map((entry) => entry.split(/=(.*)/s, 2) as [string, string]));
  return Object.fromEntries(Object.entries(environment).map(([name, value]) => [name, value === null ? '' : String(value)]));
}

function networksOf(service: ComposeService): string[] {
  return Array.isArray(service.networks) ? service.networks : Object.keys(service.networks ?? { default: null });
}

/** `host:container[:ro]` bind mounts of host files: container path → host path. */
function boundFiles(service: ComposeService): Map<string, string> {
  const files = new Map<string, string>();
  for (const volume of service.volumes ?? []) {
    const [source = '', target = ''] = volume.split(':');
    if (source.startsWith('.') || source.startsWith('/')) files.set(target, resolve(DEPLOY_DIRECTORY, source));
  }
  return files;
}

/** The member configuration of a service, as `strait run` in its container would build it. */
function configOf(serviceName: string, service: ComposeService): MemberConfig {
  const environment = environmentOf(service);
  const configPath = environment[environmentVariableFor('config')];
  let file: { path: string; text: string } | undefined;
  if (configPath !== undefined) {
    const hostPath = boundFiles(service).get(configPath);
    assert.ok(hostPath !== undefined, `${serviceName}: STRAIT_CONFIG ${configPath} is not a mounted file`);
    file = { path: hostPath, text: readFileSync(hostPath, 'utf8') };
  }
  return memberConfigFromEnvironment(environment, file);
}

const ADMIN_PORT = (service: ComposeService): number => Number(environmentOf(service)[environmentVariableFor('http-port')]);

describe('the compose file (deploy/compose.yaml)', () => {
  it('has a router and a locator and a server for each of two sites, each configured by STRAIT_* variables', () => {
    assert.deepEqual(services.map(([name]) => name).sort(), ['router', 'site1-locator', 'site1-server', 'site2-locator', 'site2-server']);
    const names = new Set<string>();
    for (const [name, service] of services) {
      const environment = environmentOf(service);
      assert.ok(isRole(environment['STRAIT_ROLE']), `${name}: STRAIT_ROLE`);
      assert.ok(environment['STRAIT_NAME'] !== undefined && !names.has(environment['STRAIT_NAME']), `${name}: a member name of its own`);
      names.add(environment['STRAIT_NAME']);
      assert.deepEqual(unknownStraitVariables(Object.keys(environment)), [], `${name}: STRAIT_* variables Strait does not read`);
    }
  });

  it('builds every service from deploy/Dockerfile in the repository, as one image', () => {
    const images = new Set(services.map(([, service]) => service.image));
    assert.equal(images.size, 1, `one image: ${[...images].join(', ')}`);
    for (const [name, service] of services) {
      assert.ok(service.build?.context !== undefined && service.build.dockerfile !== undefined, `${name}: build context and dockerfile`);
      const context = resolve(DEPLOY_DIRECTORY, service.build.context);
      assert.equal(context, resolve(REPOSITORY), `${name}: the build context is the repository root`);
      assert.ok(existsSync(join(context, service.build.dockerfile)), `${name}: ${service.build.dockerfile} exists in the context`);
      assert.ok(existsSync(join(context, '.dockerignore')), 'the context has a .dockerignore');
    }
  });

  it('mounts files that exist, publishes the admin port, and starts each member once what it needs is healthy', () => {
    const declaredVolumes = new Set(Object.keys(compose.volumes ?? {}));
    for (const [name, service] of services) {
      for (const volume of service.volumes ?? []) {
        const [source = ''] = volume.split(':');
        if (source.startsWith('.') || source.startsWith('/')) assert.ok(existsSync(resolve(DEPLOY_DIRECTORY, source)), `${name}: ${source} exists`);
        else assert.ok(declaredVolumes.has(source), `${name}: volume ${source} is declared`);
      }
      assert.ok((service.volumes ?? []).some((volume) => volume.split(':')[1] === '/data'), `${name}: its member directory /data is a volume`);
      for (const network of networksOf(service)) assert.ok(compose.networks?.[network] !== undefined, `${name}: network ${network} is declared`);
      const role = environmentOf(service)['STRAIT_ROLE'];
      if (role === 'locator' || role === 'server') {
        for (const port of service.ports ?? []) assert.equal(Number(port.split(':').at(-1)), ADMIN_PORT(service), `${name}: publishes its admin port`);
      }
      const dependencies = service.depends_on ?? {};
      assert.ok(!Array.isArray(dependencies), `${name}: depends_on with conditions`);
      for (const [dependency, { condition }] of Object.entries(dependencies)) {
        assert.ok(compose.services[dependency] !== undefined, `${name} depends on ${dependency}, which is no service`);
        assert.equal(condition, 'service_healthy', `${name}: waits until ${dependency} is healthy (the image's HEALTHCHECK)`);
      }
    }
  });

  it('every member\'s configuration builds, and the two sites replicate both ways through the router', () => {
    const configs = new Map(services.map(([name, service]) => [name, configOf(name, service)]));
    const router = configs.get('router');
    assert.ok(router?.role === 'router');
    const routerPort = router.core.bind.port;
    for (const site of [1, 2]) {
      const other = 3 - site;
      const locator = configs.get(`site${site}-locator`);
      const server = configs.get(`site${site}-server`);
      assert.ok(locator?.role === 'locator' && server?.role === 'server');
      assert.equal(locator.core.site, site);
      assert.equal(server.core.site, site);
      assert.deepEqual(server.core.locators, [{ host: `site${site}-locator`, port: locator.core.bind.port }], `site ${site}: the server's locator`);
      // A sender to the other site, through which every region ships, and a receiver for the other's.
      assert.deepEqual(server.gatewaySenders.map((sender) => sender.remoteSiteId), [other], `site ${site}: a sender to site ${other}`);
      for (const region of server.core.regions) assert.ok((region.gatewaySenderIds ?? []).length > 0, `site ${site}: region ${region.name} ships`);
      assert.ok(server.gatewayReceiver !== undefined, `site ${site}: a gateway receiver`);
      assert.equal(server.gatewayReceiver.startPort, server.gatewayReceiver.endPort);
      assert.equal(server.gatewayReceiver.hostnameForClients, `site${site}-server`);
      // Every member registers with the router, by the name it has on the member's network.
      for (const [name, config] of [[`site${site}-locator`, locator], [`site${site}-server`, server]] as const) {
        assert.deepEqual(config.core.routers?.addresses, [{ host: 'router', port: routerPort }], `${name} registers with the router`);
        assert.equal(config.core.routers?.secret, router.core.secret, `${name}: the router's secret`);
        assert.equal(config.httpBind.port, ADMIN_PORT(compose.services[name]!));
        assert.equal(config.advertisedHost, name, `${name} advertises its service name`);
      }
      // The sites are on separate networks; only the router joins both.
      assert.deepEqual(networksOf(compose.services[`site${site}-locator`]!), [`site${site}`]);
      assert.deepEqual(networksOf(compose.services[`site${site}-server`]!), [`site${site}`]);
      assert.ok(networksOf(compose.services['router']!).includes(`site${site}`));
    }
  });
});
