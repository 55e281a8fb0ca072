import { describe } from './describe.js';
import { InvalidIdError } from './errors.js';

/** Longest session id, in characters. WhatsApp numbers and UUIDs are far shorter. */
export const MAX_SESSION_ID_LENGTH = 128;
/** Longest instance id, in characters (a Kubernetes pod name is at most 63). */
export const MAX_INSTANCE_ID_LENGTH = 64;

/**
 * Session ids are ASCII letters, digits, '_' and '-': the set whatsapp-web.js accepts as a LocalAuth/RemoteAuth
 * `clientId` (`^[-_\w]+$`), so an id the registry takes is one the engine can run. The same set is safe in Redis
 * members (no ':'), Cluster hash tags (no braces), file names, URLs, logs and a shell. No leading '-', so an id is
 * never read as a command-line flag. Phone numbers and UUIDs fit; a JID (`5511999990000@c.us`) does not: use the
 * number.
 */
export const SESSION_ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;
/** Instance ids may also hold '.', as pod and host names do. */
export const INSTANCE_ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
/** A fleet namespace: part of every registry key. */
export const NAMESPACE_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

function check(kind: 'session' | 'instance', value: unknown, max: number, pattern: RegExp, allowed: string): string {
  const label = kind === 'session' ? 'Session id' : 'Instance id';
  // Messages never quote a whole id: session ids are usually phone numbers.
  if (typeof value !== 'string') throw new InvalidIdError(kind, `${label} must be a string, got ${typeof value}`);
  if (value.length === 0) throw new InvalidIdError(kind, `${label} must not be empty`);
  if (value.length > max) throw new InvalidIdError(kind, `${label} must be at most ${max} characters, got ${value.length}`);
  if (!pattern.test(value)) {
    const bad = [...value].find((c, i) => !pattern.test(i === 0 ? c : `a${c}`)) ?? value[0]!;
    throw new InvalidIdError(kind, `${label} must be ${allowed}, found ${describe(bad)}`);
  }
  return value;
}

/** Returns `value` when it is a valid session id (see the policy above); throws {@link InvalidIdError} otherwise. */
export function validateSessionId(value: unknown): string {
  return check('session', value, MAX_SESSION_ID_LENGTH, SESSION_ID_PATTERN, "ASCII letters, digits, '_' and '-' (not first)");
}

/** Returns `value` when it is a valid instance id; throws {@link InvalidIdError} otherwise. */
export function validateInstanceId(value: unknown): string {
  return check(
    'instance',
    value,
    MAX_INSTANCE_ID_LENGTH,
    INSTANCE_ID_PATTERN,
    "ASCII letters, digits, '_', '.' and '-' ('.' and '-' not first)",
  );
}

/** Returns `value` when it is a valid namespace (`[A-Za-z0-9._-]{1,64}`); throws {@link InvalidIdError} otherwise. */
export function validateNamespace(value: unknown): string {
  if (typeof value !== 'string' || !NAMESPACE_PATTERN.test(value)) {
    throw new InvalidIdError('namespace', `Namespace must match [A-Za-z0-9._-]{1,64}, got ${describe(value)}`);
  }
  return value;
}
