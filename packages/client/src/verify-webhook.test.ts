import { createHmac, randomBytes } from 'node:crypto';
import { WafleetError } from '@wafleet/protocol';
import { Webhook } from 'standardwebhooks';
import { describe, expect, it } from 'vitest';
import { compareEventOrder, verifyWebhook, WebhookVerificationError, type WebhookEnvelope } from './verify-webhook.js';

const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;
const SECRET = newSecret();
const OLD_SECRET = newSecret();
const NOW = 1_760_000_000;
const now = () => NOW;
const ID = 'evt_01K9ZX3M4N5P6Q7R8S9T0VWXYZ';

function envelope(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: ID,
    type: 'session.status',
    timestamp: '2025-10-09T08:53:20.000Z',
    session: '5511999990000',
    epoch: '1785000000000000001',
    seq: 42,
    instance: { id: 'wa-2', url: 'http://wa-2:3000' },
    data: { status: 'WORKING', previous: 'STARTING' },
    ...overrides,
  };
}

/** Headers as the wafleet sender builds them, signed by the reference implementation with every secret given. */
function signed(body: string, secrets: readonly string[] = [SECRET], ts = NOW, id = ID): Record<string, string> {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(ts),
    'webhook-signature': secrets.map((s) => new Webhook(s).sign(id, new Date(ts * 1000), body)).join(' '),
    'x-instance-url': 'http://wa-2:3000',
    'content-type': 'application/json',
  };
}

function rejection(fn: () => unknown): WebhookVerificationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WebhookVerificationError);
    expect(err).toBeInstanceOf(WafleetError);
    expect((err as WebhookVerificationError).code).toBe('WAFLEET_WEBHOOK_INVALID');
    return err as WebhookVerificationError;
  }
  throw new Error('expected verifyWebhook to throw');
}

function configError(fn: () => unknown): WafleetError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WafleetError);
    expect(err).not.toBeInstanceOf(WebhookVerificationError);
    expect((err as WafleetError).code).toBe('WAFLEET_CONFIG');
    return err as WafleetError;
  }
  throw new Error('expected a configuration error');
}

describe('verifyWebhook with signatures from the standardwebhooks package', () => {
  const body = JSON.stringify(envelope());

  it('accepts a valid webhook and returns the typed envelope', () => {
    const event: WebhookEnvelope = verifyWebhook(SECRET, signed(body), body, { now });
    expect(event).toEqual(envelope());
    expect(event.epoch).toBe('1785000000000000001');
    expect(event.instance.url).toBe('http://wa-2:3000');
  });

  it('accepts the Standard Webhooks test vector signature (then rejects its body, which is no envelope)', () => {
    const headers = {
      'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek',
      'webhook-timestamp': '1614265330',
      'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    };
    const err = rejection(() =>
      verifyWebhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', headers, '{"test": 2432232314}', { now: () => 1614265330 }),
    );
    expect(err.reason).toBe('body');
  });

  it('uses the current time by default', () => {
    const ts = Math.floor(Date.now() / 1000);
    expect(verifyWebhook(SECRET, signed(body, [SECRET], ts), body).id).toBe(ID);
    expect(rejection(() => verifyWebhook(SECRET, signed(body, [SECRET], ts - 301), body)).reason).toBe('timestamp');
  });

  it('rejects a signature made with another secret', () => {
    const err = rejection(() => verifyWebhook(SECRET, signed(body, [newSecret()]), body, { now }));
    expect(err.reason).toBe('signature');
  });

  it('rejects a tampered body', () => {
    const tampered = body.replace('"WORKING"', '"FAILED"');
    expect(tampered).not.toBe(body);
    expect(rejection(() => verifyWebhook(SECRET, signed(body), tampered, { now })).reason).toBe('signature');
  });

  it('rejects a tampered id or timestamp header', () => {
    const other = 'evt_01K9ZX3M4N5P6Q7R8S9T0VWXYA';
    expect(rejection(() => verifyWebhook(SECRET, { ...signed(body), 'webhook-id': other }, body, { now })).reason).toBe('signature');
    const later = { ...signed(body), 'webhook-timestamp': String(NOW + 1) };
    expect(rejection(() => verifyWebhook(SECRET, later, body, { now })).reason).toBe('signature');
  });

  it.each([
    ['past', -301],
    ['future', 301],
  ])('rejects a timestamp beyond the tolerance in the %s', (_, offset) => {
    const headers = signed(body, [SECRET], NOW + offset);
    const err = rejection(() => verifyWebhook(SECRET, headers, body, { now }));
    expect(err.reason).toBe('timestamp');
    expect(err.message).toMatch(/301 s in the (past|future); tolerance is 300 s/);
  });

  it.each([-300, 300])('accepts a timestamp exactly at the tolerance (%i s)', (offset) => {
    expect(verifyWebhook(SECRET, signed(body, [SECRET], NOW + offset), body, { now }).id).toBe(ID);
  });

  it('honours toleranceSeconds', () => {
    const headers = signed(body, [SECRET], NOW - 100);
    expect(rejection(() => verifyWebhook(SECRET, headers, body, { now, toleranceSeconds: 60 })).reason).toBe('timestamp');
    expect(verifyWebhook(SECRET, headers, body, { now, toleranceSeconds: 120 }).id).toBe(ID);
  });

  it('rejects a malformed timestamp', () => {
    for (const ts of ['1760000000.5', '-1760000000', 'soon', '1e9']) {
      const headers = { ...signed(body), 'webhook-timestamp': ts };
      expect(rejection(() => verifyWebhook(SECRET, headers, body, { now })).reason).toBe('timestamp');
    }
  });

  it.each(['webhook-id', 'webhook-timestamp', 'webhook-signature'])('rejects a webhook without %s', (name) => {
    const headers: Record<string, string | undefined> = signed(body);
    delete headers[name];
    const err = rejection(() => verifyWebhook(SECRET, headers, body, { now }));
    expect(err.reason).toBe('headers');
    expect(err.message).toContain(name);
    expect(rejection(() => verifyWebhook(SECRET, { ...signed(body), [name]: '' }, body, { now })).reason).toBe('headers');
    expect(rejection(() => verifyWebhook(SECRET, { ...signed(body), [name]: undefined }, body, { now })).reason).toBe('headers');
  });

  it('rejects conflicting duplicates of webhook-id', () => {
    const headers = { ...signed(body), 'Webhook-Id': 'evt_01K9ZX3M4N5P6Q7R8S9T0VWXYA' };
    expect(rejection(() => verifyWebhook(SECRET, headers, body, { now })).reason).toBe('headers');
  });

  describe('key rotation', () => {
    const both = signed(body, [SECRET, OLD_SECRET]);

    it('sends one v1 signature per secret', () => {
      expect(both['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}= v1,[A-Za-z0-9+/]{43}=$/);
    });

    it('verifies when the receiver knows only the new secret', () => {
      expect(verifyWebhook(SECRET, both, body, { now }).id).toBe(ID);
    });

    it('verifies when the receiver knows only the old secret', () => {
      expect(verifyWebhook(OLD_SECRET, both, body, { now }).id).toBe(ID);
    });

    it('verifies with several secrets on the receiver, whichever one the sender used', () => {
      expect(verifyWebhook([newSecret(), SECRET], signed(body, [SECRET]), body, { now }).id).toBe(ID);
      expect(verifyWebhook([SECRET, OLD_SECRET], signed(body, [OLD_SECRET]), body, { now }).id).toBe(ID);
      expect(rejection(() => verifyWebhook([SECRET, OLD_SECRET], signed(body, [newSecret()]), body, { now })).reason).toBe('signature');
    });

    it('skips entries of other versions and malformed entries', () => {
      const good = signed(body)['webhook-signature']!;
      const headers = { ...signed(body), 'webhook-signature': `v1a,${good.slice(3)} v2,abc garbage v1, ${good}` };
      expect(verifyWebhook(SECRET, headers, body, { now }).id).toBe(ID);
      const onlyOthers = { ...signed(body), 'webhook-signature': `v1a,${good.slice(3)} v1,${good.slice(3, -2)}` };
      expect(rejection(() => verifyWebhook(SECRET, onlyOthers, body, { now })).reason).toBe('signature');
    });

    it('accepts the signatures split over several header values', () => {
      const [first, second] = both['webhook-signature']!.split(' ');
      expect(verifyWebhook(OLD_SECRET, { ...both, 'webhook-signature': [first!, second!] }, body, { now }).id).toBe(ID);
    });
  });

  it('rejects an envelope whose id differs from webhook-id', () => {
    const other = JSON.stringify(envelope({ id: 'evt_01K9ZX3M4N5P6Q7R8S9T0VWXYA' }));
    const err = rejection(() => verifyWebhook(SECRET, signed(other), other, { now }));
    expect(err.reason).toBe('body');
    expect(err.message).toMatch(/differs from the webhook-id header/);
  });

  it('verifies a Uint8Array body over its exact bytes', () => {
    const text = JSON.stringify(envelope({ data: { status: 'WORKING', previous: '', name: 'Olá 👋 ñ' } }));
    const bytes = new TextEncoder().encode(text);
    expect(bytes.length).toBeGreaterThan(text.length);
    const event = verifyWebhook(SECRET, signed(text), bytes, { now });
    expect(event.data.name).toBe('Olá 👋 ñ');
    expect(verifyWebhook(SECRET, signed(text), Buffer.from(bytes), { now }).id).toBe(ID);
    const flipped = Uint8Array.from(bytes);
    const last = flipped.length - 2;
    flipped[last] = flipped[last]! ^ 1;
    expect(rejection(() => verifyWebhook(SECRET, signed(text), flipped, { now })).reason).toBe('signature');
  });

  it('reads header names case-insensitively, from a record or a Headers object', () => {
    const upper = Object.fromEntries(Object.entries(signed(body)).map(([k, v]) => [k.toUpperCase(), v]));
    expect(verifyWebhook(SECRET, upper, body, { now }).id).toBe(ID);
    const mixed = { 'Webhook-Id': ID, 'WEBHOOK-timestamp': String(NOW), 'Webhook-Signature': signed(body)['webhook-signature'] };
    expect(verifyWebhook(SECRET, mixed, body, { now }).id).toBe(ID);
    expect(verifyWebhook(SECRET, new Headers(upper), body, { now }).id).toBe(ID);
  });

  it('rejects a secret without the whsec_ prefix or with a bad key', () => {
    const raw = SECRET.slice('whsec_'.length);
    expect(configError(() => verifyWebhook(raw, signed(body), body, { now })).message).toMatch(/starting with whsec_/);
    expect(configError(() => verifyWebhook([SECRET, raw], signed(body), body, { now })).message).toContain('`secret[1]`');
    // The message must not echo the credential.
    expect(configError(() => verifyWebhook(raw, signed(body), body, { now })).message).not.toContain(raw);
    expect(configError(() => verifyWebhook('whsec_', signed(body), body, { now })).message).toMatch(/base64/);
    expect(configError(() => verifyWebhook('whsec_abc-_def', signed(body), body, { now })).message).toMatch(/base64/);
    expect(configError(() => verifyWebhook([], signed(body), body, { now })).message).toMatch(/non-empty list/);
  });

  it('validates its options and arguments', () => {
    expect(configError(() => verifyWebhook(SECRET, signed(body), body, { toleranceSeconds: -1 })).message).toBe(
      'Expected `toleranceSeconds` to be a positive integer, got -1',
    );
    expect(configError(() => verifyWebhook(SECRET, signed(body), body, { toleranceSeconds: 1.5 })).message).toMatch(/positive integer/);
    expect(configError(() => verifyWebhook(SECRET, signed(body), body, { now: 5 as unknown as () => number })).message).toMatch(
      /`now` to be a function/,
    );
    const parsed = JSON.parse(body) as unknown as string;
    expect(configError(() => verifyWebhook(SECRET, signed(body), parsed, { now })).message).toMatch(/raw request body/);
    expect(configError(() => verifyWebhook(SECRET, null as unknown as Headers, body, { now })).message).toMatch(/`headers`/);
  });

  describe('envelope checks (after a valid signature)', () => {
    const cases: Array<[string, string]> = [
      ['not JSON', '{"id":'],
      ['a JSON array', '[1,2]'],
      ['a missing type', JSON.stringify(envelope({ type: undefined }))],
      ['a numeric epoch', JSON.stringify(envelope({ epoch: 1785 }))],
      ['an epoch with leading zeros', JSON.stringify(envelope({ epoch: '0042' }))],
      ['a fractional seq', JSON.stringify(envelope({ seq: 1.5 }))],
      ['a negative seq', JSON.stringify(envelope({ seq: -1 }))],
      ['a seq as string', JSON.stringify(envelope({ seq: '42' }))],
      ['a bad timestamp', JSON.stringify(envelope({ timestamp: 'yesterday' }))],
      ['a null session', JSON.stringify(envelope({ session: null }))],
      ['no instance url', JSON.stringify(envelope({ instance: { id: 'wa-2' } }))],
      ['array data', JSON.stringify(envelope({ data: [] }))],
      ['a status event without previous', JSON.stringify(envelope({ data: { status: 'WORKING' } }))],
      ['a ready event without status', JSON.stringify(envelope({ type: 'session.ready', data: { previous: 'STARTING' } }))],
    ];
    it.each(cases)('rejects %s', (_, text) => {
      expect(rejection(() => verifyWebhook(SECRET, signed(text), text, { now })).reason).toBe('body');
    });

    it('rejects a body that is not UTF-8', () => {
      const bytes = Uint8Array.from([0x7b, 0xff, 0x7d]);
      const headers = signed(Buffer.from(bytes).toString('latin1'));
      const ours = createHmac('sha256', Buffer.from(SECRET.slice(6), 'base64'))
        .update(`${ID}.${NOW}.`)
        .update(bytes)
        .digest('base64');
      expect(rejection(() => verifyWebhook(SECRET, { ...headers, 'webhook-signature': `v1,${ours}` }, bytes, { now })).reason).toBe('body');
    });

    it('accepts other event types, a renamed ready event, an empty session and extra fields', () => {
      const ready = JSON.stringify(envelope({ type: 'session_ready', session: '', epoch: '0', seq: 0, data: { any: 1 }, extra: true }));
      const event = verifyWebhook(SECRET, signed(ready), ready, { now });
      expect(event.type).toBe('session_ready');
      expect((event as unknown as { extra: boolean }).extra).toBe(true);
    });
  });
});

describe('headers signed by our own code verify with the standardwebhooks package', () => {
  /** The sender's algorithm, written out from the spec. */
  function ourSignature(secret: string, id: string, ts: number, body: string): string {
    const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
    return `v1,${createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64')}`;
  }

  it('matches the reference implementation byte for byte, with one or several secrets', () => {
    const body = JSON.stringify(envelope({ data: { status: 'SCAN_QR_CODE', previous: 'STARTING', note: 'ü' } }));
    const ts = Math.floor(Date.now() / 1000); // Webhook#verify always checks against the real clock
    expect(ourSignature(SECRET, ID, ts, body)).toBe(new Webhook(SECRET).sign(ID, new Date(ts * 1000), body));

    const headers = {
      'webhook-id': ID,
      'webhook-timestamp': String(ts),
      'webhook-signature': [ourSignature(SECRET, ID, ts, body), ourSignature(OLD_SECRET, ID, ts, body)].join(' '),
    };
    expect(new Webhook(SECRET).verify(body, headers)).toEqual(
      envelope({ data: { status: 'SCAN_QR_CODE', previous: 'STARTING', note: 'ü' } }),
    );
    expect(new Webhook(OLD_SECRET).verify(body, headers)).toMatchObject({ id: ID });
    expect(() => new Webhook(newSecret()).verify(body, headers)).toThrow(/No matching signature/);
    expect(() => new Webhook(SECRET).verify(`${body} `, headers)).toThrow(/No matching signature/);
    // And ours agrees with the reference on the same input.
    expect(verifyWebhook([OLD_SECRET], headers, body).id).toBe(ID);
  });

  it('reproduces the Standard Webhooks test vector', () => {
    expect(ourSignature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}')).toBe(
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    );
  });
});

describe('compareEventOrder', () => {
  const beyond = '9007199254740993'; // 2^53 + 1: Number() would round it to 2^53
  const twoPow53 = '9007199254740992';

  it('compares epochs as big integers, beyond 2^53', () => {
    expect(Number(beyond)).toBe(Number(twoPow53));
    expect(compareEventOrder({ epoch: twoPow53, seq: 9 }, { epoch: beyond, seq: 1 })).toBeLessThan(0);
    expect(compareEventOrder({ epoch: beyond, seq: 1 }, { epoch: twoPow53, seq: 9 })).toBeGreaterThan(0);
    expect(compareEventOrder({ epoch: '18446744073709551616', seq: 0 }, { epoch: '18446744073709551615', seq: 99 })).toBeGreaterThan(0);
  });

  it('compares numerically, not as text', () => {
    expect(compareEventOrder({ epoch: '10', seq: 0 }, { epoch: '9', seq: 0 })).toBeGreaterThan(0);
    expect(compareEventOrder({ epoch: '007', seq: 0 }, { epoch: '7', seq: 0 })).toBe(0);
  });

  it('falls back to seq within one epoch', () => {
    expect(compareEventOrder({ epoch: beyond, seq: 10 }, { epoch: beyond, seq: 9 })).toBeGreaterThan(0);
    expect(compareEventOrder({ epoch: beyond, seq: 2 }, { epoch: beyond, seq: 10 })).toBeLessThan(0);
    expect(compareEventOrder({ epoch: beyond, seq: 7 }, { epoch: beyond, seq: 7 })).toBe(0);
  });

  it('orders a moved session by epoch although its seq restarted', () => {
    const oldOwner = { epoch: twoPow53, seq: 5000 };
    const newOwner = { epoch: beyond, seq: 1 };
    const applied = [newOwner, oldOwner].sort(compareEventOrder);
    expect(applied).toEqual([oldOwner, newOwner]);
  });

  it('sorts verified envelopes', () => {
    const a = envelope({ epoch: beyond, seq: 3 }) as unknown as WebhookEnvelope;
    const b = envelope({ epoch: beyond, seq: 4 }) as unknown as WebhookEnvelope;
    expect(compareEventOrder(a, b)).toBeLessThan(0);
  });

  it('rejects epochs that are not decimal strings and non-integer seqs', () => {
    expect(() => compareEventOrder({ epoch: 5 as unknown as string, seq: 1 }, { epoch: '5', seq: 1 })).toThrow(
      /`a.epoch` to be a decimal string/,
    );
    expect(() => compareEventOrder({ epoch: '5', seq: 1 }, { epoch: '', seq: 1 })).toThrow(/`b.epoch`/);
    expect(() => compareEventOrder({ epoch: '5', seq: 1 }, { epoch: '-5', seq: 1 })).toThrow(/`b.epoch`/);
    expect(() => compareEventOrder({ epoch: '5', seq: 1.5 }, { epoch: '5', seq: 1 })).toThrow(/`a.seq` to be an integer/);
  });
});
