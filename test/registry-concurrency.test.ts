import { sleep, uniqueNamespace } from '@wafleet/test-utils';
import { describe, expect, it } from 'vitest';
import {
  journalPath,
  overlaps,
  readJournal,
  runsOf,
  sessionIds,
  snapshot,
  startInstance,
  type InstanceProcess,
  useTestRedis,
} from './helpers/fleet-harness.js';

const redis = useTestRedis();

describe('concurrent claims and placements (G3, G1)', () => {
  it('200 concurrent claims and places of 50 sessions on 5 instances with caps of 8: no cap exceeded, one owner each', async () => {
    const namespace = uniqueNamespace('race');
    const ids = sessionIds('c', 50);
    const names = ['i1', 'i2', 'i3', 'i4', 'i5'];
    const journals = names.map((n) => journalPath(n));
    const instances: InstanceProcess[] = await Promise.all(
      names.map((instanceId, i) => startInstance({ redis: redis.url, namespace, instanceId, maxSessions: 8, journal: journals[i] })),
    );

    // Sample the owned index while the race runs: a cap must hold at every moment, not just at the end.
    let maxLoad = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await snapshot(redis.client, namespace);
        for (const list of s.owned.values()) maxLoad = Math.max(maxLoad, list.length);
        await sleep(5);
      }
    })();

    // 40 operations per instance (20 claims, 20 places) over random sessions, all sent at once.
    const pick = () => ids[Math.floor(Math.random() * ids.length)]!;
    await Promise.all(
      instances.map((p) =>
        Promise.all([p.run('claim', { ids: Array.from({ length: 20 }, pick) }), p.run('place', { ids: Array.from({ length: 20 }, pick) })]),
      ),
    );
    sampling = false;
    await sampler;

    const operations = instances.reduce(
      (n, p) => n + p.events('claimed').length + p.events('claim-failed').length + p.events('placed').length,
      0,
    );
    expect(operations).toBe(200);

    const s = await snapshot(redis.client, namespace);
    const owners = new Map<string, string[]>();
    for (const [inst, list] of s.owned) {
      expect(list.length).toBeLessThanOrEqual(8);
      for (const sid of list) owners.set(sid, [...(owners.get(sid) ?? []), inst]);
    }
    // Every owned session has exactly one owner, and the record agrees with the index.
    for (const [sid, list] of owners) {
      expect(list).toHaveLength(1);
      expect(s.sessions.get(sid)!.owner).toBe(list[0]);
    }
    for (const [sid, rec] of s.sessions) if (rec.owner) expect(owners.get(sid)).toEqual([rec.owner]);
    expect(maxLoad).toBeLessThanOrEqual(8);
    // Refusals are typed: capacity or owned elsewhere, nothing else.
    const codes = new Set(instances.flatMap((p) => p.events('claim-failed').map((m) => m.code)));
    for (const code of codes) expect(['WAFLEET_CAPACITY', 'WAFLEET_OWNED_ELSEWHERE']).toContain(code);
    // The hosts' own view (journal of starts) never had a session on two instances.
    expect(overlaps(runsOf(readJournal(...journals)))).toEqual([]);
    const owned = [...s.owned.values()].reduce((n, l) => n + l.length, 0);
    const pending = [...s.sessions.values()].filter((r) => !r.owner && r.desired === 'running').length;
    console.log(
      `race: ${owners.size} sessions owned (capacity 40), ${pending} waiting for capacity, max load seen ${maxLoad}, refusals ${[...codes].join(',')}`,
    );
    expect(owned).toBe(owners.size);
  });
});
