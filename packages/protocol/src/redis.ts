import type { ConnectionOptions as TlsOptions } from 'node:tls';
import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { describe } from './describe.js';
import { ConfigError, WafleetError } from './errors.js';
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

/**
 * The connection that carries `key`'s commands: the client itself, or on a Cluster the node that serves the key's slot
 * (undefined while the Cluster has not learnt its slots). Commands without a key, such as WAIT, must go there to be
 * about that key's writes.
 */
export function connectionFor(client: Redis | Cluster, key: string): Redis | undefined {
  if (!(client as Cluster).isCluster) return client as Redis;
  const cluster = client as Cluster;
  const node = cluster.slots[calculateSlot(key)]?.[0];
  return cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === node);
}

/** What a connection is for; each role gets its own socket so a slow queue on one cannot delay another. */
export type ConnectionRole = 'command' | 'heartbeat' | 'subscriber' | 'replica-ack';

/** A connection and whether wafleet created it (and so must close it). */
export interface Connection {
  client: Redis | Cluster;
  owned: boolean;
}

/**
 * Where wafleet connects when it opens its connections itself. Give exactly one of `url`, `nodes` and `sentinels`.
 * With `sentinels`, `url` may come along for the master's credentials and database (its host is ignored).
 * @example
 * { sentinels: ['redis://10.0.0.5:26379', 'redis://10.0.0.6:26379', 'redis://10.0.0.7:26379'], name: 'wafleet', url: 'redis://:s3cret@master/0' }
 * @example
 * { url: 'rediss://wafleet:s3cret@redis.internal:6380/2', tls: { ca: readFileSync('/etc/redis/ca.pem') } }
 */
export interface RedisEndpoint {
  /** `redis://[user:password@]host[:port][/db]` of a standalone server; `rediss://` for TLS. Percent-encode `@ : /` in the password. */
  url?: string;
  /** Seed nodes of a Redis Cluster, as URLs like `url` without a database; all must carry the same user, password and scheme. */
  nodes?: readonly string[];
  /** TLS options (`ca` for a private CA, `servername`, a client certificate); needs `rediss://`. @default system CAs */
  tls?: TlsOptions;
  /**
   * Redis Sentinel: the sentinels' URLs (`redis://[user:password@]host:port`, their own credentials; `rediss://` for
   * TLS to them), and `name`, the master they monitor. ioredis asks them for the current master and follows failovers.
   */
  sentinels?: readonly string[];
  /** With `sentinels`: the monitored master's name. */
  name?: string;
}

/**
 * The `redis` option of `createFleet` and `createFleetClient`: a URL, a list of Cluster node URLs, a
 * {@link RedisEndpoint} (for TLS options), or your own ioredis `Redis`/`Cluster` (never closed by wafleet).
 */
export type RedisOption = string | readonly string[] | RedisEndpoint | Redis | Cluster;

interface TargetBase {
  /** Database number; pushes are scoped by it. Always 0 on a Cluster. */
  db: number;
  /** Where it points, for logs and errors: never contains the password. */
  display: string;
}

/** A validated {@link RedisOption}. */
export type RedisTarget =
  | (TargetBase & { kind: 'standalone'; options: RedisOptions })
  | (TargetBase & { kind: 'cluster'; nodes: Array<{ host: string; port: number }>; nodeOptions: RedisOptions })
  | (TargetBase & { kind: 'sentinel'; options: RedisOptions })
  | (TargetBase & { kind: 'client'; client: Redis | Cluster });

interface ParsedUrl {
  host: string;
  port: number;
  db: number;
  auth: Pick<RedisOptions, 'username' | 'password'>;
  tls: TlsOptions | undefined;
  display: string;
}

/** A URL with its user info masked, so a mistyped URL can be shown without its password. */
const masked = (raw: string) => raw.replace(/\/\/[^@/?#]*@/, '//***@');

function parseUrl(option: string, raw: unknown, tls: TlsOptions | undefined): ParsedUrl {
  const bad = (why: string) =>
    new ConfigError(option, `Expected \`${option}\` to be ${why}, got ${describe(typeof raw === 'string' ? masked(raw) : raw)}`);
  if (typeof raw !== 'string') throw bad('a redis:// or rediss:// URL');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw bad('a redis:// or rediss:// URL');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw bad('a redis:// or rediss:// URL');
  if (url.search || url.hash) throw bad('a URL without query or fragment (give TLS options as `{ url, tls }`)');
  const db = /^\/?$/.test(url.pathname) ? 0 : Number(/^\/(\d{1,5})$/.exec(url.pathname)?.[1] ?? NaN);
  if (!Number.isInteger(db)) throw bad('a URL whose path is empty or a database number');
  if (tls !== undefined && url.protocol !== 'rediss:') throw bad('a rediss:// URL when `tls` is given');
  let auth: ParsedUrl['auth'];
  try {
    const username = decodeURIComponent(url.username);
    const password = decodeURIComponent(url.password);
    if (username && !password) throw new URIError('user without password');
    auth = { ...(username ? { username } : {}), ...(password ? { password } : {}) };
  } catch {
    throw bad('a URL with a percent-encoded user and password (or neither)');
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port || 6379);
  const user = auth.username ? `${auth.username}@` : auth.password ? '***@' : '';
  return {
    host,
    port,
    db,
    auth,
    tls: url.protocol === 'rediss:' ? { ...tls } : undefined,
    display: `${url.protocol}//${user}${url.host}${db ? `/${db}` : ''}`,
  };
}

function sentinelOf(option: string, value: RedisEndpoint): RedisTarget {
  if (typeof value.name !== 'string' || !/^[\w.:-]{1,128}$/.test(value.name)) {
    throw new ConfigError(`${option}.name`, `Expected \`${option}.name\` to be the monitored master's name, got ${describe(value.name)}`);
  }
  if (!Array.isArray(value.sentinels) || value.sentinels.length === 0) {
    throw new ConfigError(
      `${option}.sentinels`,
      `Expected \`${option}.sentinels\` to be a non-empty list of sentinel URLs, got ${describe(value.sentinels)}`,
    );
  }
  const sentinels = value.sentinels.map((u: unknown, i) => parseUrl(`${option}.sentinels[${i}]`, u, undefined));
  const first = sentinels[0]!;
  const master = value.url === undefined ? undefined : parseUrl(`${option}.url`, value.url, value.tls);
  const options: RedisOptions = {
    sentinels: sentinels.map(({ host, port }) => ({ host, port })),
    name: value.name,
    // After SENTINEL FAILOVER the old master keeps accepting writes until Sentinel reconfigures it and drops its
    // clients, about 10 s later (writes that the new master never sees): follow the sentinels' +switch-master at once
    // (0.5 s here), and reconnect at a READONLY or NOREPLICAS (min-replicas-to-write) refusal. The detector's sentinel connections outlive quit():
    // disconnect() ends them.
    failoverDetector: true,
    reconnectOnError: (err: Error) => (/^(READONLY|NOREPLICAS)/.test(err.message) ? 1 : false),
    ...(first.auth.username ? { sentinelUsername: first.auth.username } : {}),
    ...(first.auth.password ? { sentinelPassword: first.auth.password } : {}),
    ...(first.tls ? { enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
    ...(master ? { db: master.db, ...master.auth, ...(master.tls ? { tls: master.tls } : {}) } : {}),
  };
  const db = master?.db ?? 0;
  return { kind: 'sentinel', options, db, display: `sentinel ${value.name} via ${sentinels.map((s) => s.display).join(',')}` };
}

function endpointOf(option: string, value: RedisEndpoint): RedisTarget {
  const extra = Object.keys(value).filter((k) => !['url', 'nodes', 'tls', 'sentinels', 'name'].includes(k));
  if (extra.length === 0 && value.sentinels !== undefined && value.nodes === undefined) return sentinelOf(option, value);
  if (extra.length > 0 || (value.url === undefined) === (value.nodes === undefined) || value.name !== undefined) {
    throw new ConfigError(
      option,
      `Expected \`${option}\` to have exactly one of \`url\`, \`nodes\` and \`sentinels\` (with \`name\`), and \`tls\`, got keys ${describe(Object.keys(value))}`,
    );
  }
  if (value.tls !== undefined && (typeof value.tls !== 'object' || value.tls === null)) {
    throw new ConfigError(`${option}.tls`, `Expected \`${option}.tls\` to be tls.connect() options, got ${describe(value.tls)}`);
  }
  if (value.url !== undefined) {
    const u = parseUrl(`${option}.url`, value.url, value.tls);
    const options: RedisOptions = { host: u.host, port: u.port, db: u.db, ...u.auth, ...(u.tls ? { tls: u.tls } : {}) };
    return { kind: 'standalone', options, db: u.db, display: u.display };
  }
  return clusterOf(`${option}.nodes`, value.nodes, value.tls);
}

function clusterOf(option: string, urls: unknown, tls: TlsOptions | undefined): RedisTarget {
  if (!Array.isArray(urls) || urls.length === 0) {
    throw new ConfigError(option, `Expected \`${option}\` to be a non-empty list of Cluster node URLs, got ${describe(urls)}`);
  }
  const parsed = urls.map((u: unknown, i) => parseUrl(`${option}[${i}]`, u, tls));
  const first = parsed[0]!;
  const same = (p: ParsedUrl) =>
    p.auth.username === first.auth.username && p.auth.password === first.auth.password && !p.tls === !first.tls;
  if (!parsed.every(same)) {
    throw new ConfigError(option, `Expected every URL of \`${option}\` to carry the same user, password and scheme`);
  }
  if (parsed.some((p) => p.db !== 0)) {
    throw new ConfigError(option, `Expected no database number in \`${option}\`: a Redis Cluster has only database 0`);
  }
  return {
    kind: 'cluster',
    nodes: parsed.map(({ host, port }) => ({ host, port })),
    nodeOptions: { ...first.auth, ...(first.tls ? { tls: first.tls } : {}) },
    db: 0,
    display: `cluster ${parsed.map((p) => p.display).join(',')}`,
  };
}

const isClient = (value: unknown): value is Redis | Cluster =>
  typeof value === 'object' && value !== null && typeof (value as Redis).evalsha === 'function';

/**
 * Validates a {@link RedisOption} once, for every connection wafleet opens from it and for the database number
 * that scopes its pushes. Throws `ConfigError` (naming `option`, never showing a password).
 */
export function resolveRedisOption(value: unknown, option = 'redis'): RedisTarget {
  if (typeof value === 'string') {
    const u = parseUrl(option, value, undefined);
    const options: RedisOptions = { host: u.host, port: u.port, db: u.db, ...u.auth, ...(u.tls ? { tls: u.tls } : {}) };
    return { kind: 'standalone', options, db: u.db, display: u.display };
  }
  if (Array.isArray(value)) return clusterOf(option, value, undefined);
  if (isClient(value)) {
    // A Cluster has database 0 only; a Redis keeps the database it was created with (ioredis re-SELECTs it).
    const db = value instanceof Cluster ? 0 : Number((value as Partial<Redis>).options?.db ?? 0);
    return { kind: 'client', client: value, db, display: 'the given ioredis client' };
  }
  if (typeof value === 'object' && value !== null) return endpointOf(option, value as RedisEndpoint);
  throw new ConfigError(
    option,
    `Expected \`${option}\` to be a redis:// URL, a non-empty list of them (Cluster), \`{ url | nodes, tls }\` or an ioredis client, got ${describe(value)}`,
  );
}

/**
 * How often a connection asks again whether a Redis that is loading its data (a restart from AOF or RDB) is ready.
 * ioredis waits the server's loading estimate, at least 1 s, and until then every command fails: long enough for
 * a heartbeat to miss the self-fence deadline although Redis answers a moment later.
 */
const LOADING_RECHECK_MS = 100;

function roleOptions(role: ConnectionRole, commandTimeoutMs: number, heartbeatIntervalMs: number): RedisOptions {
  const retryStrategy = (attempt: number) => Math.min(50 * attempt, 1000);
  const maxLoadingRetryTime = LOADING_RECHECK_MS;
  if (role === 'heartbeat') {
    // No offline queue and a short timeout: a heartbeat that cannot be sent now must fail now, never be
    // replayed later when it would renew a lease on stale information.
    return {
      enableOfflineQueue: false,
      commandTimeout: heartbeatIntervalMs,
      maxRetriesPerRequest: 0,
      retryStrategy,
      maxLoadingRetryTime,
      lazyConnect: true,
    };
  }
  if (role === 'subscriber') return { retryStrategy, maxLoadingRetryTime, lazyConnect: true };
  return { commandTimeout: commandTimeoutMs, maxRetriesPerRequest: 1, retryStrategy, maxLoadingRetryTime, lazyConnect: true };
}

/** Opens (or reuses) the connection for `role`. A caller's client is reused for commands and duplicated otherwise. */
export function connect(
  target: RedisTarget,
  role: ConnectionRole,
  timing: { commandTimeoutMs: number; heartbeatIntervalMs: number },
): Connection {
  const options = roleOptions(role, timing.commandTimeoutMs, timing.heartbeatIntervalMs);
  const { enableOfflineQueue, lazyConnect, ...nodeOptions } = options;
  const clusterOptions = { enableOfflineQueue, lazyConnect, redisOptions: nodeOptions };
  if (target.kind === 'standalone' || target.kind === 'sentinel')
    return { client: new Redis({ ...target.options, ...options }), owned: true };
  if (target.kind === 'cluster') {
    const redisOptions = { ...nodeOptions, ...target.nodeOptions };
    return { client: new Cluster(target.nodes, { ...clusterOptions, redisOptions }), owned: true };
  }
  const given = target.client;
  // WAIT blocks its connection: the replica acknowledgement never shares the caller's.
  if (role === 'command') return { client: given, owned: false };
  if (given instanceof Cluster) return { client: given.duplicate(undefined, clusterOptions), owned: true };
  return { client: given.duplicate(options), owned: true };
}

const AUTH_REFUSED = /NOAUTH|WRONGPASS|NOPERM|invalid password|invalid username/i;

/**
 * Connects a connection wafleet created (a caller's client is left as it is). Fails fast with `WAFLEET_REDIS_AUTH`
 * when Redis refuses the credentials and `WAFLEET_REDIS_CONNECT` for any other first-connect failure (refused,
 * TLS handshake), instead of retrying forever; the message names the endpoint without its password.
 */
export async function open(conn: Connection, target: RedisTarget): Promise<void> {
  if (!conn.owned) return;
  // ioredis rejects connect() with a bare "Connection is closed." (a Cluster with "Failed to refresh slots
  // cache."); the reason arrives as 'error', or 'node error' from a Cluster's nodes.
  const seen: Error[] = [];
  const note = (err: Error) => void seen.push(err);
  conn.client.on('error', note);
  conn.client.on('node error', note);
  try {
    await conn.client.connect();
  } catch (err) {
    conn.client.disconnect();
    const cause = seen.find((e) => AUTH_REFUSED.test(e.message)) ?? seen.at(-1) ?? (err as Error);
    if (AUTH_REFUSED.test(cause.message)) {
      throw new WafleetError('WAFLEET_REDIS_AUTH', `Redis at ${target.display} refused the credentials: ${cause.message}`, { cause });
    }
    throw new WafleetError('WAFLEET_REDIS_CONNECT', `Could not connect to Redis at ${target.display}: ${cause.message}`, { cause });
  } finally {
    conn.client.off('error', note);
    conn.client.off('node error', note);
  }
}

/** Closes a connection wafleet created; leaves a caller's client alone. */
export async function disconnect(conn: Connection | undefined): Promise<void> {
  if (!conn?.owned) return;
  try {
    await conn.client.quit();
  } catch {
    // Closed below either way.
  } finally {
    conn.client.disconnect();
  }
}
