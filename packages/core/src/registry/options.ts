import {
  ConfigError,
  createLogger,
  describeValue as describe,
  resolveRedisOption,
  validateBaseUrl,
  validateInstanceId,
  validateLabels,
  validateNamespace,
  type Logger,
  type RedisOption,
  type RedisTarget,
} from '@wafleet/protocol';
import type { Outbox } from '../outbox/outbox.js';

/** Lease timing. All durations in milliseconds. */
export interface TimingOptions {
  /** How often the instance renews its lease (one Redis call per instance, whatever its session count). */
  heartbeatIntervalMs: number;
  /** How long a lease lives after its last renewal, measured by Redis server time. */
  leaseTtlMs: number;
  /**
   * How long after the last acknowledged renewal (local monotonic clock) the instance stops its sessions on
   * its own. Must leave room for clock-rate error and stop time before `leaseTtlMs` ends.
   */
  selfFenceMs: number;
  /**
   * How long after a lease expired its sessions may be adopted elsewhere. Recorded in the registry at registration;
   * every adoption decision uses the largest delay any instance of the namespace registered (so one instance
   * configured with less cannot shorten another's pause budget), never a caller's own.
   */
  adoptionDelayMs: number;
  /** How often each instance looks for orphaned and unplaced sessions. */
  sweepIntervalMs: number;
}

/**
 * Named timing profiles. `default` fails over in about 8 s and tolerates pauses up to 2.5 s (minus stop time);
 * `tolerant` rides out a Redis Sentinel/Cluster failover of up to ~25 s at the price of ~55 s failover.
 */
export const TIMING_PROFILES = Object.freeze({
  default: Object.freeze({ heartbeatIntervalMs: 1000, leaseTtlMs: 6000, selfFenceMs: 4500, adoptionDelayMs: 1000, sweepIntervalMs: 1000 }),
  tolerant: Object.freeze({
    heartbeatIntervalMs: 3000,
    leaseTtlMs: 45000,
    selfFenceMs: 30000,
    adoptionDelayMs: 10000,
    sweepIntervalMs: 2000,
  }),
}) satisfies Record<string, TimingOptions>;

/** Name of a timing profile. */
export type TimingProfile = keyof typeof TIMING_PROFILES;

/** What the host does to stop a session's engine before it is released or handed off. */
export type StopSession = (sessionId: string, reason: 'release' | 'handoff') => Promise<void> | void;

/** Options of {@link createFleet}. */
export interface FleetOptions extends Partial<TimingOptions> {
  /**
   * A Redis URL (`redis://user:password@host:6379/0`, `rediss://` for TLS), a list of Cluster node URLs,
   * `{ url | nodes, tls }` for TLS options, or an ioredis `Redis`/`Cluster` (never closed by wafleet).
   */
  redis: RedisOption;
  /** Namespace of this fleet; fleets in different namespaces never see each other. @default 'default' */
  namespace?: string;
  /** Stable name of this instance (e.g. the pod name). No ':', '{', '}' or control characters. */
  instanceId: string;
  /** The URL callers use to reach this instance's HTTP API. */
  url: string;
  /** Most sessions this instance may hold, starting ones included. */
  maxSessions: number;
  /**
   * Most resident memory this instance's browsers may use (bytes), next to `maxSessions`: while the memory its
   * supervisor last reported (`reportMemory`) is at or above it, placement skips this instance and its own claims
   * are refused (`CapacityError` with `resource: 'memory'`); placement prefers the instance with the most room in
   * either. @default none (sessions are counted, memory is not)
   */
  memoryBudgetBytes?: number;
  /** Labels placement matches against a session's required labels, e.g. `{ auth: 's3' }`. @default {} */
  labels?: Record<string, string>;
  /**
   * `managed` enforces ownership; `observe` only records heartbeats and claims (no refusals, no fencing, no
   * adoption) so an existing fleet can roll wafleet out step by step. @default 'managed'
   */
  mode?: 'managed' | 'observe';
  /** Timing profile the individual timing options override. @default 'default' */
  profile?: TimingProfile;
  /**
   * How long after Redis lost its data, failed over to a replica or restarted from its files (a new era) only the
   * instances that run a session may claim it. @default leaseTtlMs + adoptionDelayMs
   */
  quarantineMs?: number;
  /** Most sessions one sweep orphans and places (bounds Lua run time). @default 100 */
  sweepBatch?: number;
  /**
   * First retry delay of a placement that found no capacity; doubled per attempt. Recorded in the registry at
   * registration; placement uses the largest any instance of the namespace registered. @default 1000
   */
  placementRetryMs?: number;
  /** Longest placement retry delay; recorded like `placementRetryMs`. @default 30000 */
  placementRetryMaxMs?: number;
  /** Timeout of registry commands other than heartbeats. @default 2000 */
  commandTimeoutMs?: number;
  /**
   * With replicas, how long a session start waits for one to acknowledge its grant (`WAIT 1`, see `Fleet.replicated`);
   * 0 never waits. Less than `commandTimeoutMs`. @default 1000, or half of a shorter `commandTimeoutMs`
   */
  replicaAckTimeoutMs?: number;
  /** Stops a session's engine before release and handoff. Without it the host stops sessions itself. */
  stopSession?: StopSession;
  /** Longest wait for `stopSession` (a supervisor sets its own, longer deadline through `setStopSession`). @default 10000 */
  stopTimeoutMs?: number;
  /** Sessions handed off at once while draining. @default 4 */
  handoffConcurrency?: number;
  /** pino, winston or console-like logger. @default no logging */
  logger?: unknown;
  /**
   * Where status webhooks go: `setStatus` enqueues `session.status` on every transition and the ready event when a
   * session becomes WORKING. Webhooks keep flowing while Redis is unreachable.
   */
  outbox?: Outbox;
  /** Wire name of the ready event, e.g. `session_ready` for existing receivers. @default 'session.ready' */
  readyEventType?: string;
  /** Largest session metadata accepted by claim, place and setMetadata, as JSON (UTF-8 bytes). @default 4096 */
  maxMetadataBytes?: number;
}

/** Options after defaults and validation. */
export interface ResolvedFleetOptions extends TimingOptions {
  redis: RedisTarget;
  namespace: string;
  instanceId: string;
  url: string;
  maxSessions: number;
  memoryBudgetBytes: number | undefined;
  labels: Readonly<Record<string, string>>;
  mode: 'managed' | 'observe';
  quarantineMs: number;
  replicaAckTimeoutMs: number;
  sweepBatch: number;
  placementRetryMs: number;
  placementRetryMaxMs: number;
  commandTimeoutMs: number;
  stopSession: StopSession | undefined;
  stopTimeoutMs: number;
  handoffConcurrency: number;
  logger: Logger;
  outbox: Outbox | undefined;
  readyEventType: string;
  maxMetadataBytes: number;
}

/** Defaults of the options that are not timing. */
export const FLEET_DEFAULTS = Object.freeze({
  namespace: 'default',
  mode: 'managed' as const,
  profile: 'default' as const,
  sweepBatch: 100,
  placementRetryMs: 1000,
  placementRetryMaxMs: 30000,
  commandTimeoutMs: 2000,
  replicaAckTimeoutMs: 1000,
  stopTimeoutMs: 10000,
  handoffConcurrency: 4,
  maxMetadataBytes: 4096,
});

/** `value` when it is an integer in range; a ConfigError naming `option` otherwise (every core option is checked so). */
export function integer(option: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
    throw new ConfigError(option, `Expected \`${option}\` to be ${range}, got ${describe(value)}`);
  }
  return value;
}

function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new ConfigError(option, `Expected \`${option}\` to be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(value)}`);
  }
  return value as T;
}

function redisOf(value: unknown): RedisTarget {
  return resolveRedisOption(value);
}

/** Validates types, ranges and cross-field rules (heartbeat < self-fence < TTL); throws {@link ConfigError}. */
export function resolveTiming(options: Partial<TimingOptions> & { profile?: unknown }): TimingOptions {
  const profile = oneOf('profile', options.profile ?? FLEET_DEFAULTS.profile, Object.keys(TIMING_PROFILES) as TimingProfile[]);
  const base = TIMING_PROFILES[profile];
  const t: TimingOptions = {
    heartbeatIntervalMs: integer('heartbeatIntervalMs', options.heartbeatIntervalMs ?? base.heartbeatIntervalMs, 10),
    leaseTtlMs: integer('leaseTtlMs', options.leaseTtlMs ?? base.leaseTtlMs, 30),
    selfFenceMs: integer('selfFenceMs', options.selfFenceMs ?? base.selfFenceMs, 20),
    adoptionDelayMs: integer('adoptionDelayMs', options.adoptionDelayMs ?? base.adoptionDelayMs, 0),
    sweepIntervalMs: integer('sweepIntervalMs', options.sweepIntervalMs ?? base.sweepIntervalMs, 10),
  };
  if (t.selfFenceMs < 2 * t.heartbeatIntervalMs) {
    throw new ConfigError(
      'selfFenceMs',
      `Expected \`selfFenceMs\` (${t.selfFenceMs}) to be at least twice \`heartbeatIntervalMs\` (${t.heartbeatIntervalMs}), so one lost heartbeat does not stop every session`,
    );
  }
  if (t.selfFenceMs >= t.leaseTtlMs) {
    throw new ConfigError(
      'selfFenceMs',
      `Expected \`selfFenceMs\` (${t.selfFenceMs}) to be less than \`leaseTtlMs\` (${t.leaseTtlMs}): an instance must stop its sessions before its lease can expire`,
    );
  }
  return t;
}

/** Applies defaults to {@link FleetOptions} and validates them; throws {@link ConfigError}. Never mutates `options`. */
export function resolveFleetOptions(options: FleetOptions): ResolvedFleetOptions {
  if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'Expected an options object');
  const timing = resolveTiming(options);
  if (options.stopSession !== undefined && typeof options.stopSession !== 'function') {
    throw new ConfigError('stopSession', 'Expected `stopSession` to be a function');
  }
  const placementRetryMs = integer('placementRetryMs', options.placementRetryMs ?? FLEET_DEFAULTS.placementRetryMs, 1);
  const resolved: ResolvedFleetOptions = {
    ...timing,
    redis: redisOf(options.redis),
    namespace: validateNamespace(options.namespace ?? FLEET_DEFAULTS.namespace),
    instanceId: validateInstanceId(options.instanceId),
    url: validateBaseUrl('url', options.url),
    maxSessions: integer('maxSessions', options.maxSessions, 1, 100_000),
    memoryBudgetBytes: options.memoryBudgetBytes === undefined ? undefined : integer('memoryBudgetBytes', options.memoryBudgetBytes, 1),
    labels: Object.freeze(options.labels === undefined ? {} : validateLabels('labels', options.labels)),
    mode: oneOf('mode', options.mode ?? FLEET_DEFAULTS.mode, ['managed', 'observe']),
    quarantineMs: integer('quarantineMs', options.quarantineMs ?? timing.leaseTtlMs + timing.adoptionDelayMs, 0),
    sweepBatch: integer('sweepBatch', options.sweepBatch ?? FLEET_DEFAULTS.sweepBatch, 1, 500),
    placementRetryMs,
    placementRetryMaxMs: integer(
      'placementRetryMaxMs',
      options.placementRetryMaxMs ?? FLEET_DEFAULTS.placementRetryMaxMs,
      placementRetryMs,
    ),
    commandTimeoutMs: integer('commandTimeoutMs', options.commandTimeoutMs ?? FLEET_DEFAULTS.commandTimeoutMs, 10),
    replicaAckTimeoutMs: 0,
    stopSession: options.stopSession,
    stopTimeoutMs: integer('stopTimeoutMs', options.stopTimeoutMs ?? FLEET_DEFAULTS.stopTimeoutMs, 1),
    handoffConcurrency: integer('handoffConcurrency', options.handoffConcurrency ?? FLEET_DEFAULTS.handoffConcurrency, 1, 64),
    logger: createLogger(options.logger, 'fleet'),
    outbox: options.outbox,
    readyEventType: options.readyEventType ?? 'session.ready',
    maxMetadataBytes: integer('maxMetadataBytes', options.maxMetadataBytes ?? FLEET_DEFAULTS.maxMetadataBytes, 2, 1_048_576),
  };
  if (typeof resolved.readyEventType !== 'string' || !/^[\w.:-]{1,128}$/.test(resolved.readyEventType)) {
    throw new ConfigError(
      'readyEventType',
      `Expected \`readyEventType\` to match [A-Za-z0-9_.:-]{1,128}, got ${describe(options.readyEventType)}`,
    );
  }
  if (resolved.outbox !== undefined && typeof (resolved.outbox as { enqueue?: unknown }).enqueue !== 'function') {
    throw new ConfigError('outbox', 'Expected `outbox` to be an Outbox from createOutbox()');
  }
  // Default: 1 s, or less than half the command timeout when that is short.
  resolved.replicaAckTimeoutMs = integer(
    'replicaAckTimeoutMs',
    options.replicaAckTimeoutMs ?? Math.min(FLEET_DEFAULTS.replicaAckTimeoutMs, Math.floor(resolved.commandTimeoutMs / 2)),
    0,
    60_000,
  );
  if (resolved.replicaAckTimeoutMs >= resolved.commandTimeoutMs) {
    throw new ConfigError(
      'replicaAckTimeoutMs',
      `Expected \`replicaAckTimeoutMs\` (${resolved.replicaAckTimeoutMs}) to be less than \`commandTimeoutMs\` (${resolved.commandTimeoutMs}): the wait is a Redis command`,
    );
  }
  if (resolved.quarantineMs > 0 && resolved.quarantineMs < resolved.selfFenceMs) {
    throw new ConfigError(
      'quarantineMs',
      `Expected \`quarantineMs\` (${resolved.quarantineMs}) to be 0 or at least \`selfFenceMs\` (${resolved.selfFenceMs}): previous owners need that long to re-assert or stop`,
    );
  }
  return resolved;
}
