import { registryKeys } from '@wafleet/core';
import { sleep, uniqueNamespace, waitUntil } from '@wafleet/test-utils';
import { describe, expect, it } from 'vitest';
import {
  PAUSE_BUDGET_MS,
  TEST_TIMING,
  journalPath,
  overlaps,
  readJournal,
  runsOf,
  sessionIds,
  snapshot,
  startInstance,
  useTestRedis,
} from './helpers/fleet-harness.js';

const redis = useTestRedis();

describe('process pauses (G1)', () => {
  it('a pause shorter than the budget moves nothing', async () => {
    const namespace = uniqueNamespace('pause-short');
    const a = await startInstance({ redis: redis.url, namespace, instanceId: 'a', maxSessions: 10 });
    const b = await startInstance({ redis: redis.url, namespace, instanceId: 'b', maxSessions: 10 });
    const ids = sessionIds('p', 5);
    await a.run('claim', { ids });
    const before = await snapshot(redis.client, namespace);

    const pauseMs = Math.min(PAUSE_BUDGET_MS, TEST_TIMING.selfFenceMs - TEST_TIMING.heartbeatIntervalMs) / 2;
    a.child.kill('SIGSTOP');
    await sleep(pauseMs);
    a.child.kill('SIGCONT');
    await sleep(TEST_TIMING.leaseTtlMs + TEST_TIMING.adoptionDelayMs);

    const after = await snapshot(redis.client, namespace);
    for (const id of ids) {
      expect(after.sessions.get(id)!.owner).toBe('a');
      expect(after.sessions.get(id)!.epoch).toBe(before.sessions.get(id)!.epoch);
    }
    expect(a.events('fenced')).toEqual([]);
    expect(b.events('assigned')).toEqual([]);
  });

  it('an owner paused beyond its TTL fences first on waking, never renews the expired lease, and the adopter waited', async () => {
    const namespace = uniqueNamespace('pause-long');
    const journals = [journalPath('a'), journalPath('b')];
    const a = await startInstance({ redis: redis.url, namespace, instanceId: 'a', maxSessions: 10, journal: journals[0] });
    const ids = sessionIds('q', 5);
    await a.run('claim', { ids });
    const b = await startInstance({ redis: redis.url, namespace, instanceId: 'b', maxSessions: 10, journal: journals[1] });
    const oldInc = a.events('ready')[0]!.inc as string;

    a.child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    await sleep(50);
    const finalDeadline = (await snapshot(redis.client, namespace)).deadlines.get('a')!;
    await waitUntil(async () => b.events('assigned').length === 5, { timeoutMs: 15_000, message: 'b did not adopt' });
    await sleep(300);
    const continuedAt = Date.now();
    a.child.kill('SIGCONT');
    await a.child.waitFor((m) => m.ev === 'leaseRestored', 15_000);

    // On waking, the fence comes before anything else the instance does.
    const afterWake = a.child.messages.filter((m) => (m.t as number) >= continuedAt && m.ev !== 'state');
    expect(afterWake[0]).toMatchObject({ ev: 'fenced', reason: 'deadline' });
    expect((afterWake[0]!.s as string[]).sort()).toEqual(ids);

    // It re-registered under a new incarnation instead of reviving the expired lease...
    const restored = a.events('leaseRestored').at(-1)!;
    expect(restored.inc).not.toBe(oldInc);
    const info = JSON.parse((await redis.client.hget(registryKeys(namespace).instanceInfo, 'a'))!);
    expect(info.inc).toBe(restored.inc);
    // ...and took nothing back: b had them.
    expect(a.events('assigned')).toEqual([]);

    const s = await snapshot(redis.client, namespace);
    for (const id of ids) {
      expect(s.sessions.get(id)!.owner).toBe('b');
      expect(s.sessions.get(id)!.since!).toBeGreaterThanOrEqual(finalDeadline + TEST_TIMING.adoptionDelayMs);
    }

    // Journal: runs overlap only while a was frozen (it cannot act then; the dead-man switch covers engines).
    const found = overlaps(runsOf(readJournal(...journals)));
    for (const o of found) {
      expect(o.from).toBeGreaterThanOrEqual(stoppedAt);
      expect(o.to).toBeLessThanOrEqual(continuedAt + 500);
    }
    console.log(
      `pause beyond TTL: ${found.length} overlaps, all inside the frozen period; fence ${(afterWake[0]!.t as number) - continuedAt} ms after SIGCONT`,
    );
  });
});
