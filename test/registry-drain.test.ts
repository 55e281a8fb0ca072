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

describe('drain and graceful stop (G4)', () => {
  it('SIGTERM hands every session off in under a second, without waiting for lease expiry', async () => {
    const namespace = uniqueNamespace('drain');
    const journals = [journalPath('a'), journalPath('b'), journalPath('c')];
    const a = await startInstance({ redis: redis.url, namespace, instanceId: 'a', maxSessions: 12, journal: journals[0] });
    const ids = sessionIds('d', 12);
    await a.run('claim', { ids });
    const b = await startInstance({ redis: redis.url, namespace, instanceId: 'b', maxSessions: 8, journal: journals[1] });
    const c = await startInstance({ redis: redis.url, namespace, instanceId: 'c', maxSessions: 8, journal: journals[2] });

    const termAt = Date.now();
    await a.child.kill('SIGTERM');
    expect(await a.child.exited).toMatchObject({ code: 0 });
    await waitUntil(() => b.events('assigned').length + c.events('assigned').length === 12, {
      timeoutMs: 5000,
      message: 'not all handed off',
    });

    const assignedAt = [...b.events('assigned'), ...c.events('assigned')].map((m) => (m.t as number) - termAt);
    const slowest = Math.max(...assignedAt);
    // Each session is running elsewhere within 1 s of SIGTERM; the lease (2 s TTL) was never waited for.
    expect(slowest).toBeLessThan(1000);
    expect(slowest).toBeLessThan(TEST_TIMING.leaseTtlMs);
    const drained = a.events('drained')[0]!.result as { handedOff: number; durationsMs: number[] };
    expect(drained.handedOff).toBe(12);

    const s = await snapshot(redis.client, namespace);
    expect(s.deadlines.has('a')).toBe(false);
    expect((s.owned.get('b') ?? []).length + (s.owned.get('c') ?? []).length).toBe(12);
    expect(overlaps(runsOf(readJournal(...journals)))).toEqual([]);
    console.log(
      `drain: 12 sessions handed off, slowest running elsewhere ${slowest} ms after SIGTERM; stop+release per session max ${Math.max(...drained.durationsMs).toFixed(1)} ms`,
    );
  });

  it('a draining instance is skipped by placement and sessions nobody can take wait for capacity', async () => {
    const namespace = uniqueNamespace('drain-full');
    const a = await startInstance({ redis: redis.url, namespace, instanceId: 'a', maxSessions: 4 });
    await a.run('claim', { ids: sessionIds('f', 4) });
    const b = await startInstance({ redis: redis.url, namespace, instanceId: 'b', maxSessions: 1 });
    await a.run('drain');
    const result = a.events('drained')[0]!.result as { handedOff: number; pending: number };
    expect(result).toMatchObject({ handedOff: 1, pending: 3 });
    // The pending three are placed as soon as capacity appears.
    const c = await startInstance({ redis: redis.url, namespace, instanceId: 'c', maxSessions: 5 });
    await waitUntil(() => c.events('assigned').length === 3, { timeoutMs: 10_000, message: 'pending sessions were not placed' });
    expect(b.events('assigned')).toHaveLength(1);
    await a.run('place', { ids: ['f-new'] });
    expect(a.events('placed')[0]).toMatchObject({ outcome: 'assigned', owner: 'c' });
  });
});
