import { setTimeout as sleep } from 'node:timers/promises';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Fleet, SessionOwner } from '../registry/fleet.js';
import { fleetInternals } from '../internals.js';
import type { ResolvedFleetOptions } from '../registry/options.js';
import {
  compareEpochs,
  ConfigError,
  describeValue as describe,
  EPOCH_HEADER,
  FORWARDED_HEADER,
  SERVED_EPOCH_HEADER,
  validateSessionId,
} from '@wafleet/protocol';
import { answerError } from './answer-error.js';
import { forwardBody, forwardOnce, OwnerPoll, replayable, retrySafe } from './forward.js';
import { sessionIdFromParams, type SessionIdOf } from './session-id.js';

/** Options of {@link fleetGuard}. */
export interface FleetGuardOptions {
  /** Finds the session id of a request. @default route parameter `sessionId`, `session` or `id` */
  sessionId?: SessionIdOf;
  /**
   * What to do with a request for a session no live instance owns (unknown, stopped, waiting for placement, or
   * whose owner died): `'misdirect'` answers 421 with `owner: ""`; `'pass'` hands it to your route, e.g. a
   * "disconnect" route that calls `fleet.stop(id)` to cancel a pending placement. A session with a live owner
   * elsewhere is always answered 421 (or forwarded). @default 'misdirect'
   */
  unowned?: 'misdirect' | 'pass';
  /**
   * What a non-owner does with a request for a session that should run elsewhere: `'answer'` answers 421 with the
   * owner; `'forward'` sends it to the live owner (one hop, streamed both ways) and returns the owner's answer, so
   * a caller that only knows a load balancer's URL needs no library. While the session fails over, the request
   * waits up to `forwardWaitMs` for a live owner. Put this guard before any body parser. @default 'answer'
   * @example
   * app.post('/sessions/:sessionId/messages', requireApiKey, fleetGuard(fleet, { misdirected: 'forward' }), express.json(), send);
   */
  misdirected?: 'answer' | 'forward';
  /**
   * With `misdirected: 'forward'`: how long a request waits for a live owner before 503 `WAFLEET_NO_OWNER` with
   * `Retry-After`. @default the fleet's leaseTtlMs + adoptionDelayMs + 2 × sweepIntervalMs + 1000 (10 s with default
   * timing)
   */
  forwardWaitMs?: number;
  /** With `misdirected: 'forward'`: time to the owner's response headers. @default 30000 */
  forwardTimeoutMs?: number;
  /**
   * What to do with a request for a session this instance owns whose `status` is not `WORKING` (a launch in
   * progress after an adoption, a restart, a QR code to scan): `'pass'` hands it to your route; `'retry-after'`
   * answers 503 `{ error: 'WAFLEET_SESSION_STARTING', status }` with `Retry-After`, which `@wafleet/client`
   * waits out; `'wait'` holds the request until the session is WORKING (at most `forwardWaitMs`, then the same
   * 503), for callers without any library, e.g. behind a load balancer. Use it on routes that need a running
   * session (send), not on the QR route. @default 'pass'
   */
  notWorking?: 'pass' | 'retry-after' | 'wait';
  /**
   * The status of a session owned here, read from memory on every request (no Redis call). Required by
   * `notWorking: 'retry-after'` and `'wait'`.
   * @example
   * fleetGuard(fleet, { notWorking: 'retry-after', status: (id) => supervisor.session(id)?.status })
   */
  status?: (sessionId: string) => string | undefined;
}

const DEFAULT_FORWARD_TIMEOUT_MS = 30_000;

function oneOf<T extends string>(option: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new ConfigError(option, `Expected \`${option}\` to be ${allowed.map((a) => `'${a}'`).join(' or ')}, got ${describe(value)}`);
  }
  return value as T;
}

function positiveInt(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(option, `Expected \`${option}\` to be a positive integer, got ${describe(value)}`);
  }
  return value;
}

function resolveGuardOptions(
  timing: Pick<ResolvedFleetOptions, 'leaseTtlMs' | 'adoptionDelayMs' | 'sweepIntervalMs'>,
  options: FleetGuardOptions,
) {
  const { leaseTtlMs, adoptionDelayMs, sweepIntervalMs } = timing;
  const notWorking = oneOf('notWorking', options.notWorking ?? 'pass', ['pass', 'retry-after', 'wait'] as const);
  if (options.status !== undefined && typeof options.status !== 'function') {
    throw new ConfigError('status', `Expected \`status\` to be a function (sessionId) => status, got ${describe(options.status)}`);
  }
  if (notWorking !== 'pass' && !options.status) {
    throw new ConfigError('status', `\`notWorking: '${notWorking}'\` needs \`status\`, e.g. (id) => supervisor.session(id)?.status`);
  }
  return {
    idOf: options.sessionId ?? sessionIdFromParams,
    unowned: oneOf('unowned', options.unowned ?? 'misdirect', ['misdirect', 'pass'] as const),
    misdirected: oneOf('misdirected', options.misdirected ?? 'answer', ['answer', 'forward'] as const),
    forwardWaitMs: positiveInt('forwardWaitMs', options.forwardWaitMs ?? leaseTtlMs + adoptionDelayMs + 2 * sweepIntervalMs + 1000),
    forwardTimeoutMs: positiveInt('forwardTimeoutMs', options.forwardTimeoutMs ?? DEFAULT_FORWARD_TIMEOUT_MS),
    notWorking,
    status: options.status,
  };
}

/** Answers 421 Misdirected Request with the session's current live owner ('' when none) and epoch. */
export async function misdirected(
  fleet: Pick<Fleet, 'owner'>,
  sessionId: string,
  res: Response,
  known?: SessionOwner | null,
): Promise<void> {
  const owner = known === undefined ? await fleet.owner(sessionId) : known;
  res.status(421).json({
    error: 'WAFLEET_MISDIRECTED',
    sessionId,
    owner: owner?.live ? owner.owner : '',
    ownerUrl: owner?.live ? owner.ownerUrl : '',
    epoch: owner?.epoch ?? '',
  });
}

const polls = new WeakMap<Fleet, OwnerPoll>();

/**
 * Lets a request through only when this instance owns its session under a provable lease. Otherwise answers
 * 421 Misdirected Request with the current owner and epoch (so a caller never acts on a stale owner), or 409 when
 * the caller's `x-wafleet-epoch` is older than the epoch this instance holds. With `misdirected: 'forward'` it
 * sends the request to the owner instead of answering 421. Put your own authentication first: the guard tells who
 * owns a session to whoever asks.
 * @throws ConfigError for an option of the wrong type or value
 * @example
 * app.post('/sessions/:sessionId/messages', requireApiKey, fleetGuard(fleet), sendMessage);
 */
export function fleetGuard(fleet: Fleet, options: FleetGuardOptions = {}): RequestHandler {
  const fleetOptions = fleetInternals(fleet).options;
  const o = resolveGuardOptions(fleetOptions, options);
  const log = fleetOptions.logger;
  let poll = polls.get(fleet);
  if (!poll) polls.set(fleet, (poll = new OwnerPoll(fleet)));
  const ownerPoll = poll;

  /** With `notWorking: 'wait'`: while the session is owned here but not WORKING, waits (until `deadline`). */
  const untilWorking = async (sessionId: string, deadline: number): Promise<void> => {
    if (o.notWorking !== 'wait') return;
    while (fleet.epochOf(sessionId) !== undefined && o.status!(sessionId) !== 'WORKING' && performance.now() < deadline) {
      await sleep(50);
    }
  };

  /** Serves (or refuses) a request for a session owned here; false when this instance does not own it. */
  const serveHere = (sessionId: string, req: Request, res: Response, next: NextFunction): boolean => {
    const epoch = fleet.epochOf(sessionId);
    if (epoch === undefined) return false;
    const expected = req.get(EPOCH_HEADER);
    const order = expected && /^\d{1,40}$/.test(expected) ? compareEpochs(expected, epoch) : 0;
    if (order < 0) {
      res.status(409).json({ error: 'WAFLEET_STALE_EPOCH', sessionId, owner: fleet.instanceId, ownerUrl: fleet.url, epoch });
      return true;
    }
    // A caller that saw a newer epoch knows an owner change this instance has not heard of yet: not ours.
    if (order > 0) return false;
    if (o.notWorking !== 'pass') {
      const status = o.status!(sessionId);
      if (status !== 'WORKING') {
        res
          .status(503)
          .set('retry-after', '1')
          .json({
            error: 'WAFLEET_SESSION_STARTING',
            message: 'The session is owned here but not running yet; retry shortly',
            sessionId,
            status: status ?? 'STARTING',
            owner: fleet.instanceId,
            epoch,
          });
        return true;
      }
    }
    res.set(SERVED_EPOCH_HEADER, epoch);
    next();
    return true;
  };

  /** Forwards to the live owner, waiting through a failover; sends again only what cannot run twice by it. */
  const forward = async (sessionId: string, req: Request, res: Response, next: NextFunction, first: SessionOwner | null) => {
    const body = forwardBody(req);
    if (!body) {
      log.error('cannot forward a request whose body a parser consumed; put fleetGuard before the body parser', { sessionId });
      res.status(500).json({ error: 'WAFLEET_CONFIG', message: "fleetGuard with misdirected: 'forward' must come before the body parser" });
      return;
    }
    const me = fleet.instanceId;
    const deadline = performance.now() + o.forwardWaitMs;
    let owner = first;
    let failed: SessionOwner | undefined;
    for (;;) {
      // The caller left while the request waited for an owner: nobody to answer.
      if (res.destroyed) return;
      await untilWorking(sessionId, deadline);
      if (serveHere(sessionId, req, res, next)) return;
      // Nothing to wait for: the session is unknown or should not run.
      if (!owner || owner.desired !== 'running') return misdirected(fleet, sessionId, res, owner);
      const moved = !failed || owner.owner !== failed.owner || owner.epoch !== failed.epoch;
      const launching = o.notWorking !== 'pass' && owner.status === 'STARTING' && performance.now() < deadline;
      if (owner.live && owner.ownerUrl && owner.owner !== me && moved && !launching) {
        const { outcome } = await forwardOnce(req, res, owner, body, { via: me, headersTimeoutMs: o.forwardTimeoutMs });
        if (outcome === 'answered') return;
        // not-sent and misdirected: nothing ran on the owner; failed: it may have, so only what may run twice.
        const again = replayable(body) && (outcome !== 'failed' || retrySafe(req));
        if (!again) return forwardFailed(res, sessionId, outcome === 'misdirected' || retrySafe(req));
        log.debug('forward to the owner failed; waiting for its successor', { sessionId, owner: owner.owner, outcome });
        failed = owner;
      }
      if (performance.now() >= deadline) {
        res
          .status(503)
          .set('retry-after', '1')
          .json({ error: 'WAFLEET_NO_OWNER', message: `No reachable live owner for the session within ${o.forwardWaitMs} ms`, sessionId });
        return;
      }
      owner = await ownerPoll.next(sessionId);
    }
  };

  return async (req: Request, res: Response, next: NextFunction) => {
    const sessionId = o.idOf(req);
    try {
      validateSessionId(sessionId);
    } catch (err) {
      res.status(400).json({ error: (err as { code: string }).code, message: (err as Error).message });
      return;
    }
    try {
      await untilWorking(sessionId!, performance.now() + o.forwardWaitMs);
      if (res.destroyed) return;
      if (serveHere(sessionId!, req, res, next)) return;
      const owner = await fleet.owner(sessionId!);
      // Nobody live runs it (and this instance does not hold it under a provable lease): the host's route decides.
      if (o.unowned === 'pass' && fleet.epochOf(sessionId!) === undefined && !owner?.live) {
        next();
        return;
      }
      // A request another instance forwarded goes no further: one hop, never a loop.
      if (o.misdirected === 'forward' && req.get(FORWARDED_HEADER) === undefined) await forward(sessionId!, req, res, next, owner);
      else await misdirected(fleet, sessionId!, res, owner);
    } catch (err) {
      answerError(res, err, log);
    }
  };
}

/** 503 with Retry-After when a repeat is safe (nothing ran, or the request may run twice), else 502. */
function forwardFailed(res: Response, sessionId: string, retryable: boolean): void {
  if (retryable) res.set('retry-after', '1');
  res.status(retryable ? 503 : 502).json({
    error: 'WAFLEET_FORWARD_FAILED',
    message: retryable ? 'The owner could not be reached; retry shortly' : 'The connection to the owner broke; the outcome is unknown',
    sessionId,
  });
}
