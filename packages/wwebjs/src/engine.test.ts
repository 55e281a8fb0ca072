import { EventEmitter } from 'node:events';
import type { EngineContext, EngineEvent, SessionEngine } from '@wafleet/core';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Client, LocalAuth, localClient, removeTempDirs, tempDir } from '../test/client-fixture.js';
import { createWwebjsEngine, type WwebjsEngineOptions } from './engine.js';

afterAll(removeTempDirs);

const CLIENT_EVENTS = ['qr', 'code', 'authenticated', 'ready', 'change_state', 'disconnected', 'auth_failure'];

let counter = 0;

/** A real, uninitialized Client bound to an engine whose reports land in `events`. */
async function bind(options: WwebjsEngineOptions = {}, clientOptions = {}) {
  const sessionId = `s${++counter}`;
  const client = localClient(sessionId, tempDir('wafleet-wwebjs-unit-'), clientOptions);
  const before = Object.fromEntries(CLIENT_EVENTS.map((e) => [e, client.listenerCount(e)]));
  const events: EngineEvent[] = [];
  const context: EngineContext = { sessionId, epoch: '7', metadata: {}, report: (e) => events.push(e), owns: () => true };
  const engine: SessionEngine = await createWwebjsEngine(() => client, options)(context);
  return { client, engine, events, before };
}

/** Just enough of a puppeteer Browser/Page for the hooks: events, and a process that has already exited. */
function fakeBrowser(pid = 4242) {
  const browser = Object.assign(new EventEmitter(), {
    process: () => ({ pid, exitCode: 0, signalCode: null }),
    close: vi.fn(async () => {}),
  });
  return browser;
}

function assignBrowser(client: Client, browser: unknown, page: unknown = new EventEmitter()): void {
  // initialize() assigns both right after launching.
  Object.assign(client, { pupBrowser: browser, pupPage: page });
}

describe('createWwebjsEngine event mapping (real whatsapp-web.js Client)', () => {
  it('passes qr, code, authenticated and ready through, repeated ones included', async () => {
    const { client, events } = await bind();
    client.emit('qr', 'x');
    client.emit('code', 'ABCD1234');
    client.emit('authenticated');
    client.emit('authenticated');
    client.emit('ready');
    client.emit('ready');
    expect(events).toEqual([
      { type: 'qr', qr: 'x' },
      { type: 'code', code: 'ABCD1234' },
      { type: 'authenticated' },
      { type: 'authenticated' },
      { type: 'ready' },
      { type: 'ready' },
    ]);
  });

  it('reports CONFLICT once, though the client follows change_state with disconnected', async () => {
    const { client, events } = await bind();
    client.emit('change_state', 'CONNECTED');
    client.emit('change_state', 'OPENING');
    client.emit('change_state', 'CONFLICT');
    client.emit('disconnected', 'CONFLICT');
    expect(events).toEqual([{ type: 'conflict' }]);
  });

  it.each(['LOGOUT', 'UNPAIRED', 'UNPAIRED_IDLE'])('reports disconnected(%s) as logout', async (reason) => {
    const { client, events } = await bind();
    client.emit('disconnected', reason);
    expect(events).toEqual([{ type: 'logout', reason }]);
  });

  it.each(['TOS_BLOCK', 'SMB_TOS_BLOCK', 'PROXYBLOCK', 'DEPRECATED_VERSION', 'Max qrcode retries reached'])(
    'reports disconnected(%s) as crashed with that reason',
    async (reason) => {
      const { client, events } = await bind();
      client.emit('disconnected', reason);
      expect(events).toEqual([{ type: 'crashed', reason }]);
    },
  );

  it('reports auth_failure as crashed', async () => {
    const { client, events } = await bind();
    client.emit('auth_failure', 'restore failed');
    expect(events).toEqual([{ type: 'crashed', reason: 'auth_failure: restore failed' }]);
  });

  it('reports only the first terminal event: the fallout of the library destroying its browser is not a crash', async () => {
    const { client, events } = await bind();
    const browser = fakeBrowser();
    assignBrowser(client, browser);
    client.emit('disconnected', 'TOS_BLOCK');
    browser.emit('disconnected');
    client.emit('qr', 'late');
    expect(events).toEqual([
      { type: 'pids', pids: [4242] },
      { type: 'crashed', reason: 'TOS_BLOCK' },
    ]);
  });

  it('reports the browser pid once the browser exists, and browser disconnect or page close as crashed', async () => {
    const first = await bind();
    const browser = fakeBrowser(1111);
    assignBrowser(first.client, browser);
    browser.emit('disconnected');
    expect(first.events).toEqual([
      { type: 'pids', pids: [1111] },
      { type: 'crashed', reason: 'browser disconnected' },
    ]);

    const second = await bind();
    const page = new EventEmitter();
    assignBrowser(second.client, fakeBrowser(2222), page);
    page.emit('close');
    expect(second.events).toEqual([
      { type: 'pids', pids: [2222] },
      { type: 'crashed', reason: 'page closed' },
    ]);
  });
});

describe('createWwebjsEngine configuration', () => {
  it('refuses takeoverOnConflict: two instances taking the session in turn log the phone out', async () => {
    const client = localClient('takeover', tempDir('wafleet-wwebjs-unit-'), { takeoverOnConflict: true });
    const factory = createWwebjsEngine(() => client);
    let thrown: unknown;
    try {
      await factory({ sessionId: 'takeover', epoch: '1', metadata: {}, report: () => {}, owns: () => true });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code: 'WAFLEET_CONFIG', option: 'takeoverOnConflict' });
    expect((thrown as Error).message).toMatch(/log the phone out/);
  });

  it('awaits an async createClient with the session metadata; its rejection is a failed start to retry, not a configuration error', async () => {
    const seen: unknown[] = [];
    const client = localClient('async', tempDir('wafleet-wwebjs-unit-'));
    const engine = await createWwebjsEngine(async ({ metadata }) => {
      seen.push(metadata);
      return client;
    })({ sessionId: 'async', epoch: '1', metadata: { workspace: 'w-1' }, report: () => {}, owns: () => true });
    expect(seen).toEqual([{ workspace: 'w-1' }]);
    await engine.stop();
    const failing = createWwebjsEngine(async () => {
      throw new Error('database unreachable');
    });
    const thrown = await failing({ sessionId: 'async-2', epoch: '1', metadata: {}, report: () => {}, owns: () => true }).catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(Error);
    expect((thrown as { code?: string }).code).toBeUndefined();
    expect((thrown as Error).message).toMatch(/database unreachable/);
  });

  it('reports a Client that cannot be built (a clientId whatsapp-web.js refuses) as a configuration error, so it is not retried', async () => {
    const factory = createWwebjsEngine(({ sessionId }) => new Client({ authStrategy: new LocalAuth({ clientId: `${sessionId}@c.us` }) }));
    let thrown: unknown;
    try {
      await factory({ sessionId: 'jid', epoch: '1', metadata: {}, report: () => {}, owns: () => true });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code: 'WAFLEET_CONFIG', option: 'createClient' });
    expect((thrown as Error).message).toMatch(/Invalid clientId/);
  });

  it('validates its options when created', () => {
    expect(() => createWwebjsEngine(() => ({}) as Client, { probeTimeoutMs: -1 })).toThrow(
      expect.objectContaining({ code: 'WAFLEET_CONFIG', option: 'probeTimeoutMs' }),
    );
    expect(() => createWwebjsEngine(() => ({}) as Client, { stopTimeoutMs: 1.5 })).toThrow(/stopTimeoutMs/);
  });
});

describe('createWwebjsEngine start', () => {
  it('reports a string thrown by initialize() as crashed and resolves', async () => {
    const { client, engine, events } = await bind();
    client.initialize = async () => {
      throw 'auth timeout';
    };
    await expect(engine.start()).resolves.toBeUndefined();
    expect(events).toEqual([{ type: 'crashed', reason: 'initialize: auth timeout' }]);
  });

  it('reports an Error thrown by initialize() with its message', async () => {
    const { client, engine, events } = await bind();
    client.initialize = async () => {
      throw new Error('Failed to launch the browser process!');
    };
    await engine.start();
    expect(events).toEqual([{ type: 'crashed', reason: 'initialize: Failed to launch the browser process!' }]);
  });

  it('calls initialize() once however often start() is called, and never after stop()', async () => {
    const { client, engine } = await bind();
    const initialize = vi.fn(async () => {});
    client.initialize = initialize;
    await Promise.all([engine.start(), engine.start()]);
    expect(initialize).toHaveBeenCalledTimes(1);

    const stopped = await bind();
    stopped.client.initialize = initialize;
    await stopped.engine.stop();
    await stopped.engine.start();
    expect(initialize).toHaveBeenCalledTimes(1);
  });
});

describe('createWwebjsEngine stop', () => {
  it('removes the listeners it added and reports nothing afterwards', async () => {
    const { client, engine, events, before } = await bind();
    const browser = fakeBrowser();
    const page = new EventEmitter();
    assignBrowser(client, browser, page);
    await engine.stop();
    for (const event of CLIENT_EVENTS) expect(client.listenerCount(event), event).toBe(before[event]);
    expect(browser.listenerCount('disconnected')).toBe(0);
    expect(page.listenerCount('close')).toBe(0);
    client.emit('qr', 'x');
    client.emit('disconnected', 'LOGOUT');
    expect(events).toEqual([{ type: 'pids', pids: [4242] }]);
  });

  it('calls destroy(), never logout(), and only once however often it is called', async () => {
    const { client, engine } = await bind();
    const destroy = vi.spyOn(client, 'destroy');
    const logout = vi.spyOn(client, 'logout');
    await Promise.all([engine.stop(), engine.stop()]);
    await engine.stop();
    expect(destroy).toHaveBeenCalledTimes(1);
    expect(logout).not.toHaveBeenCalled();
  });

  it('swallows the errors of destroying an already dead browser', async () => {
    const { client, engine } = await bind();
    client.destroy = async () => {
      throw new Error('Protocol error: Connection closed. Most likely the page has been closed.');
    };
    await expect(engine.stop()).resolves.toBeUndefined();
  });

  it('closes a browser that the launch hands over after stop() and reports nothing about it', async () => {
    const { client, engine, events } = await bind();
    await engine.stop();
    const browser = fakeBrowser();
    assignBrowser(client, browser);
    expect(browser.close).toHaveBeenCalledTimes(1);
    expect(browser.listenerCount('disconnected')).toBe(0);
    expect(events).toEqual([]);
  });

  it('does not wait longer than stopTimeoutMs for a hung destroy()', async () => {
    const { client, engine } = await bind({ stopTimeoutMs: 50 });
    client.destroy = () => new Promise(() => {});
    const started = Date.now();
    await engine.stop();
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('createWwebjsEngine probe', () => {
  it('is true only when getState() answers CONNECTED', async () => {
    const { client, engine } = await bind();
    const answers: unknown[] = ['CONNECTED', null, 'OPENING', 'TIMEOUT', 'UNPAIRED'];
    const results: boolean[] = [];
    for (const answer of answers) {
      client.getState = async () => answer as never;
      results.push(await engine.probe());
    }
    expect(results).toEqual([true, false, false, false, false]);
  });

  it('is false when getState() throws, as it does once the page is gone', async () => {
    const { client, engine } = await bind();
    client.getState = async () => {
      throw new Error('Protocol error (Runtime.callFunctionOn): Session closed. Most likely the page has been closed.');
    };
    await expect(engine.probe()).resolves.toBe(false);
  });

  it('is false before initialize() created a page (the real getState() throws then)', async () => {
    const { engine } = await bind();
    await expect(engine.probe()).resolves.toBe(false);
  });

  it('is false when getState() does not answer within probeTimeoutMs', async () => {
    const { client, engine } = await bind({ probeTimeoutMs: 50 });
    client.getState = () => new Promise(() => {});
    const started = Date.now();
    await expect(engine.probe()).resolves.toBe(false);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('is false after stop()', async () => {
    const { client, engine } = await bind();
    client.getState = async () => 'CONNECTED' as never;
    await engine.stop();
    await expect(engine.probe()).resolves.toBe(false);
  });
});
