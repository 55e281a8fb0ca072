import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Store } from 'whatsapp-web.js';
import { afterAll, describe, expect, it } from 'vitest';
import { Client, RemoteAuth, removeTempDirs, tempDir } from '../test/client-fixture.js';
import { createFencedStore, FencedWriteError } from './fenced-store.js';

afterAll(removeTempDirs);

type Call = [operation: string, session: string];

/** An in-memory RemoteAuth store that records what reaches it. */
function memoryStore(existing: string[] = []) {
  const sessions = new Set(existing);
  const calls: Call[] = [];
  const store: Store = {
    sessionExists: async ({ session }) => (calls.push(['sessionExists', session]), sessions.has(path.basename(session))),
    save: async ({ session }) => (calls.push(['save', session]), sessions.add(path.basename(session))),
    extract: async ({ session }) => calls.push(['extract', session]),
    delete: async ({ session }) => (calls.push(['delete', session]), sessions.delete(path.basename(session))),
  };
  return { store, sessions, calls };
}

function guard(owned: string[]) {
  const asked: string[] = [];
  return { asked, owns: (id: string) => (asked.push(id), owned.includes(id)) };
}

describe('createFencedStore', () => {
  it('refuses save and delete when this instance does not own the session, and never calls the inner store', async () => {
    const inner = memoryStore(['RemoteAuth-abc']);
    const store = createFencedStore(inner.store, guard([]));
    await expect(store.save({ session: 'RemoteAuth-abc' })).rejects.toMatchObject({
      code: 'WAFLEET_LEASE_LOST',
      operation: 'save',
      sessionId: 'abc',
    });
    await expect(store.delete({ session: 'RemoteAuth-abc' })).rejects.toBeInstanceOf(FencedWriteError);
    expect(inner.calls).toEqual([]);
    expect(inner.sessions.has('RemoteAuth-abc')).toBe(true);
  });

  it('lets save and delete through while the session is owned', async () => {
    const inner = memoryStore();
    const store = createFencedStore(inner.store, guard(['abc']));
    await store.save({ session: 'RemoteAuth-abc' });
    expect(inner.sessions.has('RemoteAuth-abc')).toBe(true);
    await store.delete({ session: 'RemoteAuth-abc' });
    expect(inner.calls).toEqual([
      ['save', 'RemoteAuth-abc'],
      ['delete', 'RemoteAuth-abc'],
    ]);
  });

  it('keys on the basename, so a full path handed to save finds the session', async () => {
    const inner = memoryStore();
    const owner = guard(['abc']);
    const store = createFencedStore(inner.store, owner);
    await store.save({ session: '/var/lib/wafleet/.wwebjs_auth/RemoteAuth-abc' });
    expect(owner.asked).toEqual(['abc']);
    // The inner store gets the argument unchanged: it still needs the path to find the zip.
    expect(inner.calls).toEqual([['save', '/var/lib/wafleet/.wwebjs_auth/RemoteAuth-abc']]);
  });

  it('passes sessionExists and extract through whoever owns the session', async () => {
    const inner = memoryStore(['RemoteAuth-abc']);
    const store = createFencedStore(inner.store, guard([]));
    await expect(store.sessionExists({ session: 'RemoteAuth-abc' })).resolves.toBe(true);
    await store.extract({ session: 'RemoteAuth-abc', path: '/tmp/RemoteAuth-abc.zip' });
    expect(inner.calls).toEqual([
      ['sessionExists', 'RemoteAuth-abc'],
      ['extract', 'RemoteAuth-abc'],
    ]);
  });

  it('maps RemoteAuth names to session ids with sessionIdOf', async () => {
    const inner = memoryStore();
    const owner = guard(['+55 11 99999-0000']);
    const store = createFencedStore(inner.store, owner, { sessionIdOf: () => '+55 11 99999-0000' });
    await store.save({ session: 'RemoteAuth-5511999990000' });
    expect(inner.calls).toHaveLength(1);
  });

  it('asks the guard at every write, so ownership lost between two backups stops the second', async () => {
    const inner = memoryStore();
    const owned = ['abc'];
    const store = createFencedStore(inner.store, { owns: (id) => owned.includes(id) });
    await store.save({ session: 'RemoteAuth-abc' });
    owned.length = 0;
    await expect(store.save({ session: 'RemoteAuth-abc' })).rejects.toMatchObject({ code: 'WAFLEET_LEASE_LOST' });
    expect(inner.calls).toHaveLength(1);
  });
});

describe('createFencedStore under the real RemoteAuth strategy', () => {
  /** RemoteAuth bound to a real Client, past beforeBrowserInitialized (which only reads the store). */
  async function remoteAuth(owned: string[], backedUp = false) {
    const inner = memoryStore();
    const dataPath = tempDir('wafleet-wwebjs-remote-');
    const strategy = new RemoteAuth({
      store: createFencedStore(inner.store, guard(owned)),
      clientId: 'abc',
      dataPath,
      backupSyncIntervalMs: 60_000,
    });
    new Client({ authStrategy: strategy });
    await strategy.beforeBrowserInitialized();
    // Something for the backup to contain, where Chromium keeps it.
    mkdirSync(path.join(dataPath, 'RemoteAuth-abc', 'Default', 'Local Storage'), { recursive: true });
    writeFileSync(path.join(dataPath, 'RemoteAuth-abc', 'Default', 'Local Storage', 'x'), 'x');
    inner.calls.length = 0;
    // Backed up only now: restoring needs a real zip, and restoring is not what these tests are about.
    if (backedUp) inner.sessions.add('RemoteAuth-abc');
    // Neither is in the typings; RemoteAuth calls them from its backup timer and from disconnect().
    const internals = strategy as unknown as { storeRemoteSession(): Promise<void>; disconnect(): Promise<void> };
    return { inner, internals };
  }

  it('stops a stale owner from deleting the shared backup when WhatsApp reports CONFLICT', async () => {
    const { inner, internals } = await remoteAuth([], true);
    await expect(internals.disconnect()).rejects.toMatchObject({ code: 'WAFLEET_LEASE_LOST' });
    expect(inner.sessions.has('RemoteAuth-abc')).toBe(true);
    expect(inner.calls).toEqual([['sessionExists', 'RemoteAuth-abc']]);
  });

  it("stops a stale owner's periodic backup from overwriting the new owner's", async () => {
    const { inner, internals } = await remoteAuth([]);
    await expect(internals.storeRemoteSession()).rejects.toMatchObject({ code: 'WAFLEET_LEASE_LOST' });
    expect(inner.calls).toEqual([]);
  });

  it("lets the owner's backup through, keyed on the basename of what RemoteAuth passes", async () => {
    const { inner, internals } = await remoteAuth(['abc']);
    await internals.storeRemoteSession();
    expect(inner.calls).toHaveLength(1);
    const [operation, session] = inner.calls[0]!;
    expect(operation).toBe('save');
    expect(path.basename(session)).toBe('RemoteAuth-abc');
  });
});
