import type { RegistryKeys } from './keys.js';
import { SESSION_STATUSES, type SessionStatus } from './queries.js';

/**
 * One ownership or status change, as the registry scripts publish it on the fleet's channel (the `publish` helper of
 * lua/includes/common.lua writes `{s, o, i, e, st, d, u}`).
 */
export interface OwnerPush {
  sessionId: string;
  /** The owning instance, '' when nobody owns the session. */
  owner: string;
  /** The owner's incarnation, '' when nobody owns the session. */
  incarnation: string;
  epoch: string;
  status: SessionStatus;
  desired: 'running' | 'stopped' | '';
  /** The owner's URL; '' when nobody owns it (and on changes that do not name it). */
  ownerUrl: string;
}

const text = (v: unknown) => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');

/**
 * Parses a message of the fleet's pub/sub channel. Pub/sub ignores the database, so the channel name is what keeps
 * pushes of fleets in other databases out: a message on another channel, or one that is not a push (no session id, a
 * status outside `SESSION_STATUSES`), gives undefined.
 */
export function parsePush(keys: Pick<RegistryKeys, 'events'>, channel: string, message: string): OwnerPush | undefined {
  if (channel !== keys.events) return undefined;
  let m: unknown;
  try {
    m = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof m !== 'object' || m === null) return undefined;
  const r = m as Record<string, unknown>;
  if (typeof r.s !== 'string' || r.s === '' || !SESSION_STATUSES.includes(r.st as SessionStatus)) return undefined;
  return {
    sessionId: r.s,
    owner: text(r.o),
    incarnation: text(r.i),
    epoch: text(r.e),
    status: r.st as SessionStatus,
    desired: text(r.d) as OwnerPush['desired'],
    ownerUrl: text(r.u),
  };
}
