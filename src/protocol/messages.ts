// The schemas of every message in Strait's wire protocol, as TypeBox schemas (JSON Schema with
// static TypeScript types). A frame body is one of the envelopes below; request, response and
// push bodies are validated per operation. `protocol-fingerprint.test.ts` hashes this table:
// any change to it fails until PROTOCOL_VERSION is bumped in version.ts.

import { Type, type Static, type TSchema } from '@sinclair/typebox';

const Uint = (options: { maximum?: number } = {}) => Type.Integer({ minimum: 0, ...options });
const Name = Type.String({ minLength: 1, maxLength: 256 });
const Key = Type.String({ minLength: 1, maxLength: 4096 });
const SiteId = Type.Integer({ minimum: 1, maximum: 255 });

export const Role = Type.Union([
  Type.Literal('locator'),
  Type.Literal('server'),
  Type.Literal('client'),
  Type.Literal('admin'),
  /** A gateway sender of another site, connecting to this site's gateway receiver. */
  Type.Literal('gateway'),
  /** A router (GossipRouter's role), or another router of its mesh. */
  Type.Literal('router'),
]);
export type Role = Static<typeof Role>;

export const WireAddress = Type.Object(
  { host: Type.String({ minLength: 1, maxLength: 255 }), port: Uint({ maximum: 65535 }) },
  { additionalProperties: false },
);

/**
 * Orders every write to a key: origin site, wall-clock timestamp at the origin, the member that
 * made it and that member's counter. Last writer wins by timestamp; ties broken by site, then
 * member, then counter, so every replica picks the same winner whatever the arrival order.
 */
export const VersionTag = Type.Tuple([SiteId, Uint(), Name, Uint()]);
export type VersionTag = Static<typeof VersionTag>;

export const RegionType = Type.Union([Type.Literal('replicate'), Type.Literal('partition')]);

/** Most buckets a partitioned region may have. */
export const PARTITION_BUCKETS_MAX = 4096;
/** Most redundant copies of a bucket (besides its primary). */
export const PARTITION_REDUNDANT_COPIES_MAX = 3;

/**
 * How a partitioned region spreads its entries: `totalNumBuckets` buckets (a key's bucket is a
 * hash of it, partition-map.ts), each held by a primary and `redundantCopies` other servers.
 * After a server is lost, copies are restored `recoveryDelayMs` later (-1: only by rebalance);
 * buckets short of copies go to a server that starts `startupRecoveryDelayMs` after it joined.
 */
export const PartitionSettings = Type.Object(
  {
    totalNumBuckets: Type.Integer({ minimum: 1, maximum: PARTITION_BUCKETS_MAX }),
    redundantCopies: Type.Integer({ minimum: 0, maximum: PARTITION_REDUNDANT_COPIES_MAX }),
    recoveryDelayMs: Type.Integer({ minimum: -1, maximum: 86_400_000 }),
    startupRecoveryDelayMs: Type.Integer({ minimum: -1, maximum: 86_400_000 }),
  },
  { additionalProperties: false },
);
export type PartitionSettings = Static<typeof PartitionSettings>;

export const RegionSpec = Type.Object(
  {
    name: Name,
    type: RegionType,
    persistent: Type.Boolean(),
    /** Gateway senders that ship this region's changes to other sites. */
    gatewaySenderIds: Type.Optional(Type.Array(Name, { maxItems: 64 })),
    /** A partitioned region's settings (present exactly when `type` is `partition`). */
    partition: Type.Optional(PartitionSettings),
  },
  { additionalProperties: false },
);
export type RegionSpec = Static<typeof RegionSpec>;

export const MemberInfo = Type.Object(
  {
    /** Unique for this incarnation of the member: name plus a random suffix. */
    id: Name,
    name: Name,
    role: Type.Union([Type.Literal('locator'), Type.Literal('server')]),
    site: SiteId,
    /** Where peers and clients connect (the advertised address). */
    address: WireAddress,
    /** Admin HTTP API, when the member runs one. */
    httpAddress: Type.Optional(WireAddress),
    /** Regions this member hosts. */
    regions: Type.Array(Name, { maxItems: 10_000 }),
    pid: Type.Optional(Uint()),
    /** The advertised address of this server's gateway receiver, when it runs one. */
    receiver: Type.Optional(WireAddress),
    /** Gateway senders this server hosts: id and the remote site they ship to. */
    senders: Type.Optional(Type.Array(Type.Object({ id: Name, remoteSite: SiteId }, { additionalProperties: false }), { maxItems: 64 })),
    /**
     * True when this server's gateway receiver accepts no connections and dials out instead: it
     * opens the gateway link to the servers of other sites that send here (dial-out.ts).
     */
    dialOut: Type.Optional(Type.Boolean()),
    /** True when the member is registered with routers: other sites reach it through them. */
    routed: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type MemberInfo = Static<typeof MemberInfo>;

export const ViewMember = Type.Object(
  {
    info: MemberInfo,
    /** Join order within the view lineage; the lowest-numbered locator coordinates. */
    joinSeq: Uint(),
    /** Clients connected, reported in heartbeats; the locator balances clients by it. */
    load: Uint(),
    /** True once the member has its regions' initial images and serves clients. */
    ready: Type.Boolean(),
  },
  { additionalProperties: false },
);
export type ViewMember = Static<typeof ViewMember>;

/**
 * Who holds one bucket of a partitioned region: `copies` hold all of it (the primary first
 * among them, taking the bucket's writes); `pending` members are taking its image and get its
 * writes meanwhile, becoming copies once they hold it.
 */
export const BucketAssignment = Type.Object(
  {
    primary: Name,
    copies: Type.Array(Name, { minItems: 1, maxItems: PARTITION_REDUNDANT_COPIES_MAX + 1 }),
    pending: Type.Array(Name, { maxItems: PARTITION_REDUNDANT_COPIES_MAX + 1 }),
    /** Copies a rebalance moves away: each leaves once a pending member became a copy. */
    leaving: Type.Optional(Type.Array(Name, { maxItems: PARTITION_REDUNDANT_COPIES_MAX + 1 })),
  },
  { additionalProperties: false },
);
export type BucketAssignment = Static<typeof BucketAssignment>;

/** A partitioned region's buckets as the coordinator assigned them; null: not created yet. */
export const PartitionMap = Type.Object(
  {
    region: Name,
    settings: PartitionSettings,
    /** The region keeps its entries on disk: a bucket that lost every copy waits for one to return. */
    persistent: Type.Boolean(),
    buckets: Type.Array(Type.Union([BucketAssignment, Type.Null()]), { maxItems: PARTITION_BUCKETS_MAX }),
    /**
     * Buckets of a persistent region whose every copy is down: not created anew (that would hide
     * what their disks hold) until a server that holds one on disk offers it.
     */
    offline: Type.Optional(Type.Array(Type.Object({
      bucket: Uint({ maximum: PARTITION_BUCKETS_MAX }),
      /** The names of its last copies: only one of them brings it back (the others may hold less). */
      last: Type.Array(Name, { maxItems: PARTITION_REDUNDANT_COPIES_MAX + 1 }),
      /**
       * Those of `last` that came back with their disks and without the bucket: once all have,
       * none held an acknowledged write of it (a copy has every one, on disk before the
       * acknowledgement), and the bucket is created anew rather than waiting forever.
       */
      returned: Type.Optional(Type.Array(Name, { maxItems: PARTITION_REDUNDANT_COPIES_MAX + 1 })),
    }, { additionalProperties: false }), { maxItems: PARTITION_BUCKETS_MAX })),
  },
  { additionalProperties: false },
);
export type PartitionMap = Static<typeof PartitionMap>;

export const View = Type.Object(
  {
    site: SiteId,
    /** Strictly increasing within a lineage. */
    id: Uint(),
    /** Identifies the lineage: the member id of the locator that created view 1 and when. */
    lineage: Type.Tuple([Uint(), Name]),
    coordinator: Name,
    members: Type.Array(ViewMember, { maxItems: 10_000 }),
    /** Members that left cleanly or crashed since the previous view, for logs and status. */
    departed: Type.Array(
      Type.Object(
        { id: Name, name: Name, reason: Type.Union([Type.Literal('left'), Type.Literal('crashed')]) },
        { additionalProperties: false },
      ),
      { maxItems: 10_000 },
    ),
    /**
     * The partitioned regions' bucket maps: the coordinator changes them with the view, so every
     * member acts on the same assignment (partition-map.ts).
     */
    partitions: Type.Optional(Type.Array(PartitionMap, { maxItems: 10_000 })),
  },
  { additionalProperties: false },
);
export type View = Static<typeof View>;

const Port = Uint({ maximum: 65535 });

/**
 * A gateway sender as the site configuration holds it (config-service.ts): the fields of
 * `gateway-senders.<id>` in strait.yaml, camelCase. Absent fields take strait.yaml's defaults;
 * the stored form has every field filled. Gateway event filters are strait.yaml's only (the
 * site configuration holds no code).
 */
export const SenderDeclaration = Type.Object(
  {
    id: Name,
    remoteSiteId: SiteId,
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
    batchTimeIntervalMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000 })),
    maximumQueueMemoryMegabytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_048_576 })),
    maximumQueueDiskMegabytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_073_741_824 })),
    persistent: Type.Optional(Type.Boolean()),
    orderPolicy: Type.Optional(Type.Union([Type.Literal('key'), Type.Literal('thread'), Type.Literal('partition')])),
    manualStart: Type.Optional(Type.Boolean()),
    compression: Type.Optional(Type.Boolean()),
    /** Concurrent dispatchers, each with its own connection and batches in flight. */
    dispatcherThreads: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    /** Within a batch, only the latest event of each key is sent. */
    batchConflation: Type.Optional(Type.Boolean()),
    /** A queue per bucket on the bucket's holders, dispatched by each bucket's primary: partitioned regions only. */
    parallel: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type SenderDeclaration = Static<typeof SenderDeclaration>;

/** The gateway receiver as the site configuration holds it: `gateway-receiver` of strait.yaml, camelCase. */
export const ReceiverDeclaration = Type.Object(
  {
    startPort: Type.Optional(Port),
    endPort: Type.Optional(Port),
    bindAddress: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    hostnameForClients: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    manualStart: Type.Optional(Type.Boolean()),
    dialOut: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type ReceiverDeclaration = Static<typeof ReceiverDeclaration>;

/**
 * A site's configuration as its locators hold it (Geode's cluster configuration): what every
 * server of the site runs besides its own strait.yaml. The version increases with every change
 * the locators agreed on.
 */
export const SiteConfig = Type.Object(
  {
    version: Uint(),
    regions: Type.Array(RegionSpec, { maxItems: 10_000 }),
    senders: Type.Array(SenderDeclaration, { maxItems: 64 }),
    receiver: Type.Union([ReceiverDeclaration, Type.Null()]),
    remoteLocators: Type.Array(WireAddress, { maxItems: 64 }),
  },
  { additionalProperties: false },
);
export type SiteConfig = Static<typeof SiteConfig>;

/** One change to a site's configuration (`strait create|alter|destroy ...`, the admin API). */
export const ConfigChange = Type.Union([
  Type.Object({ kind: Type.Literal('createRegion'), spec: RegionSpec }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('alterRegion'), name: Name, gatewaySenderIds: Type.Array(Name, { maxItems: 64 }) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('destroyRegion'), name: Name }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('createSender'), spec: SenderDeclaration }, { additionalProperties: false }),
  Type.Object({
    kind: Type.Literal('alterSender'),
    id: Name,
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
    batchTimeIntervalMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000 })),
  }, { additionalProperties: false }),
  Type.Object({
    kind: Type.Literal('destroySender'),
    id: Name,
    /** Wait this long, at most, for every copy of the queue to drain first (default 60 s). */
    drainTimeoutMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
  }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('createReceiver'), spec: ReceiverDeclaration }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('destroyReceiver') }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('setRemoteLocators'), addresses: Type.Array(WireAddress, { maxItems: 64 }) }, { additionalProperties: false }),
]);
export type ConfigChange = Static<typeof ConfigChange>;

/** The answer to a configuration change: the version now current and each server's result. */
export const ConfigChangeResult = Type.Object(
  {
    version: Uint(),
    /** False when the configuration already said so (applying the same change twice). */
    changed: Type.Boolean(),
    members: Type.Array(Type.Object({ member: Name, version: Uint() }, { additionalProperties: false }), { maxItems: 10_000 }),
  },
  { additionalProperties: false },
);
export type ConfigChangeResult = Static<typeof ConfigChangeResult>;

export const WireErrorSchema = Type.Object(
  { code: Type.String({ maxLength: 64 }), message: Type.String({ maxLength: 8192 }), retryable: Type.Boolean() },
  { additionalProperties: false },
);

const Empty = Type.Object({}, { additionalProperties: false });

/**
 * What a site's locators know of one site: its locators, its gateway receivers, and the sites
 * its gateway senders ship to (the edges of the topology graph). The version orders entries
 * about the same site: newest wins, ties by author.
 */
export const SiteEntry = Type.Object(
  {
    site: SiteId,
    locators: Type.Array(WireAddress, { maxItems: 64 }),
    receivers: Type.Array(WireAddress, { maxItems: 1024 }),
    edges: Type.Array(SiteId, { maxItems: 255 }),
    version: Type.Tuple([Uint(), Name]),
    /**
     * True when the site accepts no connections from other sites (its receivers dial out): other
     * sites don't dial its locators, they answer over the links its locators and receivers open.
     */
    dialOut: Type.Optional(Type.Boolean()),
    /**
     * The servers hosting this site's gateway senders, and the sites they ship to: where a
     * dial-out site's receivers open their gateway links.
     */
    /** The site's locators and receivers through the routers (`router:<site>/<name>`), when registered with some. */
    routedLocators: Type.Optional(Type.Array(WireAddress, { maxItems: 64 })),
    routedReceivers: Type.Optional(Type.Array(WireAddress, { maxItems: 1024 })),
    senderHosts: Type.Optional(Type.Array(
      Type.Object({ address: WireAddress, sites: Type.Array(SiteId, { maxItems: 255 }) }, { additionalProperties: false }),
      { maxItems: 1024 },
    )),
  },
  { additionalProperties: false },
);
export type SiteEntry = Static<typeof SiteEntry>;

/** A member registered on a router: who, and since when (wall-clock ms). */
export const RouterRegistration = Type.Object(
  { site: SiteId, name: Name, role: Type.Union([Type.Literal('locator'), Type.Literal('server')]), sinceMs: Uint() },
  { additionalProperties: false },
);
export type RouterRegistration = Static<typeof RouterRegistration>;

export const SenderStatus = Type.Object(
  {
    id: Name,
    member: Name,
    remoteSite: SiteId,
    /** primary dispatches; secondaries hold copies of the queue and take over. */
    role: Type.Union([Type.Literal('primary'), Type.Literal('secondary')]),
    state: Type.Union([Type.Literal('running'), Type.Literal('paused'), Type.Literal('stopped')]),
    connectedReceiver: Type.Union([WireAddress, Type.Null()]),
    /** When batches go over a link a dial-out receiver opened: its name and address. */
    dialInFrom: Type.Optional(Type.String({ maxLength: 512 })),
    queueEvents: Uint(),
    queueBytes: Uint(),
    /** Events kept on disk beyond the memory limit. */
    overflowEvents: Uint(),
    batchesInFlight: Uint(),
    /**
     * The primary's send window (send-window.ts): batches it may have in flight (summed over
     * dispatcher threads), bytes of those in flight, and the acknowledgement times it was sized
     * from — the shortest on the connection and the shortest of the last round trip (ms, the
     * slowest thread's; null before the first acknowledgement).
     */
    sendWindow: Type.Optional(Type.Object({
      batches: Uint(),
      bytesInFlight: Uint(),
      baseRttMs: Type.Union([Type.Number({ minimum: 0 }), Type.Null()]),
      rttMs: Type.Union([Type.Number({ minimum: 0 }), Type.Null()]),
    }, { additionalProperties: false })),
    eventsSent: Uint(),
    /** batch-conflation: events left out because a later event of the same key went in the same batch. */
    eventsConflated: Type.Optional(Uint()),
    /** gateway-event-filters: hook calls that threw (STRAIT_FILTER_FAILED; the events went on). */
    filterFailures: Type.Optional(Uint()),
    /** Wall-clock ms of the last batch acknowledged by the remote site; 0 = none yet. */
    lastAckAtMs: Uint(),
    /** Age of the oldest queued event, ms (0 when empty). */
    lagMs: Uint(),
    deadLetters: Uint(),
    /** What is in the way, when something is: no receiver known, exchange failures, ... */
    problem: Type.Union([Type.String({ maxLength: 2048 }), Type.Null()]),
    /**
     * A parallel sender: the buckets this copy dispatches (it is `primary` when there is one),
     * and of the buckets it holds a copy of, those no running copy dispatches (stopped everywhere).
     */
    parallel: Type.Optional(Type.Object({ dispatching: Uint(), held: Uint(), undispatched: Uint() }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type SenderStatus = Static<typeof SenderStatus>;

/** One change shipped between sites; its tag's site is the origin site. */
export const GatewayEvent = Type.Tuple([
  Name, // region
  Key,
  Type.Union([Type.Uint8Array(), Type.Null()]),
  VersionTag,
  Type.Boolean(), // possible duplicate (resent after a sender failover)
]);
export type GatewayEvent = Static<typeof GatewayEvent>;

/**
 * Names one client write across its retries (the client's id and its counter). Servers remember
 * the ids they applied for a while, so a retry — to the same server or, after a failover, to
 * another — is not applied a second time under a new version tag.
 */
export const RequestId = Type.String({ minLength: 1, maxLength: 128 });

/** A region entry as it travels between servers: the value is absent for a tombstone. */
/** Entries in one `putBatch` or `getBatch`, at most (a client sends fewer: see src/client/batching.ts). */
export const BATCH_ENTRIES_MAX = 4096;
/** One entry of a batch its server did not apply (or could not read), by index, with the error. */
export const EntryRefusal = Type.Object({ index: Uint({ maximum: BATCH_ENTRIES_MAX }), code: Type.String({ maxLength: 64 }), message: Type.String({ maxLength: 8192 }), retryable: Type.Boolean() }, { additionalProperties: false });
export type EntryRefusal = Static<typeof EntryRefusal>;

export const WireEntry = Type.Tuple([Key, Type.Union([Type.Uint8Array(), Type.Null()]), VersionTag]);
export type WireEntry = Static<typeof WireEntry>;

/** Request operations: body schema and response schema. */
export const REQUESTS = {
  // Any member
  ping: { body: Empty, response: Empty },
  memberInfo: { body: Empty, response: Type.Object({ info: MemberInfo, state: Type.String(), viewId: Uint() }) },

  // Locator
  join: { body: Type.Object({ info: MemberInfo }, { additionalProperties: false }), response: Type.Object({ view: View }) },
  leave: { body: Type.Object({ id: Name }, { additionalProperties: false }), response: Empty },
  heartbeat: {
    body: Type.Object({
      id: Name, viewId: Uint(), load: Uint(), ready: Type.Boolean(),
      /** The site configuration version a server runs; the coordinator sends it a newer one. */
      configVersion: Type.Optional(Uint()),
      /** The member's info, when it changed since the view it holds (a receiver or sender created at runtime). */
      info: Type.Optional(MemberInfo),
    }, { additionalProperties: false }),
    response: Type.Object({ responder: Type.String({ maxLength: 256 }), viewId: Uint(), member: Type.Boolean(), coordinator: Type.Boolean() }),
  },
  /** Any locator: its current view (null while it has none) and its own identity and state. */
  getView: { body: Empty, response: Type.Object({ view: Type.Union([View, Type.Null()]), self: MemberInfo, state: Type.String({ maxLength: 32 }) }) },
  /** Any locator: the site configuration it holds. */
  siteConfig: { body: Empty, response: Type.Object({ config: SiteConfig }) },
  /** Any locator (forwarded to the coordinator): change the site configuration, on every locator and server. */
  configChange: { body: Type.Object({ change: ConfigChange }, { additionalProperties: false }), response: ConfigChangeResult },
  /** Coordinator → locator: store this configuration (a newer version than yours). */
  configCommit: { body: Type.Object({ config: SiteConfig }, { additionalProperties: false }), response: Type.Object({ version: Uint() }) },
  /** Coordinator → server: run this configuration; refused with the reason when it can't. */
  configApply: { body: Type.Object({ config: SiteConfig }, { additionalProperties: false }), response: Type.Object({ version: Uint() }) },
  locate: {
    body: Type.Object({ region: Type.Optional(Name), exclude: Type.Optional(Type.Array(Name, { maxItems: 1000 })) }, { additionalProperties: false }),
    response: Type.Object({ servers: Type.Array(Type.Object({ name: Name, address: WireAddress }), { maxItems: 10_000 }) }),
  },

  /**
   * Server → coordinator: create these buckets of a partitioned region (a write needs them), or,
   * with `held`, this server recovered them from disk and offers to hold them. Answered with the
   * view that assigns them.
   */
  bucketsCreate: {
    body: Type.Object({
      region: Name, settings: PartitionSettings, persistent: Type.Boolean(),
      buckets: Type.Array(Uint({ maximum: PARTITION_BUCKETS_MAX }), { maxItems: PARTITION_BUCKETS_MAX }),
      member: Name, held: Type.Optional(Type.Boolean()),
    }, { additionalProperties: false }),
    response: Type.Object({ view: View }),
  },
  /** Server → coordinator: `member` holds its image of the bucket; make it a copy. */
  bucketReady: {
    body: Type.Object({ region: Name, bucket: Uint({ maximum: PARTITION_BUCKETS_MAX }), member: Name }, { additionalProperties: false }),
    response: Type.Object({ view: View }),
  },
  /**
   * Any locator (run by the coordinator): even out the partitioned regions' buckets and
   * primaries over their servers (`regions`: only these). With `simulate`, only the plan.
   */
  rebalance: {
    body: Type.Object({ regions: Type.Optional(Type.Array(Name, { maxItems: 10_000 })), simulate: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
    response: Type.Object({
      regions: Type.Array(Type.Object({
        region: Name,
        /** Copies that move: bucket, from member, to member. */
        moves: Type.Array(Type.Tuple([Uint(), Name, Name]), { maxItems: 100_000 }),
        /** Primaries that change: bucket, from member, to member. */
        primaryMoves: Type.Array(Type.Tuple([Uint(), Name, Name]), { maxItems: 100_000 }),
      }, { additionalProperties: false }), { maxItems: 10_000 }),
      view: View,
    }),
  },
  /**
   * Server → the primary of the events' bucket: other sites' events for a partitioned region,
   * which a gateway receiver on another server of this site took. Applied with their tags, queued
   * for this site's senders, replicated to the bucket's copies; answered once all of that is
   * done, with the events refused (by index, coded).
   */
  bucketAdmit: {
    body: Type.Object({
      region: Name,
      events: Type.Array(Type.Tuple([Key, Type.Union([Type.Uint8Array(), Type.Null()]), VersionTag, Type.Boolean()]), { maxItems: 100_000 }),
      hops: Type.Optional(Uint({ maximum: 8 })),
    }, { additionalProperties: false }),
    response: Type.Object({
      refused: Type.Array(Type.Object({ index: Uint(), code: Type.String({ maxLength: 64 }), message: Type.String({ maxLength: 1024 }) }), { maxItems: 100_000 }),
      /** Events whose version the bucket already held, and those among them not flagged possible-duplicate. */
      duplicates: Uint(),
      unflaggedDuplicates: Uint(),
    }),
  },
  /** Server → server: the live keys and count of the buckets (keys and size of a partitioned region). */
  bucketKeys: {
    body: Type.Object({ region: Name, buckets: Type.Array(Uint({ maximum: PARTITION_BUCKETS_MAX }), { maxItems: PARTITION_BUCKETS_MAX }), countOnly: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
    response: Type.Object({ keys: Type.Array(Key), size: Uint() }),
  },

  // Server: region operations for clients. `hops` counts how often a server passed the
  // operation on to the primary of the key's bucket (a partitioned region).
  get: { body: Type.Object({ region: Name, key: Key, hops: Type.Optional(Uint({ maximum: 8 })) }, { additionalProperties: false }), response: Type.Object({ value: Type.Union([Type.Uint8Array(), Type.Null()]) }) },
  put: { body: Type.Object({ region: Name, key: Key, value: Type.Uint8Array(), requestId: Type.Optional(RequestId), hops: Type.Optional(Uint({ maximum: 8 })) }, { additionalProperties: false }), response: Empty },
  putAll: {
    body: Type.Object({
      region: Name, entries: Type.Array(Type.Tuple([Key, Type.Uint8Array()]), { maxItems: 100_000 }), requestId: Type.Optional(RequestId),
      hops: Type.Optional(Uint({ maximum: 8 })),
    }, { additionalProperties: false }),
    response: Empty,
  },
  remove: { body: Type.Object({ region: Name, key: Key, requestId: Type.Optional(RequestId), hops: Type.Optional(Uint({ maximum: 8 })) }, { additionalProperties: false }), response: Type.Object({ existed: Type.Boolean() }) },
  /**
   * Puts a client coalesced (those its application made in one event-loop turn): each entry a
   * put of its own, answered entry by entry — `refused` lists the entries not applied (by index,
   * coded), the rest are. One request id names the whole batch in a replicate region; in a
   * partitioned region entry i is a put with the id `<requestId>#<i>`.
   */
  putBatch: {
    body: Type.Object({
      region: Name, entries: Type.Array(Type.Tuple([Key, Type.Uint8Array()]), { maxItems: BATCH_ENTRIES_MAX }), requestId: Type.Optional(RequestId),
    }, { additionalProperties: false }),
    response: Type.Object({ refused: Type.Array(EntryRefusal, { maxItems: BATCH_ENTRIES_MAX }) }),
  },
  /** Gets a client coalesced: each key's value (null when absent), or its refusal. */
  getBatch: {
    body: Type.Object({ region: Name, keys: Type.Array(Key, { maxItems: BATCH_ENTRIES_MAX }) }, { additionalProperties: false }),
    response: Type.Object({
      values: Type.Array(Type.Union([Type.Uint8Array(), Type.Null()]), { maxItems: BATCH_ENTRIES_MAX }),
      refused: Type.Array(EntryRefusal, { maxItems: BATCH_ENTRIES_MAX }),
    }),
  },
  /**
   * A page of the region's live keys in sorted order: the first page (`after` absent or null)
   * snapshots them; `next` is the `after` of the next page, null after the last.
   */
  keys: {
    body: Type.Object({ region: Name, after: Type.Optional(Type.Union([Key, Type.Null()])), limit: Type.Optional(Uint({ maximum: 10_000 })) }, { additionalProperties: false }),
    response: Type.Object({ keys: Type.Array(Key, { maxItems: 10_000 }), next: Type.Union([Key, Type.Null()]) }),
  },
  size: { body: Type.Object({ region: Name }, { additionalProperties: false }), response: Type.Object({ size: Uint() }) },
  subscribe: { body: Type.Object({ region: Name }, { additionalProperties: false }), response: Type.Object({ subscription: Uint() }) },
  unsubscribe: { body: Type.Object({ subscription: Uint() }, { additionalProperties: false }), response: Empty },
  listRegions: {
    body: Empty,
    response: Type.Object({
      regions: Type.Array(Type.Object({
        spec: RegionSpec,
        size: Uint(),
        /** For a region created at runtime: the member ids its creation named as hosts. */
        hosts: Type.Optional(Type.Array(Name, { maxItems: 10_000 })),
        /**
         * The region comes from the site configuration: a joiner takes it from its own copy of
         * the configuration, never from a provider's (which may be a version behind).
         */
        fromConfig: Type.Optional(Type.Boolean()),
      })),
    }),
  },
  /**
   * A client or operator creates a region through one server, which creates it on every other
   * server of its view and answers once all have it. Between servers, `hosts` names the member
   * ids that will host it, so each knows who must accept its writes to the region.
   */
  createRegion: {
    body: Type.Object({ spec: RegionSpec, hosts: Type.Optional(Type.Array(Name, { maxItems: 10_000 })) }, { additionalProperties: false }),
    response: Type.Object({ created: Type.Boolean() }),
  },

  // Server ↔ server
  replicate: {
    body: Type.Object({
      region: Name,
      entries: Type.Array(WireEntry, { maxItems: 100_000 }),
      /** New changes entering the site (not images or push-backs): gateway senders queue them. */
      gateway: Type.Optional(Type.Boolean()),
      /** Client writes among the entries: their request ids, and whether a remove found a value. */
      requests: Type.Optional(Type.Array(Type.Tuple([RequestId, Type.Boolean()]), { maxItems: 100_000 })),
      /** The entries of a `putBatch` among `requests` that its server refused: a retry is answered the same. */
      refusals: Type.Optional(Type.Array(Type.Tuple([RequestId, Type.Array(EntryRefusal, { maxItems: BATCH_ENTRIES_MAX })]), { maxItems: 100_000 })),
      /**
       * The view the sender decided them under. A partitioned region's copy whose view is older
       * keeps the entries' buckets until it installs that view (the views between may not name
       * it yet); one whose view is as new and assigns it no copy of a bucket ignores its entries;
       * one whose view is newer refuses new changes (`gateway`) from a sender that is no longer
       * the bucket's primary, unless it is the primary now (STRAIT_BUCKET_MOVED).
       */
      viewId: Type.Optional(Type.Integer({ minimum: 0 })),
    }, { additionalProperties: false }),
    response: Empty,
  },
  /** Primary gateway sender → secondaries: these events reached the remote site. */
  senderAck: {
    body: Type.Object({
      sender: Name,
      ids: Type.Array(Type.String({ maxLength: 300 }), { maxItems: 100_000 }),
      /**
       * Events among `ids` the remote site refused, with its reason: every copy keeps them as
       * dead letters, so they survive the loss of the primary's disk.
       */
      deadLetters: Type.Optional(Type.Array(Type.Object({
        event: GatewayEvent, code: Type.String({ maxLength: 64 }), message: Type.String({ maxLength: 1024 }),
      }, { additionalProperties: false }), { maxItems: 100_000 })),
      /** Announces that the sending member's copy of this sender is stopped (or running). */
      stopped: Type.Optional(Type.Boolean()),
    }, { additionalProperties: false }),
    response: Empty,
  },

  /**
   * Secondary → primary: events the secondary has held for a while. The primary answers which
   * it already saw acknowledged (the secondary drops them) and queues the ones it never had.
   */
  senderHandoff: {
    body: Type.Object({ sender: Name, events: Type.Array(GatewayEvent, { maxItems: 10_000 }) }, { additionalProperties: false }),
    response: Type.Object({
      acknowledged: Type.Array(Type.String({ maxLength: 300 }), { maxItems: 10_000 }),
      /** Among `acknowledged`, the events the remote site refused: the secondary keeps them as dead letters. */
      refused: Type.Optional(Type.Array(Type.Object({
        id: Type.String({ maxLength: 300 }), code: Type.String({ maxLength: 64 }), message: Type.String({ maxLength: 1024 }),
      }, { additionalProperties: false }), { maxItems: 10_000 })),
    }),
  },

  /**
   * Joining server → the sender's primary: the queue's events after queue position `after`
   * (null: from the start), in queue order. `next` is the position to ask from next, null when
   * the page reached the end. Served once the primary installed view `viewId` (the joiner's),
   * so every later event is replicated to the joiner and every earlier one is in the image.
   */
  senderImage: {
    body: Type.Object({
      sender: Name, viewId: Uint(), after: Type.Union([Uint(), Type.Null()]), limit: Uint({ maximum: 10_000 }),
      /** A parallel sender: only this lane (`region/bucket`), asked of its dispatcher by a new copy of the bucket. */
      lane: Type.Optional(Type.String({ maxLength: 300 })),
    }, { additionalProperties: false }),
    response: Type.Object({ events: Type.Array(GatewayEvent, { maxItems: 10_000 }), next: Type.Union([Uint(), Type.Null()]) }),
  },

  // Locators across sites, and servers asking their locators
  wanExchange: {
    body: Type.Object({ from: SiteId, catalogue: Type.Array(SiteEntry, { maxItems: 255 }) }, { additionalProperties: false }),
    response: Type.Object({ catalogue: Type.Array(SiteEntry, { maxItems: 255 }) }),
  },
  catalogue: {
    body: Empty,
    response: Type.Object({
      catalogue: Type.Array(SiteEntry, { maxItems: 255 }),
      /** Remote locator exchanges that failed most recently, for sender status. */
      failures: Type.Array(Type.Object({ address: WireAddress, error: Type.String({ maxLength: 1024 }) }), { maxItems: 255 }),
    }),
  },

  // Gateway sender (remote site) → gateway receiver
  gatewayBatch: {
    body: Type.Object({
      sender: Name,
      batchId: Uint(),
      events: Type.Array(GatewayEvent, { maxItems: 100_000 }),
      /** zstd-compressed msgpack of the events, instead of `events`, when compression is on. */
      compressed: Type.Optional(Type.Uint8Array()),
      /**
       * The msgpack array of the events, instead of `events`: the sender's queue records hold
       * them encoded, and it sends those bytes rather than decoding and packing them again.
       */
      packed: Type.Optional(Type.Uint8Array()),
    }, { additionalProperties: false }),
    response: Type.Object({
      applied: Uint(),
      /** Events refused, by index in the batch, with the coded reason (e.g. no such region). */
      refused: Type.Array(Type.Object({ index: Uint(), code: Type.String({ maxLength: 64 }), message: Type.String({ maxLength: 1024 }) }), { maxItems: 100_000 }),
    }),
  },

  /**
   * A dial-out site's receiver, on the link it opened to a server of this site hosting senders
   * to it: "send my site's batches over this link". Sent again every heartbeat interval: it is
   * also the link's heartbeat, which the server answers and times out on.
   */
  gatewayAttach: {
    body: Type.Object({ site: SiteId, receiver: Name }, { additionalProperties: false }),
    response: Type.Object({ member: Name }),
  },

  // Member or router → router (router.ts). Both carry the mesh's shared secret.
  /** Registers this connection's member (or, for `kind: 'router'`, a router of the mesh). */
  routerRegister: {
    body: Type.Object({
      secret: Type.String({ maxLength: 1024 }),
      kind: Type.Union([Type.Literal('member'), Type.Literal('router')]),
      site: Type.Union([SiteId, Type.Null()]),
      name: Name,
      /** A router's advertised address, so the others of the mesh can dial it. */
      address: Type.Optional(WireAddress),
    }, { additionalProperties: false }),
    response: Type.Object({ router: Name }),
  },
  /** What a router holds: its registrations, and its mesh peers with theirs (`strait list routers`). */
  routerList: {
    body: Type.Object({ secret: Type.String({ maxLength: 1024 }) }, { additionalProperties: false }),
    response: Type.Object({
      router: Name,
      address: WireAddress,
      /** Every member the mesh holds, with the routers it is registered on. */
      registrations: Type.Array(Type.Object({
        site: SiteId, name: Name, role: Type.Union([Type.Literal('locator'), Type.Literal('server')]), sinceMs: Uint(),
        routers: Type.Array(Name, { maxItems: 1024 }),
      }, { additionalProperties: false }), { maxItems: 100_000 }),
      peers: Type.Array(Type.Object({
        name: Type.Union([Name, Type.Null()]),
        address: Type.Union([WireAddress, Type.Null()]),
        state: Type.Union([Type.Literal('connecting'), Type.Literal('connected'), Type.Literal('waiting')]),
        sinceMs: Uint(),
        error: Type.Union([Type.String({ maxLength: 1024 }), Type.Null()]),
        registrations: Uint(),
      }, { additionalProperties: false }), { maxItems: 1024 }),
    }),
  },

  // Gateway sender operations (admin API and CLI)
  senderStatus: {
    body: Type.Object({ id: Type.Optional(Name) }, { additionalProperties: false }),
    response: Type.Object({ senders: Type.Array(SenderStatus, { maxItems: 64 }) }),
  },
  senderControl: {
    body: Type.Object({
      id: Name,
      action: Type.Union([Type.Literal('pause'), Type.Literal('resume'), Type.Literal('stop'), Type.Literal('start'), Type.Literal('replayDeadLetters')]),
      /** stop only: wait this long for the queue to drain first; -1 = until drained. */
      drainTimeoutMs: Type.Optional(Type.Integer({ minimum: -1 })),
      /** Apply on every server of the site hosting the sender (the CLI's default). */
      everyMember: Type.Optional(Type.Boolean()),
    }, { additionalProperties: false }),
    response: Type.Object({ members: Type.Array(Type.Object({ member: Name, state: Type.String({ maxLength: 32 }) }), { maxItems: 1024 }) }),
  },
  /** A page of a region's entries (with `bucket`: of that bucket of a partitioned region). */
  image: {
    body: Type.Object({
      region: Name, viewId: Uint(), after: Type.Union([Key, Type.Null()]), limit: Uint({ maximum: 100_000 }),
      bucket: Type.Optional(Uint({ maximum: PARTITION_BUCKETS_MAX })),
    }, { additionalProperties: false }),
    response: Type.Object({ entries: Type.Array(WireEntry), done: Type.Boolean() }),
  },
} as const satisfies Record<string, { body: TSchema; response: TSchema }>;

export type RequestOp = keyof typeof REQUESTS;
export type RequestBody<Op extends RequestOp> = Static<(typeof REQUESTS)[Op]['body']>;
export type ResponseBody<Op extends RequestOp> = Static<(typeof REQUESTS)[Op]['response']>;


/** A member as routers address it. */
const RoutedMember = Type.Object({ site: SiteId, name: Name }, { additionalProperties: false });
/** Tunnel ids are chosen by the opener: its site and name, a random part and a counter. */
const TunnelId = Type.String({ minLength: 1, maxLength: 400 });

/** One-way messages. */
export const PUSHES = {
  /**
   * Member → router → member: open a tunnel (a byte stream relayed by routers) to `to`. The
   * router delivers it to `to` over `to`'s own registration, or hands it to the mesh peer that
   * holds one (one hop at most: `relayed` is set by that hop).
   */
  tunnelOpen: Type.Object({ tunnel: TunnelId, from: RoutedMember, to: RoutedMember, relayed: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  /** Bytes of a tunnel, in order, either way. */
  tunnelData: Type.Object({ tunnel: TunnelId, bytes: Type.Uint8Array({ maxByteLength: 1024 * 1024 }) }, { additionalProperties: false }),
  /** The tunnel ended (either end closed, a link broke, or `to` is not registered anywhere). */
  tunnelClose: Type.Object({ tunnel: TunnelId, reason: Type.String({ maxLength: 1024 }) }, { additionalProperties: false }),
  /** Router → mesh peer: every member registered on the sender, and the routers it knows. */
  routerTable: Type.Object({
    router: Name,
    registrations: Type.Array(RouterRegistration, { maxItems: 100_000 }),
    routers: Type.Array(WireAddress, { maxItems: 1024 }),
  }, { additionalProperties: false }),
  /** Locator → members: a new view was installed. */
  view: Type.Object({ view: View }, { additionalProperties: false }),
  /** Server → client: a change applied to a subscribed region. */
  event: Type.Object(
    {
      subscription: Uint(),
      region: Name,
      key: Key,
      value: Type.Union([Type.Uint8Array(), Type.Null()]),
      tag: VersionTag,
    },
    { additionalProperties: false },
  ),
  /**
   * Server → client: this server ended the subscription (e.g. the client did not take its
   * events fast enough). Changes after it are not delivered; the client subscribes again.
   */
  subscriptionEnded: Type.Object({ subscription: Uint(), error: WireErrorSchema }, { additionalProperties: false }),
} as const satisfies Record<string, TSchema>;

export type PushOp = keyof typeof PUSHES;
export type PushBody<Op extends PushOp> = Static<(typeof PUSHES)[Op]>;

/** The frames of a connection. `hello` / `welcome` open it; then requests, responses, pushes. */
export const ENVELOPES = {
  hello: Type.Object(
    {
      t: Type.Literal('hello'),
      versionMin: Uint(),
      versionMax: Uint(),
      role: Role,
      name: Name,
      site: Type.Union([SiteId, Type.Null()]),
      /** The largest frame body this side accepts: the peer never sends a larger one. */
      frameBytesMax: Uint({ maximum: 0xffff_ffff }),
      /** A client's or admin's token, when it has no certificate (protocol/authentication.ts). */
      token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    },
    { additionalProperties: false },
  ),
  welcome: Type.Object(
    {
      t: Type.Literal('welcome'), version: Uint(), role: Role, name: Name, site: Type.Union([SiteId, Type.Null()]),
      frameBytesMax: Uint({ maximum: 0xffff_ffff }),
    },
    { additionalProperties: false },
  ),
  request: Type.Object(
    { t: Type.Literal('req'), id: Uint(), op: Type.String({ maxLength: 64 }), body: Type.Unknown() },
    { additionalProperties: false },
  ),
  response: Type.Object(
    { t: Type.Literal('res'), id: Uint(), body: Type.Optional(Type.Unknown()), error: Type.Optional(WireErrorSchema) },
    { additionalProperties: false },
  ),
  push: Type.Object(
    { t: Type.Literal('push'), op: Type.String({ maxLength: 64 }), body: Type.Unknown() },
    { additionalProperties: false },
  ),
  /** Sent before closing a connection for a protocol error, so the peer can log the code. */
  error: Type.Object({ t: Type.Literal('error'), error: WireErrorSchema }, { additionalProperties: false }),
} as const;

export type Hello = Static<typeof ENVELOPES.hello>;
export type Welcome = Static<typeof ENVELOPES.welcome>;
export type RequestEnvelope = Static<typeof ENVELOPES.request>;
export type ResponseEnvelope = Static<typeof ENVELOPES.response>;
export type PushEnvelope = Static<typeof ENVELOPES.push>;
export type ErrorEnvelope = Static<typeof ENVELOPES.error>;
export type Envelope = Hello | Welcome | RequestEnvelope | ResponseEnvelope | PushEnvelope | ErrorEnvelope;
