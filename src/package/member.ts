// The `strait/member` entry of the npm package: locators, servers and routers embedded in an
// application's Node service (src/cli/member-api.ts). It brings a member's dependencies (lmdb,
// fastify, pino, ...), which a client-only install leaves out (docs/DEPENDENCIES.md). This file
// only chooses what is public.

export {
  startLocator,
  startRouter,
  startServer,
  type AddressList,
  type CommonSettings,
  type EmbeddedMember,
  type EmbeddedOptions,
  type EmbeddedRouter,
  type LocatorSettings,
  type MemberSettings,
  type RegionDeclaration,
  type RouterSettings,
  type ServerSettings,
} from '../cli/member-api.ts';
export { StraitError, type ErrorCode } from '../errors.ts';
export type { Address } from '../runtime/runtime.ts';
