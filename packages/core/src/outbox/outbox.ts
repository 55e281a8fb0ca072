import { EventEmitter } from 'node:events';
import { dirname, resolve as resolvePath } from 'node:path';
import { performance } from 'node:perf_hooks';
import pRetry from 'p-retry';
import { Agent, request } from 'undici';
import {
  CANONICAL_EPOCH,
  ConfigError,
  createLogger,
  describeValue as describe,
  envelopeProblem,
  EVENT_TYPE,
  StateError,
  validateBaseUrl,
  validateInstanceId,
  validateSessionId,
  WafleetError,
  type Logger,
  type WebhookEnvelope,
} from '@wafleet/protocol';
import { exposeOutboxInternals } from '../internals.js';
import type { BodyFormat } from './body-format.js';
import { newEventId } from './event-id.js';
import { OrphanScanner, type AdoptOrphansOptions, type AdoptedOutbox } from './orphans.js';
import { DEFAULT_SCHEDULE_MS, parseRetryAfter, retryDelay } from './schedule.js';
import { standardWebhooksSigner, type Signer } from './signers.js';
import { OutboxStoreError, SqliteOutboxStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { EventRow, OutboxStore, ReplayFilter, StoreCounts } from './store.js';

/** An event to send. */
export interface OutboxEvent {
  /** Event type, e.g. `session.status`, `message.received`. */
  type: string;
  /** Session the event belongs to; events of one session are delivered one at a time, in order. */
  session?: string;
  /** Fencing epoch of the session when the event happened: canonical decimal (no leading zeros), up to 30 digits. @default '0' */
  epoch?: string;
  /**
   * Payload: a JSON object (arrays and other values are refused). `session.status` and `session.ready` need
   * `{ status, previous }` (strings), the shape `verifyWebhook` checks. @default {}
   */
  data?: object;
  /**
   * Path on the endpoint's origin, starting with a single '/': it replaces the endpoint URL's path and query
   * (`/status` on `http://backend/hooks` goes to `http://backend/status`). Absolute URLs, `//host` and anything
   * else that would leave the endpoint's origin are refused: the endpoint's headers and signature go with it.
   * @default the endpoint URL
   */
  path?: string;
  /** A newer event of the same session and group supersedes older undelivered ones (state events). */
  supersedeGroup?: string;
}

/**
 * Who sends an outbox's webhooks: every envelope carries it as `instance: { id, url }`, and every delivery its URL in
 * `X-Instance-Url`. A {@link Fleet} is one.
 */
export interface InstanceIdentity {
  /** The instance id (the fleet's `instanceId`). */
  readonly instanceId: string;
  /** Its public base URL, the one backends send requests to (the fleet's `url`). */
  readonly url: string;
}

/** How one delivery attempt ended. */
export type AttemptOutcome = 'delivered' | 'retry' | 'dead' | 'disabled' | 'superseded';

/** Options of {@link createOutbox}. */
export interface OutboxOptions {
  /**
   * A file path (one SQLite file per instance, `<dir>/<instanceId>.sqlite` in a directory the instances of a
   * host or volume share) or another {@link OutboxStore}. A file left by another instance may be given: its
   * undelivered events are sent as they are.
   */
  store: string | OutboxStore;
  /**
   * How a `store` file is run: SQLite in a worker thread or on the event loop, and writes committed in groups or one
   * by one. Either way a write is answered only after its commit is on disk. Only with a file path as `store`.
   * @default { thread: 'worker', commit: 'group' }
   */
  sqlite?: SqliteStoreOptions;
  /** The backend that receives the webhooks. */
  endpoint: {
    /** An http(s) URL without credentials; events with a `path` go to that path on its origin. */
    url: string;
    /** `whsec_` secrets for Standard Webhooks signatures (several during a rotation). */
    secrets?: readonly string[];
    /** Replaces the Standard Webhooks signer (e.g. {@link legacyHmacSigner}). */
    signer?: Signer;
    /**
     * The body an existing backend expects, built from the canonical envelope (validated first), e.g.
     * {@link legacyBody}. `webhook-id` still carries the event id.
     * @default the Standard envelope `{ id, type, timestamp, session, epoch, seq, instance, data }`
     */
    body?: BodyFormat;
    /** Extra headers on every delivery. */
    headers?: Record<string, string>;
  };
  /**
   * The sending instance. Leave it out for the outbox of a fleet (`createFleet({ outbox })`): the fleet gives it its
   * `instanceId` and `url`, so the identity is configured once. Beside a fleet that does not send through it, give
   * the fleet itself (`instance: fleet`); without any fleet, `{ instanceId, url }`, validated like the fleet's.
   * @default the identity of the fleet this outbox is given to; `start()` refuses to run without one
   */
  instance?: InstanceIdentity;
  /** Delays (ms) before attempt 1, 2, ...; the last repeats. @default 0, 1 s, 5 s, 30 s, 2 min, 5 min, 15 min, 30 min, 1 h */
  scheduleMs?: readonly number[];
  /** Spread of each delay, as a fraction. @default 0.2 */
  jitter?: number;
  /** Events older than this (since enqueue or replay) are dead-lettered. @default 259_200_000 (72 h) */
  maxAgeMs?: number;
  /** Dead-letter after this many attempts; 0 for no limit. @default 0 */
  maxAttempts?: number;
  /** Timeout of one attempt. @default 15000 */
  timeoutMs?: number;
  /** Quick in-process retries of a connection error or timeout before the persisted schedule takes over. @default 2 */
  quickRetries?: number;
  /** Bounds applied to a receiver's `Retry-After`. @default { minMs: 1000, maxMs: 3_600_000 } */
  retryAfter?: { minMs?: number; maxMs?: number };
  /** Treat 409 as retryable (some receivers answer 409 while busy). @default false */
  retryOn409?: boolean;
  /** Deliveries in flight at once (across sessions; one per session). @default 16 */
  concurrency?: number;
  /** Most delivery attempts per second: a recovering backend is not flattened by the backlog. @default 200 */
  ratePerSecond?: number;
  /** Circuit breaker: opens after this many consecutive failures, probes again after the cooldown. */
  breaker?: { failureThreshold?: number; cooldownMs?: number };
  /** Largest serialized body (the envelope, or what `endpoint.body` made of it). @default 1_048_576 */
  maxEventBytes?: number;
  /** Delivered and superseded events are deleted after this long. @default 86_400_000 */
  retentionMs?: number;
  /** How often the outbox looks for due events when nothing wakes it. @default 250 */
  pollIntervalMs?: number;
  /** Wall clock for schedules (ms); injectable so tests can simulate long outages. @default Date.now */
  now?: () => number;
  /**
   * Takes over the outbox files of instances gone for good: every `intervalMs`, each other `*.sqlite` file in
   * `dir` unwritten for `idleMs` whose exclusive lock is free (no live owner) has its pending events and dead
   * letters moved into this outbox, with their ids and bodies. @default off
   * @example
   * createOutbox({ store: `/data/outbox/${instanceId}.sqlite`, adoptOrphans: { idleMs: 600_000 }, ... })
   */
  adoptOrphans?: AdoptOrphansOptions;
  /** pino, winston or console-like logger. @default no logging */
  logger?: unknown;
}

/** Counters and gauges for metrics and tests. */
export interface OutboxStats extends StoreCounts {
  enqueued: number;
  attempts: Record<AttemptOutcome, number>;
  inFlight: number;
  breaker: 'closed' | 'open' | 'half-open';
  /** Targets disabled after answering 410 Gone (until `enableTarget`). */
  disabledTargets: number;
  /** `adoptOrphans`: directory scans done, files with events taken over, events taken over. */
  orphans: { scans: number; files: number; events: number };
  /**
   * Writes to the store and the commits (fsyncs) that made them durable, when the store counts them (the SQLite file
   * does): with group commits, writes / commits is how many writes shared one fsync.
   */
  store?: { writes: number; commits: number };
}

/** Events of an {@link Outbox}. */
export interface OutboxEvents {
  attempt: [{ id: string; session: string; outcome: AttemptOutcome; status: number | undefined; durationMs: number }];
  /** `adoptOrphans` moved the events of an orphaned file into this outbox (committed here, deleted there). */
  adopted: [AdoptedOutbox];
  error: [Error];
}

function positiveInt(option: string, value: unknown, min = 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new ConfigError(option, `Expected \`${option}\` to be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function resolveEndpoint(url: unknown): URL {
  let endpoint: URL | undefined;
  try {
    endpoint = new URL(url as string);
  } catch {
    // reported below
  }
  if (!endpoint || (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:')) {
    // Only the scheme is shown: the rest may carry a token.
    const got = endpoint ? describe(endpoint.protocol) : typeof url === 'string' ? 'a string that is not a URL' : describe(url);
    throw new ConfigError('endpoint.url', `Expected \`endpoint.url\` to be an absolute http(s) URL, got ${got}`);
  }
  // fetch() refuses URLs with credentials: every delivery would fail. Not quoted, since it holds a password.
  if (endpoint.username !== '' || endpoint.password !== '') {
    throw new ConfigError('endpoint.url', 'Expected `endpoint.url` without credentials: send them with `endpoint.headers` instead');
  }
  return endpoint;
}

function resolveAdoption(options: OutboxOptions) {
  const adopt: unknown = options.adoptOrphans;
  if (adopt === undefined) return undefined;
  if (typeof adopt !== 'object' || adopt === null) {
    throw new ConfigError(
      'adoptOrphans',
      `Expected \`adoptOrphans\` to be an object { dir?, idleMs?, intervalMs? }, got ${describe(adopt)}`,
    );
  }
  const { dir, idleMs, intervalMs } = adopt as AdoptOrphansOptions;
  const file = typeof options.store === 'string' && options.store !== ':memory:' ? options.store : undefined;
  if (dir === undefined ? file === undefined : typeof dir !== 'string' || dir === '') {
    throw new ConfigError(
      'adoptOrphans.dir',
      `Expected \`adoptOrphans.dir\` to be a directory path (needed when \`store\` is not a file), got ${describe(dir)}`,
    );
  }
  if (typeof options.store !== 'string' && typeof options.store.adopt !== 'function') {
    throw new ConfigError('adoptOrphans', 'Expected a `store` with an adopt() method for `adoptOrphans`');
  }
  return {
    dir: resolvePath(dir ?? dirname(file!)),
    ownFile: file === undefined ? '' : resolvePath(file),
    idleMs: positiveInt('adoptOrphans.idleMs', idleMs ?? 600_000),
    intervalMs: positiveInt('adoptOrphans.intervalMs', intervalMs ?? 60_000),
  };
}

/** The envelope's `instance` from an {@link InstanceIdentity}, validated by the fleet's rules. */
function resolveInstance(identity: unknown): WebhookEnvelope['instance'] {
  const given = identity as Partial<InstanceIdentity> & { id?: unknown };
  if (typeof given !== 'object' || given === null || typeof given.instanceId !== 'string') {
    const renamed = typeof given?.id === 'string' ? ' (`{ id, url }` became `{ instanceId, url }`)' : '';
    throw new ConfigError(
      'instance',
      `Expected \`instance\` to be { instanceId, url } (a Fleet is one)${renamed}, got ${describe(identity)}`,
    );
  }
  try {
    validateInstanceId(given.instanceId);
  } catch (err) {
    throw new ConfigError('instance.instanceId', `Expected \`instance.instanceId\` to be an instance id: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return { id: given.instanceId, url: validateBaseUrl('instance.url', given.url) };
}

function invalidEvent(message: string, cause?: unknown): never {
  throw new WafleetError('WAFLEET_EVENT_INVALID', message, cause === undefined ? undefined : { cause });
}

/** The URL an event goes to: the endpoint, or `path` on the endpoint's origin. */
function resolveTarget(endpoint: URL, path: unknown): string {
  if (path === undefined) return endpoint.toString();
  let target: URL | undefined;
  if (typeof path === 'string' && path.startsWith('/') && !path.startsWith('//')) {
    try {
      target = new URL(path, endpoint);
    } catch {
      // reported below
    }
  }
  // The origin check, not the pattern, is what holds: WHATWG URLs read '/\\host' as '//host' for http(s).
  if (!target || target.origin !== endpoint.origin) {
    invalidEvent(`Expected \`path\` to be a path on the endpoint's origin, starting with a single '/', got ${describe(path)}`);
  }
  return target.toString();
}

function resolve(options: OutboxOptions) {
  if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'Expected an options object');
  if (typeof options.store !== 'string' && typeof options.store?.insert !== 'function') {
    throw new ConfigError('store', 'Expected `store` to be a file path or an OutboxStore');
  }
  if (
    options.sqlite !== undefined &&
    (typeof options.store !== 'string' || typeof options.sqlite !== 'object' || options.sqlite === null)
  ) {
    throw new ConfigError('sqlite', 'Expected `sqlite` ({ thread?, commit? }) only with a file path as `store`');
  }
  const endpoint = resolveEndpoint(options.endpoint?.url);
  const signer = options.endpoint.signer ?? (options.endpoint.secrets ? standardWebhooksSigner(options.endpoint.secrets) : undefined);
  if (!signer)
    throw new ConfigError('endpoint.secrets', 'Expected `endpoint.secrets` (whsec_...) or `endpoint.signer`: webhooks are always signed');
  const body = options.endpoint.body;
  if (body !== undefined && typeof body !== 'function') {
    throw new ConfigError('endpoint.body', `Expected \`endpoint.body\` to be a function (envelope) => object, got ${describe(body)}`);
  }
  const schedule = options.scheduleMs ?? DEFAULT_SCHEDULE_MS;
  if (!Array.isArray(schedule) || schedule.length === 0 || !schedule.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new ConfigError('scheduleMs', 'Expected `scheduleMs` to be a non-empty list of non-negative integers');
  }
  const jitter = options.jitter ?? 0.2;
  if (typeof jitter !== 'number' || jitter < 0 || jitter >= 1)
    throw new ConfigError('jitter', `Expected \`jitter\` to be from 0 to 1, got ${jitter}`);
  return {
    endpoint,
    signer,
    body,
    headers: { ...options.endpoint.headers },
    instance: options.instance === undefined ? undefined : resolveInstance(options.instance),
    schedule,
    jitter,
    maxAgeMs: positiveInt('maxAgeMs', options.maxAgeMs ?? 259_200_000),
    maxAttempts: positiveInt('maxAttempts', options.maxAttempts ?? 0, 0),
    timeoutMs: positiveInt('timeoutMs', options.timeoutMs ?? 15_000),
    quickRetries: positiveInt('quickRetries', options.quickRetries ?? 2, 0),
    retryAfterMinMs: positiveInt('retryAfter.minMs', options.retryAfter?.minMs ?? 1000, 0),
    retryAfterMaxMs: positiveInt('retryAfter.maxMs', options.retryAfter?.maxMs ?? 3_600_000),
    retryOn409: options.retryOn409 ?? false,
    concurrency: positiveInt('concurrency', options.concurrency ?? 16),
    ratePerSecond: positiveInt('ratePerSecond', options.ratePerSecond ?? 200),
    failureThreshold: positiveInt('breaker.failureThreshold', options.breaker?.failureThreshold ?? 5),
    cooldownMs: positiveInt('breaker.cooldownMs', options.breaker?.cooldownMs ?? 30_000),
    maxEventBytes: positiveInt('maxEventBytes', options.maxEventBytes ?? 1_048_576, 256),
    retentionMs: positiveInt('retentionMs', options.retentionMs ?? 86_400_000),
    pollIntervalMs: positiveInt('pollIntervalMs', options.pollIntervalMs ?? 250, 5),
    now: options.now ?? Date.now,
    logger: createLogger(options.logger, 'outbox'),
    adoption: resolveAdoption(options),
  };
}

/** Refusals of an event, not failures of the store. */
const EVENT_ERRORS: ReadonlySet<string> = new Set(['WAFLEET_EVENT_INVALID', 'WAFLEET_EVENT_TOO_LARGE']);

/** undici's own timeouts (the Agent's backstops), reported like the attempt's timer. */
const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

/** Successors a session may send in a row before the pump's oldest-first choice applies again. */
const SUCCESSOR_CHAIN = 8;
/** The wait before the first in-process retry of an attempt that failed on the network. */
const QUICK_RETRY_FIRST_MS = 100;

/** Back-off of the pump while the store fails: doubling from the first to the last. */
const STORE_BACKOFF_MIN_MS = 250;
const STORE_BACKOFF_MAX_MS = 30_000;

/** A delivery attempt's result before classification. */
interface Attempt {
  status?: number;
  retryAfterMs?: number;
  error?: string;
  /** A newer event of its group replaced it while it was being retried: it is not sent again. */
  superseded?: boolean;
}

/** Creates an outbox. Give it to `createFleet({ outbox })` (or give it `instance`), then call `start()` before `enqueue()`. */
export function createOutbox(options: OutboxOptions): Outbox {
  return new Outbox(options);
}

/**
 * A durable webhook outbox: `enqueue` resolves once the event is on disk; delivery is at-least-once, signed,
 * in order per session, with a persisted retry schedule, a circuit breaker and dead letters.
 * @example
 * const outbox = createOutbox({ store: '/var/lib/wa/outbox.sqlite', endpoint: { url: 'http://backend/webhooks', secrets: [secret] } });
 * const fleet = createFleet({ redis, instanceId: 'wa-1', url: 'http://wa-1:3000', maxSessions: 20, outbox }); // gives it its identity
 * await outbox.start();
 * await outbox.enqueue({ type: 'message.received', session: '5511999990000', data: { from, body } });
 */
export class Outbox extends EventEmitter<OutboxEvents> {
  readonly #o: ReturnType<typeof resolve>;
  /** Who sends: the `instance` option, or the fleet this outbox was given to. Set before `start()`. */
  #instance: WebhookEnvelope['instance'] | undefined;
  readonly #store: OutboxStore;
  readonly #log: Logger;
  #state: 'idle' | 'running' | 'closed' = 'idle';
  #startPromise: Promise<void> | undefined;
  #closePromise: Promise<void> | undefined;
  readonly #busySessions = new Set<string>();
  /** Events with an attempt in flight: each event has at most one, with or without a session. */
  readonly #busyIds = new Set<string>();
  readonly #inFlight = new Set<Promise<void>>();
  /** Per session, how many events in a row went out as the successor the store handed over. */
  readonly #chains = new Map<string, number>();
  /** Keep-alive connections to the endpoint. */
  readonly #agent: Agent;
  #disabled = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #pumping = false;
  #pumpAgain = false;
  #tokens: number;
  #tokensAt = performance.now();
  #failures = 0;
  #openUntil = 0;
  #probing = false;
  #lastCleanup = 0;
  #lastCounts = 0;
  #lastPumpAt = performance.now();
  #counts: StoreCounts = { pending: 0, dead: 0, oldestPendingAt: undefined };
  /** A failing store (disk full, I/O errors): one `error` per episode, and the pump backs off. */
  #storeFailures = 0;
  #storeRetryAt = 0;
  #storeLoggedAt = 0;
  /** When the last store failure was emitted as `error` (`performance.now()`). */
  #storeErrorAt: number | undefined;
  readonly #reported = new WeakSet<object>();
  readonly #stats = { enqueued: 0, attempts: { delivered: 0, retry: 0, dead: 0, disabled: 0, superseded: 0 } };
  readonly #orphanStats = { scans: 0, files: 0, events: 0 };
  readonly #orphans: OrphanScanner | undefined;
  #nextOrphanScan = 0;

  constructor(options: OutboxOptions) {
    super();
    this.#o = resolve(options);
    this.#instance = this.#o.instance;
    exposeOutboxInternals(this, { identify: (identity) => this.#identify(identity) });
    this.#store = typeof options.store === 'string' ? new SqliteOutboxStore(options.store, options.sqlite) : options.store;
    this.#log = this.#o.logger;
    this.#tokens = this.#o.ratePerSecond;
    // Backstops only (undici's timers are coarse): the attempt's own timer below is what ends a slow attempt.
    const timeout = this.#o.timeoutMs;
    this.#agent = new Agent({ connect: { timeout }, headersTimeout: timeout, bodyTimeout: timeout });
    const adoption = this.#o.adoption;
    if (adoption) {
      this.#orphans = new OrphanScanner({
        ...adoption,
        origin: this.#o.endpoint.origin,
        adopt: (events) => this.#storeOp('write', () => this.#store.adopt!(events, this.#o.now())),
        onError: (err) => this.#fail(err),
        log: this.#log,
      });
    }
  }

  /**
   * Opens the store (failing with `WAFLEET_OUTBOX_STORE` when it cannot) and starts delivering, pending events
   * at once (the retry schedule resumes after that attempt). Idempotent.
   */
  start(): Promise<void> {
    // Not remembered: once a fleet has given the outbox its identity, start() may be called again.
    if (!this.#instance) {
      return Promise.reject(
        new ConfigError(
          'instance',
          'Expected `instance` ({ instanceId, url }), or this outbox given to createFleet({ outbox }) before start(): the fleet gives it its identity',
        ),
      );
    }
    this.#startPromise ??= (async () => {
      if (this.#closePromise) throw new StateError('WAFLEET_CLOSED', 'This outbox was closed');
      await this.#store.open();
      // A new process, maybe a new instance on another's file: whatever made the old one wait may be over.
      // One attempt per session head at most, within the rate limit and the breaker; then the schedule resumes.
      await this.#store.retryPendingNow?.(this.#o.now());
      this.#disabled = new Set(await this.#store.disabledTargets());
      this.#state = 'running';
      await this.#refreshCounts();
      this.#schedule(0);
    })();
    return this.#startPromise;
  }

  /**
   * Stores an event durably and resolves with its id and per-session seq. A newer event with the same
   * `supersedeGroup` and session replaces older undelivered ones.
   * @throws `WAFLEET_EVENT_INVALID` (bad fields, not JSON-serializable), `WAFLEET_EVENT_TOO_LARGE`, `WAFLEET_OUTBOX_STORE`
   */
  async enqueue(event: OutboxEvent): Promise<{ id: string; seq: number }> {
    const [result] = await this.enqueueMany([event]);
    return result!;
  }

  /** Like {@link enqueue} for several events in one transaction: all are stored or none. */
  async enqueueMany(events: readonly OutboxEvent[]): Promise<Array<{ id: string; seq: number }>> {
    if (this.#state !== 'running') {
      throw new StateError(this.#state === 'closed' ? 'WAFLEET_CLOSED' : 'WAFLEET_NOT_STARTED', 'Call start() before enqueue()');
    }
    const now = this.#o.now();
    const rows = events.map((event) => this.#prepare(event, now));
    const inserted = await this.#storeOp('write', () => this.#store.insert(rows));
    this.#stats.enqueued += inserted.length;
    this.#counts.pending += inserted.length;
    this.#counts.oldestPendingAt ??= now;
    // An event that is already its session's oldest goes at once; the others wait for their turn or the pump.
    let sent = 0;
    for (const { due } of inserted) if (due && this.#offer(due)) sent++;
    if (sent < inserted.length) this.#schedule(0);
    // A store that commits synchronously (`thread: 'main'`) lets a caller awaiting enqueue in a loop never yield to the
    // event loop, and delivery would starve: give I/O a turn while deliveries are in flight, or when the pump has not
    // run lately.
    if (this.#inFlight.size > 0 || performance.now() - this.#lastPumpAt > this.#o.pollIntervalMs) await new Promise((r) => setImmediate(r));
    return inserted.map(({ id, seq }) => ({ id, seq }));
  }

  #prepare(event: OutboxEvent, now: number) {
    if (typeof event !== 'object' || event === null) invalidEvent(`Expected an event object, got ${describe(event)}`);
    if (typeof event.type !== 'string' || !EVENT_TYPE.test(event.type)) {
      invalidEvent(`Expected \`type\` to match [A-Za-z0-9_.:-]{1,128}, got ${describe(event.type)}`);
    }
    const session = event.session === undefined ? '' : validateSessionId(event.session);
    if (event.epoch !== undefined && (typeof event.epoch !== 'string' || !CANONICAL_EPOCH.test(event.epoch))) {
      invalidEvent(`Expected \`epoch\` to be a decimal string without sign or leading zeros, got ${describe(event.epoch)}`);
    }
    const data: unknown = event.data === undefined ? {} : event.data;
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      invalidEvent(`Expected \`data\` to be a JSON object, got ${describe(event.data)}`);
    }
    const target = resolveTarget(this.#o.endpoint, event.path);
    const id = newEventId(now);
    const envelope = (seq: number): WebhookEnvelope => ({
      id,
      type: event.type,
      timestamp: new Date(now).toISOString(),
      session,
      epoch: event.epoch ?? '0',
      seq,
      instance: this.#instance!,
      data: data as WebhookEnvelope['data'],
    });
    let probe = '';
    try {
      // Serialized now, so a bad payload is refused before anything is stored.
      probe = JSON.stringify(envelope(Number.MAX_SAFE_INTEGER));
    } catch (err) {
      invalidEvent(`Event data is not JSON-serializable: ${(err as Error).message}`, err);
    }
    // Checked on what a receiver will parse (toJSON and dropped values included), by the rule verifyWebhook applies.
    const canonical: unknown = JSON.parse(probe);
    const problem = envelopeProblem(canonical);
    if (problem) invalidEvent(problem.message);
    return {
      id,
      session,
      type: event.type,
      supersedeGroup: event.supersedeGroup ?? '',
      target,
      createdAt: now,
      // Called by the store once the seq is known, inside the insert transaction: a refusal stores nothing.
      body: (seq: number) => this.#formatBody({ ...(canonical as WebhookEnvelope), seq }),
    };
  }

  /** The exact body stored, signed and sent: the envelope or what `endpoint.body` made of it, one JSON object. */
  #formatBody(envelope: WebhookEnvelope): string {
    const format = this.#o.body;
    let formatted: unknown = envelope;
    let body: string | undefined;
    try {
      if (format) formatted = format(envelope);
      body = JSON.stringify(formatted);
    } catch (err) {
      invalidEvent(`\`endpoint.body\` failed or returned a value that is not JSON-serializable: ${(err as Error).message}`, err);
    }
    // Judged on the serialized text, i.e. what the receiver parses (a toJSON() may turn an object into a string).
    if (!body?.startsWith('{')) {
      // The kind only: the value is webhook content, which messages never quote.
      const kind = formatted === null ? 'null' : Array.isArray(formatted) ? 'an array' : typeof formatted;
      invalidEvent(
        `Expected \`endpoint.body\` to return a JSON object, got ${kind}${kind === 'object' ? ' that serializes to another value' : ''}`,
      );
    }
    const bytes = Buffer.byteLength(body);
    if (bytes > this.#o.maxEventBytes) {
      throw new WafleetError('WAFLEET_EVENT_TOO_LARGE', `Event of ${bytes} bytes exceeds maxEventBytes ${this.#o.maxEventBytes}`);
    }
    return body;
  }

  /**
   * Sends events again with their original id: dead letters by default, or delivered ones with
   * `states: ['delivered']`. Returns how many were queued.
   */
  async replay(filter: ReplayFilter): Promise<number> {
    this.#assertRunning();
    const n = await this.#storeOp('write', () => this.#store.replay(filter, this.#o.now()));
    await this.#refreshCounts();
    this.#schedule(0);
    return n;
  }

  /** Dead-lettered events, oldest first. */
  async deadLetters(options: { session?: string; limit?: number } = {}): Promise<EventRow[]> {
    this.#assertRunning();
    return this.#storeOp('read', () => this.#store.list({ state: 'dead', session: options.session, limit: options.limit ?? 100 }));
  }

  /** Re-enables a target URL that answered 410. */
  async enableTarget(target: string): Promise<void> {
    this.#assertRunning();
    await this.#storeOp('write', () => this.#store.enableTarget(target));
    this.#disabled.delete(target);
  }

  /** Counters and gauges. */
  stats(): OutboxStats {
    return {
      ...this.#counts,
      enqueued: this.#stats.enqueued,
      attempts: { ...this.#stats.attempts },
      inFlight: this.#inFlight.size,
      breaker: this.#breakerState(),
      disabledTargets: this.#disabled.size,
      orphans: { ...this.#orphanStats },
      ...(this.#store.stats ? { store: this.#store.stats() } : {}),
    };
  }

  /** Stops delivering, waits for attempts in flight, closes the store. Undelivered events stay for the next start. */
  close(): Promise<void> {
    this.#closePromise ??= (async () => {
      await this.#startPromise?.catch(() => undefined);
      this.#state = 'closed';
      clearTimeout(this.#timer);
      if (this.#immediate) clearImmediate(this.#immediate);
      await Promise.allSettled([...this.#inFlight]);
      await this.#agent.close();
      await this.#store.close();
    })();
    return this.#closePromise;
  }

  /** The fleet this outbox was given to names the sender, unless `instance` already did (the same one, then). */
  #identify(identity: InstanceIdentity): void {
    const given = resolveInstance(identity);
    const current = this.#instance;
    if (current && (current.id !== given.id || current.url !== given.url)) {
      throw new ConfigError(
        'outbox',
        `Expected an outbox of instance '${given.id}' at ${given.url}, got one that sends as '${current.id}' at ${current.url}: give each fleet its own outbox`,
      );
    }
    this.#instance = given;
  }

  // ---- delivery ----

  #schedule(ms: number): void {
    if (this.#state !== 'running') return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (ms > 0) {
      this.#timer = setTimeout(() => void this.#pump(), ms).unref();
      return;
    }
    // setTimeout(0) waits at least 1 ms; a wake-up for new work should not.
    if (this.#immediate) return;
    this.#immediate = setImmediate(() => {
      this.#immediate = undefined;
      void this.#pump();
    }).unref();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    this.#lastPumpAt = performance.now();
    try {
      do {
        this.#pumpAgain = false;
        await this.#fill();
      } while (this.#pumpAgain && this.#state === 'running');
      await this.#housekeeping();
    } catch (err) {
      this.#fail(err as Error);
    } finally {
      this.#pumping = false;
      this.#schedule(Math.max(this.#o.pollIntervalMs, Math.ceil(this.#storeRetryAt - performance.now())));
    }
  }

  async #fill(): Promise<void> {
    const free = this.#o.concurrency - this.#inFlight.size;
    if (free <= 0 || this.#state !== 'running' || performance.now() < this.#storeRetryAt) return;
    const breaker = this.#breakerState();
    if (breaker === 'open' || (breaker === 'half-open' && this.#probing)) return;
    const budget = Math.min(free, breaker === 'half-open' ? 1 : free, Math.floor(this.#refillTokens()));
    if (budget <= 0) return;
    const due = await this.#storeOp('read', () => this.#store.due(this.#o.now(), budget, this.#busySessions, this.#busyIds));
    // Checked again per event: while the store looked, events may have gone out directly (enqueue, a session's next).
    for (const row of due) if (this.#offer(row)) this.#chains.delete(row.session);
  }

  /**
   * Sends a due event now if everything allows it: not already on the wire (nor its session), a free slot, the
   * breaker, the rate limit. Returns false when it has to wait for the pump.
   */
  #offer(row: EventRow): boolean {
    if (this.#state !== 'running' || performance.now() < this.#storeRetryAt) return false;
    if (this.#busyIds.has(row.id) || (row.session !== '' && this.#busySessions.has(row.session))) return false;
    if (this.#inFlight.size >= this.#o.concurrency) return false;
    const breaker = this.#breakerState();
    if (breaker === 'open' || (breaker === 'half-open' && this.#probing)) return false;
    if (this.#refillTokens() < 1) return false;
    this.#tokens -= 1;
    if (breaker === 'half-open') this.#probing = true;
    this.#launch(row);
    return true;
  }

  #refillTokens(): number {
    const now = performance.now();
    this.#tokens = Math.min(this.#o.ratePerSecond, this.#tokens + ((now - this.#tokensAt) / 1000) * this.#o.ratePerSecond);
    this.#tokensAt = now;
    return this.#tokens;
  }

  #launch(row: EventRow): void {
    if (row.session !== '') this.#busySessions.add(row.session);
    this.#busyIds.add(row.id);
    const job = this.#deliver(row)
      .catch((err: Error) => this.#fail(err))
      .finally(() => {
        this.#inFlight.delete(job);
        this.#busySessions.delete(row.session);
        this.#busyIds.delete(row.id);
      })
      .then((next) => {
        // The session's next event, which the store handed over with the delivery, goes at once, but only a few times
        // in a row: then the pump picks the oldest due event of any session, so a busy session cannot keep a slot
        // from the others. Another waiting event may take the slot otherwise (the count is an upper bound).
        const chained = this.#chains.get(row.session) ?? 0;
        if (next && chained < SUCCESSOR_CHAIN && this.#offer(next)) {
          this.#chains.set(row.session, chained + 1);
          return;
        }
        this.#chains.delete(row.session);
        if (this.#counts.pending > this.#inFlight.size) this.#schedule(0);
      });
    this.#inFlight.add(job);
  }

  /** One attempt and its outcome stored; resolves with the session's next event when the store handed it over. */
  async #deliver(row: EventRow): Promise<EventRow | undefined | void> {
    const o = this.#o;
    const attempts = row.attempts + 1;
    if (this.#disabled.has(row.target)) return this.#finish(row, attempts, 'disabled', undefined, 0, 'target disabled (410)');
    if (o.now() - row.ageFrom > o.maxAgeMs) return this.#finish(row, row.attempts, 'dead', undefined, 0, 'max age');
    const t0 = performance.now();
    const result = await this.#send(row);
    const durationMs = performance.now() - t0;
    if (result.superseded) return this.#emitAttempt(row, 'superseded', undefined, durationMs);
    const status = result.status;
    if (status !== undefined && status >= 200 && status < 300) {
      this.#breakerSuccess();
      const next = await this.#storeOp('write', () => this.#store.markDelivered(row.id, attempts, o.now()));
      this.#counts.pending = Math.max(0, this.#counts.pending - 1);
      if (this.#counts.pending === 0) this.#counts.oldestPendingAt = undefined;
      this.#emitAttempt(row, 'delivered', status, durationMs);
      return next;
    }
    if (status === 410) {
      this.#breakerSuccess();
      this.#disabled.add(row.target);
      await this.#storeOp('write', () => this.#store.disableTarget(row.target, o.now()));
      this.#log.warn('webhook target answered 410 Gone: disabled', { status });
      return this.#finish(row, attempts, 'disabled', status, durationMs, 'target gone (410)');
    }
    const retryable = status === undefined || status >= 500 || [408, 425, 429].includes(status) || (status === 409 && o.retryOn409);
    if (!retryable) {
      this.#breakerSuccess();
      return this.#finish(row, attempts, 'dead', status, durationMs, `rejected with ${status}`);
    }
    this.#breakerFailure();
    if (o.maxAttempts > 0 && attempts >= o.maxAttempts)
      return this.#finish(row, attempts, 'dead', status, durationMs, `${attempts} attempts`);
    let delay = retryDelay(o.schedule, attempts + 1, o.jitter);
    if (result.retryAfterMs !== undefined)
      delay = Math.max(delay, Math.min(o.retryAfterMaxMs, Math.max(o.retryAfterMinMs, result.retryAfterMs)));
    const nextAt = o.now() + delay;
    if (nextAt - row.ageFrom > o.maxAgeMs) return this.#finish(row, attempts, 'dead', status, durationMs, 'max age');
    await this.#storeOp('write', () => this.#store.markRetry(row.id, attempts, nextAt, result.error ?? `HTTP ${status}`));
    this.#emitAttempt(row, 'retry', status, durationMs);
  }

  async #finish(
    row: EventRow,
    attempts: number,
    outcome: 'dead' | 'disabled',
    status: number | undefined,
    durationMs: number,
    reason: string,
  ): Promise<void> {
    await this.#storeOp('write', () => this.#store.markDead(row.id, attempts, reason, status === undefined ? '' : `HTTP ${status}`));
    this.#counts.pending = Math.max(0, this.#counts.pending - 1);
    this.#counts.dead += 1;
    this.#log.warn('webhook dead-lettered', { reason, type: row.type });
    this.#emitAttempt(row, outcome, status, durationMs);
  }

  #emitAttempt(row: EventRow, outcome: AttemptOutcome, status: number | undefined, durationMs: number): void {
    this.#stats.attempts[outcome]++;
    this.emit('attempt', { id: row.id, session: row.session, outcome, status, durationMs });
  }

  /** One attempt, with quick in-process retries of connection errors and timeouts only. */
  async #send(row: EventRow): Promise<Attempt> {
    const o = this.#o;
    let tries = 0;
    const once = async (): Promise<Attempt> => {
      if (tries++ > 0 && !(await this.#storeOp('read', () => this.#store.isPending(row.id)))) return { superseded: true };
      const timestamp = Math.floor(o.now() / 1000);
      const headers = {
        ...o.headers,
        // For dedupe whatever the signer: it names the event, not the body format.
        'webhook-id': row.id,
        ...o.signer({ id: row.id, timestamp, body: row.body }),
        'content-type': 'application/json',
        'user-agent': 'wafleet-outbox/0.1',
        'x-instance-url': this.#instance!.url,
      };
      // An emitter, not an AbortSignal: undici takes either, and this one costs far less per attempt.
      const signal = new EventEmitter();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        signal.emit('abort');
      }, o.timeoutMs);
      try {
        // undici's request, not fetch: a fraction of the allocations per attempt. It never follows a redirect.
        const res = await request(row.target, { method: 'POST', headers, body: row.body, dispatcher: this.#agent, signal });
        await res.body.dump().catch(() => undefined);
        const retryAfter = res.headers['retry-after'];
        return { status: res.statusCode, retryAfterMs: parseRetryAfter(typeof retryAfter === 'string' ? retryAfter : null, o.now()) };
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        const error = timedOut || TIMEOUT_CODES.has(code as string) ? 'timeout' : typeof code === 'string' ? code : (err as Error).message;
        // A network failure is retried quickly in process; an HTTP answer never is (the schedule handles it).
        throw Object.assign(new Error(error), { attempt: { error } });
      } finally {
        clearTimeout(timer);
      }
    };
    const failed = (err: unknown): Attempt => (err as { attempt?: Attempt }).attempt ?? { error: (err as Error).message };
    // The first try runs on its own: nearly every attempt ends there, and p-retry's bookkeeping cost about 4% of the
    // event loop in a burst. After a network failure, p-retry runs the rest: 100 ms, then doubling up to 1 s.
    try {
      return await once();
    } catch (err) {
      // Only a network failure (which carries its attempt) is retried in process; a throwing signer is not.
      if (!(err as { attempt?: Attempt }).attempt || o.quickRetries === 0 || this.#state !== 'running') return failed(err);
    }
    // Referenced, like p-retry's own waits: close() waits for this attempt, and the process must not exit under it.
    await new Promise((resolve) => setTimeout(resolve, QUICK_RETRY_FIRST_MS));
    try {
      return await pRetry(once, {
        retries: o.quickRetries - 1,
        minTimeout: QUICK_RETRY_FIRST_MS * 2,
        maxTimeout: 1000,
        shouldRetry: () => this.#state === 'running',
      });
    } catch (err) {
      return failed(err);
    }
  }

  // ---- circuit breaker ----

  #breakerState(): OutboxStats['breaker'] {
    if (this.#failures < this.#o.failureThreshold) return 'closed';
    return this.#o.now() < this.#openUntil ? 'open' : 'half-open';
  }

  #breakerSuccess(): void {
    this.#failures = 0;
    this.#probing = false;
  }

  #breakerFailure(): void {
    this.#failures++;
    this.#probing = false;
    if (this.#failures >= this.#o.failureThreshold) {
      this.#openUntil = this.#o.now() + this.#o.cooldownMs;
      if (this.#failures === this.#o.failureThreshold) this.#log.warn('webhook circuit breaker open', { cooldownMs: this.#o.cooldownMs });
    }
  }

  // ---- upkeep ----

  async #housekeeping(): Promise<void> {
    const now = this.#o.now();
    if (this.#state !== 'running' || performance.now() < this.#storeRetryAt) return;
    if (now - this.#lastCleanup > 60_000) {
      this.#lastCleanup = now;
      await this.#storeOp('write', () => this.#store.cleanup(now - this.#o.retentionMs));
    }
    if (this.#orphans && this.#state === 'running' && performance.now() >= this.#nextOrphanScan) {
      this.#nextOrphanScan = performance.now() + this.#o.adoption!.intervalMs;
      await this.#adoptOrphans(this.#orphans);
    }
    // The counts scan the table: once a second is plenty for gauges.
    if (performance.now() - this.#lastCounts > 1000) await this.#refreshCounts();
  }

  async #adoptOrphans(scanner: OrphanScanner): Promise<void> {
    const adopted = await scanner.scan();
    this.#orphanStats.scans++;
    for (const a of adopted) {
      this.#orphanStats.files++;
      this.#orphanStats.events += a.pending + a.dead;
      this.#log.warn('adopted an orphaned outbox', { file: a.file, pending: a.pending, dead: a.dead });
      this.emit('adopted', a);
    }
    if (adopted.length > 0) {
      await this.#refreshCounts();
      this.#schedule(0);
    }
  }

  async #refreshCounts(): Promise<void> {
    if (this.#state !== 'running') return;
    this.#lastCounts = performance.now();
    this.#counts = await this.#storeOp('read', () => this.#store.counts());
  }

  #assertRunning(): void {
    if (this.#state !== 'running')
      throw new StateError(this.#state === 'closed' ? 'WAFLEET_CLOSED' : 'WAFLEET_NOT_STARTED', 'The outbox is not running');
  }

  #fail(err: Error): void {
    if (this.#reported.has(err)) return;
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.#log.error('outbox error', { err });
  }

  // ---- store health ----

  /**
   * Runs a store operation. A failure (wrapped in `OutboxStoreError` when the store threw something else) starts
   * or continues a failure episode; only a successful write ends one, since reads keep working on a full disk.
   */
  async #storeOp<T>(kind: 'read' | 'write', op: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await op();
    } catch (err) {
      // An event refused while the store built its body (inside the insert transaction) is the caller's error.
      if (err instanceof WafleetError && EVENT_ERRORS.has(err.code)) throw err;
      const error =
        err instanceof WafleetError ? err : new OutboxStoreError(`Outbox store failed: ${(err as Error)?.message}`, { cause: err });
      this.#storeFailed(error);
      throw error;
    }
    if (kind === 'write' && this.#storeFailures > 0) {
      this.#log.info('outbox store recovered', { failures: this.#storeFailures });
      this.#storeFailures = 0;
      this.#storeRetryAt = 0;
    }
    return result;
  }

  /**
   * Emits `error` once per episode, and at most once a minute: a nearly full disk lets a small write through now and
   * then, which ends an episode and starts the next at once. Logs a repeat at most once a minute, and backs the pump
   * off (exponential, capped).
   */
  #storeFailed(err: WafleetError): void {
    this.#storeFailures++;
    const backoffMs = Math.min(STORE_BACKOFF_MAX_MS, STORE_BACKOFF_MIN_MS * 2 ** Math.min(this.#storeFailures - 1, 16));
    this.#storeRetryAt = performance.now() + backoffMs;
    if (this.#storeFailures === 1 && (this.#storeErrorAt === undefined || performance.now() - this.#storeErrorAt >= 60_000)) {
      this.#fail(err);
      this.#storeErrorAt = performance.now();
      this.#storeLoggedAt = performance.now();
    } else if (performance.now() - this.#storeLoggedAt >= 60_000) {
      this.#storeLoggedAt = performance.now();
      this.#log.warn('outbox store still failing', { failures: this.#storeFailures, backoffMs, err });
    }
    this.#reported.add(err);
  }
}
