import type { Response } from 'express';
import { WafleetError, type Logger, type WafleetErrorCode } from '@wafleet/protocol';

const STATUS_OF: Partial<Record<WafleetErrorCode, number>> = {
  WAFLEET_INVALID_ID: 400,
  WAFLEET_CONFIG: 400,
  WAFLEET_NOT_FOUND: 404,
  WAFLEET_NOT_STARTED: 503,
  WAFLEET_CLOSED: 503,
  WAFLEET_DRAINING: 503,
  WAFLEET_LEASE_LOST: 503,
  WAFLEET_QUARANTINE: 503,
  WAFLEET_REDIS_UNAVAILABLE: 503,
};

// ioredis error names and server replies that mean "Redis cannot answer now", not "your request is wrong".
const REDIS_ERROR_NAMES = new Set(['MaxRetriesPerRequestError', 'ClusterAllFailedError']);
const REDIS_UNAVAILABLE =
  /Connection is closed|Command timed out|Stream isn't writeable|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|^(?:LOADING|READONLY|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|BUSY|OOM|NOAUTH|WRONGPASS)\b/;

/** Whether `err` says that Redis is unreachable or cannot serve now (a 503 for the caller, not a 500). */
export function isRedisUnavailable(err: unknown): boolean {
  const e = err as { name?: unknown; message?: unknown; code?: unknown } | null;
  if (typeof e !== 'object' || e === null) return false;
  if (e.code === 'WAFLEET_REDIS_UNAVAILABLE') return true;
  return (
    (typeof e.name === 'string' && REDIS_ERROR_NAMES.has(e.name)) || (typeof e.message === 'string' && REDIS_UNAVAILABLE.test(e.message))
  );
}

/**
 * Answers a failed request with JSON, never an HTML stack trace: 503 with `Retry-After` when Redis (or this
 * instance's lease) is the cause, the error's own status for wafleet errors the caller can act on, otherwise 500
 * with no internals. Unexpected errors are logged, with the error object as `err`.
 */
export function answerError(res: Response, err: unknown, logger: Logger): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  if (isRedisUnavailable(err)) {
    logger.warn('request failed: Redis unavailable', { err });
    res
      .status(503)
      .set('retry-after', '1')
      .json({ error: 'WAFLEET_REDIS_UNAVAILABLE', message: 'The registry is unreachable; retry shortly' });
    return;
  }
  const status = err instanceof WafleetError ? STATUS_OF[err.code] : undefined;
  if (err instanceof WafleetError && status !== undefined) {
    if (status === 503) res.set('retry-after', '1');
    res.status(status).json({ error: err.code, message: err.message });
    return;
  }
  logger.error('request failed', { err });
  res.status(500).json({ error: 'WAFLEET_INTERNAL', message: 'Internal error' });
}
