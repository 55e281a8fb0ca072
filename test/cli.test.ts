import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { uniqueNamespace, waitUntil, type ChildHandle } from '@wafleet/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshot, useTestRedis } from './helpers/fleet-harness.js';
import { placeSimSessions, startSimInstance } from './helpers/sim-instances.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'packages', 'cli', 'bin', 'wafleet.mjs');
const TOKEN = 'cli-test-admin-token-0123456789abcdef';
const redis = useTestRedis();
const namespace = uniqueNamespace('cli');
const children: ChildHandle[] = [];
const SECRET = `whsec_${Buffer.from('wafleet-cli-test-webhook-secret').toString('base64')}`;
/** wa-1's webhook receiver: it refuses (400) until a test says otherwise, so status webhooks are dead-lettered. */
let receiver: Receiver;

/** Runs the installed-style bin; resolves with its exit code and output (never rejects on a non-zero exit). */
async function wafleet(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const env = { ...process.env, WAFLEET_REDIS_URL: redis.url, WAFLEET_NAMESPACE: namespace, WAFLEET_ADMIN_TOKEN: TOKEN, NO_COLOR: '1' };
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { env });
    return { code: 0, out: stdout, err: stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout, err: e.stderr };
  }
}
const json = async (...args: string[]) => {
  const r = await wafleet(...args, '--json');
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as Record<string, unknown>;
};

beforeAll(async () => {
  receiver = await startReceiver();
  receiver.reply = () => ({ status: 400 });
  const outboxDir = mkdtempSync(join(tmpdir(), 'wafleet-cli-'));
  for (const id of ['wa-1', 'wa-2']) {
    const outbox =
      id === 'wa-1'
        ? ['--outbox', join(outboxDir, 'wa-1.sqlite'), '--webhook-url', `${receiver.url}/hooks`, '--webhook-secret', SECRET]
        : [];
    children.push(await startSimInstance(redis.url, namespace, id, { token: TOKEN, extra: outbox }));
  }
  await placeSimSessions(redis.url, namespace, 6);
  await waitUntil(
    async () => [...(await snapshot(redis.client, namespace)).sessions.values()].filter((r) => r.status === 'WORKING').length === 6,
    {
      timeoutMs: 20_000,
    },
  );
}, 60_000);

afterAll(async () => {
  await Promise.all(children.map((c) => c.kill('SIGKILL')));
  await receiver?.close();
});

describe('wafleet CLI against a running sim fleet', () => {
  it('status: instances with load, capacity and lease, and the fleet totals (--json shape; a table by default)', async () => {
    const status = await json('status');
    expect(status).toMatchObject({ namespace });
    const instances = status['instances'] as Array<Record<string, unknown>>;
    expect(instances.map((i) => i['id']).sort()).toEqual(['wa-1', 'wa-2']);
    for (const i of instances) {
      expect(i).toMatchObject({
        url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
        maxSessions: 10,
        live: true,
        draining: false,
        mode: 'managed',
      });
      expect(i['leaseLeftMs']).toBeGreaterThan(0);
    }
    expect(instances.reduce((n, i) => n + Number(i['load']), 0)).toBe(6);
    expect(status['sessions']).toMatchObject({ statuses: { WORKING: 6 }, ownerless: 0, pending: 0, capacity: 20, load: 6 });
    const table = await wafleet('status');
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/wa-1 .*\/10/);
    expect(table.out).toContain('6 working');
  });

  it('sessions, owner, place and stop: filters, shapes, and a stop through the live owner', async () => {
    const all = (await json('sessions'))['sessions'] as Array<Record<string, unknown>>;
    expect(all).toHaveLength(6);
    expect(all[0]).toEqual({
      sessionId: expect.any(String),
      owner: expect.stringMatching(/^wa-[12]$/),
      status: 'WORKING',
      desired: 'running',
      reason: '',
      epoch: expect.stringMatching(/^\d+$/),
      labels: {},
    });
    const onOne = (await json('sessions', '--instance', 'wa-1'))['sessions'] as Array<{ owner: string }>;
    expect(onOne.every((s) => s.owner === 'wa-1')).toBe(true);
    const sid = String(all[0]!['sessionId']);
    expect(await json('owner', sid)).toMatchObject({ sessionId: sid, owner: all[0]!['owner'], live: true, status: 'WORKING' });
    expect(await json('place', 'cli-new-1')).toMatchObject({
      sessionId: 'cli-new-1',
      outcome: 'assigned',
      owner: expect.stringMatching(/^wa-[12]$/),
    });
    const stopped = await wafleet('stop', sid);
    expect(stopped.code, stopped.err).toBe(0);
    await waitUntil(async () => (await json('owner', sid))['desired'] === 'stopped');
    expect((await json('sessions', '--status', 'STOPPED'))['sessions']).toEqual([
      expect.objectContaining({ sessionId: sid, desired: 'stopped' }),
    ]);
    expect((await wafleet('owner', 'nobody-here')).code).toBe(1);
  });

  it('rebalance --dry-run asks every live instance, fullest first; doctor compares each instance with the registry', async () => {
    const plan = await json('rebalance', '--dry-run');
    expect(plan['dryRun']).toBe(true);
    const rows = plan['instances'] as Array<Record<string, unknown>>;
    expect(rows.map((r) => r['instance']).sort()).toEqual(['wa-1', 'wa-2']);
    for (const r of rows) expect(r).toMatchObject({ moved: [], planned: expect.any(Array), target: expect.any(Number) });
    const doctor = await wafleet('doctor', '--json');
    const report = JSON.parse(doctor.out) as { healthy: boolean; findings: Array<{ check: string; ok: boolean }> };
    // The test's Redis runs without persistence: doctor says so (exit 1), and the instances match the registry.
    expect(report.findings.find((f) => f.check === 'persistence')).toMatchObject({ ok: false });
    expect(report.findings.filter((f) => f.check.endsWith(' sessions')).map((f) => f.ok)).toEqual([true, true]);
    expect(report.findings.find((f) => f.check === 'clock skew')).toMatchObject({ ok: true });
    expect(report.findings.find((f) => f.check === 'replication')).toMatchObject({
      ok: true,
      detail: expect.stringMatching(/^no replica/),
    });
    expect(report.findings.find((f) => f.check === 'registry era')).toMatchObject({ ok: true, detail: expect.stringMatching(/^\d+-/) });
    expect(doctor.code).toBe(report.healthy ? 0 : 1);
  });

  it('outbox dead, replay and enable-target against an instance’s admin routes', async () => {
    await waitUntil(async () => ((await json('outbox', 'dead', 'wa-1'))['events'] as unknown[]).length > 0, {
      message: 'no dead letters on wa-1',
    });
    const { events } = (await json('outbox', 'dead', 'wa-1')) as { events: Array<Record<string, unknown>> };
    expect(events[0]).toEqual({
      id: expect.any(String),
      session: expect.any(String),
      seq: expect.any(Number),
      type: expect.stringMatching(/^session\./),
      attempts: 1,
      createdAt: expect.any(Number),
      lastError: expect.any(String),
      deadReason: 'rejected with 400',
      target: `${receiver.url}/hooks`,
    });
    expect(JSON.stringify(events)).not.toContain('"data"');
    // The backend is fixed: the dead letters go out again.
    receiver.reply = () => ({ status: 204 });
    const before = receiver.received.length;
    const replayed = await json('outbox', 'replay', 'wa-1');
    expect(replayed['replayed']).toBeGreaterThanOrEqual(events.length);
    await waitUntil(() => receiver.received.length >= before + events.length);
    expect((await json('outbox', 'dead', 'wa-1'))['events']).toEqual([]);
    expect(await json('outbox', 'enable-target', 'wa-1', `${receiver.url}/hooks`)).toMatchObject({
      instance: 'wa-1',
      enabled: `${receiver.url}/hooks`,
    });
    expect((await wafleet('outbox', 'explode', 'wa-1')).code).toBe(2);
  });

  it('drain hands an instance’s sessions off through its admin route', async () => {
    const before = (await json('status'))['instances'] as Array<{ id: string; load: number }>;
    const fuller = before.sort((a, b) => b.load - a.load)[0]!;
    expect(await json('drain', fuller.id)).toMatchObject({ instance: fuller.id, draining: true });
    await waitUntil(async () =>
      ((await json('status'))['instances'] as Array<{ id: string; draining: boolean }>).some((i) => i.id === fuller.id && i.draining),
    );
  });

  it('clear errors with exit codes: unreachable Redis (3), an unreachable instance (3), bad usage (2), no token (2)', async () => {
    const down = await wafleet('status', '--redis', 'redis://:secret@127.0.0.1:1');
    expect(down.code).toBe(3);
    expect(down.err).toMatch(/^wafleet: Redis unreachable at redis:\/\/:\*\*\*@127\.0\.0\.1:1/);
    expect(down.err).not.toContain('secret');
    expect((await wafleet('frobnicate')).code).toBe(2);
    expect((await wafleet('owner')).code).toBe(2);
    expect((await wafleet('status', '--bogus')).code).toBe(2);
    expect((await wafleet('owner', 'bad id')).code).toBe(2);
    const noToken = await promisify(execFile)(process.execPath, [CLI, 'drain', 'wa-1'], {
      env: { ...process.env, WAFLEET_REDIS_URL: redis.url, WAFLEET_NAMESPACE: namespace, WAFLEET_ADMIN_TOKEN: '' },
    }).then(
      () => 0,
      (e: { code: number }) => e.code,
    );
    expect(noToken).toBe(2);
    // An instance whose lease is live but whose process is paused: the call times out.
    const victim = children[1]!;
    await victim.kill('SIGSTOP');
    try {
      const stuck = await wafleet('drain', 'wa-2', '--timeout-ms', '300');
      expect(stuck.code).toBe(3);
      expect(stuck.err).toMatch(/instance wa-2 unreachable/);
    } finally {
      await victim.kill('SIGCONT');
    }
  });
});
