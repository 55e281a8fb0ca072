// Property-based checks over every public entry that takes outside input: each bad input is refused with a stable
// error code, and nothing is written to Redis. Runs against a private redis-server and real HTTP servers.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFleetClient, verifyWebhook, type FleetClient } from '@wafleet/client';
import {
  createFleet,
  createSupervisor,
  validateLabels,
  validateSessionId,
  type Fleet,
  type FleetOptions,
  type SupervisorOptions,
} from '@wafleet/core';
import { createFleetRouter, fleetGuard, idempotency } from '@wafleet/core/express';
import { startRedis, uniqueNamespace, type RedisServerHandle } from '@wafleet/test-utils';
import express from 'express';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const RUNS = 150;
const TOKEN = 'property-admin-token-0123456789abcdef';
const SESSION_ID = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$/;
const STABLE_CODES = new Set(['WAFLEET_INVALID_ID', 'WAFLEET_CONFIG']);

let redis: RedisServerHandle;
let inspect: Redis;
let fleet: Fleet;
let client: FleetClient;
let baseUrl: string;
const servers: Server[] = [];
const attackerSeen: string[] = [];
let attackerHost = '';

/** Every string: any UTF-16 unit (lone surrogates too), any code point, and near-misses of valid ids. */
const anyString = fc.oneof(
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 140 }),
  fc.string({ unit: 'binary', maxLength: 140 }),
  fc.stringMatching(/^[A-Za-z0-9_@./:{} -]{0,140}$/),
);
const anyValue = fc.oneof(anyString, fc.anything(), fc.double(), fc.constantFrom(Number.NaN, Infinity, -1, 0, 1.5, undefined, null));

async function listen(app: express.Express | Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(app as Parameters<typeof createServer>[1]);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Everything stored in the private Redis: a refused input must leave it byte for byte as it was. */
async function snapshot(): Promise<string> {
  // Heartbeats rewrite the lease deadlines and claim sweeps; everything the registry holds about sessions must stay as it was.
  const keys = (await inspect.keys('*')).filter((k) => !k.endsWith(':instances')).sort();
  const out: string[] = [];
  for (const key of keys) {
    const type = await inspect.type(key);
    if (type === 'hash') {
      // The fleet's sweep bookkeeping moves with every sweep a renewal claims.
      const { sweptAt: _at, sweptBy: _by, ...fields } = await inspect.hgetall(key);
      out.push(key, JSON.stringify(fields));
    } else if (type === 'zset') out.push(key, JSON.stringify(await inspect.zrange(key, 0, -1, 'WITHSCORES')));
    else out.push(key, type);
  }
  return out.join('\n');
}

const refusal = async (call: () => unknown): Promise<{ code?: string } | undefined> => {
  try {
    await call();
    return undefined;
  } catch (err) {
    return err as { code?: string };
  }
};

beforeAll(async () => {
  redis = await startRedis();
  inspect = new Redis(redis.url);
  const app = express();
  baseUrl = await listen(app);
  fleet = createFleet({
    redis: redis.url,
    namespace: uniqueNamespace('props'),
    instanceId: 'a',
    url: baseUrl,
    maxSessions: 5,
    quarantineMs: 0,
  });
  app.use(createFleetRouter(fleet, { auth: { token: TOKEN } }));
  app.post('/sessions/:sessionId/send', express.json(), fleetGuard(fleet), idempotency(fleet), (_req, res) =>
    res.status(201).json({ ok: true }),
  );
  app.get('/sessions/:sessionId/ping', fleetGuard(fleet), (_req, res) => res.json({ ok: true }));
  await fleet.start();
  await fleet.claim('owned-1');
  client = createFleetClient({ redis: redis.url, namespace: fleet.namespace, failoverTimeoutMs: 500 });
  const attacker = await listen((req: IncomingMessage, res: ServerResponse) => {
    attackerSeen.push(req.url ?? '');
    res.end();
  });
  attackerHost = attacker.replace('http://', '');
});

afterAll(async () => {
  await client?.close();
  await fleet?.close();
  for (const s of servers) s.close();
  inspect?.disconnect();
  await redis?.stop();
});

describe('session ids', () => {
  it('are accepted exactly when they match the documented policy', () => {
    fc.assert(
      fc.property(anyString, (id) => {
        const err = (() => {
          try {
            validateSessionId(id);
            return undefined;
          } catch (e) {
            return e as { code?: string };
          }
        })();
        expect(err === undefined).toBe(SESSION_ID.test(id));
        if (err) expect(err.code).toBe('WAFLEET_INVALID_ID');
      }),
      { numRuns: 2000 },
    );
  });

  it('that are invalid are refused by every entry with WAFLEET_INVALID_ID, and nothing is written', async () => {
    const before = await snapshot();
    await fc.assert(
      fc.asyncProperty(
        anyString.filter((id) => !SESSION_ID.test(id)),
        async (id) => {
          const supervisor = createSupervisor({ fleet, engine: () => ({}) as never });
          for (const call of [
            () => fleet.claim(id),
            () => fleet.place(id),
            () => fleet.release(id),
            () => fleet.owner(id),
            () => fleet.setStatus(id, 'WORKING'),
            () => client.lookup(id),
            () => client.place(id),
            () => client.fetch(id, '/x'),
            () => supervisor.startSession(id),
            () => supervisor.stopSession(id),
          ]) {
            expect((await refusal(call))?.code).toBe('WAFLEET_INVALID_ID');
          }
          // Percent-encoded UTF-8 bytes: a lone surrogate arrives as U+FFFD, which is refused too.
          const encoded = [...Buffer.from(id, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
          for (const path of [`/sessions/${encoded}/ping`, `/sessions/${encoded}`]) {
            const res = await fetch(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
            // An empty id and the dot segments '.' and '..' make another path (404); everything else is refused as an id.
            if (!['', '.', '..'].includes(id)) {
              expect(res.status, path).toBe(400);
              expect(((await res.json()) as { error: string }).error).toBe('WAFLEET_INVALID_ID');
            } else await res.body?.cancel();
          }
        },
      ),
      { numRuns: RUNS },
    );
    expect(await snapshot()).toBe(before);
  });
});

describe('instance ids, URLs and options', () => {
  const base: FleetOptions = { redis: 'redis://127.0.0.1:1', instanceId: 'a', url: 'http://127.0.0.1:1', maxSessions: 1 };
  const FLEET_NUMBERS = [
    'maxSessions',
    'heartbeatIntervalMs',
    'leaseTtlMs',
    'selfFenceMs',
    'adoptionDelayMs',
    'sweepIntervalMs',
    'quarantineMs',
    'sweepBatch',
    'placementRetryMs',
    'commandTimeoutMs',
    'stopTimeoutMs',
    'handoffConcurrency',
  ] as const;

  it('createFleet accepts or refuses any instance id, URL, labels and option synchronously with a stable code', () => {
    fc.assert(
      fc.property(
        fc.record({
          instanceId: fc.oneof(anyString, fc.constantFrom('wa-1', 'pod.7')),
          url: fc.oneof(
            fc.webUrl({ withQueryParameters: true, withFragments: true }),
            anyString,
            fc.constantFrom('javascript:x', 'file:///etc/passwd'),
          ),
          labels: fc.oneof(fc.constant(undefined), fc.anything(), fc.dictionary(anyString, anyString, { maxKeys: 40 })),
          option: fc.constantFrom(...FLEET_NUMBERS),
          value: anyValue,
        }),
        ({ instanceId, url, labels, option, value }) => {
          let err: { code?: string; option?: string; message?: string } | undefined;
          try {
            createFleet({ ...base, instanceId, url, labels, [option]: value } as FleetOptions);
          } catch (e) {
            err = e as typeof err;
          }
          if (err) expect(STABLE_CODES.has(err.code!), err.message).toBe(true);
          // A refused URL is never quoted with its password or query (which often carries a token).
          const parsed = URL.canParse(String(url)) ? new URL(String(url)) : undefined;
          for (const secret of [parsed?.password, parsed?.search.slice(1)])
            if (err && secret && secret.length > 3) expect(err.message).not.toContain(secret);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('names the option and shows the value faithfully when a number option is refused', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...FLEET_NUMBERS),
        fc.oneof(fc.double({ noInteger: true }), fc.constantFrom(Number.NaN, -Infinity, -5)),
        (option, value) => {
          let err: { code?: string; option?: string; message?: string } | undefined;
          try {
            createFleet({ ...base, [option]: value });
          } catch (e) {
            err = e as typeof err;
          }
          expect(err?.code).toBe('WAFLEET_CONFIG');
          expect(err?.message).not.toMatch(/got null$/);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('client, supervisor and idempotency options are accepted or refused with WAFLEET_CONFIG', () => {
    const clientOptions = [
      'failoverTimeoutMs',
      'maxStalenessMs',
      'maxCacheEntries',
      'requestTimeoutMs',
      'connectionsPerInstance',
      'commandTimeoutMs',
    ];
    const supervisorOptions = [
      'startConcurrency',
      'staggerMs',
      'startTimeoutMs',
      'probeIntervalMs',
      'probeTimeoutMs',
      'stopTimeoutMs',
      'transitionsKept',
    ];
    fc.assert(
      fc.property(fc.constantFrom(...clientOptions), fc.constantFrom(...supervisorOptions), anyValue, (co, so, value) => {
        for (const build of [
          () => createFleetClient({ redis: 'redis://127.0.0.1:1', [co]: value }),
          () => createSupervisor({ fleet, engine: () => ({}) as never, [so]: value } as SupervisorOptions),
          () => idempotency(fleet, { ttlMs: value as number }),
          () => idempotency(fleet, { maxResponseBytes: value as number }),
        ]) {
          let err: { code?: string } | undefined;
          try {
            const built = build();
            if (built && typeof (built as FleetClient).close === 'function') void (built as FleetClient).close();
          } catch (e) {
            err = e as typeof err;
          }
          if (err) expect(err.code).toBe('WAFLEET_CONFIG');
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('labels', () => {
  it('that are invalid are refused by place and claim with WAFLEET_CONFIG, and nothing is written', async () => {
    const before = await snapshot();
    await fc.assert(
      // undefined means "keep the recorded labels" and is valid.
      fc.asyncProperty(
        fc
          .oneof(fc.anything(), fc.dictionary(anyString, fc.oneof(anyString, fc.anything()), { maxKeys: 40 }))
          .filter((v) => v !== undefined),
        async (labels) => {
          let valid = true;
          try {
            validateLabels('labels', labels);
          } catch (e) {
            valid = false;
            expect((e as { code?: string }).code).toBe('WAFLEET_CONFIG');
          }
          if (valid) return;
          const options = { labels } as { labels: Record<string, string> };
          expect((await refusal(() => fleet.place('lab-x', options)))?.code).toBe('WAFLEET_CONFIG');
          expect((await refusal(() => fleet.claim('lab-x', options)))?.code).toBe('WAFLEET_CONFIG');
          expect((await refusal(() => client.place('lab-x', options)))?.code).toBe('WAFLEET_CONFIG');
        },
      ),
      { numRuns: RUNS },
    );
    expect(await snapshot()).toBe(before);
  });
});

describe('HTTP paths and headers', () => {
  it('client.fetch sends a request to the owner or refuses the path with WAFLEET_CONFIG; never to another origin', async () => {
    const evilPaths = fc.constantFrom(
      `/http://${attackerHost}/x`,
      `//${attackerHost}/x`,
      `/\\${attackerHost}/x`,
      `/\\\\${attackerHost}/x`,
      `http://${attackerHost}/x`,
      `/@${attackerHost}/x`,
      `/%2F%2F${attackerHost}/x`,
    );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          anyString,
          evilPaths,
          anyString.map((s) => `/${s}`),
        ),
        async (path) => {
          try {
            const res = await client.fetch('owned-1', path);
            expect(res.url.startsWith(`${baseUrl}/`), res.url).toBe(true);
            await res.body?.cancel();
          } catch (err) {
            expect((err as { code?: string }).code, String(err)).toBe('WAFLEET_CONFIG');
          }
        },
      ),
      { numRuns: RUNS },
    );
    expect(attackerSeen).toEqual([]);
  });

  // Header values as undici sends them: visible ASCII and spaces (it refuses control characters itself).
  const headerValue = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 300 });

  it('the guard, the idempotency middleware and the router answer any header value without a server error', async () => {
    await fc.assert(
      fc.asyncProperty(headerValue, headerValue, headerValue, async (epoch, key, authorization) => {
        const guarded = await fetch(`${baseUrl}/sessions/owned-1/send`, {
          method: 'POST',
          headers: { 'x-wafleet-epoch': epoch, 'idempotency-key': key, 'content-type': 'application/json' },
          body: '{}',
        });
        expect([201, 400, 409, 421, 422]).toContain(guarded.status);
        if (guarded.status === 400) expect(((await guarded.json()) as { error: string }).error).toBe('WAFLEET_INVALID_ID');
        else await guarded.body?.cancel();
        const routed = await fetch(`${baseUrl}/sessions`, { headers: { authorization } });
        expect(routed.status).toBe(authorization.trim() === `Bearer ${TOKEN}` ? 200 : 401);
        await routed.body?.cancel();
      }),
      { numRuns: RUNS },
    );
  });

  it('verifyWebhook turns any headers and body into an envelope or WAFLEET_WEBHOOK_INVALID, never another error', () => {
    const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.constantFrom('webhook-id', 'webhook-timestamp', 'webhook-signature', 'Webhook-Id', 'x'),
          fc.oneof(headerValue, fc.array(headerValue)),
        ),
        fc.oneof(
          anyString,
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
        (headers, body) => {
          try {
            verifyWebhook(secret, headers, body);
          } catch (err) {
            expect((err as { code?: string }).code).toBe('WAFLEET_WEBHOOK_INVALID');
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
