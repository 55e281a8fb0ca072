import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFleetClient, verifyWebhook } from '@wafleet/client';
import { createFleet, createOutbox, createSupervisor, registryKeys, type EngineContext, type Outbox, type Supervisor } from '@wafleet/core';
import { createSimEngine } from '@wafleet/sim';
import { killAll, redisForTests, uniqueNamespace, waitUntil, type TestRedis } from '@wafleet/test-utils';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_TIMING } from './helpers/fleet-harness.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';

const SECRET = `whsec_${Buffer.from('wafleet-session-metadata-secret').toString('base64')}`;
let redis: TestRedis;
let raw: Redis;
let receiver: Receiver;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await redisForTests();
  raw = new Redis(redis.url);
  receiver = await startReceiver();
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  raw.disconnect();
  await receiver.close();
  await redis.close();
  await killAll();
});

async function member(namespace: string, instanceId: string, outbox?: Outbox) {
  const fleet = createFleet({
    redis: redis.url,
    namespace,
    instanceId,
    url: `http://${instanceId}:3000`,
    maxSessions: 5,
    ...TEST_TIMING,
    quarantineMs: 0,
    outbox,
  });
  // The fleet gave the outbox its identity: it may deliver now.
  await outbox?.start();
  const contexts: EngineContext[] = [];
  const sim = createSimEngine();
  const supervisor: Supervisor = createSupervisor({
    fleet,
    engine: (ctx) => {
      contexts.push(ctx);
      return sim.factory(ctx);
    },
    probeIntervalMs: 0,
  });
  closers.push(
    () => supervisor.close(),
    () => fleet.close(),
  );
  await fleet.start();
  supervisor.start();
  return { fleet, supervisor, contexts };
}

const METADATA = { workspace: 'ws-9', account: { id: 'acc-1', seats: 3 }, flags: ['a'], note: 'ünïcode ✓' };

describe('session metadata (Part 2)', () => {
  it('travels with the session: the adopter engine factory gets it on handoff, and every status and ready webhook carries it', async () => {
    const ns = uniqueNamespace('meta');
    const outbox = createOutbox({
      store: join(mkdtempSync(join(tmpdir(), 'wafleet-meta-')), 'outbox.sqlite'),
      endpoint: { url: `${receiver.url}/hooks`, secrets: [SECRET] },
      pollIntervalMs: 20,
    });
    closers.push(() => outbox.close());
    const a = await member(ns, 'a');
    await a.fleet.claim('m-1', { metadata: METADATA });
    await a.supervisor.startSession('m-1');
    await waitUntil(() => a.supervisor.session('m-1')?.status === 'WORKING');
    expect(a.contexts.map((c) => c.metadata)).toEqual([METADATA]);

    const b = await member(ns, 'b', outbox);
    // A graceful close hands the session off: b starts it with what a stored, not with an empty object.
    await a.supervisor.close();
    await a.fleet.close();
    await waitUntil(() => b.supervisor.session('m-1')?.status === 'WORKING', { timeoutMs: 10_000 });
    expect(b.contexts.map((c) => c.metadata)).toEqual([METADATA]);
    expect(await b.fleet.owner('m-1')).toMatchObject({ owner: 'b', metadata: METADATA, reason: '' });

    await waitUntil(() => receiver.received.filter((r) => r.path === '/hooks').length >= 3, { timeoutMs: 10_000 });
    const events = receiver.received
      .filter((r) => r.path === '/hooks')
      .map((r) => verifyWebhook(SECRET, r.headers as Record<string, string>, r.body));
    expect(events.map((e) => [e.type, (e.data as { status: string }).status])).toEqual([
      ['session.status', 'STARTING'],
      ['session.status', 'WORKING'],
      ['session.ready', 'WORKING'],
    ]);
    for (const e of events) expect(e.data).toMatchObject({ metadata: METADATA });

    // The owner may replace it; the next start gets the new value.
    await b.fleet.setMetadata('m-1', { workspace: 'ws-10' });
    await b.supervisor.restartSession('m-1');
    await waitUntil(() => b.contexts.length === 2 && b.supervisor.session('m-1')?.status === 'WORKING');
    expect(b.contexts[1]!.metadata).toEqual({ workspace: 'ws-10' });
  });

  it('refuses bad metadata with ConfigError (option metadata) before anything is written', async () => {
    const ns = uniqueNamespace('meta-bad');
    const { fleet } = await member(ns, 'a');
    const client = createFleetClient({ redis: redis.url, namespace: ns });
    closers.push(() => client.close());
    const deep: Record<string, unknown> = {};
    let cursor = deep;
    for (let i = 0; i < 20; i++) cursor = cursor.next = {};
    const bad: unknown[] = [
      null,
      ['not', 'an', 'object'],
      'text',
      new Date(),
      new Map(),
      { big: 'x'.repeat(4100) },
      { lone: '\ud800' },
      { ['\udfff']: 1 },
      { n: Number.NaN },
      { f: () => 1 },
      { u: undefined },
      { b: 10n },
      deep,
    ];
    for (const metadata of bad) {
      await expect(fleet.claim('bad-1', { metadata } as never), String(metadata)).rejects.toMatchObject({
        code: 'WAFLEET_CONFIG',
        option: 'metadata',
      });
      await expect(fleet.place('bad-2', { metadata } as never)).rejects.toMatchObject({ code: 'WAFLEET_CONFIG', option: 'metadata' });
      await expect(client.place('bad-3', { metadata } as never)).rejects.toMatchObject({ code: 'WAFLEET_CONFIG', option: 'metadata' });
    }
    const sessions = registryKeys(ns).sessions;
    expect(await raw.hmget(sessions, 'bad-1', 'bad-2', 'bad-3')).toEqual([null, null, null]);

    // An owned session keeps what it had; another instance may not change it.
    await fleet.claim('ok-1', { metadata: { v: 1 } });
    await expect(fleet.setMetadata('ok-1', { big: 'x'.repeat(5000) })).rejects.toMatchObject({ option: 'metadata' });
    const other = await member(ns, 'b');
    await expect(other.fleet.setMetadata('ok-1', { v: 2 })).rejects.toMatchObject({ code: 'WAFLEET_NOT_OWNER' });
    expect(await fleet.owner('ok-1')).toMatchObject({ metadata: { v: 1 } });
    // Omitted metadata keeps the recorded one; exactly 4096 bytes is accepted.
    await fleet.claim('ok-1');
    expect(await fleet.owner('ok-1')).toMatchObject({ metadata: { v: 1 } });
    const max = { s: 'x'.repeat(4096 - '{"s":""}'.length) };
    await fleet.setMetadata('ok-1', max);
    expect((await fleet.owner('ok-1'))!.metadata).toEqual(max);
  });
});
