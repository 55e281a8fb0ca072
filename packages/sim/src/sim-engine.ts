import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  ConfigError,
  type CatchUpRequest,
  type EngineContext,
  type EngineFactory,
  type EngineStopReason,
  type InboundMessage,
  type SessionEngine,
} from '@wafleet/core';
import { checkLoginBytes, loginFileContent, parseLoginFile } from './login-file.js';
import { readSimHistory, SimMessageTail } from './sim-messages.js';

/**
 * The part of core's `SessionData` the simulator uses: fenced save and restore of one file per session. A
 * `createSessionData()` result is one; so is an in-memory test double.
 */
export interface SimSessionData {
  /** Uploads and commits `file` as the session's newest login; rejects (code `WAFLEET_LEASE_LOST` or `WAFLEET_NOT_OWNER`) when the writer no longer owns the session at its epoch. */
  save(sessionId: string, file: string): Promise<{ readonly version: number }>;
  /** Writes the newest committed login to `file`; null when none is committed. */
  restore(sessionId: string, file: string): Promise<{ readonly version: number } | null>;
}

/** What happened to a session's login, for journals and metrics. */
export type SimLoginEvent =
  /** A launch restored the newest committed login (`version`), or found none (`version: null`: SCAN_QR_CODE). */
  | {
      ev: 'restore';
      sessionId: string;
      epoch: string;
      version: number | null;
      /** Who wrote the restored bytes, read from the file itself. */
      writer?: string;
      writerEpoch?: string;
      /** Unix ms when the restore began (a commit after this may be missing from it). */
      startedAt: number;
      durationMs: number;
    }
  /** A restore failed (store unreachable, corrupt bytes): the launch fails and the supervisor restarts it. */
  | { ev: 'restore-failed'; sessionId: string; epoch: string; code: string; message: string }
  /** A save was committed as `version`. */
  | { ev: 'save'; sessionId: string; epoch: string; version: number; reason: SimSaveReason; durationMs: number }
  /** The store refused a save at commit: its writer no longer owned the session at its epoch. */
  | { ev: 'save-refused'; sessionId: string; epoch: string; reason: SimSaveReason; code: string }
  /** A save failed for another reason (store unreachable); the previous version stays. */
  | { ev: 'save-failed'; sessionId: string; epoch: string; reason: SimSaveReason; code: string; message: string };

/**
 * Why a login was saved: soon after `ready`, periodically, before a handoff stops the engine, or (`seed`) by
 * `wafleet-sim sessions --logged-in` before the run.
 */
export type SimSaveReason = 'ready' | 'interval' | 'handoff' | 'seed';

/** Login data of simulated sessions (the `login` option of {@link createSimEngine}). */
export interface SimLoginOptions {
  /** Where logins are committed and restored from (core's `createSessionData()`). */
  store: SimSessionData;
  /** Names the writer in every login file (the instance id). */
  writer: string;
  /** Size of a login file. @default 4096 */
  bytes?: number;
  /** Delay from `ready` to the first save (RemoteAuth waits 60 s; the wwebjs binding 5 s). @default 100 */
  saveAfterReadyMs?: number;
  /** Period of later saves while ready; 0 saves only after `ready` and on handoff. @default 0 */
  saveIntervalMs?: number;
  /** Longest wait for the save before a handoff stops the engine. @default 5000 */
  handoffSaveTimeoutMs?: number;
  /** Scratch directory for login files. @default a new directory under the OS temp directory */
  dir?: string;
  /** Called after every restore and save. */
  onEvent?: (event: SimLoginEvent) => void;
}

/** Faults a simulated session can be told to suffer. */
export type SimFault =
  /** The browser dies: the engine reports a crash (and its child process, if any, is killed). */
  | 'crash'
  /** The page dies silently (a renderer crash with no event): status stays WORKING but health probes answer false. */
  | 'zombie'
  /** The page freezes (a script stuck after a WhatsApp Web update): health probes never answer. */
  | 'frozen'
  /** The phone logs the session out. */
  | 'logout'
  /** Another client takes over the session (WhatsApp CONFLICT). */
  | 'conflict'
  /** The next launch never becomes ready (the start deadline must catch it); cumulative. */
  | 'slow-start'
  /** The browser's memory starts growing by `memory.leakBytesPerSec` (what hours of WhatsApp Web do, faster). */
  | 'memory-leak'
  /** Sends are taken but never acknowledged by the server (a socket that died without a disconnect). */
  | 'drop-acks';

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
  /** Called when an engine spawned its browser process (with `browserProcesses`), e.g. to log the pid. */
  onBrowser?: (event: { sessionId: string; epoch: string; pid: number }) => void;
  /** Sessions whose launches never become ready (they stay STARTING until the supervisor's start deadline). @default none */
  holdStarting?: (sessionId: string) => boolean;
  /** Sessions whose launches fail at once (like `initialize()` offline): FAILED, then restarts with backoff. @default none */
  failStart?: (sessionId: string) => boolean;
  /**
   * Sessions whose engine cannot be built (a configuration error, like whatsapp-web.js refusing the clientId): the
   * supervisor gives up at once. @default none
   */
  badConfig?: (sessionId: string) => boolean;
  /**
   * Login data: each launch restores the session's newest committed login before it authenticates, and goes to
   * SCAN_QR_CODE when none is committed, like whatsapp-web.js with RemoteAuth; a ready session saves its login soon
   * after `ready`, periodically, and before a stop after which the session goes on (the supervisor's stop reason
   * `handoff`, `shutdown` or `restart`). A fenced stop does not save. @default none (every session is logged in, nothing is stored)
   */
  login?: SimLoginOptions;
  /**
   * Inbound messages: each session's simulated WhatsApp history is `<dir>/<sessionId>.jsonl` (append with
   * `sendSimMessage`). A ready, healthy session emits every message appended after its `ready` as a `message` event
   * (checking every `pollMs`); a dead or frozen page emits nothing; `catchUp` reads the history. @default none
   */
  messages?: { dir: string; pollMs?: number };
  /**
   * Simulated browser memory (`memoryBytes()`): `baseBytes` from launch, growing by `leakBytesPerSec` once the
   * `memory-leak` fault hit the run. @default { baseBytes: 104857600, leakBytesPerSec: 67108864 }
   */
  memory?: { baseBytes?: number; leakBytesPerSec?: number };
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
  /** Saves the login of a ready session now (the handoff save); resolves when committed, refused or failed. */
  saveLogin(sessionId: string): Promise<void>;
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
  const login = options.login ? resolveLogin(options.login) : undefined;

  class SimSession implements SessionEngine {
    #stopped = false;
    #zombie = false;
    #frozen = false;
    #browser: ChildProcess | undefined;
    #timers = new Set<NodeJS.Timeout>();
    #awaitingScan = false;
    /** Ready at least once: there is a login to save. */
    #loggedIn = false;
    #saves = 0;
    #stopping: Promise<void> | undefined;
    #killed: Promise<void> | undefined;
    /** Ends a stop's wait for the login save (a fenced stop meanwhile). */
    #cutSaveShort: (() => void) | undefined;
    /** Saves of one engine run one after another. */
    #saveChain: Promise<void> = Promise.resolve();
    #tail: SimMessageTail | undefined;
    /** performance.now() when the memory leak began. */
    #leakSince: number | undefined;
    #dropAcks = false;
    #sent = 0;

    constructor(readonly ctx: EngineContext) {
      latest.set(ctx.sessionId, this);
      if (options.browserProcesses) {
        // Spawned at creation, so its pid is known when the launch is journaled (before the session is up).
        // Detached, like puppeteer's Chromium: it survives its host being paused or killed.
        this.#browser = spawn('sleep', ['86400'], { detached: true, stdio: 'ignore' });
        this.#browser.unref();
        if (this.#browser.pid !== undefined) options.onBrowser?.({ sessionId: ctx.sessionId, epoch: ctx.epoch, pid: this.#browser.pid });
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
      // Like RemoteAuth: the login is restored before the browser starts; none committed means a QR code to scan.
      const restored = login ? await this.#restore(login) : true;
      if (this.#stopped) return;
      if (!restored || options.requiresQr?.(this.ctx.sessionId)) {
        this.#awaitingScan = true;
        this.#after(authDelayMs, () => this.ctx.report({ type: 'qr', qr: `sim-qr:${this.ctx.sessionId}:${Date.now()}` }));
        return;
      }
      this.#boot();
    }

    #boot(): void {
      this.#after(authDelayMs, () => {
        this.ctx.report({ type: 'authenticated' });
        this.#after(readyDelayMs, async () => {
          // Live messages are those appended from here on: the tail finds the file's end before `ready`.
          if (options.messages) {
            const tail = new SimMessageTail(options.messages.dir, this.ctx.sessionId);
            await tail.poll(() => undefined).catch(() => undefined);
            if (this.#stopped) return;
            this.#tail = tail;
            this.#receive(options.messages.pollMs ?? 100);
          }
          this.ctx.report({ type: 'ready' });
          this.#loggedIn = true;
          if (login) this.#after(login.saveAfterReadyMs, () => this.#scheduledSave(login, 'ready'));
        });
      });
    }

    #receive(pollMs: number): void {
      this.#after(pollMs, () => {
        const tail = this.#tail;
        // A dead or frozen page receives nothing: what arrives now is only in the history.
        if (!tail || this.#zombie || this.#frozen) return;
        void tail
          .poll((message: InboundMessage) => {
            if (!this.#stopped && !this.#zombie && !this.#frozen) this.ctx.report({ type: 'message', message });
          })
          .catch(() => undefined)
          .finally(() => this.#receive(pollMs));
      });
    }

    /** Takes the message at once; the server acknowledges it 20 ms later (1), unless acks are dropped or the page is dead. */
    async send(_chatId: string, _text: string): Promise<{ id: string }> {
      if (this.#stopped) throw new Error('Session closed');
      if (this.#frozen) return new Promise<{ id: string }>(() => undefined);
      const id = `true_sim_${this.ctx.sessionId}_${this.ctx.epoch}_${++this.#sent}`;
      if (!this.#dropAcks && !this.#zombie) this.#after(20, () => this.ctx.report({ type: 'ack', messageId: id, ack: 1 }));
      return { id };
    }

    async memoryBytes(): Promise<number> {
      const base = options.memory?.baseBytes ?? 100 * 2 ** 20;
      const leak = options.memory?.leakBytesPerSec ?? 64 * 2 ** 20;
      return Math.round(base + (this.#leakSince === undefined ? 0 : ((performance.now() - this.#leakSince) / 1000) * leak));
    }

    async catchUp(request: CatchUpRequest): Promise<InboundMessage[]> {
      if (!options.messages || this.#stopped) return [];
      if (this.#frozen) return new Promise<InboundMessage[]>(() => undefined);
      return readSimHistory(options.messages.dir, this.ctx.sessionId, request);
    }

    async #restore(l: ResolvedLogin): Promise<boolean> {
      const { sessionId, epoch } = this.ctx;
      const file = join(l.dir(), `${sessionId}.${epoch}.restore`);
      const startedAt = Date.now();
      const t0 = performance.now();
      try {
        const committed = await l.store.restore(sessionId, file);
        const durationMs = Math.round(performance.now() - t0);
        if (!committed) {
          l.onEvent?.({ ev: 'restore', sessionId, epoch, version: null, startedAt, durationMs });
          return false;
        }
        const header = parseLoginFile(await readFile(file));
        if (header.session !== sessionId) throw new Error(`the restored login belongs to session ${header.session}`);
        l.onEvent?.({
          ev: 'restore',
          sessionId,
          epoch,
          version: committed.version,
          writer: header.writer,
          writerEpoch: header.epoch,
          startedAt,
          durationMs,
        });
        return true;
      } catch (err) {
        l.onEvent?.({ ev: 'restore-failed', sessionId, epoch, code: codeOf(err), message: (err as Error).message });
        // A launch whose restore failed fails (the supervisor restarts it): never a QR code for a login that exists.
        throw err;
      } finally {
        await rm(file, { force: true });
      }
    }

    #scheduledSave(l: ResolvedLogin, reason: SimSaveReason): void {
      void this.save(reason).then(() => {
        if (l.saveIntervalMs > 0) this.#after(l.saveIntervalMs, () => this.#scheduledSave(l, 'interval'));
      });
    }

    async saveBounded(l: ResolvedLogin): Promise<void> {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, l.handoffSaveTimeoutMs)));
      try {
        await Promise.race([this.save('handoff'), timeout]);
      } finally {
        clearTimeout(timer);
      }
    }

    /** Queues a save of this run's login; a run that never got ready has none. */
    save(reason: SimSaveReason): Promise<void> {
      const run = this.#saveChain.then(() => this.#saveOnce(reason));
      this.#saveChain = run;
      return run;
    }

    async #saveOnce(reason: SimSaveReason): Promise<void> {
      // A stopped engine (fenced, crashed, released) starts no save; one already under way goes on to the store,
      // which must refuse it at commit when another owner took over meanwhile.
      if (!login || !this.#loggedIn || this.#stopped) return;
      const { sessionId, epoch } = this.ctx;
      const n = ++this.#saves;
      const file = join(login.dir(), `${sessionId}.${epoch}.${n}.login`);
      const t0 = performance.now();
      try {
        await writeFile(file, loginFileContent({ session: sessionId, writer: login.writer, epoch, n }, login.bytes));
        const { version } = await login.store.save(sessionId, file);
        login.onEvent?.({ ev: 'save', sessionId, epoch, version, reason, durationMs: Math.round(performance.now() - t0) });
      } catch (err) {
        const code = codeOf(err);
        if (code === 'WAFLEET_LEASE_LOST' || code === 'WAFLEET_NOT_OWNER')
          login.onEvent?.({ ev: 'save-refused', sessionId, epoch, reason, code });
        else login.onEvent?.({ ev: 'save-failed', sessionId, epoch, reason, code, message: (err as Error).message });
      } finally {
        await rm(file, { force: true });
      }
    }

    scan(): boolean {
      if (!this.#awaitingScan || this.#stopped) return false;
      this.#awaitingScan = false;
      this.#boot();
      return true;
    }

    stop(reason?: EngineStopReason): Promise<void> {
      // Once the session is fenced its browser goes at once, even while an earlier stop is saving the login.
      if (this.#stopping) return reason === 'fenced' ? this.#kill() : this.#stopping;
      this.#stopping = (async () => {
        // The session goes on elsewhere or again: save its login first, while this instance still owns it (the fleet
        // releases a handed-off session only after the engine stopped).
        if (login && (reason === 'handoff' || reason === 'shutdown' || reason === 'restart')) {
          const fenced = new Promise<void>((resolve) => (this.#cutSaveShort = resolve));
          await Promise.race([this.saveBounded(login), fenced]);
        }
        await this.#kill();
      })();
      return this.#stopping;
    }

    /** Ends the run: no more events or saves, the browser killed. Idempotent. */
    #kill(): Promise<void> {
      this.#cutSaveShort?.();
      this.#killed ??= (async () => {
        this.#stopped = true;
        for (const t of this.#timers) clearTimeout(t);
        if (live.get(this.ctx.sessionId) === this) live.delete(this.ctx.sessionId);
        const browser = this.#browser;
        if (browser && browser.exitCode === null && browser.signalCode === null) {
          const exited = new Promise((r) => browser.once('exit', r));
          browser.kill('SIGKILL');
          await exited;
        }
      })();
      return this.#killed;
    }

    async probe(): Promise<boolean> {
      if (this.#frozen) return new Promise<boolean>(() => undefined);
      return !this.#stopped && !this.#zombie;
    }

    inject(fault: SimFault): void {
      if (fault === 'zombie') this.#zombie = true;
      else if (fault === 'frozen') this.#frozen = true;
      else if (fault === 'memory-leak') this.#leakSince ??= performance.now();
      else if (fault === 'drop-acks') this.#dropAcks = true;
      else if (fault === 'logout') this.ctx.report({ type: 'logout', reason: 'LOGOUT' });
      else if (fault === 'conflict') this.ctx.report({ type: 'conflict' });
      else if (fault === 'crash') {
        if (this.#browser) this.#browser.kill('SIGKILL');
        else this.ctx.report({ type: 'crashed', reason: 'simulated crash' });
      }
    }

    #after(ms: number, fn: () => void | Promise<void>): void {
      const t = setTimeout(() => {
        this.#timers.delete(t);
        if (!this.#stopped) void fn();
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
    async saveLogin(sessionId) {
      const session = live.get(sessionId);
      if (session && login) await session.saveBounded(login);
    },
  };
}

interface ResolvedLogin extends Required<Omit<SimLoginOptions, 'dir' | 'onEvent'>> {
  dir: () => string;
  onEvent: SimLoginOptions['onEvent'];
}

function resolveLogin(o: SimLoginOptions): ResolvedLogin {
  if (typeof o.store?.save !== 'function' || typeof o.store.restore !== 'function') {
    throw new ConfigError('login.store', 'Expected `login.store` to have save(sessionId, file) and restore(sessionId, file)');
  }
  if (typeof o.writer !== 'string' || o.writer === '')
    throw new ConfigError('login.writer', 'Expected `login.writer` to be a non-empty string');
  const ms = (name: 'saveAfterReadyMs' | 'saveIntervalMs' | 'handoffSaveTimeoutMs', fallback: number): number => {
    const v = o[name] ?? fallback;
    if (!Number.isInteger(v) || v < 0)
      throw new ConfigError(`login.${name}`, `Expected \`login.${name}\` to be a non-negative integer, got ${String(v)}`);
    return v;
  };
  let dir = o.dir;
  let made = false;
  return {
    store: o.store,
    writer: o.writer,
    bytes: checkLoginBytes('login.bytes', o.bytes ?? 4096),
    saveAfterReadyMs: ms('saveAfterReadyMs', 100),
    saveIntervalMs: ms('saveIntervalMs', 0),
    handoffSaveTimeoutMs: ms('handoffSaveTimeoutMs', 5000),
    // Created on first use, so an engine that never saves leaves nothing behind.
    dir: () => {
      if (dir === undefined) dir = mkdtempSync(join(tmpdir(), 'wafleet-sim-login-'));
      else if (!made) mkdirSync(dir, { recursive: true });
      made = true;
      return dir;
    },
    onEvent: o.onEvent,
  };
}

const codeOf = (err: unknown): string => {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
};
