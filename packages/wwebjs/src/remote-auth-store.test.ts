import { copyFileSync, readdirSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LeaseLostError, WafleetError } from '@wafleet/core';
import { afterAll, describe, expect, it } from 'vitest';
import { Client, RemoteAuth, removeTempDirs, tempDir } from '../test/client-fixture.js';
import { createWwebjsEngine } from './engine.js';
import { createRemoteAuthStore, type SessionDataLike } from './remote-auth-store.js';

afterAll(removeTempDirs);

/** SessionData in memory: versions are file copies; `owner` decides commits and `stopped` decides drops. */
function memorySessionData() {
  const dir = tempDir('wafleet-wwebjs-memdata-');
  const versions = new Map<string, { version: number; size: number; file: string }>();
  const state = { owner: true, stopped: false, saves: [] as string[] };
  const sessionData: SessionDataLike = {
    async save(sessionId, file) {
      state.saves.push(file);
      if (!state.owner) throw new LeaseLostError('lost', sessionId);
      const version = (versions.get(sessionId)?.version ?? 0) + 1;
      const copy = path.join(dir, `${sessionId}.${version}`);
      copyFileSync(file, copy);
      const committed = { version, size: readFileSync(copy).length, file: copy };
      versions.set(sessionId, committed);
      return committed;
    },
    async restore(sessionId, file) {
      const current = versions.get(sessionId);
      if (current) copyFileSync(current.file, file);
      return current ?? null;
    },
    async current(sessionId) {
      return versions.get(sessionId) ?? null;
    },
    async drop(sessionId) {
      if (!state.stopped) throw new WafleetError('WAFLEET_OWNED_ELSEWHERE', `session ${sessionId} should run`);
      versions.delete(sessionId);
    },
  };
  return { sessionData, versions, state };
}

/**
 * The real RemoteAuth strategy of a real Client, past beforeBrowserInitialized (which restores, if anything), with
 * the Client bound to an engine when `engine` is set.
 */
async function remoteAuth(sessionData: SessionDataLike, { clientId = 'abc', engine = false } = {}) {
  const dataPath = tempDir('wafleet-wwebjs-remote-');
  const store = createRemoteAuthStore({ sessionData, dataPath });
  const strategy = new RemoteAuth({ store, clientId, dataPath, backupSyncIntervalMs: 60_000 });
  const client = new Client({ authStrategy: strategy });
  if (engine) await createWwebjsEngine(() => client)({ sessionId: clientId, epoch: '1', metadata: {}, report: () => {}, owns: () => true });
  await strategy.beforeBrowserInitialized();
  const profile = path.join(dataPath, `RemoteAuth-${clientId}`);
  // Neither is in the typings; RemoteAuth calls them from its backup timer and from disconnect() on refused states.
  const internals = strategy as unknown as { storeRemoteSession(): Promise<void>; disconnect(): Promise<void> };
  return { store, dataPath, profile, internals };
}

function writeLogin(profile: string, content: string): void {
  const dir = path.join(profile, 'Default', 'Local Storage');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'login'), content);
}

const loginIn = (profile: string) => readFileSync(path.join(profile, 'Default', 'Local Storage', 'login'), 'utf8');

describe('createRemoteAuthStore under the real RemoteAuth strategy', () => {
  it("commits the owner's backup and restores it into the next Client's profile before its browser would start", async () => {
    const data = memorySessionData();
    const a = await remoteAuth(data.sessionData);
    writeLogin(a.profile, 'login of A');
    await a.internals.storeRemoteSession();
    expect(data.versions.get('abc')?.version).toBe(1);
    // 1.34.7 hands save the bare name; the zip was found under dataPath.
    expect(data.state.saves).toEqual([path.join(a.dataPath, 'RemoteAuth-abc.zip')]);

    const b = await remoteAuth(data.sessionData, { engine: true });
    expect(loginIn(b.profile)).toBe('login of A');
    expect(existsSync(path.join(b.dataPath, 'RemoteAuth-abc.zip'))).toBe(false);
  });

  it('bound to the engine, the restore has written the whole profile when RemoteAuth moves on to launch Chromium', async () => {
    const data = memorySessionData();
    const a = await remoteAuth(data.sessionData);
    for (let i = 0; i < 50; i++) writeLogin(path.join(a.profile, `p${i}`, '..'), `login ${i}`);
    const dir = path.join(a.profile, 'Default', 'IndexedDB');
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < 200; i++) writeFileSync(path.join(dir, `f${i}`), `file ${i}`.repeat(2000));
    await a.internals.storeRemoteSession();
    const b = await remoteAuth(data.sessionData, { engine: true });
    // RemoteAuth alone resolves before its last files are written and skips files of its own zips (88 of 204 here).
    expect(readdirSync(b.profile, { recursive: true })).toHaveLength(readdirSync(a.profile, { recursive: true }).length);
    expect(loginIn(b.profile)).toBe('login 49');
    expect(readFileSync(path.join(b.profile, 'Default', 'IndexedDB', 'f199'), 'utf8')).toBe('file 199'.repeat(2000));
  });

  it('finds the zip of 1.34.6, which hands save the absolute session path', async () => {
    const data = memorySessionData();
    const dataPath = tempDir('wafleet-wwebjs-remote-');
    writeFileSync(path.join(dataPath, 'RemoteAuth-abc.zip'), 'zip');
    const store = createRemoteAuthStore({ sessionData: data.sessionData, dataPath: '/elsewhere' });
    await store.save({ session: path.join(dataPath, 'RemoteAuth-abc') });
    expect(data.state.saves).toEqual([path.join(dataPath, 'RemoteAuth-abc.zip')]);
    expect(data.versions.get('abc')?.version).toBe(1);
  });

  it("resolves a refused save (RemoteAuth's timer does not catch) and leaves the newer owner's version", async () => {
    const data = memorySessionData();
    const a = await remoteAuth(data.sessionData);
    writeLogin(a.profile, 'newer');
    await a.internals.storeRemoteSession();
    data.state.owner = false;
    writeLogin(a.profile, 'stale');
    await expect(a.internals.storeRemoteSession()).resolves.toBeUndefined();
    expect(data.versions.get('abc')?.version).toBe(1);
    const b = await remoteAuth(data.sessionData, { engine: true });
    expect(loginIn(b.profile)).toBe('newer');
  });

  it('rejects a save that failed for another reason than fencing, so the caller sees it', async () => {
    const data = memorySessionData();
    data.sessionData.save = async () => {
      throw new Error('disk full');
    };
    const store = createRemoteAuthStore({ sessionData: data.sessionData, dataPath: tempDir('wafleet-wwebjs-remote-') });
    await expect(store.save({ session: 'RemoteAuth-abc' })).rejects.toThrow('disk full');
  });

  it('keeps the only backup when WhatsApp reports CONFLICT or UNPAIRED on a session that should run', async () => {
    const data = memorySessionData();
    const a = await remoteAuth(data.sessionData);
    writeLogin(a.profile, 'login');
    await a.internals.storeRemoteSession();
    // What the Client runs on every refused state before it emits `disconnected`.
    await expect(a.internals.disconnect()).resolves.toBeUndefined();
    expect(data.versions.get('abc')?.version).toBe(1);
  });

  it('removes the data once the session is stopped (desired stopped, e.g. a logout)', async () => {
    const data = memorySessionData();
    const a = await remoteAuth(data.sessionData);
    writeLogin(a.profile, 'login');
    await a.internals.storeRemoteSession();
    data.state.stopped = true;
    await a.internals.disconnect();
    expect(data.versions.has('abc')).toBe(false);
  });

  it('never rejects out of delete, also when the storage is unreachable', async () => {
    const data = memorySessionData();
    data.sessionData.drop = async () => {
      throw new Error('connection lost');
    };
    const store = createRemoteAuthStore({ sessionData: data.sessionData, dataPath: tempDir('wafleet-wwebjs-remote-') });
    await expect(store.delete({ session: 'RemoteAuth-abc' })).resolves.toBeUndefined();
  });

  it('maps RemoteAuth names to session ids with sessionIdOf, and validates its options', async () => {
    const data = memorySessionData();
    const dataPath = tempDir('wafleet-wwebjs-remote-');
    writeFileSync(path.join(dataPath, 'RemoteAuth-5511.zip'), 'zip');
    const store = createRemoteAuthStore({ sessionData: data.sessionData, dataPath, sessionIdOf: () => '+55 11' });
    await store.save({ session: 'RemoteAuth-5511' });
    expect([...data.versions.keys()]).toEqual(['+55 11']);
    await expect(store.sessionExists({ session: 'RemoteAuth-5511' })).resolves.toBe(true);
    expect(() => createRemoteAuthStore({ sessionData: {} as SessionDataLike, dataPath })).toThrow(
      expect.objectContaining({ code: 'WAFLEET_CONFIG', option: 'sessionData' }),
    );
    expect(() => createRemoteAuthStore({ sessionData: data.sessionData, dataPath: '' })).toThrow(/dataPath/);
  });
});
