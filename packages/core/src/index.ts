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
  type FenceReason,
} from './errors.js';
export { validateSessionId, validateInstanceId, validateNamespace, MAX_SESSION_ID_LENGTH, MAX_INSTANCE_ID_LENGTH } from './ids.js';
export { createLogger, wafleetLogger, type Logger, type LogFields, type LogPrivacyOptions } from './logger.js';
export { validateLabels, MAX_LABELS } from './labels.js';
export { validateBaseUrl, urlUnder } from './urls.js';
export { describe as describeValue } from './describe.js';
export { registryKeys, type RegistryKeys } from './registry/keys.js';
export type { RedisOption, RedisEndpoint } from './registry/redis.js';
export {
  resolveFleetOptions,
  resolveTiming,
  TIMING_PROFILES,
  FLEET_DEFAULTS,
  type FleetOptions,
  type ResolvedFleetOptions,
  type TimingOptions,
  type TimingProfile,
  type StopSession,
} from './registry/options.js';
export {
  createFleet,
  compareEpochs,
  Fleet,
  SESSION_STATUSES,
  type FleetState,
  type SessionStatus,
  type Ownership,
  type AssignedEvent,
  type FencedEvent,
  type EpochEvent,
  type SessionOwner,
  type InstanceInfo,
  type PlaceResult,
  type PlaceOptions,
  type DrainResult,
  type FleetStats,
  type FleetEvents,
} from './registry/fleet.js';
export { ReplyCode } from './registry/reply-codes.js';
export { MAX_METADATA_BYTES, serializeMetadata, type SessionMetadata } from './registry/metadata.js';
export { STOP_REASON_KINDS, stopReason, type StopReasonKind } from './registry/stop-reason.js';
export {
  createOutbox,
  Outbox,
  type OutboxOptions,
  type OutboxEvent,
  type OutboxEvents,
  type OutboxStats,
  type AttemptOutcome,
} from './outbox/outbox.js';
export {
  envelopeProblem,
  EVENT_TYPE,
  CANONICAL_EPOCH,
  STATE_EVENT_TYPES,
  type WebhookEnvelope,
  type EnvelopeProblem,
} from './webhook/envelope.js';
export { parseWebhookSecret, WEBHOOK_SECRET_BYTES } from './webhook/secret.js';
export { standardWebhooksSigner, legacyHmacSigner, type Signer, type SignInput } from './outbox/signers.js';
export { legacyBody, type BodyFormat, type LegacyBody } from './outbox/body-format.js';
export type { AdoptOrphansOptions, AdoptedOutbox } from './outbox/orphans.js';
export { SqliteOutboxStore, OutboxStoreError } from './outbox/sqlite-store.js';
export type { OutboxStore, EventRow, NewEvent, ReplayFilter, StoreCounts } from './outbox/store.js';
export { DEFAULT_SCHEDULE_MS } from './outbox/schedule.js';
export type { EngineEvent, EngineContext, SessionEngine, EngineFactory } from './supervisor/engine.js';
export {
  createSupervisor,
  Supervisor,
  type SupervisorOptions,
  type SupervisorEvents,
  type SupervisedSession,
  type Transition,
  type DeadmanLike,
} from './supervisor/supervisor.js';
export {
  startDeadmanSwitch,
  type DeadmanSwitch,
  type DeadmanSwitchEvents,
  type DeadmanSwitchOptions,
  type DeadmanFiredEvent,
  type DeadmanFireReason,
} from './deadman/deadman-switch.js';
