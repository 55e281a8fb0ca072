import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ConfigError,
  WafleetError,
  compareEpochs,
  createLogger,
  describeValue,
  urlUnder,
  validateNamespace,
  validateSessionId,
  type Logger,
  connect,
  disconnect,
  listInstances,
  lookupOwner,
  open,
  parsePush,
  placeSession,
  registryKeys,
  resolveRedisOption,
  type Connection,
  type RedisOption,
  type RedisTarget,
  type RegistryKeys,
  type InstanceInfo,
  type OwnerRoute,
  type PlaceResult,
  type SessionOwner,
} from '@wafleet/protocol';
import { Agent, Headers, Response, fetch as undiciFetch, type RequestInit as UndiciRequestInit } from 'undici';

/** Options of {@link createFleetClient}. */
export interface FleetClientOptions {
  /**
   * A Redis URL (`redis://user:password@host:6379/0`, `rediss://` for TLS), a list of Cluster node URLs,
   * `{ url | nodes, tls }` for TLS options, or an ioredis `Redis`/`Cluster` (never closed by wafleet).
   */
  redis: RedisOption;
  /** The fleet's namespace. @default 'default' */
  namespace?: string;
  /** How long `fetch` waits for a new owner after the old one failed, before `WAFLEET_FAILOVER_TIMEOUT`. @default 15000 */
  failoverTimeoutMs?: number;
  /** Cache entries older than this are read again even without a push (bounds staleness if a push is lost). @default 60000 */
  maxStalenessMs?: number;
  /** Most cached sessions; the oldest entries go first. @default 100000 */
  maxCacheEntries?: number;
  /** Time to response headers of one attempt. @default 30000 */
  requestTimeoutMs?: number;
  /** Keep-alive connections per instance. @default 32 */
  connectionsPerInstance?: number;
  /** Timeout of registry commands. @default 2000 */
  commandTimeoutMs?: number;
  /** Longest wait for a registry quarantine to end in `place`. @default 10000 */
  quarantineWaitMs?: number;
  /** pino, winston or console-like logger. @default no logging */
  logger?: unknown;
}

/** An owner or status change, pushed by the registry (without desired state, reason and metadata: `lookup` reads those). */
export interface OwnerChange extends OwnerRoute {
  /** `performance.now()` when the push arrived. */
  receivedAt: number;
}

/** Counters for metrics and tests. */
export interface FleetClientStats {
  lookups: number;
  cacheHits: number;
  /** Registry reads (one Redis round trip each). */
  registryReads: number;
  pushes: number;
  /** Whole-cache flushes after the subscription reconnected. */
  flushes: number;
  failovers: number;
  /**
   * Attempts abandoned in flight because the registry said the session moved (another owner or a newer epoch),
   * then sent to the new owner.
   */
  abandoned: number;
  /** Waits after a 503 with Retry-After (a session starting on its owner) before a retry. */
  retryAfterWaits: number;
  /** Sessions in the owner cache (at most `maxCacheEntries`). */
  cacheEntries: number;
  /** Sessions with a registry read in flight. */
  readsInFlight: number;
  /** Sessions a `fetch` is waiting on for a new owner. */
  waitingSessions: number;
}

/** `fetch` gave up waiting for a live owner. */
export class FailoverTimeoutError extends WafleetError {
  constructor(
    readonly sessionId: string,
    readonly waitedMs: number,
    options?: { cause?: unknown },
  ) {
    super('WAFLEET_FAILOVER_TIMEOUT', `No live owner for session ${sessionId} within ${waitedMs} ms`, options);
  }
}

const DEFAULTS = Object.freeze({
  namespace: 'default',
  failoverTimeoutMs: 15000,
  maxStalenessMs: 60000,
  maxCacheEntries: 100000,
  requestTimeoutMs: 30000,
  connectionsPerInstance: 32,
  commandTimeoutMs: 2000,
  quarantineWaitMs: 10000,
});

type Resolved = { -readonly [K in keyof typeof DEFAULTS]: (typeof DEFAULTS)[K] extends number ? number : string } & {
  redis: RedisTarget;
  logger: Logger;
};

/** Methods safe to send twice: RFC 9110 idempotent methods. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Failures after which the request may not have reached (or finished on) a live owner. */
const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_CLOSED',
  'EHOSTUNREACH',
]);

/** Largest error body read to decide on a 503 or 409 (a wafleet answer is far smaller). */
const MAX_WAIT_BODY_BYTES = 65_536;

/** An attempt that may be abandoned (and sent again) when the registry names another owner. */
interface InFlightAttempt {
  owner: OwnerRoute;
  abandon(): void;
}

/** How one attempt ended. */
interface Outcome {
  response?: Response;
  error?: unknown;
  /** Aborted by the client because the session moved while it waited for response headers. */
  abandoned?: boolean;
}

const isEpoch = (e: string) => /^\d{1,40}$/.test(e);

/** Whether `change` names a different owner than `owner`, or a newer epoch. */
function movedFrom(owner: OwnerRoute, change: OwnerRoute): boolean {
  if (change.owner !== owner.owner) return true;
  return isEpoch(change.epoch) && isEpoch(owner.epoch) && compareEpochs(change.epoch, owner.epoch) > 0;
}

/** Seconds of a delta-seconds `Retry-After` as ms (an HTTP date counts as 1 s). */
function retryAfterMs(response: Response): number | undefined {
  const value = response.headers.get('retry-after');
  if (value === null) return undefined;
  return /^\d{1,6}$/.test(value.trim()) ? Number(value.trim()) * 1000 : 1000;
}

function resolveOptions(options: FleetClientOptions): Resolved {
  if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'Expected an options object');
  const out = { ...DEFAULTS, redis: resolveRedisOption(options.redis), logger: createLogger(options.logger, 'client') } as Resolved;
  for (const key of Object.keys(DEFAULTS) as Array<keyof typeof DEFAULTS>) {
    if (key === 'namespace') continue;
    const value = options[key] ?? DEFAULTS[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
      throw new ConfigError(key, `Expected \`${key}\` to be a positive integer, got ${describeValue(value)}`);
    }
    (out as Record<string, unknown>)[key] = value;
  }
  out.namespace = validateNamespace(options.namespace ?? DEFAULTS.namespace);
  // The instances record these in the registry and the scripts read them there: no caller can shorten them.
  for (const key of ['adoptionDelayMs', 'placementRetryMs']) {
    if (key in options)
      throw new ConfigError(key, `\`${key}\` is not a client option: the registry holds the value the instances recorded`);
  }
  return out;
}

function connectionErrorCode(err: unknown): string | undefined {
  for (let e = err as { code?: string; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (e.code && CONNECTION_ERRORS.has(e.code)) return e.code;
  }
  return undefined;
}

/** A cache entry a registry read left (with desired state, reason and metadata), not one a push refreshed. */
const isRecord = (value: OwnerRoute): value is SessionOwner => 'metadata' in value;

/** Creates a client for backend services. Call `close()` when done. */
export function createFleetClient(options: FleetClientOptions): FleetClient {
  return new FleetClient(options);
}

/** Events of a {@link FleetClient}. */
export interface FleetClientEvents {
  change: [OwnerChange];
  error: [Error];
}

/**
 * Finds the live owner of a session without a database query per message, and sends requests to it over a
 * keep-alive pool per instance, failing over when the owner dies or moves.
 * @example
 * const fleet = createFleetClient({ redis: 'redis://127.0.0.1:6379' });
 * const res = await fleet.fetch('5511999990000', '/messages', { method: 'POST', body, headers: { 'idempotency-key': id } });
 */
export class FleetClient extends EventEmitter<FleetClientEvents> {
  readonly #options: Readonly<Resolved>;
  readonly #keys: RegistryKeys;
  /** Owners by session: full records from registry reads, routes from pushes (`lookup` reads those again). */
  readonly #cache = new Map<string, { value: OwnerRoute | SessionOwner | null; at: number }>();
  /** Registry reads in flight per session, and the pushes that arrived meanwhile: a read that raced a push never overwrites it. */
  readonly #reads = new Map<string, { readers: number; pushes: number }>();
  #flushes = 0;
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #agent: Agent;
  #cmd: Connection | undefined;
  #sub: Connection | undefined;
  #ready: Promise<void> | undefined;
  #closed = false;
  #closePromise: Promise<void> | undefined;
  readonly #closeWaiters = new Set<() => void>();
  readonly #stats = { lookups: 0, cacheHits: 0, registryReads: 0, pushes: 0, flushes: 0, failovers: 0, abandoned: 0, retryAfterWaits: 0 };
  /** Retryable attempts waiting for response headers, per session: abandoned when the session moves. */
  readonly #inFlight = new Map<string, Set<InFlightAttempt>>();

  constructor(options: FleetClientOptions) {
    super();
    this.#options = Object.freeze(resolveOptions(options));
    this.#keys = registryKeys(this.#options.namespace, this.#options.redis.db);
    this.#agent = new Agent({
      connections: this.#options.connectionsPerInstance,
      keepAliveTimeout: 30_000,
      headersTimeout: this.#options.requestTimeoutMs,
    });
  }

  /** A copy of the counters, and the sizes of what the client keeps in memory. */
  stats(): FleetClientStats {
    return { ...this.#stats, cacheEntries: this.#cache.size, readsInFlight: this.#reads.size, waitingSessions: this.#waiters.size };
  }

  /** Connects and subscribes; the first call of any method does it too. */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new WafleetError('WAFLEET_CLOSED', 'This client is closed'));
    this.#ready ??= this.#connect();
    return this.#ready;
  }

  async #connect(): Promise<void> {
    const timing = { commandTimeoutMs: this.#options.commandTimeoutMs, heartbeatIntervalMs: this.#options.commandTimeoutMs };
    this.#cmd = connect(this.#options.redis, 'command', timing);
    this.#sub = connect(this.#options.redis, 'subscriber', timing);
    for (const conn of [this.#cmd, this.#sub]) {
      if (conn.owned) conn.client.on('error', (err: Error) => this.#options.logger.debug('redis connection error', { err }));
      await open(conn, this.#options.redis);
    }
    const sub = this.#sub.client;
    sub.on('message', (channel: string, message: string) => this.#onPush(channel, message));
    await sub.subscribe(this.#keys.events);
    // Attached after the first connect, so every 'ready' is a reconnect. Pushes sent while the subscriber was away
    // are lost: forget everything cached before it came back.
    sub.on('ready', () => {
      this.#flushes++;
      this.#stats.flushes++;
      this.#cache.clear();
    });
  }

  /**
   * The owner of `sessionId`, from the cache when it holds a fresh entry, else one Redis round trip. Null when the
   * registry has never seen the session. Pushes keep the cache current but carry only the route: with
   * `details: true` an entry without desired state, reason and metadata is read again from the registry, so the
   * answer is the whole {@link SessionOwner}.
   * @example
   * const { owner, ownerUrl, live } = (await fleet.lookup('5511999990000')) ?? {};
   * const { reason, metadata } = (await fleet.lookup('5511999990000', { details: true })) ?? {};
   */
  lookup(sessionId: string, options: { details: true }): Promise<SessionOwner | null>;
  lookup(sessionId: string, options?: { details?: boolean }): Promise<OwnerRoute | null>;
  async lookup(sessionId: string, options: { details?: boolean } = {}): Promise<OwnerRoute | null> {
    return this.#route(sessionId, options.details === true);
  }

  /** The cached owner, or a registry read; `full`: only an entry a registry read left (with metadata). */
  async #route(sessionId: string, full: boolean): Promise<OwnerRoute | null> {
    validateSessionId(sessionId);
    await this.connect();
    this.#stats.lookups++;
    const entry = this.#cache.get(sessionId);
    const usable = entry && (!full || entry.value === null || isRecord(entry.value));
    if (usable && performance.now() - entry.at < this.#options.maxStalenessMs) {
      this.#stats.cacheHits++;
      return entry.value;
    }
    return this.#read(sessionId);
  }

  async #read(sessionId: string): Promise<SessionOwner | null> {
    const flushes = this.#flushes;
    this.#stats.registryReads++;
    // Tracked only while a read is in flight, so the map holds no entry per session ever pushed.
    const track = this.#reads.get(sessionId) ?? { readers: 0, pushes: 0 };
    this.#reads.set(sessionId, track);
    track.readers++;
    const pushesBefore = track.pushes;
    let found: SessionOwner | null;
    try {
      found = await lookupOwner(this.#cmd!.client, this.#keys, sessionId);
    } finally {
      if (--track.readers === 0) this.#reads.delete(sessionId);
    }
    if (track.pushes === pushesBefore && flushes === this.#flushes) this.#remember(sessionId, found);
    return found;
  }

  #remember(sessionId: string, value: OwnerRoute | null): void {
    this.#cache.delete(sessionId);
    this.#cache.set(sessionId, { value, at: performance.now() });
    if (this.#cache.size > this.#options.maxCacheEntries) this.#cache.delete(this.#cache.keys().next().value!);
  }

  #onPush(channel: string, message: string): void {
    const push = parsePush(this.#keys, channel, message);
    if (!push) return;
    const sid = push.sessionId;
    this.#stats.pushes++;
    const track = this.#reads.get(sid);
    if (track) track.pushes++;
    const live = push.owner !== '';
    const change: OwnerChange = {
      sessionId: sid,
      owner: push.owner,
      ownerUrl: push.ownerUrl,
      epoch: push.epoch,
      status: push.status,
      live,
      receivedAt: performance.now(),
    };
    // An owner push carries everything a lookup returns; without a URL, read it again on next use.
    if (live && change.ownerUrl) this.#remember(sid, change);
    else this.#cache.delete(sid);
    this.emit('change', change);
    if (live) this.#abandonMoved(change);
    const waiters = this.#waiters.get(sid);
    if (waiters) for (const wake of waiters) wake();
  }

  /**
   * Sends `path` to the session's owner, and again to its successor when that is safe: only idempotent methods,
   * or any method with an `Idempotency-Key` header (forwarded as is), within `failoverTimeoutMs` of the call:
   * - connection refused or reset, 421, or a 404 after which the registry names another owner: it waits for a
   *   live owner (push driven) and retries there;
   * - the registry names another owner or a newer epoch while the request waits for response headers (the owner
   *   froze): the request is abandoned and sent to the new owner;
   * - 503 with `Retry-After` (`WAFLEET_SESSION_STARTING`: owned but not running yet): it waits until the registry
   *   shows the session `WORKING` on a live owner (other 503s: at least `Retry-After`) and retries; past the
   *   deadline the 503 is returned;
   * - 409 `WAFLEET_IDEMPOTENCY_IN_FLIGHT` after an abandoned attempt (the old owner still runs it): it waits
   *   `Retry-After` and asks again, so it gets the stored outcome.
   * Requests it may not send twice wait for their one answer (or `requestTimeoutMs`). Sends the expected epoch in
   * `x-wafleet-epoch`. Bodies must be replayable (string, Buffer, URLSearchParams), not streams.
   * The request goes to the owner's origin and under its base path, nowhere else: a `path` that would resolve
   * elsewhere (`/http://host/`, `//host`, `/\\host`, `/../`) is a `ConfigError` and nothing is sent.
   * @throws FailoverTimeoutError, InvalidIdError, ConfigError, and the network error of a request it may not retry
   */
  async fetch(sessionId: string, path: string, init: UndiciRequestInit = {}): Promise<Response> {
    validateSessionId(sessionId);
    // Checked before anything is sent, and again against the owner's URL on every attempt.
    urlUnder('path', 'http://owner.invalid', path);
    const method = (init.method ?? 'GET').toUpperCase();
    const headers = new Headers(init.headers);
    const retryable = IDEMPOTENT.has(method) || headers.has('idempotency-key');
    const deadline = performance.now() + this.#options.failoverTimeoutMs;

    let owner = await this.#route(sessionId, false);
    if (!owner?.live || !owner.ownerUrl) owner = await this.#awaitOwner(sessionId, undefined, deadline);
    let abandoned = false;
    for (let waits = 0; ;) {
      const outcome = await this.#attempt(sessionId, owner, path, init, headers, retryable);
      const { response, error } = outcome;
      if (outcome.abandoned) abandoned = true;
      else if (error && !connectionErrorCode(error)) throw error;
      else if (response && !(await this.#misdirected(sessionId, owner, response))) {
        if (!retryable) return response;
        const wait = await this.#waitable(response, abandoned);
        if (!wait) return response;
        this.#stats.retryAfterWaits++;
        const ready = await this.#awaitWorking(sessionId, deadline, wait.starting ? 0 : wait.afterMs, waits++);
        if (!ready) return wait.response;
        owner = ready;
        continue;
      }
      if (!retryable) {
        if (response) return response;
        throw error;
      }
      await response?.body?.cancel().catch(() => undefined);
      this.#cache.delete(sessionId);
      this.#stats.failovers++;
      const next = await this.#awaitOwner(sessionId, owner, deadline);
      this.#options.logger.info('failover', {
        from: owner.owner,
        to: next.owner,
        reason: outcome.abandoned ? 'moved' : error ? connectionErrorCode(error) : response?.status,
      });
      owner = next;
    }
  }

  async #attempt(
    sessionId: string,
    owner: OwnerRoute,
    path: string,
    init: UndiciRequestInit,
    headers: Headers,
    retryable: boolean,
  ): Promise<Outcome> {
    headers.set('x-wafleet-epoch', owner.epoch);
    const moved = new AbortController();
    const signals = [AbortSignal.timeout(this.#options.requestTimeoutMs), moved.signal];
    if (init.signal) signals.push(init.signal as AbortSignal);
    const attempt: InFlightAttempt = { owner, abandon: () => moved.abort() };
    // Only an attempt that may be sent again is abandoned; the others wait for their one answer.
    const set = retryable ? (this.#inFlight.get(sessionId) ?? new Set()) : undefined;
    if (set) this.#inFlight.set(sessionId, set.add(attempt));
    try {
      // Never `new URL(path, base)`: a path like '/http://elsewhere/' or '//elsewhere' would carry the caller's
      // headers (credentials included) to another origin.
      const url = urlUnder('path', owner.ownerUrl, path);
      const response = await undiciFetch(url, { ...init, headers, signal: AbortSignal.any(signals), dispatcher: this.#agent });
      return { response };
    } catch (error) {
      if (moved.signal.aborted && !init.signal?.aborted) {
        this.#stats.abandoned++;
        return { abandoned: true };
      }
      return { error };
    } finally {
      set?.delete(attempt);
      if (set?.size === 0) this.#inFlight.delete(sessionId);
    }
  }

  /** Abandons the attempts still waiting on an owner the registry no longer names. */
  #abandonMoved(change: OwnerRoute): void {
    const attempts = this.#inFlight.get(change.sessionId);
    if (!attempts) return;
    for (const attempt of attempts) if (movedFrom(attempt.owner, change)) attempt.abandon();
  }

  /**
   * A 503 with Retry-After, or (after an abandoned attempt) a 409 for the same key still in flight on the old
   * owner: what to wait for, with the response rebuilt from its read body for the caller if waiting runs out.
   */
  async #waitable(response: Response, abandoned: boolean): Promise<{ response: Response; starting: boolean; afterMs: number } | undefined> {
    const afterMs = retryAfterMs(response);
    if (afterMs === undefined || (response.status !== 503 && !(abandoned && response.status === 409))) return undefined;
    const length = Number(response.headers.get('content-length') ?? 0);
    if (length > MAX_WAIT_BODY_BYTES) return undefined;
    const text = await response.text();
    let code: unknown;
    try {
      code = (JSON.parse(text) as { error?: unknown }).error;
    } catch {
      code = undefined;
    }
    if (response.status === 409 && code !== 'WAFLEET_IDEMPOTENCY_IN_FLIGHT') return undefined;
    const kept = new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers });
    return { response: kept, starting: code === 'WAFLEET_SESSION_STARTING', afterMs };
  }

  /**
   * Waits (push driven, polling as a backstop) until the registry shows the session WORKING on a live owner and
   * at least `minMs` (and a backoff that grows with `round`, so a repeated 503 never spins) have passed. Undefined
   * when the deadline comes first.
   */
  async #awaitWorking(sessionId: string, deadline: number, minMs: number, round: number): Promise<OwnerRoute | undefined> {
    const notBefore = performance.now() + Math.max(minMs, round === 0 ? 0 : Math.min(1000, 25 * 2 ** round));
    for (;;) {
      const now = performance.now();
      if (now >= notBefore) {
        const current = await this.#read(sessionId);
        if (current?.live && current.ownerUrl && current.status === 'WORKING') return current;
      }
      const remaining = deadline - performance.now();
      if (remaining <= 0) return undefined;
      const untilAllowed = notBefore - performance.now();
      await (untilAllowed > 0 ? sleep(Math.min(untilAllowed, remaining)) : this.#nextPush(sessionId, Math.min(remaining, 250)));
    }
  }

  /** 421 always; 404 when the registry now names another owner or epoch than the one that answered. */
  async #misdirected(sessionId: string, owner: OwnerRoute, response: Response): Promise<boolean> {
    if (response.status === 421) return true;
    if (response.status !== 404) return false;
    const now = await this.#read(sessionId);
    return !!now && (now.owner !== owner.owner || now.epoch !== owner.epoch);
  }

  /** Waits for a live owner other than `previous` (same instance and epoch), by push with a polling backstop. */
  async #awaitOwner(sessionId: string, previous: OwnerRoute | undefined, deadline: number): Promise<OwnerRoute> {
    for (;;) {
      const current = await this.#read(sessionId);
      const moved = !previous || current?.owner !== previous.owner || current?.epoch !== previous.epoch;
      if (current?.live && current.ownerUrl && moved) return current;
      const remaining = deadline - performance.now();
      if (remaining <= 0) throw new FailoverTimeoutError(sessionId, this.#options.failoverTimeoutMs);
      await this.#nextPush(sessionId, Math.min(remaining, 250));
    }
  }

  #nextPush(sessionId: string, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const set = this.#waiters.get(sessionId) ?? new Set();
      const wake = () => {
        clearTimeout(timer);
        set.delete(wake);
        if (set.size === 0) this.#waiters.delete(sessionId);
        resolve();
      };
      const timer = setTimeout(wake, timeoutMs);
      set.add(wake);
      this.#waiters.set(sessionId, set);
    });
  }

  /**
   * Places a session on the least-loaded live instance with capacity (see `Fleet.place`), recording its labels and
   * metadata (a plain JSON object of at most 4096 bytes, handed to the engine factory on every start; omitted:
   * the recorded ones are kept). The adoption delay and the retry delay when nobody has capacity are the ones the
   * instances recorded in the registry.
   * @throws ConfigError (bad labels or metadata; nothing written), OwnerExpiringError, InvalidIdError
   */
  async place(
    sessionId: string,
    options: { labels?: Record<string, string>; metadata?: Record<string, unknown> } = {},
  ): Promise<PlaceResult> {
    validateSessionId(sessionId);
    await this.connect();
    return placeSession(this.#cmd!.client, this.#keys, sessionId, options, { quarantineWaitMs: this.#options.quarantineWaitMs });
  }

  /** Every registered instance with its load and capacity. */
  async instances(): Promise<InstanceInfo[]> {
    await this.connect();
    return listInstances(this.#cmd!.client, this.#keys);
  }

  /**
   * Owner and status changes as they are pushed, until `signal` aborts or the client closes.
   * @example
   * for await (const change of fleet.watch()) console.log(change.sessionId, '->', change.owner, change.ownerUrl);
   */
  async *watch(options: { signal?: AbortSignal } = {}): AsyncGenerator<OwnerChange> {
    await this.connect();
    const queue: OwnerChange[] = [];
    let wake: (() => void) | undefined;
    const onChange = (c: OwnerChange) => {
      queue.push(c);
      wake?.();
    };
    const onEnd = () => wake?.();
    this.on('change', onChange);
    this.#closeWaiters.add(onEnd);
    options.signal?.addEventListener('abort', onEnd);
    try {
      while (!this.#closed && !options.signal?.aborted) {
        if (queue.length === 0) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        while (queue.length > 0) yield queue.shift()!;
      }
    } finally {
      this.off('change', onChange);
      this.#closeWaiters.delete(onEnd);
      options.signal?.removeEventListener('abort', onEnd);
    }
  }

  /** Closes the connections wafleet opened and the HTTP pools. Idempotent: every call resolves once they are closed. */
  close(): Promise<void> {
    this.#closed = true;
    this.#closePromise ??= (async () => {
      for (const wake of this.#closeWaiters) wake();
      await this.#ready?.catch(() => undefined);
      await Promise.all([disconnect(this.#sub), disconnect(this.#cmd), this.#agent.close()]);
    })();
    return this.#closePromise;
  }
}
