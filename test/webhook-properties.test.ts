import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { verifyWebhook } from '@wafleet/client';
import { createOutbox, validateSessionId, WafleetError, type OutboxEvent } from '@wafleet/core';
import { waitUntil } from '@wafleet/test-utils';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { startReceiver } from './helpers/receiver.js';

// better-sqlite3 is a dependency of @wafleet/core, not of the test workspace: load the copy the outbox uses.
const requireFromCore = createRequire(join(dirname(fileURLToPath(import.meta.url)), '..', 'packages', 'core', 'package.json'));
type ReadOnlyDatabase = { prepare(sql: string): { get(): unknown }; close(): void };
const Database = requireFromCore('better-sqlite3') as new (file: string, options: { readonly: boolean }) => ReadOnlyDatabase;

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const storePath = () => join(mkdtempSync(join(tmpdir(), 'wafleet-webhook-props-')), 'outbox.sqlite');
const base = {
  instance: { instanceId: 'wa-1', url: 'http://wa-1:3000' },
  jitter: 0,
  pollIntervalMs: 10,
  quickRetries: 0,
  scheduleMs: [0, 20],
};

const isSessionId = (s: string) => {
  try {
    validateSessionId(s);
    return true;
  } catch {
    return false;
  }
};

const eventType = fc.oneof(fc.stringMatching(/^[\w.:-]{1,128}$/), fc.constantFrom('session.status', 'session.ready', 'session_ready'));
const sessionId = fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/).filter(isSessionId);
const epoch = fc.bigInt({ min: 0n, max: 10n ** 30n - 1n }).map(String);
const jsonObject = fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 });
const path = fc.webPath().map((p) => `/${p.replace(/^\/+/, '')}`);

/** Events of every shape `enqueue` should take; state events carry the data their type needs. */
const validEvent: fc.Arbitrary<OutboxEvent> = fc
  .record(
    { type: eventType, session: sessionId, epoch, data: jsonObject, path, status: fc.string(), previous: fc.string() },
    { requiredKeys: ['type', 'status', 'previous'] },
  )
  .map(({ status, previous, ...event }) =>
    event.type === 'session.status' || event.type === 'session.ready' ? { ...event, data: { ...event.data, status, previous } } : event,
  );

describe('webhook envelope properties', () => {
  it('every event enqueue accepts is delivered and passes verifyWebhook with its fields intact', async () => {
    const receiver = await startReceiver();
    const verdicts = new Map<string, { ok: true; event: unknown; path: string } | { ok: false; error: string }>();
    receiver.reply = (r) => {
      try {
        const event = verifyWebhook(SECRET, r.headers, r.body);
        verdicts.set(event.id, { ok: true, event, path: r.path });
        return { status: 204 };
      } catch (err) {
        verdicts.set(String(r.headers['webhook-id']), { ok: false, error: (err as Error).message });
        return { status: 400 };
      }
    };
    const outbox = createOutbox({ ...base, store: storePath(), endpoint: { url: `${receiver.url}/hooks`, secrets: [SECRET] } });
    await outbox.start();
    try {
      await fc.assert(
        fc.asyncProperty(validEvent, async (event) => {
          const { id } = await outbox.enqueue(event);
          await waitUntil(() => verdicts.has(id), { message: `event ${id} was not delivered` });
          const verdict = verdicts.get(id)!;
          expect(verdict).toMatchObject({ ok: true });
          const expected = new URL(event.path ?? '/hooks', receiver.url);
          expect(verdict).toMatchObject({
            path: `${expected.pathname}${expected.search}`,
            event: {
              id,
              type: event.type,
              session: event.session ?? '',
              epoch: event.epoch ?? '0',
              data: JSON.parse(JSON.stringify(event.data ?? {})) as unknown,
            },
          });
        }),
        { numRuns: 150 },
      );
    } finally {
      await outbox.close();
      await receiver.close();
    }
  });

  it('every event enqueue refuses throws a WafleetError with a stable code and leaves nothing in the SQLite file', async () => {
    const receiver = await startReceiver();
    const store = storePath();
    const outbox = createOutbox({ ...base, store, maxEventBytes: 2048, endpoint: { url: `${receiver.url}/hooks`, secrets: [SECRET] } });
    await outbox.start();
    const codes = new Set(['WAFLEET_EVENT_INVALID', 'WAFLEET_EVENT_TOO_LARGE', 'WAFLEET_INVALID_ID']);
    let accepted = 0;
    const anyEvent = fc.oneof(
      fc.record(
        {
          type: fc.oneof(eventType, fc.string(), fc.anything()),
          session: fc.oneof(sessionId, fc.string(), fc.anything()),
          epoch: fc.oneof(
            epoch,
            epoch.map((e) => `0${e}`),
            fc.string(),
            fc.anything(),
          ),
          data: fc.oneof(
            jsonObject,
            fc.jsonValue(),
            fc.anything(),
            fc.string({ minLength: 2000, maxLength: 3000 }).map((s) => ({ s })),
          ),
          path: fc.oneof(path, fc.webPath(), fc.webUrl(), fc.string(), fc.anything()),
        },
        { requiredKeys: [] },
      ),
      fc.anything(),
    );
    try {
      await fc.assert(
        fc.asyncProperty(anyEvent, async (event) => {
          try {
            await outbox.enqueue(event as OutboxEvent);
            accepted++;
          } catch (err) {
            expect(err).toBeInstanceOf(WafleetError);
            expect(codes, (err as Error).message).toContain((err as WafleetError).code);
          }
        }),
        { numRuns: 400 },
      );
    } finally {
      await outbox.close();
      await receiver.close();
    }
    const db = new Database(store, { readonly: true });
    try {
      const { n } = db.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number };
      expect(n).toBe(accepted);
    } finally {
      db.close();
    }
  });
});
