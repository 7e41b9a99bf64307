// The controller's REST API (replication as a service): topologies under /v1/topologies, the
// status feed of the dashboard, and the OpenAPI document at /openapi.json. JSON in and out;
// every error is `{ code, message, retryable }` with the code's HTTP status, plus `problems`
// (each with its JSON path and code) for a topology that does not check, and `progress` (every
// step and its state) for an apply that failed and was rolled back.

import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { Type, type Static } from '@sinclair/typebox';
import { StraitError } from '../errors.ts';
import type { Logger } from '../runtime/runtime.ts';
import type { Controller, OperationAnswer, TopologyPatch, TopologyStatus } from '../controller/controller.ts';
import { Topology, TopologyName, TopologySite, TopologyRegion, Tuning } from '../controller/topology.ts';
import { answerWithCodes, requireToken } from './http.ts';
import { dashboardRoutes } from './dashboard.ts';

/** A topology of 64 sites is a few tens of KiB; anything near this is not a topology. */
export const CONTROLLER_BODY_BYTES_MAX = 1024 * 1024;

export interface ControllerServerOptions {
  readonly controller: Controller;
  readonly logger: Logger;
  readonly token?: string | undefined;
  /** Serve HTTPS with this certificate; plain HTTP when absent. */
  readonly https?: { readonly key: Buffer; readonly cert: Buffer; readonly ca: Buffer } | undefined;
  readonly version: string;
}

const NameParams = Type.Object({ name: TopologyName }, { additionalProperties: false });
const DryRunQuery = Type.Object({ dryRun: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])) }, { additionalProperties: false });
const Edge = Type.Tuple([TopologyName, TopologyName]);
const Patch = Type.Object(
  {
    sites: Type.Optional(Type.Record(TopologyName, Type.Union([TopologySite, Type.Null()]))),
    edges: Type.Optional(Type.Object({ add: Type.Optional(Type.Array(Edge, { maxItems: 4032 })), remove: Type.Optional(Type.Array(Edge, { maxItems: 4032 })) }, { additionalProperties: false })),
    regions: Type.Optional(Type.Record(TopologyName, Type.Union([TopologyRegion, Type.Null()]))),
    tuning: Type.Optional(Tuning),
  },
  { additionalProperties: false },
);

function promised<T>(start: (callback: (error: StraitError | undefined, result: T | undefined) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => start((error, result) => (error !== undefined || result === undefined ? reject(error) : resolve(result))));
}

/** Builds (does not start) the controller's HTTP server. */
export function createControllerServer(options: ControllerServerOptions): FastifyInstance {
  const { controller, logger } = options;
  const app = Fastify({
    ...(options.https === undefined ? {} : { https: options.https }),
    logger: false,
    bodyLimit: CONTROLLER_BODY_BYTES_MAX,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: true } },
  });
  app.register(swagger, {
    openapi: {
      info: { title: 'Strait controller', description: 'Replication as a service: one JSON topology turned into running replication across every site (docs/TOPOLOGY.md).', version: options.version },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: options.token === undefined ? [] : [{ bearer: [] }],
    },
  });
  requireToken(app, options.token, (method, url) => method === 'GET' && (url === '/health' || url === '/openapi.json' || url === '/' || (url?.startsWith('/dashboard/') ?? false)));
  answerWithCodes(app, logger, 'controller API');

  app.register(async (api) => {
    api.get('/health', { schema: { hide: true } }, async () => ({ status: 'ok' }));
    api.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

    api.get('/v1/topologies', { schema: { summary: 'every topology, with its state' } }, async () => ({ topologies: controller.list() }));

    api.get<{ Params: Static<typeof NameParams> }>('/v1/topologies/:name', {
      schema: { summary: 'one topology: status per site and per edge (state, queue depth, lag, events/s, last error), and the operation under way', params: NameParams },
    }, async (request) => promised<TopologyStatus>((callback) => controller.status(request.params.name, callback)));

    api.post<{ Params: Static<typeof NameParams>; Querystring: Static<typeof DryRunQuery>; Body: unknown }>('/v1/topologies/:name', {
      // The body is checked by checkTopology, which lists every problem with its path; the
      // schema here documents it in the OpenAPI document.
      attachValidation: true,
      schema: { summary: 'apply a topology on every site, in phases, rolled back as a whole on a failure; ?dryRun=true answers the plan', params: NameParams, querystring: DryRunQuery, body: Topology },
    }, async (request, reply) => {
      if (request.validationError !== undefined && request.validationError.validationContext !== 'body') throw request.validationError;
      const answer = await promised<OperationAnswer>((callback) => controller.apply(request.params.name, request.body, request.query.dryRun === 'true', callback));
      reply.code(answer.changed && !answer.dryRun ? 201 : 200);
      return answer;
    });

    api.patch<{ Params: Static<typeof NameParams>; Querystring: Static<typeof DryRunQuery>; Body: Static<typeof Patch> }>('/v1/topologies/:name', {
      schema: { summary: 'add or remove sites, edges and regions, change tuning: only the difference is applied', params: NameParams, querystring: DryRunQuery, body: Patch },
    }, async (request) => promised<OperationAnswer>((callback) => controller.patch(request.params.name, request.body as TopologyPatch, request.query.dryRun === 'true', callback)));

    api.delete<{ Params: Static<typeof NameParams>; Querystring: Static<typeof DryRunQuery> }>('/v1/topologies/:name', {
      schema: { summary: 'take down everything the topology created, on every site', params: NameParams, querystring: DryRunQuery },
    }, async (request) => promised<OperationAnswer>((callback) => controller.remove(request.params.name, request.query.dryRun === 'true', callback)));

    api.get('/v1/status', { schema: { summary: 'every topology\'s status (the dashboard\'s feed)' } }, async () => ({
      topologies: await new Promise<TopologyStatus[]>((resolve) => controller.statuses(resolve)),
    }));
  });
  app.register(dashboardRoutes, { feed: '/v1/status', title: 'Strait controller' });
  return app;
}
