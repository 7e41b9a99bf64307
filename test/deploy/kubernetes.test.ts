// deploy/kubernetes, checked without a cluster: every object against the Kubernetes schemas
// (kubernetes-schema.test-support.ts: types, and unknown fields, which the OpenAPI schemas alone
// let through), and what no schema can see — the references between objects (Service selectors
// and pod labels, ports by name, the ConfigMap and its keys, the service account's RBAC, probes
// on the admin port) and the members' own configuration, built from each container's environment
// and the ConfigMap's strait.yaml by the code `strait run` uses.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IStatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import type { IRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import type { IRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { parse } from 'yaml';
import { MEMBER_FLAGS, environmentVariableFor } from '../../src/cli/member-commands.ts';
import {
  KUBERNETES_DIRECTORY, REPOSITORY, describeManifest, loadManifests, validateManifests, type Manifest,
} from './kubernetes-schema.test-support.ts';
import { memberConfigFromEnvironment, unknownStraitVariables } from './deploy.test-support.ts';
import { environmentOf, jsonForm, lastInstruction, parseDockerfile } from './dockerfile.test-support.ts';

const manifests = loadManifests(KUBERNETES_DIRECTORY);
const ofKind = <T>(kind: string): T[] => manifests.filter((manifest) => manifest.document['kind'] === kind).map((manifest) => manifest.document as T);
const statefulSets = ofKind<IStatefulSet>('StatefulSet');
const services = ofKind<IService>('Service');
const configMaps = ofKind<IConfigMap>('ConfigMap');

const dockerfile = parseDockerfile(readFileSync(join(REPOSITORY, 'deploy', 'Dockerfile'), 'utf8'));
const image = dockerfile.stages.at(-1)!;
/** The environment the image sets (STRAIT_DIR, STRAIT_LOG_FORMAT, ...), under each container's own. */
const imageEnvironment = environmentOf(image);

function name(object: { metadata?: { name?: string } }): string {
  return object.metadata?.name ?? '(unnamed)';
}

function onlyContainer(statefulSet: IStatefulSet): IContainer {
  const containers = statefulSet.spec?.template.spec?.containers ?? [];
  assert.equal(containers.length, 1, `${name(statefulSet)}: one container`);
  return containers[0]!;
}

function podLabels(statefulSet: IStatefulSet): Record<string, string> {
  return statefulSet.spec?.template.metadata?.labels ?? {};
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  return selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/** A Service or probe port (a number, or the name of a container port) as the container's port number. */
function containerPort(container: IContainer, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return (container.ports ?? []).some((candidate) => candidate.containerPort === port) ? port : undefined;
  return (container.ports ?? []).find((candidate) => candidate.name === port)?.containerPort;
}

function namedPort(container: IContainer, portName: string): number {
  const port = containerPort(container, portName);
  assert.ok(port !== undefined, `${container.name}: no container port named ${portName}`);
  return port;
}

/** A container's environment as the pod of ordinal 0 would see it; fieldRefs filled in. */
function podEnvironment(statefulSet: IStatefulSet, container: IContainer): Record<string, string> {
  const fields: Record<string, string> = {
    'metadata.name': `${name(statefulSet)}-0`,
    'metadata.namespace': statefulSet.metadata?.namespace ?? 'default',
    'status.podIP': '10.244.1.7',
  };
  const environment: Record<string, string> = { ...imageEnvironment };
  for (const variable of container.env ?? []) {
    if (variable.value !== undefined) environment[variable.name] = variable.value;
    else if (variable.valueFrom?.fieldRef !== undefined) {
      const value = fields[variable.valueFrom.fieldRef.fieldPath];
      assert.ok(value !== undefined, `${name(statefulSet)}: ${variable.name} reads field ${variable.valueFrom.fieldRef.fieldPath}, which this test does not know`);
      environment[variable.name] = value;
    } else environment[variable.name] = '';
  }
  return environment;
}

/** The file at `path` inside the container, if a ConfigMap volume provides it. */
function configMapFile(statefulSet: IStatefulSet, container: IContainer, path: string): { text: string; configMap: string; key: string } {
  const volumes = statefulSet.spec?.template.spec?.volumes ?? [];
  for (const mount of container.volumeMounts ?? []) {
    const relativePath = posix.relative(mount.mountPath, path);
    if (relativePath.startsWith('..') || relativePath === '') continue;
    const volume = volumes.find((candidate) => candidate.name === mount.name);
    const mapName = volume?.configMap?.name;
    if (mapName === undefined) continue;
    const configMap = configMaps.find((candidate) => name(candidate) === mapName);
    assert.ok(configMap !== undefined, `${name(statefulSet)}: volume ${mount.name} uses ConfigMap ${mapName}, which is not in deploy/kubernetes`);
    const text = configMap.data?.[relativePath];
    assert.ok(text !== undefined, `${name(statefulSet)}: ConfigMap ${mapName} has no key ${relativePath} for ${path}`);
    return { text, configMap: mapName, key: relativePath };
  }
  assert.fail(`${name(statefulSet)}: ${path} is on no ConfigMap volume`);
}

describe('the Kubernetes manifests (deploy/kubernetes)', () => {
  it('are valid against the Kubernetes schemas: types, enums and no unknown field', async () => {
    assert.ok(manifests.length >= 10, `found ${manifests.length} objects`);
    assert.deepEqual(await validateManifests(manifests), []);
  });

  it('the validation refuses a typo\'d field, a wrong type and an unknown kind', async () => {
    const broken: Manifest[] = structuredClone(manifests);
    const statefulSet = broken.find((manifest) => manifest.document['kind'] === 'StatefulSet')!;
    const spec = statefulSet.document['spec'] as { replicas: unknown; template: { spec: { containers: Record<string, unknown>[] } } };
    const container = spec.template.spec.containers[0]!;
    container['readinesProbe'] = container['readinessProbe'];
    delete container['readinessProbe'];
    spec.replicas = 'three';
    const service = broken.find((manifest) => manifest.document['kind'] === 'Service')!;
    service.document['kind'] = 'Servce';
    const problems = await validateManifests(broken);
    const about = (text: string): boolean => problems.some((problem) => problem.includes(text));
    assert.ok(about('readinesProbe'), problems.join('\n'));
    assert.ok(about('replicas must be integer'), problems.join('\n'));
    assert.ok(about('Servce'), problems.join('\n'));
    assert.ok(problems.every((problem) => problem.startsWith(describeManifest(statefulSet)) || problem.startsWith(service.file)), problems.join('\n'));
  });

  it('kustomization.yaml lists every manifest file, namespace first and locators before servers', () => {
    const kustomization = parse(readFileSync(join(KUBERNETES_DIRECTORY, 'kustomization.yaml'), 'utf8')) as Record<string, unknown>;
    assert.equal(kustomization['apiVersion'], 'kustomize.config.k8s.io/v1beta1');
    assert.equal(kustomization['kind'], 'Kustomization');
    const resources = kustomization['resources'] as string[];
    const files = [...new Set(manifests.map((manifest) => posix.basename(manifest.file)))];
    assert.deepEqual([...resources].sort(), files.sort());
    for (const resource of resources) assert.ok(existsSync(join(KUBERNETES_DIRECTORY, resource)), resource);
    assert.equal(resources[0], 'namespace.yaml');
    assert.ok(resources.indexOf('locator.yaml') < resources.indexOf('server.yaml'));
  });

  it('puts every namespaced object in the one namespace it creates', () => {
    const namespaces = ofKind<{ metadata: { name: string } }>('Namespace');
    assert.equal(namespaces.length, 1);
    const namespace = namespaces[0]!.metadata.name;
    for (const manifest of manifests.filter((candidate) => candidate.document['kind'] !== 'Namespace')) {
      assert.equal((manifest.document['metadata'] as { namespace?: string }).namespace, namespace, describeManifest(manifest));
    }
    for (const binding of ofKind<IRoleBinding>('RoleBinding')) {
      for (const subject of binding.subjects ?? []) assert.equal(subject.namespace, namespace, `${name(binding)} subject ${subject.name}`);
    }
  });

  it('each Service selects the pods of one StatefulSet, at ports its container declares', () => {
    for (const service of services) {
      const selected = statefulSets.filter((statefulSet) => selects(service.spec?.selector, podLabels(statefulSet)));
      assert.equal(selected.length, 1, `Service ${name(service)} selects ${selected.map(name).join(', ') || 'no StatefulSet'}`);
      const container = onlyContainer(selected[0]!);
      for (const port of service.spec?.ports ?? []) {
        assert.ok(containerPort(container, port.targetPort ?? port.port) !== undefined, `Service ${name(service)} port ${port.name}: target ${port.targetPort} is no port of ${name(selected[0]!)}`);
      }
    }
    for (const budget of ofKind<IPodDisruptionBudget>('PodDisruptionBudget')) {
      const selected = statefulSets.filter((statefulSet) => selects(budget.spec?.selector?.matchLabels, podLabels(statefulSet)));
      assert.equal(selected.length, 1, `PodDisruptionBudget ${name(budget)} selects ${selected.map(name).join(', ') || 'nothing'}`);
    }
  });

  it('each StatefulSet selects its own pods and is governed by a headless Service of them', () => {
    for (const statefulSet of statefulSets) {
      assert.ok(selects(statefulSet.spec?.selector.matchLabels, podLabels(statefulSet)), `${name(statefulSet)}: selector does not match its pod labels`);
      const others = statefulSets.filter((other) => other !== statefulSet && selects(statefulSet.spec?.selector.matchLabels, podLabels(other)));
      assert.deepEqual(others.map(name), [], `${name(statefulSet)}: its selector also matches other StatefulSets' pods`);
      const governing = services.find((service) => name(service) === statefulSet.spec?.serviceName);
      assert.ok(governing !== undefined, `${name(statefulSet)}: serviceName ${statefulSet.spec?.serviceName} is no Service`);
      assert.equal(governing.spec?.clusterIP, 'None', `${name(governing)} must be headless`);
      assert.ok(selects(governing.spec?.selector, podLabels(statefulSet)), `${name(governing)} does not select ${name(statefulSet)}'s pods`);
    }
  });

  it('probes: readiness GETs /ready on the admin port; liveness and startup GET /health there; the image HEALTHCHECK runs healthcheck.mjs', () => {
    const healthcheckCommand = jsonForm(lastInstruction(image, 'HEALTHCHECK')!.arguments.replace(/^.*\bCMD\s+/, ''))!;
    const healthcheckPath = healthcheckCommand.find((part) => part.endsWith('healthcheck.mjs'));
    assert.ok(healthcheckPath !== undefined, 'the Dockerfile HEALTHCHECK runs healthcheck.mjs');
    for (const statefulSet of statefulSets) {
      const container = onlyContainer(statefulSet);
      const environment = podEnvironment(statefulSet, container);
      const adminPort = Number(environment[environmentVariableFor('http-port')]);
      assert.equal(namedPort(container, 'admin'), adminPort, `${name(statefulSet)}: container port admin is STRAIT_HTTP_PORT`);
      const readiness: IProbe | undefined = container.readinessProbe;
      // GET /ready answers 200 only once the member serves (src/admin/http.ts).
      assert.equal(readiness?.httpGet?.path, '/ready', `${name(statefulSet)}: readiness probe path`);
      assert.equal(containerPort(container, readiness?.httpGet?.port), adminPort, `${name(statefulSet)}: readiness asks the admin port`);
      for (const [kind, probe] of [['liveness', container.livenessProbe], ['startup', container.startupProbe]] as const) {
        assert.equal(probe?.httpGet?.path, '/health', `${name(statefulSet)}: ${kind} probe path`);
        assert.equal(containerPort(container, probe?.httpGet?.port), adminPort, `${name(statefulSet)}: ${kind} probe port`);
      }
    }
  });

  it('volumes: every mount has a volume, the ConfigMap exists, the member directory is a persistent volume', () => {
    const memberDirectory = imageEnvironment['STRAIT_DIR'];
    assert.ok(memberDirectory !== undefined, 'the image sets STRAIT_DIR');
    for (const statefulSet of statefulSets) {
      const container = onlyContainer(statefulSet);
      const volumes = new Set((statefulSet.spec?.template.spec?.volumes ?? []).map((volume) => volume.name));
      const claims = new Set((statefulSet.spec?.volumeClaimTemplates ?? []).map((claim) => claim.metadata?.name));
      for (const mount of container.volumeMounts ?? []) {
        assert.ok(volumes.has(mount.name) || claims.has(mount.name), `${name(statefulSet)}: mount ${mount.name} has no volume`);
      }
      for (const volume of statefulSet.spec?.template.spec?.volumes ?? []) {
        if (volume.configMap !== undefined) assert.ok(configMaps.some((map) => name(map) === volume.configMap?.name), `${name(statefulSet)}: ConfigMap ${volume.configMap.name} is missing`);
      }
      const dataMount = (container.volumeMounts ?? []).find((mount) => mount.mountPath === (podEnvironment(statefulSet, container)['STRAIT_DIR'] ?? memberDirectory));
      assert.ok(dataMount !== undefined && claims.has(dataMount.name), `${name(statefulSet)}: the member directory ${memberDirectory} is not a volume claim`);
      const config = podEnvironment(statefulSet, container)[environmentVariableFor('config')];
      assert.ok(config !== undefined, `${name(statefulSet)}: STRAIT_CONFIG is set`);
      configMapFile(statefulSet, container, config);
    }
  });

  it('each member builds its configuration from its environment and the ConfigMap, at the ports its container declares', () => {
    const locatorSet = statefulSets.find((statefulSet) => podLabels(statefulSet)['app.kubernetes.io/component'] === 'locator')!;
    for (const statefulSet of statefulSets) {
      const container = onlyContainer(statefulSet);
      const environment = podEnvironment(statefulSet, container);
      const file = configMapFile(statefulSet, container, environment[environmentVariableFor('config')]!);
      const config = memberConfigFromEnvironment(environment, { path: `ConfigMap ${file.configMap} ${file.key}`, text: file.text });
      assert.equal(config.name, `${name(statefulSet)}-0`);
      assert.equal(config.advertisedHost, '10.244.1.7', `${name(statefulSet)}: advertises its pod IP`);
      assert.equal(config.httpBind.port, namedPort(container, 'admin'));
      assert.equal(config.logFormat, 'json');
      if (config.role === 'locator') assert.equal(config.core.bind.port, namedPort(container, 'locator'));
      else if (config.role === 'server') {
        assert.equal(config.core.bind.port, namedPort(container, 'server'));
        const receiver = config.gatewayReceiver;
        assert.ok(receiver !== undefined, `${name(statefulSet)}: a gateway receiver`);
        assert.equal(receiver.startPort, namedPort(container, 'gateway'));
        assert.equal(receiver.endPort, receiver.startPort, 'one receiver port, the one the container and its Service expose');
        assert.ok(config.gatewaySenders.length > 0 && config.gatewaySenders.every((sender) => sender.remoteSiteId !== 1), 'senders to other sites');
      } else assert.fail(`${name(statefulSet)}: a ${config.role} in the site's manifests`);
      // Kubernetes discovery: the locators' pods, their port by name, in the pod's namespace.
      const discovery = config.discovery;
      assert.ok(discovery?.type === 'kubernetes', `${name(statefulSet)}: kubernetes discovery`);
      assert.equal(discovery.namespace, statefulSet.metadata?.namespace);
      const selector = Object.fromEntries(discovery.labelSelector.split(',').map((term) => term.split('=') as [string, string]));
      assert.ok(selects(selector, podLabels(locatorSet)), `${name(statefulSet)}: label-selector ${discovery.labelSelector} does not select the locators`);
      assert.deepEqual(statefulSets.filter((other) => selects(selector, podLabels(other))).map(name), [name(locatorSet)]);
      namedPort(onlyContainer(locatorSet), discovery.portName);
    }
  });

  it('the pods\' service account may list pods, which kubernetes discovery does', () => {
    for (const statefulSet of statefulSets) {
      const account = statefulSet.spec?.template.spec?.serviceAccountName;
      assert.ok(ofKind<{ metadata: { name: string } }>('ServiceAccount').some((candidate) => candidate.metadata.name === account), `${name(statefulSet)}: service account ${account}`);
      const roles = ofKind<IRoleBinding>('RoleBinding')
        .filter((binding) => (binding.subjects ?? []).some((subject) => subject.kind === 'ServiceAccount' && subject.name === account))
        .map((binding) => ofKind<IRole>('Role').find((role) => binding.roleRef.kind === 'Role' && name(role) === binding.roleRef.name));
      const canList = roles.some((role) => (role?.rules ?? []).some((rule) =>
        (rule.apiGroups ?? []).includes('') && (rule.resources ?? []).includes('pods') && rule.verbs.includes('list')));
      assert.ok(canList, `${name(statefulSet)}: service account ${account} can't list pods`);
      assert.notEqual(statefulSet.spec?.template.spec?.automountServiceAccountToken, false, `${name(statefulSet)}: discovery needs the token`);
    }
  });

  it('pods run as the image\'s non-root user, read-only, with resources, and without service links', () => {
    const user = lastInstruction(image, 'USER')!.arguments;
    const [uid, gid] = user.split(':').map(Number);
    for (const statefulSet of statefulSets) {
      const pod = statefulSet.spec?.template.spec;
      assert.equal(pod?.securityContext?.runAsNonRoot, true, name(statefulSet));
      assert.equal(pod?.securityContext?.runAsUser, uid, `${name(statefulSet)}: runAsUser is the image's USER`);
      assert.equal(pod?.securityContext?.runAsGroup, gid, name(statefulSet));
      assert.equal(pod?.securityContext?.fsGroup, gid, `${name(statefulSet)}: its volumes are writable by the user`);
      // Kubernetes would set STRAIT_<SERVICE>_PORT=tcp://... for every Service; some read as flags.
      assert.equal(pod?.enableServiceLinks, false, `${name(statefulSet)}: enableServiceLinks`);
      const container = onlyContainer(statefulSet);
      assert.equal(container.securityContext?.allowPrivilegeEscalation, false, name(statefulSet));
      assert.equal(container.securityContext?.readOnlyRootFilesystem, true, name(statefulSet));
      assert.deepEqual(container.securityContext?.capabilities?.drop, ['ALL'], name(statefulSet));
      for (const kind of ['requests', 'limits'] as const) {
        for (const resource of ['cpu', 'memory']) assert.ok(container.resources?.[kind]?.[resource] !== undefined, `${name(statefulSet)}: ${kind}.${resource}`);
      }
    }
  });

  it('sets only STRAIT_* variables Strait reads, and no Service would inject one', () => {
    for (const statefulSet of statefulSets) {
      assert.deepEqual(unknownStraitVariables((onlyContainer(statefulSet).env ?? []).map((variable) => variable.name)), [], name(statefulSet));
    }
    // The variables a Service named S injects (were service links on): S_SERVICE_HOST, S_PORT, ...
    const flagVariables = new Set([...MEMBER_FLAGS.map((flag) => flag.key), 'dir', 'config', 'role'].map(environmentVariableFor));
    for (const service of services) {
      const prefix = name(service).toUpperCase().replaceAll('-', '_');
      const injected = [`${prefix}_SERVICE_HOST`, `${prefix}_SERVICE_PORT`, `${prefix}_PORT`,
        ...(service.spec?.ports ?? []).flatMap((port) => [`${prefix}_SERVICE_PORT_${(port.name ?? '').toUpperCase().replaceAll('-', '_')}`, `${prefix}_PORT_${port.port}_TCP`])];
      assert.deepEqual(injected.filter((variable) => flagVariables.has(variable)), [], `Service ${name(service)}`);
    }
  });
});
