import { createHash } from 'node:crypto';
import { validateNamespace } from '../ids.js';

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
  /** HASH era, quarantineUntil. */
  readonly meta: string;
  /** Pub/sub channel announcing every owner and status change. */
  readonly events: string;
}

/** Builds the keys of `namespace`. */
export function registryKeys(namespace: string): RegistryKeys {
  const tag = `{wafleet:${validateNamespace(namespace)}}`;
  return Object.freeze({
    namespace,
    instances: `${tag}:instances`,
    instanceInfo: `${tag}:instance-info`,
    owned: `${tag}:owned`,
    sessions: `${tag}:sessions`,
    pending: `${tag}:pending`,
    meta: `${tag}:meta`,
    events: `${tag}:events`,
  });
}

/**
 * Key of an idempotency record. Deliberately outside the namespace's hash tag: records are many and spread over
 * Redis Cluster slots. The caller's key is hashed, so any characters are safe.
 */
export function idempotencyRecordKey(namespace: string, key: string): string {
  return `wafleet:${validateNamespace(namespace)}:idem:${createHash('sha256').update(key).digest('hex')}`;
}
