import { compareEpochs, registryKeys } from '@wafleet/core';
import { uniqueNamespace, waitUntil } from '@wafleet/test-utils';
import { describe, expect, it } from 'vitest';
import {
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

describe('kill -9 of an owner (G4, G1, G2, G3)', () => {
  it('survivors own all 20 sessions after lease expiry + adoption delay, with raised epochs and caps kept', async () => {
    const namespace = uniqueNamespace('kill');
    const journals = ['a', 'b', 'c'].map((id) => journalPath(id));
    const a = await startInstance({ redis: redis.url, namespace, instanceId: 'a', maxSessions: 20, journal: journals[0] });
    const ids = sessionIds('k', 20);
    await a.run('claim', { ids });
    expect(a.events('claimed')).toHaveLength(20);
    await startInstance({ redis: redis.url, namespace, instanceId: 'b', maxSessions: 12, journal: journals[1] });
    await startInstance({ redis: redis.url, namespace, instanceId: 'c', maxSessions: 12, journal: journals[2] });

    const before = await snapshot(redis.client, namespace);
    await a.child.kill('SIGKILL');
    const killedAt = Date.now();
    // A stops renewing when it dies: its last deadline is final.
    const finalDeadline = (await snapshot(redis.client, namespace)).deadlines.get('a')!;

    await waitUntil(
      async () => {
        const s = await snapshot(redis.client, namespace);
        return ids.every((id) => ['b', 'c'].includes(s.sessions.get(id)?.owner ?? ''));
      },
      { timeoutMs: 15_000, message: 'survivors did not adopt every session' },
    );
    const adoptedAfterMs = Date.now() - killedAt;
    const after = await snapshot(redis.client, namespace);

    for (const id of ids) {
      const rec = after.sessions.get(id)!;
      // Never before the dead lease expired plus the adoption delay (server time on both sides).
      expect(rec.since!).toBeGreaterThanOrEqual(finalDeadline + TEST_TIMING.adoptionDelayMs);
      // ...and within one sweep after that (a sweep runs every 200 ms +-20%; 400 ms margin for a loaded machine).
      expect(rec.since! - (finalDeadline + TEST_TIMING.adoptionDelayMs)).toBeLessThan(TEST_TIMING.sweepIntervalMs * 1.2 + 400);
      expect(compareEpochs(rec.epoch, before.sessions.get(id)!.epoch)).toBeGreaterThan(0);
    }
    expect(after.owned.get('b')!.length).toBeLessThanOrEqual(12);
    expect(after.owned.get('c')!.length).toBeLessThanOrEqual(12);
    expect(after.owned.get('b')!.length + after.owned.get('c')!.length).toBe(20);
    expect(after.owned.has('a')).toBe(false);
    // The dead instance is reaped from the registry once its sessions are gone.
    expect(after.deadlines.has('a')).toBe(false);

    // Journal: A's runs end when it was killed; no session ran on two instances at once. The survivors journal a
    // start when the assignment push reaches them, which on a loaded machine can trail the registry write.
    const runsNow = () => runsOf(readJournal(...journals), (inst) => (inst === 'a' ? killedAt : undefined));
    await waitUntil(() => runsNow().filter((r) => r.instance !== 'a').length >= 20, { message: 'survivors did not start every session' });
    const runs = runsNow();
    expect(overlaps(runs)).toEqual([]);
    expect(runs.filter((r) => r.instance !== 'a')).toHaveLength(20);
    console.log(
      `kill -9: 20 sessions adopted ${adoptedAfterMs} ms after the kill (TTL ${TEST_TIMING.leaseTtlMs} + delay ${TEST_TIMING.adoptionDelayMs} + sweep ${TEST_TIMING.sweepIntervalMs})`,
    );
  });

  it('a restarted instance with the same id waits for its old lease and takes back only what nobody took', async () => {
    const namespace = uniqueNamespace('restart');
    const a = await startInstance({ redis: redis.url, namespace, instanceId: 'a', maxSessions: 10 });
    const ids = sessionIds('r', 6);
    await a.run('claim', { ids });
    await a.child.kill('SIGKILL');
    const deadline = (await snapshot(redis.client, namespace)).deadlines.get('a')!;
    // The new process registers only after the old lease + adoption delay, then its old sessions come back.
    const a2 = await startInstance({ redis: redis.url, namespace, instanceId: 'a', maxSessions: 10 });
    const info = JSON.parse((await redis.client.hget(registryKeys(namespace).instanceInfo, 'a'))!) as { registeredAt: number };
    expect(info.registeredAt).toBeGreaterThanOrEqual(deadline + TEST_TIMING.adoptionDelayMs);
    await waitUntil(async () => a2.events('assigned').length === 6, { timeoutMs: 10_000, message: 'sessions not taken back' });
    const s = await snapshot(redis.client, namespace);
    expect(s.owned.get('a')!.sort()).toEqual(ids);
  });
});
