import { EventEmitter } from 'node:events';
import { waitUntil } from '@wafleet/test-utils';
import { describe, expect, it } from 'vitest';
import type { FleetEvents, Ownership, SessionOwner, SessionStatus } from '../registry/fleet.js';
import type { StopSession } from '../registry/options.js';
import type { EngineContext, EngineStopReason, SessionEngine } from './engine.js';
import { createSupervisor, type SupervisedFleet } from './supervisor.js';

/** An in-memory fleet of one instance: no Redis, only what a supervisor drives. */
class FleetDouble extends EventEmitter<FleetEvents> implements SupervisedFleet {
  readonly instanceId = 'wa-1';
  readonly owned = new Map<string, string>();
  readonly statuses: Array<[string, SessionStatus]> = [];
  readonly released: string[] = [];
  stop: StopSession | undefined;
  #epoch = 0;

  ownedSessions(): Map<string, string> {
    return new Map(this.owned);
  }
  owns(sessionId: string): boolean {
    return this.owned.has(sessionId);
  }
  epochOf(sessionId: string): string | undefined {
    return this.owned.get(sessionId);
  }
  async claim(sessionId: string): Promise<Ownership> {
    const epoch = String(++this.#epoch);
    this.owned.set(sessionId, epoch);
    return { sessionId, epoch, previousOwner: '' };
  }
  async release(sessionId: string): Promise<void> {
    await this.stop?.(sessionId, 'release');
    this.owned.delete(sessionId);
    this.released.push(sessionId);
  }
  async owner(sessionId: string): Promise<SessionOwner | null> {
    const epoch = this.owned.get(sessionId);
    if (epoch === undefined) return null;
    const owner = { owner: this.instanceId, ownerUrl: 'http://wa-1:3000', live: true, desired: 'running' as const };
    return { sessionId, epoch, status: 'STARTING', reason: '', metadata: { tenant: 't-1' }, ...owner };
  }
  async setStatus(sessionId: string, status: SessionStatus): Promise<void> {
    this.statuses.push([sessionId, status]);
  }
  setStopSession(stop: StopSession): void {
    this.stop = stop;
  }
}

/** Engines that report ready as soon as they start, and record their contexts and stops. */
function engines() {
  const started: EngineContext[] = [];
  const stopped: string[] = [];
  const reasons: Array<[string, EngineStopReason | undefined]> = [];
  const factory = (ctx: EngineContext): SessionEngine => ({
    start: async () => {
      started.push(ctx);
      ctx.report({ type: 'ready' });
    },
    stop: async (reason) => {
      stopped.push(ctx.sessionId);
      reasons.push([ctx.sessionId, reason]);
    },
    probe: async () => true,
  });
  return { factory, started, stopped, reasons };
}

describe('Supervisor with a SupervisedFleet', () => {
  it('runs the sessions a fleet double assigns, records their status through it, and stops them when it fences them', async () => {
    const fleet = new FleetDouble();
    const engine = engines();
    const supervisor = createSupervisor({ fleet, engine: engine.factory, probeIntervalMs: 0 });
    supervisor.start();
    await supervisor.startSession('s1');
    await waitUntil(() => supervisor.session('s1')?.status === 'WORKING');
    expect(engine.started.map((c) => [c.sessionId, c.epoch, c.metadata])).toEqual([['s1', '1', { tenant: 't-1' }]]);

    fleet.owned.set('s2', '7');
    fleet.emit('assigned', { sessionId: 's2', epoch: '7', reason: 'placed' });
    await waitUntil(() => supervisor.session('s2')?.status === 'WORKING');
    await waitUntil(() => fleet.statuses.filter(([sid]) => sid === 's2').length === 2);
    expect(fleet.statuses.filter(([sid]) => sid === 's2').map(([, status]) => status)).toEqual(['STARTING', 'WORKING']);

    fleet.owned.delete('s2');
    fleet.emit('fenced', { sessionIds: ['s2'], reason: 'taken' });
    await waitUntil(() => supervisor.session('s2')?.status === 'STOPPED');
    expect(engine.stopped).toEqual(['s2']);
    // Fenced: the registry record is another instance's now, so nothing is written for it.
    expect(fleet.statuses.filter(([sid]) => sid === 's2').map(([, status]) => status)).toEqual(['STARTING', 'WORKING']);

    await supervisor.stopSession('s1');
    expect(fleet.released).toEqual(['s1']);
    expect(engine.stopped).toEqual(['s2', 's1']);
    await supervisor.close();
  });

  it('tells the engine why it stops, so one that keeps login data saves only when the session goes on', async () => {
    const fleet = new FleetDouble();
    const engine = engines();
    const supervisor = createSupervisor({ fleet, engine: engine.factory, probeIntervalMs: 0 });
    supervisor.start();
    for (const sid of ['h', 'f', 'r', 'x', 'c']) await supervisor.startSession(sid);
    await waitUntil(() => ['h', 'f', 'r', 'x', 'c'].every((sid) => supervisor.session(sid)?.status === 'WORKING'));
    await fleet.stop!('h', 'handoff');
    fleet.owned.delete('f');
    fleet.emit('fenced', { sessionIds: ['f'], reason: 'taken' });
    await waitUntil(() => supervisor.session('f')?.status === 'STOPPED');
    await supervisor.restartSession('r');
    await supervisor.stopSession('x');
    await supervisor.close();
    expect(engine.reasons).toEqual([
      ['h', 'handoff'],
      ['f', 'fenced'],
      ['r', 'restart'],
      ['x', 'release'],
      ['r', 'shutdown'],
      ['c', 'shutdown'],
    ]);
  });

  it('a session fenced while its engine saves before a handoff stop gets a fenced stop at once', async () => {
    const fleet = new FleetDouble();
    const reasons: Array<EngineStopReason | undefined> = [];
    // The handoff stop hangs in its login save until a fenced stop cuts it short, as SessionEngine.stop asks.
    let cut!: () => void;
    const saving = new Promise<void>((r) => (cut = r));
    const supervisor = createSupervisor({
      fleet,
      probeIntervalMs: 0,
      engine: (ctx) => ({
        start: async () => ctx.report({ type: 'ready' }),
        stop: async (reason) => {
          reasons.push(reason);
          if (reason === 'fenced') cut();
          else await saving;
        },
        probe: async () => true,
      }),
    });
    supervisor.start();
    await supervisor.startSession('h');
    await waitUntil(() => supervisor.session('h')?.status === 'WORKING');
    let handedOff = false;
    const handoff = fleet.stop!('h', 'handoff').then(() => (handedOff = true));
    await waitUntil(() => reasons.length === 1);
    fleet.owned.delete('h');
    fleet.emit('fenced', { sessionIds: ['h'], reason: 'deadline' });
    await waitUntil(() => reasons.length === 2);
    await handoff;
    expect(reasons).toEqual(['handoff', 'fenced']);
    expect(handedOff).toBe(true);
    await supervisor.close();
  });

  it('a start() that never settles holds the launch queue only until the start deadline', async () => {
    const fleet = new FleetDouble();
    const stopped: string[] = [];
    const supervisor = createSupervisor({
      fleet,
      probeIntervalMs: 0,
      startTimeoutMs: 200,
      restart: { baseMs: 60_000 },
      engine: (ctx) => ({
        // 'hung' never returns from start() and reports nothing (a restore from a store that stopped answering).
        start: () => (ctx.sessionId === 'hung' ? new Promise<void>(() => {}) : Promise.resolve(ctx.report({ type: 'ready' }))),
        stop: async () => void stopped.push(ctx.sessionId),
        probe: async () => true,
      }),
    });
    supervisor.start();
    await supervisor.startSession('hung');
    await supervisor.startSession('next');
    await waitUntil(() => supervisor.session('next')?.status === 'WORKING', { timeoutMs: 3000, message: 'the queue stayed blocked' });
    expect(supervisor.session('hung')).toMatchObject({ status: 'FAILED' });
    expect(stopped).toEqual(['hung']);
    await supervisor.close();
  });

  it('refuses a fleet without a member it drives, naming what is missing', () => {
    const engine = engines();
    const partial = { instanceId: 'wa-1', on() {}, owns: () => false } as unknown as SupervisedFleet;
    expect(() => createSupervisor({ fleet: partial, engine: engine.factory })).toThrow(
      expect.objectContaining({
        code: 'WAFLEET_CONFIG',
        option: 'fleet',
        message: expect.stringContaining('missing ownedSessions, epochOf, claim, release, owner, setStatus, setStopSession'),
      }),
    );
    expect(() => createSupervisor({ fleet: undefined as unknown as SupervisedFleet, engine: engine.factory })).toThrow(
      expect.objectContaining({ option: 'fleet', message: expect.stringContaining('missing instanceId, on,') }),
    );
  });
});
