import { createHash } from 'node:crypto';
import { describe } from './describe.js';
import { ConfigError } from './errors.js';
import { validateNamespace, validateSessionId } from './ids.js';

/**
 * Every Redis key and channel of one namespace. All share the hash tag `{wafleet:<ns>}`, so each multi-key
 * script touches a single Redis Cluster slot. This is the only place key strings are built.
 */
export interface RegistryKeys {
  readonly namespace: string;
  /** ZSET instance id -> lease deadline (Redis server ms). */
  readonly instances: string;
  /** HASH instance id -> JSON instance record. */
  readonly instanceInfo: string;
  /** ZSET, all scores 0, members `<instanceId>:<sessionId>`: who owns what, counted by ZLEXCOUNT. */
  readonly owned: string;
  /** HASH session id -> JSON session record. */
  readonly sessions: string;
  /** ZSET session id -> time (ms) it is due for placement. */
  readonly pending: string;
  /**
   * HASH era, replid (the replication id the era runs under), quarantineUntil, and the fleet's timing facts
   * (quarantineMs, adoptionDelayMs, placementRetryMs, placementRetryMaxMs).
   */
  readonly meta: string;
  /** STRING instance id (expires after 60 s): written before each `WAIT` that waits for a replica to have a grant. */
  readonly replicaAck: string;
  /**
   * HASH session id -> JSON of the session's committed data version
   * `{ version, uploadId, size, sha256, epoch, writer, committedAt }`: the pointer a restore follows.
   */
  readonly data: string;
  /** ZSET `<sessionId>/<uploadId>` -> upload start (Redis server ms): uploads begun and not committed yet. */
  readonly dataUploads: string;
  /** HASH state ('closed' or 'open'), kind, openedAt, probeRound, probesLeft: the fleet-wide start breaker. */
  readonly breaker: string;
  /** ZSET `<ms>|<sessionId>|<outcome>` -> start time (ms): the starts the breaker counts, newest 2000 in its window. */
  readonly breakerStarts: string;
  /**
   * Pub/sub channel announcing every owner and status change: `<tag>:events` on database 0, `<tag>:events:<db>`
   * on another. Pub/sub ignores the database, so fleets of one namespace in different databases of one server
   * must not share a channel; database 0 keeps the name it always had, for existing subscribers.
   */
  readonly events: string;
}

/** Builds the keys of `namespace` in database `db` (0 on a Cluster). */
export function registryKeys(namespace: string, db = 0): RegistryKeys {
  const tag = `{wafleet:${validateNamespace(namespace)}}`;
  if (!Number.isInteger(db) || db < 0 || db > 99_999) {
    throw new ConfigError('db', `Expected the Redis database to be an integer from 0 to 99999, got ${describe(db)}`);
  }
  return Object.freeze({
    namespace,
    instances: `${tag}:instances`,
    instanceInfo: `${tag}:instance-info`,
    owned: `${tag}:owned`,
    sessions: `${tag}:sessions`,
    pending: `${tag}:pending`,
    meta: `${tag}:meta`,
    replicaAck: `${tag}:replica-ack`,
    data: `${tag}:data`,
    dataUploads: `${tag}:data-uploads`,
    breaker: `${tag}:breaker`,
    breakerStarts: `${tag}:breaker-starts`,
    events: db === 0 ? `${tag}:events` : `${tag}:events:${db}`,
  });
}

/**
 * Key of an idempotency record. Deliberately outside the namespace's hash tag: records are many and spread over
 * Redis Cluster slots. The caller's key is hashed, so any characters are safe.
 */
export function idempotencyRecordKey(namespace: string, key: string): string {
  return `wafleet:${validateNamespace(namespace)}:idem:${createHash('sha256').update(key).digest('hex')}`;
}

/** An upload id: what `newUploadId()` makes, and what a blob key may hold. */
export const UPLOAD_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Key of one chunk of a session data upload. Deliberately outside the namespace's hash tag: an archive's chunks are
 * large and many, and a Redis Cluster spreads them over its slots (each key hashes on its own). Only the pointer to
 * the committed version lives under the tag (`RegistryKeys.data`).
 * @throws InvalidIdError for a bad namespace or session id; ConfigError for a bad upload id or chunk index
 */
export function sessionBlobKey(namespace: string, sessionId: string, uploadId: string, chunkIndex: number): string {
  validateSessionId(sessionId);
  if (typeof uploadId !== 'string' || !UPLOAD_ID_PATTERN.test(uploadId)) {
    throw new ConfigError('uploadId', `Expected an upload id matching ${UPLOAD_ID_PATTERN}, got ${describe(uploadId)}`);
  }
  if (!Number.isInteger(chunkIndex) || chunkIndex < 0) {
    throw new ConfigError('chunkIndex', `Expected a chunk index to be a non-negative integer, got ${describe(chunkIndex)}`);
  }
  return `wafleet:${validateNamespace(namespace)}:blob:${sessionId}:${uploadId}:${chunkIndex}`;
}

/** The keys of one session's inbound message bookkeeping (see core's `createInbox`). */
export interface InboxKeys {
  /** ZSET WhatsApp message id -> its timestamp (ms): messages already delivered to the outbox, newest kept. */
  readonly seen: string;
  /** HASH chat id -> JSON `{ id, ts }` of the newest delivered message; field `*`: the catch-up watermark (ms). */
  readonly cursors: string;
}

/**
 * Keys of a session's inbound message bookkeeping. Outside the namespace's hash tag, so 100,000 sessions spread over
 * a Redis Cluster's slots; both keys of one session share the session's own hash tag, so one script touches both.
 * @throws InvalidIdError for a bad namespace or session id
 */
export function inboxKeys(namespace: string, sessionId: string): InboxKeys {
  const base = `wafleet:${validateNamespace(namespace)}:inbox:{${validateSessionId(sessionId)}}`;
  return Object.freeze({ seen: `${base}:seen`, cursors: `${base}:cursors` });
}
