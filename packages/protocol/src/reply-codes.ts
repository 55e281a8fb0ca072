import {
  CapacityError,
  DrainingError,
  DuplicateInstanceError,
  LeaseLostError,
  NotFoundError,
  NotOwnerError,
  OwnedElsewhereError,
  OwnerExpiringError,
  QuarantineError,
  RedisReplyError,
  type FenceReason,
  type WafleetError,
} from './errors.js';

/** Reply codes of the Lua scripts (lua/includes/common.lua defines the same numbers). */
export const ReplyCode = Object.freeze({
  OK: 1,
  PENDING: 2,
  FENCED: -1,
  DUPLICATE: -2,
  OWNED_ELSEWHERE: -3,
  OWNER_EXPIRING: -4,
  CAPACITY: -5,
  QUARANTINE: -7,
  NOT_OWNER: -8,
  DRAINING: -9,
  NOT_FOUND: -10,
});

/** A script reply: a numeric code followed by values. */
export type Reply = [number, ...Array<string | number>];

/** Checks the reply's shape at run time: Redis is shared state, another version may have written to it. */
export function asReply(script: string, raw: unknown): Reply {
  if (!Array.isArray(raw) || typeof raw[0] !== 'number') throw new RedisReplyError(script, raw);
  return raw as Reply;
}

const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));
const num = (v: unknown) => Number(v ?? 0);

/** Maps a negative reply code to its error class. The one place that knows every code's payload. */
export function replyError(script: string, reply: Reply, ids: { sessionId?: string; instanceId?: string }): WafleetError {
  const [code, a, b, c] = reply;
  const sid = ids.sessionId ?? '';
  switch (code) {
    case ReplyCode.FENCED:
      return new LeaseLostError(str(a) as FenceReason, ids.sessionId);
    case ReplyCode.DUPLICATE:
      return new DuplicateInstanceError(ids.instanceId ?? '', num(a));
    case ReplyCode.OWNED_ELSEWHERE:
      return new OwnedElsewhereError(sid, str(a), str(b), str(c));
    case ReplyCode.OWNER_EXPIRING:
      return new OwnerExpiringError(sid, str(b), num(a));
    case ReplyCode.CAPACITY:
      return new CapacityError(sid, num(a), num(b));
    case ReplyCode.QUARANTINE:
      return new QuarantineError(num(a));
    case ReplyCode.NOT_OWNER:
      return new NotOwnerError(sid, str(a), str(b));
    case ReplyCode.DRAINING:
      return new DrainingError(sid);
    case ReplyCode.NOT_FOUND:
      return new NotFoundError(sid);
    default:
      return new RedisReplyError(script, reply);
  }
}
