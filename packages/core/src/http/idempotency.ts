import { createHash } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ConfigError, describeValue as describe, IDEMPOTENCY_HEADER, idempotencyRecordKey, lua, REPLAYED_HEADER } from '@wafleet/protocol';
import type { Fleet } from '../registry/fleet.js';
import { fleetInternals } from '../internals.js';
import { answerError } from './answer-error.js';

/** Options of {@link idempotency}. */
export interface IdempotencyOptions {
  /** How long an outcome is kept for replay. @default 86_400_000 (24 h) */
  ttlMs?: number;
  /**
   * What a repeat gets while the first attempt is in flight on an instance that died:
   * `retry` executes it again (at-least-once), `conflict` answers 409 and never executes it again (at-most-once).
   * @default 'retry'
   */
  abandonedPolicy?: 'retry' | 'conflict';
  /**
   * Largest response body kept for replay. A larger one is still sent to the first caller, and its status is kept
   * so the request is never executed twice, but a repeat gets a short JSON note (`WAFLEET_RESPONSE_TOO_LARGE`)
   * instead of the body. @default 65536
   */
  maxResponseBytes?: number;
}

interface InFlight {
  state: 'in-flight';
  instance: string;
  inc: string;
  fingerprint: string;
  startedAt: number;
}

interface Done {
  state: 'done';
  fingerprint: string;
  status: number;
  contentType: string | undefined;
  body: string;
}

type RecordValue = InFlight | Done;

const KEY_FORMAT = /^[\x21-\x7e]{1,255}$/;

function fingerprintOf(req: Request): string {
  return createHash('sha256')
    .update(`${req.method} ${req.originalUrl}\n${req.body === undefined ? '' : JSON.stringify(req.body)}`)
    .digest('base64url');
}

function refuse(res: Response, status: number, error: string, message: string): void {
  if (status === 409) res.set('retry-after', '1');
  res.status(status).json({ error, message });
}

/**
 * Honours the `Idempotency-Key` header (IETF httpapi draft): the first request with a key executes; its response
 * (status < 500) is stored in Redis before it is sent, and repeats get the stored response with
 * `Idempotent-Replayed: true` instead of sending the WhatsApp message again. A repeat while the first attempt is
 * still running gets 409; one whose first attempt died with its instance follows `abandonedPolicy`. The same key
 * with a different method, path or body gets 422. Put it after the body parser and `fleetGuard`.
 * @example
 * app.post('/sessions/:sessionId/messages', express.json(), fleetGuard(fleet), idempotency(fleet), sendMessage);
 */
export function idempotency(fleet: Fleet, options: IdempotencyOptions = {}): RequestHandler {
  const ttlMs = options.ttlMs ?? 86_400_000;
  const policy = options.abandonedPolicy ?? 'retry';
  const maxResponseBytes = options.maxResponseBytes ?? 65_536;
  if (!Number.isInteger(ttlMs) || ttlMs < 1000)
    throw new ConfigError('ttlMs', `Expected \`ttlMs\` to be an integer >= 1000, got ${describe(ttlMs)}`);
  if (policy !== 'retry' && policy !== 'conflict') {
    throw new ConfigError('abandonedPolicy', `Expected \`abandonedPolicy\` to be 'retry' or 'conflict', got ${describe(policy)}`);
  }
  if (!Number.isInteger(maxResponseBytes) || maxResponseBytes < 0 || maxResponseBytes > 16 * 1024 * 1024) {
    throw new ConfigError(
      'maxResponseBytes',
      `Expected \`maxResponseBytes\` to be an integer from 0 to 16 MiB, got ${describe(maxResponseBytes)}`,
    );
  }

  const internals = fleetInternals(fleet);
  const log = internals.options.logger;
  const holderLive = async (rec: InFlight) => {
    const reply = await lua.instanceLive(internals.redis(), internals.keys, { instanceId: rec.instance, incarnation: rec.inc });
    return reply.live === '1';
  };

  return async (req: Request, res: Response, next: NextFunction) => {
    const key = req.get(IDEMPOTENCY_HEADER);
    if (key === undefined) return next();
    if (!KEY_FORMAT.test(key)) return refuse(res, 400, 'WAFLEET_INVALID_ID', 'Idempotency-Key must be 1 to 255 visible ASCII characters');
    try {
      const redis = internals.redis();
      const recordKey = idempotencyRecordKey(fleet.namespace, key);
      const fingerprint = fingerprintOf(req);
      const mine: InFlight = {
        state: 'in-flight',
        instance: fleet.instanceId,
        inc: fleet.incarnation,
        fingerprint,
        startedAt: Date.now(),
      };
      const mineRaw = JSON.stringify(mine);

      let acquired = (await redis.set(recordKey, mineRaw, 'PX', ttlMs, 'NX')) === 'OK';
      if (!acquired) {
        const raw = await redis.get(recordKey);
        const rec = raw ? (JSON.parse(raw) as RecordValue) : undefined;
        if (rec && rec.fingerprint !== fingerprint) {
          return refuse(res, 422, 'WAFLEET_IDEMPOTENCY_MISMATCH', 'This Idempotency-Key was used for a different request');
        }
        if (rec?.state === 'done') {
          res.status(rec.status).set(REPLAYED_HEADER, 'true');
          if (rec.contentType) res.type(rec.contentType);
          res.send(Buffer.from(rec.body, 'base64'));
          return;
        }
        if (rec?.state === 'in-flight') {
          if (await holderLive(rec))
            return refuse(res, 409, 'WAFLEET_IDEMPOTENCY_IN_FLIGHT', 'The first request with this key is still running');
          if (policy === 'conflict') {
            return refuse(
              res,
              409,
              'WAFLEET_IDEMPOTENCY_UNKNOWN_OUTCOME',
              'The first attempt died with its instance; its outcome is unknown and it is not executed again',
            );
          }
        }
        // Abandoned (retry policy) or expired between SET and GET: take the record over atomically.
        acquired = raw
          ? (await lua.compareAndSet(redis, { record: recordKey }, { expected: raw, value: mineRaw, ttlMs })).code === 'OK'
          : (await redis.set(recordKey, mineRaw, 'PX', ttlMs, 'NX')) === 'OK';
        if (!acquired) return refuse(res, 409, 'WAFLEET_IDEMPOTENCY_IN_FLIGHT', 'Another repeat of this request took it over');
      }
      const onStoreFailed = (err: Error) => log.error('idempotency record not stored; answered 503', { err });
      captureOutcome(res, onStoreFailed, async (status, contentType, body) => {
        const kept = body.length <= maxResponseBytes;
        const done: Done = {
          state: 'done',
          fingerprint,
          status,
          contentType: kept ? contentType : 'application/json; charset=utf-8',
          body: (kept ? body : tooLargeNote(body.length, maxResponseBytes)).toString('base64'),
        };
        // A server error is not an outcome worth replaying: free the key so a repeat may execute again.
        await lua.compareAndSet(
          redis,
          { record: recordKey },
          { expected: mineRaw, value: status >= 500 ? '' : JSON.stringify(done), ttlMs },
        );
      });
    } catch (err) {
      answerError(res, err, log);
      return;
    }
    next();
  };
}

function tooLargeNote(bytes: number, max: number): Buffer {
  const message = `The first response (${bytes} bytes) was larger than maxResponseBytes (${max}) and was not kept; the request was not executed again`;
  return Buffer.from(JSON.stringify({ error: 'WAFLEET_RESPONSE_TOO_LARGE', message }));
}

/** Buffers the response and calls `store` with it before anything reaches the client. */
function captureOutcome(
  res: Response,
  onStoreFailed: (err: Error) => void,
  store: (status: number, contentType: string | undefined, body: Buffer) => Promise<void>,
): void {
  const chunks: Buffer[] = [];
  const toBuffer = (chunk: unknown, encoding?: BufferEncoding) =>
    typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.from(chunk as Uint8Array);
  const end = res.end.bind(res) as (chunk?: unknown) => Response;
  res.write = ((chunk: unknown, encoding?: BufferEncoding | (() => void)) => {
    if (chunk != null) chunks.push(toBuffer(chunk, typeof encoding === 'string' ? encoding : undefined));
    return true;
  }) as Response['write'];
  res.end = ((chunk?: unknown, encoding?: BufferEncoding | (() => void)) => {
    if (chunk != null && typeof chunk !== 'function') chunks.push(toBuffer(chunk, typeof encoding === 'string' ? encoding : undefined));
    const body = Buffer.concat(chunks);
    const contentType = res.get('content-type');
    store(res.statusCode, contentType, body).then(
      () => end(body),
      (err: Error) => {
        // Not durable, so not acknowledged: the caller retries with the same key.
        onStoreFailed(err);
        res.statusCode = 503;
        end(JSON.stringify({ error: 'WAFLEET_IDEMPOTENCY_UNKNOWN_OUTCOME', message: 'The outcome could not be recorded' }));
      },
    );
    return res;
  }) as Response['end'];
}
