import { describe } from '../describe.js';
import { validateSessionId } from '../ids.js';

/**
 * The JSON body of every wafleet webhook. `TData` narrows `data` for event types whose payload you know.
 * @example
 * const event = verifyWebhook(secret, req.headers, req.body) as WebhookEnvelope<{ status: string; previous: string }>;
 * if (event.type === 'session.status') await setStatus(event.session, event.data.status);
 */
export interface WebhookEnvelope<TData extends object = Record<string, unknown>> {
  /** `evt_` and a ULID; equals the `webhook-id` header and stays the same on every retry and replay: dedupe by it. */
  id: string;
  /** `session.status`, the ready event (`session.ready` unless the sender renamed it) or any other type. */
  type: string;
  /** ISO 8601 time of enqueue (not of this attempt). */
  timestamp: string;
  /** Session id, '' for events that belong to no session. */
  session: string;
  /** The session's fencing epoch: a canonical decimal string that can exceed 2^53. Order with `compareEventOrder`. */
  epoch: string;
  /** Per session and sending instance, increasing; gaps are normal (superseded state events are never sent). */
  seq: number;
  /** The sending instance. */
  instance: { id: string; url: string };
  /** A JSON object. For `session.status` and `session.ready`: `{ status, previous }` (`previous` is '' for the first status). */
  data: TData;
}

/** What is wrong with an envelope: the field and what it should have been. */
export interface EnvelopeProblem {
  field: string;
  message: string;
}

/** Event types: short, and safe in logs, metric labels and PHP `in_array` checks. */
export const EVENT_TYPE = /^[\w.:-]{1,128}$/;
/**
 * Canonical decimal, at most 30 digits: receivers in other languages compare epochs by length and then as text,
 * which only works without leading zeros.
 */
export const CANONICAL_EPOCH = /^(?:0|[1-9][0-9]{0,29})$/;
/**
 * Types whose `data` must be `{ status, previous }` (strings). The rule follows the type name, on the sender and in
 * `verifyWebhook` alike, so a fleet that renames its ready event (`session_ready`) sends it unchecked on both sides.
 */
export const STATE_EVENT_TYPES: ReadonlySet<string> = new Set(['session.status', 'session.ready']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isSessionId(value: unknown): boolean {
  if (value === '') return true;
  try {
    validateSessionId(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * The one definition of a valid envelope, applied by the outbox to what it is about to send (after a JSON round
 * trip, i.e. exactly what a receiver parses) and by `verifyWebhook` to what it received. Returns the first
 * problem, or undefined when `value` is a valid envelope.
 */
export function envelopeProblem(value: unknown): EnvelopeProblem | undefined {
  if (!isRecord(value)) return { field: '', message: `Expected the envelope to be a JSON object, got ${describe(value)}` };
  const e = value;
  const checks: Array<[field: string, ok: boolean, expected: string]> = [
    ['id', typeof e.id === 'string' && e.id !== '', 'a non-empty string'],
    ['type', typeof e.type === 'string' && EVENT_TYPE.test(e.type), 'a string matching [A-Za-z0-9_.:-]{1,128}'],
    ['timestamp', typeof e.timestamp === 'string' && !Number.isNaN(Date.parse(e.timestamp)), 'an ISO 8601 date string'],
    ['session', isSessionId(e.session), "'' or a valid session id"],
    ['epoch', typeof e.epoch === 'string' && CANONICAL_EPOCH.test(e.epoch), 'a decimal string without sign or leading zeros'],
    ['seq', Number.isSafeInteger(e.seq) && (e.seq as number) >= 0, 'a non-negative integer'],
    ['instance', isRecord(e.instance) && typeof e.instance.id === 'string' && typeof e.instance.url === 'string', 'an object { id, url }'],
    ['data', isRecord(e.data), 'a JSON object'],
  ];
  if (STATE_EVENT_TYPES.has(e.type as string) && isRecord(e.data)) {
    const { status, previous } = e.data;
    checks.push([
      'data',
      typeof status === 'string' && typeof previous === 'string',
      `an object { status, previous } for ${e.type as string}`,
    ]);
  }
  for (const [field, ok, expected] of checks) {
    if (!ok) return { field, message: `Expected envelope \`${field}\` to be ${expected}, got ${describe(e[field])}` };
  }
  return undefined;
}
