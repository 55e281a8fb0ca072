import type { WebhookEnvelope } from '@wafleet/protocol';

/**
 * Maps the canonical envelope (already validated, after a JSON round trip) to the JSON object POSTed as the
 * body. It runs once per event, at enqueue; the result is serialized, size-checked, stored and signed as is.
 * It must return a JSON object: anything else (an array, a string, a value `JSON.stringify` refuses) makes
 * `enqueue` fail with `WAFLEET_EVENT_INVALID` and store nothing.
 * @example
 * createOutbox({ ..., endpoint: { url, signer, body: (e) => ({ event: e.type, session: e.session, payload: e.data }) } })
 */
export type BodyFormat = (envelope: WebhookEnvelope) => object;

/** The body {@link legacyBody} builds: the field names of PHP/Laravel whatsapp-service backends. */
export interface LegacyBody {
  /** The event type (`session.status`, `session_ready`, `message.received`, ...). */
  event: string;
  /** The session id, '' for events that belong to no session. */
  session_id: string;
  /** The event's payload, unchanged. */
  data: Record<string, unknown>;
  /** ISO 8601 time of enqueue. */
  timestamp: string;
  /** The event id (`evt_` + ULID), equal to the `webhook-id` header: dedupe by it. */
  id: string;
  /** The session's fencing epoch, a decimal string. */
  epoch: string;
  /** Per session and sending instance, increasing. */
  seq: number;
  /** The sending instance's id. */
  instance_id: string;
  /** The sending instance's public base URL. */
  instance_url: string;
}

/**
 * The body of backends that read `$request->input('event')`, `session_id` and `data`:
 * `{ event, session_id, data, timestamp, id, epoch, seq, instance_id, instance_url }` (see {@link LegacyBody}).
 * Usually paired with `legacyHmacSigner`.
 * @example
 * createOutbox({ ..., endpoint: { url, signer: legacyHmacSigner(secret), body: legacyBody() } })
 */
export function legacyBody(): (envelope: WebhookEnvelope) => LegacyBody {
  return (e) => ({
    event: e.type,
    session_id: e.session,
    data: e.data,
    timestamp: e.timestamp,
    id: e.id,
    epoch: e.epoch,
    seq: e.seq,
    instance_id: e.instance.id,
    instance_url: e.instance.url,
  });
}
