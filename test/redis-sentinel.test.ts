import { createFleet, type Fleet, type FencedEvent } from '@wafleet/core';
import { sleep, startRedisSentinel, uniqueNamespace, waitUntil, type RedisSentinelHandle } from '@wafleet/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionIds } from './helpers/fleet-harness.js';

let sentinel: RedisSentinelHandle;
const fleets: Fleet[] = [];

beforeAll(async () => {
  sentinel = await startRedisSentinel({ downAfterMs: 1000, failoverTimeoutMs: 5000 });
}, 60_000);

afterAll(async () => {
  await Promise.all(fleets.map((f) => f.close().catch(() => undefined)));
  await sentinel?.stop();
});

describe('Redis Sentinel (1 master, 1 replica, 3 sentinels)', () => {
  it('fleets connect through the sentinels and ride out a forced failover with the tolerant profile: nothing fenced, records on the new master', async () => {
    const namespace = uniqueNamespace('sentinel');
    const redis = { sentinels: sentinel.sentinelUrls, name: sentinel.name };
    for (const id of ['wa-1', 'wa-2']) {
      const fleet = createFleet({
        redis,
        namespace,
        instanceId: id,
        url: `http://${id}:3000`,
        maxSessions: 10,
        profile: 'tolerant',
        quarantineMs: 0,
      });
      fleets.push(fleet);
      await fleet.start();
    }
    const [a, b] = fleets as [Fleet, Fleet];
    const fenced: FencedEvent[] = [];
    for (const f of fleets) f.on('fenced', (e) => fenced.push(e));
    const ids = sessionIds('sn', 10);
    for (const [i, sid] of ids.entries()) await (i % 2 ? b : a).claim(sid);
    const before = new Map(await Promise.all(ids.map(async (sid) => [sid, (await a.owner(sid))!] as const)));
    const oldMaster = await sentinel.masterPort();
    const t0 = Date.now();
    const newMaster = await sentinel.failover();
    expect(newMaster).not.toBe(oldMaster);
    // Both instances renew their leases on the new master.
    const renewals = fleets.map((f) => f.stats().renewals);
    await waitUntil(() => fleets.every((f, i) => f.stats().renewals > renewals[i]! + 1), {
      timeoutMs: 30_000,
      message: 'no renewals after the failover',
    });
    console.log(`[sentinel] failover ${oldMaster} -> ${newMaster}: renewing again ${Date.now() - t0} ms after it began`);
    await sleep(1000);
    expect(fenced).toEqual([]);
    expect(fleets.every((f) => f.leaseValid && f.state === 'active')).toBe(true);
    for (const sid of ids) {
      const after = await b.owner(sid);
      expect(after, sid).toMatchObject({ owner: before.get(sid)!.owner, epoch: before.get(sid)!.epoch, live: true });
    }
    // Still writable: a new claim lands on the new master.
    expect((await a.claim('sn-after')).epoch).toMatch(/^\d+$/);
  });

  it('refuses a Sentinel option without its master name, or mixed with nodes', () => {
    const base = { namespace: 'x', instanceId: 'wa-1', url: 'http://wa-1:3000', maxSessions: 1 };
    expect(() => createFleet({ ...base, redis: { sentinels: ['redis://127.0.0.1:26379'] } })).toThrow(/redis\.name/);
    expect(() => createFleet({ ...base, redis: { sentinels: [], name: 'm' } })).toThrow(/redis\.sentinels/);
    expect(() =>
      createFleet({ ...base, redis: { sentinels: ['redis://127.0.0.1:26379'], name: 'm', nodes: ['redis://127.0.0.1:1'] } }),
    ).toThrow(/exactly one of/);
  });
});
