/** Stable error codes. Callers branch on `error.code`, never on messages. */
export type WafleetErrorCode =
  | 'WAFLEET_CONFIG'
  | 'WAFLEET_INVALID_ID'
  | 'WAFLEET_OWNED_ELSEWHERE'
  | 'WAFLEET_OWNER_EXPIRING'
  | 'WAFLEET_CAPACITY'
  | 'WAFLEET_QUARANTINE'
  | 'WAFLEET_LEASE_LOST'
  | 'WAFLEET_DUPLICATE_INSTANCE'
  | 'WAFLEET_NOT_OWNER'
  | 'WAFLEET_DRAINING'
  | 'WAFLEET_NOT_FOUND'
  | 'WAFLEET_NOT_STARTED'
  | 'WAFLEET_CLOSED'
  | 'WAFLEET_REDIS_REPLY'
  | 'WAFLEET_REDIS_AUTH'
  | 'WAFLEET_REDIS_CONNECT'
  | 'WAFLEET_MISDIRECTED'
  | 'WAFLEET_STALE_EPOCH'
  | 'WAFLEET_FAILOVER_TIMEOUT'
  | 'WAFLEET_IDEMPOTENCY_IN_FLIGHT'
  | 'WAFLEET_IDEMPOTENCY_UNKNOWN_OUTCOME'
  | 'WAFLEET_IDEMPOTENCY_MISMATCH'
  | 'WAFLEET_UNAUTHORIZED'
  | 'WAFLEET_REDIS_UNAVAILABLE'
  | 'WAFLEET_INTERNAL'
  | 'WAFLEET_RESPONSE_TOO_LARGE'
  | 'WAFLEET_WEBHOOK_INVALID'
  | 'WAFLEET_OUTBOX_STORE'
  | 'WAFLEET_EVENT_INVALID'
  | 'WAFLEET_EVENT_TOO_LARGE'
  | 'WAFLEET_SESSION_STARTING'
  | 'WAFLEET_NO_OWNER'
  | 'WAFLEET_FORWARD_FAILED'
  | 'WAFLEET_DATA_CORRUPT'
  | 'WAFLEET_DATA_TOO_LARGE'
  | 'WAFLEET_DATA_UPLOAD_EXPIRED'
  | 'WAFLEET_SESSION_NOT_WORKING'
  | 'WAFLEET_SEND_UNACKNOWLEDGED'
  | 'WAFLEET_SEND_FAILED';

/** Base class of every error wafleet throws: a stable `code` and, where there is one, a `cause`. */
export class WafleetError extends Error {
  readonly code: WafleetErrorCode;

  constructor(code: WafleetErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An option is missing, of the wrong type, out of range, or inconsistent with another option. */
export class ConfigError extends WafleetError {
  /** The option to change. */
  readonly option: string;

  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super('WAFLEET_CONFIG', message, options);
    this.option = option;
  }
}

/** A session id, instance id or namespace that cannot be stored safely. Nothing was written. */
export class InvalidIdError extends WafleetError {
  readonly kind: 'session' | 'instance' | 'namespace';

  constructor(kind: 'session' | 'instance' | 'namespace', message: string) {
    super('WAFLEET_INVALID_ID', message);
    this.kind = kind;
  }
}

/** A live instance owns the session. `owner`, `ownerUrl` and `epoch` say where to go instead. */
export class OwnedElsewhereError extends WafleetError {
  constructor(
    readonly sessionId: string,
    readonly owner: string,
    readonly epoch: string,
    readonly ownerUrl: string,
  ) {
    super('WAFLEET_OWNED_ELSEWHERE', `Session ${sessionId} is owned by instance ${owner} (epoch ${epoch})`);
  }
}

/**
 * The owner's lease is dead, but the adoption delay has not passed: the owner may be paused and still running
 * the session. Retry after `retryAfterMs`.
 */
export class OwnerExpiringError extends WafleetError {
  constructor(
    readonly sessionId: string,
    readonly owner: string,
    readonly retryAfterMs: number,
  ) {
    super('WAFLEET_OWNER_EXPIRING', `Session ${sessionId}: lease of owner ${owner} expired; adoptable in ${retryAfterMs} ms`);
  }
}

/** This instance holds `maxSessions` sessions already (starting ones included). */
export class CapacityError extends WafleetError {
  constructor(
    readonly sessionId: string,
    readonly load: number,
    readonly maxSessions: number,
    /** What is full: the session count, or the memory its browsers may use (`memoryBudgetBytes`). */
    readonly resource: 'sessions' | 'memory' = 'sessions',
  ) {
    super(
      'WAFLEET_CAPACITY',
      resource === 'memory'
        ? `Cannot take session ${sessionId}: the instance's browsers use its whole memory budget (${load} of maxSessions ${maxSessions} sessions)`
        : `Cannot take session ${sessionId}: instance holds ${load} of maxSessions ${maxSessions}`,
    );
  }
}

/**
 * Redis lost its data recently (restart without persistence, failover to an empty replica): until previous
 * owners have re-asserted or self-fenced, only they may claim. Retry after `retryAfterMs`.
 */
export class QuarantineError extends WafleetError {
  constructor(readonly retryAfterMs: number) {
    super('WAFLEET_QUARANTINE', `Registry in quarantine after data loss for another ${retryAfterMs} ms`);
  }
}

/** Why an instance or a session stopped being ours. */
/** Why sessions were fenced: a closed set (metric labels). */
export const FENCE_REASONS = ['deadline', 'expired', 'missing', 'replaced', 'taken', 'closed'] as const;
export type FenceReason = (typeof FENCE_REASONS)[number];

/** This instance no longer holds a valid lease (or the session's record names another owner). */
export class LeaseLostError extends WafleetError {
  constructor(
    readonly reason: FenceReason,
    sessionId?: string,
  ) {
    super('WAFLEET_LEASE_LOST', sessionId ? `Lease lost for session ${sessionId} (${reason})` : `Instance lease lost (${reason})`);
  }
}

/** Another incarnation of this instance id is alive, or within its adoption delay. */
export class DuplicateInstanceError extends WafleetError {
  constructor(
    readonly instanceId: string,
    readonly retryAfterMs: number,
  ) {
    super('WAFLEET_DUPLICATE_INSTANCE', `Instance id ${instanceId} is held by another live process; free in ${retryAfterMs} ms`);
  }
}

/** The caller tried to change a session it does not own. */
export class NotOwnerError extends WafleetError {
  constructor(
    readonly sessionId: string,
    readonly owner: string,
    readonly epoch: string,
  ) {
    super('WAFLEET_NOT_OWNER', `Session ${sessionId} is owned by ${owner || 'nobody'} (epoch ${epoch}), not by this instance`);
  }
}

/** The instance is draining and takes no new sessions. */
export class DrainingError extends WafleetError {
  constructor(readonly sessionId: string) {
    super('WAFLEET_DRAINING', `Cannot take session ${sessionId}: this instance is draining`);
  }
}

/** The registry has no record of the session. */
export class NotFoundError extends WafleetError {
  constructor(readonly sessionId: string) {
    super('WAFLEET_NOT_FOUND', `Session ${sessionId} is not in the registry`);
  }
}

/** The call needs a started (or not yet closed) fleet. */
export class StateError extends WafleetError {
  constructor(code: 'WAFLEET_NOT_STARTED' | 'WAFLEET_CLOSED', message: string) {
    super(code, message);
  }
}

/** Redis answered something no wafleet script returns: a version mix-up or a foreign key in our namespace. */
export class RedisReplyError extends WafleetError {
  constructor(script: string, reply: unknown) {
    super('WAFLEET_REDIS_REPLY', `Unexpected reply from script ${script}: ${JSON.stringify(reply)?.slice(0, 200)}`);
  }
}
