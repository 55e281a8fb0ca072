import { randomUUID } from 'node:crypto';
import { createFleetClient, type FleetClient } from '@wafleet/client';
import { sleep, uniqueNamespace, waitUntil } from '@wafleet/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_TIMING, journalPath, useTestRedis } from './helpers/fleet-harness.js';
import { duplicatedKeys, percentile, sendsOf, startHttpInstance } from './helpers/http-fleet.js';

const redis = useTestRedis();
const clients: FleetClient[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

/** Engine launch time of the fixture: a session is STARTING this long after its assignment. */
const LAUNCH_MS = 300;
/**
 * The documented failover bound: the frozen owner's lease runs out (TTL after its last renewal), the adoption
 * delay passes, the next sweep adopts, the engine launches.
 */
const FAILOVER_BOUND_MS = TEST_TIMING.leaseTtlMs! + TEST_TIMING.adoptionDelayMs! + TEST_TIMING.sweepIntervalMs! + LAUNCH_MS;
/** What the bound leaves out: pushes, registry reads, the retry itself, and timers late on 2 shared cores. */
const DELIVERY_ALLOWANCE_MS = 500;

function client(namespace: string, extra: { requestTimeoutMs?: number } = {}): FleetClient {
  const c = createFleetClient({
    redis: redis.url,
    namespace,
    failoverTimeoutMs: 6000,
    ...extra,
  });
  clients.push(c);
  return c;
}

const send = (c: FleetClient, sessionId: string, key: string | undefined) =>
  c.fetch(sessionId, `/sessions/${sessionId}/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
    body: JSON.stringify({ text: 'hello' }),
  });

async function fleetOf(label: string, ids: string[]) {
  const base = { redis: redis.url, namespace: uniqueNamespace(label), sends: journalPath(label), launchMs: LAUNCH_MS };
  const instances = await Promise.all(['a', 'b', 'c'].map((id) => startHttpInstance(base, id, { notWorking: true })));
  const c = client(base.namespace);
  for (const id of ids) await c.place(id);
  await waitUntil(async () => (await Promise.all(ids.map((id) => c.lookup(id, { details: true })))).every((o) => o?.status === 'WORKING'), {
    message: 'sessions not working',
  });
  const byId = new Map(instances.map((p) => [p.id, p]));
  const ownerOf = async (id: string) => byId.get((await c.lookup(id, { details: true }))!.owner)!;
  return { base, instances, c, ownerOf };
}

describe('the client waits out a session that is starting (G5)', () => {
  it('a 503 WAFLEET_SESSION_STARTING is waited out until the registry shows WORKING, then the send is retried and executed once', async () => {
    const { base, c, ownerOf } = await fleetOf('starting', ['st-1']);
    const owner = await ownerOf('st-1');
    await owner.run('status', { ids: ['st-1'], status: 'STARTING' });

    // What any caller gets from the guard while the session starts.
    const plain = await fetch(`${owner.url}/sessions/st-1/ping`);
    expect(plain.status).toBe(503);
    expect(plain.headers.get('retry-after')).toBe('1');
    expect(await plain.json()).toMatchObject({ error: 'WAFLEET_SESSION_STARTING', sessionId: 'st-1', status: 'STARTING', owner: owner.id });

    const pending = send(c, 'st-1', 'start-key-1');
    await waitUntil(() => c.stats().retryAfterWaits === 1, { message: 'the client did not wait' });
    expect(owner.events('send-started')).toEqual([]);
    await sleep(500);
    await owner.run('status', { ids: ['st-1'], status: 'WORKING' });
    const res = await pending;
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ instance: owner.id, key: 'start-key-1' });
    expect(sendsOf(base.sends).filter((s) => s.key === 'start-key-1')).toHaveLength(1);
  });

  it('a send without an Idempotency-Key gets the 503 itself: it is not sent twice', async () => {
    const { c, ownerOf } = await fleetOf('starting-unkeyed', ['su-1']);
    const owner = await ownerOf('su-1');
    await owner.run('status', { ids: ['su-1'], status: 'STARTING' });
    const res = await send(c, 'su-1', undefined);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: 'WAFLEET_SESSION_STARTING' });
    expect(c.stats().retryAfterWaits).toBe(0);
  });
});

describe('a frozen owner does not hold callers hostage (G5)', () => {
  it('keyed sends at 100/s over 3 instances, one SIGSTOPped past its lease: 0 failed, 0 executed twice, the slowest within the failover bound', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `frz-${i}`);
    const { base, instances, c } = await fleetOf('frozen', ids);
    const frozen = instances[1]!;
    const total = 1000;
    const results: Array<{ status: number | string; ms: number; key: string }> = [];
    const inflight: Promise<void>[] = [];
    const started = performance.now();
    let stoppedAt = 0;
    let resumed: Promise<void> | undefined;
    for (let i = 0; i < total; i++) {
      const due = started + i * 10;
      if (performance.now() < due) await sleep(due - performance.now());
      if (i === 200) {
        await frozen.child.kill('SIGSTOP');
        stoppedAt = performance.now() - started;
        // Frozen 3x its lease; it resumes fenced while the run goes on.
        resumed = sleep(3 * TEST_TIMING.leaseTtlMs!).then(() => frozen.child.kill('SIGCONT'));
      }
      const key = randomUUID();
      const t0 = performance.now();
      inflight.push(
        send(c, ids[i % ids.length]!, key).then(
          async (res) => {
            await res.arrayBuffer();
            results.push({ status: res.status, ms: performance.now() - t0, key });
          },
          (err: Error & { code?: string }) => void results.push({ status: err.code ?? err.message, ms: performance.now() - t0, key }),
        ),
      );
    }
    await Promise.all(inflight);
    await resumed;
    const failures = results.filter((r) => r.status !== 201);
    const sends = sendsOf(base.sends);
    const executed = new Set(sends.map((s) => s.key));
    const duplicates = duplicatedKeys(sends);
    const ms = results.map((r) => r.ms);
    const slowest = Math.max(...ms);
    const stats = c.stats();
    console.log(
      `frozen owner: ${total} keyed sends at 100/s, ${frozen.id} SIGSTOPped ${stoppedAt.toFixed(0)} ms in for ${3 * TEST_TIMING.leaseTtlMs!} ms; failures ${failures.length}, duplicates ${duplicates.length}, abandoned ${stats.abandoned}, 503 waits ${stats.retryAfterWaits}, failovers ${stats.failovers}; p50 ${percentile(ms, 50).toFixed(1)} ms, p99 ${percentile(ms, 99).toFixed(0)} ms, slowest ${slowest.toFixed(0)} ms (failover bound ${FAILOVER_BOUND_MS} ms + ${DELIVERY_ALLOWANCE_MS} ms delivery)`,
    );
    expect(failures).toEqual([]);
    expect(duplicates).toEqual([]);
    for (const r of results) expect(executed.has(r.key)).toBe(true);
    expect(stats.abandoned).toBeGreaterThan(0);
    expect(slowest).toBeLessThan(FAILOVER_BOUND_MS + DELIVERY_ALLOWANCE_MS);
  });

  it('a send without an Idempotency-Key to a frozen owner is not abandoned: it waits for its one answer and times out', async () => {
    const { base, ownerOf } = await fleetOf('frozen-unkeyed', ['fu-1']);
    const c = client(base.namespace, { requestTimeoutMs: 4000 });
    const owner = await ownerOf('fu-1');
    await c.lookup('fu-1');
    await owner.child.kill('SIGSTOP');
    const outcome = await send(c, 'fu-1', undefined).then(
      (res) => res.status,
      (err: Error) => err,
    );
    // The session moved meanwhile (the registry names the adopter), and the request was still not sent again.
    expect((await c.lookup('fu-1'))?.owner).not.toBe(owner.id);
    await owner.child.kill('SIGCONT');
    expect(outcome).toBeInstanceOf(Error);
    expect(c.stats().abandoned).toBe(0);
    expect(sendsOf(base.sends)).toEqual([]);
  });
});
