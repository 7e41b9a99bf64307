// The admin HTTP API every member runs: health, member status, the membership view, regions
// and Prometheus metrics. One Fastify plugin per resource; bodies are validated against the
// wire protocol's JSON schemas; every error answers `{ code, message, retryable }` with the
// HTTP status of the code in src/errors.ts.

import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyPluginCallback } from 'fastify';
import type { Registry } from 'prom-client';
import { StraitError } from '../errors.ts';
import type { MemberAdmin } from '../core/member-admin.ts';
import { RegionSpec } from '../protocol/messages.ts';
import type { Logger } from '../runtime/runtime.ts';

/** The admin API takes small JSON bodies only (a region spec, later a topology). */
export const ADMIN_BODY_BYTES_MAX = 1024 * 1024;

export interface AdminServerOptions {
  readonly admin: MemberAdmin;
  readonly metricsRegistry: Registry;
  readonly logger: Logger;
  /** When set, every route but GET /health requires `Authorization: Bearer <token>`. */
  readonly token?: string | undefined;
}

interface ResourceOptions {
  readonly admin: MemberAdmin;
}

const healthRoutes: FastifyPluginCallback<ResourceOptions> = (app, { admin }, done) => {
  app.get('/health', async () => ({ status: 'ok', state: admin.status().state }));
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
    const { created } = admin.createRegion(request.body);
    reply.code(created ? 201 : 200);
    return { created, spec: request.body };
  });
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
  if (error.validation !== undefined) {
    return new StraitError('STRAIT_BAD_REQUEST', { reason: `body ${error.message.replace(/^body\/?/, '')}` }, { cause: error });
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) return new StraitError('STRAIT_BAD_REQUEST', { reason: error.message }, { cause: error });
  return new StraitError('STRAIT_INTERNAL', { reason: error.message }, { cause: error });
}

/**
 * Builds (does not start) the admin API of one member. The caller listens with
 * `app.listen({ host, port })` and closes it on shutdown.
 */
export function createAdminServer(options: AdminServerOptions): FastifyInstance {
  const { admin, logger } = options;
  const app = Fastify({
    logger: false,
    bodyLimit: ADMIN_BODY_BYTES_MAX,
    // Reject what the schema doesn't allow instead of silently dropping or coercing it.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
  });

  const expectedToken = options.token === undefined ? undefined : digest(options.token);
  if (expectedToken !== undefined) {
    app.addHook('onRequest', async (request) => {
      if (request.method === 'GET' && request.routeOptions.url === '/health') return;
      if (!tokenMatches(request.headers.authorization, expectedToken)) throw new StraitError('STRAIT_UNAUTHORIZED');
    });
  }

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const strait = toStraitError(error);
    if (strait.status >= 500) {
      logger.error({ err: error, method: request.method, url: request.url, code: strait.code }, `admin API ${request.method} ${request.url} failed`);
    }
    reply.code(strait.status).send(strait.toJSON());
  });

  app.setNotFoundHandler((request, reply) => {
    const error = new StraitError('STRAIT_ROUTE_NOT_FOUND', { method: request.method, url: request.url.slice(0, 200) });
    reply.code(error.status).send(error.toJSON());
  });

  app.register(healthRoutes, { admin });
  app.register(memberRoutes, { admin });
  app.register(viewRoutes, { admin });
  app.register(regionRoutes, { admin });
  app.register(metricsRoutes, { registry: options.metricsRegistry });
  return app;
}
