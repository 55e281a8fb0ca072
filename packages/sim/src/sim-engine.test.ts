import { readFileSync, writeFileSync } from 'node:fs';
import type { EngineContext, EngineEvent } from '@wafleet/core';
import { describe, expect, it } from 'vitest';
import { loginFileContent, parseLoginFile } from './login-file.js';
import { createSimEngine, type SimEngine, type SimLoginEvent, type SimLoginOptions, type SimSessionData } from './sim-engine.js';

/** An in-memory SessionData: versions count up per session; `refuse` makes commits fail like a fenced writer's. */
class MemoryLogins implements SimSessionData {
  readonly committed = new Map<string, { version: number; bytes: Buffer }>();
  refuse = false;
  failRestore = false;

  async save(sessionId: string, file: string) {
    const bytes = readFileSync(file);
    if (this.refuse) throw Object.assign(new Error('fenced'), { code: 'WAFLEET_LEASE_LOST' });
    const version = (this.committed.get(sessionId)?.version ?? 0) + 1;
    this.committed.set(sessionId, { version, bytes });
    return { version };
  }

  async restore(sessionId: string, file: string) {
    if (this.failRestore) throw Object.assign(new Error('store unreachable'), { code: 'ECONNREFUSED' });
    const c = this.committed.get(sessionId);
    if (!c) return null;
    writeFileSync(file, c.bytes);
    return { version: c.version };
  }

  seed(sessionId: string): void {
    this.committed.set(sessionId, { version: 1, bytes: loginFileContent({ session: sessionId, writer: 'seeder', epoch: '1', n: 1 }, 256) });
  }
}

function setup(login: Partial<SimLoginOptions> = {}) {
  const store = new MemoryLogins();
  const logins: SimLoginEvent[] = [];
  const sim = createSimEngine({
    authDelayMs: 5,
    readyDelayMs: 5,
    login: { store, writer: 'wa-1', bytes: 256, saveAfterReadyMs: 10, onEvent: (e) => logins.push(e), ...login },
  });
  return { store, logins, sim };
}

async function launch(sim: SimEngine, sessionId: string, epoch = '7') {
  const events: EngineEvent[] = [];
  const ctx: EngineContext = { sessionId, epoch, metadata: {}, report: (e) => events.push(e) };
  const engine = await sim.factory(ctx);
  const started = engine.start();
  return { engine, events, started };
}

const until = async (cond: () => boolean, ms = 2000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('simulated login data', () => {
  it('restores the committed login, gets ready, and saves a newer version soon after ready', async () => {
    const { store, logins, sim } = setup();
    store.seed('s-1');
    const { engine, events, started } = await launch(sim, 's-1');
    await started;
    await until(() => logins.some((e) => e.ev === 'save'));
    expect(events.map((e) => e.type)).toEqual(['authenticated', 'ready']);
    expect(logins[0]).toMatchObject({ ev: 'restore', sessionId: 's-1', version: 1, writer: 'seeder', writerEpoch: '1' });
    expect(logins[1]).toMatchObject({ ev: 'save', sessionId: 's-1', epoch: '7', version: 2, reason: 'ready' });
    const saved = store.committed.get('s-1')!;
    expect(saved.bytes.length).toBe(256);
    expect(parseLoginFile(saved.bytes)).toEqual({ session: 's-1', writer: 'wa-1', epoch: '7', n: 1 });
    await engine.stop();
  });

  it('goes to SCAN_QR_CODE when no login is committed, and saves the scanned login', async () => {
    const { store, logins, sim } = setup();
    const { engine, events, started } = await launch(sim, 's-2');
    await started;
    await until(() => events.length > 0);
    expect(events[0]!.type).toBe('qr');
    expect(logins).toMatchObject([{ ev: 'restore', version: null }]);
    expect(sim.scan('s-2')).toBe(true);
    await until(() => store.committed.get('s-2')?.version === 1);
    expect(events.map((e) => e.type)).toEqual(['qr', 'authenticated', 'ready']);
    await engine.stop();
  });

  it('fails the launch when the restore fails, instead of asking for a QR code', async () => {
    const { store, logins, sim } = setup();
    store.seed('s-3');
    store.failRestore = true;
    const { events, started } = await launch(sim, 's-3');
    await expect(started).rejects.toThrow('store unreachable');
    expect(events).toEqual([]);
    expect(logins).toMatchObject([{ ev: 'restore-failed', code: 'ECONNREFUSED' }]);
  });

  it('refuses a restored file that names another session', async () => {
    const { store, sim } = setup();
    store.seed('other');
    store.committed.set('s-4', store.committed.get('other')!);
    const { started } = await launch(sim, 's-4');
    await expect(started).rejects.toThrow('belongs to session other');
  });

  it('saves periodically while ready, and not after a stop', async () => {
    const { store, logins, sim } = setup({ saveIntervalMs: 20 });
    store.seed('s-5');
    const { engine, started } = await launch(sim, 's-5');
    await started;
    await until(() => (store.committed.get('s-5')?.version ?? 0) >= 4);
    await engine.stop();
    const after = store.committed.get('s-5')!.version;
    await new Promise((r) => setTimeout(r, 80));
    expect(store.committed.get('s-5')!.version).toBe(after);
    expect(logins.filter((e) => e.ev === 'save').map((e) => (e as { reason: string }).reason)).toContain('interval');
  });

  it('reports a save the store refuses at commit, and keeps the committed version', async () => {
    const { store, logins, sim } = setup();
    store.seed('s-6');
    store.refuse = true;
    const { engine, started } = await launch(sim, 's-6');
    await started;
    await until(() => logins.some((e) => e.ev === 'save-refused'));
    expect(logins[1]).toMatchObject({ ev: 'save-refused', code: 'WAFLEET_LEASE_LOST', reason: 'ready' });
    expect(store.committed.get('s-6')!.version).toBe(1);
    await engine.stop();
  });

  it('saves before a stop after which the session goes on (handoff, shutdown, restart), not a release, never before ready', async () => {
    const versions: Record<string, number | undefined> = {};
    for (const reason of ['release', 'fenced', 'handoff', 'shutdown', 'restart'] as const) {
      const { store, sim } = setup({ saveAfterReadyMs: 60_000 });
      store.seed(`s-${reason}`);
      const { engine, started } = await launch(sim, `s-${reason}`);
      await started;
      await until(() => sim.running().has(`s-${reason}`));
      await new Promise((r) => setTimeout(r, 30));
      await engine.stop(reason);
      versions[reason] = store.committed.get(`s-${reason}`)?.version;
    }
    expect(versions).toEqual({ release: 1, fenced: 1, handoff: 2, shutdown: 2, restart: 2 });
    // An engine that is not ready yet has no login to save.
    const slow = setup({ saveAfterReadyMs: 60_000 });
    slow.store.seed('s-8');
    const l = await launch(slow.sim, 's-8');
    await slow.sim.saveLogin('s-8');
    expect(slow.store.committed.get('s-8')!.version).toBe(1);
    await l.started;
    await l.engine.stop();
  });

  it('a fenced stop while a handoff stop saves the login kills the browser at once, and both stops settle', async () => {
    const store = new MemoryLogins();
    store.seed('s-9');
    let release!: () => void;
    const hung = new Promise<void>((r) => (release = r));
    // The handoff save hangs (a store that stopped answering) until released.
    const save = store.save.bind(store);
    store.save = async (sessionId, file) => {
      if (store.committed.get(sessionId)!.version >= 2) await hung;
      return save(sessionId, file);
    };
    const sim = createSimEngine({
      authDelayMs: 5,
      readyDelayMs: 5,
      browserProcesses: true,
      login: { store, writer: 'wa-1', bytes: 256, saveAfterReadyMs: 10, handoffSaveTimeoutMs: 60_000 },
    });
    const { engine, started } = await launch(sim, 's-9');
    await started;
    await until(() => store.committed.get('s-9')!.version === 2);
    const pid = sim.browserPid('s-9')!;
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(alive()).toBe(true);
    let handoffDone = false;
    const handoff = engine.stop('handoff').then(() => (handoffDone = true));
    await new Promise((r) => setTimeout(r, 100));
    // The save hangs, so the handoff stop has not killed the browser yet.
    expect(alive()).toBe(true);
    expect(handoffDone).toBe(false);
    await engine.stop('fenced');
    expect(alive()).toBe(false);
    await handoff;
    expect(sim.running().has('s-9')).toBe(false);
    release();
  });

  it('refuses a login option without a store', () => {
    expect(() => createSimEngine({ login: { writer: 'x' } as unknown as SimLoginOptions })).toThrow(/login\.store/);
    expect(() => createSimEngine({ login: { store: new MemoryLogins(), writer: 'x', bytes: 1 } })).toThrow(/login\.bytes/);
  });
});
