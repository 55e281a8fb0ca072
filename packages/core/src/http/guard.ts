import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { compareEpochs } from '../registry/fleet.js';
import type { Fleet, SessionOwner } from '../registry/fleet.js';
import { describe } from '../describe.js';
import { ConfigError } from '../errors.js';
import { validateSessionId } from '../ids.js';
import { answerError } from './answer-error.js';
import { EPOCH_HEADER, SERVED_EPOCH_HEADER } from './headers.js';
import { sessionIdFromParams, type SessionIdOf } from './session-id.js';

/** Options of {@link fleetGuard}. */
export interface FleetGuardOptions {
  /** Finds the session id of a request. @default route parameter `sessionId`, `session` or `id` */
  sessionId?: SessionIdOf;
  /**
   * What to do with a request for a session no live instance owns (unknown, stopped, waiting for placement, or
   * whose owner died): `'misdirect'` answers 421 with `owner: ""`; `'pass'` hands it to your route, e.g. a
   * "disconnect" route that calls `fleet.stop(id)` to cancel a pending placement. A session with a live owner
   * elsewhere is always answered 421. @default 'misdirect'
   */
  unowned?: 'misdirect' | 'pass';
}

/** Answers 421 Misdirected Request with the session's current live owner ('' when none) and epoch. */
export async function misdirected(fleet: Fleet, sessionId: string, res: Response, known?: SessionOwner | null): Promise<void> {
  const owner = known === undefined ? await fleet.owner(sessionId) : known;
  res.status(421).json({
    error: 'WAFLEET_MISDIRECTED',
    sessionId,
    owner: owner?.live ? owner.owner : '',
    ownerUrl: owner?.live ? owner.ownerUrl : '',
    epoch: owner?.epoch ?? '',
  });
}

/**
 * Lets a request through only when this instance owns its session under a provable lease. Otherwise answers
 * 421 Misdirected Request with the current owner and epoch (so a caller never acts on a stale owner), or 409 when
 * the caller's `x-wafleet-epoch` is older than the epoch this instance holds. Put your own authentication first:
 * the guard tells who owns a session to whoever asks.
 * @example
 * app.post('/sessions/:sessionId/messages', requireApiKey, fleetGuard(fleet), sendMessage);
 */
export function fleetGuard(fleet: Fleet, options: FleetGuardOptions = {}): RequestHandler {
  const idOf = options.sessionId ?? sessionIdFromParams;
  const unowned = options.unowned ?? 'misdirect';
  if (unowned !== 'misdirect' && unowned !== 'pass') {
    throw new ConfigError('unowned', `Expected \`unowned\` to be 'misdirect' or 'pass', got ${describe(unowned)}`);
  }
  return async (req: Request, res: Response, next: NextFunction) => {
    const sessionId = idOf(req);
    try {
      validateSessionId(sessionId);
    } catch (err) {
      res.status(400).json({ error: (err as { code: string }).code, message: (err as Error).message });
      return;
    }
    const epoch = fleet.epochOf(sessionId!);
    const expected = req.get(EPOCH_HEADER);
    if (epoch !== undefined) {
      const order = expected && /^\d{1,40}$/.test(expected) ? compareEpochs(expected, epoch) : 0;
      if (order < 0) {
        res
          .status(409)
          .json({ error: 'WAFLEET_STALE_EPOCH', sessionId, owner: fleet.options.instanceId, ownerUrl: fleet.options.url, epoch });
        return;
      }
      // A caller that saw a newer epoch knows an owner change this instance has not heard of yet: not ours.
      if (order === 0) {
        res.set(SERVED_EPOCH_HEADER, epoch);
        next();
        return;
      }
    }
    try {
      const owner = await fleet.owner(sessionId!);
      // Nobody live runs it (and this instance does not hold it under a provable lease): the host's route decides.
      if (unowned === 'pass' && epoch === undefined && !owner?.live) {
        next();
        return;
      }
      await misdirected(fleet, sessionId!, res, owner);
    } catch (err) {
      answerError(res, err, fleet.options.logger);
    }
  };
}
