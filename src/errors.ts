// The registry of every coded error Strait reports. A code is declared once here with its
// message template, HTTP status and whether retrying the same request may succeed. The same
// code travels over the wire protocol, the admin HTTP API and the CLI; tests assert codes,
// never message text.
//
// This module is the bottom of the dependency graph: it imports nothing from Strait.

export interface ErrorSpec {
  /** Message template; `{name}` is replaced by `details.name`. */
  readonly message: string;
  /** HTTP status the admin API answers with. */
  readonly status: number;
  /**
   * True when the same request, sent again a little later (possibly to another member), may
   * succeed without anyone changing anything. The client retries exactly these, until its
   * deadline; so a condition that retrying can't fix (bad input, a frame or value over a limit,
   * incompatible protocol versions) or that asks the caller to slow down (backpressure) is false.
   */
  readonly retryable: boolean;
}

function spec(message: string, status: number, retryable: boolean): ErrorSpec {
  return { message, status, retryable };
}

export const ERROR_SPECS = {
  // Wire protocol
  STRAIT_BAD_MAGIC: spec('peer {peer} did not open with the Strait preamble; closing the connection', 400, false),
  STRAIT_FRAME_TOO_LARGE: spec('frame of {size} bytes from {peer} exceeds the limit of {limit} bytes; closing the connection', 400, false),
  STRAIT_FRAME_MALFORMED: spec('frame from {peer} could not be decoded: {reason}; closing the connection', 400, false),
  STRAIT_MESSAGE_INVALID: spec('message from {peer} is invalid: {reason}', 400, false),
  // A property of one pair of members, fixed only by an upgrade: not retried with that member.
  // A client connecting still moves on to the next locator or server (another may be upgraded).
  STRAIT_PROTOCOL_VERSION: spec('peer {peer} speaks protocol versions {peerMin}..{peerMax}, this member {min}..{max}; upgrade the older side', 400, false),
  STRAIT_HANDSHAKE_REQUIRED: spec('peer {peer} sent {type} before the handshake', 400, false),
  STRAIT_SITE_MISMATCH: spec('{peer} belongs to site {peerSite}, this member to site {site}; check --site-id', 400, false),
  STRAIT_CONNECTION_CLOSED: spec('connection to {peer} closed before the reply to {type}', 503, true),
  STRAIT_TIMEOUT: spec('{operation} timed out after {timeoutMs} ms', 504, true),
  STRAIT_ABORTED: spec('{operation} was aborted', 499, false),
  // Backpressure: the caller must slow down. Retrying automatically would queue the excess
  // instead of refusing it.
  STRAIT_TOO_MANY_CONNECTIONS: spec('{member} already has {limit} connections open, its limit; try another member, or later', 503, true),
  STRAIT_TOO_MANY_IN_FLIGHT: spec('more than {limit} requests in flight on the connection to {peer}', 503, false),

  // Membership and discovery
  STRAIT_NO_LOCATOR: spec('no locator answered at {locators}: {reason}; check the address and that a locator runs there', 503, true),
  STRAIT_NO_SERVER: spec('locator {locator} knows no running server{forRegion}', 503, true),
  STRAIT_NOT_MEMBER: spec('{member} is not in the current view of site {site}; it must rejoin', 503, true),
  STRAIT_NAME_IN_USE: spec('a member named {name} is already in the view of site {site} at {address}', 409, false),
  STRAIT_NOT_READY: spec('{member} is not ready yet ({state})', 503, true),

  // Routers
  STRAIT_ROUTER_AUTH_FAILED: spec('router {router} refused {peer}: the router secret does not match; give every member and router of the mesh the same router-secret-file (or STRAIT_ROUTER_SECRET)', 401, false),
  STRAIT_ROUTER_NOT_REGISTERED: spec('router {router}: {peer} sent {type} before registering; closing the connection', 400, false),
  STRAIT_ROUTER_UNREACHABLE: spec('no router reaches {target}: {reason}', 503, true),

  // Regions
  STRAIT_REGION_NOT_FOUND: spec('region {region} does not exist on {member}', 404, false),
  STRAIT_BUCKET_MOVED: spec('{member}: bucket {bucket} of region {region} has another primary ({primary}) since view {viewId}; the write, made under an older view, was not acknowledged — retry', 503, true),
  STRAIT_BUCKET_UNAVAILABLE: spec('bucket {bucket} of region {region} is not available on {member} ({reason})', 503, true),
  STRAIT_UNSUPPORTED: spec('{what} is not supported: {reason}', 400, false),
  STRAIT_REGION_EXISTS: spec('region {region} already exists on {member} with different settings', 409, false),
  STRAIT_REGION_INVALID: spec('region {region}: {reason}', 400, false),
  STRAIT_KEY_INVALID: spec('key must be a non-empty string of at most {limit} bytes', 400, false),
  STRAIT_VALUE_TOO_LARGE: spec('value of {size} bytes exceeds the limit of {limit} bytes', 413, false),
  STRAIT_FILTER_FAILED: spec('the {hook} hook of a gateway event filter of sender {sender} failed on {region}/{key}: {reason}; the event went on as if the filter had passed it — fix the filter', 500, false),
  STRAIT_RESOLVER_FAILED: spec('the conflict resolver of region {region} failed on key {key}: {reason}; the write was refused', 422, false),
  STRAIT_REPLICATION_FAILED: spec('replication of {region}/{key} to {member} failed: {reason}', 503, true),
  STRAIT_SUBSCRIBER_TOO_SLOW: spec('{member} ended subscription {subscription} to {region}: {bytes} bytes of events were not taken by the subscriber (limit {limit}); subscribe again and re-read what changed meanwhile', 503, true),
  STRAIT_SUBSCRIPTION_GAP: spec('the subscription to {region} moved to server {server} after its server failed; changes made meanwhile may be missing — re-read what you need', 503, true),
  STRAIT_SENDER_NOT_FOUND: spec('gateway sender {sender} is not hosted by {member}', 404, false),
  STRAIT_STORAGE: spec('storage failure at {path}: {reason}', 500, false),
  STRAIT_OVERLOADED: spec('{member}: {what} holds {held}, its limit; the write was not applied — retry later', 503, true),
  // Not retryable: a full queue overflow lasts as long as the remote site is unreachable.
  STRAIT_QUEUE_FULL: spec('{member}: gateway sender {sender} → site {site} has {held} waiting on disk, its limit (maximum-queue-disk); the write was not applied — restore the link to site {site} or raise the limit', 503, false),

  // Configuration and the CLI
  STRAIT_CONFIG_INVALID: spec('{source}: {key}: {reason}', 400, false),
  STRAIT_CONFIG_UNKNOWN_KEY: spec('{source}: unknown key {key}{hint}', 400, false),
  STRAIT_ADDRESS_INVALID: spec('address {address} is not host[port] or host:port', 400, false),
  STRAIT_PORT_IN_USE: spec('{address} is already in use by another process; choose another port', 409, false),
  STRAIT_BIND_FAILED: spec('could not listen on {address}: {reason}', 500, false),
  STRAIT_START_FAILED: spec('{member} did not start: {reason}', 500, false),
  STRAIT_NOT_RUNNING: spec('no running member in {dir}: {reason}', 404, false),
  STRAIT_ALREADY_RUNNING: spec('a member is already running in {dir} with pid {pid}', 409, false),
  STRAIT_USAGE: spec('{reason}; see strait --help', 400, false),

  // The site configuration held by the locators (site-config.ts, config-service.ts)
  STRAIT_CONFIG_CONFLICT: spec('{what}: {reason}', 409, false),
  STRAIT_CONFIG_NOT_FOUND: spec('{what} is not in the configuration of site {site}', 404, false),
  STRAIT_CONFIG_NO_QUORUM: spec('locator {locator}: {present} of the site\'s {known} locators are in the view, fewer than the {needed} a configuration change needs; start the missing locators, then retry', 503, true),
  STRAIT_CONFIG_APPLY_FAILED: spec('{member} could not apply {change}: {reason}; the change was rolled back on every member of site {site}', 409, false),
  STRAIT_CONFIG_BUSY: spec('locator {locator} already has {limit} configuration changes waiting; retry once they are done', 503, false),
  STRAIT_SENDER_NOT_DRAINED: spec('gateway sender {sender} on {member} still holds {events} events after {timeoutMs} ms; nothing was destroyed — let it drain (is site {site} reachable?) or give a longer drain timeout', 409, false),

  // The controller (replication as a service)
  STRAIT_TOPOLOGY_INVALID: spec('topology {name} has {count} problems; the first: {first}', 400, false),
  STRAIT_TOPOLOGY_FIELD_REQUIRED: spec('{path}: {reason}', 400, false),
  STRAIT_TOPOLOGY_FIELD_UNKNOWN: spec('{path}: {reason}', 400, false),
  STRAIT_TOPOLOGY_FIELD_INVALID: spec('{path}: {reason}', 400, false),
  STRAIT_TOPOLOGY_EDGE_UNKNOWN_SITE: spec('{path}: no site {site} in sites (known: {sites})', 400, false),
  STRAIT_TOPOLOGY_EDGE_SELF: spec('{path}: an edge from {site} to itself', 400, false),
  STRAIT_TOPOLOGY_EDGE_DUPLICATE: spec('{path}: the edge {from} → {to} is listed twice', 400, false),
  STRAIT_TOPOLOGY_NOT_FOUND: spec('no topology {name} on controller {controller}', 404, false),
  STRAIT_TOPOLOGY_EXISTS: spec('topology {name}: {reason}', 409, false),
  STRAIT_TOPOLOGY_BUSY: spec('topology {name} is being {operation}; wait for it to finish', 409, false),
  STRAIT_SITE_UNREACHABLE: spec('site {site} ({admin}): {reason}', 502, true),
  STRAIT_SITE_REFUSED: spec('site {site}, step "{step}": {reason}', 502, false),
  STRAIT_EDGE_NOT_CONNECTED: spec('edge {from} → {to} did not connect within {timeoutMs} ms: {reason}', 504, false),

  // Admin API
  STRAIT_UNAUTHORIZED: spec('missing or wrong token', 401, false),
  // Security of the wire protocol (protocol/authentication.ts, docs/SECURITY.md).
  STRAIT_TLS_INVALID: spec('TLS file {file} {reason}', 400, false),
  STRAIT_TLS_REFUSED: spec('{peer}: {reason}', 403, false),
  STRAIT_UNAUTHENTICATED: spec('{peer} claims to be {claimed}, but {reason}', 401, false),
  STRAIT_FORBIDDEN: spec('{peer} ({role}) may not {op} here: {reason}', 403, false),
  STRAIT_BAD_REQUEST: spec('{reason}', 400, false),
  STRAIT_BODY_TOO_LARGE: spec('the request body is larger than {limit} bytes, the limit', 413, false),
  STRAIT_ROUTE_NOT_FOUND: spec('no route {method} {url}; see docs/CLI.md for the admin API', 404, false),
  STRAIT_INTERNAL: spec('internal error: {reason}', 500, false),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_SPECS;

export type ErrorDetails = Readonly<Record<string, string | number | boolean | undefined>>;

function render(template: string, details: ErrorDetails): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = details[name];
    return value === undefined ? '' : String(value);
  });
}

/** A coded, expected operating condition (peer down, bad input, ...). Not an assertion. */
export class StraitError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    const errorSpec = ERROR_SPECS[code];
    super(render(errorSpec.message, details), options);
    this.name = 'StraitError';
    this.code = code;
    this.status = errorSpec.status;
    this.retryable = errorSpec.retryable;
    this.details = details;
  }

  /** The shape an error takes on the wire and in HTTP bodies. */
  toJSON(): WireError {
    return { code: this.code, message: this.message, retryable: this.retryable };
  }
}

export interface WireError {
  readonly code: string;
  readonly message: string;
  readonly retryable: boolean;
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_SPECS, code);
}

/** Rebuilds an error received over the wire; unknown codes (a newer peer) become STRAIT_INTERNAL. */
export function errorFromWire(wire: WireError): StraitError {
  if (isErrorCode(wire.code)) {
    const error = new StraitError(wire.code, {});
    error.message = wire.message;
    return error;
  }
  return new StraitError('STRAIT_INTERNAL', { reason: `${wire.code}: ${wire.message}` });
}

export class AssertionFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AssertionFailure';
  }
}

/**
 * Guards an invariant. A failed assertion means this member's state is broken, so it must stop
 * rather than keep serving or replicating; the runtime turns an AssertionFailure into an exit.
 */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionFailure(message);
}
