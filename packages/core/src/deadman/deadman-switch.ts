import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ConfigError, createLogger, describeValue as describe, type Logger } from '@wafleet/protocol';

/** Why the watchdog killed the tracked processes. */
export type DeadmanFireReason = 'deadline' | 'parent-gone';

/** Payload of the `fired` event. */
export interface DeadmanFiredEvent {
  /** `deadline`: no refresh arrived in time. `parent-gone`: the watchdog lost its pipe to this process. */
  reason: DeadmanFireReason;
  /** The tracked pids that were signalled (SIGKILL to the pid and to its process group). */
  killed: number[];
}

/** Events of a {@link DeadmanSwitch}. */
export interface DeadmanSwitchEvents {
  /**
   * The watchdog killed the tracked processes and exited: the browsers are gone and the switch is spent. An
   * instance that still runs learns this after its pause or blocked event loop; its lease is lost by then.
   */
  fired: [DeadmanFiredEvent];
  /** The watchdog died without firing or being closed: the browsers are no longer protected. Only emitted when listened to. */
  error: [Error];
}

/** Options of {@link startDeadmanSwitch}. */
export interface DeadmanSwitchOptions {
  /** pino, winston or console-like logger. @default no logging */
  logger?: unknown;
  /** Longest wait for the watchdog process to start. @default 10000 */
  startTimeoutMs?: number;
  /** Longest wait for the watchdog to exit on `close()` before it is SIGKILLed (the browsers are left alone). @default 5000 */
  closeTimeoutMs?: number;
}

/**
 * A separate watchdog process that SIGKILLs the tracked browser processes (and their process groups) when this
 * instance stops refreshing its deadline, or dies. See {@link startDeadmanSwitch}.
 */
export interface DeadmanSwitch extends EventEmitter<DeadmanSwitchEvents> {
  /** The watchdog's process id. */
  readonly pid: number;
  /** True while the watchdog runs: not yet fired, closed or gone. */
  readonly active: boolean;
  /**
   * Sets the deadline to `inMs` from now: unless another refresh arrives by then, the watchdog kills everything
   * tracked. Pass the time left until the self-fence deadline on each lease renewal. Until the first refresh
   * nothing fires on a timer. A deadline of 0 or less fires at once.
   */
  refresh(inMs: number): void;
  /** Sets the processes to kill for `sessionId` (replacing earlier ones), e.g. `[browser.process().pid]`. */
  track(sessionId: string, pids: readonly number[]): void;
  /** Forgets the processes of `sessionId`, e.g. once its browser has been closed. */
  untrack(sessionId: string): void;
  /**
   * Resolves once a watchdog runs: at once while one does. After the watchdog fired, the next `refresh()` starts a
   * new one; a browser launched before it runs would be unguarded, so launch only once this resolves (the supervisor
   * does, within its start deadline). `close()` releases whoever waits: close the supervisor before the switch.
   */
  armed(): Promise<void>;
  /** Stops the watchdog without killing anything. Idempotent; resolves once the watchdog has exited. */
  close(): Promise<void>;
}

type State = 'running' | 'fired' | 'closing' | 'closed' | 'gone';

const WATCHDOG_PATH = fileURLToPath(new URL('./watchdog.js', import.meta.url));
const DEFAULT_START_TIMEOUT_MS = 10_000;
const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;

/**
 * Starts the dead-man switch: a small separate Node process (the watchdog) that kills this instance's browsers
 * when the instance stops refreshing its self-fence deadline, or dies.
 *
 * Browsers outlive their Node process. After kill -9, SIGSTOP or a blocked event loop of the instance, Chromium
 * stays running and connected to WhatsApp, so when another instance adopts the session after the lease expired the
 * session runs twice and the phone is logged out. The watchdog measures the deadline on its own monotonic clock, so
 * it fires while the instance is paused; it notices the instance's death through end-of-file on its stdin and kills
 * at once. It runs detached in its own process group, so killing the instance's group does not take it along, and
 * it keeps neither the instance nor its own pipes alive (all handles are unref'd).
 *
 * The instance exiting without `close()` counts as its death: the tracked browsers are killed then too.
 *
 * Cost: one extra Node process per instance, about 43 MB RSS (42.6 to 43.7 MB measured with `ps -o rss=` on Node
 * 20.20, Linux x64; V8 flags such as `--jitless` save under 1 MB), about 100 ms to start, one pipe write per refresh,
 * and no CPU while waiting.
 *
 * Pids are killed as they were tracked: untrack a session once its browser has exited, so that a reused pid is
 * never hit. Its deadline must leave the kill time (milliseconds) before an adopter may start the session: the
 * self-fence deadline does, by the adoption delay.
 * @example
 * const deadman = await startDeadmanSwitch({ logger });
 * fleet.on('renewed', ({ selfFenceInMs }) => deadman.refresh(selfFenceInMs));
 * deadman.on('fired', ({ reason, killed }) => logger.error('dead-man switch fired', { reason, killed }));
 * const browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium' });
 * deadman.track(sessionId, [browser.process()!.pid!]);
 * // ... on shutdown, after the browsers have been closed:
 * await deadman.close();
 */
export async function startDeadmanSwitch(options: DeadmanSwitchOptions = {}): Promise<DeadmanSwitch> {
  if (options === null || typeof options !== 'object') {
    throw new ConfigError('options', `Expected \`options\` to be an object, got ${describe(options)}`);
  }
  const startTimeoutMs = positiveMs('startTimeoutMs', options.startTimeoutMs, DEFAULT_START_TIMEOUT_MS);
  const closeTimeoutMs = positiveMs('closeTimeoutMs', options.closeTimeoutMs, DEFAULT_CLOSE_TIMEOUT_MS);
  if (!existsSync(WATCHDOG_PATH)) {
    throw new Error(`Dead-man watchdog not found at ${WATCHDOG_PATH}: run the compiled package (dist), not its sources`);
  }
  const log = createLogger(options.logger, 'deadman');
  const spawnWatchdog = async () => {
    const sw = new WatchdogSwitch(log, closeTimeoutMs);
    await sw.started(startTimeoutMs);
    return sw;
  };
  return new RearmingSwitch(await spawnWatchdog(), spawnWatchdog, log);
}

/**
 * A watchdog that fired (or died) protects nothing any more. The instance's next `refresh()` proves it is alive
 * and renewing again, so a fresh watchdog takes over, with every tracked browser and that deadline.
 */
class RearmingSwitch extends EventEmitter<DeadmanSwitchEvents> implements DeadmanSwitch {
  #current: WatchdogSwitch;
  readonly #tracked = new Map<string, number[]>();
  #rearming: Promise<void> | undefined;
  /** Callers of {@link armed} waiting for the next watchdog. */
  #waiting: Array<() => void> = [];
  /** `performance.now()` of the newest deadline asked while no watchdog ran. */
  #deadline: number | undefined;
  #closing = false;

  constructor(
    first: WatchdogSwitch,
    private readonly spawnWatchdog: () => Promise<WatchdogSwitch>,
    private readonly log: Logger,
  ) {
    super();
    this.#current = this.#wire(first);
  }

  get pid(): number {
    return this.#current.pid;
  }

  get active(): boolean {
    return this.#current.active;
  }

  refresh(inMs: number): void {
    if (this.#current.active) return this.#current.refresh(inMs);
    // Kept as a point in time: the new watchdog gets what is left of it once it has started.
    this.#deadline = performance.now() + inMs;
    this.#rearm();
  }

  track(sessionId: string, pids: readonly number[]): void {
    this.#tracked.set(validSessionId(sessionId), [...pids]);
    if (this.#current.active) this.#current.track(sessionId, pids);
  }

  untrack(sessionId: string): void {
    this.#tracked.delete(validSessionId(sessionId));
    if (this.#current.active) this.#current.untrack(sessionId);
  }

  armed(): Promise<void> {
    if (this.#current.active || this.#closing) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  async close(): Promise<void> {
    this.#closing = true;
    // Nothing is launched after close: whoever waits for a watchdog may go on (and find the supervisor closed).
    for (const resolve of this.#waiting.splice(0)) resolve();
    await this.#rearming;
    await this.#current.close();
  }

  #wire(sw: WatchdogSwitch): WatchdogSwitch {
    sw.on('fired', (event) => this.emit('fired', event));
    sw.on('error', (err) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    return sw;
  }

  #rearm(): void {
    if (this.#closing || this.#rearming) return;
    this.#rearming = this.spawnWatchdog()
      .then((next) => {
        this.#current = this.#wire(next);
        for (const [sessionId, pids] of this.#tracked) next.track(sessionId, pids);
        if (this.#deadline !== undefined) next.refresh(this.#deadline - performance.now());
        this.log.warn('dead-man switch re-armed with a new watchdog', { pid: next.pid, tracked: this.#tracked.size });
        for (const resolve of this.#waiting.splice(0)) resolve();
      })
      .catch((err: Error) => this.log.error('dead-man switch could not be re-armed; browsers are unprotected', { err }))
      .finally(() => (this.#rearming = undefined));
  }
}

function positiveMs(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ConfigError(option, `Expected \`${option}\` to be a positive number of milliseconds, got ${describe(value)}`);
  }
  return value;
}

function validSessionId(sessionId: unknown): string {
  if (typeof sessionId !== 'string' || sessionId.length === 0) {
    throw new ConfigError('sessionId', `Expected \`sessionId\` to be a non-empty string, got ${describe(sessionId)}`);
  }
  return sessionId;
}

class WatchdogSwitch extends EventEmitter<DeadmanSwitchEvents> implements DeadmanSwitch {
  readonly pid: number;
  readonly #child: ChildProcess;
  readonly #log: Logger;
  readonly #closeTimeoutMs: number;
  #state: State = 'running';
  #ready = false;
  #closed: Promise<void> | undefined;
  readonly #gone: Promise<void>;
  #onReady: (() => void) | undefined;

  constructor(log: Logger, closeTimeoutMs: number) {
    super();
    this.#log = log;
    this.#closeTimeoutMs = closeTimeoutMs;
    // NODE_OPTIONS is meant for the host: an --inspect or a loader in it would make the watchdog fail or collide.
    const env = { ...process.env };
    delete env['NODE_OPTIONS'];
    const child = spawn(process.execPath, [WATCHDOG_PATH], { detached: true, stdio: ['pipe', 'pipe', 'ignore'], env });
    this.#child = child;
    child.on('error', (err) => this.#log.error('dead-man watchdog process error', { err }));
    if (child.pid === undefined) {
      throw new Error(`Could not start the dead-man watchdog (${process.execPath} ${WATCHDOG_PATH})`);
    }
    this.pid = child.pid;
    const stdin = child.stdin as Socket;
    const stdout = child.stdout as Socket;
    // EPIPE once the watchdog has exited; 'close' below reports why it exited.
    stdin.on('error', (err) => {
      this.#log.debug('dead-man watchdog pipe error', { err });
      if (this.#state === 'running') this.#state = 'gone';
    });
    // The switch must not keep the instance alive, nor the instance's death keep the watchdog waiting.
    child.unref();
    stdin.unref();
    stdout.unref();
    createInterface({ input: stdout, crlfDelay: Infinity }).on('line', (line) => this.#onLine(line));
    this.#gone = new Promise<void>((resolve) => {
      child.once('close', (code, signal) => {
        this.#onClose(code, signal);
        resolve();
      });
    });
  }

  get active(): boolean {
    return this.#state === 'running';
  }

  /** One watchdog never comes back once it stopped ({@link RearmingSwitch} starts the next one). */
  armed(): Promise<void> {
    return this.active ? Promise.resolve() : Promise.reject(new Error(`the dead-man watchdog ${this.pid} is no longer running`));
  }

  /** Resolves once the watchdog reads commands; rejects (and kills it) if it exits or is slow to start. */
  async started(timeoutMs: number): Promise<void> {
    if (this.#ready) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => (this.#onReady = resolve)),
        this.#gone.then(() => {
          throw new Error(`Dead-man watchdog exited during start (exit code ${String(this.#child.exitCode)})`);
        }),
        // Left ref'd on purpose: with every other handle unref'd, a host awaiting this alone would otherwise exit.
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`Dead-man watchdog did not start within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (err) {
      this.#state = 'closed';
      this.#child.kill('SIGKILL');
      throw err;
    } finally {
      clearTimeout(timer);
      this.#onReady = undefined;
    }
  }

  refresh(inMs: number): void {
    if (typeof inMs !== 'number' || Number.isNaN(inMs)) {
      throw new ConfigError('inMs', `Expected \`inMs\` to be a number of milliseconds, got ${describe(inMs)}`);
    }
    // A deadline already passed (a late renewal) means the browsers must go now, not an invalid call.
    this.#send({ t: 'deadline', inMs: Math.max(0, inMs) });
  }

  track(sessionId: string, pids: readonly number[]): void {
    const id = validSessionId(sessionId);
    if (!Array.isArray(pids) || !pids.every((p) => Number.isSafeInteger(p) && p > 1)) {
      // 0, 1 and -1 would mean "our group", init and "every process" to kill(2).
      throw new ConfigError('pids', `Expected \`pids\` to be an array of process ids (integers > 1), got ${describe(pids)}`);
    }
    this.#send({ t: 'track', id, pids: [...pids] });
  }

  untrack(sessionId: string): void {
    this.#send({ t: 'untrack', id: validSessionId(sessionId) });
  }

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    if (this.#state === 'running') {
      this.#send({ t: 'close' });
      this.#state = 'closing';
      this.#child.stdin?.end();
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Ref'd like the start timeout: `await deadman.close()` must complete even when nothing else keeps the host alive.
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.#closeTimeoutMs)));
    const result = await Promise.race([this.#gone, timeout]).finally(() => clearTimeout(timer));
    if (result === 'timeout') {
      this.#log.warn('dead-man watchdog did not exit on close; killing it (not the browsers)', { pid: this.pid });
      this.#child.kill('SIGKILL');
      await this.#gone;
    }
  }

  #send(cmd: Record<string, unknown>): void {
    if (this.#state !== 'running') {
      this.#log.debug('dead-man switch not running; command dropped', { t: cmd['t'], state: this.#state });
      return;
    }
    try {
      this.#child.stdin?.write(`${JSON.stringify(cmd)}\n`);
    } catch (err) {
      // A write on a destroyed stream throws synchronously in some Node versions; never into the host.
      this.#log.debug('dead-man watchdog write failed', { err });
      this.#state = 'gone';
    }
  }

  #onLine(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (msg === null || typeof msg !== 'object') return;
    if (msg['t'] === 'ready') {
      this.#ready = true;
      this.#onReady?.();
      return;
    }
    if (msg['t'] === 'fired') {
      const reason: DeadmanFireReason = msg['reason'] === 'parent-gone' ? 'parent-gone' : 'deadline';
      const killed = Array.isArray(msg['killed']) ? msg['killed'].filter((p): p is number => typeof p === 'number') : [];
      this.#state = 'fired';
      this.#log.error('dead-man switch fired: browsers killed', { reason, killed });
      this.emit('fired', { reason, killed });
    }
  }

  #onClose(code: number | null, signal: NodeJS.Signals | null): void {
    const was = this.#state;
    if (was === 'fired') return;
    if (was === 'closing') {
      this.#state = 'closed';
      return;
    }
    if (was === 'closed') return;
    this.#state = 'gone';
    const err = new Error(
      `Dead-man watchdog (pid ${this.pid}) exited unexpectedly (code ${String(code)}, signal ${String(signal)}): browsers are no longer protected`,
    );
    this.#log.error('dead-man watchdog exited unexpectedly', { pid: this.pid, code, signal });
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }
}
