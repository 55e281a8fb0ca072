import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareEventOrder, verifyWebhook } from '@wafleet/client';
import { createFleet, createOutbox, type Fleet, type Outbox } from '@wafleet/core';
import { killAll, startRedis, uniqueNamespace, waitUntil, type RedisServerHandle } from '@wafleet/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, type Receiver } from './helpers/receiver.js';

const SECRET = `whsec_${Buffer.from('wafleet-fleet-webhooks-secret').toString('base64')}`;
let server: RedisServerHandle;
let receiver: Receiver;
let outbox: Outbox;
let fleet: Fleet;

beforeAll(async () => {
  // Frozen later in this file, so always a private server.
  server = await startRedis();
  receiver = await startReceiver();
  // No `instance`: the fleet it is given to names the sender.
  outbox = createOutbox({
    store: join(mkdtempSync(join(tmpdir(), 'wafleet-fleet-hooks-')), 'outbox.sqlite'),
    endpoint: { url: `${receiver.url}/webhooks/whatsapp`, secrets: [SECRET] },
    pollIntervalMs: 20,
  });
  fleet = createFleet({
    redis: server.url,
    namespace: uniqueNamespace('hooks'),
    instanceId: 'wa-1',
    url: 'http://wa-1:3000',
    maxSessions: 5,
    quarantineMs: 0,
    outbox,
    readyEventType: 'session_ready',
    commandTimeoutMs: 500,
  });
  await outbox.start();
  await fleet.start();
});

afterAll(async () => {
  server.resume();
  await fleet.close();
  await outbox.close();
  await receiver.close();
  await killAll();
});

describe('status webhooks from the fleet (G6, G7)', () => {
  it('sends session.status on every transition and session_ready on WORKING, signed and ordered', async () => {
    const { epoch } = await fleet.claim('5511999990000');
    // Each transition is delivered before the next (a burst would let the newest status supersede the others).
    for (const [status, total] of [
      ['STARTING', 1],
      ['SCAN_QR_CODE', 2],
      ['WORKING', 4],
      ['WORKING', 4],
    ] as const) {
      await fleet.setStatus('5511999990000', status);
      await waitUntil(() => receiver.received.length === total);
    }
    const events = receiver.received.map((r) => verifyWebhook(SECRET, r.headers as Record<string, string>, r.body));
    expect(events.map((e) => [e.type, (e.data as { status: string }).status])).toEqual([
      ['session.status', 'STARTING'],
      ['session.status', 'SCAN_QR_CODE'],
      ['session.status', 'WORKING'],
      ['session_ready', 'WORKING'],
    ]);
    for (const e of events) expect(e).toMatchObject({ session: '5511999990000', epoch, instance: { id: 'wa-1', url: 'http://wa-1:3000' } });
    for (let i = 1; i < events.length; i++) expect(compareEventOrder(events[i - 1]!, events[i]!)).toBeLessThan(0);
    expect(receiver.received[3]!.headers['x-instance-url']).toBe('http://wa-1:3000');
    expect(receiver.received[0]!.path).toBe('/webhooks/whatsapp');
  });

  it('a burst of transitions delivers the latest status (older undelivered ones are superseded) and the ready event', async () => {
    await fleet.claim('5511999990001');
    receiver.received.length = 0;
    await receiver.down();
    for (const status of ['STARTING', 'SCAN_QR_CODE', 'WORKING', 'FAILED'] as const) await fleet.setStatus('5511999990001', status);
    await receiver.up();
    await waitUntil(() => receiver.received.length === 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.received.map((r) => [r.json.type, r.json.data.status])).toEqual([
      ['session_ready', 'WORKING'],
      ['session.status', 'FAILED'],
    ]);
  });

  it('webhooks keep flowing while Redis is unreachable', async () => {
    const before = receiver.received.length;
    server.pause();
    // The registry write times out, but the webhook was committed to the outbox first.
    await expect(fleet.setStatus('5511999990000', 'FAILED')).rejects.toThrow();
    await waitUntil(() => receiver.received.length === before + 1, { message: 'no webhook while Redis was frozen' });
    server.resume();
    expect(receiver.received.at(-1)!.json).toMatchObject({ type: 'session.status', data: { status: 'FAILED', previous: 'WORKING' } });
  });
});
