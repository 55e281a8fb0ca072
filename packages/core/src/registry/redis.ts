import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { FleetOptions } from './options.js';
import { asReply, type Reply } from './reply-codes.js';
import type { scripts } from './scripts.generated.js';

/** The subset of an ioredis client the registry calls; `Redis` and `Cluster` both fit. */
export type RedisLike = Pick<Redis, 'evalsha' | 'eval'>;

/** One compiled Lua script. */
export type Script = (typeof scripts)[keyof typeof scripts];

/**
 * Runs a script by SHA and falls back to its source after NOSCRIPT (a restarted or failed-over Redis). The
 * fallback is the same atomic script, so a retry never splits its effects.
 */
export async function runScript(
  redis: RedisLike,
  script: Script,
  keys: readonly string[],
  args: ReadonlyArray<string | number>,
): Promise<Reply> {
  let raw: unknown;
  try {
    raw = await redis.evalsha(script.sha, script.numberOfKeys, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    raw = await redis.eval(script.lua, script.numberOfKeys, ...keys, ...args);
  }
  return asReply(script.name, raw);
}

/** What a connection is for; each role gets its own socket so a slow queue on one cannot delay another. */
export type ConnectionRole = 'command' | 'heartbeat' | 'subscriber';

/** A connection and whether wafleet created it (and so must close it). */
export interface Connection {
  client: Redis | Cluster;
  owned: boolean;
}

function roleOptions(role: ConnectionRole, commandTimeoutMs: number, heartbeatIntervalMs: number): RedisOptions {
  const retryStrategy = (attempt: number) => Math.min(50 * attempt, 1000);
  if (role === 'heartbeat') {
    // No offline queue and a short timeout: a heartbeat that cannot be sent now must fail now, never be
    // replayed later when it would renew a lease on stale information.
    return { enableOfflineQueue: false, commandTimeout: heartbeatIntervalMs, maxRetriesPerRequest: 0, retryStrategy, lazyConnect: true };
  }
  if (role === 'subscriber') return { retryStrategy, lazyConnect: true };
  return { commandTimeout: commandTimeoutMs, maxRetriesPerRequest: 1, retryStrategy, lazyConnect: true };
}

/** Opens (or reuses) the connection for `role`. A caller's client is reused for commands and duplicated otherwise. */
export function connect(
  redis: FleetOptions['redis'],
  role: ConnectionRole,
  timing: { commandTimeoutMs: number; heartbeatIntervalMs: number },
): Connection {
  const options = roleOptions(role, timing.commandTimeoutMs, timing.heartbeatIntervalMs);
  const { enableOfflineQueue, lazyConnect, ...nodeOptions } = options;
  const clusterOptions = { enableOfflineQueue, lazyConnect, redisOptions: nodeOptions };
  if (typeof redis === 'string') return { client: new Redis(redis, options), owned: true };
  if (Array.isArray(redis)) {
    const nodes = redis.map((u) => {
      const url = new URL(u);
      return { host: url.hostname, port: Number(url.port || 6379) };
    });
    return { client: new Cluster(nodes, clusterOptions), owned: true };
  }
  const given = redis as Redis | Cluster;
  if (role === 'command') return { client: given, owned: false };
  if (given instanceof Cluster) return { client: given.duplicate(undefined, clusterOptions), owned: true };
  return { client: (given as Redis).duplicate(options), owned: true };
}

/** Closes a connection wafleet created; leaves a caller's client alone. */
export async function disconnect(conn: Connection | undefined): Promise<void> {
  if (!conn?.owned) return;
  try {
    await conn.client.quit();
  } catch {
    conn.client.disconnect();
  }
}
