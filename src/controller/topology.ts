// A replication topology: the napkin of the replication-as-a-service seed in JSON. Sites are
// circles (a name, the admin API of one of its locators, the receiver's port range), edges are
// one-way arrows, regions and tuning apply to every site. `checkTopology` lists every problem
// with its JSON path and code at once, so a caller fixes them in one round trip.

import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { StraitError, type ErrorCode } from '../errors.ts';

const Name = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' });
const Port = Type.Integer({ minimum: 1, maximum: 65535 });
const HostPort = Type.String({ minLength: 1, maxLength: 300 });

export const TopologySite = Type.Object(
  {
    /** The admin HTTP API of one of the site's locators: http://host:port. */
    admin: Type.String({ minLength: 1, maxLength: 2048, pattern: '^https?://' }),
    /** The site's admin-token, if it has one. */
    token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    receiver: Type.Optional(Type.Object(
      {
        'start-port': Port,
        'end-port': Port,
        /** What other sites connect to: the public name or address of a NAT (the seed's NAT mapping). */
        'hostname-for-clients': Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
        'bind-address': Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
        /** The site is behind a NAT that only lets connections out: its receivers dial out (docs/NAT.md). */
        'dial-out': Type.Optional(Type.Boolean()),
      },
      { additionalProperties: false },
    )),
  },
  { additionalProperties: false },
);
export type TopologySite = Static<typeof TopologySite>;

export const TopologyRegion = Type.Object(
  { type: Type.Optional(Type.Literal('replicate')), persistent: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);

export const Tuning = Type.Object(
  {
    'batch-size': Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
    'batch-time-interval': Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000 })),
    'maximum-queue-memory': Type.Optional(Type.Integer({ minimum: 1, maximum: 1_048_576 })),
    'maximum-queue-disk': Type.Optional(Type.Integer({ minimum: 1, maximum: 1_073_741_824 })),
    /** Persistent sender queues (default true: a replication service does not lose queued events on a restart). */
    persistent: Type.Optional(Type.Boolean()),
    compression: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type Tuning = Static<typeof Tuning>;

export const SITES_MAX = 64;
export const EDGES_MAX = SITES_MAX * (SITES_MAX - 1);
export const REGIONS_MAX = 256;

export const Topology = Type.Object(
  {
    name: Type.Optional(Name),
    sites: Type.Record(Name, TopologySite, { minProperties: 1, maxProperties: SITES_MAX }),
    edges: Type.Array(Type.Tuple([Name, Name]), { maxItems: EDGES_MAX }),
    regions: Type.Record(Name, TopologyRegion, { minProperties: 1, maxProperties: REGIONS_MAX }),
    tuning: Type.Optional(Tuning),
  },
  { additionalProperties: false },
);
export type Topology = Static<typeof Topology> & { readonly name: string };

export const TopologyName = Name;
export { HostPort };

/** One problem of a topology: where (a JSON pointer), what code, and what is wrong. */
export interface Problem {
  readonly path: string;
  readonly code: ErrorCode;
  readonly message: string;
}

function problem(path: string, code: ErrorCode, details: Record<string, string | number>): Problem {
  return { path, code, message: new StraitError(code, details).message };
}

/** What JSON Schema's complaint means, as one of our codes. */
function codeOf(error: { schema: { [key: string]: unknown }; message: string; value: unknown }): ErrorCode {
  if (error.message.includes('Unexpected property')) return 'STRAIT_TOPOLOGY_FIELD_UNKNOWN';
  if (error.message.startsWith('Expected required property')) return 'STRAIT_TOPOLOGY_FIELD_REQUIRED';
  if (error.value === undefined) return 'STRAIT_TOPOLOGY_FIELD_REQUIRED';
  return 'STRAIT_TOPOLOGY_FIELD_INVALID';
}

/**
 * Every problem of `value` as a topology named `name` (the URL's): the schema's (required,
 * unknown and mistyped fields, ranges), then the graph's (edges naming unknown sites, self
 * edges, duplicates, port ranges upside down, a receiver missing where an edge arrives).
 */
export function checkTopology(value: unknown, name: string): Problem[] {
  const problems: Problem[] = [];
  if (!Value.Check(TopologyName, name)) problems.push(problem('/name', 'STRAIT_TOPOLOGY_FIELD_INVALID', { path: '/name', reason: `${JSON.stringify(name)} must start with a letter or digit and hold only letters, digits, '.', '_' and '-' (at most 64)` }));
  const seen = new Set<string>();
  for (const error of Value.Errors(Topology, value)) {
    const path = error.path === '' ? '/' : error.path;
    // A union's or record's every branch complains; one line per path is enough.
    if (seen.has(path)) continue;
    seen.add(path);
    const code = codeOf(error as never);
    problems.push(problem(path, code, { path, reason: error.message }));
    if (problems.length >= 100) return problems;
  }
  if (typeof value !== 'object' || value === null) return problems;
  // The graph's checks run on whatever parts are well formed, so one answer lists everything.
  const body = value as Record<string, unknown>;
  const topology = {
    name: typeof body['name'] === 'string' ? body['name'] : undefined,
    sites: (typeof body['sites'] === 'object' && body['sites'] !== null ? body['sites'] : {}) as Static<typeof Topology>['sites'],
    edges: (Array.isArray(body['edges']) ? body['edges'] : []).filter((edge): edge is [string, string] => Array.isArray(edge) && edge.length === 2 && typeof edge[0] === 'string' && typeof edge[1] === 'string'),
  };
  if (topology.name !== undefined && topology.name !== name) {
    problems.push(problem('/name', 'STRAIT_TOPOLOGY_FIELD_INVALID', { path: '/name', reason: `the body names topology ${topology.name}, the URL ${name}` }));
  }
  const sites = new Set(Object.keys(topology.sites));
  const edges = new Set<string>();
  topology.edges.forEach(([from, to], index) => {
    const path = `/edges/${index}`;
    for (const [end, site] of [[0, from], [1, to]] as const) {
      if (!sites.has(site)) problems.push(problem(`${path}/${end}`, 'STRAIT_TOPOLOGY_EDGE_UNKNOWN_SITE', { path: `${path}/${end}`, site, sites: [...sites].join(', ') }));
    }
    if (from === to) problems.push(problem(path, 'STRAIT_TOPOLOGY_EDGE_SELF', { path, site: from }));
    const key = `${from}\u0000${to}`;
    if (edges.has(key)) problems.push(problem(path, 'STRAIT_TOPOLOGY_EDGE_DUPLICATE', { path, from, to }));
    edges.add(key);
  });
  for (const [siteName, site] of Object.entries(topology.sites)) {
    const receiver = typeof site === 'object' && site !== null && typeof site.receiver === 'object' && site.receiver !== null
      && typeof site.receiver['start-port'] === 'number' && typeof site.receiver['end-port'] === 'number' ? site.receiver : undefined;
    const declared = typeof site === 'object' && site !== null && site.receiver !== undefined;
    const path = `/sites/${siteName}/receiver`;
    if (receiver !== undefined && receiver['start-port'] > receiver['end-port']) {
      problems.push(problem(`${path}/end-port`, 'STRAIT_TOPOLOGY_FIELD_INVALID', { path: `${path}/end-port`, reason: `end-port ${receiver['end-port']} is below start-port ${receiver['start-port']}` }));
    }
    const receives = topology.edges.some(([, to]) => to === siteName);
    if (receives && !declared) {
      problems.push(problem(path, 'STRAIT_TOPOLOGY_FIELD_REQUIRED', { path, reason: `site ${siteName} receives (an edge arrives there): give its receiver's start-port and end-port` }));
    }
  }
  return problems;
}

/** The topology, checked: STRAIT_TOPOLOGY_INVALID listing every problem otherwise. */
export function parseTopology(value: unknown, name: string): Topology {
  const problems = checkTopology(value, name);
  if (problems.length > 0) throw invalidTopology(name, problems);
  return { ...(value as Static<typeof Topology>), name };
}

/** The error a bad topology is answered with; `problems` travel beside it in the HTTP body. */
export function invalidTopology(name: string, problems: readonly Problem[]): StraitError & { problems: readonly Problem[] } {
  const error = new StraitError('STRAIT_TOPOLOGY_INVALID', { name, count: problems.length, first: problems[0]!.message }) as StraitError & { problems: readonly Problem[] };
  Object.assign(error, { problems });
  return error;
}

/** The edges leaving `site`, by target. */
export function targetsOf(topology: Topology, site: string): string[] {
  return topology.edges.filter(([from]) => from === site).map(([, to]) => to);
}

/** The id of the gateway sender a topology runs on site `from` for the edge to `to`. */
export function senderIdOf(topology: string, to: string): string {
  return `${topology}--to-${to}`;
}

/** True when the site configuration holds a sender of topology `name` (it runs there). */
export function runsThere(name: string, senderIds: readonly string[]): boolean {
  return senderIds.some((id) => id.startsWith(`${name}--to-`));
}
