import { createHash, randomBytes } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import { sleep, uniqueNamespace, waitUntil } from '@wafleet/test-utils';
import { ConfigError, createFleet } from '@wafleet/core';
import { fleetGuard } from '@wafleet/core/express';
import { describe, expect, it } from 'vitest';
import { journalPath, useTestRedis } from './helpers/fleet-harness.js';
import { keyedOutcome, pacedKeyedSends, startHttpInstance } from './helpers/http-fleet.js';

const redis = useTestRedis();

async function forwardingFleet(label: string, ids: string[], options: { forwardWaitMs?: number } = {}) {
  const base = { redis: redis.url, namespace: uniqueNamespace(label), sends: journalPath(label) };
  const instances = await Promise.all(['a', 'b', 'c'].map((id) => startHttpInstance(base, id, { forward: true, ...options })));
  await instances[0]!.run('place', { ids });
  // Any instance answers a ping for any session (forwarded to the owner), so the answers say who owns each one.
  let owners: string[] = [];
  await waitUntil(
    async () => {
      const found = await Promise.all(
        ids.map((id) => fetch(`${instances[0]!.url}/sessions/${id}/ping`).then((r) => r.json() as Promise<{ instance?: string }>)),
      );
      owners = found.map((f) => f.instance ?? '');
      return owners.every(Boolean);
    },
    { message: 'sessions not placed' },
  );
  const byId = new Map(instances.map((p) => [p.id, p]));
  return {
    base,
    instances,
    ownerOf: (i: number) => byId.get(owners[i]!)!,
    notOwnerOf: (i: number) => instances.find((p) => p.id !== owners[i])!,
  };
}

/** A POST through node:http, with chunked transfer encoding (the body arrives in pieces). */
function rawPost(
  url: string,
  body: Buffer,
  headers: Record<string, string>,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    for (let i = 0; i < body.length; i += 65_536) req.write(body.subarray(i, i + 65_536));
    req.end();
  });
}

/**
 * A plain HTTP caller (global fetch, no wafleet code) with the retry policy any HTTP client offers: a request with
 * an Idempotency-Key is sent again, to the next URL, after a connection error or a 502/503 (waiting Retry-After).
 */
async function plainSend(urls: string[], first: number, path: string, key: string): Promise<{ status: number | string; ms: number }> {
  const t0 = performance.now();
  for (let attempt = 0; ; attempt++) {
    const url = urls[(first + attempt) % urls.length]!;
    try {
      const res = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({ text: `hello ${key}` }),
        signal: AbortSignal.timeout(20_000),
      });
      await res.arrayBuffer();
      if ((res.status === 502 || res.status === 503) && attempt < 6) {
        await sleep(Math.min(1000, Number(res.headers.get('retry-after') ?? 0) * 1000) || 100);
        continue;
      }
      return { status: res.status, ms: performance.now() - t0 };
    } catch (err) {
      if (attempt < 6) continue;
      return { status: (err as Error).message, ms: performance.now() - t0 };
    }
  }
}

describe('forwarding guard (G5): callers that know any instance reach the owner', () => {
  it('a non-owner streams a POST to the owner: body and end-to-end headers arrive intact, hop-by-hop ones do not, the epoch is the owner’s', async () => {
    const { ownerOf, notOwnerOf } = await forwardingFleet('fwd-echo', ['echo-1']);
    const body = Buffer.from(JSON.stringify({ text: 'x', blob: randomBytes(300_000).toString('base64') }));
    // node:http, not fetch: fetch refuses to send a Connection header, and hop-by-hop fields are what is tested.
    const res = await rawPost(`${notOwnerOf(0).url}/sessions/echo-1/echo?q=1&r=two`, body, {
      'content-type': 'application/json',
      'idempotency-key': 'echo-key-1',
      authorization: 'Bearer caller-token',
      'x-custom': 'kept',
      connection: 'keep-alive, x-hop',
      'x-hop': 'dropped',
    });
    expect(res.status).toBe(200);
    expect(res.headers['x-wafleet-forwarded-by']).toBe(notOwnerOf(0).id);
    const echo = JSON.parse(res.body) as { instance: string; sha256: string; bytes: number; headers: Record<string, string> };
    expect(echo.instance).toBe(ownerOf(0).id);
    expect(echo).toMatchObject({ sha256: createHash('sha256').update(body).digest('hex'), bytes: body.length });
    expect(echo.headers).toMatchObject({
      'content-type': 'application/json',
      'idempotency-key': 'echo-key-1',
      authorization: 'Bearer caller-token',
      'x-custom': 'kept',
      'x-wafleet-forwarded': notOwnerOf(0).id,
    });
    expect(echo.headers['x-hop']).toBeUndefined();
    expect(echo.headers['x-wafleet-epoch']).toMatch(/^\d+$/);
    expect(res.headers['x-wafleet-served-epoch']).toBe(echo.headers['x-wafleet-epoch']);
  });

  it('a JSON body parsed before the guard is sent to the owner as the same JSON', async () => {
    const { ownerOf, notOwnerOf } = await forwardingFleet('fwd-parsed', ['parsed-1']);
    const sent = { text: 'héllo', n: [1, 2, 3], nested: { ok: true } };
    const res = await fetch(`${notOwnerOf(0).url}/sessions/parsed-1/parsed-echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(sent, null, 2),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ instance: ownerOf(0).id, body: sent });
  });

  it('a forwarded request that reaches a non-owner is answered 421 and never forwarded a second time', async () => {
    const { ownerOf, notOwnerOf } = await forwardingFleet('fwd-loop', ['loop-1']);
    const res = await fetch(`${notOwnerOf(0).url}/sessions/loop-1/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-wafleet-forwarded': 'another-instance' },
      body: '{}',
    });
    expect(res.status).toBe(421);
    expect(await res.json()).toMatchObject({ error: 'WAFLEET_MISDIRECTED', owner: ownerOf(0).id, ownerUrl: ownerOf(0).url });
    expect(res.headers.get('x-wafleet-forwarded-by')).toBeNull();
    await sleep(200);
    expect(ownerOf(0).events('echo')).toEqual([]);
  });

  it('a request for a session whose owner died waits for the adopter and is served by it', async () => {
    const { ownerOf, notOwnerOf } = await forwardingFleet('fwd-wait', ['wait-1']);
    const dead = ownerOf(0);
    await dead.child.kill('SIGKILL');
    const t0 = performance.now();
    const res = await fetch(`${notOwnerOf(0).url}/sessions/wait-1/ping`);
    const waited = performance.now() - t0;
    expect(res.status).toBe(200);
    const served = (await res.json()) as { instance: string };
    expect(served.instance).not.toBe(dead.id);
    console.log(`forwarding through a kill -9: answered by ${served.instance} after ${waited.toFixed(0)} ms`);
  });

  it('with no live owner within forwardWaitMs the answer is 503 WAFLEET_NO_OWNER with Retry-After', async () => {
    const { ownerOf, notOwnerOf } = await forwardingFleet('fwd-no-owner', ['none-1'], { forwardWaitMs: 300 });
    await ownerOf(0).child.kill('SIGKILL');
    // No adopter can exist within 300 ms of the kill: the lease (2 s) has not expired yet.
    const res = await fetch(`${notOwnerOf(0).url}/sessions/none-1/ping`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(await res.json()).toMatchObject({ error: 'WAFLEET_NO_OWNER', sessionId: 'none-1' });
  });
});

describe('guard options (G8)', () => {
  it('refuses an unknown misdirected or notWorking value, a bad forwardWaitMs, and notWorking without status, naming the option', () => {
    const fleet = createFleet({
      redis: redis.url,
      namespace: uniqueNamespace('guard-options'),
      instanceId: 'x',
      url: 'http://x.invalid:1',
      maxSessions: 1,
    });
    const optionOf = (options: Record<string, unknown>) => {
      try {
        fleetGuard(fleet, options);
        return undefined;
      } catch (err) {
        return err instanceof ConfigError ? err.option : err;
      }
    };
    expect(optionOf({ misdirected: 'proxy' })).toBe('misdirected');
    expect(optionOf({ notWorking: 'hold' })).toBe('notWorking');
    expect(optionOf({ notWorking: 'wait' })).toBe('status');
    expect(optionOf({ misdirected: 'forward', forwardWaitMs: -1 })).toBe('forwardWaitMs');
    expect(optionOf({ notWorking: 'retry-after' })).toBe('status');
    expect(optionOf({ misdirected: 'forward', notWorking: 'retry-after', status: () => 'WORKING' })).toBeUndefined();
  });
});

describe('forwarding under load (G5): plain fetch, round-robin over 3 instances, owner kill -9ed', () => {
  it('every keyed send completes exactly once', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `rr-${i}`);
    const { base, instances } = await forwardingFleet('fwd-load', ids);
    const urls = instances.map((p) => p.url);
    const victim = instances[1]!;
    const total = 800;
    const { results, killedAtMs } = await pacedKeyedSends(total, 10, { at: 200, victim }, (i, key) =>
      plainSend(urls, i, `/sessions/${ids[i % ids.length]!}/messages`, key),
    );
    const { failures, duplicates, missing, summary } = keyedOutcome(results, base.sends);
    console.log(
      `forwarding load: ${total} plain-fetch sends round-robin over 3 instances, ${victim.id} killed ${killedAtMs.toFixed(0)} ms in; ${summary}`,
    );
    expect(failures).toEqual([]);
    expect(duplicates).toEqual([]);
    expect(missing).toEqual([]);
  });
});
