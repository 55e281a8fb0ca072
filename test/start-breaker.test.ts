import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createOutbox,
  createStartBreaker,
  createSupervisor,
  type Fleet,
  type Outbox,
  type StartBreaker,
  type Supervisor,
} from '@wafleet/core';
import { createSupervisorMetrics } from '@wafleet/core/express';
import { createSimEngine } from '@wafleet/sim';
import { freePort, sleep, spawnProcess, uniqueNamespace, waitUntil, type ChildHandle } from '@wafleet/test-utils';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { offlineFleet, sessionIds, snapshot, testFleet, useTestRedis } from './helpers/fleet-harness.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';

const SECRET = `whsec_${Buffer.from('wafleet-start-breaker-secret').toString('base64')}`;
const redis = useTestRedis();
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'packages', 'sim', 'bin', 'wafleet-sim.mjs');
const BREAKER = { windowMs: 5000, minFailures: 5, failureRatio: 0.8, probeIntervalMs: 1000, probeStarts: 2 };

interface Host {
  fleet: Fleet;
  supervisor: Supervisor;
  breaker: StartBreaker;
  outbox: Outbox;
  changes: Array<{ at: number; state: string; kind: string }>;
}

async function host(namespace: string, instanceId: string, receiver: Receiver, failStart: () => boolean, starts: number[]): Promise<Host> {
  const outbox = createOutbox({
    store: join(mkdtempSync(join(tmpdir(), 'wafleet-breaker-')), 'outbox.sqlite'),
    endpoint: { url: `${receiver.url}/hooks`, secrets: [SECRET] },
    pollIntervalMs: 20,
  });
  const fleet = testFleet(redis.url, namespace, instanceId, { outbox });
  const breaker = createStartBreaker({ fleet, ...BREAKER });
  const sim = createSimEngine({ failStart: () => failStart() });
  const supervisor = createSupervisor({
    fleet,
    engine: sim.factory,
    breaker,
    restart: { baseMs: 50, maxMs: 200, maxAttempts: 10_000 },
    startTimeoutMs: 2000,
    onEngine: ({ event }) => event === 'start' && starts.push(Date.now()),
  });
  const changes: Host['changes'] = [];
  breaker.on('change', ({ state, kind }) => changes.push({ at: Date.now(), state, kind }));
  await outbox.start();
  await fleet.start();
  supervisor.start();
  closers.push(
    () => outbox.close(),
    () => fleet.close(),
    () => supervisor.close(),
  );
  return { fleet, supervisor, breaker, outbox, changes };
}

describe('the fleet-wide start breaker', () => {
  it('opens within its window when every start fails the same way (restarts stop, one alert), probes, and closes once starts succeed', async () => {
    const receiver = await startReceiver();
    closers.push(() => receiver.close());
    const namespace = uniqueNamespace('breaker');
    let broken = true;
    const starts: number[] = [];
    const hosts: Host[] = [];
    for (const id of ['wa-1', 'wa-2', 'wa-3']) hosts.push(await host(namespace, id, receiver, () => broken, starts));
    const ids = sessionIds('brk', 12);
    const firstStart = Date.now();
    for (const sid of ids) await hosts[0]!.fleet.place(sid);

    const changes = () => hosts.flatMap((h) => h.changes).sort((x, y) => x.at - y.at);
    await waitUntil(() => changes().some((c) => c.state === 'open'), { timeoutMs: 10_000 });
    const opened = changes().find((c) => c.state === 'open')!;
    expect(opened.at - firstStart).toBeLessThan(BREAKER.windowMs);
    expect(opened.kind).toBe('start failed: simulated launch failure (net::ERR_NAME_NOT_RESOLVED)');

    // Restarts stop: over 3 s only the probe starts (2 per 1 s round across the fleet) run, not ~15 per second.
    await new Promise((r) => setTimeout(r, 500));
    const from = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    const during = starts.filter((t) => t >= from && t < from + 3000).length;
    const before = starts.filter((t) => t >= opened.at - 1000 && t < opened.at).length;
    console.log(`[breaker] starts in the second before it opened: ${before}; in 3 s while open: ${during}`);
    expect(during).toBeGreaterThan(0);
    expect(during).toBeLessThanOrEqual(BREAKER.probeStarts * 4);
    // Without it, each of the 12 sessions would restart at least every 200 ms (restart.maxMs) plus its failed launch.

    // Sessions stay owned and say why they wait; the metrics say the breaker is open.
    const owned = hosts.reduce((n, h) => n + h.fleet.ownedSessions().size, 0);
    expect(owned).toBe(ids.length);
    const views = hosts.flatMap((h) => h.supervisor.sessions());
    expect(views.filter((v) => v.heldByBreaker === opened.kind).length).toBeGreaterThanOrEqual(ids.length - BREAKER.probeStarts * 2);
    expect(views.every((v) => v.failure?.class === 'start-failed')).toBe(true);
    const registry = createSupervisorMetrics(hosts[0]!.supervisor, new Registry());
    const text = await registry.metrics();
    expect(text).toMatch(/^wafleet_start_breaker_open 1$/m);
    expect(text).toMatch(/^wafleet_restarts_held [1-9]\d*$/m);
    expect(text).toMatch(/^wafleet_session_failures_total\{class="start-failed"\} [1-9]\d*$/m);

    // Starts work again: the next probe closes it and every session comes up.
    broken = false;
    const fixedAt = Date.now();
    await waitUntil(() => views.length > 0 && hosts.every((h) => h.supervisor.sessions().every((v) => v.status === 'WORKING')), {
      timeoutMs: 10_000,
    });
    console.log(`[breaker] all ${ids.length} sessions WORKING ${Date.now() - fixedAt} ms after starts were fixed`);
    await waitUntil(() => receiver.received.some((r) => r.json?.type === 'fleet.breaker.closed'), { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 300));
    const alerts = receiver.received.map((r) => r.json?.type).filter((t) => t?.startsWith('fleet.breaker.'));
    expect(alerts).toEqual(['fleet.breaker.opened', 'fleet.breaker.closed']);
    expect(changes().map((c) => c.state)).toEqual(['open', 'closed']);
    expect(await registry.metrics()).toMatch(/^wafleet_start_breaker_open 0$/m);
  });

  it('across instance processes (wafleet-sim --breaker): one alert, restarts held, every session WORKING once starts work again', async () => {
    const receiver = await startReceiver();
    closers.push(() => receiver.close());
    const namespace = uniqueNamespace('breaker-processes');
    const dir = mkdtempSync(join(tmpdir(), 'wafleet-breaker-processes-'));
    // While this file exists every launch fails, on every instance: a WhatsApp Web update that broke injection.
    const broken = join(dir, 'broken');
    writeFileSync(broken, '');
    const children: ChildHandle[] = [];
    for (const id of ['wa-1', 'wa-2', 'wa-3']) {
      const child = spawnProcess(
        process.execPath,
        [
          ...[BIN, 'instance', '--redis', redis.url, '--namespace', namespace, '--id', id, '--port', String(await freePort())],
          ...['--max-sessions', '10', '--heartbeat-ms', '200', '--lease-ttl-ms', '2000', '--self-fence-ms', '1400'],
          ...['--adoption-delay-ms', '500', '--sweep-ms', '200', '--fail-starts-file', broken, '--breaker', '--breaker-probe-ms', '1000'],
          ...['--restart-base-ms', '50', '--restart-max-ms', '200', '--restart-max-attempts', '1000'],
          ...['--outbox', join(dir, `${id}.sqlite`), '--webhook-url', `${receiver.url}/hooks`, '--webhook-secret', SECRET],
        ],
        { name: id, env: { WAFLEET_ADMIN_TOKEN: 'breaker-test-token-0123456789abcdef' } },
      );
      closers.push(() => child.kill('SIGKILL'));
      await child.waitFor((m) => m['ev'] === 'ready', 20_000);
      children.push(child);
    }
    const placer = spawnProcess(process.execPath, [BIN, 'sessions', '--redis', redis.url, '--namespace', namespace, '--count', '12'], {
      name: 'placer',
    });
    await placer.waitFor((m) => m['ev'] === 'placed', 20_000);
    await waitUntil(() => receiver.received.some((r) => r.json?.type === 'fleet.breaker.opened'), {
      timeoutMs: 20_000,
      message: 'no alert',
    });
    const openers = children.filter((c) => c.messages.some((m) => m['ev'] === 'breaker' && m['state'] === 'open'));
    expect(openers).toHaveLength(1);
    // Held: over 3 s only probe launches happen (2 per 1 s round across the three processes).
    await sleep(500);
    const launches = () =>
      children.reduce((n, c) => n + c.messages.filter((m) => m['ev'] === 'status' && m['status'] === 'STARTING').length, 0);
    const before = launches();
    await sleep(3000);
    const during = launches() - before;
    console.log(`[breaker] processes: ${during} launches in 3 s while open`);
    expect(during).toBeLessThanOrEqual(2 * 4);
    // Fixed: the next probe succeeds, the breaker closes (one more alert) and every session comes up.
    rmSync(broken);
    await waitUntil(
      async () => {
        const { sessions } = await snapshot(redis.client, namespace);
        return sessions.size === 12 && [...sessions.values()].every((r) => r.status === 'WORKING');
      },
      { timeoutMs: 20_000, message: 'sessions not WORKING after starts were fixed' },
    );
    await waitUntil(() => receiver.received.some((r) => r.json?.type === 'fleet.breaker.closed'), { timeoutMs: 5000 });
    await sleep(300);
    expect(receiver.received.map((r) => r.json?.type).filter((t) => t?.startsWith('fleet.breaker.'))).toEqual([
      'fleet.breaker.opened',
      'fleet.breaker.closed',
    ]);
  });

  it('stays closed when one session fails alone, when failures are a minority, and when they differ in kind', async () => {
    const namespace = uniqueNamespace('breaker-closed');
    const fleet = testFleet(redis.url, namespace, 'wa-1');
    await fleet.start();
    closers.push(() => fleet.close());
    const breaker = createStartBreaker({ fleet, ...BREAKER });
    // One session crash-looping: 20 failures, one session.
    for (let i = 0; i < 20; i++) await breaker.record('alone', { ok: false, reason: 'start deadline passed' });
    expect(breaker.state).toBe('closed');
    // 6 sessions fail, 6 succeed: half, below 80 %.
    for (const sid of sessionIds('ok', 6)) await breaker.record(sid, { ok: true });
    for (const sid of sessionIds('half', 6)) await breaker.record(sid, { ok: false, reason: 'start failed: boom' });
    expect(breaker.state).toBe('closed');
    // Many failures, each its own kind (digits aside, which are masked: these differ in words).
    for (const [i, sid] of sessionIds('kinds', 5).entries())
      await breaker.record(sid, { ok: false, reason: `start failed: cause ${'abcde'[i]}` });
    expect(breaker.state).toBe('closed');
    expect(await breaker.permit('alone')).toEqual({ permitted: true, probe: false });
  });

  it('while open, permits exactly probeStarts restarts per probe round across instances', async () => {
    const namespace = uniqueNamespace('breaker-permit');
    const mk = async (id: string) => {
      const fleet = testFleet(redis.url, namespace, id);
      await fleet.start();
      closers.push(() => fleet.close());
      return createStartBreaker({ fleet, ...BREAKER });
    };
    const [a, b] = [await mk('wa-1'), await mk('wa-2')];
    const opened: string[] = [];
    a.on('change', ({ state }) => opened.push(`a:${state}`));
    b.on('change', ({ state }) => opened.push(`b:${state}`));
    for (const [i, sid] of sessionIds('p', 8).entries()) await (i % 2 ? a : b).record(sid, { ok: false, reason: 'start deadline passed' });
    expect(opened).toEqual(['b:open']);
    // The first round begins at the opening: nothing until it ends.
    const first = await a.permit('p-000');
    expect(first).toMatchObject({ permitted: false, kind: 'start deadline passed' });
    const wait = (first as { retryAfterMs: number }).retryAfterMs;
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(BREAKER.probeIntervalMs);
    await new Promise((r) => setTimeout(r, wait + 20));
    const round = [await a.permit('p-000'), await b.permit('p-001'), await a.permit('p-002'), await b.permit('p-003')];
    expect(round.map((p) => p.permitted)).toEqual([true, true, false, false]);
    expect(round[0]).toEqual({ permitted: true, probe: true });
    // A success anywhere closes it, once.
    await a.record('p-000', { ok: true });
    await b.record('p-001', { ok: true });
    expect(opened).toEqual(['b:open', 'a:closed']);
    expect(b.state).toBe('closed');
    expect(await b.permit('p-003')).toEqual({ permitted: true, probe: false });
  });

  it('fails open: a breaker that cannot reach Redis holds no restart', async () => {
    const fleet = offlineFleet();
    const breaker = createStartBreaker({ fleet });
    expect(await breaker.permit('s-1')).toEqual({ permitted: true, probe: false });
    await breaker.record('s-1', { ok: false, reason: 'start deadline passed' });
    expect(breaker.state).toBe('closed');
  });

  it('refuses bad options with a ConfigError naming the option', () => {
    expect(() => createStartBreaker({ fleet: {} as Fleet })).toThrow(/Fleet from createFleet/);
    const fleet = offlineFleet();
    expect(() => createStartBreaker({ fleet, failureRatio: 0 })).toThrow(/failureRatio/);
    expect(() => createStartBreaker({ fleet, minFailures: 0 })).toThrow(/minFailures/);
    expect(() => createSupervisor({ fleet, engine: () => ({}) as never, breaker: {} as never })).toThrow(/breaker/);
  });
});
