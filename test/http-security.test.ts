// Security defects of the HTTP surface and the client, each reproduced against real servers (issue: secure by default).
import { mkdtempSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createFleetClient, type FleetClient } from '@wafleet/client';
import { createFleet, createOutbox, createSupervisor, registryKeys, wafleetLogger, type Fleet, type FleetOptions } from '@wafleet/core';
import { createFleetRouter, fleetGuard, idempotency, type FleetRouterOptions } from '@wafleet/core/express';
import { createWwebjsEngine } from '@wafleet/wwebjs';
import { startRedis, uniqueNamespace, waitUntil, type RedisServerHandle } from '@wafleet/test-utils';
import express from 'express';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import wwebjs from 'whatsapp-web.js';
import { useTestRedis } from './helpers/fleet-harness.js';

const { Client, LocalAuth } = wwebjs;
const redis = useTestRedis();
const TOKEN = 'admin-token-for-tests-0123456789abcdef';
const admin = { authorization: `Bearer ${TOKEN}` };
const fleets: Fleet[] = [];
const clients: FleetClient[] = [];
const servers: Server[] = [];
const privateRedis: RedisServerHandle[] = [];

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(fleets.map((f) => f.close().catch(() => undefined)));
  for (const s of servers) s.close();
  await Promise.all(privateRedis.map((r) => r.stop()));
});

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function listen(app: express.Express | Handler): Promise<string> {
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function fleetOf(namespace: string, instanceId: string, url: string, extra: Partial<FleetOptions> = {}): Fleet {
  const fleet = createFleet({ redis: redis.url, namespace, instanceId, url, maxSessions: 20, quarantineMs: 0, ...extra });
  fleets.push(fleet);
  return fleet;
}

/** A started fleet behind a real HTTP server with the router (options as given) and a guarded, idempotent route. */
async function instance(router: Partial<FleetRouterOptions> & { basePath?: string; redisUrl?: string } = {}) {
  const { basePath = '', redisUrl, ...routerOptions } = router;
  const app = express();
  const outer = express();
  outer.use(basePath || '/', app);
  const url = `${await listen(outer)}${basePath}`;
  const fleet = fleetOf(uniqueNamespace('http-sec'), 'a', url, redisUrl ? { redis: redisUrl, commandTimeoutMs: 300 } : {});
  app.use(createFleetRouter(fleet, { registry: new Registry(), auth: { token: TOKEN }, ...routerOptions } as FleetRouterOptions));
  app.get('/sessions/:sessionId/ping', fleetGuard(fleet), (req, res) => res.json({ ok: true, headers: req.headers }));
  app.post('/sessions/:sessionId/big', express.json(), fleetGuard(fleet), idempotency(fleet), (req, res) => {
    res.status(201).json({ sent: true, padding: 'x'.repeat(Number(req.body?.bytes ?? 0)) });
  });
  await fleet.start();
  return { fleet, url };
}

/** A server that records every request it gets: the place credentials must never reach. */
async function attacker() {
  const seen: Array<{ url: string | undefined; authorization: string | undefined }> = [];
  const url = await listen((req: IncomingMessage, res: ServerResponse) => {
    seen.push({ url: req.url, authorization: req.headers.authorization });
    res.end('stolen');
  });
  return { url, seen, hostPort: url.replace('http://', '') };
}

const codeOf = (fn: () => unknown): { code?: string; option?: string; message?: string } => {
  try {
    fn();
  } catch (err) {
    return err as { code?: string; option?: string; message?: string };
  }
  return {};
};

describe('defect 1: the router never serves QR codes, sessions or drain to an anonymous caller', () => {
  it('refuses to be built without an auth decision, with an empty or short token, or with the old drainToken', async () => {
    const fleet = fleetOf(uniqueNamespace('http-build'), 'a', 'http://127.0.0.1:1');
    const qr = () => 'QR-SECRET';
    for (const options of [
      { qr },
      {},
      undefined,
      { qr, auth: undefined },
      { auth: 'open' },
      { auth: { token: '' } },
      { auth: { token: 'short-token' } },
    ]) {
      expect(
        codeOf(() => createFleetRouter(fleet, options as FleetRouterOptions)),
        JSON.stringify(options),
      ).toMatchObject({
        code: 'WAFLEET_CONFIG',
      });
    }
    expect(codeOf(() => createFleetRouter(fleet, { auth: { token: [] } }))).toMatchObject({ code: 'WAFLEET_CONFIG', option: 'auth.token' });
    expect(codeOf(() => createFleetRouter(fleet, { auth: { token: [TOKEN, 'x'.repeat(31)] } }))).toMatchObject({ option: 'auth.token' });
    expect(codeOf(() => createFleetRouter(fleet, { auth: { token: `${TOKEN} with space` } }))).toMatchObject({ option: 'auth.token' });
    expect(codeOf(() => createFleetRouter(fleet, { auth: { verify: 'yes' } } as unknown as FleetRouterOptions))).toMatchObject({
      option: 'auth.verify',
    });
    const drain = codeOf(() => createFleetRouter(fleet, { drainToken: '', qr } as unknown as FleetRouterOptions));
    expect(drain).toMatchObject({ code: 'WAFLEET_CONFIG' });
    // A token never appears in a message.
    expect(codeOf(() => createFleetRouter(fleet, { auth: { token: 'short-secret-value' } })).message).not.toContain('short-secret-value');
  });

  it('the router, the guard and the idempotency middleware refuse anything but a Fleet from createFleet()', () => {
    const lookalike = { instanceId: 'a', url: 'http://a', owner: async () => null } as unknown as Fleet;
    for (const build of [
      () => createFleetRouter(lookalike, { auth: { token: TOKEN } }),
      () => fleetGuard(lookalike),
      () => idempotency(lookalike),
    ]) {
      expect(codeOf(build)).toMatchObject({ code: 'WAFLEET_CONFIG', option: 'fleet' });
    }
  });

  it('answers 401 to anonymous and wrong-token callers on every route but the probes, and serves them with the token', async () => {
    const outbox = createOutbox({
      store: join(mkdtempSync(join(tmpdir(), 'wafleet-http-sec-')), 'outbox.sqlite'),
      endpoint: { url: 'http://127.0.0.1:1/hooks', secrets: [`whsec_${Buffer.alloc(32, 3).toString('base64')}`] },
      instance: { instanceId: 'a', url: 'http://a:3000' },
    });
    await outbox.start();
    const { fleet, url } = await instance({ qr: () => 'QR-SECRET', outbox });
    await fleet.claim('qr-1');
    const routes: Array<[string, string]> = [
      ['GET', '/sessions'],
      ['GET', '/sessions/qr-1'],
      ['GET', '/sessions/qr-1/qr'],
      ['GET', '/metrics'],
      ['POST', '/rebalance'],
      ['GET', '/outbox'],
      ['GET', '/outbox/dead'],
      ['POST', '/outbox/replay'],
      ['POST', '/outbox/targets/enable'],
      ['POST', '/drain'],
    ];
    for (const [method, path] of routes) {
      const attempts: Array<Record<string, string>> = [
        {},
        { authorization: 'Bearer wrong' },
        { authorization: `Bearer ${TOKEN}x` },
        { authorization: TOKEN },
      ];
      for (const headers of attempts) {
        const res = await fetch(`${url}${path}`, { method, headers });
        expect(res.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.headers.get('www-authenticate')).toBe('Bearer');
        const body = await res.text();
        expect(body).not.toContain('QR-SECRET');
        expect(JSON.parse(body)).toMatchObject({ error: 'WAFLEET_UNAUTHORIZED' });
      }
    }
    expect(fleet.state).toBe('active');
    expect((await fetch(`${url}/livez`)).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${url}/sessions/qr-1/qr`, { headers: admin })).json()).toEqual({ sessionId: 'qr-1', qr: 'QR-SECRET' });
    expect((await fetch(`${url}/sessions`, { headers: admin })).status).toBe(200);
    expect((await fetch(`${url}/metrics`, { headers: admin })).status).toBe(200);
    expect(await (await fetch(`${url}/outbox`, { headers: admin })).json()).toMatchObject({ pending: 0, dead: 0, breaker: 'closed' });
    expect((await fetch(`${url}/drain`, { method: 'POST', headers: admin })).status).toBe(202);
    await waitUntil(() => fleet.state === 'draining');
    await outbox.close();
  });

  it('accepts any of several tokens during a rotation', async () => {
    const next = 'next-admin-token-0123456789abcdefghij';
    const { url } = await instance({ auth: { token: [TOKEN, next] } });
    expect((await fetch(`${url}/sessions`, { headers: { authorization: `Bearer ${next}` } })).status).toBe(200);
    expect((await fetch(`${url}/sessions`, { headers: admin })).status).toBe(200);
  });

  it('opens /metrics only when the operator says so, and /sessions only with an explicit none', async () => {
    const metrics = await instance({ publicMetrics: true });
    expect((await fetch(`${metrics.url}/metrics`)).status).toBe(200);
    expect((await fetch(`${metrics.url}/sessions`)).status).toBe(401);
    const open = await instance({ auth: 'none' });
    expect((await fetch(`${open.url}/sessions`)).status).toBe(200);
  });

  it('lets a verify function decide, and answers JSON without internals when it throws', async () => {
    const { url } = await instance({
      auth: {
        verify: (req) => {
          if (req.get('x-explode')) throw new Error('database password is hunter2');
          return req.get('x-role') === 'admin';
        },
      },
    });
    expect((await fetch(`${url}/sessions`)).status).toBe(401);
    expect((await fetch(`${url}/sessions`, { headers: { 'x-role': 'admin' } })).status).toBe(200);
    const failed = await fetch(`${url}/sessions`, { headers: { 'x-explode': '1' } });
    expect(failed.status).toBe(500);
    expect(failed.headers.get('content-type')).toMatch(/^application\/json/);
    const text = await failed.text();
    expect(JSON.parse(text)).toEqual({ error: 'WAFLEET_INTERNAL', message: 'Internal error' });
    expect(text).not.toContain('hunter2');
  });
});

describe('defect 2: client.fetch never sends a request to another origin', () => {
  it('refuses paths that resolve elsewhere and sends nothing; ordinary paths reach the owner', async () => {
    const evil = await attacker();
    const { fleet, url } = await instance({ basePath: '/wa1' });
    await fleet.claim('o-1');
    const c = createFleetClient({ redis: redis.url, namespace: fleet.namespace });
    clients.push(c);
    const paths = [
      `/http://${evil.hostPort}/steal`,
      `/https://${evil.hostPort}/steal`,
      `//${evil.hostPort}/steal`,
      `/\\${evil.hostPort}/steal`,
      `/\\\\${evil.hostPort}/steal`,
      '/../steal',
      '/%2e%2e/steal',
      'relative',
      `http://${evil.hostPort}/steal`,
    ];
    let refused = 0;
    for (const path of paths) {
      // Either refused before anything is sent, or sent to the owner as an (unknown) path of its own.
      const outcome = await c.fetch('o-1', path, { headers: { authorization: 'Bearer backend-secret' } }).then(
        (res) => res,
        (err: { code?: string; option?: string }) => err,
      );
      if ('url' in outcome) expect(outcome.url.startsWith(`${url}/`), `${path} -> ${outcome.url}`).toBe(true);
      else {
        expect(outcome, path).toMatchObject({ code: 'WAFLEET_CONFIG', option: 'path' });
        refused++;
      }
    }
    // The ones that leave the base path or are not paths at all are refused.
    expect(refused).toBeGreaterThanOrEqual(4);
    expect(evil.seen).toEqual([]);
    const ok = await c.fetch('o-1', '/sessions/o-1/ping', { headers: { authorization: 'Bearer backend-secret' } });
    expect(ok.status).toBe(200);
    expect(url).toMatch(/\/wa1$/);
    expect(((await ok.json()) as { headers: Record<string, string> }).headers.authorization).toBe('Bearer backend-secret');
  });
});

describe('defect 9: labels, instance URLs, error answers, idempotency records, the client cache, NaN', () => {
  it('refuses labels that are not an object of short strings, and writes nothing', async () => {
    const { fleet } = await instance();
    const c = createFleetClient({ redis: redis.url, namespace: fleet.namespace });
    clients.push(c);
    const bad: unknown[] = [
      's3',
      ['x'],
      5,
      null,
      { auth: 3 },
      { '': 'x' },
      { 'a:b': 'x' },
      { k: 'v\u0000' },
      { k: '\ud800' },
      { k: 'v'.repeat(257) },
    ];
    for (const labels of bad) {
      for (const call of [
        () => fleet.place('lab-1', { labels } as { labels: Record<string, string> }),
        () => fleet.claim('lab-1', { labels } as { labels: Record<string, string> }),
        () => c.place('lab-1', { labels } as { labels: Record<string, string> }),
      ]) {
        await expect(call(), JSON.stringify(labels)).rejects.toMatchObject({ code: 'WAFLEET_CONFIG', option: 'labels' });
      }
    }
    expect(await redis.client.hexists(registryKeys(fleet.namespace).sessions, 'lab-1')).toBe(0);
    expect(await redis.client.zscore(registryKeys(fleet.namespace).pending, 'lab-1')).toBeNull();
    await expect(fleet.place('lab-2', { labels: { auth: 's3', 'example.com/region': 'eu' } })).resolves.toMatchObject({
      outcome: 'pending',
    });
  });

  it('refuses instance URLs that are not plain http(s) or that carry credentials, without quoting the password', () => {
    for (const url of [
      'javascript:alert(1)',
      'file:///etc/passwd',
      'ftp://h/',
      'http://user:pw-secret@h:3000',
      'http://h/?a=1',
      'not a url',
      42,
    ]) {
      const err = codeOf(() => createFleet({ redis: redis.url, instanceId: 'a', url: url as string, maxSessions: 1 }));
      expect(err, String(url)).toMatchObject({ code: 'WAFLEET_CONFIG', option: 'url' });
      expect(err.message).not.toContain('pw-secret');
    }
  });

  it('answers JSON 503 with Retry-After when Redis is the cause, from the guard and the router alike', async () => {
    const own = await startRedis();
    privateRedis.push(own);
    const { url } = await instance({ redisUrl: own.url });
    await own.kill();
    for (const [path, headers] of [
      ['/sessions/r-1/ping', {}],
      ['/sessions/r-1', admin],
    ] as const) {
      const res = await fetch(`${url}${path}`, { headers });
      expect(res.status, path).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await res.json()).toMatchObject({ error: 'WAFLEET_REDIS_UNAVAILABLE' });
    }
  });

  it('answers JSON 500 without a stack trace when a host callback fails', async () => {
    const { fleet, url } = await instance({
      qr: () => {
        throw new Error('renderer state at /srv/secret/path');
      },
    });
    await fleet.claim('q-1');
    const res = await fetch(`${url}/sessions/q-1/qr`, { headers: admin });
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: 'WAFLEET_INTERNAL', message: 'Internal error' });
    expect(text).not.toMatch(/secret|at \//);
  });

  it('keeps a large response out of the idempotency record but never executes the request twice', async () => {
    const { fleet, url } = await instance();
    await fleet.claim('big-1');
    const send = (key: string, bytes: number) =>
      fetch(`${url}/sessions/big-1/big`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({ bytes }),
      });
    const first = await send('k-big', 2 * 1024 * 1024);
    expect(first.status).toBe(201);
    expect((await first.text()).length).toBeGreaterThan(2 * 1024 * 1024);
    const keys = await redis.client.keys(`wafleet:${fleet.namespace}:idem:*`);
    expect(keys).toHaveLength(1);
    expect(await redis.client.strlen(keys[0]!)).toBeLessThan(4096);
    const again = await send('k-big', 2 * 1024 * 1024);
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await again.json()).toMatchObject({ error: 'WAFLEET_RESPONSE_TOO_LARGE' });
    // A small response is replayed whole.
    await send('k-small', 10);
    expect(await (await send('k-small', 10)).json()).toEqual({ sent: true, padding: 'x'.repeat(10) });
  });

  it('keeps nothing per pushed session in the client beyond its bounded cache', async () => {
    const ns = uniqueNamespace('http-prune');
    const c = createFleetClient({ redis: redis.url, namespace: ns, maxCacheEntries: 100 });
    clients.push(c);
    await c.connect();
    const pub = new Redis(redis.url);
    try {
      for (let i = 0; i < 5000; i++) {
        await pub.publish(
          registryKeys(ns).events,
          JSON.stringify({ s: `p-${i}`, o: 'a', i: 'x', e: String(i + 1), st: 'WORKING', u: 'http://127.0.0.1:1' }),
        );
      }
    } finally {
      pub.disconnect();
    }
    await waitUntil(() => c.stats().pushes === 5000);
    expect(c.stats()).toMatchObject({ readsInFlight: 0, waitingSessions: 0 });
    expect(c.stats().cacheEntries).toBeLessThanOrEqual(100);
  });

  it('reports NaN, Infinity and undefined options as they are, not as null', () => {
    const base = { redis: redis.url, instanceId: 'a', url: 'http://127.0.0.1:1', maxSessions: 1 };
    expect(codeOf(() => createFleet({ ...base, leaseTtlMs: Number.NaN })).message).toMatch(/got NaN$/);
    expect(codeOf(() => createFleet({ ...base, maxSessions: Number.POSITIVE_INFINITY })).message).toMatch(/got Infinity$/);
    expect(codeOf(() => createFleetClient({ redis: redis.url, failoverTimeoutMs: Number.NaN })).message).toMatch(/got NaN$/);
    const fleet = fleetOf(uniqueNamespace('nan'), 'a', 'http://127.0.0.1:1');
    expect(codeOf(() => createSupervisor({ fleet, engine: () => ({}) as never, startConcurrency: Number.NaN })).message).toMatch(
      /got NaN$/,
    );
    expect(codeOf(() => idempotency(fleet, { ttlMs: Number.NaN })).message).toMatch(/got NaN$/);
  });
});

describe('defect 8: a session id whatsapp-web.js refuses never reaches the engine; a Client that cannot be built is not retried', () => {
  it('refuses such ids at every entry and gives up at once on a Client construction error', async () => {
    const { fleet, url } = await instance();
    for (const id of ['5511999990000@c.us', 'a b', 'tenant/7', 'ab\u202Ecd', 'ab\u200Bcd']) {
      await expect(fleet.claim(id)).rejects.toMatchObject({ code: 'WAFLEET_INVALID_ID' });
      await expect(fleet.place(id)).rejects.toMatchObject({ code: 'WAFLEET_INVALID_ID' });
      const res = await fetch(`${url}/sessions/${encodeURIComponent(id)}/ping`);
      expect(res.status, id).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'WAFLEET_INVALID_ID' });
    }
    expect(await redis.client.hlen(registryKeys(fleet.namespace).sessions)).toBe(0);

    // A host that builds the clientId from its own data can still produce one whatsapp-web.js refuses.
    let built = 0;
    const supervisor = createSupervisor({
      fleet,
      engine: createWwebjsEngine(({ sessionId }) => {
        built++;
        return new Client({ authStrategy: new LocalAuth({ clientId: `${sessionId}@c.us` }) });
      }),
      restart: { baseMs: 10, maxMs: 20, maxAttempts: 5 },
    });
    supervisor.start();
    await supervisor.startSession('jid-1');
    await waitUntil(() => supervisor.session('jid-1')?.status === 'FAILED');
    await new Promise((r) => setTimeout(r, 200));
    expect(built).toBe(1);
    expect(supervisor.session('jid-1')!.transitions.at(-1)!.reason).toMatch(/Invalid clientId/);
    await supervisor.close();
  });
});

describe('defect 10: phone numbers stay out of log lines', () => {
  it('logs a stable hash instead of the session id, also inside error messages', async () => {
    const lines: string[] = [];
    const winston = {
      transports: [],
      debug: (m: string, f: unknown) => lines.push(JSON.stringify([m, f])),
      info: (m: string, f: unknown) => lines.push(JSON.stringify([m, f])),
      warn: (m: string, f: unknown) => lines.push(JSON.stringify([m, f])),
      error: (m: string, f: Record<string, unknown>) => lines.push(JSON.stringify([m, f, (f.err as Error | undefined)?.message])),
    };
    const fleet = fleetOf(uniqueNamespace('logs'), 'a', 'http://127.0.0.1:1', { logger: winston });
    await fleet.start();
    const supervisor = createSupervisor({
      fleet,
      logger: winston,
      engine: ({ sessionId }) => {
        throw new Error(`cannot open the profile of ${sessionId}`);
      },
      restart: { baseMs: 10, maxMs: 20, maxAttempts: 2 },
    });
    supervisor.start();
    await supervisor.startSession('5511999990000');
    await waitUntil(() => supervisor.session('5511999990000')?.status === 'FAILED' && lines.some((l) => l.includes('gave up')));
    await supervisor.close();
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) expect(line).not.toContain('5511999990000');
    expect(lines.join('\n')).toMatch(/sid_[0-9a-f]{12}/);
    // A host that wants the ids asks for them.
    const plain: string[] = [];
    wafleetLogger({ transports: [], info: (m: string) => plain.push(m) }, { sessionIds: 'plain' }).info('x 5511999990000', {
      sessionId: '5511999990000',
    });
    expect(plain).toEqual(['x 5511999990000']);
  });
});
