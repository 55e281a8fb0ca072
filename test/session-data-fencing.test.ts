// Session data follows the session (G9), with real processes: an owner paused past its lease while uploading a
// large archive is refused at commit and the adopter's newer version stays; a kill -9 mid-upload leaves the previous
// version restorable. The same pause against today's check-then-act createFencedStore lets the stale save win.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFleet, createSessionData, directoryBlobBackend, redisBlobBackend, type BlobBackend, type Fleet } from '@wafleet/core';
import { spawnProcess, uniqueNamespace, waitUntil, type ChildHandle } from '@wafleet/test-utils';
import { createFencedStore } from '@wafleet/wwebjs';
import { afterEach, describe, expect, it } from 'vitest';
import { TEST_TIMING, useTestRedis } from './helpers/fleet-harness.js';

const redis = useTestRedis();
const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'session-data-writer.mjs');
const LARGE = 16 * 1024 * 1024;
const SID = 's1';

type Store = 'redis' | 'directory' | 'fenced-store';

const fleets: Fleet[] = [];
afterEach(async () => {
  await Promise.all(fleets.splice(0).map((f) => f.close()));
});

/** Random bytes at `<dir>/<name>/RemoteAuth-<SID>.zip`, where RemoteAuth puts the archive it saves. */
function archive(dir: string, name: string, size: number): { file: string; bytes: Buffer } {
  const bytes = randomBytes(size);
  mkdirSync(join(dir, name));
  const file = join(dir, name, `RemoteAuth-${SID}.zip`);
  writeFileSync(file, bytes);
  return { file, bytes };
}

async function startWriter(store: Store, namespace: string, dir: string): Promise<ChildHandle> {
  const config = { redis: redis.url, namespace, instanceId: 'a', timing: TEST_TIMING, store, dir, slowMs: 50 };
  const child = spawnProcess(process.execPath, [fixture, JSON.stringify(config)], { name: `writer-${store}` });
  await child.waitFor((m) => m.ev === 'ready');
  child.send({ cmd: 'claim', sessionId: SID });
  await child.waitFor((m) => m.ev === 'claimed');
  return child;
}

async function startAdopter(namespace: string): Promise<Fleet> {
  const b = createFleet({ redis: redis.url, namespace, instanceId: 'b', url: 'http://b.invalid:3000', maxSessions: 5, ...TEST_TIMING });
  fleets.push(b);
  await b.start();
  return b;
}

function backendFor(store: 'redis' | 'directory', namespace: string, dir: string): BlobBackend {
  return store === 'redis' ? redisBlobBackend({ redis: redis.client, namespace }) : directoryBlobBackend({ dir: join(dir, 'blobs') });
}

/** The upload ids whose bytes are stored for SID. */
async function storedUploads(store: 'redis' | 'directory', namespace: string, dir: string): Promise<string[]> {
  if (store === 'directory') return existsSync(join(dir, 'blobs', SID)) ? readdirSync(join(dir, 'blobs', SID)).sort() : [];
  const keys = await redis.client.keys(`wafleet:${namespace}:blob:${SID}:*`);
  return [...new Set(keys.map((k) => k.split(':')[4]!))].sort();
}

async function save(writer: ChildHandle, file: string): Promise<Record<string, unknown>> {
  const before = writer.messages.length;
  writer.send({ cmd: 'save', sessionId: SID, file });
  return writer.waitFor((m) => writer.messages.indexOf(m) >= before && (m.ev === 'saved' || m.ev === 'refused'), 30_000);
}

/**
 * Instance A saves a large archive through a slow store and is SIGSTOPped while uploading, past its lease; B adopts
 * the session and saves a newer version; A is continued and finishes its save. Returns what A reported and B's view.
 */
async function pausedWriter(store: Store) {
  const namespace = uniqueNamespace(`data-pause-${store}`);
  const dir = mkdtempSync(join(tmpdir(), 'wafleet-pause-'));
  const a = await startWriter(store, namespace, dir);
  const first = archive(dir, 'a-first', 4096);
  expect(await save(a, first.file)).toMatchObject({ ev: 'saved' });
  const b = await startAdopter(namespace);

  const stale = archive(dir, 'a-stale', LARGE);
  const before = a.messages.length;
  a.send({ cmd: 'save', sessionId: SID, file: stale.file });
  await a.waitFor((m) => a.messages.indexOf(m) >= before && m.ev === 'uploading');
  await a.kill('SIGSTOP');
  await waitUntil(() => b.owns(SID), { timeoutMs: 15_000, message: 'b did not adopt the session of the paused owner' });

  const newer = archive(dir, 'b-newer', 8192);
  let committed: Awaited<ReturnType<ReturnType<typeof createSessionData>['save']>> | undefined;
  if (store === 'fenced-store') {
    await createFencedStore(plainFileStore(dir), b).save({ session: newer.file.replace(/\.zip$/, '') });
  } else {
    committed = await createSessionData({ fleet: b, backend: backendFor(store, namespace, dir) }).save(SID, newer.file);
  }
  await a.kill('SIGCONT');
  const result = await a.waitFor((m) => a.messages.indexOf(m) > before && (m.ev === 'saved' || m.ev === 'refused'), 30_000);
  return { namespace, dir, a, b, result, stale, newer, committed };
}

/** The store a user brings today: a plain copy into a shared folder. */
function plainFileStore(dir: string) {
  return {
    sessionExists: async () => true,
    extract: async ({ path }: { path: string }) => copyFile(join(dir, 'stored.zip'), path),
    save: async ({ session }: { session: string }) => copyFile(`${session}.zip`, join(dir, 'stored.zip')),
    delete: async () => undefined,
  };
}

describe('an owner paused past its lease while uploading (acceptance 2)', () => {
  it.each(['redis', 'directory'] as const)(
    '%s: its commit is refused, the adopter’s newer version stays current and restores',
    async (store) => {
      const { namespace, dir, b, result, newer, committed } = await pausedWriter(store);
      expect(result).toMatchObject({ ev: 'refused', code: expect.stringMatching(/^WAFLEET_(LEASE_LOST|NOT_OWNER)$/) });
      const data = createSessionData({ fleet: b, backend: backendFor(store, namespace, dir) });
      const current = await data.current(SID);
      expect(current).toEqual(committed);
      expect(current).toMatchObject({ writer: 'b', version: 2, size: newer.bytes.length });
      const out = join(dir, 'restored.zip');
      expect(await data.restore(SID, out)).toEqual(committed);
      expect(readFileSync(out).equals(newer.bytes)).toBe(true);
      // The refused upload and the replaced version are gone; only B's version is stored.
      expect(await storedUploads(store, namespace, dir)).toEqual([committed!.uploadId]);
    },
    60_000,
  );

  it('today’s createFencedStore (check-then-act) lets the stale save overwrite the adopter’s newer backup', async () => {
    const { dir, result, stale, newer } = await pausedWriter('fenced-store');
    // A checked fleet.owns() before its pause, so nothing stopped the late write.
    expect(result).toMatchObject({ ev: 'saved' });
    const stored = readFileSync(join(dir, 'stored.zip'));
    expect(stored.equals(stale.bytes)).toBe(true);
    expect(stored.equals(newer.bytes)).toBe(false);
  }, 60_000);
});

describe('kill -9 mid-upload', () => {
  it.each(['redis', 'directory'] as const)(
    '%s: the previous version stays restorable, versions only go up, and the partial upload becomes garbage',
    async (store) => {
      const namespace = uniqueNamespace(`data-kill-${store}`);
      const dir = mkdtempSync(join(tmpdir(), 'wafleet-kill-'));
      const a = await startWriter(store, namespace, dir);
      const first = archive(dir, 'a-first', 64 * 1024);
      const saved = await save(a, first.file);
      expect(saved).toMatchObject({ ev: 'saved', version: 1 });
      const b = await startAdopter(namespace);
      const before = a.messages.length;
      a.send({ cmd: 'save', sessionId: SID, file: archive(dir, 'a-large', LARGE).file });
      await a.waitFor((m) => a.messages.indexOf(m) >= before && m.ev === 'uploading');
      await a.kill('SIGKILL');

      await waitUntil(() => b.owns(SID), { timeoutMs: 15_000, message: 'b did not adopt the session of the killed owner' });
      const data = createSessionData({ fleet: b, backend: backendFor(store, namespace, dir), uploadTimeoutMs: 1000 });
      const out = join(dir, 'restored.zip');
      expect(await data.restore(SID, out)).toMatchObject({ version: 1, writer: 'a', uploadId: saved.uploadId });
      expect(readFileSync(out).equals(first.bytes)).toBe(true);
      // The killed upload left bytes (or at least its pending record) behind.
      expect((await storedUploads(store, namespace, dir)).length).toBeGreaterThanOrEqual(1);

      const next = await data.save(SID, archive(dir, 'b-next', 1024).file);
      expect(next.version).toBe(2);
      expect(await storedUploads(store, namespace, dir)).toEqual([next.uploadId]);
    },
    60_000,
  );
});
