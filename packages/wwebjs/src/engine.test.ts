import { EventEmitter } from 'node:events';
import { lstatSync, mkdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import type { EngineContext, EngineEvent, SessionEngine } from '@wafleet/core';
import { sleep } from '@wafleet/test-utils';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Client, LocalAuth, localClient, RemoteAuth, removeTempDirs, tempDir } from '../test/client-fixture.js';
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

  it('reports the main frame detaching as crashed (frame detached); a child frame detaching is nothing', async () => {
    const { client, events } = await bind();
    const main = {};
    const page = Object.assign(new EventEmitter(), { mainFrame: () => main });
    assignBrowser(client, fakeBrowser(3333), page);
    page.emit('framedetached', {});
    expect(events).toEqual([{ type: 'pids', pids: [3333] }]);
    page.emit('framedetached', main);
    await sleep(250);
    expect(events.at(-1)).toEqual({ type: 'crashed', reason: 'frame detached' });
  });

  it('a main frame detached by a closing page or a dying browser ends the run with that cause', async () => {
    const { client, events } = await bind();
    const main = {};
    const page = Object.assign(new EventEmitter(), { mainFrame: () => main });
    const browser = fakeBrowser(4444);
    assignBrowser(client, browser, page);
    page.emit('framedetached', main);
    browser.emit('disconnected');
    await sleep(250);
    expect(events).toEqual([
      { type: 'pids', pids: [4444] },
      { type: 'crashed', reason: 'browser disconnected' },
    ]);
  });

  it('reports each incoming message with its WhatsApp id, chat and time in ms', async () => {
    const { client, events } = await bind();
    client.emit('message', fakeMessage('true_123@c.us_AAA', '123@c.us', 1_700_000_000, 'hi'));
    expect(events).toEqual([
      {
        type: 'message',
        message: {
          id: 'true_123@c.us_AAA',
          chatId: '123@c.us',
          timestamp: 1_700_000_000_000,
          data: { from: '123@c.us', to: 'me@c.us', author: null, body: 'hi', type: 'chat', hasMedia: false },
        },
      },
    ]);
  });
});

describe('createWwebjsEngine sends', () => {
  it('sends through sendMessage, answers with the id, and reports message_ack as ack events', async () => {
    const { client, engine, events } = await bind();
    const sent: Array<[string, string]> = [];
    Object.assign(client, {
      sendMessage: async (chatId: string, text: string) => (sent.push([chatId, text]), fakeMessage('true_me_1', 'me@c.us', 1, text, true)),
    });
    await expect(engine.send!('123@c.us', 'hello')).resolves.toEqual({ id: 'true_me_1' });
    expect(sent).toEqual([['123@c.us', 'hello']]);
    client.emit('message_ack', fakeMessage('true_me_1', 'me@c.us', 1, 'hello', true), 1);
    expect(events).toEqual([{ type: 'ack', messageId: 'true_me_1', ack: 1 }]);
  });
});

function fakeMessage(id: string, from: string, timestamp: number, body: string, fromMe = false) {
  return { id: { _serialized: id }, from, to: 'me@c.us', fromMe, timestamp, body, type: 'chat', hasMedia: false };
}

describe('createWwebjsEngine catch-up', () => {
  it('reads the chats with activity since the cursors, at or after each cursor, without own messages, up to the total', async () => {
    const { client, engine } = await bind();
    const history: Record<string, ReturnType<typeof fakeMessage>[]> = {
      'a@c.us': [
        fakeMessage('a1', 'a@c.us', 100, 'old'),
        fakeMessage('a2', 'a@c.us', 200, 'at cursor'),
        fakeMessage('a3', 'a@c.us', 300, 'new'),
        fakeMessage('a4', 'a@c.us', 310, 'mine', true),
      ],
      'b@c.us': [fakeMessage('b1', 'b@c.us', 140, 'before since'), fakeMessage('b2', 'b@c.us', 160, 'after since')],
      'c@c.us': [fakeMessage('c1', 'c@c.us', 50, 'quiet chat')],
    };
    const limits: number[] = [];
    const chats = Object.entries(history).map(([id, messages]) => ({
      id: { _serialized: id },
      timestamp: messages.at(-1)!.timestamp,
      fetchMessages: async ({ limit }: { limit: number }) => (limits.push(limit), messages.slice(-limit)),
    }));
    Object.assign(client, { getChats: async () => chats });
    const request = { cursors: new Map([['a@c.us', { id: 'a2', timestamp: 200_000 }]]), since: 150_000, perChat: 10, total: 100 };
    const found = await engine.catchUp!(request);
    expect(found.map((m) => m.id).sort()).toEqual(['a2', 'a3', 'b2']);
    // The quiet chat (newest message before `since`) is never read.
    expect(limits).toEqual([10, 10]);
    const few = await engine.catchUp!({ ...request, total: 1 });
    expect(few.map((m) => m.id)).toEqual(['a2', 'a3']);
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
    const thrown = await failing({ sessionId: 'async-2', epoch: '1', metadata: {}, report: () => {}, owns: () => true }).catch(
      (e: unknown) => e,
    );
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

describe('createWwebjsEngine with RemoteAuth: backups', () => {
  /** A real Client with RemoteAuth over a store that records saves; `owned` is what context.owns() answers. */
  async function bindRemote(options: WwebjsEngineOptions = {}, owned = { value: true }) {
    const sessionId = `r${++counter}`;
    const saves: string[] = [];
    const store = {
      sessionExists: async () => false,
      save: async ({ session }: { session: string }) => void saves.push(session),
      extract: async () => {},
      delete: async () => {},
    };
    const dataPath = tempDir('wafleet-wwebjs-unit-');
    const strategy = new RemoteAuth({ store, clientId: sessionId, dataPath, backupSyncIntervalMs: 60_000 });
    const client = new Client({ authStrategy: strategy });
    await strategy.beforeBrowserInitialized();
    mkdirSync(path.join(dataPath, `RemoteAuth-${sessionId}`, 'Default'), { recursive: true });
    const events: EngineEvent[] = [];
    const context: EngineContext = { sessionId, epoch: '7', metadata: {}, report: (e) => events.push(e), owns: () => owned.value };
    const engine = await createWwebjsEngine(() => client, options)(context);
    const internals = strategy as unknown as { storeRemoteSession(options?: object): Promise<void> };
    return { client, engine, events, saves, internals };
  }

  it('takes the first backup firstBackupMs after ready, once, not after RemoteAuth’s 60 s', async () => {
    const { client, saves } = await bindRemote({ firstBackupMs: 100 });
    client.emit('ready');
    await sleep(50);
    expect(saves).toEqual([]);
    await sleep(300);
    expect(saves).toHaveLength(1);
    client.emit('ready'); // ready can fire again: RemoteAuth's own interval keeps the backups coming
    await sleep(300);
    expect(saves).toHaveLength(1);
  });

  it('takes no first backup when the session is no longer owned, nor after stop()', async () => {
    const owned = { value: true };
    const fenced = await bindRemote({ firstBackupMs: 50 }, owned);
    fenced.client.emit('ready');
    owned.value = false;
    const stopped = await bindRemote({ firstBackupMs: 50 });
    stopped.client.emit('ready');
    await stopped.engine.stop();
    const before = stopped.saves.length;
    await sleep(200);
    expect(fenced.saves).toEqual([]);
    expect(stopped.saves).toHaveLength(before);
  });

  it('backs up before the browser closes when a ready session it still owns is stopped (handoff, drain)', async () => {
    const { client, engine, saves } = await bindRemote({ firstBackupMs: 60_000 });
    const order: string[] = [];
    client.destroy = async () => void order.push(`destroy after ${saves.length} saves`);
    client.emit('ready');
    await engine.stop();
    expect(order).toEqual(['destroy after 1 saves']);
  });

  it('backs up on the stop reasons after which the session goes on (handoff, shutdown, restart), not release or fenced', async () => {
    const saved: Record<string, number> = {};
    for (const reason of ['handoff', 'shutdown', 'restart', 'release', 'fenced', 'ended'] as const) {
      const { client, engine, saves } = await bindRemote({ firstBackupMs: 60_000 });
      client.emit('ready');
      await engine.stop(reason);
      saved[reason] = saves.length;
    }
    expect(saved).toEqual({ handoff: 1, shutdown: 1, restart: 1, release: 0, fenced: 0, ended: 0 });
  });

  it('a fenced stop cuts short the backup of a handoff stop and closes the browser at once', async () => {
    const { client, engine, internals } = await bindRemote({ firstBackupMs: 60_000, stopBackupTimeoutMs: 60_000 });
    const strategy = internals as unknown as { store: { save(args: { session: string }): Promise<void> } };
    // A store that stopped answering: the handoff backup never finishes.
    strategy.store.save = () => new Promise<void>(() => {});
    const order: string[] = [];
    client.destroy = async () => void order.push('destroy');
    client.emit('ready');
    const handoff = engine.stop('handoff').then(() => order.push('handoff stop settled'));
    await sleep(100);
    expect(order).toEqual([]);
    await engine.stop('fenced');
    await handoff;
    expect(order).toEqual(['destroy', 'handoff stop settled']);
  });

  it('takes no backup on stop once fenced, after a conflict, or before ready', async () => {
    const owned = { value: true };
    const fenced = await bindRemote({ firstBackupMs: 60_000 }, owned);
    fenced.client.emit('ready');
    owned.value = false;
    await fenced.engine.stop();
    const conflict = await bindRemote({ firstBackupMs: 60_000 });
    conflict.client.emit('ready');
    conflict.client.emit('change_state', 'CONFLICT');
    await conflict.engine.stop();
    const early = await bindRemote();
    await early.engine.stop();
    expect([fenced.saves, conflict.saves, early.saves]).toEqual([[], [], []]);
  });

  it("never lets a failed backup reject (RemoteAuth's timer does not catch), and runs backups one at a time", async () => {
    const { internals, saves } = await bindRemote();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      let running = 0;
      let overlapped = false;
      const strategy = internals as unknown as { store: { save(args: { session: string }): Promise<void> } };
      strategy.store.save = async ({ session }) => {
        overlapped ||= ++running > 1;
        await sleep(30);
        running--;
        saves.push(session);
        throw Object.assign(new Error('refused'), { code: 'WAFLEET_LEASE_LOST' });
      };
      // What RemoteAuth's setInterval does: call it and await nothing.
      void internals.storeRemoteSession();
      await expect(internals.storeRemoteSession()).resolves.toBeUndefined();
      await sleep(50);
      expect(saves).toHaveLength(2);
      expect(overlapped).toBe(false);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('createWwebjsEngine with LocalAuth on a shared folder', () => {
  const LOCKS = ['SingletonLock', 'SingletonSocket', 'SingletonCookie'];

  /** A profile left by a Chromium that died on another host: the lock names that host and its pid. */
  function lockedProfile(dataPath: string, clientId: string): string {
    const profile = path.join(dataPath, `session-${clientId}`);
    mkdirSync(profile, { recursive: true });
    symlinkSync('other-host-4242', path.join(profile, 'SingletonLock'));
    symlinkSync('/tmp/gone/SingletonSocket', path.join(profile, 'SingletonSocket'));
    symlinkSync('1234567890', path.join(profile, 'SingletonCookie'));
    return profile;
  }

  const present = (profile: string) => LOCKS.filter((name) => lstatSync(path.join(profile, name), { throwIfNoEntry: false }));

  it("clears a dead owner's profile locks before launching, while this instance owns the session", async () => {
    const dataPath = tempDir('wafleet-wwebjs-shared-');
    const profile = lockedProfile(dataPath, 'shared-1');
    const client = localClient('shared-1', dataPath);
    let locksAtLaunch: string[] | undefined;
    client.initialize = async () => void (locksAtLaunch = present(profile));
    const context: EngineContext = { sessionId: 'shared-1', epoch: '3', metadata: {}, report: () => {}, owns: () => true };
    const engine = await createWwebjsEngine(() => client)(context);
    await engine.start();
    expect(locksAtLaunch).toEqual([]);
  });

  it('neither clears the locks nor launches when this instance does not own the session', async () => {
    const dataPath = tempDir('wafleet-wwebjs-shared-');
    const profile = lockedProfile(dataPath, 'shared-2');
    const client = localClient('shared-2', dataPath);
    const initialize = vi.fn(async () => {});
    client.initialize = initialize;
    const events: EngineEvent[] = [];
    const context: EngineContext = { sessionId: 'shared-2', epoch: '3', metadata: {}, report: (e) => events.push(e), owns: () => false };
    const engine = await createWwebjsEngine(() => client)(context);
    await engine.start();
    expect(initialize).not.toHaveBeenCalled();
    expect(present(profile)).toEqual(LOCKS);
    expect(events).toEqual([{ type: 'crashed', reason: 'initialize: not the owner of session shared-2: its profile is not opened' }]);
  });
});
