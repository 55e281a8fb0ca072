// @wafleet/protocol: what instances, backends and the PHP kit must agree on, with no instance-side code and no
// native dependency. @wafleet/core and @wafleet/client build on it; hosts normally import those instead.
export {
  WafleetError,
  ConfigError,
  InvalidIdError,
  OwnedElsewhereError,
  OwnerExpiringError,
  CapacityError,
  QuarantineError,
  LeaseLostError,
  DuplicateInstanceError,
  NotOwnerError,
  DrainingError,
  NotFoundError,
  StateError,
  RedisReplyError,
  type WafleetErrorCode,
  FENCE_REASONS,
  type FenceReason,
} from './errors.js';
export { describe as describeValue } from './describe.js';
export {
  validateSessionId,
  validateInstanceId,
  validateNamespace,
  MAX_SESSION_ID_LENGTH,
  MAX_INSTANCE_ID_LENGTH,
  SESSION_ID_PATTERN,
  INSTANCE_ID_PATTERN,
  NAMESPACE_PATTERN,
} from './ids.js';
export { validateLabels, MAX_LABELS } from './labels.js';
export { validateBaseUrl, urlUnder } from './urls.js';
export { createLogger, wafleetLogger, type Logger, type LogFields, type LogPrivacyOptions } from './logger.js';
export { compareEpochs } from './epochs.js';
export {
  EPOCH_HEADER,
  SERVED_EPOCH_HEADER,
  IDEMPOTENCY_HEADER,
  REPLAYED_HEADER,
  FORWARDED_HEADER,
  FORWARDED_BY_HEADER,
} from './headers.js';
export {
  registryKeys,
  idempotencyRecordKey,
  inboxKeys,
  sessionBlobKey,
  UPLOAD_ID_PATTERN,
  type InboxKeys,
  type RegistryKeys,
} from './keys.js';
export {
  connect,
  connectionFor,
  disconnect,
  open,
  resolveRedisOption,
  runScript,
  type Connection,
  type ConnectionRole,
  type RedisEndpoint,
  type RedisLike,
  type RedisOption,
  type RedisTarget,
  type Script,
} from './redis.js';
export {
  ReplyCode,
  asReply,
  parseReply,
  replyError,
  type ParsedReply,
  type Reply,
  type ReplyShape,
  type ReplyShapes,
} from './reply-codes.js';
/** The registry's Lua scripts (`lua.scripts`) and one typed caller per script (`lua.claim(redis, keys, args)`). */
export * as lua from './scripts.generated.js';
export { scripts } from './scripts.generated.js';
export { parsePush, type OwnerPush } from './push.js';
export { MAX_METADATA_BYTES, serializeMetadata, metadataArg, parseMetadata, type SessionMetadata } from './metadata.js';
export { STOP_REASON_KINDS, stopReason, type StopReasonKind } from './stop-reason.js';
export {
  SESSION_STATUSES,
  labelsArg,
  lookupOwner,
  listInstances,
  placeSession,
  stopUnowned,
  type SessionStatus,
  type SessionOwner,
  type OwnerRoute,
  type InstanceInfo,
  type PlaceResult,
  type PlaceOptions,
  type PlacementTiming,
} from './queries.js';
export {
  envelopeProblem,
  EVENT_TYPE,
  CANONICAL_EPOCH,
  STATE_EVENT_TYPES,
  type WebhookEnvelope,
  type EnvelopeProblem,
} from './webhook/envelope.js';
export { parseWebhookSecret, WEBHOOK_SECRET_BYTES } from './webhook/secret.js';
export { within } from './within.js';
export { forEachSessionRecord, readFleetCensus, type FleetCensus, type SessionRecordView } from './census.js';
