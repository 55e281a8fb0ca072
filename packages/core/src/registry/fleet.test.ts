import { registryKeys } from '@wafleet/protocol';
import { redisForTests, uniqueNamespace, waitUntil, type TestRedis } from '@wafleet/test-utils';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet, type Fleet } from './fleet.js';
import type { FleetOptions } from './options.js';

let redis: TestRedis;
let client: Redis;
const open: Fleet[] = [];

const timing = {
  heartbeatIntervalMs: 100,
  leaseTtlMs: 1000,
  selfFenceMs: 700,
  adoptionDelayMs: 200,
  sweepIntervalMs: 100,
  quarantineMs: 0,
};

function fleet(namespace: string, instanceId: string, extra: Partial<FleetOptions> = {}): Fleet {
  const f = createFleet({ redis: redis.url, namespace, instanceId, url: `http://${instanceId}:3000`, maxSessions: 5, ...timing, ...extra });
  open.push(f);
  return f;
}

beforeAll(async () => {
  redis = await redisForTests();
  client = new Redis(redis.url);
});

afterAll(async () => {
  await Promise.all(open.map((f) => f.close()));
  client.disconnect();
  await redis.close();
});

describe('Fleet', () => {
  it('shows its identity through read-only getters, and neither its options, keys nor connection', () => {
    const f = fleet('ns-1', 'wa-7', { maxSessions: 7 });
    expect({ instanceId: f.instanceId, url: f.url, namespace: f.namespace, maxSessions: f.maxSessions }).toEqual({
      instanceId: 'wa-7',
      url: 'http://wa-7:3000',
      namespace: 'ns-1',
      maxSessions: 7,
    });
    for (const hidden of ['options', 'keys', 'redis']) expect(hidden in f, hidden).toBe(false);
    expect(() => Object.assign(f, { instanceId: 'other' })).toThrow(TypeError);
  });

  it('close() hands sessions off through stopSession and deregisters', async () => {
    const ns = uniqueNamespace('close');
    const stopped: string[] = [];
    const a = fleet(ns, 'a', { stopSession: (sid) => void stopped.push(sid) });
    const b = fleet(ns, 'b');
    await Promise.all([a.start(), b.start()]);
    await a.claim('s1');
    await a.claim('s2');
    await a.close();
    await a.close();
    expect(stopped.sort()).toEqual(['s1', 's2']);
    expect(await b.owner('s1')).toMatchObject({ owner: 'b', live: true });
    expect((await b.instances()).map((i) => i.id)).toEqual(['b']);
    expect(a.state).toBe('closed');
  });

  it('rejects calls before start and after close with stable codes', async () => {
    const f = fleet(uniqueNamespace('state'), 'x');
    await expect(f.claim('s1')).rejects.toMatchObject({ code: 'WAFLEET_NOT_STARTED' });
    await f.start();
    await f.close();
    await expect(f.claim('s1')).rejects.toMatchObject({ code: 'WAFLEET_CLOSED' });
    await expect(f.start()).resolves.toBeUndefined();
  });

  it('writes nothing for an invalid session id or status', async () => {
    const ns = uniqueNamespace('bad-input');
    const f = fleet(ns, 'a');
    const keys = registryKeys(f.namespace);
    await f.start();
    const before = await client.hlen(keys.sessions);
    for (const bad of ['', 'a:b', 'a{b}', 'x'.repeat(200), 'a\u0001']) {
      await expect(f.claim(bad)).rejects.toMatchObject({ code: 'WAFLEET_INVALID_ID' });
      await expect(f.place(bad)).rejects.toMatchObject({ code: 'WAFLEET_INVALID_ID' });
    }
    await f.claim('ok');
    await expect(f.setStatus('ok', 'DANCING' as 'WORKING')).rejects.toMatchObject({ code: 'WAFLEET_CONFIG' });
    expect(await client.hlen(keys.sessions)).toBe(before + 1);
    expect(JSON.parse((await client.hget(keys.sessions, 'ok'))!).status).toBe('STARTING');
  });

  it('maps refusals to typed errors that carry the owner', async () => {
    const ns = uniqueNamespace('typed');
    const a = fleet(ns, 'a', { maxSessions: 1 });
    const b = fleet(ns, 'b');
    await Promise.all([a.start(), b.start()]);
    await a.claim('s1');
    await expect(b.claim('s1')).rejects.toMatchObject({ code: 'WAFLEET_OWNED_ELSEWHERE', owner: 'a', ownerUrl: 'http://a:3000' });
    await expect(a.claim('s2')).rejects.toMatchObject({ code: 'WAFLEET_CAPACITY', load: 1, maxSessions: 1 });
    await expect(b.release('s1')).rejects.toMatchObject({ code: 'WAFLEET_NOT_OWNER', owner: 'a' });
    await expect(b.setStatus('s1', 'WORKING')).rejects.toMatchObject({ code: 'WAFLEET_NOT_OWNER' });
  });

  it('emits assigned on the chosen instance when another instance places a session', async () => {
    const ns = uniqueNamespace('push');
    const a = fleet(ns, 'a');
    const b = fleet(ns, 'b', { labels: { auth: 's3' } });
    await Promise.all([a.start(), b.start()]);
    const seen: string[] = [];
    b.on('assigned', ({ sessionId }) => seen.push(sessionId));
    const r = await a.place('s1', { labels: { auth: 's3' } });
    expect(r).toMatchObject({ outcome: 'assigned', owner: 'b' });
    await waitUntil(() => seen.includes('s1'));
    expect(b.owns('s1')).toBe(true);
  });

  it('observe mode records claims without refusing, fencing or adopting', async () => {
    const ns = uniqueNamespace('observe');
    const a = fleet(ns, 'a', { mode: 'observe', maxSessions: 1 });
    const b = fleet(ns, 'b', { mode: 'observe', maxSessions: 1 });
    await Promise.all([a.start(), b.start()]);
    await a.claim('s1');
    await a.claim('s2');
    // An existing fleet may run a session twice: observe mode records the last claim instead of refusing it.
    await b.claim('s1');
    expect(await a.owner('s1')).toMatchObject({ owner: 'b' });
    expect((await a.instances()).find((i) => i.id === 'a')).toMatchObject({ mode: 'observe', load: 1 });
    const fenced: unknown[] = [];
    a.on('fenced', (e) => fenced.push(e));
    await b.close();
    // b's sessions are released, never queued for adoption in observe mode.
    expect(await client.zcard(registryKeys(ns).pending)).toBe(0);
    expect(fenced).toEqual([]);
  });
});
