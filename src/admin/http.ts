// The admin HTTP API every member runs: health, member status, the membership view, regions,
// gateway senders and receiver, and Prometheus metrics. One Fastify plugin per resource; bodies are validated against the
// wire protocol's JSON schemas; every error answers `{ code, message, retryable }` with the
// HTTP status of the code in src/errors.ts.

import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyPluginCallback } from 'fastify';
import type { Registry } from 'prom-client';
import { StraitError } from '../errors.ts';
import type { MemberAdmin } from '../core/member-admin.ts';
import { Type, type Static } from '@sinclair/typebox';
import { ConfigChange, ReceiverDeclaration, RegionSpec, SenderDeclaration, WireAddress, type ConfigChangeResult, type RequestBody, type SenderStatus } from '../protocol/messages.ts';
import type { Logger } from '../runtime/runtime.ts';
import { dashboardRoutes, siteDashboardFeed } from './dashboard.ts';

/** The admin API takes small JSON bodies only (a region spec, later a topology). */
export const ADMIN_BODY_BYTES_MAX = 1024 * 1024;

export interface AdminServerOptions {
  readonly admin: MemberAdmin;
  readonly metricsRegistry: Registry;
  readonly logger: Logger;
  /** When set, every route but GET /health requires `Authorization: Bearer <token>`. */
  readonly token?: string | undefined;
  /** Serve HTTPS with this certificate (the member's TLS credentials); plain HTTP when absent. */
  readonly https?: { readonly key: Buffer; readonly cert: Buffer; readonly ca: Buffer } | undefined;
}

interface ResourceOptions {
  readonly admin: MemberAdmin;
}

const healthRoutes: FastifyPluginCallback<ResourceOptions> = (app, { admin }, done) => {
  app.get('/health', async () => ({ status: 'ok', state: admin.status().state }));
  // For load balancers and Kubernetes readiness probes: 200 only once the member serves (a
  // server has its regions' images), 503 STRAIT_NOT_READY before; /health answers in every state.
  app.get('/ready', async () => {
    const status = admin.status();
    if (status.state !== 'ready') throw new StraitError('STRAIT_NOT_READY', { member: status.info.name, state: status.state });
    return { status: 'ready' };
  });
  done();
};

const memberRoutes: FastifyPluginCallback<ResourceOptions> = (app, { admin }, done) => {
  app.get('/member', async () => admin.status());
  done();
};

const viewRoutes: FastifyPluginCallback<ResourceOptions> = (app, { admin }, done) => {
  app.get('/view', async () => {
    const view = admin.view();
    if (view === null) {
      const status = admin.status();
      throw new StraitError('STRAIT_NOT_READY', { member: status.info.name, state: `${status.state}, no view installed` });
    }
    return view;
  });
  done();
};

const regionRoutes: FastifyPluginCallback<ResourceOptions> = (app, { admin }, done) => {
  app.get('/regions', async () => ({ regions: admin.regions() }));
  app.post<{ Body: RegionSpec }>('/regions', { schema: { body: RegionSpec } }, async (request, reply) => {
    const { created } = await new Promise<{ created: boolean }>((resolve, reject) => {
      admin.createRegion(request.body, (error, result) => (error !== undefined || result === undefined ? reject(error) : resolve(result)));
    });
    reply.code(created ? 201 : 200);
    return { created, spec: request.body };
  });
  done();
};

/** The sender actions of `POST /gateways/senders/:id/:action`, as URL segments. */
export const SENDER_ACTIONS = {
  pause: 'pause',
  resume: 'resume',
  stop: 'stop',
  start: 'start',
  'replay-dead-letters': 'replayDeadLetters',
} as const satisfies Record<string, RequestBody<'senderControl'>['action']>;

const SenderParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false });
const SenderActionParams = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 256 }),
    action: Type.String({ enum: Object.keys(SENDER_ACTIONS) }),
  },
  { additionalProperties: false },
);
const SenderActionBody = Type.Object(
  {
    /** stop only: wait this long for the queue to drain first; -1 = until drained. */
    drainTimeoutMs: Type.Optional(Type.Integer({ minimum: -1, maximum: 86_400_000 })),
    /** Apply on every server of the site hosting the sender, not only this member. */
    everyMember: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
type SenderActionBody = Static<typeof SenderActionBody>;

/** Calls the member's controlSender as a promise. */
function controlSender(admin: MemberAdmin, request: RequestBody<'senderControl'>): Promise<{ member: string; state: string }[]> {
  return new Promise((resolve, reject) => {
    admin.controlSender(request, (error, members) => {
      if (error !== undefined) reject(error);
      else resolve(members ?? []);
    });
  });
}

const gatewayRoutes: FastifyPluginCallback<ResourceOptions> = (app, { admin }, done) => {
  app.get('/gateways', async () => ({ senders: admin.senders(), receiver: admin.receiver(), links: admin.gatewayLinks() }));
  // Every copy of every sender of the site (the controller's edge status).
  app.get('/site/gateways', async () => ({ senders: await new Promise<SenderStatus[]>((resolve) => admin.siteSenders(resolve)) }));

  app.get<{ Params: Static<typeof SenderParams> }>('/gateways/senders/:id', { schema: { params: SenderParams } }, async (request) => {
    const status = admin.senders().find((sender) => sender.id === request.params.id);
    if (status === undefined) throw new StraitError('STRAIT_SENDER_NOT_FOUND', { sender: request.params.id, member: admin.status().info.name });
    return status;
  });

  app.post<{ Params: Static<typeof SenderActionParams>; Body: SenderActionBody | undefined }>(
    '/gateways/senders/:id/:action',
    {
      schema: { params: SenderActionParams, body: SenderActionBody },
      // The body is optional: a bare POST means "no options".
      preValidation: async (request) => {
        request.body ??= {};
      },
    },
    async (request) => {
      const { id, action } = request.params;
      const body = request.body ?? {};
      if (body.drainTimeoutMs !== undefined && action !== 'stop') {
        throw new StraitError('STRAIT_BAD_REQUEST', { reason: `body/drainTimeoutMs applies to stop only, not ${action}` });
      }
      const members = await controlSender(admin, {
        id,
        action: SENDER_ACTIONS[action as keyof typeof SENDER_ACTIONS],
        everyMember: body.everyMember ?? false,
        ...(body.drainTimeoutMs !== undefined ? { drainTimeoutMs: body.drainTimeoutMs } : {}),
      });
      return { sender: id, action, members };
    },
  );
  done();
};

function drainMs(text: string): number {
  const value = Number(text);
  if (value > 600_000) throw new StraitError('STRAIT_BAD_REQUEST', { reason: `querystring drainTimeoutMs must be at most 600000, got ${text}` });
  return value;
}

/** Calls the member's changeConfig as a promise. */
function changeConfig(admin: MemberAdmin, change: ConfigChange): Promise<ConfigChangeResult> {
  return new Promise((resolve, reject) => {
    admin.changeConfig(change, (error, result) => (error !== undefined || result === undefined ? reject(error) : resolve(result)));
  });
}

const NameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false });
const AlterRegionBody = Type.Object({ gatewaySenderIds: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 64 }) }, { additionalProperties: false });
const AlterSenderBody = Type.Object(
  {
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
    batchTimeIntervalMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000 })),
  },
  { additionalProperties: false },
);
/** A query string is text: milliseconds as digits (0..600000, checked against the change's schema). */
const DrainQuery = Type.Object({ drainTimeoutMs: Type.Optional(Type.String({ pattern: '^[0-9]{1,6}$' })) }, { additionalProperties: false });
const RemoteLocatorsBody = Type.Object({ addresses: Type.Array(WireAddress, { maxItems: 64 }) }, { additionalProperties: false });

/**
 * The site configuration (config-service.ts): read it, and change it on every locator and
 * server of the site. Every change answers `{ version, changed, members }`; `changed: false`
 * when the configuration already said so.
 */
const configRoutes: FastifyPluginCallback<ResourceOptions> = (app, { admin }, done) => {
  app.get('/config', async () => {
    const config = admin.siteConfig();
    if (config === null) throw new StraitError('STRAIT_NOT_READY', { member: admin.status().info.name, state: 'no site configuration yet' });
    return config;
  });
  app.post<{ Body: { change: ConfigChange } }>('/config/changes', { schema: { body: Type.Object({ change: ConfigChange }, { additionalProperties: false }) } },
    async (request) => changeConfig(admin, request.body.change));
  app.post<{ Body: RegionSpec }>('/config/regions', { schema: { body: RegionSpec } },
    async (request) => changeConfig(admin, { kind: 'createRegion', spec: request.body }));
  app.patch<{ Params: Static<typeof NameParams>; Body: Static<typeof AlterRegionBody> }>('/config/regions/:name', { schema: { params: NameParams, body: AlterRegionBody } },
    async (request) => changeConfig(admin, { kind: 'alterRegion', name: request.params.name, gatewaySenderIds: request.body.gatewaySenderIds }));
  app.delete<{ Params: Static<typeof NameParams> }>('/config/regions/:name', { schema: { params: NameParams } },
    async (request) => changeConfig(admin, { kind: 'destroyRegion', name: request.params.name }));
  app.post<{ Body: SenderDeclaration }>('/config/gateway-senders', { schema: { body: SenderDeclaration } },
    async (request) => changeConfig(admin, { kind: 'createSender', spec: request.body }));
  app.patch<{ Params: Static<typeof SenderParams>; Body: Static<typeof AlterSenderBody> }>('/config/gateway-senders/:id', { schema: { params: SenderParams, body: AlterSenderBody } },
    async (request) => changeConfig(admin, { kind: 'alterSender', id: request.params.id, ...request.body }));
  app.delete<{ Params: Static<typeof SenderParams>; Querystring: Static<typeof DrainQuery> }>('/config/gateway-senders/:id', { schema: { params: SenderParams, querystring: DrainQuery } },
    async (request) => changeConfig(admin, { kind: 'destroySender', id: request.params.id, ...(request.query.drainTimeoutMs !== undefined ? { drainTimeoutMs: drainMs(request.query.drainTimeoutMs) } : {}) }));
  app.put<{ Body: ReceiverDeclaration }>('/config/gateway-receiver', { schema: { body: ReceiverDeclaration } },
    async (request) => changeConfig(admin, { kind: 'createReceiver', spec: request.body }));
  app.delete('/config/gateway-receiver', async () => changeConfig(admin, { kind: 'destroyReceiver' }));
  app.put<{ Body: Static<typeof RemoteLocatorsBody> }>('/config/remote-locators', { schema: { body: RemoteLocatorsBody } },
    async (request) => changeConfig(admin, { kind: 'setRemoteLocators', addresses: request.body.addresses }));
  done();
};

const metricsRoutes: FastifyPluginCallback<{ readonly registry: Registry }> = (app, { registry }, done) => {
  app.get('/metrics', async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
  done();
};

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Compares in constant time so the token can't be guessed byte by byte from response times. */
function tokenMatches(header: string | undefined, expected: Buffer): boolean {
  if (header === undefined || !header.startsWith('Bearer ')) return false;
  return timingSafeEqual(digest(header.slice('Bearer '.length).trim()), expected);
}

function toStraitError(error: FastifyError): StraitError {
  if (error instanceof StraitError) return error;
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new StraitError('STRAIT_BODY_TOO_LARGE', { limit: ADMIN_BODY_BYTES_MAX }, { cause: error });
  if (error.validation !== undefined) {
    // "body/name must ..." → "body name must ...", "params/action must ..." → "params action must ...".
    const context = error.validationContext ?? 'body';
    const detail = error.message.startsWith(context) ? error.message.slice(context.length).replace(/^\/?/, '') : error.message;
    return new StraitError('STRAIT_BAD_REQUEST', { reason: `${context}${detail.startsWith(' ') ? '' : ' '}${detail}` }, { cause: error });
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return new StraitError('STRAIT_BAD_REQUEST', { reason: error.message }, { cause: error });
  return new StraitError('STRAIT_INTERNAL', { reason: error.message }, { cause: error });
}

/**
 * Coded errors for every failure of `app` (`{ code, message, retryable }` with the code's HTTP
 * status, plus any `problems` or `progress` the error carries), logged when they are ours (5xx).
 */
export function answerWithCodes(app: FastifyInstance, logger: Logger, what: string): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const strait = toStraitError(error);
    if (strait.status >= 500) {
      logger.error({ err: error, method: request.method, url: request.url, code: strait.code }, `${what} ${request.method} ${request.url} failed`);
    }
    const extra = strait as StraitError & { problems?: unknown; progress?: unknown };
    reply.code(strait.status).send({
      ...strait.toJSON(),
      ...(extra.problems !== undefined ? { problems: extra.problems } : {}),
      ...(extra.progress !== undefined ? { progress: extra.progress } : {}),
    });
  });
  app.setNotFoundHandler((request, reply) => {
    const error = new StraitError('STRAIT_ROUTE_NOT_FOUND', { method: request.method, url: request.url.slice(0, 200) });
    reply.code(error.status).send(error.toJSON());
  });
}

/** With a token, every route but `open` ones requires `Authorization: Bearer <token>`. */
export function requireToken(app: FastifyInstance, token: string | undefined, open: (method: string, url: string | undefined) => boolean): void {
  if (token === undefined) return;
  const expected = digest(token);
  app.addHook('onRequest', async (request) => {
    if (open(request.method, request.routeOptions.url)) return;
    if (!tokenMatches(request.headers.authorization, expected)) throw new StraitError('STRAIT_UNAUTHORIZED');
  });
}

/**
 * Builds (does not start) the admin API of one member. The caller listens with
 * `app.listen({ host, port })` and closes it on shutdown.
 */
export function createAdminServer(options: AdminServerOptions): FastifyInstance {
  const { admin, logger } = options;
  const app = Fastify({
    ...(options.https === undefined ? {} : { https: options.https }),
    logger: false,
    bodyLimit: ADMIN_BODY_BYTES_MAX,
    // Reject what the schema doesn't allow instead of silently dropping or coercing it.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
  });

  // The dashboard's page and scripts hold no data: they are open; its feed needs the token.
  requireToken(app, options.token, (method, url) => method === 'GET' && (url === '/health' || url === '/ready' || url === '/' || (url?.startsWith('/dashboard/') ?? false)));
  answerWithCodes(app, logger, 'admin API');

  app.register(healthRoutes, { admin });
  app.register(memberRoutes, { admin });
  app.register(viewRoutes, { admin });
  app.register(regionRoutes, { admin });
  app.register(gatewayRoutes, { admin });
  app.register(configRoutes, { admin });
  app.register(metricsRoutes, { registry: options.metricsRegistry });
  // The live dashboard of this site and the WAN it knows, as the controller draws topologies.
  const samples = new Map<string, { eventsSent: number; atMs: number; rate: number }>();
  app.get('/site/status', async () => siteDashboardFeed(admin, samples, performance.now()));
  app.register(dashboardRoutes, { feed: '/site/status', title: 'Strait site' });
  return app;
}
