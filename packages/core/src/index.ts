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
export { createLogger, type Logger, type LogFields } from './logger.js';
export { registryKeys, type RegistryKeys } from './registry/keys.js';
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
  type DrainResult,
  type FleetStats,
  type FleetEvents,
} from './registry/fleet.js';
export { ReplyCode } from './registry/reply-codes.js';
