import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createFleetClient, type FleetClient, type OwnerChange } from '@wafleet/client';
import { createFleet, type Fleet, type FleetOptions } from '@wafleet/core';
import { createFleetRouter, fleetGuard } from '@wafleet/core/express';
import { uniqueNamespace, waitUntil } from '@wafleet/test-utils';
import express from 'express';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { useTestRedis } from './helpers/fleet-harness.js';

const redis = useTestRedis();
const ADMIN_TOKEN = 'test-admin-token-0123456789abcdefghij';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
const fleets: Fleet[] = [];
const clients: FleetClient[] = [];
const servers: Server[] = [];

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(fleets.map((f) => f.close()));
  for (const s of servers) s.close();
});

/** An in-process instance: a fleet and a real HTTP server with the router and a guarded route. */
async function instance(namespace: string, instanceId: string, extra: Partial<FleetOptions> = {}): Promise<Fleet> {
  const app = express();
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  servers.push(server);
  const port = (server.address() as AddressInfo).port;
  const fleet = createFleet({
    redis: redis.url,
    namespace,
    instanceId,
    url: `http://127.0.0.1:${port}`,
    maxSessions: 50,
    quarantineMs: 0,
    ...extra,
  });
  fleets.push(fleet);
  app.use(createFleetRouter(fleet, { registry: new Registry(), auth: { token: ADMIN_TOKEN } }));
  app.get('/sessions/:sessionId/ping', fleetGuard(fleet), (_req, res) => res.json({ instance: instanceId }));
  await fleet.start();
  return fleet;
}

function client(namespace: string): FleetClient {
  const c = createFleetClient({ redis: redis.url, namespace, failoverTimeoutMs: 3000, quarantineWaitMs: 1000 });
  clients.push(c);
  return c;
}

const evalshaCalls = async () => Number(/cmdstat_evalsha:calls=(\d+)/.exec(await redis.client.info('commandstats'))?.[1] ?? 0);
const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

describe('@wafleet/client', () => {
  it('close() resolves, for every caller, only once its Redis connections are closed', async () => {
    const connections = async () =>
      String(await redis.client.client('LIST'))
        .trim()
        .split('\n').length;
    const before = await connections();
    const c = createFleetClient({ redis: redis.url, namespace: uniqueNamespace('close') });
    await c.connect();
    expect(await connections()).toBe(before + 2);
    void c.close();
    await c.close();
    expect(await connections()).toBe(before);
  });

  it('rejects invalid session ids, paths and options before any network call', async () => {
    expect(() => createFleetClient({ redis: 'localhost:6379' })).toThrow(
      expect.objectContaining({ code: 'WAFLEET_CONFIG', option: 'redis' }),
    );
    expect(() => createFleetClient({ redis: redis.url, failoverTimeoutMs: -5 })).toThrow(/`failoverTimeoutMs`/);
    expect(() => createFleetClient({ redis: redis.url, namespace: 'a b' })).toThrow(
      expect.objectContaining({ code: 'WAFLEET_INVALID_ID' }),
    );
    // Port 1 has no Redis: a network attempt would fail differently (and slowly).
    const c = createFleetClient({ redis: 'redis://127.0.0.1:1', commandTimeoutMs: 100 });
    for (const bad of ['', 'a:b', '{x}', 'x'.repeat(129), '5511999990000@c.us', '../etc']) {
      await expect(c.lookup(bad)).rejects.toMatchObject({ code: 'WAFLEET_INVALID_ID' });
      await expect(c.fetch(bad, '/x')).rejects.toMatchObject({ code: 'WAFLEET_INVALID_ID' });
      await expect(c.place(bad)).rejects.toMatchObject({ code: 'WAFLEET_INVALID_ID' });
    }
    await expect(c.fetch('ok', 'no-slash')).rejects.toMatchObject({ code: 'WAFLEET_CONFIG', option: 'path' });
    expect(c.stats().registryReads).toBe(0);
    await c.close();
  });

  it('serves steady-state lookups from its cache: fewer than 0.001 Redis round trips per request', async () => {
    const ns = uniqueNamespace('steady');
    // Slow heartbeats and sweeps keep the instances' own traffic out of the measuring window.
    const slow = { heartbeatIntervalMs: 20_000, leaseTtlMs: 60_000, selfFenceMs: 45_000, sweepIntervalMs: 30_000 };
    const a = await instance(ns, 'a', slow);
    await instance(ns, 'b', slow);
    const ids = Array.from({ length: 20 }, (_, i) => `steady-${i}`);
    const c = client(ns);
    for (const id of ids) await c.place(id);
    await waitUntil(() => fleets.filter((f) => f.namespace === ns).reduce((n, f) => n + f.ownedSessions().size, 0) === 20);
    for (const id of ids) expect((await c.fetch(id, `/sessions/${id}/ping`)).status).toBe(200);

    const requests = 5000;
    const before = await evalshaCalls();
    for (let i = 0; i < requests; i++) {
      const id = ids[i % ids.length]!;
      const res = await c.fetch(id, `/sessions/${id}/ping`);
      expect(res.status).toBe(200);
      await res.body?.cancel();
    }
    const roundTrips = (await evalshaCalls()) - before;
    console.log(
      `steady state: ${roundTrips} registry round trips for ${requests} requests (${(roundTrips / requests).toFixed(5)} per request)`,
    );
    expect(roundTrips / requests).toBeLessThan(0.001);
    expect(a.stats().renewalFailures).toBe(0);
  });

  it('receives owner changes by push within 100 ms at p99 and keeps its cache current', async () => {
    const ns = uniqueNamespace('push');
    const a = await instance(ns, 'a');
    const b = await instance(ns, 'b');
    const c = client(ns);
    await c.connect();
    const latencies: number[] = [];
    const watch = c.watch();
    // An async generator starts (and subscribes) on its first next().
    const firstChange = watch.next();
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 100; i++) {
      const sid = `push-${i}`;
      const changes: OwnerChange[] = [];
      const onChange = (ch: OwnerChange) => ch.sessionId === sid && changes.push(ch);
      c.on('change', onChange);
      const t0 = performance.now();
      await a.claim(sid);
      await a.release(sid);
      await b.claim(sid);
      await waitUntil(() => changes.some((ch) => ch.owner === 'b'), { timeoutMs: 2000 });
      latencies.push(changes.find((ch) => ch.owner === 'b')!.receivedAt - t0);
      c.off('change', onChange);
      expect((await c.lookup(sid))!.owner).toBe('b');
      await b.release(sid);
    }
    expect((await firstChange).value).toMatchObject({ sessionId: 'push-0', owner: 'a' });
    await watch.return(undefined);
    const p99 = percentile(latencies, 99);
    console.log(
      `push: owner change seen by the client p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms (claim + release + claim included)`,
    );
    expect(p99).toBeLessThan(100);
    // Lookups after each change were answered from the pushed data, not from Redis.
    expect(c.stats().cacheHits).toBeGreaterThanOrEqual(100);
  });

  it('flushes its whole cache when the subscription reconnects', async () => {
    const ns = uniqueNamespace('flush');
    const a = await instance(ns, 'a');
    const c = client(ns);
    await a.claim('f1');
    await c.lookup('f1');
    await redis.client.client('KILL', 'TYPE', 'pubsub');
    await waitUntil(() => c.stats().flushes >= 1, { message: 'no flush after the subscriber reconnected' });
    const reads = c.stats().registryReads;
    await c.lookup('f1');
    expect(c.stats().registryReads).toBe(reads + 1);
  });
});

describe('@wafleet/core/express', () => {
  it('the guard answers 421 with the current owner, and 409 to a stale expected epoch', async () => {
    const ns = uniqueNamespace('guard');
    const a = await instance(ns, 'a');
    const b = await instance(ns, 'b');
    const { epoch } = await a.claim('g1');
    const res = await fetch(`${b.url}/sessions/g1/ping`);
    expect(res.status).toBe(421);
    expect(await res.json()).toEqual({ error: 'WAFLEET_MISDIRECTED', sessionId: 'g1', owner: 'a', ownerUrl: a.url, epoch });
    const ok = await fetch(`${a.url}/sessions/g1/ping`, { headers: { 'x-wafleet-epoch': epoch } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-wafleet-served-epoch')).toBe(epoch);
    const stale = await fetch(`${a.url}/sessions/g1/ping`, { headers: { 'x-wafleet-epoch': '1' } });
    expect(stale.status).toBe(409);
    // A caller that knows a newer epoch than this instance holds is told to look elsewhere.
    const newer = await fetch(`${a.url}/sessions/g1/ping`, { headers: { 'x-wafleet-epoch': (BigInt(epoch) + 1n).toString() } });
    expect(newer.status).toBe(421);
    expect((await fetch(`${a.url}/sessions/a:b/ping`)).status).toBe(400);
  });

  it('readiness turns 503 during drain, /drain wants the token, liveness stays 200', async () => {
    const ns = uniqueNamespace('ready');
    const a = await instance(ns, 'a');
    await instance(ns, 'b');
    expect((await fetch(`${a.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${a.url}/drain`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${a.url}/drain`, { method: 'POST', headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const drain = await fetch(`${a.url}/drain`, { method: 'POST', headers: admin });
    expect(drain.status).toBe(202);
    const ready = await fetch(`${a.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ ready: false, state: 'draining' });
    expect((await fetch(`${a.url}/livez`)).status).toBe(200);
  });

  it('/metrics parses as Prometheus text with closed label sets only', async () => {
    const ns = uniqueNamespace('metrics');
    const a = await instance(ns, 'a');
    await a.claim('m1');
    await a.claim('m2');
    const res = await fetch(`${a.url}/metrics`, { headers: admin });
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const families = parsePrometheusTextFormat(await res.text()) as Array<{
      name: string;
      metrics: Array<{ labels?: Record<string, string>; value?: string }>;
    }>;
    const byName = new Map(families.map((f) => [f.name, f]));
    expect(byName.get('wafleet_sessions_owned')!.metrics[0]!.value).toBe('2');
    expect(byName.get('wafleet_sessions_capacity')!.metrics[0]!.value).toBe('50');
    expect(byName.get('wafleet_lease_valid')!.metrics[0]!.value).toBe('1');
    expect(byName.get('wafleet_claims_total')!.metrics.find((m) => m.labels?.result === 'ok')!.value).toBe('2');
    // Fleet-wide gauges, from the one instance that reports them (the smallest live id: a here).
    const fleetValue = (name: string, label: string, value: string) =>
      byName.get(name)?.metrics.find((m) => m.labels?.[label] === value)?.value;
    expect(fleetValue('wafleet_fleet_sessions', 'status', 'STARTING')).toBe('2');
    expect(fleetValue('wafleet_fleet_sessions_waiting', 'reason', 'ownerless')).toBe('0');
    expect(fleetValue('wafleet_fleet_instances', 'state', 'live')).toBe('1');
    expect(fleetValue('wafleet_fleet_capacity', 'kind', 'max')).toBe('50');
    expect(fleetValue('wafleet_fleet_capacity', 'kind', 'load')).toBe('2');
    const allowed: Record<string, string[]> = {
      result: ['ok', 'failed', 'refused', 'error', 'acked', 'timeout'],
      state: ['idle', 'starting', 'active', 'fenced', 'draining', 'closed', 'live', 'expired'],
      reason: ['deadline', 'expired', 'missing', 'replaced', 'taken', 'closed', 'ownerless', 'pending', 'stopped'],
      status: ['STOPPED', 'STARTING', 'SCAN_QR_CODE', 'WORKING', 'FAILED'],
      kind: ['max', 'load'],
    };
    for (const family of families.filter((f) => f.name.startsWith('wafleet_'))) {
      for (const m of family.metrics) {
        for (const [label, value] of Object.entries(m.labels ?? {})) expect(allowed[label], `${family.name}{${label}}`).toContain(value);
      }
    }
    // Another instance does not export them again (a sum over instances counts the fleet once).
    const b = await instance(ns, 'b');
    const other = await (await fetch(`${b.url}/metrics`, { headers: admin })).text();
    expect(other).toMatch(/^wafleet_sessions_owned 0$/m);
    expect(other).not.toMatch(/^wafleet_fleet_sessions\{/m);
    const again = await (await fetch(`${a.url}/metrics`, { headers: admin })).text();
    expect(again).toMatch(/^wafleet_fleet_sessions\{status="STARTING"\} 2$/m);
  });

  it('GET /sessions lists owned sessions and GET /sessions/:id reads the registry', async () => {
    const ns = uniqueNamespace('routes');
    const a = await instance(ns, 'a');
    const { epoch } = await a.claim('r1');
    expect(await (await fetch(`${a.url}/sessions`, { headers: admin })).json()).toEqual({
      instance: 'a',
      maxSessions: 50,
      sessions: [{ sessionId: 'r1', epoch }],
    });
    expect(await (await fetch(`${a.url}/sessions/r1`, { headers: admin })).json()).toMatchObject({ owner: 'a', epoch, live: true });
    expect((await fetch(`${a.url}/sessions/nope`, { headers: admin })).status).toBe(404);
    expect((await fetch(`${a.url}/sessions/r1/qr`, { headers: admin })).status).toBe(404);
  });
});
