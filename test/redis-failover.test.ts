import { createFleet, createSupervisor, type Fleet, type FleetOptions, type Supervisor } from '@wafleet/core';
import { createSimEngine } from '@wafleet/sim';
import { killAll, sleep, startRedisSentinel, uniqueNamespace, waitUntil, type RedisSentinelHandle } from '@wafleet/test-utils';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { recordRuns, runOverlaps, type EngineRuns } from './helpers/engine-runs.js';
import { sessionIds } from './helpers/fleet-harness.js';

/**
 * Redis failovers that lose data: a replica promoted after it missed the newest grants. The registry notices the new
 * replication id, starts a new era with a quarantine, and the instances that run sessions re-assert them.
 */

const closers: Array<() => Promise<unknown>> = [];
let sentinel: RedisSentinelHandle | undefined;

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
  await sentinel?.stop();
  sentinel = undefined;
});
afterAll(() => killAll());

/**
 * Timing for a failover that takes 2 to 3 s (sentinel down-after 1 s, then the election): the self-fence deadline
 * (4 s) outlasts it, so no instance stops its sessions, and the 5 s lease is short enough to expire on the replica
 * while replication is held for 6 s.
 */
const TIMING = {
  heartbeatIntervalMs: 500,
  leaseTtlMs: 5000,
  selfFenceMs: 4000,
  adoptionDelayMs: 1000,
  sweepIntervalMs: 500,
  quarantineMs: 6000,
} satisfies Partial<FleetOptions>;

interface Host {
  id: string;
  fleet: Fleet;
  supervisor: Supervisor;
}

async function host(redis: FleetOptions['redis'], namespace: string, id: string, runs: EngineRuns): Promise<Host> {
  const fleet = createFleet({
    redis,
    namespace,
    instanceId: id,
    url: `http://${id}:3000`,
    maxSessions: 20,
    ...TIMING,
    replicaAckTimeoutMs: 300,
  });
  const supervisor = createSupervisor({ fleet, engine: createSimEngine().factory, onEngine: recordRuns(runs, id) });
  await fleet.start();
  supervisor.start();
  closers.push(
    () => fleet.close(),
    () => supervisor.close(),
  );
  return { id, fleet, supervisor };
}

/** Which host runs each session now (WORKING there). */
function working(hosts: Host[]): Map<string, string> {
  const where = new Map<string, string>();
  for (const h of hosts) for (const s of h.supervisor.sessions()) if (s.status === 'WORKING') where.set(s.sessionId, h.id);
  return where;
}

describe('a replica promoted after it missed the newest grants (Sentinel, replication held, master killed)', () => {
  it('no session runs twice or moves: the new era quarantines the registry and the running instances re-assert their sessions', async () => {
    sentinel = await startRedisSentinel({ downAfterMs: 1000, failoverTimeoutMs: 5000, proxyMaster: true });
    const redis = { sentinels: sentinel.sentinelUrls, name: sentinel.name };
    const namespace = uniqueNamespace('promoted');
    const runs: EngineRuns = [];
    const hosts = [await host(redis, namespace, 'wa-a', runs), await host(redis, namespace, 'wa-b', runs)];
    const [a] = hosts as [Host, Host];
    const before = sessionIds('old', 8);
    for (const sid of before) await a.fleet.place(sid);
    await waitUntil(() => working(hosts).size === before.length, { message: 'sessions placed before the pause not WORKING' });

    // What the replica will miss: every lease renewal from now on, handoffs (a record naming the old owner survives)
    // and new sessions (no record at all).
    sentinel.pauseReplication();
    const pausedAt = Date.now();
    const moved = before.filter((sid) => working(hosts).get(sid) === 'wa-a').slice(0, 3);
    for (const sid of moved) await a.fleet.handoff(sid);
    const added = sessionIds('new', 6);
    for (const sid of added) await a.fleet.place(sid);
    const all = [...before, ...added];
    await waitUntil(() => all.every((sid) => working(hosts).has(sid)), { message: 'sessions not WORKING during the pause' });
    for (const sid of moved) expect(working(hosts).get(sid), sid).toBe('wa-b');
    const ranOn = working(hosts);
    const epochs = new Map(all.map((sid) => [sid, hosts.find((h) => h.id === ranOn.get(sid))!.fleet.epochOf(sid)!]));
    // No replica acknowledged these grants: the starts went on after replicaAckTimeoutMs.
    expect(hosts.reduce((n, h) => n + h.fleet.stats().replicaAcks.timeout, 0)).toBeGreaterThanOrEqual(moved.length + added.length);
    // Past the lease TTL, so the replica's copies of both leases have expired too.
    await sleep(Math.max(0, TIMING.leaseTtlMs + 1000 - (Date.now() - pausedAt)));

    const eras: string[] = [];
    for (const h of hosts) h.fleet.on('era', ({ era }) => eras.push(`${h.id} ${era}`));
    const restarts = runs.length;
    const fencedBefore = hosts.map((h) => h.fleet.stats().fencedSessions);
    await sentinel.servers[0].kill('SIGKILL');
    const killedAt = Date.now();
    const promoted = await waitForMaster(sentinel, sentinel.servers[1].port);
    const probe = new Redis(promoted);
    closers.push(async () => probe.disconnect());
    // The promoted replica lacks them: the handed-off sessions still name wa-a, the new ones have no record.
    for (const sid of added) expect(await probe.hexists(`{wafleet:${namespace}}:sessions`, sid), sid).toBe(0);

    // Both instances re-assert: every session runs where it ran, recorded as theirs, at a greater epoch.
    const key = `{wafleet:${namespace}}:sessions`;
    await waitUntil(
      async () => {
        for (const sid of all) {
          const raw = await probe.hget(key, sid);
          if (!raw || (JSON.parse(raw) as { owner: string }).owner !== ranOn.get(sid)) return false;
        }
        return true;
      },
      { timeoutMs: 20_000, message: 'sessions not re-asserted by the instances that run them' },
    ).catch(async (err: Error) => {
      console.log('[failover] records', await probe.hgetall(key), 'ran on', ranOn, 'eras', eras);
      throw err;
    });
    const reassertedAfterMs = Date.now() - killedAt;
    // Past the quarantine: the sweep places what waits, and nothing waits that runs somewhere.
    await sleep(TIMING.quarantineMs + 2 * TIMING.sweepIntervalMs);
    for (const sid of all) {
      const rec = JSON.parse((await probe.hget(key, sid))!) as { owner: string; epoch: string };
      expect(rec.owner, sid).toBe(ranOn.get(sid));
      expect(BigInt(rec.epoch) >= BigInt(epochs.get(sid)!), `${sid}: epoch went back`).toBe(true);
    }
    expect(working(hosts)).toEqual(ranOn);
    expect(runs.length, 'no session was started again').toBe(restarts);
    expect(runOverlaps(runs)).toEqual([]);
    // Nothing fenced by the failover (a handoff's own push may count as taken before it).
    expect(hosts.map((h) => h.fleet.stats().fencedSessions)).toEqual(fencedBefore);
    expect(await probe.hget(`{wafleet:${namespace}}:meta`, 'replid')).toBe(/master_replid:(\w+)/.exec(await probe.info('replication'))![1]);
    console.log(
      `[failover] replication held ${killedAt - pausedAt} ms, then the master killed; sessions re-asserted ${reassertedAfterMs} ms after the kill; eras: ${eras.join(', ')}`,
    );
  });
});

/** Waits until every sentinel names the master at `port`; returns its URL. */
async function waitForMaster(s: RedisSentinelHandle, port: number): Promise<string> {
  await waitUntil(async () => (await s.masterPort()) === port, { timeoutMs: 30_000, message: `sentinels never promoted ${port}` });
  return `redis://127.0.0.1:${port}`;
}
