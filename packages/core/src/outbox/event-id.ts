import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * A new event id: `evt_` and a ULID (48-bit millisecond time, 80 random bits, Crockford base32), so ids sort by
 * creation time and never repeat. Minted once at enqueue; every retry and replay sends the same id.
 */
export function newEventId(nowMs: number): string {
  let time = '';
  for (let t = nowMs, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = ALPHABET[t % 32] + time;
  const bytes = randomBytes(16);
  let random = '';
  for (let i = 0; i < 16; i++) random += ALPHABET[bytes[i]! % 32];
  return `evt_${time}${random}`;
}
