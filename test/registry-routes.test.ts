import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFleet, createSupervisor, registryKeys, type Fleet, type Supervisor } from '@wafleet/core';
import { createFleetRouter, fleetGuard } from '@wafleet/core/express';
import { createSimEngine } from '@wafleet/sim';
import { uniqueNamespace, waitUntil } from '@wafleet/test-utils';
import express from 'express';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_TIMING, useTestRedis } from './helpers/fleet-harness.js';

/*
 * Stop, restart and place from any instance (real redis-server, real HTTP): the routes of createFleetRouter and a
 * host route behind fleetGuard({ unowned: 'pass' }).
 */

const redis = useTestRedis();
const TOKEN = 'routes-admin-token-0123456789abcdefghij';
const admin = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
const closers: Array<() => Promise<unknown>> = [];
const servers: Server[] = [];

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  for (const s of servers) s.close();
});

interface Member {
  fleet: Fleet;
  supervisor: Supervisor;
  url: string;
  /** Sessions whose engine cannot be built here (the supervisor gives up at once). */
  broken: Set<string>;
}

async function member(namespace: string, instanceId: string, maxSessions = 5): Promise<Member> {
  const app = express();
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const fleet = createFleet({ redis: redis.url, namespace, instanceId, url, maxSessions, ...TEST_TIMING, quarantineMs: 0 });
  const broken = new Set<string>();
  const supervisor = createSupervisor({
    fleet,
    engine: createSimEngine({ badConfig: (id) => broken.has(id) }).factory,
    probeIntervalMs: 0,
  });
  closers.push(
    () => supervisor.close(),
    () => fleet.close(),
  );
  app.use(createFleetRouter(fleet, { auth: { token: TOKEN }, registry: new Registry(), supervisor }));
  // A host's own "disconnect" route: a session nobody runs reaches it, so a pending placement can be cancelled.
  app.post('/api/sessions/:sessionId/disconnect', fleetGuard(fleet, { unowned: 'pass' }), async (req, res) => {
    const sessionId = req.params.sessionId as string;
    if (fleet.owns(sessionId)) await supervisor.stopSession(sessionId);
    else await fleet.stop(sessionId);
    res.json({ disconnected: sessionId });
  });
  await fleet.start();
  supervisor.start();
  return { fleet, supervisor, url, broken };
}

const post = (url: string, headers: Record<string, string> = admin, body?: unknown) =>
  fetch(url, { method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) });

describe('stop, restart and place for sessions nobody owns (HTTP)', () => {
  it('a stop of a pending session removes it from the pending set, and it is never placed', async () => {
    const ns = uniqueNamespace('routes-stop');
    const keys = registryKeys(ns);
    const a = await member(ns, 'a', 1);
    await a.fleet.claim('busy-1');
    // No capacity anywhere: the session waits for placement and answers 421 owner "" everywhere.
    const placed = await post(`${a.url}/sessions/wait-1/place`, admin, { metadata: { workspace: 'w' } });
    expect(placed.status).toBe(202);
    expect(await placed.json()).toMatchObject({ outcome: 'pending' });
    expect(await redis.client.zscore(keys.pending, 'wait-1')).not.toBeNull();

    const stopped = await post(`${a.url}/sessions/wait-1/stop`);
    expect(stopped.status).toBe(200);
    expect(await redis.client.zscore(keys.pending, 'wait-1')).toBeNull();
    expect(await a.fleet.owner('wait-1')).toMatchObject({ owner: '', desired: 'stopped', reason: 'stopped by request' });

    // Capacity appears: many sweeps later it is still not placed.
    await member(ns, 'b', 5);
    await new Promise((r) => setTimeout(r, TEST_TIMING.sweepIntervalMs * 6));
    expect(await a.fleet.owner('wait-1')).toMatchObject({ owner: '', desired: 'stopped', status: 'STOPPED' });

    // A host's own route behind fleetGuard({ unowned: 'pass' }) does the same for another pending session.
    await a.fleet.place('wait-3', { labels: { zone: 'nowhere' } });
    expect(await redis.client.zscore(keys.pending, 'wait-3')).not.toBeNull();
    const disconnected = await post(`${a.url}/api/sessions/wait-3/disconnect`, {});
    expect(disconnected.status).toBe(200);
    expect(await redis.client.zscore(keys.pending, 'wait-3')).toBeNull();
    expect(await a.fleet.owner('wait-3')).toMatchObject({ desired: 'stopped', reason: 'stopped by request' });
  });

  it('a restart of a session that gave up places it again; its stop and restart run through the owner', async () => {
    const ns = uniqueNamespace('routes-restart');
    const a = await member(ns, 'a');
    a.broken.add('g-1');
    await a.supervisor.startSession('g-1');
    await waitUntil(async () => (await a.fleet.owner('g-1'))?.desired === 'stopped');
    expect(await a.fleet.owner('g-1')).toMatchObject({
      owner: 'a',
      status: 'FAILED',
      reason: expect.stringMatching(/^restarts exhausted: /),
    });

    // Owned by a live instance: any other instance refuses with 421 and names the owner.
    const b = await member(ns, 'b');
    for (const action of ['stop', 'restart']) {
      const res = await post(`${b.url}/sessions/g-1/${action}`);
      expect(res.status, action).toBe(421);
      expect(await res.json()).toMatchObject({ error: 'WAFLEET_MISDIRECTED', owner: 'a', ownerUrl: a.url });
    }
    // On its owner the restart goes through the supervisor and the session runs again there.
    a.broken.delete('g-1');
    const restarted = await post(`${a.url}/sessions/g-1/restart`);
    expect(restarted.status).toBe(200);
    await waitUntil(() => a.supervisor.session('g-1')?.status === 'WORKING');
    expect(await a.fleet.owner('g-1')).toMatchObject({ owner: 'a', desired: 'running', reason: '' });

    // It gives up again, then its owner leaves: a handoff does not start it elsewhere; a restart from b does.
    a.broken.add('g-1');
    await a.supervisor.restartSession('g-1');
    await waitUntil(async () => (await a.fleet.owner('g-1'))?.desired === 'stopped');
    await a.supervisor.close();
    await a.fleet.close();
    expect(await b.fleet.owner('g-1')).toMatchObject({ owner: '', status: 'FAILED', desired: 'stopped' });
    const again = await post(`${b.url}/sessions/g-1/restart`);
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ outcome: 'assigned', owner: 'b' });
    await waitUntil(() => b.supervisor.session('g-1')?.status === 'WORKING');
    expect(await b.fleet.owner('g-1')).toMatchObject({ owner: 'b', desired: 'running', reason: '' });

    // The stop route on the owner stops the engine before the release.
    expect((await post(`${b.url}/sessions/g-1/stop`)).status).toBe(200);
    expect(b.supervisor.session('g-1')).toMatchObject({ status: 'STOPPED', desired: 'stopped' });
    expect(await b.fleet.owner('g-1')).toMatchObject({ owner: '', desired: 'stopped', reason: 'stopped by request' });
  });

  it('answers 401 without the token, 400 for a bad body or id, 404 for an unknown session, and the guard still answers 421 for a live owner elsewhere', async () => {
    const ns = uniqueNamespace('routes-auth');
    const a = await member(ns, 'a');
    const b = await member(ns, 'b');
    await a.fleet.claim('s-1');
    for (const action of ['place', 'stop', 'restart']) {
      for (const headers of [{}, { authorization: 'Bearer wrong-token-wrong-token-wrong-token' }] as Array<Record<string, string>>) {
        const res = await post(`${a.url}/sessions/s-2/${action}`, headers);
        expect(res.status, action).toBe(401);
      }
    }
    expect(await a.fleet.owner('s-2')).toBeNull();
    const badBodies: unknown[] = [[1], { labels: { zone: 'x' }, extra: 1 }, { metadata: 'text' }, { metadata: { s: 'x'.repeat(5000) } }];
    for (const body of badBodies) expect((await post(`${a.url}/sessions/s-2/place`, admin, body)).status).toBe(400);
    const malformed = await fetch(`${a.url}/sessions/s-2/place`, { method: 'POST', headers: admin, body: '{' });
    expect(malformed.status).toBe(400);
    expect((await post(`${a.url}/sessions/a:b/stop`)).status).toBe(400);
    expect(await a.fleet.owner('s-2')).toBeNull();
    expect((await post(`${a.url}/sessions/never-seen/stop`)).status).toBe(404);

    // unowned: 'pass' lets through only sessions nobody live owns.
    const misdirected = await post(`${b.url}/api/sessions/s-1/disconnect`, {});
    expect(misdirected.status).toBe(421);
    expect(await misdirected.json()).toMatchObject({ owner: 'a' });
    expect(await a.fleet.owner('s-1')).toMatchObject({ owner: 'a', desired: 'running' });

    // Any instance places: b puts a new session on the least-loaded instance with its labels and metadata.
    const placed = await post(`${a.url}/sessions/s-3/place`, admin, { metadata: { workspace: 'w-3' } });
    expect(placed.status).toBe(200);
    expect(await placed.json()).toMatchObject({ outcome: 'assigned', owner: 'b' });
    expect(await a.fleet.owner('s-3')).toMatchObject({ owner: 'b', metadata: { workspace: 'w-3' } });
    const read = await fetch(`${a.url}/sessions/s-3`, { headers: admin });
    expect(await read.json()).toMatchObject({ owner: 'b', reason: '', metadata: { workspace: 'w-3' } });
  });
});
