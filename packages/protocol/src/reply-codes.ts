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
  WafleetError,
  type FenceReason,
} from './errors.js';

export { ReplyCode } from './reply-codes.generated.js';

/** A script reply: a numeric code followed by values. */
export type Reply = [number, ...Array<string | number>];

/** Checks the reply's shape at run time: Redis is shared state, another version may have written to it. */
export function asReply(script: string, raw: unknown): Reply {
  if (!Array.isArray(raw) || typeof raw[0] !== 'number') throw new RedisReplyError(script, raw);
  return raw as Reply;
}

/** How one reply code's values are named and typed ('s' string, 'n' number); `rest` collects what follows. */
export interface ReplyShape {
  readonly name: string;
  readonly fields: ReadonlyArray<readonly [string, 's' | 'n']>;
  readonly rest?: string;
}

/** A script's reply shapes by code, as its header declares them (generated with its typed caller). */
export type ReplyShapes = Readonly<Record<number, ReplyShape>>;

/** A parsed reply: `code` is the reply code's name, the other fields are named by the script's header. */
export type ParsedReply = { readonly code: string } & Readonly<Record<string, unknown>>;

/**
 * Names a raw reply's values after the script's header.
 * @throws RedisReplyError for a reply that is not an array starting with a code the script can answer
 */
export function parseReply<R extends ParsedReply>(script: string, raw: unknown, shapes: ReplyShapes): R {
  const reply = asReply(script, raw);
  const shape = shapes[reply[0]];
  if (!shape) throw new RedisReplyError(script, raw);
  const out: Record<string, unknown> = { code: shape.name };
  shape.fields.forEach(([name, kind], i) => {
    const v = reply[i + 1];
    out[name] = kind === 'n' ? Number(v ?? 0) : v === undefined || v === null ? '' : String(v);
  });
  if (shape.rest !== undefined) out[shape.rest] = reply.slice(shape.fields.length + 1).map(String);
  return out as R;
}

const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));
const num = (v: unknown) => Number(v ?? 0);

/** Maps a refusal (a negative reply code) to its error class. The one place that knows every refusal's payload. */
export function replyError(script: string, reply: ParsedReply, ids: { sessionId?: string; instanceId?: string }): WafleetError {
  const r = reply;
  const sid = ids.sessionId ?? '';
  switch (r.code) {
    case 'FENCED':
      return new LeaseLostError(str(r.reason) as FenceReason, ids.sessionId);
    case 'DUPLICATE':
      return new DuplicateInstanceError(ids.instanceId ?? '', num(r.retryAfterMs));
    case 'OWNED_ELSEWHERE':
      return new OwnedElsewhereError(sid, str(r.owner), str(r.epoch), str(r.ownerUrl));
    case 'OWNER_EXPIRING':
      return new OwnerExpiringError(sid, str(r.owner), num(r.retryAfterMs));
    case 'CAPACITY':
      return new CapacityError(sid, num(r.load), num(r.maxSessions), r.resource === 'memory' ? 'memory' : 'sessions');
    case 'QUARANTINE':
      return new QuarantineError(num(r.retryAfterMs));
    case 'NOT_OWNER':
      return new NotOwnerError(sid, str(r.owner), str(r.epoch));
    case 'DRAINING':
      return new DrainingError(sid);
    case 'NOT_FOUND':
      return new NotFoundError(sid);
    case 'UPLOAD_EXPIRED':
      return new WafleetError(
        'WAFLEET_DATA_UPLOAD_EXPIRED',
        `The upload of session ${sid}'s data is no longer pending (older than the upload timeout, or dropped); save again`,
      );
    default:
      return new RedisReplyError(script, reply);
  }
}
