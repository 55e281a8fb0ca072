import { ConfigError } from '../errors.js';

const PREFIX = 'whsec_';
// Strict standard base64 with padding: a secret that only lenient decoders accept would yield another key in
// another language's receiver, and every signature would fail there.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Key sizes in bytes that Standard Webhooks allows. */
export const WEBHOOK_SECRET_BYTES = Object.freeze({ min: 24, max: 64 });

/**
 * The HMAC key of a Standard Webhooks secret: `whsec_` and strict standard base64 (with padding) of 24 to 64
 * bytes. The one rule for the outbox's signer and `verifyWebhook`, so a secret one side takes the other takes too.
 * Messages never quote the secret: `name` says which one is wrong.
 * @throws ConfigError naming `option`
 * @example
 * const key = parseWebhookSecret(process.env.WAFLEET_WEBHOOK_SECRET, 'secret', '`secret`');
 */
export function parseWebhookSecret(secret: unknown, option: string, name = `\`${option}\``): Buffer {
  if (typeof secret !== 'string' || !secret.startsWith(PREFIX)) {
    throw new ConfigError(option, `Expected ${name} to be a string starting with whsec_ (Standard Webhooks format)`);
  }
  const encoded = secret.slice(PREFIX.length);
  if (encoded.length === 0 || !BASE64.test(encoded)) {
    throw new ConfigError(option, `Expected ${name} to be whsec_ followed by standard base64 with padding`);
  }
  const key = Buffer.from(encoded, 'base64');
  if (key.length < WEBHOOK_SECRET_BYTES.min || key.length > WEBHOOK_SECRET_BYTES.max) {
    throw new ConfigError(
      option,
      `Expected ${name} to decode to ${WEBHOOK_SECRET_BYTES.min} to ${WEBHOOK_SECRET_BYTES.max} bytes (base64 of random bytes), got ${key.length}`,
    );
  }
  return key;
}
