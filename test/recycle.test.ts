import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CapacityError, createSupervisor, type FleetOptions, type SupervisorOptions } from '@wafleet/core';
import { createSimEngine } from '@wafleet/sim';
import { uniqueNamespace, waitUntil } from '@wafleet/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import { runOverlaps, type EngineRuns } from './helpers/engine-runs.js';
import { offlineFleet, sessionIds, useTestRedis } from './helpers/fleet-harness.js';
import { startSimHost } from './helpers/sim-hosts.js';

const redis = useTestRedis();
const closers: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});

const MiB = 2 ** 20;

const host = (
  namespace: string,
  id: string,
  dataDir: string,
  runs: EngineRuns,
  recycle: SupervisorOptions['recycle'],
  fleet: Partial<FleetOptions> = {},
) =>
  startSimHost({
    redisUrl: redis.url,
    namespace,
    id,
    dataDir,
    runs,
    close: (fn) => closers.push(fn),
    fleet,
    supervisor: { recycle, memoryIntervalMs: 50 },
    sim: { memory: { baseBytes: 100 * MiB, leakBytesPerSec: 100 * MiB } },
  });

describe('recycling browsers by memory and age (handoff, login first)', () => {
  it('hands off the sessions whose browser grows past the limit, one at a time, with no overlap and no QR code', async () => {
    const namespace = uniqueNamespace('recycle');
    const dataDir = mkdtempSync(join(tmpdir(), 'wafleet-recycle-'));
    const runs: EngineRuns = [];
    const recycle = { memoryLimitBytes: 250 * MiB, concurrency: 1, staggerMs: 300 };
    const a = await host(namespace, 'wa-a', dataDir, runs, recycle);
    const ids = sessionIds('rc', 6);
    // Each session is scanned once (its first login), on wa-a.
    for (const sid of ids) await a.supervisor.startSession(sid);
    await waitUntil(() => ids.every((sid) => a.supervisor.session(sid)?.status === 'SCAN_QR_CODE'));
    for (const sid of ids) a.sim.scan(sid);
    await waitUntil(() => ids.every((sid) => a.supervisor.session(sid)?.status === 'WORKING'));
    // Let the first save (100 ms after ready) commit each login.
    await new Promise((r) => setTimeout(r, 400));
    const others = [await host(namespace, 'wa-b', dataDir, runs, recycle), await host(namespace, 'wa-c', dataDir, runs, recycle)];

    const leaking = ids.slice(0, 4);
    const recycling: Array<{ sessionId: string; at: number }> = [];
    a.supervisor.on('recycle', ({ sessionId, reason, memoryBytes }) => {
      expect(reason).toBe('memory');
      expect(memoryBytes).toBeGreaterThan(recycle.memoryLimitBytes);
      recycling.push({ sessionId, at: Date.now() });
    });
    for (const sid of leaking) a.sim.fault(sid, 'memory-leak');
    await waitUntil(() => leaking.every((sid) => others.some((h) => h.supervisor.session(sid)?.status === 'WORKING')), {
      timeoutMs: 15_000,
      message: 'leaking sessions not recycled to the other instances',
    });
    const stats = a.supervisor.stats();
    console.log(
      `[recycle] ${leaking.length} leaking sessions handed off at +${recycling.map((r) => r.at - recycling[0]!.at).join(', +')} ms; most at once ${stats.recyclingMax}`,
    );
    expect(stats.recycles).toEqual({ memory: 4, age: 0 });
    expect(stats.recyclingMax).toBe(1);
    // Staggered: never two within the stagger.
    for (let i = 1; i < recycling.length; i++) expect(recycling[i]!.at - recycling[i - 1]!.at).toBeGreaterThanOrEqual(recycle.staggerMs);
    // The others stay; the moved ones restored their login (no QR code on the new owner) and ran once at a time.
    for (const sid of ids.slice(4)) expect(a.supervisor.session(sid)).toMatchObject({ status: 'WORKING', restarts: 0 });
    for (const h of others)
      for (const view of h.supervisor.sessions()) expect(view.transitions.map((t) => t.to)).not.toContain('SCAN_QR_CODE');
    expect(runOverlaps(runs)).toEqual([]);
    expect(a.supervisor.stats().memoryBytes).toBeGreaterThanOrEqual(2 * 100 * MiB);
  });

  it('recycles by age, spread out: never more than `concurrency` at once', async () => {
    const namespace = uniqueNamespace('recycle-age');
    const dataDir = mkdtempSync(join(tmpdir(), 'wafleet-recycle-age-'));
    const runs: EngineRuns = [];
    const recycle = { maxAgeMs: 1500, concurrency: 2, staggerMs: 100 };
    const hosts = [await host(namespace, 'wa-a', dataDir, runs, recycle), await host(namespace, 'wa-b', dataDir, runs, recycle)];
    const ids = sessionIds('age', 6);
    for (const sid of ids) await hosts[0]!.supervisor.startSession(sid);
    await waitUntil(() => ids.every((sid) => hosts[0]!.supervisor.session(sid)?.status === 'SCAN_QR_CODE'));
    for (const sid of ids) hosts[0]!.sim.scan(sid);
    await waitUntil(() => hosts.reduce((n, h) => n + h.supervisor.stats().recycles.age, 0) >= 6, { timeoutMs: 15_000 });
    for (const h of hosts) expect(h.supervisor.stats().recyclingMax).toBeLessThanOrEqual(2);
    expect(runOverlaps(runs)).toEqual([]);
  });

  it('placement and admission respect a memory budget next to maxSessions', async () => {
    const namespace = uniqueNamespace('memory-budget');
    const dataDir = mkdtempSync(join(tmpdir(), 'wafleet-memory-budget-'));
    const runs: EngineRuns = [];
    // wa-a may hold 10 sessions but only 300 MiB of browsers (three of 100 MiB); wa-b counts sessions only.
    const a = await host(namespace, 'wa-a', dataDir, runs, undefined, { memoryBudgetBytes: 300 * MiB });
    const b = await host(namespace, 'wa-b', dataDir, runs, undefined);
    for (const sid of sessionIds('mb-a', 3)) await a.supervisor.startSession(sid);
    for (const sid of sessionIds('mb-b', 5)) await b.supervisor.startSession(sid);
    const memoryOf = async () => (await a.fleet.instances()).find((i) => i.id === 'wa-a')?.memory;
    await waitUntil(async () => ((await memoryOf())?.usedBytes ?? 0) >= 300 * MiB, { message: 'wa-a never reported its memory' });
    expect(await memoryOf()).toEqual({ usedBytes: 300 * MiB, budgetBytes: 300 * MiB });
    // Admission: wa-a's own claim is refused for memory, though it holds 3 of 10 sessions.
    const refused = await a.supervisor.startSession('mb-extra').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(CapacityError);
    expect(refused).toMatchObject({ code: 'WAFLEET_CAPACITY', resource: 'memory', load: 3, maxSessions: 10 });
    // Placement: wa-a (3/10 sessions) would be the less loaded by count; its memory is full, so wa-b (5/10) gets them.
    for (const sid of sessionIds('mb-new', 3)) expect(await a.fleet.place(sid)).toMatchObject({ outcome: 'assigned', owner: 'wa-b' });
    // Memory freed (a session stopped): wa-a takes sessions again.
    await a.supervisor.stopSession('mb-a-000');
    await waitUntil(async () => ((await memoryOf())?.usedBytes ?? Infinity) < 300 * MiB, {
      message: 'wa-a never reported the freed memory',
    });
    expect(await a.fleet.place('mb-late')).toMatchObject({ outcome: 'assigned', owner: 'wa-a' });
  });

  it('refuses recycle options it cannot honour', () => {
    const fleet = offlineFleet();
    const engine = createSimEngine().factory;
    expect(() => createSupervisor({ fleet, engine, recycle: { memoryLimitBytes: 0 } })).toThrow(/recycle.memoryLimitBytes/);
    expect(() => createSupervisor({ fleet, engine, recycle: { concurrency: 0 } })).toThrow(/recycle.concurrency/);
    const double = {
      ...Object.fromEntries(
        ['on', 'ownedSessions', 'owns', 'epochOf', 'claim', 'release', 'owner', 'setStatus', 'setStopSession'].map((m) => [
          m,
          () => undefined,
        ]),
      ),
      instanceId: 'x',
    };
    expect(() => createSupervisor({ fleet: double as never, engine, recycle: {} })).toThrow(/handoff/);
  });
});
