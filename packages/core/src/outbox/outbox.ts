import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import pRetry from 'p-retry';
import { ConfigError, StateError, WafleetError } from '../errors.js';
import { validateSessionId } from '../ids.js';
import { createLogger, type Logger } from '../logger.js';
import { newEventId } from './event-id.js';
import { DEFAULT_SCHEDULE_MS, parseRetryAfter, retryDelay } from './schedule.js';
import { standardWebhooksSigner, type Signer } from './signers.js';
import { SqliteOutboxStore } from './sqlite-store.js';
import type { EventRow, OutboxStore, ReplayFilter, StoreCounts } from './store.js';

/** An event to send. */
export interface OutboxEvent {
  /** Event type, e.g. `session.status`, `message.received`. */
  type: string;
  /** Session the event belongs to; events of one session are delivered one at a time, in order. */
  session?: string;
  /** Fencing epoch of the session when the event happened (decimal string). */
  epoch?: string;
  /** JSON-serializable payload. */
  data?: unknown;
  /** Path (or absolute URL) on the backend, resolved against the endpoint URL. @default the endpoint URL */
  path?: string;
  /** A newer event of the same session and group supersedes older undelivered ones (state events). */
  supersedeGroup?: string;
}

/**
 * The JSON body of every wafleet webhook. `TData` narrows `data` for event types whose payload you know.
 * @example
 * const event = verifyWebhook(secret, req.headers, req.body) as WebhookEnvelope<{ status: string; previous: string }>;
 * if (event.type === 'session.status') await setStatus(event.session, event.data.status);
 */
export interface WebhookEnvelope<TData extends object = Record<string, unknown>> {
  /** `evt_` and a ULID; equals the `webhook-id` header and stays the same on every retry and replay: dedupe by it. */
  id: string;
  /** `session.status`, the ready event (`session.ready` unless the sender renamed it) or any other type. */
  type: string;
  /** ISO 8601 time of enqueue (not of this attempt). */
  timestamp: string;
  /** Session id, '' for events that belong to no session. */
  session: string;
  /** The session's fencing epoch: a canonical decimal string that can exceed 2^53. Order with {@link compareEventOrder}. */
  epoch: string;
  /** Per session and sending instance, increasing; gaps are normal (superseded state events are never sent). */
  seq: number;
  /** The sending instance. */
  instance: { id: string; url: string };
  /** For `session.status` and the ready event: `{ status, previous }` (`previous` is '' for the first status). */
  data: TData;
}

/** How one delivery attempt ended. */
export type AttemptOutcome = 'delivered' | 'retry' | 'dead' | 'disabled' | 'superseded';

/** Options of {@link createOutbox}. */
export interface OutboxOptions {
  /** A file path (one SQLite file per instance) or another {@link OutboxStore}. */
  store: string | OutboxStore;
  /** The backend that receives the webhooks. */
  endpoint: {
    /** Base URL; events with a `path` go to that path on it. */
    url: string;
    /** `whsec_` secrets for Standard Webhooks signatures (several during a rotation). */
    secrets?: readonly string[];
    /** Replaces the Standard Webhooks signer (e.g. {@link legacyHmacSigner}). */
    signer?: Signer;
    /** Extra headers on every delivery. */
    headers?: Record<string, string>;
  };
  /** The sending instance, carried in every envelope and in `X-Instance-Url`. */
  instance: { id: string; url: string };
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
  /** Largest serialized envelope. @default 1_048_576 */
  maxEventBytes?: number;
  /** Delivered and superseded events are deleted after this long. @default 86_400_000 */
  retentionMs?: number;
  /** How often the outbox looks for due events when nothing wakes it. @default 250 */
  pollIntervalMs?: number;
  /** Wall clock for schedules (ms); injectable so tests can simulate long outages. @default Date.now */
  now?: () => number;
  /** pino, winston or console-like logger. @default no logging */
  logger?: unknown;
}

/** Counters and gauges for metrics and tests. */
export interface OutboxStats extends StoreCounts {
  enqueued: number;
  attempts: Record<AttemptOutcome, number>;
  inFlight: number;
  breaker: 'closed' | 'open' | 'half-open';
}

/** Events of an {@link Outbox}. */
export interface OutboxEvents {
  attempt: [{ id: string; session: string; outcome: AttemptOutcome; status: number | undefined; durationMs: number }];
  error: [Error];
}

function positiveInt(option: string, value: unknown, min = 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new ConfigError(option, `Expected \`${option}\` to be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function resolve(options: OutboxOptions) {
  if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'Expected an options object');
  if (typeof options.store !== 'string' && typeof options.store?.insert !== 'function') {
    throw new ConfigError('store', 'Expected `store` to be a file path or an OutboxStore');
  }
  let endpoint: URL;
  try {
    endpoint = new URL(options.endpoint?.url);
  } catch {
    throw new ConfigError('endpoint.url', `Expected \`endpoint.url\` to be an absolute URL, got ${JSON.stringify(options.endpoint?.url)}`);
  }
  const signer = options.endpoint.signer ?? (options.endpoint.secrets ? standardWebhooksSigner(options.endpoint.secrets) : undefined);
  if (!signer)
    throw new ConfigError('endpoint.secrets', 'Expected `endpoint.secrets` (whsec_...) or `endpoint.signer`: webhooks are always signed');
  if (typeof options.instance?.id !== 'string' || typeof options.instance?.url !== 'string') {
    throw new ConfigError('instance', 'Expected `instance` to be { id, url }');
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
    headers: { ...options.endpoint.headers },
    instance: { id: options.instance.id, url: options.instance.url },
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
    logger: createLogger(options.logger),
  };
}

/** A delivery attempt's result before classification. */
interface Attempt {
  status?: number;
  retryAfterMs?: number;
  error?: string;
  /** A newer event of its group replaced it while it was being retried: it is not sent again. */
  superseded?: boolean;
}

/** Creates an outbox. Call `start()` before `enqueue()`. */
export function createOutbox(options: OutboxOptions): Outbox {
  return new Outbox(options);
}

/**
 * A durable webhook outbox: `enqueue` resolves once the event is on disk; delivery is at-least-once, signed,
 * in order per session, with a persisted retry schedule, a circuit breaker and dead letters.
 * @example
 * const outbox = createOutbox({ store: '/var/lib/wa/outbox.sqlite', endpoint: { url: 'http://backend/webhooks', secrets: [secret] },
 *   instance: { id: 'wa-1', url: 'http://wa-1:3000' } });
 * await outbox.start();
 * await outbox.enqueue({ type: 'message.received', session: '5511999990000', data: { from, body } });
 */
export class Outbox extends EventEmitter<OutboxEvents> {
  readonly #o: ReturnType<typeof resolve>;
  readonly #store: OutboxStore;
  readonly #log: Logger;
  #state: 'idle' | 'running' | 'closed' = 'idle';
  #startPromise: Promise<void> | undefined;
  #closePromise: Promise<void> | undefined;
  readonly #busySessions = new Set<string>();
  readonly #inFlight = new Set<Promise<void>>();
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
  readonly #stats = { enqueued: 0, attempts: { delivered: 0, retry: 0, dead: 0, disabled: 0, superseded: 0 } };

  constructor(options: OutboxOptions) {
    super();
    this.#o = resolve(options);
    this.#store = typeof options.store === 'string' ? new SqliteOutboxStore(options.store) : options.store;
    this.#log = this.#o.logger;
    this.#tokens = this.#o.ratePerSecond;
  }

  /** Opens the store (failing with `WAFLEET_OUTBOX_STORE` when it cannot) and starts delivering. Idempotent. */
  start(): Promise<void> {
    this.#startPromise ??= (async () => {
      if (this.#closePromise) throw new StateError('WAFLEET_CLOSED', 'This outbox was closed');
      await this.#store.open();
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
    const inserted = await this.#store.insert(rows);
    this.#stats.enqueued += inserted.length;
    this.#counts.pending += inserted.length;
    this.#counts.oldestPendingAt ??= now;
    this.#schedule(0);
    // The store commits synchronously, so a caller awaiting enqueue in a loop never yields to the event loop and
    // delivery would starve: give I/O a turn while deliveries are in flight, or when the pump has not run lately.
    if (this.#inFlight.size > 0 || performance.now() - this.#lastPumpAt > this.#o.pollIntervalMs) await new Promise((r) => setImmediate(r));
    return inserted;
  }

  #prepare(event: OutboxEvent, now: number) {
    if (typeof event !== 'object' || event === null) throw new WafleetError('WAFLEET_EVENT_INVALID', 'Expected an event object');
    if (typeof event.type !== 'string' || !/^[\w.:-]{1,128}$/.test(event.type)) {
      throw new WafleetError(
        'WAFLEET_EVENT_INVALID',
        `Expected \`type\` to match [A-Za-z0-9_.:-]{1,128}, got ${JSON.stringify(event.type)}`,
      );
    }
    const session = event.session === undefined ? '' : validateSessionId(event.session);
    if (event.epoch !== undefined && (typeof event.epoch !== 'string' || !/^\d{1,30}$/.test(event.epoch))) {
      throw new WafleetError('WAFLEET_EVENT_INVALID', `Expected \`epoch\` to be a decimal string, got ${JSON.stringify(event.epoch)}`);
    }
    let target: string;
    try {
      target = new URL(event.path ?? '', this.#o.endpoint).toString();
    } catch {
      throw new WafleetError('WAFLEET_EVENT_INVALID', `Expected \`path\` to be a path or URL, got ${JSON.stringify(event.path)}`);
    }
    const id = newEventId(now);
    const envelope = (seq: number): WebhookEnvelope => ({
      id,
      type: event.type,
      timestamp: new Date(now).toISOString(),
      session,
      epoch: event.epoch ?? '0',
      seq,
      instance: this.#o.instance,
      // Any JSON value; receivers narrow it by type.
      data: (event.data ?? null) as WebhookEnvelope['data'],
    });
    let probe: string;
    try {
      // Serialized now, so a bad payload is refused before anything is stored.
      probe = JSON.stringify(envelope(Number.MAX_SAFE_INTEGER));
    } catch (err) {
      throw new WafleetError('WAFLEET_EVENT_INVALID', `Event data is not JSON-serializable: ${(err as Error).message}`, { cause: err });
    }
    const bytes = Buffer.byteLength(probe);
    if (bytes > this.#o.maxEventBytes) {
      throw new WafleetError('WAFLEET_EVENT_TOO_LARGE', `Event of ${bytes} bytes exceeds maxEventBytes ${this.#o.maxEventBytes}`);
    }
    return {
      id,
      session,
      type: event.type,
      supersedeGroup: event.supersedeGroup ?? '',
      target,
      createdAt: now,
      body: (seq: number) => JSON.stringify(envelope(seq)),
    };
  }

  /**
   * Sends events again with their original id: dead letters by default, or delivered ones with
   * `states: ['delivered']`. Returns how many were queued.
   */
  async replay(filter: ReplayFilter): Promise<number> {
    this.#assertRunning();
    const n = await this.#store.replay(filter, this.#o.now());
    await this.#refreshCounts();
    this.#schedule(0);
    return n;
  }

  /** Dead-lettered events, oldest first. */
  async deadLetters(options: { session?: string; limit?: number } = {}): Promise<EventRow[]> {
    this.#assertRunning();
    return this.#store.list({ state: 'dead', session: options.session, limit: options.limit ?? 100 });
  }

  /** Re-enables a target URL that answered 410. */
  async enableTarget(target: string): Promise<void> {
    this.#assertRunning();
    await this.#store.enableTarget(target);
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
      await this.#store.close();
    })();
    return this.#closePromise;
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
      this.#schedule(this.#o.pollIntervalMs);
    }
  }

  async #fill(): Promise<void> {
    const free = this.#o.concurrency - this.#inFlight.size;
    if (free <= 0 || this.#state !== 'running') return;
    const breaker = this.#breakerState();
    if (breaker === 'open' || (breaker === 'half-open' && this.#probing)) return;
    const budget = Math.min(free, breaker === 'half-open' ? 1 : free, Math.floor(this.#refillTokens()));
    if (budget <= 0) return;
    const due = await this.#store.due(this.#o.now(), budget, this.#busySessions);
    for (const row of due) {
      this.#tokens -= 1;
      if (this.#breakerState() === 'half-open') this.#probing = true;
      this.#launch(row);
    }
  }

  #refillTokens(): number {
    const now = performance.now();
    this.#tokens = Math.min(this.#o.ratePerSecond, this.#tokens + ((now - this.#tokensAt) / 1000) * this.#o.ratePerSecond);
    this.#tokensAt = now;
    return this.#tokens;
  }

  #launch(row: EventRow): void {
    if (row.session !== '') this.#busySessions.add(row.session);
    const job = this.#deliver(row)
      .catch((err: Error) => this.#fail(err))
      .finally(() => {
        this.#inFlight.delete(job);
        this.#busySessions.delete(row.session);
        // The next event of this session, or another waiting one, may go now.
        this.#schedule(0);
      });
    this.#inFlight.add(job);
  }

  async #deliver(row: EventRow): Promise<void> {
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
      await this.#store.markDelivered(row.id, attempts, o.now());
      this.#counts.pending = Math.max(0, this.#counts.pending - 1);
      if (this.#counts.pending === 0) this.#counts.oldestPendingAt = undefined;
      return this.#emitAttempt(row, 'delivered', status, durationMs);
    }
    if (status === 410) {
      this.#breakerSuccess();
      this.#disabled.add(row.target);
      await this.#store.disableTarget(row.target, o.now());
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
    await this.#store.markRetry(row.id, attempts, nextAt, result.error ?? `HTTP ${status}`);
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
    await this.#store.markDead(row.id, attempts, reason, status === undefined ? '' : `HTTP ${status}`);
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
      if (tries++ > 0 && !(await this.#store.isPending(row.id))) return { superseded: true };
      const timestamp = Math.floor(o.now() / 1000);
      const headers = {
        ...o.headers,
        ...o.signer({ id: row.id, timestamp, body: row.body }),
        'content-type': 'application/json',
        'user-agent': 'wafleet-outbox/0.1',
        'x-instance-url': o.instance.url,
      };
      try {
        const res = await fetch(row.target, {
          method: 'POST',
          headers,
          body: row.body,
          signal: AbortSignal.timeout(o.timeoutMs),
          redirect: 'manual',
        });
        await res.body?.cancel().catch(() => undefined);
        return { status: res.status, retryAfterMs: parseRetryAfter(res.headers.get('retry-after'), o.now()) };
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause;
        const error = (err as Error).name === 'TimeoutError' ? 'timeout' : (cause?.code ?? (err as Error).message);
        // A network failure is retried quickly in process; an HTTP answer never is (the schedule handles it).
        throw Object.assign(new Error(error), { attempt: { error } });
      }
    };
    try {
      return await pRetry(once, {
        retries: o.quickRetries,
        minTimeout: 100,
        maxTimeout: 1000,
        shouldRetry: () => this.#state === 'running',
      });
    } catch (err) {
      return (err as { attempt?: Attempt }).attempt ?? { error: (err as Error).message };
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
    if (now - this.#lastCleanup > 60_000) {
      this.#lastCleanup = now;
      await this.#store.cleanup(now - this.#o.retentionMs);
    }
    // The counts scan the table: once a second is plenty for gauges.
    if (performance.now() - this.#lastCounts > 1000) await this.#refreshCounts();
  }

  async #refreshCounts(): Promise<void> {
    if (this.#state !== 'running') return;
    this.#lastCounts = performance.now();
    this.#counts = await this.#store.counts();
  }

  #assertRunning(): void {
    if (this.#state !== 'running')
      throw new StateError(this.#state === 'closed' ? 'WAFLEET_CLOSED' : 'WAFLEET_NOT_STARTED', 'The outbox is not running');
  }

  #fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.#log.error('outbox error', { err: err.message });
  }
}
