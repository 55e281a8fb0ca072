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
    ['a JID suffix whatsapp-web.js refuses as clientId', '5511999990000@c.us'],
    ['a slash', 'a/b'],
    ['a path traversal', '../../etc/passwd'],
    ['a space', 'a b'],
    ['an RTL override', 'ab\u202Ecd'],
    ['a zero-width space', 'ab\u200Bcd'],
    ['a lone surrogate', '\ud800x'],
    ['a non-ASCII letter', 'session_ü'],
    ['a leading hyphen (read as a flag)', '-abc'],
    ['a dot', 'a.b'],
  ])('rejects a session id with %s', (_, id) => {
    let caught: unknown;
    try {
      validateSessionId(id);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidIdError);
    expect((caught as InvalidIdError).code).toBe('WAFLEET_INVALID_ID');
    expect((caught as InvalidIdError).kind).toBe('session');
  });

  it('never quotes the whole rejected id in the message (ids are usually phone numbers)', () => {
    expect(() => validateSessionId('5511999990000@c.us')).toThrow(/found "@"$/);
  });

  it('rejects a non-string session id', () => {
    expect(() => validateSessionId(42)).toThrow(/must be a string, got number/);
  });

  it.each(['5511999990000', 'tenant-7_session', '_x', '3f2b8c1e-7d4a-4b8e-9c1a-0e5f6a7b8c9d', 'x'.repeat(128)])('accepts %s', (id) => {
    expect(validateSessionId(id)).toBe(id);
  });

  it('accepts exactly what whatsapp-web.js accepts as a clientId, minus a leading hyphen', () => {
    const clientId = /^[-_\w]+$/;
    for (let c = 0; c < 0x800; c++) {
      const id = `a${String.fromCharCode(c)}`;
      const ok = (() => {
        try {
          validateSessionId(id);
          return true;
        } catch {
          return false;
        }
      })();
      expect(ok, JSON.stringify(id)).toBe(clientId.test(id));
    }
  });

  it('limits instance ids to 64 characters of a host-name-like set', () => {
    expect(validateInstanceId('i'.repeat(64))).toHaveLength(64);
    expect(validateInstanceId('wa-7f9c.pod')).toBe('wa-7f9c.pod');
    expect(() => validateInstanceId('i'.repeat(65))).toThrow(InvalidIdError);
    expect(() => validateInstanceId('wa 1')).toThrow(InvalidIdError);
    expect(() => validateInstanceId('.wa')).toThrow(InvalidIdError);
  });

  it('accepts only safe namespaces', () => {
    expect(validateNamespace('prod.eu-1')).toBe('prod.eu-1');
    expect(() => validateNamespace('a b')).toThrow(/Namespace must match/);
    expect(() => validateNamespace('{x}')).toThrow(InvalidIdError);
  });
});
