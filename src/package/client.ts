// The `strait` entry of the npm package: the client an application imports. It reaches only the
// client, the wire protocol and the error registry, so `import { connect } from 'strait'` loads
// msgpackr and @sinclair/typebox and nothing of a member (no lmdb, fastify, pino, ...):
// docs/CLIENT.md says how that is kept, test/package/package.test.ts checks it on the installed
// package. This file only chooses what is public; the code lives where docs/ARCHITECTURE.md says.

export { connect } from '../client/connect.ts';
export { StraitClient, CONNECT_TIMEOUT_MS_DEFAULT, type ConnectOptions } from '../client/client.ts';
export { ClientRegion } from '../client/region.ts';
export type { RequestOptions } from '../client/server-link.ts';
export type { ChangeEvent, SubscribeOptions, SubscriptionEvent, SubscriptionGap } from '../client/subscriptions.ts';
export { ERROR_SPECS, StraitError, isErrorCode, type ErrorCode, type ErrorDetails, type ErrorSpec } from '../errors.ts';
export type { Address } from '../runtime/runtime.ts';
export type { MemberInfo, RegionSpec, SenderStatus, VersionTag, View } from '../protocol/messages.ts';
