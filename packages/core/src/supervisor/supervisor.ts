import { EventEmitter } from 'node:events';
import {
  ConfigError,
  createLogger,
  describeValue as describe,
  stopReason,
  validateSessionId,
  WafleetError,
  type Logger,
  type SessionMetadata,
} from '@wafleet/protocol';
import type { Fleet, FleetEvents, SessionStatus } from '../registry/fleet.js';
import type { EngineEvent, EngineFactory, EngineStopReason, SessionEngine } from './engine.js';

/** The part of a dead-man switch the supervisor drives (see `startDeadmanSwitch`). */
export interface DeadmanLike {
  refresh(inMs: number): void;
  track(sessionId: string, pids: readonly number[]): void;
  untrack(sessionId: string): void;
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
  /** Called when an engine starts (before it is up) and stops (after it is down), e.g. for a journal. */
  onEngine?: (event: { event: 'start' | 'stop'; sessionId: string; epoch: string }) => void;
  /** pino, winston or console-like logger. @default no logging */
  logger?: unknown;
}

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
}

/** Events of a {@link Supervisor}. */
export interface SupervisorEvents {
  status: [{ sessionId: string; status: SessionStatus; reason: string }];
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

const int = (option: string, value: unknown, min: number) => {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new ConfigError(option, `Expected \`${option}\` to be an integer >= ${min}, got ${describe(value)}`);
  }
  return value;
};

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
  readonly #o: Required<Omit<SupervisorOptions, 'fleet' | 'engine' | 'deadman' | 'onEngine' | 'logger' | 'restart'>> & {
    baseMs: number;
    maxMs: number;
    maxAttempts: number;
  };
  readonly #deadman: DeadmanLike | undefined;
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
      startConcurrency: int('startConcurrency', options.startConcurrency ?? 1, 1),
      staggerMs: int('staggerMs', options.staggerMs ?? 0, 0),
      startTimeoutMs: int('startTimeoutMs', options.startTimeoutMs ?? 120_000, 1),
      probeIntervalMs: int('probeIntervalMs', options.probeIntervalMs ?? 30_000, 0),
      probeTimeoutMs: int('probeTimeoutMs', options.probeTimeoutMs ?? 10_000, 1),
      stopTimeoutMs: int('stopTimeoutMs', options.stopTimeoutMs ?? 15_000, 1),
      transitionsKept: int('transitionsKept', options.transitionsKept ?? 10, 1),
      baseMs: int('restart.baseMs', options.restart?.baseMs ?? 1000, 1),
      maxMs: int('restart.maxMs', options.restart?.maxMs ?? 60_000, 1),
      maxAttempts: int('restart.maxAttempts', options.restart?.maxAttempts ?? 10, 1),
    };
    this.#deadman = options.deadman;
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
      this.#record(run, run.status);
    });
    fleet.on('renewed', ({ selfFenceInMs }) => this.#deadman?.refresh(selfFenceInMs));
    // The supervisor owns the stop deadline: the fleet waits for it (plus time to write the status), never less.
    fleet.setStopSession((sessionId, reason) => this.#stopForFleet(sessionId, reason), { timeoutMs: this.#o.stopTimeoutMs + 2000 });
    for (const [sid, epoch] of fleet.ownedSessions()) this.#want(sid, epoch);
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
    const { status, desired, reason, epoch, restarts, transitions } = run;
    return { sessionId, status, desired, reason, epoch, restarts, transitions: [...transitions] };
  }

  /** All sessions this supervisor knows. */
  sessions(): SupervisedSession[] {
    return [...this.#runs.keys()].map((sid) => this.session(sid)!);
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
        run.qr = event.qr;
        this.#transition(run, 'SCAN_QR_CODE', 'qr');
        this.#settle(run);
        break;
      case 'code':
      case 'authenticated':
        break;
      case 'ready':
        run.failures = 0;
        run.qr = undefined;
        if (run.status !== 'WORKING') {
          this.#transition(run, 'WORKING', 'ready');
          this.#scheduleProbe(run, generation);
        }
        this.#settle(run);
        break;
      case 'pids':
        this.#deadman?.track(run.sessionId, event.pids);
        break;
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
    this.#timer(run, delay, () => {
      if (run.desired !== 'running' || run.engine || !this.#fleet.owns(run.sessionId)) return;
      run.restarts++;
      this.#want(run.sessionId, run.epoch);
    });
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

  // ---- stopping ----

  /** Stops the engine now. Records are written only while this instance still owns the session. */
  async #halt(sessionId: string, reason: string, engineReason: EngineStopReason): Promise<void> {
    const run = this.#runs.get(sessionId);
    if (!run) return;
    run.generation++;
    this.#clearTimers(run);
    run.queued = false;
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
    else if (run) run.desired = 'stopped';
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
    const { desired, reason } = run;
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
