import { randomBytes } from 'node:crypto';

const MAX_LENGTH = 48;
const PREFIX = 't';
const RANDOM_LENGTH = 8;

let counter = 0;

/**
 * Returns a fresh namespace such as `t-lease-expiry-1k3j9x0qzb`, valid for the
 * registry: only `[a-z0-9-]`, at most 48 characters, starting with a letter,
 * no leading/trailing or doubled dashes.
 *
 * Tests sharing one Redis (e.g. via `REDIS_URL`) must not see each other's
 * keys and must never flush, so every test takes its own namespace.
 *
 * @param label - human hint (test name); sanitized and truncated as needed
 */
export function uniqueNamespace(label?: string): string {
  // The counter guarantees uniqueness within this process; the random part
  // covers parallel workers and repeated runs against the same Redis.
  counter += 1;
  const suffix = counter.toString(36) + randomBase36(RANDOM_LENGTH);
  const room = MAX_LENGTH - PREFIX.length - suffix.length - 2;
  const cleaned = sanitize(label ?? '')
    .slice(0, Math.max(0, room))
    .replace(/-+$/, '');
  return cleaned ? `${PREFIX}-${cleaned}-${suffix}` : `${PREFIX}-${suffix}`;
}

function sanitize(label: string): string {
  return label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

function randomBase36(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const b of bytes) out += (b % 36).toString(36);
  return out;
}
