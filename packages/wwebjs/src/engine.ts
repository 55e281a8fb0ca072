import type { EventEmitter } from 'node:events';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import {
  ConfigError,
  createLogger,
  describeValue,
  type EngineContext,
  type EngineEvent,
  type CatchUpRequest,
  type EngineStopReason,
  type EngineFactory,
  type InboundMessage,
  type Logger,
  type SessionEngine,
} from '@wafleet/core';
import { within } from '@wafleet/protocol';
import type { Client, Message } from 'whatsapp-web.js';
import { catchAsyncListeners } from './catch-listeners.js';
import { completeRestore } from './complete-restore.js';
import { processGroupRssBytes } from './process-memory.js';

/** Options of {@link createWwebjsEngine}. */
export interface WwebjsEngineOptions {
  /** How long `probe()` waits for `client.getState()` before answering false. @default 10000 */
  probeTimeoutMs?: number;
  /**
   * How long `stop()` waits for `client.destroy()`, and for a browser launch in progress to hand over its browser,
   * before it kills the browser process itself. @default 10000
   */
  stopTimeoutMs?: number;
  /**
   * With RemoteAuth: the first backup of a session this long after `ready` (RemoteAuth itself waits 60 s, and a
   * session lost before that needs a QR scan again); 0 leaves it to RemoteAuth. @default 5000
   */
  firstBackupMs?: number;
  /**
   * With RemoteAuth: the longest wait for the backup `stop()` takes of a session this instance still owns when the
   * session goes on (stop reason `handoff`, `shutdown` or `restart`) before it closes the browser. Keep it and `stopTimeoutMs` within the supervisor's
   * `stopTimeoutMs`. A backup still running then is committed only if the session is still this instance's. @default 5000
   */
  stopBackupTimeoutMs?: number;
  /** pino, winston or console-like. @default no logging */
  logger?: unknown;
}

/**
 * Builds the host's `Client` for one session run; called once per engine, never with a reused client. It may be
 * async (e.g. to load the host's own data for `context.metadata`): a rejection counts as a failed start and is
 * retried with backoff, while a synchronous throw means bad options and gives up at once.
 */
export type CreateClient = (context: EngineContext) => Client | Promise<Client>;

const DEFAULTS = Object.freeze({ probeTimeoutMs: 10_000, stopTimeoutMs: 10_000, firstBackupMs: 5000, stopBackupTimeoutMs: 5000 });

/** Chromium's profile lock: a symlink to `<host>-<pid>`, plus the socket and cookie it names. */
const PROFILE_LOCKS = ['SingletonLock', 'SingletonSocket', 'SingletonCookie'];

const LOGOUT_REASONS = new Set(['LOGOUT', 'UNPAIRED', 'UNPAIRED_IDLE']);

/** How long a detached main frame waits for a browser disconnect or page close to report the cause first. */
const FRAME_DETACHED_GRACE_MS = 200;

function integer(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min)
    throw new ConfigError(name, `Expected \`${name}\` to be an integer >= ${min}, got ${describeValue(value)}`);
  return value;
}

/** whatsapp-web.js rejects with bare strings ('auth timeout', 'ready timeout'); everything reported is an Error. */
function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value)));
}

function noop(): void {}

/** A whatsapp-web.js message as the supervisor's inbox takes it: id, chat, ms, and what a webhook carries. */
function inbound(m: Message): InboundMessage {
  const chatId = m.fromMe ? m.to : m.from;
  return {
    id: m.id._serialized,
    chatId,
    timestamp: m.timestamp * 1000,
    data: { from: m.from, to: m.to, author: m.author ?? null, body: m.body, type: m.type, hasMedia: m.hasMedia },
  };
}

type Browser = NonNullable<Client['pupBrowser']>;
type Page = NonNullable<Client['pupPage']>;

/**
 * Binds whatsapp-web.js to the wafleet supervisor: the returned factory builds the host's `Client` for each session
 * run and reports its lifecycle as engine events. The host keeps full control of the Client options and auth strategy.
 *
 * Throws `ConfigError` (`WAFLEET_CONFIG`) when the client has `takeoverOnConflict: true`: two instances taking the
 * session from each other in turn make WhatsApp log the phone out.
 * @example
 * const engine = createWwebjsEngine(({ sessionId }) =>
 *   new Client({ authStrategy: new LocalAuth({ clientId: sessionId }), puppeteer: { executablePath: '/usr/bin/chromium' } }),
 * );
 */
export function createWwebjsEngine(createClient: CreateClient, options: WwebjsEngineOptions = {}): EngineFactory {
  if (typeof createClient !== 'function') throw new ConfigError('createClient', 'Expected `createClient` to be a function');
  const resolved: Resolved = {
    probeTimeoutMs: integer('probeTimeoutMs', options.probeTimeoutMs, DEFAULTS.probeTimeoutMs, 1),
    stopTimeoutMs: integer('stopTimeoutMs', options.stopTimeoutMs, DEFAULTS.stopTimeoutMs, 1),
    firstBackupMs: integer('firstBackupMs', options.firstBackupMs, DEFAULTS.firstBackupMs, 0),
    stopBackupTimeoutMs: integer('stopBackupTimeoutMs', options.stopBackupTimeoutMs, DEFAULTS.stopBackupTimeoutMs, 1),
    log: createLogger(options.logger, 'wwebjs'),
  };
  return async (context) => {
    let built: Client | Promise<Client>;
    try {
      built = createClient(context);
    } catch (err) {
      // Building a Client only validates options (LocalAuth/RemoteAuth throw 'Invalid clientId' here): it fails
      // the same way on every attempt, so the supervisor must give up at once instead of retrying.
      throw new ConfigError('createClient', `The whatsapp-web.js Client could not be built: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
      });
    }
    const client = await Promise.resolve(built).catch((err: unknown) => {
      throw new Error(`createClient failed: ${toError(err).message}`, { cause: err });
    });
    const clientOptions = (client as unknown as { options?: { takeoverOnConflict?: boolean } }).options;
    if (clientOptions?.takeoverOnConflict) {
      throw new ConfigError(
        'takeoverOnConflict',
        'whatsapp-web.js `takeoverOnConflict: true` is not supported: two instances taking the session from each other ' +
          'in turn make WhatsApp log the phone out. Leave it false; wafleet moves sessions by ownership instead.',
      );
    }
    return new WwebjsEngine(client, context, resolved);
  };
}

interface Resolved {
  probeTimeoutMs: number;
  stopTimeoutMs: number;
  firstBackupMs: number;
  stopBackupTimeoutMs: number;
  log: Logger;
}

/** What the engine uses of RemoteAuth (`storeRemoteSession` is not in the typings) and of LocalAuth. */
interface AuthStrategy {
  storeRemoteSession?: (options?: { emit?: boolean }) => Promise<void>;
  constructor: { name: string };
  dataPath?: string;
  clientId?: string;
}

/**
 * RemoteAuth saves from its own timer, from afterAuthReady and now from the engine: one at a time (they share the zip
 * and the staging folder), and never rejecting (its timer does not catch, so a refusal would be unhandled).
 */
function serializeBackups(strategy: AuthStrategy, log: Logger, sessionId: string): (() => Promise<void>) | undefined {
  const store = strategy.storeRemoteSession;
  if (typeof store !== 'function') return undefined;
  let last: Promise<void> = Promise.resolve();
  strategy.storeRemoteSession = (opts) => {
    last = last.then(() =>
      store.call(strategy, opts).catch((error: unknown) => log.warn('session backup failed', { sessionId, err: toError(error) })),
    );
    return last;
  };
  return () => strategy.storeRemoteSession!();
}

/** LocalAuth's profile folder, or undefined for other strategies. */
function localProfileDir(strategy: AuthStrategy): string | undefined {
  if (strategy.constructor.name !== 'LocalAuth' || typeof strategy.dataPath !== 'string') return undefined;
  return path.join(strategy.dataPath, strategy.clientId ? `session-${strategy.clientId}` : 'session');
}

class WwebjsEngine implements SessionEngine {
  readonly #client: Client;
  readonly #context: EngineContext;
  readonly #log: Logger;
  readonly #options: Resolved;
  readonly #detach: Array<() => void> = [];
  /** Takes a RemoteAuth backup now; undefined for other strategies. */
  readonly #backup: (() => Promise<void>) | undefined;
  readonly #profileDir: string | undefined;
  #browser: Browser | undefined;
  #initializing: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  /** Ends the wait for the backup a stop takes before it closes the browser (a `fenced` stop meanwhile). */
  #cutBackupShort: (() => void) | undefined;
  #firstBackup: NodeJS.Timeout | undefined;
  /** Reached `ready`: only then does the profile hold a login worth backing up. */
  #ready = false;
  /** A logout, conflict or crash ends the run; what follows is the fallout (destroy() closing the browser…). */
  #ended = false;

  constructor(client: Client, context: EngineContext, options: Resolved) {
    this.#client = client;
    this.#context = context;
    this.#log = options.log;
    this.#options = options;
    const strategy = (client as unknown as { authStrategy?: AuthStrategy }).authStrategy;
    this.#backup = strategy && serializeBackups(strategy, options.log, context.sessionId);
    if (strategy) completeRestore(strategy as Parameters<typeof completeRestore>[0], options.log);
    this.#profileDir = strategy && localProfileDir(strategy);
    this.#watchClient();
    this.#watchBrowserLaunch();
  }

  start(): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    this.#initializing ??= this.#launch();
    return this.#initializing;
  }

  stop(reason?: EngineStopReason): Promise<void> {
    // Fenced while a stop saves the login: the session may be another instance's now, so the browser goes at once.
    if (this.#stopping && reason === 'fenced') this.#cutBackupShort?.();
    this.#stopping ??= this.#shutdown(reason);
    return this.#stopping;
  }

  async probe(): Promise<boolean> {
    if (this.#stopping) return false;
    try {
      // getState() returns null while the page has no socket; it throws before launch and once the page is gone.
      return (await within(this.#client.getState(), this.#options.probeTimeoutMs, 'timeout')) === 'CONNECTED';
    } catch {
      return false;
    }
  }

  /** Sends a text message (`client.sendMessage`); its acknowledgements come as `ack` events (`message_ack`). */
  async send(chatId: string, text: string): Promise<{ id: string }> {
    const message = await this.#client.sendMessage(chatId, text);
    return { id: message.id._serialized };
  }

  /** Resident memory of this session's Chromium: the browser process and every process of its group (Linux). */
  async memoryBytes(): Promise<number | undefined> {
    const pid = this.#browser?.process()?.pid;
    return pid === undefined || this.#stopping ? undefined : processGroupRssBytes(pid);
  }

  /**
   * Reads the history of the chats with activity since the request's cursors: `getChats()` (each chat's timestamp is
   * its newest message), then `fetchMessages({ limit: perChat })` of each such chat, newest chats first, until `total`.
   * Own messages (`fromMe`) are left out, as the `message` event leaves them out.
   */
  async catchUp(request: CatchUpRequest): Promise<InboundMessage[]> {
    if (this.#stopping || this.#ended) return [];
    const chats = await this.#client.getChats();
    const found: InboundMessage[] = [];
    const active = chats
      .map((chat) => ({ chat, since: request.cursors.get(chat.id._serialized)?.timestamp ?? request.since }))
      .filter(({ chat, since }) => chat.timestamp * 1000 >= since)
      .sort((a, b) => b.chat.timestamp - a.chat.timestamp);
    for (const { chat, since } of active) {
      if (found.length >= request.total || this.#stopping) break;
      const messages = await chat.fetchMessages({ limit: request.perChat });
      for (const m of messages) if (!m.fromMe && m.timestamp * 1000 >= since) found.push(inbound(m));
    }
    return found;
  }

  async #launch(): Promise<void> {
    try {
      // RemoteAuth restores the backup inside initialize(), before it launches Chromium: within the start deadline.
      if (this.#profileDir) await this.#unlockProfile(this.#profileDir);
      await this.#client.initialize();
    } catch (thrown) {
      const error = toError(thrown);
      this.#log.warn('whatsapp-web.js initialize failed', { sessionId: this.#context.sessionId, err: error });
      this.#end({ type: 'crashed', reason: `initialize: ${error.message}` });
    }
  }

  /**
   * A LocalAuth profile on a shared folder keeps the lock of an owner that died (Chromium on another host refuses it:
   * "The profile appears to be in use by another Chromium process"). It is stale once this instance owns the session
   * at its epoch (the dead-man switch killed the old owner's browsers); otherwise it may be a live owner's.
   */
  async #unlockProfile(dir: string): Promise<void> {
    if (!this.#context.owns()) throw new Error(`not the owner of session ${this.#context.sessionId}: its profile is not opened`);
    await Promise.all(PROFILE_LOCKS.map((name) => rm(path.join(dir, name), { force: true })));
  }

  #onReady(): void {
    const first = !this.#ready;
    this.#ready = true;
    this.#report({ type: 'ready' });
    if (!first || !this.#backup || this.#options.firstBackupMs === 0) return;
    this.#firstBackup = setTimeout(() => {
      if (!this.#stopping && !this.#ended && this.#context.owns()) void this.#backup!();
    }, this.#options.firstBackupMs);
    this.#firstBackup.unref();
  }

  #report(event: EngineEvent): void {
    if (this.#stopping || this.#ended) return;
    this.#context.report(event);
  }

  #end(event: Extract<EngineEvent, { type: 'logout' | 'conflict' | 'crashed' }>): void {
    if (this.#stopping || this.#ended) return;
    this.#ended = true;
    this.#log.info('session engine ended', { sessionId: this.#context.sessionId, epoch: this.#context.epoch, event: event.type });
    this.#context.report(event);
  }

  #listen(emitter: EventEmitter | Browser | Page, event: string, listener: (...args: never[]) => void): void {
    const target = emitter as unknown as EventEmitter;
    const fn = listener as (...args: unknown[]) => void;
    target.on(event, fn);
    this.#detach.push(() => target.off(event, fn));
  }

  #watchClient(): void {
    const client = this.#client;
    this.#listen(client, 'qr', (qr: string) => this.#report({ type: 'qr', qr }));
    this.#listen(client, 'code', (code: string) => this.#report({ type: 'code', code }));
    this.#listen(client, 'authenticated', () => this.#report({ type: 'authenticated' }));
    this.#listen(client, 'ready', () => this.#onReady());
    this.#listen(client, 'message', (message: Message) => this.#report({ type: 'message', message: inbound(message) }));
    this.#listen(client, 'message_ack', (message: Message, ack: number) =>
      this.#report({ type: 'ack', messageId: message.id._serialized, ack }),
    );
    // Other refused states arrive as 'disconnected' once RemoteAuth has run disconnect(); CONFLICT is reported before
    // that so the supervisor stops the run without waiting for the backup to be deleted.
    this.#listen(client, 'change_state', (state: string) => {
      if (state === 'CONFLICT') this.#end({ type: 'conflict' });
    });
    this.#listen(client, 'disconnected', (reason: unknown) => {
      const text = String(reason);
      if (text === 'CONFLICT') this.#end({ type: 'conflict' });
      else if (LOGOUT_REASONS.has(text)) this.#end({ type: 'logout', reason: text });
      else this.#end({ type: 'crashed', reason: text });
    });
    this.#listen(client, 'auth_failure', (message: unknown) => {
      this.#end({ type: 'crashed', reason: `auth_failure: ${toError(message).message}` });
    });
  }

  /**
   * initialize() assigns `pupBrowser` and `pupPage` only after launching, then may hang forever in `page.goto()`, so
   * waiting for it to settle is too late to report pids or to close a browser that stop() could not see yet.
   */
  #watchBrowserLaunch(): void {
    const client = this.#client as unknown as Record<'pupBrowser' | 'pupPage', unknown>;
    let browser = client.pupBrowser;
    let page = client.pupPage;
    Object.defineProperty(client, 'pupBrowser', {
      configurable: true,
      enumerable: true,
      get: () => browser,
      set: (value: unknown) => {
        browser = value;
        if (value) this.#onBrowser(value as Browser);
      },
    });
    Object.defineProperty(client, 'pupPage', {
      configurable: true,
      enumerable: true,
      get: () => page,
      set: (value: unknown) => {
        page = value;
        if (value) this.#onPage(value as Page);
      },
    });
    if (browser) this.#onBrowser(browser as Browser);
    if (page) this.#onPage(page as Page);
  }

  #onPage(page: Page): void {
    catchAsyncListeners(page, (event, err) =>
      this.#log.warn('whatsapp-web.js page listener failed', { sessionId: this.#context.sessionId, event, err: toError(err) }),
    );
    if (this.#stopping) return;
    this.#listen(page, 'close', () => this.#end({ type: 'crashed', reason: 'page closed' }));
    // A renderer crash ("Aw, Snap!", an out-of-memory kill) leaves the browser connected and whatsapp-web.js emits
    // nothing: the session would stay "ready" while nothing flows. Puppeteer reports it as the page's 'error'.
    this.#listen(page, 'error', () => this.#end({ type: 'crashed', reason: 'page crashed' }));
    // The main frame detached (the page navigated away in a way that broke the injection): every later evaluate
    // fails with "Attempted to use detached Frame". A dying browser or a closing page detach it too, just before
    // their own events: wait a moment, so the run ends with the cause (the first reason reported wins).
    this.#listen(page, 'framedetached', (frame: unknown) => {
      if (frame !== page.mainFrame()) return;
      setTimeout(() => this.#end({ type: 'crashed', reason: 'frame detached' }), FRAME_DETACHED_GRACE_MS).unref();
    });
  }

  #onBrowser(browser: Browser): void {
    this.#browser = browser;
    if (this.#stopping) {
      // stop() ran while the browser was launching: nobody else will close it.
      void browser.close().catch(noop);
      this.#kill();
      return;
    }
    this.#listen(browser, 'disconnected', () => this.#end({ type: 'crashed', reason: 'browser disconnected' }));
    const pid = browser.process()?.pid;
    if (pid !== undefined) this.#report({ type: 'pids', pids: [pid] });
  }

  async #shutdown(reason: EngineStopReason | undefined): Promise<void> {
    for (const detach of this.#detach.splice(0)) detach();
    clearTimeout(this.#firstBackup);
    // Handoff, shutdown, restart: the next owner restores the newest login. Not after a logout, conflict or crash
    // (nothing sound to save), nor once fenced (the session is someone else's; the commit would be refused anyway),
    // nor for a stop by request. A caller that gives no reason gets a backup while the session is still owned.
    const goesOn = reason === undefined || reason === 'handoff' || reason === 'shutdown' || reason === 'restart';
    if (goesOn && this.#backup && this.#ready && !this.#ended && this.#context.owns()) {
      const fenced = new Promise<void>((resolve) => (this.#cutBackupShort = resolve));
      await within(Promise.race([this.#backup(), fenced]), this.#options.stopBackupTimeoutMs, undefined);
      this.#cutBackupShort = undefined;
    }
    // destroy(), not logout(): logout() unlinks the device and makes RemoteAuth delete the backup.
    const destroyed = Promise.resolve()
      .then(() => this.#client.destroy())
      .catch((error: unknown) => {
        this.#log.debug('whatsapp-web.js destroy failed (browser already gone?)', { err: toError(error) });
      });
    await within(destroyed, this.#options.stopTimeoutMs, undefined);
    // A launch in progress hands its browser to #onBrowser, which closes it; the rejected initialize() then settles.
    if (this.#initializing) await within(this.#initializing, this.#options.stopTimeoutMs, undefined);
    this.#kill();
  }

  /** destroy() leaves the process running when the browser had already disconnected, or when close() timed out. */
  #kill(): void {
    const child = this.#browser?.process();
    if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    try {
      // puppeteer launches Chromium detached, as the leader of its own process group: take the renderers too.
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }
}
