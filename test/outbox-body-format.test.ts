import { createHmac } from 'node:crypto';
import { createOutbox, legacyBody, legacyHmacSigner, type BodyFormat, type LegacyBody } from '@wafleet/core';
import { waitUntil } from '@wafleet/test-utils';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { useOutboxes } from './helpers/outbox-harness.js';

const SECRET = `whsec_${Buffer.from('wafleet-body-format-secret-01').toString('base64')}`;
const LEGACY_SECRET = 'laravel-app-webhook-secret';
const { receiver, outbox, storePath, settle } = useOutboxes(SECRET);

const legacy = { signer: legacyHmacSigner(LEGACY_SECRET), body: legacyBody() };
const asLegacy = (body: string) => JSON.parse(body) as LegacyBody;

describe('webhook body formats: the backend keeps its format', () => {
  it('the legacy body arrives with an X-HMAC-Signature that recomputes as hex HMAC-SHA256 of timestamp + body', async () => {
    const r = await receiver();
    const o = await outbox(`${r.url}/api/whatsapp/webhook`, { endpoint: { url: `${r.url}/api/whatsapp/webhook`, ...legacy } });
    const { id, seq } = await o.enqueue({
      type: 'session_ready',
      session: '5511999990000',
      epoch: '1802240000000017',
      data: { status: 'WORKING', previous: 'SCAN_QR_CODE' },
    });
    await waitUntil(() => r.received.length === 1);
    const { headers, body } = r.received[0]!;
    const expected = createHmac('sha256', LEGACY_SECRET).update(`${headers['x-timestamp']}${body}`).digest('hex');
    expect(headers['x-hmac-signature']).toBe(expected);
    expect(headers['webhook-id']).toBe(id);
    expect(headers['x-instance-url']).toBe('http://wa-1:3000');
    // Exactly the fields a Laravel backend reads, and nothing of the Standard envelope's names.
    expect(asLegacy(body)).toStrictEqual({
      event: 'session_ready',
      session_id: '5511999990000',
      data: { status: 'WORKING', previous: 'SCAN_QR_CODE' },
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      id,
      epoch: '1802240000000017',
      seq,
      instance_id: 'wa-1',
      instance_url: 'http://wa-1:3000',
    });
  });

  it('state events keep their supersession and per-session order with the legacy body', async () => {
    const r = await receiver();
    await r.down();
    const o = await outbox(r.url, { endpoint: { url: r.url, ...legacy } });
    await o.enqueue({ type: 'message.received', session: 's1', data: { n: 1 } });
    for (const status of ['STARTING', 'SCAN_QR_CODE', 'WORKING']) {
      await o.enqueue({ type: 'session.status', session: 's1', data: { status, previous: '' }, supersedeGroup: 'session.status' });
    }
    await o.enqueue({ type: 'message.received', session: 's1', data: { n: 2 } });
    await r.up();
    await waitUntil(() => new Set(r.received.map((x) => asLegacy(x.body).id)).size === 3);
    await settle();
    const events = r.received.map((x) => asLegacy(x.body));
    const firstOfEach = events.filter((e, i) => events.findIndex((f) => f.id === e.id) === i);
    expect(firstOfEach.map((e) => [e.event, e.data])).toEqual([
      ['message.received', { n: 1 }],
      ['session.status', { status: 'WORKING', previous: '' }],
      ['message.received', { n: 2 }],
    ]);
    expect(firstOfEach.map((e) => e.seq)).toEqual([1, 4, 5]);
  });

  it('a custom body is signed by the Standard Webhooks signer, built once, and sent byte for byte again on replay', async () => {
    const r = await receiver();
    r.reply = () => ({ status: 400 });
    let calls = 0;
    const body: BodyFormat = (e) => {
      calls++;
      return { kind: e.type, who: e.session, payload: e.data, eventId: e.id };
    };
    const o = await outbox(r.url, { endpoint: { url: r.url, secrets: [SECRET], body } });
    const { id } = await o.enqueue({ type: 'message.received', session: 's1', data: { text: 'hi' } });
    await waitUntil(async () => (await o.deadLetters()).length === 1);
    r.reply = () => ({ status: 204 });
    expect(await o.replay({ ids: [id] })).toBe(1);
    await waitUntil(() => r.received.length === 2);
    const [first, again] = r.received;
    expect(again!.body).toBe(first!.body);
    expect(new Webhook(SECRET).verify(again!.body, again!.headers as Record<string, string>)).toStrictEqual({
      kind: 'message.received',
      who: 's1',
      payload: { text: 'hi' },
      eventId: id,
    });
    expect(calls).toBe(1);
  });

  it('a body function result that is not a JSON object is refused at enqueue with WAFLEET_EVENT_INVALID and nothing is stored', async () => {
    const r = await receiver();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const results: unknown[] = [
      ['an', 'array'],
      'a string',
      42,
      null,
      undefined,
      circular,
      { n: 10n },
      { toJSON: () => 'not an object' },
      () => ({}),
    ];
    const store = storePath();
    let next: unknown;
    const o = await outbox(r.url, { store, endpoint: { url: r.url, ...legacy, body: () => next as object } });
    for (const result of results) {
      next = result;
      const err = await o.enqueue({ type: 'message.received', session: 's1', data: { text: 'secret words' } }).catch((e: unknown) => e);
      expect(err, describeValue(result)).toMatchObject({ code: 'WAFLEET_EVENT_INVALID' });
      expect((err as Error).message).not.toContain('secret words');
    }
    // A body function that throws, and a batch in which one body is bad: nothing of it is stored.
    const throwing = await outbox(r.url, {
      endpoint: {
        url: r.url,
        ...legacy,
        body: () => {
          throw new Error('backend mapping broke');
        },
      },
    });
    await expect(throwing.enqueue({ type: 't', session: 's1' })).rejects.toMatchObject({ code: 'WAFLEET_EVENT_INVALID' });
    next = { fine: true };
    let n = 0;
    const second = await outbox(r.url, { endpoint: { url: r.url, ...legacy, body: () => (n++ === 1 ? 'bad' : { fine: true }) as object } });
    await expect(
      second.enqueueMany([
        { type: 'a', session: 's1' },
        { type: 'b', session: 's1' },
      ]),
    ).rejects.toMatchObject({
      code: 'WAFLEET_EVENT_INVALID',
    });
    await settle();
    expect(r.received).toEqual([]);
    for (const x of [o, throwing, second]) expect(x.stats()).toMatchObject({ enqueued: 0, pending: 0 });
    // The refusals are the caller's errors, not a failing store: no error episode, and the file holds nothing.
    await o.close();
    const reopened = await outbox(r.url, { store });
    expect(reopened.stats()).toMatchObject({ pending: 0, dead: 0 });
  });

  it('the canonical envelope is validated before the body function runs; an oversized body is refused', async () => {
    const r = await receiver();
    let calls = 0;
    const body: BodyFormat = (e) => {
      calls++;
      return { ...legacyBody()(e), padding: 'x'.repeat(2000) };
    };
    const o = await outbox(r.url, { maxEventBytes: 1024, endpoint: { url: r.url, ...legacy, body } });
    await expect(o.enqueue({ type: 'session.status', session: 's1', data: { status: 'WORKING' } })).rejects.toMatchObject({
      code: 'WAFLEET_EVENT_INVALID',
    });
    await expect(o.enqueue({ type: 't', session: 's1', data: [] as unknown as object })).rejects.toMatchObject({
      code: 'WAFLEET_EVENT_INVALID',
    });
    expect(calls).toBe(0);
    await expect(o.enqueue({ type: 't', session: 's1' })).rejects.toMatchObject({ code: 'WAFLEET_EVENT_TOO_LARGE' });
    expect(calls).toBe(1);
    await settle();
    expect(o.stats()).toMatchObject({ enqueued: 0, pending: 0 });
    expect(r.received).toEqual([]);
  });

  it('refuses an endpoint.body that is not a function with ConfigError naming it', () => {
    const base = { store: ':memory:', instance: { instanceId: 'a', url: 'http://a' } };
    expect(() =>
      createOutbox({ ...base, endpoint: { url: 'http://x', secrets: [SECRET], body: 'legacy' as unknown as BodyFormat } }),
    ).toThrow(expect.objectContaining({ code: 'WAFLEET_CONFIG', option: 'endpoint.body' }));
  });
});

function describeValue(value: unknown): string {
  return typeof value === 'object' && value !== null ? Object.prototype.toString.call(value) : String(value);
}
