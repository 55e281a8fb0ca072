import { describe, expect, it } from 'vitest';
import { InvalidIdError } from './errors.js';
import { validateInstanceId, validateNamespace, validateSessionId } from './ids.js';

describe('session and instance ids', () => {
  it.each([
    ['empty', ''],
    ['too long', 'x'.repeat(129)],
    ['a colon', 'a:b'],
    ['an opening brace', 'a{b'],
    ['a closing brace', 'a}b'],
    ['a newline', 'a\nb'],
    ['a NUL', 'a\u0000b'],
    ['DEL', 'a\u007fb'],
    ['leading white space', ' ab'],
  ])('rejects a session id with %s', (_, id) => {
    expect(() => validateSessionId(id)).toThrow(InvalidIdError);
    try {
      validateSessionId(id);
    } catch (err) {
      expect((err as InvalidIdError).code).toBe('WAFLEET_INVALID_ID');
      expect((err as InvalidIdError).kind).toBe('session');
    }
  });

  it('rejects a non-string session id', () => {
    expect(() => validateSessionId(42)).toThrow(/must be a string/);
  });

  it.each(['5511999990000', '5511999990000@c.us', 'tenant-7/session_ü', 'x'.repeat(128)])('accepts %s', (id) => {
    expect(validateSessionId(id)).toBe(id);
  });

  it('limits instance ids to 64 characters', () => {
    expect(validateInstanceId('i'.repeat(64))).toHaveLength(64);
    expect(() => validateInstanceId('i'.repeat(65))).toThrow(InvalidIdError);
  });

  it('accepts only safe namespaces', () => {
    expect(validateNamespace('prod.eu-1')).toBe('prod.eu-1');
    expect(() => validateNamespace('a b')).toThrow(/Namespace must match/);
    expect(() => validateNamespace('{x}')).toThrow(InvalidIdError);
  });
});
