import type { EventEmitter } from 'node:events';
import {
  ConfigError,
  createLogger,
  describeValue,
  type EngineContext,
  type EngineEvent,
  type EngineFactory,
  type Logger,
  type SessionEngine,
} from '@wafleet/core';
import type { Client } from 'whatsapp-web.js';

/** Options of {@link createWwebjsEngine}. */
export interface WwebjsEngineOptions {
  /** How long `probe()` waits for `client.getState()` before answering false. @default 10000 */
  probeTimeoutMs?: number;
  /**
   * How long `stop()` waits for `client.destroy()`, and for a browser launch in progress to hand over its browser,
   * before it kills the browser process itself. @default 10000
   */
  stopTimeoutMs?: number;
  /** pino, winston or console-like. @default no logging */
  logger?: unknown;
}

/**
 * Builds the host's `Client` for one session run; called once per engine, never with a reused client. It may be
 * async (e.g. to load the host's own data for `context.metadata`): a rejection counts as a failed start and is
 * retried with backoff, while a synchronous throw means bad options and gives up at once.
 */
export type CreateClient = (context: EngineContext) => Client | Promise<Client>;

const DEFAULTS = Object.freeze({ probeTimeoutMs: 10_000, stopTimeoutMs: 10_000 });

const LOGOUT_REASONS = new Set(['LOGOUT', 'UNPAIRED', 'UNPAIRED_IDLE']);

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0)
    throw new ConfigError(name, `Expected \`${name}\` to be a positive integer, got ${describeValue(value)}`);
  return value;
}

/** whatsapp-web.js rejects with bare strings ('auth timeout', 'ready timeout'); everything reported is an Error. */
function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value)));
}

/** `promise`'s value, or `fallback` once `ms` have passed; the timer never holds the process open. */
function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
    timer.unref();
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function noop(): void {}

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
  const probeTimeoutMs = positiveInteger('probeTimeoutMs', options.probeTimeoutMs, DEFAULTS.probeTimeoutMs);
  const stopTimeoutMs = positiveInteger('stopTimeoutMs', options.stopTimeoutMs, DEFAULTS.stopTimeoutMs);
  const log = createLogger(options.logger, 'wwebjs');
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
    return new WwebjsEngine(client, context, log, probeTimeoutMs, stopTimeoutMs);
  };
}

class WwebjsEngine implements SessionEngine {
  readonly #client: Client;
  readonly #context: EngineContext;
  readonly #log: Logger;
  readonly #probeTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  readonly #detach: Array<() => void> = [];
  #browser: Browser | undefined;
  #initializing: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  /** A logout, conflict or crash ends the run; what follows is the fallout (destroy() closing the browser…). */
  #ended = false;

  constructor(client: Client, context: EngineContext, log: Logger, probeTimeoutMs: number, stopTimeoutMs: number) {
    this.#client = client;
    this.#context = context;
    this.#log = log;
    this.#probeTimeoutMs = probeTimeoutMs;
    this.#stopTimeoutMs = stopTimeoutMs;
    this.#watchClient();
    this.#watchBrowserLaunch();
  }

  start(): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    this.#initializing ??= this.#launch();
    return this.#initializing;
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  async probe(): Promise<boolean> {
    if (this.#stopping) return false;
    try {
      // getState() returns null while the page has no socket; it throws before launch and once the page is gone.
      return (await within(this.#client.getState(), this.#probeTimeoutMs, 'timeout')) === 'CONNECTED';
    } catch {
      return false;
    }
  }

  async #launch(): Promise<void> {
    try {
      await this.#client.initialize();
    } catch (thrown) {
      const error = toError(thrown);
      this.#log.warn('whatsapp-web.js initialize failed', { sessionId: this.#context.sessionId, err: error });
      this.#end({ type: 'crashed', reason: `initialize: ${error.message}` });
    }
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
    this.#listen(client, 'ready', () => this.#report({ type: 'ready' }));
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
    if (!this.#stopping) this.#listen(page, 'close', () => this.#end({ type: 'crashed', reason: 'page closed' }));
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

  async #shutdown(): Promise<void> {
    for (const detach of this.#detach.splice(0)) detach();
    // destroy(), not logout(): logout() unlinks the device and makes RemoteAuth delete the backup.
    const destroyed = Promise.resolve()
      .then(() => this.#client.destroy())
      .catch((error: unknown) => {
        this.#log.debug('whatsapp-web.js destroy failed (browser already gone?)', { err: toError(error) });
      });
    await within(destroyed, this.#stopTimeoutMs, undefined);
    // A launch in progress hands its browser to #onBrowser, which closes it; the rejected initialize() then settles.
    if (this.#initializing) await within(this.#initializing, this.#stopTimeoutMs, undefined);
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
