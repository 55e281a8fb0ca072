// The webhook vectors PHP's PHPUnit suite reads too (packages/php/tests/Unit/WebhookVectorsTest.php): the Node
// verifier and signers must give every outcome the file states, so both languages agree on what is authentic.
import { readFileSync } from 'node:fs';
import { compareEventOrder, verifyWebhook, WebhookVerificationError } from '@wafleet/client';
import { legacyHmacSigner } from '@wafleet/core';
import { describe, expect, it } from 'vitest';

interface Outcome {
  ok: boolean;
  reason?: 'headers' | 'timestamp' | 'signature' | 'body';
}
interface SignedCase {
  name: string;
  secrets: string[];
  headers: Record<string, string>;
  body: string;
  now: number;
  expect: Outcome;
}
interface Vectors {
  standard: SignedCase[];
  legacy: SignedCase[];
  order: Array<{ name: string; a: { epoch: string; seq: number }; b: { epoch: string; seq: number }; expect: number }>;
}

const vectors = JSON.parse(readFileSync(new URL('./vectors/webhooks.json', import.meta.url), 'utf8')) as Vectors;
const TOLERANCE_SECONDS = 300;

function standardOutcome(c: SignedCase): Outcome {
  try {
    verifyWebhook(c.secrets, c.headers, c.body, { now: () => c.now });
    return { ok: true };
  } catch (err) {
    if (err instanceof WebhookVerificationError) return { ok: false, reason: err.reason };
    throw err;
  }
}

/** The legacy scheme has no Node verifier: the outcome follows from what legacyHmacSigner would have sent. */
function legacyOutcome(c: SignedCase): Outcome {
  const header = (name: string) => Object.entries(c.headers).find(([k]) => k.toLowerCase() === name)?.[1];
  const timestamp = header('x-timestamp');
  const signature = header('x-hmac-signature');
  if (timestamp === undefined || signature === undefined) return { ok: false, reason: 'headers' };
  if (!/^[0-9]+$/.test(timestamp) || Math.abs(Number(timestamp) - c.now) > TOLERANCE_SECONDS) return { ok: false, reason: 'timestamp' };
  const signed = c.secrets.some(
    (secret) =>
      legacyHmacSigner(secret)({ id: 'unused', timestamp: Number(timestamp), body: c.body })['x-hmac-signature'] ===
      signature.toLowerCase(),
  );
  return signed ? { ok: true } : { ok: false, reason: 'signature' };
}

describe('webhook vectors shared with the PHP kit', () => {
  it('hold cases of every outcome', () => {
    const reasons = new Set([...vectors.standard, ...vectors.legacy].map((c) => c.expect.reason ?? 'ok'));
    expect([...reasons].sort()).toEqual(['body', 'headers', 'ok', 'signature', 'timestamp']);
  });

  it.each(vectors.standard.map((c) => [c.name, c] as const))('standard: %s', (_name, c) => {
    expect(standardOutcome(c)).toEqual(c.expect);
  });

  it.each(vectors.legacy.map((c) => [c.name, c] as const))('legacy: %s', (_name, c) => {
    expect(legacyOutcome(c)).toEqual(c.expect);
  });

  it.each(vectors.order.map((c) => [c.name, c] as const))('order: %s', (_name, c) => {
    expect(Math.sign(compareEventOrder(c.a, c.b))).toBe(c.expect);
    expect(Math.sign(compareEventOrder(c.b, c.a))).toBe(-c.expect || 0);
  });
});
