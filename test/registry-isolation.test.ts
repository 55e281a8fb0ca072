// Fleets that share one Redis server, in different databases or namespaces, must never act on each other's pushes:
// pub/sub ignores the database number, so a shared channel would fence sessions and misroute client requests.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFleetClient, type FleetClient, type OwnerChange } from '@wafleet/client';
import { createFleet, registryKeys, type Fleet, type FencedEvent } from '@wafleet/core';
import { killAll, startRedis, uniqueNamespace, waitUntil, type RedisServerHandle } from '@wafleet/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_TIMING } from './helpers/fleet-harness.js';

let server: RedisServerHandle;
const fleets: Fleet[] = [];
const clients: FleetClient[] = [];
const http: Server[] = [];

beforeAll(async () => {
  server = await startRedis();
});

afterAll(async () => {
  await Promise.all([...fleets.map((f) => f.close()), ...clients.map((c) => c.close())]);
  await Promise.all(http.map((s) => new Promise((resolve) => s.close(resolve))));
  await server.stop();
  await killAll();
});

/** An HTTP server that answers every request with `name`: where a client's request went. */
async function instanceApi(name: string): Promise<string> {
  const s = createServer((_req, res) => res.end(name));
  http.push(s);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

async function startFleet(redis: Parameters<typeof createFleet>[0]['redis'], namespace: string, instanceId: string, url: string) {
  const f = createFleet({ redis, namespace, instanceId, url, maxSessions: 10, ...TEST_TIMING, quarantineMs: 0 });
  fleets.push(f);
  await f.start();
  return f;
}

function fencedOf(f: Fleet): FencedEvent[] {
  const events: FencedEvent[] = [];
  f.on('fenced', (e) => events.push(e));
  return events;
}

/**
 * Placing a fresh session on `own` (the only instance of its registry) publishes on `own`'s channel after every
 * push sent before; once `own` holds it, every earlier push has reached `own`'s subscriber, foreign ones included.
 */
async function pushBarrier(own: Fleet, sessionId: string): Promise<void> {
  await own.place(sessionId);
  await waitUntil(() => own.owns(sessionId), { message: `${sessionId} was not assigned by push` });
}

describe('fleets sharing one Redis server', () => {
  it('a claim by a fleet on db 6 does not fence the session a fleet of the same namespace holds on db 5', async () => {
    const ns = uniqueNamespace('iso-db');
    const a5 = await startFleet(`${server.url}/5`, ns, 'a', 'http://a.invalid');
    const b6 = await startFleet(`${server.url}/6`, ns, 'b', 'http://b.invalid');
    const fenced = fencedOf(a5);
    await a5.claim('s1');
    await b6.claim('s1');
    await pushBarrier(a5, 'barrier');
    expect(fenced).toEqual([]);
    expect(a5.owns('s1')).toBe(true);
    expect(b6.owns('s1')).toBe(true);
    expect(registryKeys(ns, 5).events).not.toBe(registryKeys(ns, 6).events);
  });

  it('a client on db 5 keeps the db 5 owner when db 6 assigns the same session, and fetch goes to the db 5 owner', async () => {
    const ns = uniqueNamespace('iso-client');
    const [urlA, urlB] = await Promise.all([instanceApi('a on db 5'), instanceApi('b on db 6')]);
    const a5 = await startFleet(`${server.url}/5`, ns, 'a', urlA);
    const b6 = await startFleet(`${server.url}/6`, ns, 'b', urlB);
    // The caller's own ioredis client: its `options.db` decides the channel.
    const c5 = createFleetClient({ redis: server.client({ db: 5 }), namespace: ns });
    clients.push(c5);
    const changes: OwnerChange[] = [];
    c5.on('change', (c) => changes.push(c));
    await a5.claim('s1');
    expect(await c5.lookup('s1')).toMatchObject({ owner: 'a', ownerUrl: urlA, live: true });
    await b6.claim('s1');
    await pushBarrier(a5, 'barrier');
    await waitUntil(() => changes.some((c) => c.sessionId === 'barrier'), { message: 'the db 5 push did not reach the client' });
    expect(changes.filter((c) => c.sessionId === 's1')).toEqual([]);
    expect(await c5.lookup('s1')).toMatchObject({ owner: 'a', ownerUrl: urlA });
    const res = await c5.fetch('s1', '/who');
    expect(await res.text()).toBe('a on db 5');
  });

  it('two namespaces on one database do not act on each other', async () => {
    const [ns1, ns2] = [uniqueNamespace('iso-ns1'), uniqueNamespace('iso-ns2')];
    const a = await startFleet(server.url, ns1, 'a', 'http://a.invalid');
    const b = await startFleet(server.url, ns2, 'b', 'http://b.invalid');
    const c1 = createFleetClient({ redis: server.url, namespace: ns1 });
    clients.push(c1);
    const fenced = fencedOf(a);
    const changes: OwnerChange[] = [];
    c1.on('change', (c) => changes.push(c));
    await a.claim('s1');
    await c1.lookup('s1');
    await b.claim('s1');
    await pushBarrier(a, 'barrier');
    await waitUntil(() => changes.some((c) => c.sessionId === 'barrier'), { message: 'the ns1 push did not reach the client' });
    expect(fenced).toEqual([]);
    expect(changes.filter((c) => c.sessionId === 's1')).toEqual([]);
    expect(await c1.lookup('s1')).toMatchObject({ owner: 'a' });
  });
});
