import { createHmac } from 'node:crypto';
import { ConfigError, parseWebhookSecret } from '@wafleet/protocol';

/** What a signer signs: the event id, this attempt's unix time in seconds, and the exact body bytes. */
export interface SignInput {
  id: string;
  timestamp: number;
  body: string;
}

/** Returns the headers that authenticate one delivery attempt. Pluggable, so existing receivers keep their scheme. */
export type Signer = (input: SignInput) => Record<string, string>;

/**
 * Standard Webhooks signing: `webhook-id`, `webhook-timestamp` and `webhook-signature` with one
 * `v1,<base64 HMAC-SHA256(id.timestamp.body)>` per secret (several during a key rotation).
 * @example
 * createOutbox({ ..., endpoint: { url, signer: standardWebhooksSigner(['whsec_new...', 'whsec_old...']) } })
 */
export function standardWebhooksSigner(secrets: readonly string[]): Signer {
  if (!Array.isArray(secrets) || secrets.length === 0)
    throw new ConfigError('secrets', 'Expected `secrets` to be a non-empty list of whsec_ secrets');
  // The same rule as verifyWebhook's: a secret the sender signs with is one the receiver accepts.
  const keys = secrets.map((secret: unknown, i) => parseWebhookSecret(secret, 'secrets', `\`secrets[${i}]\``));
  return ({ id, timestamp, body }) => ({
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': keys
      .map((key) => `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`)
      .join(' '),
  });
}

/**
 * A common legacy scheme: hex HMAC-SHA256 of `timestamp + body` in `X-HMAC-Signature`, the unix seconds in
 * `X-Timestamp`. For receivers that predate Standard Webhooks; `webhook-id` is still sent for deduplication.
 * @example
 * createOutbox({ ..., endpoint: { url, signer: legacyHmacSigner(process.env.WEBHOOK_SECRET) } })
 */
export function legacyHmacSigner(secret: string): Signer {
  // A blank secret is a configuration slip (an unset variable padded by a template), never a key.
  if (typeof secret !== 'string' || secret.length < 8 || secret.trim() === '')
    throw new ConfigError('secret', 'Expected `secret` to be a string of at least 8 characters, not only white space');
  return ({ id, timestamp, body }) => ({
    'webhook-id': id,
    'x-timestamp': String(timestamp),
    'x-hmac-signature': createHmac('sha256', secret).update(`${timestamp}${body}`).digest('hex'),
  });
}
