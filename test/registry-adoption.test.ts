import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFleetClient } from '@wafleet/client';
import { freePort, spawnProcess, uniqueNamespace, waitUntil, type ChildHandle } from '@wafleet/test-utils';
import { describe, expect, it } from 'vitest';
import { TEST_TIMING, snapshot, useTestRedis, type SessionRecord } from './helpers/fleet-harness.js';

/*
 * Acceptance test of G4 over real `wafleet-sim instance` processes: a kill -9 of an instance whose sessions are
 * WORKING, STARTING, FAILED with a restart pending, SCAN_QR_CODE and given up. Every session that should run is
 * adopted and started by the survivor within the failover bound; only the given-up one waits, with its reason.
 */

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'packages', 'sim', 'bin', 'wafleet-sim.mjs');
const TOKEN = randomBytes(24).toString('base64url');
const { heartbeatIntervalMs, leaseTtlMs, selfFenceMs, adoptionDelayMs, sweepIntervalMs } = TEST_TIMING;
/** One launch on the adopter (spawn-free sim: auth 20 ms + ready 30 ms + two status writes), on a loaded 2-core box. */
const LAUNCH_MS = 100;
/** Scheduling noise of three Node processes, a redis-server and vitest on 2 cores. */
const SLACK_MS = 1500;

/** The failover bound from the kill: lease TTL + adoption delay + one sweep (+20% jitter) + one launch per session. */
const boundMs = (sessions: number) => leaseTtlMs + adoptionDelayMs + sweepIntervalMs * 1.2 + sessions * LAUNCH_MS + SLACK_MS;

const redis = useTestRedis();

interface SimSession {
  sessionId: string;
  status: string;
  desired: string;
  reason: string;
  metadata?: Record<string, unknown>;
}

class SimInstance {
  readonly url: string;

  private constructor(
    readonly id: string,
    readonly child: ChildHandle,
    port: number,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  static async start(namespace: string, id: string, extra: string[] = []): Promise<SimInstance> {
    const port = await freePort();
    const args = [
      BIN,
      'instance',
      ...['--redis', redis.url, '--namespace', namespace, '--id', id, '--port', String(port), '--max-sessions', '10'],
      ...['--heartbeat-ms', String(heartbeatIntervalMs), '--lease-ttl-ms', String(leaseTtlMs)],
      ...['--self-fence-ms', String(selfFenceMs), '--adoption-delay-ms', String(adoptionDelayMs), '--sweep-ms', String(sweepIntervalMs)],
      ...extra,
    ];
    const child = spawnProcess(process.execPath, args, { name: id, env: { WAFLEET_ADMIN_TOKEN: TOKEN } });
    await child.waitFor((m) => m.ev === 'ready', 20_000);
    return new SimInstance(id, child, port);
  }

  async get<T>(path: string): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return { status: res.status, body: (await res.json()) as T };
  }

  async sessions(): Promise<SimSession[]> {
    return (await this.get<SimSession[]>('/sim/sessions')).body;
  }

  /** Unix ms of the first status line `status` for `sessionId` this process printed. */
  reached(sessionId: string, status: string): number | undefined {
    const line = this.child.messages.find((m) => m.ev === 'status' && m.s === sessionId && m.status === status);
    return line ? Number(line.t) : undefined;
  }
}

const metadataOf = (sid: string) => ({ workspace: `ws-${sid}`, account: { id: 42, plan: 'pro' }, tags: [] });

describe('adoption after kill -9 (G4)', () => {
  it('adopts WORKING, STARTING, restart-pending FAILED and SCAN_QR_CODE sessions within the failover bound, shows a new QR code, and leaves the given-up session with its reason', async () => {
    const namespace = uniqueNamespace('adopt');
    const faults = ['--qr', '^qr-', '--hold-starting', '^starting-', '--fail-start', '^failing-', '--bad-config', '^gaveup-'];
    // Restart backoff of 3 s: the failing session sits FAILED (restart pending) most of the time.
    const timing = ['--start-concurrency', '5', '--start-timeout-ms', '60000', '--restart-base-ms', '3000', '--restart-max-ms', '6000'];
    const a = await SimInstance.start(namespace, 'a', [...faults, ...timing]);
    const client = createFleetClient({ redis: redis.url, namespace });
    const ids = ['working-1', 'starting-1', 'failing-1', 'qr-1', 'gaveup-1'];
    try {
      for (const sid of ids) expect((await client.place(sid, { metadata: metadataOf(sid) })).owner).toBe('a');
    } finally {
      await client.close();
    }
    // The survivor shows QR codes too (a session without a login needs one wherever it runs); nothing else fails there.
    const b = await SimInstance.start(namespace, 'b', ['--qr', '^qr-']);

    const wanted: Record<string, Partial<SessionRecord> & { reason?: string }> = {
      'working-1': { status: 'WORKING', desired: 'running' },
      'starting-1': { status: 'STARTING', desired: 'running' },
      'failing-1': { status: 'FAILED', desired: 'running' },
      'qr-1': { status: 'SCAN_QR_CODE', desired: 'running' },
      'gaveup-1': { status: 'FAILED', desired: 'stopped' },
    };
    let before = await snapshot(redis.client, namespace);
    await waitUntil(
      async () => {
        before = await snapshot(redis.client, namespace);
        return ids.every((sid) => {
          const rec = before.sessions.get(sid);
          return rec?.owner === 'a' && rec.status === wanted[sid]!.status && rec.desired === wanted[sid]!.desired;
        });
      },
      { timeoutMs: 20_000, message: 'the sessions on a never reached the statuses under test' },
    );
    const oldQr = (await a.get<{ qr: string }>('/sessions/qr-1/qr')).body.qr;
    expect(oldQr).toMatch(/^sim-qr:qr-1:/);

    await a.child.kill('SIGKILL');
    const killedAt = Date.now();
    const finalDeadline = (await snapshot(redis.client, namespace)).deadlines.get('a')!;

    const adopted = ids.filter((sid) => sid !== 'gaveup-1');
    const settledOnB = { 'working-1': 'WORKING', 'starting-1': 'WORKING', 'failing-1': 'WORKING', 'qr-1': 'SCAN_QR_CODE' } as const;
    await waitUntil(() => adopted.every((sid) => b.reached(sid, settledOnB[sid as keyof typeof settledOnB]) !== undefined), {
      timeoutMs: 20_000,
      message: 'b did not start every adoptable session',
    });
    const after = await snapshot(redis.client, namespace);
    const times: string[] = [];
    for (const sid of adopted) {
      const rec = after.sessions.get(sid)!;
      expect(rec, sid).toMatchObject({ owner: 'b', prev: 'a', desired: 'running' });
      // Adopted no earlier than the dead lease's expiry + adoption delay, and within one sweep after it.
      expect(rec.since!, sid).toBeGreaterThanOrEqual(finalDeadline + adoptionDelayMs);
      expect(rec.since! - (finalDeadline + adoptionDelayMs), sid).toBeLessThan(sweepIntervalMs * 1.2 + 400);
      const startedMs = b.reached(sid, settledOnB[sid as keyof typeof settledOnB])! - killedAt;
      expect(startedMs, sid).toBeLessThan(boundMs(adopted.length));
      times.push(`${sid} ${before.sessions.get(sid)!.status} -> ${settledOnB[sid as keyof typeof settledOnB]} in ${startedMs} ms`);
    }

    // The QR session shows a new QR code on its adopter, served by the adopter's authenticated route.
    const qr = await b.get<{ qr: string }>('/sessions/qr-1/qr');
    expect(qr.status).toBe(200);
    expect(qr.body.qr).toMatch(/^sim-qr:qr-1:/);
    expect(qr.body.qr).not.toBe(oldQr);

    // The given-up session stays where it is, visibly: ownerless, FAILED, desired stopped, with its reason.
    await new Promise((r) => setTimeout(r, sweepIntervalMs * 3));
    const gaveUp = await b.get<{ owner: string; status: string; desired: string; reason: string; live: boolean }>('/sessions/gaveup-1');
    expect(gaveUp.body).toMatchObject({ owner: '', status: 'FAILED', desired: 'stopped', live: false });
    expect(gaveUp.body.reason).toMatch(/^restarts exhausted: engine factory failed: simulated configuration error/);
    expect(await redis.client.zscore(`{wafleet:${namespace}}:pending`, 'gaveup-1')).toBeNull();
    expect((await b.sessions()).map((s) => s.sessionId)).not.toContain('gaveup-1');
    console.log(
      `adoption after kill -9 (bound ${boundMs(adopted.length)} ms = TTL ${leaseTtlMs} + delay ${adoptionDelayMs} + sweep ${sweepIntervalMs} x1.2 + ${adopted.length} x ${LAUNCH_MS} launch + ${SLACK_MS} slack): ${times.join('; ')}`,
    );
  });

  it('hands the metadata placed with a session to the engine factory of the instance that adopts it after kill -9', async () => {
    const namespace = uniqueNamespace('adopt-meta');
    const a = await SimInstance.start(namespace, 'a');
    const client = createFleetClient({ redis: redis.url, namespace });
    try {
      await client.place('meta-1', { metadata: metadataOf('meta-1') });
      const b = await SimInstance.start(namespace, 'b');
      await waitUntil(async () => (await a.sessions()).some((s) => s.sessionId === 'meta-1' && s.status === 'WORKING'));
      expect((await a.sessions()).find((s) => s.sessionId === 'meta-1')!.metadata).toEqual(metadataOf('meta-1'));
      await a.child.kill('SIGKILL');
      await waitUntil(async () => (await b.sessions()).some((s) => s.sessionId === 'meta-1' && s.status === 'WORKING'), {
        timeoutMs: 15_000,
        message: 'b did not adopt meta-1',
      });
      expect((await b.sessions()).find((s) => s.sessionId === 'meta-1')!.metadata).toEqual(metadataOf('meta-1'));
      // Callers read it too: the client's lookup and the adopter's GET /sessions/:id.
      expect(await client.lookup('meta-1', { details: true })).toMatchObject({
        owner: 'b',
        reason: '',
        metadata: metadataOf('meta-1'),
      });
      expect((await b.get('/sessions/meta-1')).body).toMatchObject({ owner: 'b', metadata: metadataOf('meta-1') });
    } finally {
      await client.close();
    }
  });
});
