import { createFleetClient } from '@wafleet/client';
import { createFleet, type Fleet } from '@wafleet/core';
import { sleep, uniqueNamespace, waitUntil } from '@wafleet/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_TIMING, sessionIds, snapshot, startInstance, useTestRedis } from './helpers/fleet-harness.js';

const redis = useTestRedis();
const fleets: Fleet[] = [];
afterAll(async () => {
  await Promise.allSettled(fleets.map((f) => f.close()));
});

/** The dead owner's pause budget: larger than what the survivor and the client are configured with. */
const OWNER_DELAY_MS = 1500;

/** Redis server time (ms), the clock lease deadlines and `since` use. */
async function serverNow(): Promise<number> {
  const [s, us] = await redis.client.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

describe('fleet-wide timing facts come from the registry, not from the caller', () => {
  it('a survivor and a client configured with adoption delay 0 cannot adopt a kill -9 owner before its deadline + its own 1500 ms delay, and adopt after', async () => {
    const namespace = uniqueNamespace('facts');
    const a = await startInstance({
      redis: redis.url,
      namespace,
      instanceId: 'a',
      maxSessions: 10,
      timing: { adoptionDelayMs: OWNER_DELAY_MS },
    });
    const ids = sessionIds('f', 4);
    await a.run('claim', { ids });
    expect(a.events('claimed')).toHaveLength(ids.length);

    const survivor = createFleet({
      redis: redis.url,
      namespace,
      instanceId: 'b',
      url: 'http://b.invalid:3000',
      maxSessions: 10,
      ...TEST_TIMING,
      adoptionDelayMs: 0,
    });
    fleets.push(survivor);
    await survivor.start();
    // A backend cannot even ask for a shorter delay: the client has no such option.
    expect(() => createFleetClient({ redis: redis.url, namespace, adoptionDelayMs: 0 } as never)).toThrow(
      expect.objectContaining({ code: 'WAFLEET_CONFIG', option: 'adoptionDelayMs' }),
    );
    const client = createFleetClient({ redis: redis.url, namespace });

    try {
      await a.child.kill('SIGKILL');
      const finalDeadline = (await snapshot(redis.client, namespace)).deadlines.get('a')!;
      const adoptableAt = finalDeadline + OWNER_DELAY_MS;
      while ((await serverNow()) <= finalDeadline + 50) await sleep(20);

      // The lease is dead, but the owner's own adoption delay has not passed: both callers are refused.
      await expect(client.place(ids[0]!)).rejects.toMatchObject({ code: 'WAFLEET_OWNER_EXPIRING' });
      await expect(survivor.claim(ids[1]!)).rejects.toMatchObject({ code: 'WAFLEET_OWNER_EXPIRING' });
      expect(await serverNow()).toBeLessThan(adoptableAt);
      const early = await snapshot(redis.client, namespace);
      for (const id of ids) expect(early.sessions.get(id)!.owner, id).toBe('a');

      // After deadline + 1500 ms the survivor's sweep adopts every session, never earlier (Redis time on both sides).
      await waitUntil(
        async () => {
          const s = await snapshot(redis.client, namespace);
          return ids.every((id) => s.sessions.get(id)?.owner === 'b');
        },
        { timeoutMs: 10_000, message: 'the survivor did not adopt the sessions' },
      );
      const after = await snapshot(redis.client, namespace);
      for (const id of ids) {
        const rec = after.sessions.get(id)!;
        expect(rec.since!, id).toBeGreaterThanOrEqual(adoptableAt);
        expect(rec.prev, id).toBe('a');
      }
      expect(await client.place(ids[0]!)).toMatchObject({ outcome: 'existing', owner: 'b' });
    } finally {
      await client.close();
    }
  });
});
