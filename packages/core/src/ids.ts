import { InvalidIdError } from './errors.js';

/** Longest session id, in characters. WhatsApp ids and UUIDs are far shorter. */
export const MAX_SESSION_ID_LENGTH = 128;
/** Longest instance id, in characters. */
export const MAX_INSTANCE_ID_LENGTH = 64;

// ':' separates ids in the owned index, braces would change the Redis Cluster hash tag.
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[:{}\u0000-\u001f\u007f]/;
const NAMESPACE = /^[A-Za-z0-9._-]{1,64}$/;

function check(kind: 'session' | 'instance', value: unknown, max: number): string {
  const label = kind === 'session' ? 'Session id' : 'Instance id';
  if (typeof value !== 'string') throw new InvalidIdError(kind, `${label} must be a string, got ${typeof value}`);
  if (value.length === 0) throw new InvalidIdError(kind, `${label} must not be empty`);
  if (value.length > max) throw new InvalidIdError(kind, `${label} must be at most ${max} characters, got ${value.length}`);
  if (value.trim() !== value) throw new InvalidIdError(kind, `${label} must not start or end with white space`);
  const bad = FORBIDDEN.exec(value);
  if (bad) {
    const shown = JSON.stringify(bad[0]);
    throw new InvalidIdError(kind, `${label} must not contain ':', '{', '}' or control characters, found ${shown}`);
  }
  return value;
}

/** Returns `value` when it is a valid session id; throws {@link InvalidIdError} otherwise. */
export function validateSessionId(value: unknown): string {
  return check('session', value, MAX_SESSION_ID_LENGTH);
}

/** Returns `value` when it is a valid instance id; throws {@link InvalidIdError} otherwise. */
export function validateInstanceId(value: unknown): string {
  return check('instance', value, MAX_INSTANCE_ID_LENGTH);
}

/** Returns `value` when it is a valid namespace (`[A-Za-z0-9._-]{1,64}`); throws {@link InvalidIdError} otherwise. */
export function validateNamespace(value: unknown): string {
  if (typeof value !== 'string' || !NAMESPACE.test(value)) {
    throw new InvalidIdError('namespace', `Namespace must match [A-Za-z0-9._-]{1,64}, got ${JSON.stringify(value)}`);
  }
  return value;
}
