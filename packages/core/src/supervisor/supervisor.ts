import { EventEmitter } from 'node:events';
import {
  ConfigError,
  createLogger,
  describeValue as describe,
  stopReason,
  validateSessionId,
  WafleetError,
  within,
  type Logger,
  type SessionMetadata,
} from '@wafleet/protocol';
import type { Fleet, FleetEvents, SessionStatus } from '../registry/fleet.js';
import { integer } from '../registry/options.js';
import type { EngineEvent, EngineFactory, EngineStopReason, SessionEngine } from './engine.js';
import { FAILURE_CLASSES, failureClass, type FailureClass } from './failures.js';
import type { StartBreaker } from './start-breaker.js';
import type { Inbox, InboxRun } from '../inbox/inbox.js';

/** The part of a dead-man switch the supervisor drives (see `startDeadmanSwitch`). */
export interface DeadmanLike {
  refresh(inMs: number): void;
  track(sessionId: string, pids: readonly number[]): void;
  untrack(sessionId: string): void;
  /** Resolves once the switch guards new browsers (see `DeadmanSwitch.armed`); launches wait for it. */
  armed?(): Promise<void>;
}

/** The fleet events a supervisor listens to. */
export type SupervisedFleetEvent = 'assigned' | 'fenced' | 'epoch' | 'renewed';

/**
 * The part of a {@link Fleet} a supervisor drives: the events that start and stop sessions, ownership checks, claim,
 * release, status writes, the session's record (its metadata) and the stop hook. A Fleet from `createFleet()` is one;
 * so is a test double.
 */
export interface SupervisedFleet extends Pick<
  Fleet,
  'instanceId' | 'ownedSessions' | 'owns' | 'epochOf' | 'claim' | 'release' | 'owner' | 'setStatus' | 'setStopSession'
> {
  on<E extends SupervisedFleetEvent>(event: E, listener: (...args: FleetEvents[E]) => void): unknown;
  /** Waits for a replica to have the grant before an engine starts (see `Fleet.replicated`); optional for doubles. */
  replicated?(): Promise<boolean>;
}

/** Members a {@link SupervisedFleet} must have as functions. */
const FLEET_METHODS = ['on', 'ownedSessions', 'owns', 'epochOf', 'claim', 'release', 'owner', 'setStatus', 'setStopSession'] as const;

function checkFleet(fleet: unknown): SupervisedFleet {
  const f = (fleet ?? {}) as Record<string, unknown>;
  const missing = [...(typeof f.instanceId === 'string' ? [] : ['instanceId']), ...FLEET_METHODS.filter((m) => typeof f[m] !== 'function')];
  if (missing.length > 0) {
    throw new ConfigError(
      'fleet',
      `Expected \`fleet\` to be a Fleet from createFleet() (or a SupervisedFleet), missing ${missing.join(', ')}`,
    );
  }
  return fleet as SupervisedFleet;
}

/** Options of {@link createSupervisor}. */
export interface SupervisorOptions {
  /** The fleet whose sessions this supervisor runs: a Fleet from `createFleet()`, or any {@link SupervisedFleet}. */
  fleet: SupervisedFleet;
  /** Creates one engine per session run. */
  engine: EngineFactory;
  /** Sessions launched at once: each launch starts a browser. @default 1 */
  startConcurrency?: number;
  /** Pause after each launch before the next one. @default 0 */
  staggerMs?: number;
  /** A launch must reach WORKING or SCAN_QR_CODE within this, else it counts as a crash. @default 120000 */
  startTimeoutMs?: number;
  /** Health probe period while WORKING (0 disables). @default 30000 */
  probeIntervalMs?: number;
  /** A probe slower than this marks a zombie. @default 10000 */
  probeTimeoutMs?: number;
  /**
   * Restart backoff after crashes: first delay, cap, and consecutive failures before giving up (FAILED with desired
   * state stopped and reason `restarts exhausted: <last failure>`; not adopted elsewhere until restarted).
   */
  restart?: { baseMs?: number; maxMs?: number; maxAttempts?: number };
  /** Longest wait for an engine to stop. @default 15000 */
  stopTimeoutMs?: number;
  /** Kills the browsers of this instance if it stops refreshing its self-fence deadline. */
  deadman?: DeadmanLike;
  /** Transitions kept per session. @default 10 */
  transitionsKept?: number;
  /**
   * The fleet-wide start breaker (`createStartBreaker({ fleet })`, the same on every instance): every start's outcome
   * is recorded, and while it is open restarts wait for a probe permit instead of running. @default none
   */
  breaker?: Pick<StartBreaker, 'record' | 'permit'> & Partial<Pick<StartBreaker, 'state' | 'stats'>>;
  /**
   * Where inbound messages go (`createInbox({ fleet, outbox })`): each engine `message` event, deduplicated by id,
   * and after every start a catch-up of what arrived while the session ran nowhere (engines with `catchUp`).
   * @default none (message events are ignored)
   */
  inbox?: Pick<Inbox, 'open'>;
  /**
   * Recycling: a WORKING session whose browser uses more than `memoryLimitBytes`, or has run longer than `maxAgeMs`
   * (each run's limit drawn up to 10% below it, so sessions started together do not all go together), is handed off
   * to another instance through `fleet.handoff` (its login saved first), at most `concurrency` at a time on this
   * instance with `staggerMs` between them, checked after each memory reading. Needs a fleet with `handoff` (a Fleet
   * from createFleet()). @default no recycling
   */
  recycle?: RecycleOptions;
  /**
   * How often each browser's memory is read (the engine's `memoryBytes()`): for `stats()`, the session view,
   * metrics, recycling, and the fleet's `memoryBudgetBytes` (reported with `fleet.reportMemory`). @default 30000
   */
  memoryIntervalMs?: number;
  /**
   * Automatic rebalancing: every `intervalMs` (with up to 20% jitter) this instance calls `rebalance({ spread,
   * maxMoves })`, so the fullest instances shed their excess a few sessions at a time. @default off (call
   * `rebalance()` or `POST /rebalance` yourself)
   */
  rebalance?: { intervalMs: number; spread?: number; maxMoves?: number };
  /**
   * `send()`: how long a sent message may go without the server's acknowledgement (ack 1) before the send fails
   * (`WAFLEET_SEND_UNACKNOWLEDGED`), and how many such sends in a row mark the session as dead and restart it (the
   * page answers probes but nothing goes out; 0 never restarts for this). @default { ackTimeoutMs: 15000, restartAfter: 3 }
   */
  sends?: { ackTimeoutMs?: number; restartAfter?: number };
  /** Called when an engine starts (before it is up) and stops (after it is down), e.g. for a journal. */
  onEngine?: (event: { event: 'start' | 'stop'; sessionId: string; epoch: string }) => void;
  /** pino, winston or console-like logger. @default no logging */
  logger?: unknown;
}

/** Options of recycling (see `SupervisorOptions.recycle`). */
export interface RecycleOptions {
  /** Recycle a browser above this resident memory (bytes). @default none */
  memoryLimitBytes?: number;
  /** Recycle a browser older than this (ms since ready). @default none */
  maxAgeMs?: number;
  /** Sessions of this instance recycled at the same time. @default 1 */
  concurrency?: number;
  /** Pause after each recycle before the next. @default 10000 */
  staggerMs?: number;
}

/** Options of {@link Supervisor.rebalance}. */
export interface RebalanceOptions {
  /** Plan only: say what would move, move nothing. @default false */
  dryRun?: boolean;
  /** Instances may differ by this many sessions (most loaded minus least loaded) before anything moves. @default 2 */
  spread?: number;
  /** Most sessions this call moves. @default 10 */
  maxMoves?: number;
  /** Handoffs at the same time. @default 2 */
  concurrency?: number;
}

/** What {@link Supervisor.rebalance} did (or, with `dryRun`, would do). */
export interface RebalanceResult {
  /** This instance's load before, the fleet's target per instance (rounded up), and the spread it found. */
  load: number;
  target: number;
  spread: number;
  /** Sessions chosen to move (WORKING and idle, oldest first). */
  planned: string[];
  /** Of those: handed to another instance, queued for placement (none had room), or failed. */
  moved: Array<{ sessionId: string; outcome: 'handed-off' | 'pending' | 'failed'; owner: string }>;
}

/** Why a session was recycled. */
export type RecycleReason = 'memory' | 'age';

/** One status change of a session. */
export interface Transition {
  /** Unix ms. */
  at: number;
  from: SessionStatus;
  to: SessionStatus;
  reason: string;
}

/** A session as this instance's supervisor sees it. */
export interface SupervisedSession {
  sessionId: string;
  status: SessionStatus;
  desired: 'running' | 'stopped';
  /** Why it waits for a human ('' while it should run): see `STOP_REASON_KINDS`. */
  reason: string;
  epoch: string;
  restarts: number;
  transitions: Transition[];
  /** The last failure of a run (kept after it recovers), or undefined. */
  failure: SessionFailure | undefined;
  /** Set while a restart waits because the start breaker is open: the failure kind that opened it. */
  heldByBreaker: string | undefined;
  /** Resident memory of the browser when last read (bytes), or undefined. */
  memoryBytes: number | undefined;
  /** When the current run became WORKING (Unix ms), or undefined. */
  readyAt: number | undefined;
}

/** What {@link Supervisor.stats} answers. */
export interface SupervisorStats {
  failures: Record<FailureClass, number>;
  statuses: Partial<Record<SessionStatus, number>>;
  /** Sessions whose restart waits for the start breaker. */
  held: number;
  breaker: 'closed' | 'open';
  /** Times this instance opened the breaker. */
  breakerOpened: number;
  /** Resident memory of this instance's browsers when last read (bytes; those that report it). */
  memoryBytes: number;
  /** Sessions recycled by reason, and the most recycled at once. */
  recycles: Record<RecycleReason, number>;
  recyclingMax: number;
  /** `send()` calls by outcome. */
  sends: { acknowledged: number; unacknowledged: number; failed: number; refused: number };
}

/** A `send()` that did not go out as asked: `code` says whether it was refused, failed or is unknown. */
export class SendError extends WafleetError {
  constructor(
    code: 'WAFLEET_SESSION_NOT_WORKING' | 'WAFLEET_SEND_FAILED' | 'WAFLEET_SEND_UNACKNOWLEDGED',
    readonly sessionId: string,
    /** WhatsApp's id of the message, when the page took it. */
    readonly messageId: string | undefined,
    message: string,
    cause?: unknown,
  ) {
    super(code, message, cause === undefined ? undefined : { cause });
  }
}

/** A failed run: its class (a metric label), its reason and when. */
export interface SessionFailure {
  class: FailureClass;
  reason: string;
  /** Unix ms. */
  at: number;
}

/** Events of a {@link Supervisor}. */
export interface SupervisorEvents {
  status: [{ sessionId: string; status: SessionStatus; reason: string }];
  /** A session is being recycled (handed off) for its browser's memory or age. */
  recycle: [{ sessionId: string; reason: RecycleReason; memoryBytes: number | undefined }];
  /** A run failed (crash, zombie, start deadline, ...): also counted by `stats().failures`. */
  failure: [{ sessionId: string } & SessionFailure];
  error: [Error];
}

interface Run {
  sessionId: string;
  status: SessionStatus;
  desired: 'running' | 'stopped';
  /** Recorded with desired state stopped: why the session waits for a human. */
  reason: string;
  epoch: string;
  /** Bumped on every launch and stop: events of an older engine are ignored. */
  generation: number;
  engine: SessionEngine | undefined;
  /** Consecutive failed launches; reset when the session becomes WORKING. */
  failures: number;
  restarts: number;
  qr: string | undefined;
  transitions: Transition[];
  failure: SessionFailure | undefined;
  heldByBreaker: string | undefined;
  /** The current engine's inbound messages, when the supervisor has an inbox. */
  inbox: InboxRun | undefined;
  memoryBytes: number | undefined;
  readyAt: number | undefined;
  /** This run's age limit (maxAgeMs less up to 10%). */
  ageLimitMs: number | undefined;
  /** Sends of the current engine waiting for the server's acknowledgement, by message id. */
  acks: Map<string, (ack: number) => void>;
  /** Acknowledgements that came before their send resolved (by message id): the newest ack. */
  earlyAcks: Map<string, number>;
  /** Sends in a row that went unacknowledged. */
  unacknowledged: number;
  /** Stopping for a handoff: the registry must keep desired running (a drain or a recycle moves it on). */
  handingOff: boolean;
  timers: Set<NodeJS.Timeout>;
  /** Resolves when the current launch has settled (up, waiting for a QR scan, or failed). */
  settled: (() => void) | undefined;
  /** Registry writes of this session, in order. */
  writes: Promise<void>;
  /** The previous engine's stop: a new engine never starts while its predecessor's browser may still run. */
  stopping: Promise<void>;
  /** The engine `stopping` is stopping, until that stop has finished. */
  stoppingEngine: SessionEngine | undefined;
  queued: boolean;
}

type ResolvedRecycle = Required<Pick<RecycleOptions, 'concurrency' | 'staggerMs'>> & RecycleOptions;

function resolveRecycle(o: RecycleOptions | undefined, fleet: SupervisedFleet): ResolvedRecycle | undefined {
  if (o === undefined) return undefined;
  if (typeof o !== 'object' || o === null) throw new ConfigError('recycle', `Expected \`recycle\` to be an object, got ${describe(o)}`);
  if (typeof (fleet as unknown as Partial<Pick<Fleet, 'handoff'>>).handoff !== 'function')
    throw new ConfigError('recycle', 'Expected a fleet with handoff() (a Fleet from createFleet()) to recycle sessions');
  const optional = (name: 'memoryLimitBytes' | 'maxAgeMs') => (o[name] === undefined ? undefined : integer(`recycle.${name}`, o[name], 1));
  return {
    memoryLimitBytes: optional('memoryLimitBytes'),
    maxAgeMs: optional('maxAgeMs'),
    concurrency: integer('recycle.concurrency', o.concurrency ?? 1, 1),
    staggerMs: integer('recycle.staggerMs', o.staggerMs ?? 10_000, 0),
  };
}

/** Creates a supervisor; call `start()` to begin running the fleet's sessions. */
export function createSupervisor(options: SupervisorOptions): Supervisor {
  return new Supervisor(options);
}

/**
 * Runs the sessions this instance owns: launches them (one browser at a time by default), restarts crashed ones
 * with backoff and jitter, probes for zombies, stops a fenced session at once and never writes its records again,
 * and stops sessions before the fleet hands them off.
 * @example
 * const supervisor = createSupervisor({ fleet, engine: createWwebjsEngine((ctx) => new Client({ authStrategy })) });
 * await supervisor.start();
 * await supervisor.startSession('5511999990000');
 */
export class Supervisor extends EventEmitter<SupervisorEvents> {
  readonly #fleet: SupervisedFleet;
  readonly #factory: EngineFactory;
  readonly #o: Required<
    Omit<
      SupervisorOptions,
      'fleet' | 'engine' | 'deadman' | 'onEngine' | 'logger' | 'restart' | 'breaker' | 'inbox' | 'recycle' | 'sends' | 'rebalance'
    >
  > & {
    ackTimeoutMs: number;
    restartAfter: number;
    baseMs: number;
    maxMs: number;
    maxAttempts: number;
  };
  readonly #deadman: DeadmanLike | undefined;
  readonly #breaker: SupervisorOptions['breaker'];
  readonly #inbox: SupervisorOptions['inbox'];
  readonly #recycle: ResolvedRecycle | undefined;
  readonly #recycling = new Set<string>();
  readonly #recycleQueue: Array<{ sessionId: string; reason: RecycleReason }> = [];
  readonly #recycles: Record<RecycleReason, number> = { memory: 0, age: 0 };
  readonly #sends = { acknowledged: 0, unacknowledged: 0, failed: 0, refused: 0 };
  #recyclingMax = 0;
  #memoryTimer: NodeJS.Timeout | undefined;
  readonly #autoRebalance: { intervalMs: number; spread: number; maxMoves: number } | undefined;
  #rebalanceTimer: NodeJS.Timeout | undefined;
  readonly #failures = new Map<FailureClass, number>();
  readonly #onEngine: SupervisorOptions['onEngine'];
  readonly #log: Logger;
  readonly #runs = new Map<string, Run>();
  readonly #queue: string[] = [];
  #launching = 0;
  #started = false;
  #closed = false;
  #closePromise: Promise<void> | undefined;

  constructor(options: SupervisorOptions) {
    super();
    if (typeof options?.engine !== 'function') throw new ConfigError('engine', 'Expected `engine` to be an engine factory function');
    this.#fleet = checkFleet(options.fleet);
    this.#factory = options.engine;
    this.#o = {
      startConcurrency: integer('startConcurrency', options.startConcurrency ?? 1, 1),
      staggerMs: integer('staggerMs', options.staggerMs ?? 0, 0),
      startTimeoutMs: integer('startTimeoutMs', options.startTimeoutMs ?? 120_000, 1),
      probeIntervalMs: integer('probeIntervalMs', options.probeIntervalMs ?? 30_000, 0),
      probeTimeoutMs: integer('probeTimeoutMs', options.probeTimeoutMs ?? 10_000, 1),
      stopTimeoutMs: integer('stopTimeoutMs', options.stopTimeoutMs ?? 15_000, 1),
      memoryIntervalMs: integer('memoryIntervalMs', options.memoryIntervalMs ?? 30_000, 1),
      transitionsKept: integer('transitionsKept', options.transitionsKept ?? 10, 1),
      baseMs: integer('restart.baseMs', options.restart?.baseMs ?? 1000, 1),
      maxMs: integer('restart.maxMs', options.restart?.maxMs ?? 60_000, 1),
      maxAttempts: integer('restart.maxAttempts', options.restart?.maxAttempts ?? 10, 1),
      ackTimeoutMs: integer('sends.ackTimeoutMs', options.sends?.ackTimeoutMs ?? 15_000, 1),
      restartAfter: integer('sends.restartAfter', options.sends?.restartAfter ?? 3, 0),
    };
    this.#deadman = options.deadman;
    if (options.breaker !== undefined && (typeof options.breaker?.record !== 'function' || typeof options.breaker.permit !== 'function'))
      throw new ConfigError('breaker', 'Expected `breaker` to be a StartBreaker from createStartBreaker()');
    this.#breaker = options.breaker;
    if (options.inbox !== undefined && typeof options.inbox?.open !== 'function')
      throw new ConfigError('inbox', 'Expected `inbox` to be an Inbox from createInbox()');
    this.#inbox = options.inbox;
    this.#recycle = resolveRecycle(options.recycle, this.#fleet);
    const auto = options.rebalance;
    if (auto !== undefined && (typeof auto !== 'object' || auto === null))
      throw new ConfigError(
        'rebalance',
        `Expected \`rebalance\` to be an object { intervalMs, spread?, maxMoves? }, got ${describe(auto)}`,
      );
    this.#autoRebalance = auto && {
      intervalMs: integer('rebalance.intervalMs', auto.intervalMs, 1000),
      spread: integer('rebalance.spread', auto.spread ?? 2, 1),
      maxMoves: integer('rebalance.maxMoves', auto.maxMoves ?? 2, 1),
    };
    this.#onEngine = options.onEngine;
    this.#log = createLogger(options.logger, 'supervisor');
  }

  /** Subscribes to the fleet and launches the sessions it already owns. Idempotent. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    const fleet = this.#fleet;
    fleet.on('assigned', ({ sessionId, epoch }) => this.#want(sessionId, epoch));
    fleet.on('fenced', ({ sessionIds, reason }) => {
      for (const sid of sessionIds) void this.#halt(sid, `fenced: ${reason}`, 'fenced');
    });
    // Re-asserted after Redis lost its data: the engine kept running, but the new record says STARTING.
    fleet.on('epoch', ({ sessionId, epoch }) => {
      const run = this.#runs.get(sessionId);
      if (!run) return;
      run.epoch = epoch;
      void run.inbox?.reassert(epoch);
      this.#record(run, run.status);
    });
    fleet.on('renewed', ({ selfFenceInMs }) => this.#deadman?.refresh(selfFenceInMs));
    // The supervisor owns the stop deadline: the fleet waits for it (plus time to write the status), never less.
    fleet.setStopSession((sessionId, reason) => this.#stopForFleet(sessionId, reason), { timeoutMs: this.#o.stopTimeoutMs + 2000 });
    for (const [sid, epoch] of fleet.ownedSessions()) this.#want(sid, epoch);
    this.#scheduleMemoryCheck();
    this.#scheduleRebalance();
  }

  /**
   * Claims the session for this instance (if needed) and launches it. Idempotent: a running session is left alone.
   * @throws the fleet's claim errors (owned elsewhere, capacity, ...)
   */
  async startSession(sessionId: string): Promise<void> {
    validateSessionId(sessionId);
    const epoch = this.#fleet.epochOf(sessionId) ?? (await this.#fleet.claim(sessionId)).epoch;
    this.#want(sessionId, epoch);
  }

  /** Stops the session and releases it with desired state stopped (it is not adopted elsewhere). Idempotent. */
  async stopSession(sessionId: string): Promise<void> {
    validateSessionId(sessionId);
    const run = this.#runs.get(sessionId);
    if (run) this.#giveUp(run, stopReason('stopped by request'));
    await this.#halt(sessionId, 'stop requested', 'release');
    if (this.#fleet.owns(sessionId)) await this.#fleet.release(sessionId);
  }

  /** Stops and launches the session again (a fresh engine). */
  async restartSession(sessionId: string): Promise<void> {
    validateSessionId(sessionId);
    await this.#halt(sessionId, 'restart requested', 'restart');
    const run = this.#runs.get(sessionId);
    if (run) run.failures = 0;
    await this.startSession(sessionId);
  }

  /** The session as this instance sees it, or undefined. */
  session(sessionId: string): SupervisedSession | undefined {
    const run = this.#runs.get(sessionId);
    if (!run) return undefined;
    const { status, desired, reason, epoch, restarts, transitions, failure, heldByBreaker, memoryBytes, readyAt } = run;
    return {
      sessionId,
      status,
      desired,
      reason,
      epoch,
      restarts,
      transitions: [...transitions],
      failure,
      heldByBreaker,
      memoryBytes,
      readyAt,
    };
  }

  /**
   * Failed runs since this supervisor was created by class, sessions by status, sessions whose restart the start
   * breaker holds, and the breaker's state as this instance saw it last ('closed' without a breaker).
   */
  stats(): SupervisorStats {
    const failures = Object.fromEntries(FAILURE_CLASSES.map((c) => [c, this.#failures.get(c) ?? 0])) as Record<FailureClass, number>;
    const statuses: Partial<Record<SessionStatus, number>> = {};
    let held = 0;
    let memoryBytes = 0;
    for (const run of this.#runs.values()) {
      statuses[run.status] = (statuses[run.status] ?? 0) + 1;
      if (run.heldByBreaker !== undefined) held++;
      if (run.engine) memoryBytes += run.memoryBytes ?? 0;
    }
    const breaker = this.#breaker?.state ?? 'closed';
    return {
      failures,
      statuses,
      held,
      breaker,
      breakerOpened: this.#breaker?.stats?.().opened ?? 0,
      memoryBytes,
      recycles: { ...this.#recycles },
      recyclingMax: this.#recyclingMax,
      sends: { ...this.#sends },
    };
  }

  /** All sessions this supervisor knows. */
  sessions(): SupervisedSession[] {
    return [...this.#runs.keys()].map((sid) => this.session(sid)!);
  }

  /**
   * Sends a text message from a session WORKING on this instance and waits for the server's acknowledgement, so a
   * message that never went out is a failure the caller sees, not a silent success. Refused at once while the session
   * is not WORKING here. Sends counted by outcome in `stats().sends`; `sends.restartAfter` unacknowledged sends in a row
   * restart the session (failure class `unacknowledged-sends`).
   * @returns WhatsApp's id of the message and its acknowledgement (1 server, 2 device, 3 read, 4 played)
   * @throws SendError `WAFLEET_SESSION_NOT_WORKING` (not WORKING here: retry later or elsewhere; nothing was sent),
   * `WAFLEET_SEND_FAILED` (the page refused it, or acknowledged an error: not sent),
   * `WAFLEET_SEND_UNACKNOWLEDGED` (no acknowledgement within `sends.ackTimeoutMs`: its `messageId` may still go out,
   * so check before sending again)
   */
  async send(sessionId: string, chatId: string, text: string): Promise<{ id: string; ack: number }> {
    validateSessionId(sessionId);
    if (typeof chatId !== 'string' || chatId === '')
      throw new ConfigError('chatId', `Expected \`chatId\` to be a non-empty string, got ${describe(chatId)}`);
    if (typeof text !== 'string') throw new ConfigError('text', `Expected \`text\` to be a string, got ${describe(text)}`);
    const run = this.#runs.get(sessionId);
    const engine = run?.engine;
    if (!run || !engine || run.status !== 'WORKING' || !this.#fleet.owns(sessionId)) {
      this.#sends.refused++;
      throw new SendError(
        'WAFLEET_SESSION_NOT_WORKING',
        sessionId,
        undefined,
        `Session ${sessionId} is ${run?.status ?? 'not'} running here, not WORKING: nothing was sent`,
      );
    }
    if (!engine.send) throw new ConfigError('engine', 'Expected the engine to implement send() for supervisor.send()');
    let id: string;
    try {
      ({ id } = await within(engine.send(chatId, text), this.#o.ackTimeoutMs, undefined).then((sent) => {
        if (!sent) throw new Error(`the page did not take the message within ${this.#o.ackTimeoutMs} ms`);
        return sent;
      }));
    } catch (err) {
      this.#sends.failed++;
      throw new SendError(
        'WAFLEET_SEND_FAILED',
        sessionId,
        undefined,
        `Send from ${sessionId} failed: ${(err as Error)?.message ?? String(err)}`,
        err,
      );
    }
    const ack = await new Promise<number>((resolve) => {
      const early = run.earlyAcks.get(id);
      if (early !== undefined && early !== 0) {
        run.earlyAcks.delete(id);
        resolve(early);
        return;
      }
      const timer = setTimeout(() => settle(Number.NaN), this.#o.ackTimeoutMs);
      timer.unref();
      const settle = (value: number) => {
        if (value === 0) return; // pending: still only on this phone
        clearTimeout(timer);
        run.acks.delete(id);
        resolve(value);
      };
      run.acks.set(id, settle);
    });
    if (ack >= 1) {
      run.unacknowledged = 0;
      this.#sends.acknowledged++;
      return { id, ack };
    }
    if (ack === -1) {
      this.#sends.failed++;
      throw new SendError('WAFLEET_SEND_FAILED', sessionId, id, `WhatsApp refused message ${id} from ${sessionId} (ack -1)`);
    }
    this.#sends.unacknowledged++;
    // Nothing acknowledged while the page still answers probes: traffic says the session is dead.
    if (run.engine === engine && ++run.unacknowledged >= this.#o.restartAfter && this.#o.restartAfter > 0)
      this.#crash(run, run.generation, `zombie: sends not acknowledged (${run.unacknowledged} in a row)`);
    throw new SendError(
      'WAFLEET_SEND_UNACKNOWLEDGED',
      sessionId,
      id,
      `Message ${id} from ${sessionId} was not acknowledged by the server within ${this.#o.ackTimeoutMs} ms; it may still go out`,
    );
  }

  /** The current QR code of a session waiting for a scan (serve it from the owner: `createFleetRouter({ qr })`). */
  qr(sessionId: string): string | undefined {
    const run = this.#runs.get(sessionId);
    return run?.status === 'SCAN_QR_CODE' ? run.qr : undefined;
  }

  /**
   * Stops every engine (without releasing: `fleet.close()` hands sessions off) and waits for the registry writes
   * already under way. Idempotent: every call resolves when that work is done.
   */
  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#memoryTimer);
    clearTimeout(this.#rebalanceTimer);
    this.#closePromise ??= (async () => {
      await Promise.all([...this.#runs.keys()].map((sid) => this.#halt(sid, 'supervisor closed', 'shutdown')));
      await Promise.all([...this.#runs.values()].map((run) => run.writes.catch(() => undefined)));
    })();
    return this.#closePromise;
  }

  // ---- launching ----

  #want(sessionId: string, epoch: string): void {
    if (this.#closed) return;
    const run = this.#run(sessionId, epoch);
    run.epoch = epoch;
    run.desired = 'running';
    run.reason = '';
    if (run.engine || run.queued) return;
    run.queued = true;
    this.#queue.push(sessionId);
    this.#drainQueue();
  }

  #run(sessionId: string, epoch: string): Run {
    let run = this.#runs.get(sessionId);
    if (!run) {
      run = {
        sessionId,
        status: 'STOPPED',
        desired: 'running',
        reason: '',
        epoch,
        generation: 0,
        engine: undefined,
        failures: 0,
        restarts: 0,
        qr: undefined,
        transitions: [],
        failure: undefined,
        heldByBreaker: undefined,
        inbox: undefined,
        memoryBytes: undefined,
        readyAt: undefined,
        ageLimitMs: undefined,
        acks: new Map(),
        earlyAcks: new Map(),
        unacknowledged: 0,
        handingOff: false,
        timers: new Set(),
        settled: undefined,
        writes: Promise.resolve(),
        stopping: Promise.resolve(),
        stoppingEngine: undefined,
        queued: false,
      };
      this.#runs.set(sessionId, run);
    }
    return run;
  }

  #drainQueue(): void {
    while (this.#launching < this.#o.startConcurrency && this.#queue.length > 0) {
      const sid = this.#queue.shift()!;
      const run = this.#runs.get(sid);
      if (!run) continue;
      run.queued = false;
      this.#launching++;
      void this.#launch(run)
        .catch((err: Error) => this.#fail(err))
        .then(() => (this.#o.staggerMs > 0 ? new Promise((r) => this.#timer(undefined, this.#o.staggerMs, r)) : undefined))
        .finally(() => {
          this.#launching--;
          this.#drainQueue();
        });
    }
  }

  async #launch(run: Run): Promise<void> {
    const sid = run.sessionId;
    if (this.#closed || run.desired !== 'running' || run.engine || !this.#fleet.owns(sid)) return;
    await run.stopping;
    if (this.#closed || run.desired !== 'running' || run.engine || !this.#fleet.owns(sid)) return;
    const generation = ++run.generation;
    run.epoch = this.#fleet.epochOf(sid) ?? run.epoch;
    // The host's per-session data comes from the registry on every start, so an adopter gets what the first owner had.
    let metadata: SessionMetadata;
    try {
      metadata = (await this.#fleet.owner(sid))?.metadata ?? {};
    } catch (err) {
      this.#crash(run, generation, `metadata unreadable: ${(err as Error).message}`);
      return;
    }
    if (generation !== run.generation) return; // fenced or stopped meanwhile
    this.#transition(run, 'STARTING', run.restarts > 0 ? 'restart' : 'launch');
    // No browser before a replica has the grant (when the registry has replicas): the wait's own write comes after
    // the grant in the replication stream, so it covers it without waiting for the STARTING record.
    if (this.#fleet.replicated) await this.#fleet.replicated();
    // No browser while the dead-man switch is spent (its watchdog fired and the next one has not started yet): an
    // instance killed in that gap would leave it running, unguarded, beside the adopter's. A switch that does not come
    // back within the start deadline fails the launch like any other (backoff, FAILED, the breaker).
    const armed = this.#deadman?.armed?.().then(
      () => true,
      () => false,
    );
    if (armed && !(await within(armed, this.#o.startTimeoutMs, false))) {
      if (generation === run.generation) this.#crash(run, generation, 'dead-man switch not armed: no watchdog guards a new browser');
      return;
    }
    if (generation !== run.generation) return; // fenced or stopped meanwhile
    const settled = new Promise<void>((resolve) => (run.settled = resolve));
    let engine: SessionEngine;
    try {
      const report = (event: EngineEvent) => this.#onEvent(run, generation, event);
      const epoch = run.epoch;
      const owns = () => this.#fleet.owns(sid) && this.#fleet.epochOf(sid) === epoch;
      engine = await this.#factory({ sessionId: sid, epoch, metadata, report, owns });
    } catch (err) {
      // A configuration error (e.g. takeoverOnConflict) fails the same way every time: give up at once.
      if ((err as WafleetError).code === 'WAFLEET_CONFIG') run.failures = this.#o.maxAttempts - 1;
      this.#crash(run, generation, `engine factory failed: ${(err as Error).message}`);
      return;
    }
    if (generation !== run.generation) {
      // Fenced or stopped while the engine was being created: it must never run.
      await engine.stop('fenced').catch(() => undefined);
      return;
    }
    run.engine = engine;
    run.inbox?.close();
    run.inbox = this.#inbox?.open(sid, run.epoch);
    this.#onEngine?.({ event: 'start', sessionId: sid, epoch: run.epoch });
    this.#timer(run, this.#o.startTimeoutMs, () => {
      if (generation === run.generation && run.status === 'STARTING') this.#crash(run, generation, 'start deadline passed');
    });
    // Not awaited: a start() that never settles (a restore from an unreachable store, a hung page load) must hold the
    // launch queue only until the start deadline, whose crash settles this launch.
    void Promise.resolve()
      .then(() => engine.start())
      .catch((err: unknown) => this.#crash(run, generation, `start failed: ${(err as Error)?.message ?? String(err)}`));
    // One browser at a time: the next launch waits until this one is up, waiting for a scan, or failed.
    await settled;
  }

  #onEvent(run: Run, generation: number, event: EngineEvent): void {
    if (generation !== run.generation || !run.engine) return;
    switch (event.type) {
      case 'qr':
        if (run.status === 'STARTING') this.#recordStart(run, undefined);
        run.qr = event.qr;
        this.#transition(run, 'SCAN_QR_CODE', 'qr');
        this.#settle(run);
        break;
      case 'code':
      case 'authenticated':
        break;
      case 'ready':
        if (run.status === 'STARTING') this.#recordStart(run, undefined);
        run.failures = 0;
        run.qr = undefined;
        if (run.status !== 'WORKING') {
          // The first ready of this engine: what arrived while the session ran nowhere is read now.
          const firstReady = run.status === 'STARTING' || run.status === 'SCAN_QR_CODE';
          this.#transition(run, 'WORKING', 'ready');
          this.#scheduleProbe(run, generation);
          run.readyAt = Date.now();
          run.ageLimitMs =
            this.#recycle?.maxAgeMs === undefined ? undefined : Math.round(this.#recycle.maxAgeMs * (1 - Math.random() * 0.1));
          const engine = run.engine;
          if (firstReady && run.inbox && engine.catchUp) void run.inbox.catchUp((request) => engine.catchUp!(request), Date.now());
        }
        this.#settle(run);
        break;
      case 'pids':
        this.#deadman?.track(run.sessionId, event.pids);
        break;
      case 'message':
        void run.inbox?.deliver(event.message);
        break;
      case 'ack': {
        const waiting = run.acks.get(event.messageId);
        if (waiting) waiting(event.ack);
        else {
          run.earlyAcks.set(event.messageId, event.ack);
          // Acks of messages sent by others (the phone, another API) are not ours to keep.
          if (run.earlyAcks.size > 1000) run.earlyAcks.delete(run.earlyAcks.keys().next().value!);
        }
        break;
      }
      case 'logout':
        // The phone logged the session out: restarting would only show a QR code nobody asked for.
        this.#giveUp(run, stopReason('logged out', event.reason));
        void this.#halt(run.sessionId, `logout: ${event.reason}`, 'ended').then(() => this.#releaseStopped(run));
        break;
      case 'conflict':
        void this.#onConflict(run);
        break;
      case 'crashed':
        this.#crash(run, generation, event.reason);
        break;
    }
  }

  /** CONFLICT: another client runs this session. Stop first; reconnect only if the registry still says it is ours. */
  async #onConflict(run: Run): Promise<void> {
    const sid = run.sessionId;
    await this.#halt(sid, 'conflict', 'ended');
    const owner = await this.#fleet.owner(sid).catch(() => null);
    const ours = owner?.live && owner.owner === this.#fleet.instanceId && this.#fleet.owns(sid);
    if (!ours) {
      this.#log.warn('conflict: session owned elsewhere, not restarting', { sessionId: sid });
      return;
    }
    this.#scheduleRestart(run, 'conflict');
  }

  #crash(run: Run, generation: number, reason: string): void {
    if (generation !== run.generation) return;
    // Later events of the dead engine are ignored from here on.
    const current = ++run.generation;
    this.#clearTimers(run);
    run.failures++;
    const failure: SessionFailure = { class: failureClass(reason), reason, at: Date.now() };
    run.failure = failure;
    this.#failures.set(failure.class, (this.#failures.get(failure.class) ?? 0) + 1);
    this.emit('failure', { sessionId: run.sessionId, ...failure });
    // A launch that never got up is a start failure: what the fleet-wide breaker counts.
    if (run.status === 'STARTING') this.#recordStart(run, reason);
    this.#log.warn('session engine crashed', { sessionId: run.sessionId, reason });
    void this.#stopEngine(run, 'ended').then(() => {
      if (current !== run.generation) return; // halted or relaunched meanwhile
      // Giving up is recorded with the FAILED status itself: desired stopped, so no other instance adopts it.
      const gaveUp = run.failures >= this.#o.maxAttempts;
      if (gaveUp) this.#giveUp(run, stopReason('restarts exhausted', reason));
      this.#transition(run, 'FAILED', reason);
      this.#settle(run);
      if (gaveUp) {
        this.#log.error('session gave up after repeated failures', { sessionId: run.sessionId, failures: run.failures });
        return;
      }
      this.#scheduleRestart(run, reason);
    });
  }

  #scheduleRestart(run: Run, reason: string): void {
    if (run.desired !== 'running' || this.#closed) return;
    const exp = Math.min(this.#o.maxMs, this.#o.baseMs * 2 ** Math.max(0, run.failures - 1));
    const delay = Math.round(exp * (0.5 + Math.random() * 0.5));
    this.#log.info('restart scheduled', { sessionId: run.sessionId, delayMs: delay, reason });
    this.#timer(run, delay, () => void this.#restartWhenPermitted(run));
  }

  /** Restarts the session unless the start breaker holds it; a held session asks again at the next probe round. */
  async #restartWhenPermitted(run: Run): Promise<void> {
    const generation = run.generation;
    const runnable = () => generation === run.generation && run.desired === 'running' && !run.engine && this.#fleet.owns(run.sessionId);
    if (!runnable()) return;
    const permit = this.#breaker ? await this.#breaker.permit(run.sessionId) : ({ permitted: true, probe: false } as const);
    if (!runnable() || this.#closed) return;
    if (!permit.permitted) {
      if (run.heldByBreaker === undefined)
        this.#log.warn('restart held: the start breaker is open', { sessionId: run.sessionId, kind: permit.kind });
      run.heldByBreaker = permit.kind;
      // Spread over the next round, so the held sessions of many instances do not all ask at once.
      this.#timer(run, permit.retryAfterMs + Math.round(Math.random() * 1000), () => void this.#restartWhenPermitted(run));
      return;
    }
    run.heldByBreaker = undefined;
    run.restarts++;
    this.#want(run.sessionId, run.epoch);
  }

  #recordStart(run: Run, failedWith: string | undefined): void {
    void this.#breaker?.record(run.sessionId, failedWith === undefined ? { ok: true } : { ok: false, reason: failedWith });
  }

  #scheduleProbe(run: Run, generation: number): void {
    if (this.#o.probeIntervalMs === 0) return;
    this.#timer(run, this.#o.probeIntervalMs, async () => {
      const engine = run.engine;
      if (generation !== run.generation || !engine || run.status !== 'WORKING') return;
      let timeout: NodeJS.Timeout | undefined;
      const healthy = await Promise.race([
        engine.probe().catch(() => false),
        new Promise<boolean>((r) => (timeout = setTimeout(() => r(false), this.#o.probeTimeoutMs).unref())),
      ]);
      clearTimeout(timeout);
      if (generation !== run.generation) return;
      if (healthy) this.#scheduleProbe(run, generation);
      else this.#crash(run, generation, 'zombie: health probe failed');
    });
  }

  // ---- rebalancing ----

  /**
   * Moves this instance's share of the fleet's imbalance away: when the most and the least loaded live, managed,
   * non-draining instances differ by more than `spread`, and this instance holds more than the fleet's mean (rounded
   * up), it hands off its excess through `fleet.handoff` (each login saved first), choosing WORKING sessions with no
   * send waiting for its acknowledgement, oldest first. Each handoff goes to the least-loaded other instance with room,
   * so caps, memory budgets and single ownership hold as for any handoff. Run it on the fullest instances (the
   * router's `POST /rebalance`, `wafleet rebalance`), or on every instance with `rebalance` in the options.
   */
  async rebalance(options: RebalanceOptions = {}): Promise<RebalanceResult> {
    const spreadLimit = integer('spread', options.spread ?? 2, 1);
    const maxMoves = integer('maxMoves', options.maxMoves ?? 10, 0);
    const concurrency = integer('concurrency', options.concurrency ?? 2, 1);
    const fleet = this.#fleet as unknown as Partial<Pick<Fleet, 'handoff' | 'instances'>>;
    if (typeof fleet.handoff !== 'function' || typeof fleet.instances !== 'function')
      throw new ConfigError('fleet', 'Expected a fleet with handoff() and instances() (a Fleet from createFleet()) to rebalance');
    const peers = (await fleet.instances.call(this.#fleet)).filter((i) => i.live && !i.draining && i.mode === 'managed');
    const me = peers.find((i) => i.id === this.#fleet.instanceId);
    const loads = peers.map((i) => i.load);
    const spread = loads.length > 0 ? Math.max(...loads) - Math.min(...loads) : 0;
    const total = loads.reduce((a, b) => a + b, 0);
    const target = peers.length > 0 ? Math.ceil(total / peers.length) : 0;
    const load = me?.load ?? this.#fleet.ownedSessions().size;
    const result: RebalanceResult = { load, target, spread, planned: [], moved: [] };
    if (!me || spread <= spreadLimit || load <= target) return result;
    const movable = [...this.#runs.values()]
      .filter((run) => run.status === 'WORKING' && run.engine && run.acks.size === 0 && !this.#recycling.has(run.sessionId))
      .sort((a, b) => (a.readyAt ?? 0) - (b.readyAt ?? 0));
    result.planned = movable.slice(0, Math.min(load - target, maxMoves)).map((run) => run.sessionId);
    if (options.dryRun) return result;
    const queue = [...result.planned];
    const worker = async () => {
      for (let sid = queue.shift(); sid !== undefined; sid = queue.shift()) {
        try {
          const { outcome, owner } = await fleet.handoff!.call(this.#fleet, sid);
          result.moved.push({ sessionId: sid, outcome, owner });
        } catch (err) {
          this.#log.warn('rebalance: handoff failed; the session stays', { sessionId: sid, err });
          result.moved.push({ sessionId: sid, outcome: 'failed', owner: this.#fleet.instanceId });
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    this.#log.info('rebalanced', { load, target, spread, moved: result.moved.filter((m) => m.outcome !== 'failed').length });
    return result;
  }

  #scheduleRebalance(): void {
    const auto = this.#autoRebalance;
    if (!auto || this.#closed) return;
    this.#rebalanceTimer = setTimeout(
      () => {
        void this.rebalance({ spread: auto.spread, maxMoves: auto.maxMoves })
          .catch((err: unknown) => this.#log.warn('automatic rebalance failed', { err }))
          .finally(() => this.#scheduleRebalance());
      },
      Math.round(auto.intervalMs * (0.8 + Math.random() * 0.2)),
    );
    this.#rebalanceTimer.unref();
  }

  // ---- memory and recycling ----

  #scheduleMemoryCheck(): void {
    if (this.#closed) return;
    this.#memoryTimer = setTimeout(() => {
      void this.#checkMemory().finally(() => this.#scheduleMemoryCheck());
    }, this.#o.memoryIntervalMs);
    this.#memoryTimer.unref();
  }

  async #checkMemory(): Promise<void> {
    const running = [...this.#runs.values()].filter((run) => run.engine?.memoryBytes);
    await Promise.all(
      running.map(async (run) => {
        const engine = run.engine!;
        const bytes = await Promise.resolve()
          .then(() => engine.memoryBytes!())
          .catch(() => undefined);
        if (run.engine === engine) run.memoryBytes = typeof bytes === 'number' && Number.isFinite(bytes) ? bytes : undefined;
      }),
    );
    this.#reportMemory();
    const recycle = this.#recycle;
    if (!recycle || this.#closed) return;
    const now = Date.now();
    const queued = new Set(this.#recycleQueue.map((q) => q.sessionId));
    const due = running
      .filter((run) => run.engine && run.status === 'WORKING' && !this.#recycling.has(run.sessionId) && !queued.has(run.sessionId))
      .map((run) => {
        const overMemory = recycle.memoryLimitBytes !== undefined && (run.memoryBytes ?? 0) > recycle.memoryLimitBytes;
        const tooOld = run.ageLimitMs !== undefined && run.readyAt !== undefined && now - run.readyAt > run.ageLimitMs;
        return { run, reason: overMemory ? ('memory' as const) : tooOld ? ('age' as const) : undefined };
      })
      .filter((d): d is { run: Run; reason: RecycleReason } => d.reason !== undefined)
      .sort((a, b) => (b.run.memoryBytes ?? 0) - (a.run.memoryBytes ?? 0));
    for (const { run, reason } of due) this.#recycleQueue.push({ sessionId: run.sessionId, reason });
    this.#drainRecycles();
  }

  /**
   * Tells the fleet (for its memory budget) what this instance's browsers use: the measured ones, plus each browser
   * not measured yet (just launched) at the mean of the measured ones.
   */
  #reportMemory(): void {
    const report = (this.#fleet as Partial<Pick<Fleet, 'reportMemory'>>).reportMemory;
    if (typeof report !== 'function') return;
    const withEngine = [...this.#runs.values()].filter((run) => run.engine);
    const measured = withEngine.map((run) => run.memoryBytes).filter((b): b is number => b !== undefined);
    if (measured.length === 0) return;
    const sum = measured.reduce((a, b) => a + b, 0);
    report.call(this.#fleet, sum + (withEngine.length - measured.length) * (sum / measured.length));
  }

  #drainRecycles(): void {
    const recycle = this.#recycle!;
    while (!this.#closed && this.#recycling.size < recycle.concurrency && this.#recycleQueue.length > 0) {
      const { sessionId, reason } = this.#recycleQueue.shift()!;
      const run = this.#runs.get(sessionId);
      if (!run || run.status !== 'WORKING' || !this.#fleet.owns(sessionId)) continue;
      this.#recycling.add(sessionId);
      this.#recyclingMax = Math.max(this.#recyclingMax, this.#recycling.size);
      void this.#recycleOne(run, reason);
    }
  }

  async #recycleOne(run: Run, reason: RecycleReason): Promise<void> {
    const sessionId = run.sessionId;
    try {
      this.#log.info('recycling session: handing it off', { sessionId, reason, memoryBytes: run.memoryBytes });
      this.emit('recycle', { sessionId, reason, memoryBytes: run.memoryBytes });
      await (this.#fleet as unknown as Pick<Fleet, 'handoff'>).handoff(sessionId);
      this.#recycles[reason]++;
    } catch (err) {
      this.#log.warn('recycle failed; the session stays here', { sessionId, reason, err });
    } finally {
      await new Promise((resolve) => this.#timer(undefined, this.#recycle!.staggerMs, resolve));
      this.#recycling.delete(sessionId);
      this.#drainRecycles();
    }
  }

  // ---- stopping ----

  /** Stops the engine now. Records are written only while this instance still owns the session. */
  async #halt(sessionId: string, reason: string, engineReason: EngineStopReason): Promise<void> {
    const run = this.#runs.get(sessionId);
    if (!run) return;
    run.generation++;
    this.#clearTimers(run);
    run.queued = false;
    run.heldByBreaker = undefined;
    const hadEngine = run.engine !== undefined;
    // A session that gave up has nothing running: it stays FAILED, so its record keeps saying so (e.g. on handoff).
    const gaveUp = !hadEngine && run.status === 'FAILED' && run.desired === 'stopped';
    await this.#stopEngine(run, engineReason);
    if (hadEngine || (run.status !== 'STOPPED' && !gaveUp)) this.#transition(run, 'STOPPED', reason);
    this.#settle(run);
  }

  /** The fleet's stop hook: runs before every release and handoff, so nothing runs here once another instance may. */
  async #stopForFleet(sessionId: string, reason: 'release' | 'handoff'): Promise<void> {
    const run = this.#runs.get(sessionId);
    if (run && reason === 'release') this.#giveUp(run, run.reason || stopReason('stopped by request'));
    else if (run) {
      // Not restarted here; but the session goes on elsewhere, so the registry keeps desired running.
      run.desired = 'stopped';
      run.handingOff = true;
    }
    await this.#halt(sessionId, reason, reason);
    // A handed-off session is another instance's now; a released one stays visible as STOPPED.
    if (reason === 'handoff') this.#runs.delete(sessionId);
  }

  async #releaseStopped(run: Run): Promise<void> {
    await run.writes;
    if (!this.#fleet.owns(run.sessionId)) return;
    const reason = run.reason;
    await this.#fleet.setStatus(run.sessionId, 'STOPPED', { desired: 'stopped', reason }).catch(() => undefined);
    await this.#fleet.release(run.sessionId, { reason }).catch((err: Error) => this.#log.warn('release after logout failed', { err }));
  }

  #stopEngine(run: Run, reason: EngineStopReason): Promise<void> {
    const engine = run.engine;
    if (!engine) {
      // A stop that saves the login first (handoff, shutdown, restart) may still run: once the session is fenced its
      // browser must go now, not after the save (see SessionEngine.stop).
      if (reason === 'fenced' && run.stoppingEngine) void run.stoppingEngine.stop('fenced').catch(() => undefined);
      return run.stopping;
    }
    run.engine = undefined;
    run.inbox?.close();
    run.memoryBytes = undefined;
    run.readyAt = undefined;
    // Sends still waiting for an ack of this engine will not get one: they fail now.
    for (const settle of run.acks.values()) settle(Number.NaN);
    run.acks.clear();
    run.earlyAcks.clear();
    run.unacknowledged = 0;
    run.stoppingEngine = engine;
    run.stopping = this.#stop(run, engine, reason).finally(() => {
      if (run.stoppingEngine === engine) run.stoppingEngine = undefined;
    });
    return run.stopping;
  }

  async #stop(run: Run, engine: SessionEngine, reason: EngineStopReason): Promise<void> {
    let timeout: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      engine.stop(reason).then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((r) => (timeout = setTimeout(() => r(false), this.#o.stopTimeoutMs).unref())),
    ]);
    clearTimeout(timeout);
    if (!stopped)
      this.#log.error('engine did not stop in time; the dead-man switch still tracks its browser', { sessionId: run.sessionId });
    else this.#deadman?.untrack(run.sessionId);
    this.#onEngine?.({ event: 'stop', sessionId: run.sessionId, epoch: run.epoch });
  }

  // ---- bookkeeping ----

  #transition(run: Run, to: SessionStatus, reason: string): void {
    const from = run.status;
    if (from === to) return;
    run.status = to;
    run.transitions.push({ at: Date.now(), from, to, reason });
    if (run.transitions.length > this.#o.transitionsKept) run.transitions.shift();
    this.emit('status', { sessionId: run.sessionId, status: to, reason });
    this.#record(run, to);
  }

  /** The session should stop running here and wait for a human, for `reason` (recorded with the next status). */
  #giveUp(run: Run, reason: string): void {
    run.desired = 'stopped';
    run.reason = reason;
  }

  /**
   * Writes a status with the desired state (and the reason when stopped) to the registry, in order per session; a
   * fenced instance never writes the session's records.
   */
  #record(run: Run, status: SessionStatus): void {
    if (!this.#fleet.owns(run.sessionId)) return;
    const { reason } = run;
    const desired = run.handingOff ? 'running' : run.desired;
    const options = desired === 'stopped' && reason ? { desired, reason } : { desired };
    run.writes = run.writes.then(() =>
      this.#fleet.setStatus(run.sessionId, status, options).catch((err: WafleetError) => {
        this.#log.debug('status not recorded', { sessionId: run.sessionId, code: err.code });
      }),
    );
  }

  #settle(run: Run): void {
    const settle = run.settled;
    run.settled = undefined;
    settle?.();
  }

  #timer(run: Run | undefined, ms: number, fn: (value?: unknown) => void): void {
    const t = setTimeout(() => {
      run?.timers.delete(t);
      fn();
    }, ms);
    t.unref();
    run?.timers.add(t);
  }

  #clearTimers(run: Run): void {
    for (const t of run.timers) clearTimeout(t);
    run.timers.clear();
  }

  #fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.#log.error('supervisor error', { err });
  }
}
