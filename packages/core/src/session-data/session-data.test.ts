import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registryKeys } from '@wafleet/protocol';
import { redisForTests, sleep, uniqueNamespace, type TestRedis } from '@wafleet/test-utils';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet, type Fleet } from '../registry/fleet.js';
import { directoryBlobBackend } from './directory-blob-backend.js';
import { redisBlobBackend } from './redis-blob-backend.js';
import { createSessionData } from './session-data.js';
import type { BlobBackend, SessionDataFleet } from './types.js';

let redis: TestRedis;
let client: Redis;
let tmp: string;
const open: Fleet[] = [];

const timing = {
  heartbeatIntervalMs: 100,
  leaseTtlMs: 1000,
  selfFenceMs: 700,
  adoptionDelayMs: 200,
  sweepIntervalMs: 100,
  quarantineMs: 0,
};

beforeAll(async () => {
  redis = await redisForTests();
  client = new Redis(redis.url);
  tmp = mkdtempSync(join(tmpdir(), 'wafleet-data-'));
});

afterAll(async () => {
  await Promise.all(open.map((f) => f.close()));
  client.disconnect();
  await redis.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function startFleet(namespace: string, instanceId: string): Promise<Fleet> {
  const f = createFleet({ redis: redis.url, namespace, instanceId, url: `http://${instanceId}:3000`, maxSessions: 5, ...timing });
  open.push(f);
  await f.start();
  return f;
}

let n = 0;
function archive(bytes: number | Buffer): { file: string; bytes: Buffer } {
  const data = typeof bytes === 'number' ? randomBytes(bytes) : bytes;
  const file = join(tmp, `archive-${n++}.zip`);
  writeFileSync(file, data);
  return { file, bytes: data };
}
const dest = () => join(tmp, `restored-${n++}.zip`);

/** Blob keys of a namespace (outside the hash tag), or the version files of a directory backend. */
interface Kind {
  name: 'redis' | 'directory';
  backend(namespace: string): BlobBackend;
  stored(namespace: string, sessionId: string): Promise<string[]>;
  /** Overwrites the first bytes of a stored version. */
  tamper(namespace: string, sessionId: string, uploadId: string): Promise<void>;
}

const dirOf = (namespace: string) => join(tmp, `dir-${namespace}`);
const kinds: Kind[] = [
  {
    name: 'redis',
    backend: (namespace) => redisBlobBackend({ redis: client, namespace, chunkBytes: 64 * 1024 }),
    stored: async (namespace, sessionId) =>
      [...new Set((await client.keys(`wafleet:${namespace}:blob:${sessionId}:*`)).map((k) => k.split(':')[4]!))].sort(),
    tamper: async (namespace, sessionId, uploadId) => {
      const key = `wafleet:${namespace}:blob:${sessionId}:${uploadId}:0`;
      await client.setrange(key, 0, 'tampered');
    },
  },
  {
    name: 'directory',
    backend: (namespace) => directoryBlobBackend({ dir: dirOf(namespace) }),
    stored: async (namespace, sessionId) => {
      const dir = join(dirOf(namespace), sessionId);
      return existsSync(dir) ? readdirSync(dir).sort() : [];
    },
    tamper: async (namespace, sessionId, uploadId) => {
      const file = join(dirOf(namespace), sessionId, uploadId);
      const bytes = readFileSync(file);
      bytes.write('tampered', 0);
      writeFileSync(file, bytes);
    },
  },
];

describe.each(kinds)('session data on the $name backend', (kind) => {
  it('saves, restores the newest version, counts versions up and removes the one a commit replaced', async () => {
    const ns = uniqueNamespace(`sd-${kind.name}`);
    const a = await startFleet(ns, 'a');
    await a.claim('s1');
    const data = createSessionData({ fleet: a, backend: kind.backend(ns) });
    expect(await data.current('s1')).toBeNull();
    expect(await data.restore('s1', dest())).toBeNull();

    const v1 = archive(300 * 1024 + 7);
    const first = await data.save('s1', v1.file);
    expect(first).toMatchObject({ sessionId: 's1', version: 1, size: v1.bytes.length, writer: 'a', epoch: a.epochOf('s1') });
    expect(await kind.stored(ns, 's1')).toEqual([first.uploadId]);

    const v2 = archive(0);
    const second = await data.save('s1', v2.file);
    expect(second.version).toBe(2);
    expect(second.uploadId).not.toBe(first.uploadId);
    expect(await data.current('s1')).toEqual(second);
    expect(await kind.stored(ns, 's1')).toEqual([second.uploadId]);

    const v3 = archive(200 * 1024);
    const third = await data.save('s1', v3.file);
    const out = dest();
    expect(await data.restore('s1', out)).toEqual(third);
    expect(readFileSync(out).equals(v3.bytes)).toBe(true);
    expect(third.version).toBe(3);
    // Restores leave no temp files next to the destination.
    expect(readdirSync(tmp).filter((f) => f.includes('wafleet-restore'))).toEqual([]);
  });

  it('a commit that runs twice (resent after its reply was lost) answers the same version, even once the writer lost the session; its bytes stay', async () => {
    const ns = uniqueNamespace(`sd-resend-${kind.name}`);
    const a = await startFleet(ns, 'a');
    await a.claim('s-r');
    const backend = kind.backend(ns);
    const data = createSessionData({ fleet: a, backend });
    const v1 = archive(64 * 1024);
    const first = await data.save('s-r', v1.file);
    // The second version by hand, so its commit can be sent twice.
    const v2 = archive(96 * 1024);
    const uploadId = randomBytes(12).toString('hex');
    const { epoch } = await a.beginSessionData('s-r', uploadId);
    await backend.put({ sessionId: 's-r', uploadId }, v2.file);
    const sha256 = createHash('sha256').update(v2.bytes).digest('hex');
    const upload = { epoch, uploadId, size: v2.bytes.length, sha256 };
    const committed = await a.commitSessionData('s-r', upload);
    expect(committed).toMatchObject({ committed: { version: 2, uploadId }, previousUploadId: first.uploadId });
    // What ioredis does after a reconnect: the same script again. Before the replay check it answered
    // WAFLEET_DATA_UPLOAD_EXPIRED, and the writer removed the bytes the pointer names.
    expect(await a.commitSessionData('s-r', upload)).toMatchObject({
      committed: { version: 2, uploadId },
      previousUploadId: first.uploadId,
    });
    // The same after the writer's lease is gone (Redis restarted from its AOF past the lease deadline).
    await client.zadd(registryKeys(ns).instances, 1, 'a');
    expect(await a.commitSessionData('s-r', upload)).toMatchObject({ committed: { version: 2, uploadId } });
    const out = dest();
    expect(await data.restore('s-r', out)).toMatchObject({ version: 2, uploadId });
    expect(readFileSync(out).equals(v2.bytes)).toBe(true);
  });

  it('a restore of damaged bytes rejects with WAFLEET_DATA_CORRUPT and writes nothing at the destination', async () => {
    const ns = uniqueNamespace(`sd-corrupt-${kind.name}`);
    const a = await startFleet(ns, 'a');
    await a.claim('s1');
    const data = createSessionData({ fleet: a, backend: kind.backend(ns) });
    const saved = await data.save('s1', archive(100 * 1024).file);
    await kind.tamper(ns, 's1', saved.uploadId);
    const fresh = dest();
    await expect(data.restore('s1', fresh)).rejects.toMatchObject({ code: 'WAFLEET_DATA_CORRUPT', sessionId: 's1' });
    expect(existsSync(fresh)).toBe(false);
    const existing = archive(10);
    await expect(data.restore('s1', existing.file)).rejects.toMatchObject({ code: 'WAFLEET_DATA_CORRUPT' });
    expect(readFileSync(existing.file).equals(existing.bytes)).toBe(true);
    // Bytes gone altogether: corrupt too.
    await kind.backend(ns).remove({ sessionId: 's1', uploadId: saved.uploadId });
    await expect(data.restore('s1', fresh)).rejects.toMatchObject({ code: 'WAFLEET_DATA_CORRUPT' });
    expect(readdirSync(tmp).filter((f) => f.includes('wafleet-restore'))).toEqual([]);
  });

  it('a save by an instance that does not own the session is refused with WAFLEET_NOT_OWNER and stores nothing', async () => {
    const ns = uniqueNamespace(`sd-owner-${kind.name}`);
    const [a, b] = [await startFleet(ns, 'a'), await startFleet(ns, 'b')];
    await a.claim('s1');
    const mine = await createSessionData({ fleet: a, backend: kind.backend(ns) }).save('s1', archive(1000).file);
    const theirs = createSessionData({ fleet: b, backend: kind.backend(ns) });
    await expect(theirs.save('s1', archive(1000).file)).rejects.toMatchObject({ code: 'WAFLEET_NOT_OWNER', owner: 'a' });
    await expect(theirs.save('nobody', archive(1000).file)).rejects.toMatchObject({ code: 'WAFLEET_NOT_FOUND' });
    expect(await kind.stored(ns, 's1')).toEqual([mine.uploadId]);
    expect(await theirs.current('s1')).toEqual(mine);
  });

  it('drop removes the data of a stopped session and refuses one that should run', async () => {
    const ns = uniqueNamespace(`sd-drop-${kind.name}`);
    const a = await startFleet(ns, 'a');
    await a.claim('s1');
    const data = createSessionData({ fleet: a, backend: kind.backend(ns) });
    await data.save('s1', archive(1000).file);
    await expect(data.drop('s1')).rejects.toMatchObject({ code: 'WAFLEET_OWNED_ELSEWHERE' });
    await a.setStatus('s1', 'STOPPED', { desired: 'stopped', reason: 'logged out' });
    await data.drop('s1');
    expect(await data.current('s1')).toBeNull();
    expect(await kind.stored(ns, 's1')).toEqual([]);
    await data.drop('s1');
  });

  it('an upload abandoned for longer than uploadTimeoutMs is removed by the next commit; nothing else is', async () => {
    const ns = uniqueNamespace(`sd-gc-${kind.name}`);
    const a = await startFleet(ns, 'a');
    await a.claim('s1');
    const backend = kind.backend(ns);
    const data = createSessionData({ fleet: a, backend, uploadTimeoutMs: 1000 });
    // What a crash between upload and commit leaves behind.
    const { epoch } = await a.beginSessionData('s1', 'abandoned');
    expect(epoch).toBe(a.epochOf('s1'));
    await backend.put({ sessionId: 's1', uploadId: 'abandoned' }, archive(1000).file);
    const first = await data.save('s1', archive(1000).file);
    expect(await kind.stored(ns, 's1')).toEqual([first.uploadId, 'abandoned'].sort());
    await sleep(1100);
    const second = await data.save('s1', archive(1000).file);
    expect(await kind.stored(ns, 's1')).toEqual([second.uploadId]);
    expect(await client.zcard(registryKeys(ns).dataUploads)).toBe(0);
  });
});

describe('session data: bad input and limits', () => {
  it('refuses a bad session id, a missing file and bad options before writing anything', async () => {
    const ns = uniqueNamespace('sd-bad');
    const a = await startFleet(ns, 'a');
    await a.claim('s1');
    const backend = redisBlobBackend({ redis: client, namespace: ns });
    const data = createSessionData({ fleet: a, backend });
    await expect(data.save('a:b', archive(10).file)).rejects.toMatchObject({ code: 'WAFLEET_INVALID_ID' });
    await expect(data.save('s1', join(tmp, 'missing.zip'))).rejects.toMatchObject({ code: 'WAFLEET_CONFIG', option: 'file' });
    await expect(data.save('s1', tmp)).rejects.toMatchObject({ code: 'WAFLEET_CONFIG', option: 'file' });
    await expect(data.restore('{x}', dest())).rejects.toMatchObject({ code: 'WAFLEET_INVALID_ID' });
    expect(await client.keys(`wafleet:${ns}:blob:*`)).toEqual([]);
    expect(await client.zcard(registryKeys(ns).dataUploads)).toBe(0);
    const fleet = a as SessionDataFleet;
    expect(() => createSessionData({ fleet, backend, uploadTimeoutMs: -1 })).toThrow(
      expect.objectContaining({ option: 'uploadTimeoutMs' }),
    );
    expect(() => createSessionData({ fleet, backend: {} as BlobBackend })).toThrow(expect.objectContaining({ option: 'backend' }));
    expect(() => createSessionData({ fleet: {} as SessionDataFleet, backend })).toThrow(expect.objectContaining({ option: 'fleet' }));
    expect(() => redisBlobBackend({ redis: client, namespace: ns, chunkBytes: 10 })).toThrow(
      expect.objectContaining({ option: 'chunkBytes' }),
    );
    expect(() => redisBlobBackend({ redis: client, namespace: ns, maxBytes: 0 })).toThrow(expect.objectContaining({ option: 'maxBytes' }));
    expect(() => directoryBlobBackend({ dir: '' })).toThrow(expect.objectContaining({ option: 'dir' }));
    await expect(a.commitSessionData('s1', { epoch: 'x', uploadId: 'u', size: 1, sha256: 'a'.repeat(64) })).rejects.toMatchObject({
      option: 'epoch',
    });
    await expect(a.beginSessionData('s1', '../etc')).rejects.toMatchObject({ option: 'uploadId' });
  });

  it('the Redis backend refuses an archive above maxBytes with WAFLEET_DATA_TOO_LARGE; the current version stays', async () => {
    const ns = uniqueNamespace('sd-large');
    const a = await startFleet(ns, 'a');
    await a.claim('s1');
    const data = createSessionData({
      fleet: a,
      backend: redisBlobBackend({ redis: client, namespace: ns, chunkBytes: 4096, maxBytes: 10_000 }),
    });
    const kept = await data.save('s1', archive(10_000).file);
    await expect(data.save('s1', archive(10_001).file)).rejects.toMatchObject({
      code: 'WAFLEET_DATA_TOO_LARGE',
      size: 10_001,
      maxBytes: 10_000,
    });
    expect(await data.current('s1')).toEqual(kept);
    expect((await client.keys(`wafleet:${ns}:blob:*`)).length).toBe(3);
  });

  it('the Redis backend spreads an archive over keys outside the hash tag, one per chunk', async () => {
    const ns = uniqueNamespace('sd-chunks');
    const a = await startFleet(ns, 'a');
    await a.claim('s1');
    const data = createSessionData({ fleet: a, backend: redisBlobBackend({ redis: client, namespace: ns, chunkBytes: 4096 }) });
    const saved = await data.save('s1', archive(4096 * 5 + 1).file);
    const keys = (await client.keys(`wafleet:${ns}:blob:*`)).sort();
    expect(keys).toHaveLength(6);
    expect(keys.every((k) => !k.includes('{') && k.startsWith(`wafleet:${ns}:blob:s1:${saved.uploadId}:`))).toBe(true);
  });

  it('a Fleet is a SessionDataFleet', () => {
    const check = (f: Fleet): SessionDataFleet => f;
    expect(check).toBeTypeOf('function');
  });
});
