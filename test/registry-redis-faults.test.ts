import { compareEpochs, createFleet, LeaseLostError, registryKeys, type FencedEvent } from '@wafleet/core';
import { killAll, sleep, startRedis, uniqueNamespace, waitUntil, type RedisServerHandle } from '@wafleet/test-utils';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  TEST_TIMING,
  journalPath,
  overlaps,
  readJournal,
  runsOf,
  sessionIds,
  snapshot,
  startInstance,
  type InstanceProcess,
} from './helpers/fleet-harness.js';

// These tests kill, restart and freeze Redis itself, so they always run on a private server (never REDIS_URL).
let server: RedisServerHandle;
let client: Redis;

beforeAll(async () => {
  server = await startRedis();
  client = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  client.on('error', () => undefined);
});

const started: InstanceProcess[] = [];
afterEach(async () => {
  // Not killAll(): that would also kill this file's Redis server.
  await Promise.all(started.splice(0).map((p) => p.child.kill('SIGKILL')));
  if (server) server.resume();
});

afterAll(async () => {
  client.disconnect();
  await killAll();
});

async function twoInstances(namespace: string, journals: string[]): Promise<[InstanceProcess, InstanceProcess]> {
  const a = await startInstance({ redis: server.url, namespace, instanceId: 'a', maxSessions: 10, journal: journals[0] });
  const b = await startInstance({ redis: server.url, namespace, instanceId: 'b', maxSessions: 10, journal: journals[1] });
  started.push(a, b);
  await a.run('claim', { ids: sessionIds('a', 4) });
  await b.run('claim', { ids: sessionIds('b', 4) });
  return [a, b];
}

describe('Redis restarted empty (G2, G1)', () => {
  it('instances re-register and re-assert their sessions with greater epochs, without stopping them', async () => {
    const namespace = uniqueNamespace('redis-empty');
    const journals = [journalPath('a'), journalPath('b')];
    const [a, b] = await twoInstances(namespace, journals);
    const before = await snapshot(client, namespace);
    expect(before.sessions.size).toBe(8);

    const eraBefore = await client.hget(registryKeys(namespace).meta, 'era');
    await server.restart({ empty: true });
    // Owners re-assert within milliseconds: the new era (the registry's data generation) shows the loss.
    await waitUntil(async () => (await client.hget(registryKeys(namespace).meta, 'era').catch(() => null)) !== null);
    expect(await client.hget(registryKeys(namespace).meta, 'era')).not.toBe(eraBefore);
    // A newcomer must not grab a session while its previous owner may still run it (quarantine).
    const c = await startInstance({ redis: server.url, namespace, instanceId: 'c', maxSessions: 10 });
    started.push(c);
    await c.run('claim', { ids: ['a-000'] });

    await waitUntil(
      async () => {
        const s = await snapshot(client, namespace);
        return [...before.sessions.keys()].every((id) => s.sessions.get(id)?.owner === before.sessions.get(id)!.owner);
      },
      { timeoutMs: 15_000, message: 'sessions were not re-asserted by their owners' },
    );
    const after = await snapshot(client, namespace);
    for (const [id, rec] of before.sessions) {
      expect(compareEpochs(after.sessions.get(id)!.epoch, rec.epoch)).toBeGreaterThan(0);
    }
    expect(c.events('claim-failed')[0]).toMatchObject({ s: 'a-000', code: 'WAFLEET_OWNED_ELSEWHERE' });
    // Kept running: the owners re-asserted before their self-fence deadline, so nothing stopped.
    expect([...a.events('fenced'), ...b.events('fenced')]).toEqual([]);
    expect(a.events('epoch')).toHaveLength(4);
    expect(overlaps(runsOf(readJournal(...journals)))).toEqual([]);
  });
});

describe('Redis unreachable (G7)', () => {
  it('a status write refused because Redis lost the lease does not forget the session: the heartbeat re-asserts it', async () => {
    const namespace = uniqueNamespace('redis-flushed');
    // A slow heartbeat, so the status write sees the lost lease before the heartbeat does.
    const fleet = createFleet({
      redis: server.url,
      namespace,
      instanceId: 'wa-1',
      url: 'http://wa-1:3000',
      maxSessions: 5,
      heartbeatIntervalMs: 1000,
      leaseTtlMs: 6000,
      selfFenceMs: 4000,
      adoptionDelayMs: 500,
      quarantineMs: 0,
    });
    await fleet.start();
    try {
      await fleet.claim('flushed-1');
      const fenced: FencedEvent[] = [];
      fleet.on('fenced', (e) => fenced.push(e));
      // Redis loses everything (a restart without persistence, in one step).
      await client.flushall();
      await expect(fleet.setStatus('flushed-1', 'WORKING')).rejects.toBeInstanceOf(LeaseLostError);
      expect(fleet.owns('flushed-1')).toBe(true);
      await waitUntil(async () => (await fleet.owner('flushed-1'))?.owner === 'wa-1', {
        timeoutMs: 5000,
        message: 'the session was never re-asserted',
      });
      expect(fenced.filter((e) => e.sessionIds.includes('flushed-1'))).toEqual([]);
    } finally {
      await fleet.close();
    }
  });

  it('an outage shorter than the self-fence deadline stops nothing', async () => {
    const namespace = uniqueNamespace('outage-short');
    const [a, b] = await twoInstances(namespace, [journalPath('a'), journalPath('b')]);
    const before = await snapshot(client, namespace);
    server.pause();
    await sleep(TEST_TIMING.selfFenceMs / 2);
    server.resume();
    await sleep(TEST_TIMING.leaseTtlMs);
    expect([...a.events('fenced'), ...b.events('fenced')]).toEqual([]);
    const after = await snapshot(client, namespace);
    for (const [id, rec] of before.sessions) expect(after.sessions.get(id)).toMatchObject({ owner: rec.owner, epoch: rec.epoch });
  });

  it('an outage beyond the self-fence deadline fences every session, which are re-claimed when Redis returns', async () => {
    const namespace = uniqueNamespace('outage-long');
    const journals = [journalPath('a'), journalPath('b')];
    const [a, b] = await twoInstances(namespace, journals);
    server.pause();
    const pausedAt = Date.now();
    await waitUntil(() => a.events('fenced').length > 0 && b.events('fenced').length > 0, {
      timeoutMs: 10_000,
      message: 'instances did not self-fence while Redis was unreachable',
    });
    const fencedAfterMs = Math.max(...[a, b].map((p) => (p.events('fenced')[0]!.t as number) - pausedAt));
    // Fenced by their own deadline, while Redis could not tell them anything.
    expect(a.events('fenced')[0]).toMatchObject({ reason: 'deadline' });
    expect(b.events('fenced')[0]).toMatchObject({ reason: 'deadline' });
    await sleep(TEST_TIMING.leaseTtlMs);
    server.resume();

    await waitUntil(
      async () => {
        const s = await snapshot(client, namespace);
        return s.sessions.size === 8 && [...s.sessions.values()].every((r) => r.owner === 'a' || r.owner === 'b');
      },
      { timeoutMs: 15_000, message: 'sessions not re-claimed after Redis returned' },
    );
    // Every re-claimed session reaches its host (a session fenced again under load and re-claimed once more is told twice).
    await waitUntil(() => new Set([...a.events('assigned'), ...b.events('assigned')].map((e) => e.s)).size === 8, {
      timeoutMs: 10_000,
      message: 'hosts were not told to restart the re-claimed sessions',
    });
    expect(overlaps(runsOf(readJournal(...journals)))).toEqual([]);
    console.log(`Redis outage: sessions fenced ${fencedAfterMs} ms after Redis froze (self-fence ${TEST_TIMING.selfFenceMs} ms)`);
  });
});
