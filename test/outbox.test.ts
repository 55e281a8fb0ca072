import { createHmac } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createFleet, createOutbox, legacyHmacSigner, type Outbox } from '@wafleet/core';
import { waitUntil } from '@wafleet/test-utils';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { useOutboxes } from './helpers/outbox-harness.js';

const SECRET = `whsec_${Buffer.from('wafleet-test-secret-0123456789').toString('base64')}`;
const NEW_SECRET = `whsec_${Buffer.from('wafleet-rotated-secret-98765').toString('base64')}`;
const { dir, receiver, outbox, track } = useOutboxes(SECRET);

describe('webhook outbox: signing (G6)', () => {
  it('signatures verify with the standardwebhooks package, also during a secret rotation', async () => {
    const r = await receiver();
    const o = await outbox(`${r.url}/hooks`, { endpoint: { url: `${r.url}/hooks`, secrets: [NEW_SECRET, SECRET] } });
    const { id, seq } = await o.enqueue({
      type: 'session.status',
      session: 's1',
      epoch: '1838981364692992',
      data: { status: 'WORKING', previous: '' },
    });
    await waitUntil(() => r.received.length === 1);
    const got = r.received[0]!;
    const headers = got.headers as Record<string, string>;
    expect(headers['webhook-id']).toBe(id);
    expect(headers['x-instance-url']).toBe('http://wa-1:3000');
    expect(headers['webhook-signature']!.split(' ')).toHaveLength(2);
    // A receiver that knows only the old secret, and one that already switched: both accept.
    expect(new Webhook(SECRET).verify(got.body, headers)).toMatchObject({ id, seq, type: 'session.status', session: 's1' });
    expect(new Webhook(NEW_SECRET).verify(got.body, headers)).toMatchObject({ id });
    expect(() => new Webhook(`whsec_${Buffer.from('someone-else-entirely').toString('base64')}`).verify(got.body, headers)).toThrow();
    expect(got.json).toMatchObject({
      id,
      seq: 1,
      epoch: '1838981364692992',
      instance: { id: 'wa-1', url: 'http://wa-1:3000' },
      data: { status: 'WORKING', previous: '' },
    });
  });

  it('a legacy receiver verifies the pluggable hex HMAC scheme with a plain HMAC check', async () => {
    const r = await receiver();
    const o = await outbox(r.url, { endpoint: { url: r.url, signer: legacyHmacSigner('legacy-secret') } });
    await o.enqueue({ type: 'session_ready', session: 's1', data: {} });
    await waitUntil(() => r.received.length === 1);
    const { headers, body } = r.received[0]!;
    const expected = createHmac('sha256', 'legacy-secret').update(`${headers['x-timestamp']}${body}`).digest('hex');
    expect(headers['x-hmac-signature']).toBe(expected);
  });
});

describe('webhook outbox: order and supersession (G6)', () => {
  it('delivers per session in seq order; a stuck session does not block others', async () => {
    const r = await receiver();
    // Session "stuck" fails until released; session "free" always succeeds.
    let release = false;
    r.reply = (req) => (req.json.session === 'stuck' && !release ? { status: 503 } : { status: 200 });
    const o = await outbox(r.url, { breaker: { failureThreshold: 1000 } });
    for (let i = 0; i < 5; i++) await o.enqueue({ type: 'message', session: 'stuck', data: { i } });
    for (let i = 0; i < 5; i++) await o.enqueue({ type: 'message', session: 'free', data: { i } });
    await waitUntil(() => r.received.filter((x) => x.json.session === 'free').length === 5, { message: 'the healthy session was blocked' });
    // While blocked, only the head of the stuck session was ever tried.
    expect(new Set(r.received.filter((x) => x.json.session === 'stuck').map((x) => x.json.seq))).toEqual(new Set([1]));
    release = true;
    await waitUntil(() => r.received.filter((x) => x.json.session === 'stuck' && x.json.seq === 5).length === 1);
    const delivered = r.received.filter((x) => x.json.session === 'stuck').map((x) => x.json.seq);
    expect(delivered.filter((seq, i) => seq !== 1 || i === delivered.lastIndexOf(1)).slice(-5)).toEqual([1, 2, 3, 4, 5]);
    for (let i = 1; i < delivered.length; i++) expect(delivered[i]!).toBeGreaterThanOrEqual(delivered[i - 1]!);
  });

  it('keeps delivering while a caller enqueues in a tight await loop', async () => {
    const r = await receiver();
    const o = await outbox(r.url, { pollIntervalMs: 20, ratePerSecond: 100_000 });
    const t0 = performance.now();
    let deliveredDuringLoop = 0;
    // Each commit is synchronous: without yielding, this loop would never let a delivery run.
    while (performance.now() - t0 < 400) {
      await o.enqueue({ type: 'burst', session: `s${Math.floor(Math.random() * 50)}` });
      deliveredDuringLoop = r.received.length;
    }
    // Not just a trickle: most of what was enqueued in the loop was also delivered during it.
    const enqueued = o.stats().enqueued;
    console.log(`tight loop: ${enqueued} enqueued, ${deliveredDuringLoop} delivered during the 400 ms loop`);
    expect(deliveredDuringLoop).toBeGreaterThan(enqueued / 4);
    await waitUntil(() => o.stats().pending === 0 && o.stats().oldestPendingAt === undefined, { timeoutMs: 20_000 });
  });

  it('a newer state event supersedes older undelivered ones, which never arrive after it', async () => {
    const r = await receiver();
    await r.down();
    const o = await outbox(r.url);
    for (const status of ['STARTING', 'SCAN_QR_CODE', 'WORKING']) {
      await o.enqueue({ type: 'session.status', session: 's1', data: { status, previous: '' }, supersedeGroup: 'session.status' });
    }
    await o.enqueue({ type: 'message', session: 's1', data: { text: 'kept' } });
    await r.up();
    await waitUntil(() => r.received.length >= 2);
    await new Promise((res) => setTimeout(res, 200));
    const statuses = r.received.filter((x) => x.json.type === 'session.status').map((x) => x.json.data.status);
    expect(statuses).toEqual(['WORKING']);
    expect(r.received.map((x) => x.json.type).sort()).toEqual(['message', 'session.status']);
  });
});

describe('webhook outbox: answers and failures (G6)', () => {
  it('410 disables the target: later events to it are dead-lettered without a request', async () => {
    const r = await receiver();
    r.reply = () => ({ status: 410 });
    const o = await outbox(r.url);
    await o.enqueue({ type: 'a', session: 's1' });
    await waitUntil(async () => (await o.deadLetters()).length === 1);
    await o.enqueue({ type: 'b', session: 's2' });
    await waitUntil(async () => (await o.deadLetters()).length === 2);
    expect(r.received).toHaveLength(1);
    expect((await o.deadLetters()).map((d) => d.deadReason)).toEqual(['target gone (410)', 'target disabled (410)']);
    await o.enableTarget(new URL(r.url).toString());
    r.reply = () => ({ status: 200 });
    expect(await o.replay({ session: 's2' })).toBe(1);
    await waitUntil(() => r.received.length === 2);
  });

  it('429 with Retry-After waits at least that long (clamped), 5xx and 408/425 are retried, other 4xx are final', async () => {
    const r = await receiver();
    const answers: Record<string, Array<{ status: number; headers?: Record<string, string> }>> = {
      throttled: [{ status: 429, headers: { 'retry-after': '1' } }],
      flaky: [{ status: 500 }, { status: 502 }, { status: 408 }, { status: 425 }],
      rejected: [{ status: 400 }],
      conflict: [{ status: 409 }],
    };
    r.reply = (req) => answers[req.json.session]?.shift() ?? { status: 200 };
    const o = await outbox(r.url, { retryAfter: { minMs: 0, maxMs: 600 } });
    for (const session of Object.keys(answers)) await o.enqueue({ type: 't', session });
    await waitUntil(() => r.received.filter((x) => x.json.session === 'flaky').length === 5);
    await waitUntil(() => r.received.filter((x) => x.json.session === 'throttled').length === 2);
    const throttled = r.received.filter((x) => x.json.session === 'throttled');
    // Retry-After: 1 s was clamped to maxMs 600.
    expect(throttled[1]!.at - throttled[0]!.at).toBeGreaterThanOrEqual(550);
    await waitUntil(async () => (await o.deadLetters()).length === 2);
    expect((await o.deadLetters()).map((d) => [d.session, d.deadReason]).sort()).toEqual([
      ['conflict', 'rejected with 409'],
      ['rejected', 'rejected with 400'],
    ]);
    expect(r.received.filter((x) => x.json.session === 'rejected')).toHaveLength(1);
  });

  it('409 is retried when configured', async () => {
    const r = await receiver();
    let first = true;
    r.reply = () => (first ? ((first = false), { status: 409 }) : { status: 200 });
    const o = await outbox(r.url, { retryOn409: true });
    await o.enqueue({ type: 't', session: 's1' });
    // The receiver sees the second request before the outbox has processed its answer: wait for the outcome.
    await waitUntil(() => o.stats().attempts.delivered === 1);
    expect(r.received).toHaveLength(2);
    expect(o.stats().attempts).toMatchObject({ retry: 1, delivered: 1 });
  });

  it('timeouts and refused connections are retried', async () => {
    const r = await receiver();
    let slow = true;
    r.reply = () => (slow ? ((slow = false), { status: 200, delayMs: 500 }) : { status: 200 });
    const o = await outbox(r.url, { timeoutMs: 100 });
    await o.enqueue({ type: 't', session: 'timeout' });
    await waitUntil(() => o.stats().attempts.delivered === 1);
    expect(r.received).toHaveLength(2);

    await r.down();
    await o.enqueue({ type: 't', session: 'refused' });
    await waitUntil(() => o.stats().attempts.retry >= 3, { message: 'refused connections were not retried' });
    await r.up();
    await waitUntil(() => o.stats().attempts.delivered === 2);
  });

  it('a connection reset is retried quickly in process before the persisted schedule', async () => {
    // Real resets: the first two connections are answered with a TCP RST once their request arrives; the third gets
    // a 200. The default two quick retries absorb both (100 ms, then 200 ms later).
    let connections = 0;
    let requests = 0;
    const server = createServer((socket) => {
      const n = ++connections;
      socket.once('data', () => {
        requests++;
        if (n <= 2) socket.resetAndDestroy();
        else socket.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const o = await outbox(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`, { quickRetries: 2 });
      await o.enqueue({ type: 't', session: 's1' });
      await waitUntil(() => o.stats().attempts.delivered === 1);
      // One attempt on the schedule: the resets were absorbed by the quick retries.
      expect(o.stats().attempts.retry).toBe(0);
      expect(requests).toBe(3);
    } finally {
      server.close();
    }
  });

  it('the breaker opens after consecutive failures and lets one probe through after the cooldown', async () => {
    const r = await receiver();
    r.reply = () => ({ status: 503 });
    // A cooldown far longer than the observation window, so a loaded machine cannot blur the two.
    const o = await outbox(r.url, { breaker: { failureThreshold: 3, cooldownMs: 1500 }, scheduleMs: [0, 10] });
    for (let i = 0; i < 10; i++) await o.enqueue({ type: 't', session: `s${i}` });
    await waitUntil(() => o.stats().breaker === 'open');
    // Attempts launched before it opened may still land; none may start while it is open.
    await waitUntil(() => o.stats().inFlight === 0);
    const whenOpened = r.received.length;
    await new Promise((res) => setTimeout(res, 300));
    expect(r.received.length).toBe(whenOpened);
    r.reply = () => ({ status: 200 });
    await waitUntil(() => o.stats().attempts.delivered === 10, { timeoutMs: 8000 });
    expect(o.stats().breaker).toBe('closed');
  });
});

describe('webhook outbox: long outages (G6)', () => {
  it('nothing is lost, the backlog drains at the bounded rate, events past max age are dead-lettered and replayed with the same id', async () => {
    const r = await receiver();
    await r.down();
    let clock = Date.parse('2026-11-28T12:00:00Z');
    const hour = 3_600_000;
    const o = await outbox(r.url, {
      now: () => clock,
      scheduleMs: [0, 1000, hour],
      maxAgeMs: 72 * hour,
      ratePerSecond: 20,
      concurrency: 4,
      breaker: { failureThreshold: 1_000_000 },
    });
    const old = await o.enqueue({ type: 'old', session: 'expired' });
    clock += 48 * hour;
    const ids = [];
    for (let i = 0; i < 60; i++) ids.push((await o.enqueue({ type: 'backlog', session: `s${i % 12}`, data: { i } })).id);
    // The receiver stays down for 30 simulated hours: the first event passes its 72 h max age.
    // 13 sessions: with the clock frozen only each session's oldest event is tried (the rest wait behind it).
    await waitUntil(() => o.stats().attempts.retry >= 13);
    clock += 30 * hour;
    await waitUntil(async () => (await o.deadLetters()).length === 1, { message: 'expired event not dead-lettered' });
    expect((await o.deadLetters())[0]).toMatchObject({ id: old.id, deadReason: 'max age' });

    await r.up();
    // An attempt refused just before the receiver came up must record its retry before the clock moves, or it
    // would be scheduled an hour after the new time. Then the next retries (an hour out) fall due.
    await waitUntil(() => o.stats().inFlight === 0);
    clock += hour;
    const t0 = Date.now();
    await waitUntil(() => new Set(r.received.map((x) => x.json.id)).size === 60, { timeoutMs: 15_000, message: 'backlog not delivered' });
    const seconds = (Date.now() - t0) / 1000;
    const rate = 60 / seconds;
    console.log(`outage drain: 60 events in ${seconds.toFixed(2)} s (${rate.toFixed(1)}/s, bound 20/s + a burst of 20)`);
    // A token bucket of 20/s with a burst of 20: 60 events cannot take less than 2 s.
    expect(seconds).toBeGreaterThan(1.8);
    expect(new Set(r.received.map((x) => x.json.id))).toEqual(new Set(ids));

    expect(await o.replay({ ids: [old.id] })).toBe(1);
    await waitUntil(() => r.received.some((x) => x.json.id === old.id));
    expect(r.received.find((x) => x.json.id === old.id)!.headers['webhook-id']).toBe(old.id);
  });
});

describe('webhook outbox: bad input (G8)', () => {
  it('an unwritable or corrupt store path fails start() with WAFLEET_OUTBOX_STORE', async () => {
    const readOnly = dir();
    chmodSync(readOnly, 0o500);
    const base = { endpoint: { url: 'http://127.0.0.1:9/x', secrets: [SECRET] }, instance: { instanceId: 'a', url: 'http://a' } };
    if (process.getuid?.() !== 0) {
      await expect(createOutbox({ ...base, store: join(readOnly, 'outbox.sqlite') }).start()).rejects.toMatchObject({
        code: 'WAFLEET_OUTBOX_STORE',
      });
    }
    // A parent that is a regular file: unwritable for root too.
    const notADir = join(dir(), 'file');
    writeFileSync(notADir, 'x');
    await expect(createOutbox({ ...base, store: join(notADir, 'outbox.sqlite') }).start()).rejects.toMatchObject({
      code: 'WAFLEET_OUTBOX_STORE',
    });
    const corrupt = join(dir(), 'corrupt.sqlite');
    writeFileSync(corrupt, Buffer.alloc(8192, 7));
    await expect(createOutbox({ ...base, store: corrupt }).start()).rejects.toMatchObject({
      code: 'WAFLEET_OUTBOX_STORE',
      message: expect.stringContaining(corrupt),
    });
  });

  it('a second process (or outbox) cannot open a file in use', async () => {
    const file = join(dir(), 'outbox.sqlite');
    const base = {
      store: file,
      endpoint: { url: 'http://127.0.0.1:9/x', secrets: [SECRET] },
      instance: { instanceId: 'a', url: 'http://a' },
    };
    const first = track(createOutbox(base));
    await first.start();
    await first.enqueue({ type: 't' });
    await expect(createOutbox(base).start()).rejects.toMatchObject({
      code: 'WAFLEET_OUTBOX_STORE',
      message: expect.stringMatching(/another process/),
    });
  });

  it('non-serializable, oversized or malformed events are refused and nothing is stored', async () => {
    const r = await receiver();
    const o = await outbox(r.url, { maxEventBytes: 1024 });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await expect(o.enqueue({ type: 't', data: circular })).rejects.toMatchObject({ code: 'WAFLEET_EVENT_INVALID' });
    await expect(o.enqueue({ type: 't', data: { n: 10n } })).rejects.toMatchObject({ code: 'WAFLEET_EVENT_INVALID' });
    await expect(o.enqueue({ type: 't', data: { text: 'x'.repeat(2000) } })).rejects.toMatchObject({ code: 'WAFLEET_EVENT_TOO_LARGE' });
    await expect(o.enqueue({ type: 'bad type' })).rejects.toMatchObject({ code: 'WAFLEET_EVENT_INVALID' });
    await expect(o.enqueue({ type: 't', session: 'a:b' })).rejects.toMatchObject({ code: 'WAFLEET_INVALID_ID' });
    await expect(o.enqueue({ type: 't', epoch: '12x' })).rejects.toMatchObject({ code: 'WAFLEET_EVENT_INVALID' });
    // A batch with one bad event stores none of them.
    await expect(o.enqueueMany([{ type: 'ok' }, { type: 't', data: circular }])).rejects.toMatchObject({ code: 'WAFLEET_EVENT_INVALID' });
    await new Promise((res) => setTimeout(res, 100));
    expect(o.stats()).toMatchObject({ enqueued: 0, pending: 0 });
    expect(r.received).toEqual([]);
  });

  it('rejects bad options with ConfigError naming the option', () => {
    const base = { store: ':memory:', endpoint: { url: 'http://x', secrets: [SECRET] }, instance: { instanceId: 'a', url: 'http://a' } };
    expect(() => createOutbox({ ...base, endpoint: { url: 'http://x' } })).toThrow(expect.objectContaining({ option: 'endpoint.secrets' }));
    expect(() => createOutbox({ ...base, endpoint: { url: 'http://x', secrets: ['plain'] } })).toThrow(
      expect.objectContaining({ option: 'secrets' }),
    );
    expect(() => createOutbox({ ...base, concurrency: 0 })).toThrow(expect.objectContaining({ option: 'concurrency' }));
    expect(() => createOutbox({ ...base, scheduleMs: [] })).toThrow(expect.objectContaining({ option: 'scheduleMs' }));
    expect(() => createOutbox({ ...base, endpoint: { url: 'nope', secrets: [SECRET] } })).toThrow(
      expect.objectContaining({ option: 'endpoint.url' }),
    );
  });
});

describe('webhook outbox: the sending instance is configured once (G8)', () => {
  /** Built, never started: createFleet connects to nothing. */
  const fleetOf = (instanceId: string, outbox?: Outbox) =>
    createFleet({ redis: 'redis://127.0.0.1:1', instanceId, url: `http://${instanceId}:3000`, maxSessions: 1, outbox });

  it('sends as the fleet it is given to, and refuses to start before it has a sender', async () => {
    const r = await receiver();
    const o = track(createOutbox({ store: ':memory:', endpoint: { url: r.url, secrets: [SECRET] }, pollIntervalMs: 10 }));
    await expect(o.start()).rejects.toMatchObject({ code: 'WAFLEET_CONFIG', option: 'instance' });
    await expect(o.enqueue({ type: 't' })).rejects.toMatchObject({ code: 'WAFLEET_NOT_STARTED' });
    fleetOf('wa-7', o);
    await o.start();
    await o.enqueue({ type: 't' });
    await waitUntil(() => r.received.length === 1);
    expect(r.received[0]!.json).toMatchObject({ instance: { id: 'wa-7', url: 'http://wa-7:3000' } });
    expect(r.received[0]!.headers['x-instance-url']).toBe('http://wa-7:3000');
  });

  it('takes a fleet as its instance, and refuses to be the outbox of a fleet of another instance', () => {
    const endpoint = { url: 'http://127.0.0.1:9/x', secrets: [SECRET] };
    const beside = fleetOf('wa-1');
    const o = createOutbox({ store: ':memory:', endpoint, instance: beside });
    expect(() => fleetOf('wa-1', o)).not.toThrow();
    expect(() => fleetOf('wa-2', o)).toThrow(expect.objectContaining({ code: 'WAFLEET_CONFIG', option: 'outbox' }));
    const given = createOutbox({ store: ':memory:', endpoint });
    fleetOf('wa-3', given);
    expect(() => fleetOf('wa-4', given)).toThrow(expect.objectContaining({ option: 'outbox', message: expect.stringContaining("'wa-3'") }));
    const lookalike = { enqueue: async () => ({}), enqueueMany: async () => [] } as unknown as Outbox;
    expect(() => fleetOf('wa-5', lookalike)).toThrow(expect.objectContaining({ option: 'outbox' }));
  });

  it('refuses an instance that is not { instanceId, url } by the fleet rules, naming the option', () => {
    const endpoint = { url: 'http://127.0.0.1:9/x', secrets: [SECRET] };
    const bad: Array<[unknown, string]> = [
      [null, 'instance'],
      ['wa-1', 'instance'],
      [{ id: 'wa-1', url: 'http://wa-1:3000' }, 'instance'],
      [{ instanceId: 'a:b', url: 'http://a' }, 'instance.instanceId'],
      [{ instanceId: 'a', url: 'ftp://a' }, 'instance.url'],
      [{ instanceId: 'a', url: 'http://user:pw@a' }, 'instance.url'],
      [{ instanceId: 'a' }, 'instance.url'],
    ];
    for (const [instance, option] of bad) {
      expect(() => createOutbox({ store: ':memory:', endpoint, instance } as never), JSON.stringify(instance)).toThrow(
        expect.objectContaining({ code: 'WAFLEET_CONFIG', option }),
      );
    }
    expect(() => createOutbox({ store: ':memory:', endpoint, instance: { id: 'wa-1', url: 'http://x' } } as never)).toThrow(
      /`\{ id, url \}` became `\{ instanceId, url \}`/,
    );
  });
});
