import { spawn, type ChildProcess } from 'node:child_process';
import { ConfigError, type EngineContext, type EngineFactory, type SessionEngine } from '@wafleet/core';

/** Faults a simulated session can be told to suffer. */
export type SimFault =
  /** The browser dies: the engine reports a crash (and its child process, if any, is killed). */
  | 'crash'
  /** The page dies silently: status stays WORKING but health probes fail. */
  | 'zombie'
  /** The phone logs the session out. */
  | 'logout'
  /** Another client takes over the session (WhatsApp CONFLICT). */
  | 'conflict'
  /** The next launch never becomes ready (the start deadline must catch it); cumulative. */
  | 'slow-start';

/** Options of {@link createSimEngine}. */
export interface SimEngineOptions {
  /** Delay from launch to `authenticated`. @default 20 */
  authDelayMs?: number;
  /** Delay from `authenticated` to `ready`. @default 30 */
  readyDelayMs?: number;
  /** Sessions that need a QR scan instead of restoring (they stop at SCAN_QR_CODE until `scan()`). @default none */
  requiresQr?: (sessionId: string) => boolean;
  /** Give each running session a real child process standing in for its browser. @default false */
  browserProcesses?: boolean;
  /** Sessions whose launches never become ready (they stay STARTING until the supervisor's start deadline). @default none */
  holdStarting?: (sessionId: string) => boolean;
  /** Sessions whose launches fail at once (like `initialize()` offline): FAILED, then restarts with backoff. @default none */
  failStart?: (sessionId: string) => boolean;
  /**
   * Sessions whose engine cannot be built (a configuration error, like whatsapp-web.js refusing the clientId): the
   * supervisor gives up at once. @default none
   */
  badConfig?: (sessionId: string) => boolean;
}

/** A simulated engine factory plus the controls tests and chaos drivers use. */
export interface SimEngine {
  /** Pass this to `createSupervisor({ engine })`. */
  readonly factory: EngineFactory;
  /** Injects a fault into a running session (or, for `slow-start`, its next launch). */
  fault(sessionId: string, fault: SimFault): boolean;
  /** Completes the QR scan of a session waiting at SCAN_QR_CODE. */
  scan(sessionId: string): boolean;
  /** Sessions with a live simulated engine, and their browser process ids. */
  running(): Map<string, number | undefined>;
  /** Browser process id of the newest engine created for the session (started or not). */
  browserPid(sessionId: string): number | undefined;
  /** The metadata the newest engine of the session was created with (`EngineContext.metadata`). */
  metadata(sessionId: string): Readonly<Record<string, unknown>> | undefined;
}

/**
 * A simulated WhatsApp session engine with the whatsapp-web.js `Client` life cycle (qr, authenticated, ready,
 * logout, conflict, crash) and fault injection. With `browserProcesses`, each session's "browser" is a real,
 * detached child process (`sleep`), which outlives a paused or killed instance exactly like Chromium does.
 * @example
 * const sim = createSimEngine({ browserProcesses: true });
 * const supervisor = createSupervisor({ fleet, engine: sim.factory });
 * sim.fault('5511999990000', 'crash');
 */
export function createSimEngine(options: SimEngineOptions = {}): SimEngine {
  const authDelayMs = options.authDelayMs ?? 20;
  const readyDelayMs = options.readyDelayMs ?? 30;
  const live = new Map<string, SimSession>();
  /** The newest engine created per session, started or not. */
  const latest = new Map<string, SimSession>();
  /** Launches per session that will never become ready. */
  const slowNext = new Map<string, number>();

  class SimSession implements SessionEngine {
    #stopped = false;
    #zombie = false;
    #browser: ChildProcess | undefined;
    #timers = new Set<NodeJS.Timeout>();
    #awaitingScan = false;

    constructor(readonly ctx: EngineContext) {
      latest.set(ctx.sessionId, this);
      if (options.browserProcesses) {
        // Spawned at creation, so its pid is known when the launch is journaled (before the session is up).
        // Detached, like puppeteer's Chromium: it survives its host being paused or killed.
        this.#browser = spawn('sleep', ['86400'], { detached: true, stdio: 'ignore' });
        this.#browser.unref();
        this.#browser.on('exit', () => {
          if (!this.#stopped) this.ctx.report({ type: 'crashed', reason: 'browser process exited' });
        });
      }
    }

    get pid(): number | undefined {
      return this.#browser?.pid;
    }

    async start(): Promise<void> {
      live.set(this.ctx.sessionId, this);
      if (this.#browser?.pid) this.ctx.report({ type: 'pids', pids: [this.#browser.pid] });
      const slow = slowNext.get(this.ctx.sessionId) ?? 0;
      if (slow > 0) {
        if (slow === 1) slowNext.delete(this.ctx.sessionId);
        else slowNext.set(this.ctx.sessionId, slow - 1);
        return;
      }
      if (options.holdStarting?.(this.ctx.sessionId)) return;
      if (options.failStart?.(this.ctx.sessionId)) throw new Error('simulated launch failure (net::ERR_NAME_NOT_RESOLVED)');
      if (options.requiresQr?.(this.ctx.sessionId)) {
        this.#awaitingScan = true;
        this.#after(authDelayMs, () => this.ctx.report({ type: 'qr', qr: `sim-qr:${this.ctx.sessionId}:${Date.now()}` }));
        return;
      }
      this.#boot();
    }

    #boot(): void {
      this.#after(authDelayMs, () => {
        this.ctx.report({ type: 'authenticated' });
        this.#after(readyDelayMs, () => this.ctx.report({ type: 'ready' }));
      });
    }

    scan(): boolean {
      if (!this.#awaitingScan || this.#stopped) return false;
      this.#awaitingScan = false;
      this.#boot();
      return true;
    }

    async stop(): Promise<void> {
      if (this.#stopped) return;
      this.#stopped = true;
      for (const t of this.#timers) clearTimeout(t);
      if (live.get(this.ctx.sessionId) === this) live.delete(this.ctx.sessionId);
      const browser = this.#browser;
      if (browser && browser.exitCode === null && browser.signalCode === null) {
        const exited = new Promise((r) => browser.once('exit', r));
        browser.kill('SIGKILL');
        await exited;
      }
    }

    async probe(): Promise<boolean> {
      return !this.#stopped && !this.#zombie;
    }

    inject(fault: SimFault): void {
      if (fault === 'zombie') this.#zombie = true;
      else if (fault === 'logout') this.ctx.report({ type: 'logout', reason: 'LOGOUT' });
      else if (fault === 'conflict') this.ctx.report({ type: 'conflict' });
      else if (fault === 'crash') {
        if (this.#browser) this.#browser.kill('SIGKILL');
        else this.ctx.report({ type: 'crashed', reason: 'simulated crash' });
      }
    }

    #after(ms: number, fn: () => void): void {
      const t = setTimeout(() => {
        this.#timers.delete(t);
        if (!this.#stopped) fn();
      }, ms);
      this.#timers.add(t);
    }
  }

  return {
    factory: (ctx) => {
      if (options.badConfig?.(ctx.sessionId)) throw new ConfigError('createClient', 'simulated configuration error: invalid clientId');
      return new SimSession(ctx);
    },
    fault(sessionId, fault) {
      if (fault === 'slow-start') {
        slowNext.set(sessionId, (slowNext.get(sessionId) ?? 0) + 1);
        return true;
      }
      const session = live.get(sessionId);
      session?.inject(fault);
      return session !== undefined;
    },
    scan(sessionId) {
      return live.get(sessionId)?.scan() ?? false;
    },
    running() {
      return new Map([...live].map(([sid, s]) => [sid, s.pid]));
    },
    browserPid(sessionId) {
      return latest.get(sessionId)?.pid;
    },
    metadata(sessionId) {
      return latest.get(sessionId)?.ctx.metadata;
    },
  };
}
