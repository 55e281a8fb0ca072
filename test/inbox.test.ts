import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createInbox,
  createOutbox,
  createSupervisor,
  inboxKeys,
  type Fleet,
  type InboundMessage,
  type Outbox,
  type Supervisor,
} from '@wafleet/core';
import { createSimEngine, sendSimMessage } from '@wafleet/sim';
import { uniqueNamespace, waitUntil } from '@wafleet/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import { testFleet, useTestRedis } from './helpers/fleet-harness.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';

const SECRET = `whsec_${Buffer.from('wafleet-inbox-test-secret-0001').toString('base64')}`;
const redis = useTestRedis();
const closers: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});

async function fleetWithOutbox(namespace: string, instanceId: string, receiver: Receiver): Promise<{ fleet: Fleet; outbox: Outbox }> {
  const outbox = createOutbox({
    store: join(mkdtempSync(join(tmpdir(), 'wafleet-inbox-')), 'outbox.sqlite'),
    endpoint: { url: `${receiver.url}/hooks`, secrets: [SECRET] },
    pollIntervalMs: 10,
  });
  const fleet = testFleet(redis.url, namespace, instanceId, { outbox });
  await outbox.start();
  await fleet.start();
  closers.push(
    () => outbox.close(),
    () => fleet.close(),
  );
  return { fleet, outbox };
}

const msg = (id: string, chatId: string, timestamp: number): InboundMessage => ({ id, chatId, timestamp, data: { body: `text ${id}` } });

/** message.received webhooks by message id: how often each came, and whether its first delivery was a catch-up. */
function deliveries(receiver: Receiver, session?: string) {
  const hooks = receiver.received.filter(
    (r) => r.json?.type === 'message.received' && (session === undefined || r.json.session === session),
  );
  const count = new Map<string, number>();
  const caughtUp = new Map<string, boolean>();
  for (const r of hooks) {
    const id = String(r.json.data['id']);
    count.set(id, (count.get(id) ?? 0) + 1);
    if (!caughtUp.has(id)) caughtUp.set(id, r.json.data['caughtUp'] === true);
  }
  return { count, caughtUp, total: hooks.length };
}

describe('inbox: inbound messages once each, across restarts and moves', () => {
  it('delivers live messages once (a repeat is dropped by id), then catches up what arrived while the session was down', async () => {
    const receiver = await startReceiver();
    closers.push(() => receiver.close());
    const { fleet, outbox } = await fleetWithOutbox(uniqueNamespace('inbox'), 'wa-1', receiver);
    await fleet.claim('s-1');
    const inbox = createInbox({ fleet, outbox });
    const first = inbox.open('s-1', fleet.epochOf('s-1')!);
    await first.catchUp(async () => [], 1000);
    await first.deliver(msg('m1', 'chat-a', 1100));
    await first.deliver(msg('m2', 'chat-a', 1200));
    await first.deliver(msg('m2', 'chat-a', 1200));
    await first.deliver(msg('m3', 'chat-b', 1300));
    first.close();
    // Down: m4 (chat a) and m5 (a new chat) arrive; the history also still holds m1-m3.
    const history = [
      msg('m1', 'chat-a', 1100),
      msg('m2', 'chat-a', 1200),
      msg('m3', 'chat-b', 1300),
      msg('m4', 'chat-a', 1400),
      msg('m5', 'chat-c', 1500),
    ];
    const second = inbox.open('s-1', fleet.epochOf('s-1')!);
    let asked: unknown;
    await second.catchUp(async (request) => ((asked = request), history), 2000);
    expect(asked).toMatchObject({ since: 1000, perChat: 50, total: 500 });
    expect([...(asked as { cursors: Map<string, unknown> }).cursors]).toEqual([
      ['chat-a', { id: 'm2', timestamp: 1200 }],
      ['chat-b', { id: 'm3', timestamp: 1300 }],
    ]);
    await waitUntil(() => deliveries(receiver).count.size === 5);
    await new Promise((r) => setTimeout(r, 200));
    const d = deliveries(receiver);
    expect(Object.fromEntries(d.count)).toEqual({ m1: 1, m2: 1, m3: 1, m4: 1, m5: 1 });
    expect(Object.fromEntries(d.caughtUp)).toEqual({ m1: false, m2: false, m3: false, m4: true, m5: true });
    expect(inbox.stats()).toMatchObject({ live: 3, caughtUp: 2, duplicates: 3, failed: 0, catchUps: 2 });
    // Every webhook carries the message's id, chat, time and the engine's data, under the session's epoch.
    const m4 = receiver.received.find((r) => r.json?.data?.['id'] === 'm4')!.json;
    expect(m4).toMatchObject({
      session: 's-1',
      epoch: fleet.epochOf('s-1'),
      data: { id: 'm4', chatId: 'chat-a', timestamp: 1400, caughtUp: true, body: 'text m4' },
    });
  });

  it('a live message during the catch-up does not move its chat cursor until the catch-up is done (a crash then loses nothing)', async () => {
    const receiver = await startReceiver();
    closers.push(() => receiver.close());
    const namespace = uniqueNamespace('inbox-order');
    const { fleet, outbox } = await fleetWithOutbox(namespace, 'wa-1', receiver);
    await fleet.claim('s-2');
    const inbox = createInbox({ fleet, outbox });
    const epoch = fleet.epochOf('s-2')!;
    const run1 = inbox.open('s-2', epoch);
    await run1.catchUp(async () => [], 1000);
    await run1.deliver(msg('m1', 'chat-a', 1100));
    run1.close();
    // Run 2: a live message arrives before the catch-up (which would deliver the older m2) ran; then the run dies.
    const run2 = inbox.open('s-2', epoch);
    await run2.deliver(msg('m3', 'chat-a', 1300));
    run2.close();
    const cursors = await redis.client.hgetall(inboxKeys(namespace, 's-2').cursors);
    expect(JSON.parse(cursors['chat-a']!)).toEqual({ id: 'm1', ts: '1100' });
    // Run 3 catches up from m1: m2 is found; m3 is recognised as delivered.
    const run3 = inbox.open('s-2', epoch);
    await run3.catchUp(
      async (r) =>
        [msg('m1', 'chat-a', 1100), msg('m2', 'chat-a', 1200), msg('m3', 'chat-a', 1300)].filter(
          (m) => m.timestamp >= r.cursors.get('chat-a')!.timestamp,
        ),
      3000,
    );
    await waitUntil(() => deliveries(receiver).count.size === 3);
    expect(Object.fromEntries(deliveries(receiver).count)).toEqual({ m1: 1, m2: 1, m3: 1 });
    const after = await redis.client.hgetall(inboxKeys(namespace, 's-2').cursors);
    expect(JSON.parse(after['chat-a']!)).toEqual({ id: 'm3', ts: '1300' });
    expect(after['*']).toBe('3000');
  });

  it('a message the outbox cannot store stops the cursors for the rest of the run, so the next catch-up delivers it', async () => {
    const receiver = await startReceiver();
    closers.push(() => receiver.close());
    const namespace = uniqueNamespace('inbox-broken');
    const { fleet, outbox } = await fleetWithOutbox(namespace, 'wa-1', receiver);
    await fleet.claim('s-3');
    const broken = createOutbox({
      store: join(mkdtempSync(join(tmpdir(), 'wafleet-inbox-')), 'x.sqlite'),
      endpoint: { url: `${receiver.url}/x`, secrets: [SECRET] },
    });
    // Never started: every enqueue is refused.
    const failing = createInbox({ fleet, outbox: broken });
    const inbox = createInbox({ fleet, outbox });
    const epoch = fleet.epochOf('s-3')!;
    const run1 = inbox.open('s-3', epoch);
    await run1.catchUp(async () => [], 1000);
    await run1.deliver(msg('m1', 'chat-a', 1100));
    const bad = failing.open('s-3', epoch);
    await bad.catchUp(async () => [], 1000);
    await bad.deliver(msg('m2', 'chat-a', 1200));
    await bad.deliver(msg('m3', 'chat-a', 1300));
    expect(failing.stats()).toMatchObject({ failed: 2, live: 0 });
    const cursors = await redis.client.hgetall(inboxKeys(namespace, 's-3').cursors);
    expect(JSON.parse(cursors['chat-a']!)).toMatchObject({ id: 'm1' });
  });

  it('bounds a catch-up per chat and in total, keeping the newest', async () => {
    const receiver = await startReceiver();
    closers.push(() => receiver.close());
    const { fleet, outbox } = await fleetWithOutbox(uniqueNamespace('inbox-bounds'), 'wa-1', receiver);
    await fleet.claim('s-4');
    const inbox = createInbox({ fleet, outbox, catchUp: { perChat: 3, total: 5 } });
    const history = [
      ...Array.from({ length: 6 }, (_, i) => msg(`a${i}`, 'chat-a', 1000 + i)),
      ...Array.from({ length: 4 }, (_, i) => msg(`b${i}`, 'chat-b', 2000 + i)),
    ];
    const run = inbox.open('s-4', fleet.epochOf('s-4')!);
    await run.catchUp(async () => history, 5000);
    await waitUntil(() => deliveries(receiver).count.size === 5);
    expect([...deliveries(receiver).count.keys()].sort()).toEqual(['a5', 'b1', 'b2', 'b3', 'a4'].sort());
    expect(inbox.stats()).toMatchObject({ caughtUp: 5, truncated: 5 });
  });

  it('refuses bad options and malformed messages with clear errors, writing nothing', async () => {
    const receiver = await startReceiver();
    closers.push(() => receiver.close());
    const { fleet, outbox } = await fleetWithOutbox(uniqueNamespace('inbox-bad'), 'wa-1', receiver);
    expect(() => createInbox({ fleet, outbox: {} as Outbox })).toThrow(/outbox/);
    expect(() => createInbox({ fleet: {} as Fleet, outbox })).toThrow(/Fleet/);
    expect(() => createInbox({ fleet, outbox, eventType: 'a b' })).toThrow(/eventType/);
    expect(() => createInbox({ fleet, outbox, catchUp: { perChat: 0 } })).toThrow(/catchUp.perChat/);
    expect(() => createInbox({ fleet, outbox }).open('bad id', '1')).toThrow(/session/i);
    await fleet.claim('s-5');
    const inbox = createInbox({ fleet, outbox });
    const run = inbox.open('s-5', fleet.epochOf('s-5')!);
    await run.deliver({ id: '', chatId: 'c', timestamp: 1 });
    await run.deliver({ id: 'x', chatId: '*', timestamp: 1 });
    await run.deliver({ id: 'y', chatId: 'c', timestamp: Number.NaN });
    expect(inbox.stats()).toMatchObject({ failed: 3, live: 0 });
    await new Promise((r) => setTimeout(r, 100));
    expect(deliveries(receiver).total).toBe(0);
  });

  it('through supervisors and the simulated engine: a session handed off by a drain delivers every message once, those sent during the move caught up', async () => {
    const receiver = await startReceiver();
    closers.push(() => receiver.close());
    const namespace = uniqueNamespace('inbox-move');
    const dir = mkdtempSync(join(tmpdir(), 'wafleet-inbox-wa-'));
    const hosts: Array<{ fleet: Fleet; supervisor: Supervisor }> = [];
    for (const id of ['wa-1', 'wa-2']) {
      const { fleet, outbox } = await fleetWithOutbox(namespace, id, receiver);
      // Slow launches: the move takes ~1 s, during which messages arrive and nobody receives them live.
      const sim = createSimEngine({ messages: { dir, pollMs: 20 }, authDelayMs: 500, readyDelayMs: 500 });
      const supervisor = createSupervisor({ fleet, engine: sim.factory, inbox: createInbox({ fleet, outbox }) });
      supervisor.start();
      closers.push(() => supervisor.close());
      hosts.push({ fleet, supervisor });
    }
    await hosts[0]!.supervisor.startSession('s-6');
    await waitUntil(() => hosts[0]!.supervisor.session('s-6')?.status === 'WORKING');
    let n = 0;
    const send = () => sendSimMessage(dir, 's-6', { id: `m${n}`, chat: `chat-${n % 2}`, ts: Date.now(), body: `b${n++}` });
    const sending = setInterval(send, 25);
    await new Promise((r) => setTimeout(r, 500));
    const drained = hosts[0]!.fleet.drain();
    await waitUntil(() => hosts[1]!.supervisor.session('s-6')?.status === 'WORKING', { timeoutMs: 10_000 });
    await drained;
    await new Promise((r) => setTimeout(r, 500));
    clearInterval(sending);
    await waitUntil(() => deliveries(receiver, 's-6').count.size === n, { timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 300));
    const d = deliveries(receiver, 's-6');
    const caught = [...d.caughtUp.values()].filter(Boolean).length;
    console.log(
      `[inbox] ${n} sent across a handoff: ${d.count.size} delivered (${d.count.size - caught} live, ${caught} caught up), ${d.total - d.count.size} repeats`,
    );
    expect(d.count.size).toBe(n);
    expect([...d.count.values()].every((c) => c === 1)).toBe(true);
    expect(caught).toBeGreaterThan(0);
  });
});
