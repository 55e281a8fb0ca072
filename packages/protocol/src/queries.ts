import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { describe } from './describe.js';
import { ConfigError } from './errors.js';
import { validateInstanceId } from './ids.js';
import { validateLabels } from './labels.js';
import type { RegistryKeys } from './keys.js';
import type { RedisLike } from './redis.js';
import { metadataArg, parseMetadata, type SessionMetadata } from './metadata.js';
import { replyError } from './reply-codes.js';
import * as lua from './scripts.generated.js';

/** Session statuses, the vocabulary WhatsApp gateways already use. */
export const SESSION_STATUSES = ['STOPPED', 'STARTING', 'SCAN_QR_CODE', 'WORKING', 'FAILED'] as const;
/** A session status. */
export type SessionStatus = (typeof SESSION_STATUSES)[number];

/**
 * Where a session lives: enough to send it a request. Every side names an owner this way: registry reads, pushes
 * (`FleetClient` changes), HTTP answers (421, `GET /sessions/:id`) and the PHP kit.
 */
export interface OwnerRoute {
  sessionId: string;
  /** Owning instance id, '' when nobody owns it. */
  owner: string;
  /** The owner's base URL, '' when nobody owns it. */
  ownerUrl: string;
  /** Fencing epoch, a decimal string; compare with `compareEpochs`. */
  epoch: string;
  status: SessionStatus;
  /** Whether the owner's lease is valid right now. */
  live: boolean;
}

/** The registry's view of one session: its route plus desired state, reason and metadata. */
export interface SessionOwner extends OwnerRoute {
  desired: 'running' | 'stopped';
  /**
   * Why a session waits for a human ('' when it should run): `stopped by request`, `logged out` or
   * `restarts exhausted`, optionally followed by `: ` and a short detail (see `STOP_REASON_KINDS`).
   */
  reason: string;
  /** The session's metadata (`{}` when none was given): set by claim or place, replaced by the owner's `setMetadata`. */
  metadata: SessionMetadata;
}

/** One registered instance and its load. */
export interface InstanceInfo {
  id: string;
  url: string;
  maxSessions: number;
  load: number;
  labels: Record<string, string>;
  draining: boolean;
  mode: 'managed' | 'observe';
  /** Lease deadline in Redis server time (unix ms). */
  leaseDeadline: number;
  live: boolean;
  /**
   * The instance's browser memory as its last heartbeat reported it (bytes), with its budget: only instances with
   * `memoryBudgetBytes` report it. A full budget takes no sessions, like a full `maxSessions`.
   */
  memory?: { usedBytes: number; budgetBytes: number };
}

/** Result of a placement. */
export interface PlaceResult {
  sessionId: string;
  /** `assigned`: a new owner; `existing`: a live owner already had it; `pending`: nobody has capacity now. */
  outcome: 'assigned' | 'existing' | 'pending';
  owner: string;
  ownerUrl: string;
  epoch: string;
}

/**
 * The labels a session requires, as the claim and place scripts take them: '' to keep the recorded ones.
 * @throws ConfigError for labels that are not a plain object of short strings (nothing is written)
 */
export function labelsArg(options: { labels?: unknown } | undefined): string {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new ConfigError('options', `Expected an options object, got ${describe(options)}`);
  }
  return options?.labels === undefined ? '' : JSON.stringify(validateLabels('labels', options.labels));
}

/** Reads one session's record and its owner's liveness in one round trip; null when the registry has none. */
export async function lookupOwner(redis: RedisLike, keys: RegistryKeys, sessionId: string): Promise<SessionOwner | null> {
  const reply = await lua.lookup(redis, keys, { sessionId });
  if (reply.code === 'NOT_FOUND') return null;
  return {
    sessionId,
    owner: reply.owner,
    ownerUrl: reply.ownerUrl,
    epoch: reply.epoch || '0',
    status: reply.status as SessionStatus,
    desired: reply.desired as 'running' | 'stopped',
    live: reply.live === '1',
    reason: reply.reason,
    metadata: parseMetadata(reply.metadata),
  };
}

/** Every registered instance with its load and capacity, in one round trip. */
const isMemory = (v: unknown): v is { used: number; budget: number } =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as { used?: unknown }).used === 'number' &&
  typeof (v as { budget?: unknown }).budget === 'number';

export async function listInstances(redis: RedisLike, keys: RegistryKeys): Promise<InstanceInfo[]> {
  const reply = await lua.instances(redis, keys);
  // cjson encodes an empty Lua table as an object: no instance at all arrives as {}.
  const parsed = JSON.parse(reply.instances) as unknown;
  const rows = (Array.isArray(parsed) ? parsed : []) as Array<Record<string, unknown>>;
  return rows.map((r) => ({
    id: String(r.id),
    url: String(r.url),
    maxSessions: Number(r.max),
    load: Number(r.load),
    // cjson encodes an empty Lua table as an array.
    labels: (Array.isArray(r.labels) ? {} : r.labels) as Record<string, string>,
    draining: Boolean(r.draining),
    mode: r.mode as 'managed' | 'observe',
    leaseDeadline: Number(r.deadline),
    live: Boolean(r.live),
    ...(isMemory(r.mem) ? { memory: { usedBytes: r.mem.used, budgetBytes: r.mem.budget } } : {}),
  }));
}

/**
 * How long a caller of placement waits and what it accepts. The fleet's adoption delay and placement retry are not
 * here: the place script reads them from the registry, where the instances recorded them.
 */
export interface PlacementTiming {
  /** Longest wait for a registry quarantine to end before giving up with QuarantineError. */
  quarantineWaitMs: number;
  /** Bound of the metadata's JSON (bytes). @default MAX_METADATA_BYTES (4096) */
  maxMetadataBytes?: number;
}

/** What `place` records for a session; omitted fields keep the recorded values. */
export interface PlaceOptions {
  /** Labels the owner must have. */
  labels?: Record<string, string>;
  /** The session's metadata, handed to the engine factory on every start (a plain JSON object, at most 4096 bytes). */
  metadata?: SessionMetadata;
  /** An instance not to choose (e.g. the one handing the session off). */
  exclude?: string;
}

/**
 * Places a session atomically (see the place script) and waits out a registry quarantine.
 * @throws OwnerExpiringError, QuarantineError
 */
export async function placeSession(
  redis: RedisLike,
  keys: RegistryKeys,
  sessionId: string,
  options: PlaceOptions,
  timing: PlacementTiming,
): Promise<PlaceResult> {
  const labels = labelsArg(options);
  const metadata = metadataArg(options, timing.maxMetadataBytes);
  if (options.exclude !== undefined) validateInstanceId(options.exclude);
  const waitUntil = performance.now() + timing.quarantineWaitMs;
  for (;;) {
    const reply = await lua.place(redis, keys, { sessionId, labels, exclude: options.exclude ?? '', metadata });
    if (reply.code === 'OK') {
      const outcome = reply.kind === 'existing' ? 'existing' : 'assigned';
      return { sessionId, outcome, owner: reply.owner, epoch: reply.epoch, ownerUrl: reply.ownerUrl };
    }
    if (reply.code === 'PENDING') return { sessionId, outcome: 'pending', owner: '', ownerUrl: '', epoch: '' };
    if (reply.code === 'QUARANTINE' && performance.now() + reply.retryAfterMs <= waitUntil) {
      await sleep(reply.retryAfterMs + 5);
      continue;
    }
    throw replyError('place', reply, { sessionId });
  }
}

/**
 * Stops a session that no live instance owns: desired state stopped with `reason`, out of the placement queue
 * (a pending placement is cancelled; nothing adopts it). A dead owner's session is refused until the registry's
 * adoption delay has passed after its deadline. Returns the session's epoch.
 * @throws OwnedElsewhereError (a live owner stops it), OwnerExpiringError, NotFoundError
 */
export async function stopUnowned(redis: RedisLike, keys: RegistryKeys, sessionId: string, reason: string): Promise<string> {
  const reply = await lua.stop(redis, keys, { sessionId, reason });
  if (reply.code === 'OK') return reply.epoch;
  throw replyError('stop', reply, { sessionId });
}
