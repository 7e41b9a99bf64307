// `discovery:` in strait.yaml: where a member finds its site's locators beyond the static
// `locators` list (JGroups' FILE_PING, JDBC_PING, DNS_PING and KUBE_PING):
//
//   discovery: { type: directory, path: /mnt/shared/strait }
//   discovery: { type: postgres, url: postgres://user@db/strait, table: strait_members }
//   discovery: { type: dns, name: locators.site1.example, record: srv }   # or a (+ port)
//   discovery: { type: kubernetes, namespace: nyc, label-selector: app=strait-locator, port-name: locator }
//
// Locators publish themselves where the store can be written (directory, postgres); every
// member reads. Parsing only: the plugins are in src/runtime/node/discovery.ts.

import type { Address } from '../runtime/runtime.ts';
import {
  asMapping, checkKeys, invalid, oneOf, parseAddresses, parsePort, parseString, type Origin,
} from './config-values.ts';

export const DISCOVERY_TYPES = ['directory', 'postgres', 'dns', 'kubernetes'] as const;
export type DiscoveryType = (typeof DISCOVERY_TYPES)[number];

export type DiscoveryConfig =
  | { readonly type: 'directory'; readonly path: string }
  | { readonly type: 'postgres'; readonly url: string; readonly table: string }
  | {
    readonly type: 'dns';
    readonly name: string;
    readonly record: 'srv' | 'a';
    /** The locator port for `a` records (SRV records carry their own). */
    readonly port: number;
    /** DNS servers to ask instead of the system's (`servers: [10.0.0.2]`). */
    readonly servers: readonly Address[];
  }
  | {
    readonly type: 'kubernetes';
    readonly namespace: string;
    readonly labelSelector: string;
    readonly portName: string;
    /** Default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT. */
    readonly apiUrl: string | undefined;
    readonly tokenFile: string;
    readonly caFile: string;
  };

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';
const TABLE_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const KEYS: Record<DiscoveryType, readonly string[]> = {
  directory: ['type', 'path'],
  postgres: ['type', 'url', 'table'],
  dns: ['type', 'name', 'record', 'port', 'servers'],
  kubernetes: ['type', 'namespace', 'label-selector', 'port-name', 'api-url', 'token-file', 'ca-file'],
};

/** Parses `discovery`; `defaultPort` is the locator port `a` records take. */
export function parseDiscovery(value: unknown, source: string, defaultPort: number): DiscoveryConfig {
  const settings = asMapping(value, { source, key: 'discovery', fromCommandLine: false });
  const at = (key: string): Origin => ({ source, key: `discovery.${key}`, fromCommandLine: false });
  if (settings['type'] === undefined) throw invalid(at('type'), `required: one of ${DISCOVERY_TYPES.join(', ')}`);
  const type = oneOf(DISCOVERY_TYPES)(settings['type'], at('type'));
  checkKeys(settings, KEYS[type], source, 'discovery');
  const text = (key: string, fallback?: string): string => {
    if (settings[key] === undefined) {
      if (fallback !== undefined) return fallback;
      throw invalid(at(key), `required for discovery type ${type}`);
    }
    return parseString(settings[key], at(key), 4096);
  };
  switch (type) {
    case 'directory':
      return { type, path: text('path') };
    case 'postgres': {
      const url = text('url');
      if (!/^postgres(ql)?:\/\//.test(url)) throw invalid(at('url'), 'expected postgres://user:password@host:port/database');
      const table = text('table', 'strait_members');
      if (!TABLE_PATTERN.test(table)) throw invalid(at('table'), `${JSON.stringify(table)} is not a plain SQL table name (letters, digits, _)`);
      return { type, url, table };
    }
    case 'dns': {
      const record = settings['record'] === undefined ? 'srv' : oneOf(['srv', 'a'] as const)(settings['record'], at('record'));
      return {
        type,
        name: text('name'),
        record,
        port: settings['port'] === undefined ? defaultPort : parsePort(settings['port'], at('port')),
        servers: settings['servers'] === undefined ? [] : parseAddresses(settings['servers'], at('servers'), 53),
      };
    }
    case 'kubernetes': {
      const apiUrl = settings['api-url'] === undefined ? undefined : text('api-url');
      if (apiUrl !== undefined && !/^https?:\/\//.test(apiUrl)) throw invalid(at('api-url'), 'expected https://host:port');
      return {
        type,
        namespace: text('namespace'),
        labelSelector: text('label-selector'),
        portName: text('port-name'),
        apiUrl,
        tokenFile: text('token-file', `${SERVICE_ACCOUNT}/token`),
        caFile: text('ca-file', `${SERVICE_ACCOUNT}/ca.crt`),
      };
    }
  }
}

/** What a discovery looks at, for log lines ("directory /mnt/shared/strait"). Never the secret. */
export function describeDiscovery(config: DiscoveryConfig): string {
  switch (config.type) {
    case 'directory': return `directory ${config.path}`;
    case 'postgres': return `postgres table ${config.table} at ${config.url.replace(/\/\/[^@/]*@/, '//')}`;
    case 'dns': return `DNS ${config.record.toUpperCase()} records of ${config.name}${config.servers.length > 0 ? ` (asking ${config.servers.map((server) => `${server.host}:${server.port}`).join(', ')})` : ''}`;
    case 'kubernetes': return `Kubernetes pods in ${config.namespace} matching ${config.labelSelector}, port ${config.portName}`;
  }
}
