import { randomBytes } from 'node:crypto';
import { verifyWebhook } from '@wafleet/client';
import { createOutbox, legacyHmacSigner, OutboxStoreError, SqliteOutboxStore, standardWebhooksSigner, WafleetError } from '@wafleet/core';
import { waitUntil } from '@wafleet/test-utils';
import { describe, expect, it } from 'vitest';
import { storeEvent, useOutboxes } from './helpers/outbox-harness.js';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const { receiver, outbox, storePath } = useOutboxes(SECRET, [0, 20, 40]);

/** Lets the pump run a few times, so anything wrongly stored would have been sent. */
const settle = () => new Promise((r) => setTimeout(r, 150));

describe('outbox event paths stay on the endpoint', () => {
  it('refuses paths that would leave the endpoint origin, stores nothing, and the other host gets nothing', async () => {
    const backend = await receiver();
    const other = await receiver();
    const otherHost = other.url.slice('http://'.length);
    const o = await outbox(`${backend.url}/hooks`, {
      endpoint: { url: `${backend.url}/hooks`, secrets: [SECRET], headers: { authorization: 'Bearer t' } },
    });
    for (const path of [
      `${other.url}/x`,
      `//${otherHost}/x`,
      `/\\${otherHost}/x`,
      '\\\\evil/x',
      'file:///etc/passwd',
      'relative/x',
      '',
      42,
    ]) {
      const err = await o.enqueue({ type: 't', path: path as string }).catch((e: unknown) => e);
      expect(err, `path ${JSON.stringify(path)}`).toBeInstanceOf(WafleetError);
      expect(err).toMatchObject({ code: 'WAFLEET_EVENT_INVALID' });
    }
    await settle();
    expect(o.stats()).toMatchObject({ enqueued: 0, pending: 0 });
    expect(other.received).toEqual([]);
    expect(backend.received).toEqual([]);
  });

  it('a path replaces the endpoint path on the endpoint origin', async () => {
    const r = await receiver();
    const o = await outbox(`${r.url}/hooks/wa?v=1`);
    await o.enqueue({ type: 't', path: '/status/x?y=2' });
    await o.enqueue({ type: 't' });
    await waitUntil(() => r.received.length === 2);
    expect(r.received.map((x) => x.path).sort()).toEqual(['/hooks/wa?v=1', '/status/x?y=2']);
  });

  it('refuses endpoints that are not http(s) or carry credentials, without quoting the password', () => {
    const base = { store: ':memory:', instance: { instanceId: 'a', url: 'http://a' } };
    for (const url of ['file:///tmp/x', 'ftp://backend/x', 'data:,x', 'http://user:hunter2@backend/x', 'https://user@backend/x']) {
      let err: unknown;
      try {
        createOutbox({ ...base, endpoint: { url, secrets: [SECRET] } });
      } catch (e) {
        err = e;
      }
      expect(err, url).toMatchObject({ code: 'WAFLEET_CONFIG', option: 'endpoint.url' });
      expect((err as Error).message).not.toContain('hunter2');
    }
  });
});

describe('outbox events without a session', () => {
  it('are each in flight at most once: 20 events to a slow receiver make exactly 20 POSTs', async () => {
    const r = await receiver();
    r.reply = () => ({ status: 200, delayMs: 150 });
    const o = await outbox(r.url);
    const ids = new Set<string>();
    for (let i = 0; i < 20; i++) ids.add((await o.enqueue({ type: 'sessionless', data: { i } })).id);
    await waitUntil(() => o.stats().pending === 0 && o.stats().inFlight === 0, { timeoutMs: 20_000 });
    await settle();
    expect(r.received).toHaveLength(20);
    expect(new Set(r.received.map((x) => x.json.id))).toEqual(ids);
    expect(o.stats().attempts.delivered).toBe(20);
  });
});

describe('the outbox sends only what verifyWebhook accepts', () => {
  it('an event without data arrives with data {} and verifies', async () => {
    const r = await receiver();
    const o = await outbox(r.url);
    await o.enqueue({ type: 'ping' });
    await waitUntil(() => r.received.length === 1);
    const { headers, body } = r.received[0]!;
    expect(verifyWebhook(SECRET, headers, body)).toMatchObject({ type: 'ping', data: {} });
  });

  it('refuses data that is not a JSON object, epochs with leading zeros and state events without { status, previous }', async () => {
    const r = await receiver();
    const o = await outbox(r.url);
    const refused = [
      { type: 't', data: [1, 2] },
      { type: 't', data: 'text' },
      { type: 't', data: 7 },
      { type: 't', data: null },
      { type: 't', data: new Date(0) },
      { type: 't', data: { toJSON: () => [1] } },
      { type: 't', epoch: '007' },
      { type: 't', epoch: '-1' },
      { type: 't', epoch: ' 1' },
      { type: 'session.status', session: 's1', data: { status: 'WORKING' } },
      { type: 'session.ready', session: 's1', data: {} },
    ];
    for (const event of refused) {
      await expect(o.enqueue(event as never), JSON.stringify(event)).rejects.toMatchObject({ code: 'WAFLEET_EVENT_INVALID' });
    }
    // The rule follows the type name on both sides: a renamed ready event is not checked by either.
    await o.enqueue({ type: 'session_ready', session: 's1', epoch: '0' });
    await waitUntil(() => r.received.length === 1);
    expect(verifyWebhook(SECRET, r.received[0]!.headers, r.received[0]!.body)).toMatchObject({ type: 'session_ready', epoch: '0' });
    expect(o.stats().enqueued).toBe(1);
  });

  it('the signer and the verifier refuse the same secrets: not strict base64, or not 24 to 64 bytes', () => {
    const body = '{}';
    const headers = { 'webhook-id': 'evt_x', 'webhook-timestamp': '1', 'webhook-signature': 'v1,x' };
    const refused = [
      'whsec_!!!!!!!!!!!!',
      `whsec_${randomBytes(8).toString('base64')}`,
      `whsec_${randomBytes(23).toString('base64')}`,
      `whsec_${randomBytes(65).toString('base64')}`,
      `whsec_${'ab-_'.repeat(11)}`,
      `whsec_${randomBytes(32).toString('base64').replace(/=+$/, '')}`,
      `whsec_ ${randomBytes(32).toString('base64')}`,
    ];
    const thrown = (fn: () => unknown): unknown => {
      try {
        fn();
      } catch (err) {
        return err;
      }
      return undefined;
    };
    for (const secret of refused) {
      for (const err of [
        thrown(() => standardWebhooksSigner([secret])),
        thrown(() => verifyWebhook(secret, headers, body, { now: () => 1 })),
      ]) {
        expect(err, secret).toMatchObject({ code: 'WAFLEET_CONFIG' });
        expect((err as Error).message).not.toContain(secret.slice('whsec_'.length + 1, 20));
      }
    }
    for (const bytes of [24, 32, 64]) {
      const secret = `whsec_${randomBytes(bytes).toString('base64')}`;
      expect(() => standardWebhooksSigner([secret])).not.toThrow();
    }
  });

  it('legacy secrets need 8 characters that are not all white space', () => {
    for (const secret of ['        ', '\t\t\t\t\n\n\n\n', 'short']) {
      expect(() => legacyHmacSigner(secret)).toThrow(expect.objectContaining({ code: 'WAFLEET_CONFIG', option: 'secret' }));
    }
    expect(() => legacyHmacSigner(' legacy secret ')).not.toThrow();
  });
});

describe('outbox store errors', () => {
  it('a failing insert surfaces as OutboxStoreError with the SQLite error as cause, and stores nothing of its batch', async () => {
    const store = new SqliteOutboxStore(storePath());
    await store.open();
    // A NOT NULL body makes SQLite itself refuse the second row, after the first was written in the transaction.
    const err = await store
      .insert([storeEvent('evt_a', () => '{}'), storeEvent('evt_b', () => null as unknown as string)])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutboxStoreError);
    expect(err).toMatchObject({ code: 'WAFLEET_OUTBOX_STORE' });
    expect((err as Error).cause).toMatchObject({ name: 'SqliteError' });
    expect(await store.counts()).toMatchObject({ pending: 0 });
    await store.close();
    await expect(store.counts()).rejects.toBeInstanceOf(OutboxStoreError);
  });
});
