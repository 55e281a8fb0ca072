import {
  createSupervisor,
  startDeadmanSwitch,
  type DeadmanLike,
  type DeadmanSwitch,
  type EngineFactory,
  type Fleet,
  type FleetOptions,
  type Supervisor,
  type SupervisorOptions,
} from '@wafleet/core';
import { createSimEngine, type SimEngine } from '@wafleet/sim';
import { startRedis, uniqueNamespace, waitUntil, type RedisServerHandle } from '@wafleet/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionIds, snapshot, startInstance, testFleet } from './helpers/fleet-harness.js';

// Paused in one test, so always a private server.
let server: RedisServerHandle;
const fleets: Fleet[] = [];
const supervisors: Supervisor[] = [];

beforeAll(async () => {
  server = await startRedis();
});

afterAll(async () => {
  server.resume();
  await Promise.all(supervisors.map((s) => s.close()));
  await Promise.all(fleets.map((f) => f.close()));
  await server.stop();
});

interface Host {
  fleet: Fleet;
  supervisor: Supervisor;
  sim: SimEngine;
  starts: Array<{ t: number; sessionId: string }>;
}

async function host(
  namespace: string,
  instanceId: string,
  extra: { fleet?: Partial<FleetOptions>; supervisor?: Partial<SupervisorOptions>; sim?: SimEngine } = {},
): Promise<Host> {
  const fleet = testFleet(server.url, namespace, instanceId, extra.fleet);
  fleets.push(fleet);
  const sim = extra.sim ?? createSimEngine();
  const starts: Host['starts'] = [];
  const supervisor = createSupervisor({
    fleet,
    engine: sim.factory,
    probeIntervalMs: 100,
    probeTimeoutMs: 100,
    restart: { baseMs: 50, maxMs: 200, maxAttempts: 3 },
    startTimeoutMs: 500,
    onEngine: ({ event, sessionId }) => event === 'start' && starts.push({ t: Date.now(), sessionId }),
    ...extra.supervisor,
  });
  supervisors.push(supervisor);
  await fleet.start();
  supervisor.start();
  return { fleet, supervisor, sim, starts };
}

const statusOf = (h: Host, id: string) => h.supervisor.session(id)?.status;
const reasons = (h: Host, id: string) => h.supervisor.session(id)!.transitions.map((t) => `${t.to}:${t.reason}`);

/**
 * A host whose supervisor drives a real dead-man switch that has just fired (spent); the instance's renewals reach the
 * switch, and so re-arm it, only while `renewing()` says so.
 */
async function spentSwitchHost(name: string, startTimeoutMs: number, renewing: () => boolean): Promise<{ h: Host; sw: DeadmanSwitch }> {
  const sw = await startDeadmanSwitch();
  const deadman: DeadmanLike = {
    refresh: (inMs) => renewing() && sw.refresh(inMs),
    track: (sid, pids) => sw.track(sid, pids),
    untrack: (sid) => sw.untrack(sid),
    armed: () => sw.armed(),
  };
  const h = await host(uniqueNamespace(name), 'a', {
    sim: createSimEngine({ browserProcesses: true }),
    supervisor: { deadman, startTimeoutMs },
  });
  const fired = new Promise((resolve) => sw.once('fired', resolve));
  sw.refresh(-1);
  await fired;
  expect(sw.active).toBe(false);
  return { h, sw };
}

describe('session supervisor (G4, G1)', () => {
  it('a handoff waits for the supervisor to stop the engine, whatever stopTimeoutMs the fleet has (one owner of the stop deadline)', async () => {
    const sim = createSimEngine();
    // An engine that takes 400 ms to stop: longer than the fleet's own 100 ms, shorter than the supervisor's 2 s.
    const slow: EngineFactory = async (ctx) => {
      const engine = await sim.factory(ctx);
      return {
        start: () => engine.start(),
        probe: () => engine.probe(),
        stop: async () => {
          await new Promise((r) => setTimeout(r, 400));
          await engine.stop();
        },
      };
    };
    const h = await host(uniqueNamespace('sup-stop-owner'), 'a', {
      fleet: { stopTimeoutMs: 100 },
      supervisor: { engine: slow, stopTimeoutMs: 2000 },
    });
    await h.supervisor.startSession('slow-1');
    await waitUntil(() => statusOf(h, 'slow-1') === 'WORKING');
    const result = await h.fleet.drain();
    expect(result.failed).toBe(0);
    expect(result.handedOff + result.pending).toBe(1);
    expect(sim.running().size).toBe(0);
  });

  it('close() resolves, for every caller, only once every engine has stopped', async () => {
    const h = await host(uniqueNamespace('sup-close'), 'a');
    await h.supervisor.startSession('close-1');
    await waitUntil(() => statusOf(h, 'close-1') === 'WORKING');
    void h.supervisor.close();
    await h.supervisor.close();
    expect(h.sim.running().size).toBe(0);
    expect(statusOf(h, 'close-1')).toBe('STOPPED');
  });

  it('launches a session, records its status in the registry, and serves its QR code while it waits for a scan', async () => {
    const ns = uniqueNamespace('sup-basic');
    const h = await host(ns, 'a', { sim: createSimEngine({ requiresQr: (id) => id === 'qr-1' }) });
    await h.supervisor.startSession('s-1');
    await h.supervisor.startSession('s-1');
    await waitUntil(() => statusOf(h, 's-1') === 'WORKING');
    await waitUntil(async () => (await h.fleet.owner('s-1'))?.status === 'WORKING');
    await h.supervisor.startSession('qr-1');
    await waitUntil(() => statusOf(h, 'qr-1') === 'SCAN_QR_CODE');
    expect(h.supervisor.qr('qr-1')).toMatch(/^sim-qr:qr-1:/);
    expect(h.sim.scan('qr-1')).toBe(true);
    await waitUntil(() => statusOf(h, 'qr-1') === 'WORKING');
    expect(h.supervisor.qr('qr-1')).toBeUndefined();
    expect(h.starts.filter((s) => s.sessionId === 's-1')).toHaveLength(1);
  });

  it('detects a zombie (WORKING but not answering) and restarts it', async () => {
    const h = await host(uniqueNamespace('sup-zombie'), 'a');
    await h.supervisor.startSession('z-1');
    await waitUntil(() => statusOf(h, 'z-1') === 'WORKING');
    h.sim.fault('z-1', 'zombie');
    await waitUntil(() => h.supervisor.session('z-1')!.restarts === 1 && statusOf(h, 'z-1') === 'WORKING', {
      message: 'zombie not restarted',
    });
    expect(reasons(h, 'z-1')).toContain('FAILED:zombie: health probe failed');
  });

  it('a page that dies or freezes without any event is restarted within the probe bound; quiet healthy sessions are never restarted by the probe', async () => {
    const probeIntervalMs = 100;
    const probeTimeoutMs = 100;
    const h = await host(uniqueNamespace('sup-probe'), 'a', { supervisor: { probeIntervalMs, probeTimeoutMs } });
    const quiet = ['q-1', 'q-2', 'q-3'];
    for (const sid of [...quiet, 'dead-1', 'frozen-1']) await h.supervisor.startSession(sid);
    await waitUntil(() => h.supervisor.sessions().every((v) => v.status === 'WORKING'));
    const failedAt = (sid: string) => h.supervisor.session(sid)!.transitions.find((t) => t.to === 'FAILED')?.at;
    const t0 = Date.now();
    h.sim.fault('dead-1', 'zombie');
    h.sim.fault('frozen-1', 'frozen');
    await waitUntil(() => failedAt('dead-1') !== undefined && failedAt('frozen-1') !== undefined, { message: 'zombie not detected' });
    // Bound: the next probe (at most one period away) plus its timeout, with scheduling slack for a loaded machine.
    const bound = probeIntervalMs + probeTimeoutMs + 400;
    console.log(
      `[probe] dead page failed after ${failedAt('dead-1')! - t0} ms, frozen page after ${failedAt('frozen-1')! - t0} ms (bound ${bound} ms)`,
    );
    expect(failedAt('dead-1')! - t0).toBeLessThanOrEqual(bound);
    expect(failedAt('frozen-1')! - t0).toBeLessThanOrEqual(bound);
    expect(h.supervisor.session('dead-1')!.failure).toMatchObject({ class: 'zombie', reason: 'zombie: health probe failed' });
    expect(h.supervisor.session('frozen-1')!.failure).toMatchObject({ class: 'zombie' });
    await waitUntil(() => h.supervisor.session('frozen-1')!.restarts === 1 && statusOf(h, 'frozen-1') === 'WORKING');
    // Quiet, healthy sessions (no traffic at all) across 30 probe periods: never restarted, never failed.
    await new Promise((r) => setTimeout(r, 30 * probeIntervalMs));
    for (const sid of quiet) {
      expect(h.supervisor.session(sid)).toMatchObject({ status: 'WORKING', restarts: 0, failure: undefined });
      expect(h.starts.filter((s) => s.sessionId === sid)).toHaveLength(1);
    }
    expect(h.supervisor.stats().failures).toMatchObject({ zombie: 2, crashed: 0 });
  });

  it('does not restart a logged-out session: desired state stopped, released in the registry', async () => {
    const h = await host(uniqueNamespace('sup-logout'), 'a');
    await h.supervisor.startSession('l-1');
    await waitUntil(() => statusOf(h, 'l-1') === 'WORKING');
    h.sim.fault('l-1', 'logout');
    await waitUntil(async () => (await h.fleet.owner('l-1'))?.desired === 'stopped');
    await new Promise((r) => setTimeout(r, 500));
    expect(statusOf(h, 'l-1')).toBe('STOPPED');
    expect(h.starts.filter((s) => s.sessionId === 'l-1')).toHaveLength(1);
    expect(await h.fleet.owner('l-1')).toMatchObject({ owner: '', status: 'STOPPED', desired: 'stopped', reason: 'logged out: LOGOUT' });
    expect(h.sim.running().has('l-1')).toBe(false);
  });

  it('a conflict stops the session first; it reconnects only after confirming ownership', async () => {
    const h = await host(uniqueNamespace('sup-conflict'), 'a');
    await h.supervisor.startSession('c-1');
    await waitUntil(() => statusOf(h, 'c-1') === 'WORKING');
    h.sim.fault('c-1', 'conflict');
    await waitUntil(() => reasons(h, 'c-1').includes('STOPPED:conflict'));
    await waitUntil(() => statusOf(h, 'c-1') === 'WORKING' && h.starts.filter((s) => s.sessionId === 'c-1').length === 2);
  });

  it('restarts crashes with backoff, catches a launch that never becomes ready, and gives up after maxAttempts (FAILED)', async () => {
    const h = await host(uniqueNamespace('sup-crash'), 'a');
    await h.supervisor.startSession('x-1');
    await waitUntil(() => statusOf(h, 'x-1') === 'WORKING');
    h.sim.fault('x-1', 'crash');
    await waitUntil(() => h.supervisor.session('x-1')!.restarts === 1 && statusOf(h, 'x-1') === 'WORKING');
    // Three launches in a row that never get ready: each is caught by the start deadline, then it gives up.
    for (let i = 0; i < 3; i++) h.sim.fault('x-1', 'slow-start');
    h.sim.fault('x-1', 'crash');
    await waitUntil(() => reasons(h, 'x-1').filter((r) => r === 'FAILED:start deadline passed').length === 2, { timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 1500));
    expect(statusOf(h, 'x-1')).toBe('FAILED');
    // Giving up is visible in the registry: desired stopped (no other instance adopts it) and the last failure.
    expect(await h.fleet.owner('x-1')).toMatchObject({
      owner: 'a',
      status: 'FAILED',
      desired: 'stopped',
      reason: 'restarts exhausted: start deadline passed',
    });
    expect(h.supervisor.session('x-1')).toMatchObject({ desired: 'stopped', reason: 'restarts exhausted: start deadline passed' });
    // A restart by hand runs it again and clears the reason.
    await h.supervisor.restartSession('x-1');
    await waitUntil(async () => (await h.fleet.owner('x-1'))?.status === 'WORKING');
    expect(await h.fleet.owner('x-1')).toMatchObject({ owner: 'a', desired: 'running', reason: '' });
  });

  it('records a restart-pending session as FAILED with desired state running, so it stays adoptable', async () => {
    const h = await host(uniqueNamespace('sup-pending'), 'a', { supervisor: { restart: { baseMs: 5000, maxMs: 5000, maxAttempts: 3 } } });
    await h.supervisor.startSession('p-1');
    await waitUntil(() => statusOf(h, 'p-1') === 'WORKING');
    h.sim.fault('p-1', 'crash');
    await waitUntil(async () => (await h.fleet.owner('p-1'))?.status === 'FAILED');
    expect(await h.fleet.owner('p-1')).toMatchObject({ owner: 'a', status: 'FAILED', desired: 'running', reason: '' });
  });

  it('hands the registry metadata to the engine factory on every start, and an engine factory may be async', async () => {
    const ns = uniqueNamespace('sup-meta');
    const sim = createSimEngine();
    const seen: Array<Readonly<Record<string, unknown>>> = [];
    const h = await host(ns, 'a', {
      sim,
      supervisor: {
        engine: async (ctx) => {
          seen.push(ctx.metadata);
          await new Promise((r) => setTimeout(r, 5));
          return sim.factory(ctx);
        },
      },
    });
    await h.fleet.claim('m-1', { metadata: { workspace: 'w-1' } });
    await h.supervisor.startSession('m-1');
    await waitUntil(() => statusOf(h, 'm-1') === 'WORKING');
    await h.fleet.setMetadata('m-1', { workspace: 'w-2' });
    await h.supervisor.restartSession('m-1');
    await waitUntil(() => statusOf(h, 'm-1') === 'WORKING' && seen.length === 2);
    expect(seen).toEqual([{ workspace: 'w-1' }, { workspace: 'w-2' }]);
  });

  it('boot restore: a restarted instance takes back only what nobody took, one launch at a time with the stagger, within its cap', async () => {
    const ns = uniqueNamespace('sup-boot');
    const ids = sessionIds('b', 6);
    const old = await startInstance({ redis: server.url, namespace: ns, instanceId: 'a', maxSessions: 10 });
    await old.run('claim', { ids });
    const b = await host(ns, 'b', { fleet: { maxSessions: 2 } });
    await old.child.kill('SIGKILL');
    // b fills its two places by adoption; four sessions wait for capacity.
    await waitUntil(() => b.fleet.ownedSessions().size === 2, { timeoutMs: 10_000 });
    const a = await host(ns, 'a', { fleet: { maxSessions: 3 }, supervisor: { staggerMs: 150 } });
    await waitUntil(() => a.supervisor.sessions().filter((s) => s.status === 'WORKING').length === 3, { timeoutMs: 10_000 });
    const taken = [...b.fleet.ownedSessions().keys()];
    const mine = a.starts.map((s) => s.sessionId);
    expect(mine).toHaveLength(3);
    for (const sid of mine) expect(taken).not.toContain(sid);
    // Launches were serial: each one began at least the stagger after the previous one.
    for (let i = 1; i < a.starts.length; i++) expect(a.starts[i]!.t - a.starts[i - 1]!.t).toBeGreaterThanOrEqual(140);
    const s = await snapshot(server.client(), ns);
    expect([...s.sessions.values()].filter((r) => !r.owner && r.desired === 'running')).toHaveLength(1);
  });

  it('launches no browser while the dead-man switch is spent: it waits for the watchdog the next renewal starts', async () => {
    // The instance's renewals reach the switch only when the test lets them: the gap between the watchdog firing
    // and the next one starting is held open.
    let renewing = false;
    const { h, sw } = await spentSwitchHost('sup-spent', 5_000, () => renewing);
    try {
      await h.supervisor.startSession('spent-1');
      await new Promise((r) => setTimeout(r, 600));
      // Claimed, but no browser: one launched now would have no watchdog.
      expect(h.sim.running().size).toBe(0);
      expect(h.starts).toEqual([]);
      renewing = true;
      await waitUntil(() => statusOf(h, 'spent-1') === 'WORKING', { timeoutMs: 5_000 });
      expect(sw.active).toBe(true);
      const pid = h.sim.running().get('spent-1')!;
      // The new watchdog guards it: when it fires, the browser dies.
      renewing = false;
      sw.refresh(-1);
      await waitUntil(
        () => {
          try {
            process.kill(pid, 0);
            return false;
          } catch {
            return true;
          }
        },
        { timeoutMs: 2_000, message: 'the re-armed watchdog did not kill the browser launched after the re-arm' },
      );
    } finally {
      await sw.close();
    }
  });

  it('a dead-man switch that stays spent fails the launch at the start deadline: backoff, then FAILED, never a browser', async () => {
    // No renewal ever reaches the switch: it never re-arms.
    const { h, sw } = await spentSwitchHost('sup-unarmed', 300, () => false);
    try {
      await h.supervisor.startSession('unarmed-1');
      await waitUntil(() => h.supervisor.session('unarmed-1')?.desired === 'stopped', {
        timeoutMs: 5_000,
        message: 'the launch did not give up',
      });
      expect(h.supervisor.session('unarmed-1')).toMatchObject({
        status: 'FAILED',
        reason: 'restarts exhausted: dead-man switch not armed: no watchdog guards a new browser',
      });
      expect(h.starts).toEqual([]);
      expect(h.sim.running().size).toBe(0);
    } finally {
      await sw.close();
    }
  });

  it('on lease loss every engine is destroyed at once, and taken back when the lease returns', async () => {
    const h = await host(uniqueNamespace('sup-fence'), 'a', { sim: createSimEngine({ browserProcesses: true }) });
    for (const id of ['f-1', 'f-2']) await h.supervisor.startSession(id);
    await waitUntil(() => h.sim.running().size === 2 && statusOf(h, 'f-2') === 'WORKING');
    const pids = [...h.sim.running().values()];
    let fencedAt = 0;
    h.fleet.once('fenced', () => (fencedAt = Date.now()));
    server.pause();
    await waitUntil(() => fencedAt > 0 && h.sim.running().size === 0, { timeoutMs: 5000 });
    const stoppedWithinMs = Date.now() - fencedAt;
    server.resume();
    // The browsers themselves are gone, not just the bookkeeping (SIGKILLed by the stop; reaped a moment later).
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitUntil(() => pids.every((pid) => !alive(pid!)), { timeoutMs: 2000, message: 'a fenced session browser is still alive' });
    await waitUntil(() => statusOf(h, 'f-1') === 'WORKING' && statusOf(h, 'f-2') === 'WORKING', { timeoutMs: 10_000 });
    console.log(`fence: engines and browser processes down ${stoppedWithinMs} ms after the fenced event`);
    expect(stoppedWithinMs).toBeLessThan(500);
  });
});
