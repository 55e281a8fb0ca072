import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const pool = Buffer.alloc(4096);
let used = pool.length;

/**
 * A new event id: `evt_` and a ULID (48-bit millisecond time, 80 random bits, Crockford base32), so ids sort by
 * creation time and never repeat. Minted once at enqueue; every retry and replay sends the same id.
 */
export function newEventId(nowMs: number): string {
  let time = '';
  for (let t = nowMs, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = ALPHABET[t % 32] + time;
  // Random bytes come from a pool filled 4 KiB at a time: one buffer and one system call per 256 ids, not per id.
  if (used + 16 > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  let random = '';
  for (let i = 0; i < 16; i++) random += ALPHABET[pool[used + i]! % 32];
  used += 16;
  return `evt_${time}${random}`;
}
