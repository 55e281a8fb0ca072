import { compareEpochs, createFleet, registryKeys, type Fleet } from '@wafleet/core';
import { killAll, startRedisCluster, uniqueNamespace, waitUntil, type RedisClusterHandle } from '@wafleet/test-utils';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_TIMING, sessionIds, snapshot, startInstance } from './helpers/fleet-harness.js';

let cluster: RedisClusterHandle;
let client: Cluster;
const fleets: Fleet[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3 });
  client = cluster.client();
});

afterAll(async () => {
  await Promise.all(fleets.map((f) => f.close()));
  await killAll();
});

function fleet(namespace: string, instanceId: string, maxSessions: number): Fleet {
  const f = createFleet({
    redis: cluster.urls,
    namespace,
    instanceId,
    url: `http://${instanceId}:3000`,
    maxSessions,
    ...TEST_TIMING,
    quarantineMs: 0,
  });
  fleets.push(f);
  return f;
}

describe('on a 3-master Redis Cluster', () => {
  it('claims, heartbeats and placement work, with every key of a namespace in one slot', async () => {
    const ns = uniqueNamespace('cluster');
    const a = fleet(ns, 'a', 3);
    const b = fleet(ns, 'b', 3);
    await Promise.all([a.start(), b.start()]);
    const { epoch } = await a.claim('s1');
    await expect(b.claim('s1')).rejects.toMatchObject({ code: 'WAFLEET_OWNED_ELSEWHERE', owner: 'a' });
    const placed = await a.place('s2');
    expect(placed.owner).toBe('b');
    await waitUntil(() => b.owns('s2'), { message: 'placement push did not reach b over the cluster' });
    await waitUntil(() => a.stats().renewals >= 5, { message: 'heartbeats did not renew on the cluster' });
    expect(a.stats().renewalFailures).toBe(0);
    expect((await b.owner('s1'))!.epoch).toBe(epoch);
    const slots = await Promise.all(
      Object.values(registryKeys(ns))
        .slice(1)
        .map((key) => client.cluster('KEYSLOT', key)),
    );
    expect(new Set(slots).size).toBe(1);
  });

  it('adopts the sessions of a kill -9ed instance process', async () => {
    const ns = uniqueNamespace('cluster-kill');
    const victim = await startInstance({
      redis: cluster.urls,
      namespace: ns,
      instanceId: 'victim',
      maxSessions: 6,
      timing: { quarantineMs: 0 },
    });
    const ids = sessionIds('k', 6);
    await victim.run('claim', { ids });
    const before = await snapshot(client, ns);
    const survivor = fleet(ns, 'survivor', 10);
    await survivor.start();
    await victim.child.kill('SIGKILL');
    const finalDeadline = (await snapshot(client, ns)).deadlines.get('victim')!;
    await waitUntil(() => ids.every((id) => survivor.owns(id)), { timeoutMs: 15_000, message: 'survivor did not adopt' });
    const after = await snapshot(client, ns);
    for (const id of ids) {
      expect(after.sessions.get(id)!.owner).toBe('survivor');
      expect(compareEpochs(after.sessions.get(id)!.epoch, before.sessions.get(id)!.epoch)).toBeGreaterThan(0);
      expect(after.sessions.get(id)!.since!).toBeGreaterThanOrEqual(finalDeadline + TEST_TIMING.adoptionDelayMs);
    }
  });
});
