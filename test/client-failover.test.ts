import { randomUUID } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createFleetClient, type FleetClient } from '@wafleet/client';
import { freePort, sleep, uniqueNamespace, waitUntil } from '@wafleet/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { journalPath, startInstance, useTestRedis, type InstanceProcess } from './helpers/fleet-harness.js';

const redis = useTestRedis();
const clients: FleetClient[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

// Lease TTL 2 s + adoption delay 0.5 s + one sweep: a new owner exists about 2.7 s after a kill.
const FAILOVER_TIMEOUT_MS = 6000;

async function httpInstance(
  namespace: string,
  instanceId: string,
  sends: string,
  extra: { url?: string; port?: number; abandonedPolicy?: 'retry' | 'conflict' } = {},
): Promise<InstanceProcess> {
  const port = extra.port ?? (await freePort());
  return startInstance({
    redis: redis.url,
    namespace,
    instanceId,
    maxSessions: 20,
    url: extra.url ?? `http://127.0.0.1:${port}`,
    http: { port, sends, abandonedPolicy: extra.abandonedPolicy },
  });
}

function client(namespace: string): FleetClient {
  const c = createFleetClient({
    redis: redis.url,
    namespace,
    failoverTimeoutMs: FAILOVER_TIMEOUT_MS,
  });
  clients.push(c);
  return c;
}

function sendsOf(path: string): Array<{ instance: string; session: string; key: string }> {
  return existsSync(path)
    ? readFileSync(path, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
    : [];
}

const send = (c: FleetClient, sessionId: string, key: string | undefined, body: Record<string, unknown> = {}) =>
  c.fetch(sessionId, `/sessions/${sessionId}/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
    body: JSON.stringify(body),
  });

/** A loopback proxy that, once armed, swallows the next response and calls `onResponse` instead. */
async function responseDroppingProxy(targetPort: number): Promise<{ port: number; arm(onResponse: () => void): void; close(): void }> {
  let armed: (() => void) | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((down) => {
    const up = connect(targetPort, '127.0.0.1');
    sockets.add(down).add(up);
    down.pipe(up);
    up.on('data', (chunk) => {
      if (armed) {
        const fire = armed;
        armed = undefined;
        down.destroy();
        fire();
      } else down.write(chunk);
    });
    const end = () => (up.destroy(), down.destroy());
    up.on('error', end).on('close', end);
    down.on('error', end).on('close', end);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { port, arm: (fn) => (armed = fn), close: () => (server.close(), sockets.forEach((s) => s.destroy())) };
}

describe('failover fetch under load (G5, G4)', () => {
  it('200 requests/s across 3 instances, one kill -9ed: every request completes within failoverTimeoutMs', async () => {
    const ns = uniqueNamespace('load');
    const sends = journalPath('sends');
    const instances = await Promise.all(['a', 'b', 'c'].map((id) => httpInstance(ns, id, sends)));
    const c = client(ns);
    const ids = Array.from({ length: 30 }, (_, i) => `load-${i}`);
    for (const id of ids) await c.place(id);
    await waitUntil(() => instances.reduce((n, p) => n + p.events('assigned').length, 0) === 30, { message: 'sessions not started' });

    const results: Array<{ status: number | string; ms: number; key: string }> = [];
    const inflight: Promise<void>[] = [];
    const total = 1600;
    const started = performance.now();
    let killedAt = 0;
    for (let i = 0; i < total; i++) {
      // 200/s: request i is due at i * 5 ms.
      const due = started + i * 5;
      if (performance.now() < due) await sleep(due - performance.now());
      if (i === 400) {
        void instances[1]!.child.kill('SIGKILL');
        killedAt = performance.now();
      }
      const key = randomUUID();
      const t0 = performance.now();
      inflight.push(
        send(c, ids[i % ids.length]!, key).then(
          async (res) => {
            results.push({ status: res.status, ms: performance.now() - t0, key });
            await res.body?.cancel();
          },
          (err: Error & { code?: string }) => {
            results.push({ status: err.code ?? err.message, ms: performance.now() - t0, key });
          },
        ),
      );
    }
    await Promise.all(inflight);
    const failures = results.filter((r) => r.status !== 201);
    const slowest = Math.max(...results.map((r) => r.ms));
    const executions = new Map<string, number>();
    for (const s of sendsOf(sends)) executions.set(s.key, (executions.get(s.key) ?? 0) + 1);
    const duplicates = [...executions.values()].filter((n) => n > 1).length;
    const rate = total / ((performance.now() - started) / 1000);
    console.log(
      `failover load: ${total} requests at ${rate.toFixed(0)}/s, instance b killed ${(killedAt - started).toFixed(0)} ms in; failures ${failures.length}, slowest ${slowest.toFixed(0)} ms, failovers ${c.stats().failovers}, duplicate executions ${duplicates}`,
    );
    expect(failures).toEqual([]);
    expect(slowest).toBeLessThan(FAILOVER_TIMEOUT_MS);
    expect(c.stats().failovers).toBeGreaterThan(0);
    // Every acknowledged send was executed (at least once).
    for (const r of results) expect(executions.get(r.key)).toBeGreaterThanOrEqual(1);
  });
});

describe('idempotency across a kill -9 (G5)', () => {
  it('a send whose first attempt completed is executed once: the retry gets the stored response', async () => {
    const ns = uniqueNamespace('idem-done');
    const sends = journalPath('sends');
    const portA = await freePort();
    const proxy = await responseDroppingProxy(portA);
    const a = await httpInstance(ns, 'a', sends, { port: portA, url: `http://127.0.0.1:${proxy.port}` });
    await a.run('claim', { ids: ['s1'] });
    const b = await httpInstance(ns, 'b', sends);
    const c = client(ns);
    // The response is lost on its way back and the instance dies right then: "completed, but did the caller see it?"
    proxy.arm(() => void a.child.kill('SIGKILL'));
    const res = await send(c, 's1', 'key-1', { text: 'hello' });
    proxy.close();
    expect(res.status).toBe(201);
    expect(res.headers.get('idempotent-replayed')).toBe('true');
    expect(await res.json()).toMatchObject({ instance: 'a', key: 'key-1' });
    expect(sendsOf(sends).filter((s) => s.key === 'key-1')).toEqual([expect.objectContaining({ instance: 'a' })]);
    expect(b.events('send-started')).toEqual([]);
  });

  it('policy retry: an attempt that died in flight is executed again on the new owner (at-least-once)', async () => {
    const ns = uniqueNamespace('idem-retry');
    const sends = journalPath('sends');
    const a = await httpInstance(ns, 'a', sends, { abandonedPolicy: 'retry' });
    await a.run('claim', { ids: ['s1'] });
    await httpInstance(ns, 'b', sends, { abandonedPolicy: 'retry' });
    const c = client(ns);
    const pending = send(c, 's1', 'key-2', { delayMs: 3000 });
    await a.child.waitFor((m) => m.ev === 'send-started');
    await a.child.kill('SIGKILL');
    const res = await pending;
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ instance: 'b' });
    expect(
      sendsOf(sends)
        .filter((s) => s.key === 'key-2')
        .map((s) => s.instance),
    ).toEqual(['b']);
  });

  it('policy conflict: an attempt that died in flight is never executed again (at-most-once), the caller gets 409', async () => {
    const ns = uniqueNamespace('idem-conflict');
    const sends = journalPath('sends');
    const a = await httpInstance(ns, 'a', sends, { abandonedPolicy: 'conflict' });
    await a.run('claim', { ids: ['s1'] });
    const b = await httpInstance(ns, 'b', sends, { abandonedPolicy: 'conflict' });
    const c = client(ns);
    const pending = send(c, 's1', 'key-3', { delayMs: 3000 });
    await a.child.waitFor((m) => m.ev === 'send-started');
    await a.child.kill('SIGKILL');
    const res = await pending;
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ error: 'WAFLEET_IDEMPOTENCY_UNKNOWN_OUTCOME' });
    expect(sendsOf(sends).filter((s) => s.key === 'key-3')).toEqual([]);
    expect(b.events('send-started')).toEqual([]);
  });

  it('replays a completed key, refuses a reused key with another body, and a repeat while the first is running', async () => {
    const ns = uniqueNamespace('idem-live');
    const sends = journalPath('sends');
    const a = await httpInstance(ns, 'a', sends);
    await a.run('claim', { ids: ['s1'] });
    const c = client(ns);
    const first = await send(c, 's1', 'key-4', { text: 'x' });
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const again = await send(c, 's1', 'key-4', { text: 'x' });
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect((await send(c, 's1', 'key-4', { text: 'other' })).status).toBe(422);
    const slow = send(c, 's1', 'key-5', { delayMs: 500 });
    await a.child.waitFor((m) => m.ev === 'send-started' && m.key === 'key-5');
    const concurrent = await send(c, 's1', 'key-5', { delayMs: 500 });
    expect(concurrent.status).toBe(409);
    expect(await concurrent.json()).toMatchObject({ error: 'WAFLEET_IDEMPOTENCY_IN_FLIGHT' });
    expect((await slow).status).toBe(201);
    expect(sendsOf(sends).filter((s) => s.key === 'key-4' || s.key === 'key-5')).toHaveLength(2);
  });

  it('a POST without Idempotency-Key is not retried after a connection reset', async () => {
    const ns = uniqueNamespace('no-key');
    const sends = journalPath('sends');
    const a = await httpInstance(ns, 'a', sends);
    await a.run('claim', { ids: ['s1'] });
    await httpInstance(ns, 'b', sends);
    const c = client(ns);
    // Settled into a value at once, so the rejection is never momentarily unhandled.
    const outcome = send(c, 's1', undefined, { delayMs: 3000 }).then(
      (res) => res.status,
      (err: Error) => err,
    );
    await a.child.waitFor((m) => m.ev === 'send-started');
    await a.child.kill('SIGKILL');
    expect(await outcome).toBeInstanceOf(Error);
    expect(c.stats().failovers).toBe(0);
  });
});
