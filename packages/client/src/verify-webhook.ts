import { createHmac, timingSafeEqual } from 'node:crypto';
import { ConfigError, envelopeProblem, parseWebhookSecret, WafleetError, type WebhookEnvelope } from '@wafleet/protocol';

export type { WebhookEnvelope };

/** Options of {@link verifyWebhook}. */
export interface VerifyWebhookOptions {
  /** Largest difference, either way, between `webhook-timestamp` and now. @default 300 */
  toleranceSeconds?: number;
  /** Current unix time in seconds. @default () => Math.floor(Date.now() / 1000) */
  now?: () => number;
}

/**
 * A webhook failed verification. `reason` tells which check failed: `headers` (missing or conflicting
 * `webhook-*` headers), `timestamp` (malformed or outside the tolerance), `signature` (no `v1` signature matches
 * any secret), `body` (not a valid envelope, or its id differs from `webhook-id`). Answer it with a 4xx: the
 * sender dead-letters the event instead of retrying it, and it can be replayed once the cause is fixed.
 * @example
 * try {
 *   verifyWebhook(secret, req.headers, req.body);
 * } catch (err) {
 *   if (err instanceof WebhookVerificationError) return res.status(err.reason === 'body' ? 400 : 401).end();
 *   throw err;
 * }
 */
export class WebhookVerificationError extends WafleetError {
  /** The check that failed. */
  readonly reason: 'headers' | 'timestamp' | 'signature' | 'body';

  constructor(reason: 'headers' | 'timestamp' | 'signature' | 'body', message: string, options?: { cause?: unknown }) {
    super('WAFLEET_WEBHOOK_INVALID', message, options);
    this.reason = reason;
  }
}

type HeaderBag = Headers | Record<string, string | string[] | undefined>;

const DEFAULT_TOLERANCE_SECONDS = 300;
const DECIMAL = /^[0-9]+$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Messages quote untrusted input; keep them short enough for a log line. */
function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function secretKeys(secret: unknown): Buffer[] {
  const list = typeof secret === 'string' ? [secret] : secret;
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError('secret', 'Expected `secret` to be a whsec_ secret or a non-empty list of them');
  }
  // The sender's rule (24 to 64 bytes of strict base64), so both sides take the same secrets.
  return list.map((s: unknown, i) => parseWebhookSecret(s, 'secret', typeof secret === 'string' ? '`secret`' : `\`secret[${i}]\``));
}

function resolveOptions(options: unknown): { tolerance: number; now: () => number } {
  if (options === undefined) return { tolerance: DEFAULT_TOLERANCE_SECONDS, now: () => Math.floor(Date.now() / 1000) };
  if (typeof options !== 'object' || options === null) throw new ConfigError('options', 'Expected `options` to be an object');
  const { toleranceSeconds = DEFAULT_TOLERANCE_SECONDS, now = () => Math.floor(Date.now() / 1000) } = options as VerifyWebhookOptions;
  if (typeof toleranceSeconds !== 'number' || !Number.isInteger(toleranceSeconds) || toleranceSeconds < 1) {
    throw new ConfigError('toleranceSeconds', `Expected \`toleranceSeconds\` to be a positive integer, got ${show(toleranceSeconds)}`);
  }
  if (typeof now !== 'function') throw new ConfigError('now', `Expected \`now\` to be a function, got ${typeof now}`);
  return { tolerance: toleranceSeconds, now };
}

/** Every value of a header, whatever the case of its name in a plain record. */
function headerValues(headers: HeaderBag, name: string): string[] {
  if (typeof (headers as Headers).get === 'function') {
    const value = (headers as Headers).get(name);
    return value === null ? [] : [value];
  }
  const out: string[] = [];
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name) continue;
    for (const v of Array.isArray(value) ? value : [value]) if (typeof v === 'string') out.push(v);
  }
  return out;
}

function singleHeader(headers: HeaderBag, name: string): string {
  const values = [...new Set(headerValues(headers, name).map((v) => v.trim()))].filter((v) => v !== '');
  if (values.length === 0) throw new WebhookVerificationError('headers', `Missing the ${name} header`);
  // Two different ids or timestamps cannot both be what was signed; refuse to pick one.
  if (values.length > 1) throw new WebhookVerificationError('headers', `Conflicting values of the ${name} header`);
  return values[0]!;
}

function parseEnvelope(body: string | Uint8Array, webhookId: string): WebhookEnvelope {
  const bad = (message: string, cause?: unknown): never => {
    throw new WebhookVerificationError('body', message, cause === undefined ? undefined : { cause });
  };
  let text = '';
  let value: unknown;
  try {
    text = typeof body === 'string' ? body : utf8.decode(body);
  } catch (err) {
    bad('Body is not valid UTF-8', err);
  }
  try {
    value = JSON.parse(text);
  } catch (err) {
    bad(`Body is not valid JSON: ${(err as Error).message}`, err);
  }
  // The one definition of an envelope, the one the outbox checks before it stores an event.
  const problem = envelopeProblem(value);
  if (problem) bad(problem.message);
  const e = value as WebhookEnvelope;
  if (e.id !== webhookId) bad(`Envelope id ${show(e.id)} differs from the webhook-id header ${show(webhookId)}`);
  return e;
}

/**
 * Verifies a wafleet webhook per the Standard Webhooks spec and returns its envelope: the `webhook-*` headers are
 * present, `webhook-timestamp` is within `toleranceSeconds` of now (either way), one `v1` signature of
 * `webhook-signature` is the HMAC-SHA256 of `${webhook-id}.${webhook-timestamp}.${rawBody}` under one of
 * `secret` (several during a key rotation), and the body is an envelope whose id is `webhook-id`.
 *
 * Pass the body exactly as received (`express.raw()`, not `express.json()`): re-serialised JSON is different
 * bytes and fails the signature. Throws {@link WebhookVerificationError} (`WAFLEET_WEBHOOK_INVALID`) when the
 * webhook is not authentic or not an envelope, `ConfigError` (`WAFLEET_CONFIG`) for a bad secret or option.
 * Verification does not deduplicate: store `id`, and apply only events newer per {@link compareEventOrder}.
 * @example
 * app.post('/webhooks/wafleet', express.raw({ type: 'application/json' }), (req, res) => {
 *   const event = verifyWebhook([process.env.WAFLEET_SECRET_NEW!, process.env.WAFLEET_SECRET_OLD!], req.headers, req.body);
 *   // dedupe by event.id, then apply if (event.epoch, event.seq) is newer than the session's last applied one
 *   res.status(204).end();
 * });
 */
export function verifyWebhook(
  secret: string | readonly string[],
  headers: Headers | Record<string, string | string[] | undefined>,
  rawBody: string | Uint8Array,
  options?: VerifyWebhookOptions,
): WebhookEnvelope {
  const keys = secretKeys(secret);
  const { tolerance, now } = resolveOptions(options);
  if (typeof headers !== 'object' || headers === null) {
    throw new ConfigError('headers', `Expected \`headers\` to be a Headers object or a record of header values, got ${show(headers)}`);
  }
  if (typeof rawBody !== 'string' && !(rawBody instanceof Uint8Array)) {
    // The usual cause is a JSON body parser that ran first; its output can never match the signature.
    throw new ConfigError('rawBody', `Expected \`rawBody\` to be the raw request body as a string or Uint8Array, got ${typeof rawBody}`);
  }

  const id = singleHeader(headers, 'webhook-id');
  const timestamp = singleHeader(headers, 'webhook-timestamp');
  const signatures = headerValues(headers, 'webhook-signature')
    .join(' ')
    .split(/\s+/)
    .filter((s) => s !== '');
  if (signatures.length === 0) throw new WebhookVerificationError('headers', 'Missing the webhook-signature header');

  if (!DECIMAL.test(timestamp) || !Number.isSafeInteger(Number(timestamp))) {
    throw new WebhookVerificationError('timestamp', `Expected webhook-timestamp to be unix seconds, got ${show(timestamp)}`);
  }
  const current = now();
  if (typeof current !== 'number' || !Number.isFinite(current)) {
    throw new ConfigError('now', `Expected \`now\` to return unix seconds, got ${show(current)}`);
  }
  // Each attempt is signed afresh, so even a backlog drained hours late arrives with a current timestamp: a stale
  // one means a replayed capture or a clock off by more than the tolerance.
  const skew = Number(timestamp) - current;
  if (Math.abs(skew) > tolerance) {
    const when = skew < 0 ? `${Math.round(-skew)} s in the past` : `${Math.round(skew)} s in the future`;
    throw new WebhookVerificationError('timestamp', `webhook-timestamp is ${when}; tolerance is ${tolerance} s`);
  }

  // Comparing the base64 text, not decoded bytes, so that no lenient decoding widens what is accepted.
  const expected = keys.map((key) => Buffer.from(createHmac('sha256', key).update(`${id}.${timestamp}.`).update(rawBody).digest('base64')));
  const matched = signatures.some((entry) => {
    if (!entry.startsWith('v1,')) return false; // other schemes (v1a asymmetric, future versions) are not ours
    const given = Buffer.from(entry.slice(3));
    return expected.some((want) => given.length === want.length && timingSafeEqual(given, want));
  });
  if (!matched) throw new WebhookVerificationError('signature', 'No v1 signature in webhook-signature matches any of the secrets');

  return parseEnvelope(rawBody, id);
}

function checkEvent(event: unknown, name: 'a' | 'b'): { epoch: bigint; seq: number } {
  const e = event as { epoch?: unknown; seq?: unknown } | null;
  if (typeof e !== 'object' || e === null || typeof e.epoch !== 'string' || !DECIMAL.test(e.epoch)) {
    throw new ConfigError(name, `Expected \`${name}.epoch\` to be a decimal string, got ${show(e?.epoch)}`);
  }
  if (!Number.isSafeInteger(e.seq)) throw new ConfigError(name, `Expected \`${name}.seq\` to be an integer, got ${show(e.seq)}`);
  return { epoch: BigInt(e.epoch), seq: e.seq as number };
}

/**
 * Orders two events of the same session: negative when `a` is older than `b`, 0 when equal, positive when newer.
 * Epochs compare as big integers (they exceed 2^53), then seq; seq restarts when the session moves to another
 * instance, but the epoch is then higher. Apply an event only when it compares greater than the last applied one.
 * @example
 * if (last && compareEventOrder(event, last) <= 0) return; // stale or duplicate: a newer state is applied already
 * await saveSession(event.session, { status: event.data.status, url: event.instance.url, epoch: event.epoch, seq: event.seq });
 */
export function compareEventOrder(a: { epoch: string; seq: number }, b: { epoch: string; seq: number }): number {
  const x = checkEvent(a, 'a');
  const y = checkEvent(b, 'b');
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1;
  return Math.sign(x.seq - y.seq);
}
