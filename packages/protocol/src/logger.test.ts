import { describe, expect, it } from 'vitest';
import { createLogger, wafleetLogger } from './logger.js';

describe('logger adapter', () => {
  it('calls pino-style loggers with fields first', () => {
    const calls: unknown[][] = [];
    const pino = { child() {}, info: (...a: unknown[]) => calls.push(a), warn() {}, error() {}, debug() {} };
    createLogger(pino).info('renewed', { n: 1 });
    expect(calls).toEqual([[{ n: 1 }, 'renewed']]);
  });

  it('calls winston-style loggers with the message first', () => {
    const calls: unknown[][] = [];
    const winston = { transports: [], child() {}, warn: (...a: unknown[]) => calls.push(a), info() {}, error() {}, debug() {} };
    createLogger(winston).warn('fenced', { count: 2 });
    expect(calls).toEqual([['fenced', { count: 2 }]]);
  });

  it('is silent without a logger and tolerates missing levels', () => {
    expect(() => createLogger().error('x')).not.toThrow();
    expect(() => createLogger({ info() {} }).debug('x')).not.toThrow();
  });
});

describe('session ids in log lines', () => {
  const capture = () => {
    const calls: Array<[string, Record<string, unknown>]> = [];
    const winston = {
      transports: [],
      debug() {},
      info: (m: string, f: Record<string, unknown>) => calls.push([m, f]),
      warn() {},
      error() {},
    };
    return { winston, calls };
  };

  it('hashes session ids by default, in the id fields, the message, other strings and error messages of the line', () => {
    const { winston, calls } = capture();
    const err = Object.assign(new Error('Session 5511999990000 is owned by wa-2'), { code: 'WAFLEET_OWNED_ELSEWHERE' });
    createLogger(winston).info('restart of 5511999990000 scheduled', { sessionId: '5511999990000', reason: 'crash of 5511999990000', err });
    const [[msg, fields]] = calls as [[string, Record<string, unknown>]];
    const line = JSON.stringify([msg, fields, (fields.err as Error).message, (fields.err as Error).stack]);
    expect(line).not.toContain('5511999990000');
    expect(fields.sessionId).toMatch(/^sid_[0-9a-f]{12}$/);
    expect(msg).toBe(`restart of ${fields.sessionId as string} scheduled`);
    expect(fields.err).toBeInstanceOf(Error);
    expect((fields.err as { code: string }).code).toBe('WAFLEET_OWNED_ELSEWHERE');
  });

  it('gives the same hash for the same id and key on every instance, another under another key', () => {
    const a = capture();
    const b = capture();
    const c = capture();
    createLogger(a.winston).info('x', { sessionId: '5511999990000' });
    wafleetLogger(b.winston).info('x', { sessionIds: ['5511999990000', '5511999990001'] });
    wafleetLogger(c.winston, { hashKey: 'secret-of-ours' }).info('x', { session: '5511999990000' });
    expect((b.calls[0]![1].sessionIds as string[])[0]).toBe(a.calls[0]![1].sessionId);
    expect((b.calls[0]![1].sessionIds as string[])[1]).not.toBe(a.calls[0]![1].sessionId);
    expect(c.calls[0]![1].session).not.toBe(a.calls[0]![1].sessionId);
  });

  it('logs ids as they are when the host asks for plain ids', () => {
    const { winston, calls } = capture();
    const logger = wafleetLogger(winston, { sessionIds: 'plain' });
    expect(createLogger(logger)).toBe(logger);
    logger.info('x', { sessionId: '5511999990000' });
    expect(calls[0]![1].sessionId).toBe('5511999990000');
  });

  it('refuses an unknown mode or an empty key', () => {
    expect(() => wafleetLogger(console, { sessionIds: 'off' as 'plain' })).toThrow(expect.objectContaining({ code: 'WAFLEET_CONFIG' }));
    expect(() => wafleetLogger(console, { hashKey: '' })).toThrow(/hashKey/);
  });
});

describe('component binding', () => {
  it('binds the component in a pino or winston child logger, and adds it as a field to a console-like one', () => {
    const bound: unknown[] = [];
    const lines: unknown[][] = [];
    const pinoChild = { info: (...a: unknown[]) => lines.push(a), warn() {}, error() {}, debug() {}, child() {} };
    const pino = { child: (b: unknown) => (bound.push(b), pinoChild), info() {}, warn() {}, error() {}, debug() {} };
    createLogger(pino, 'outbox').info('x', { n: 1 });
    expect(bound).toEqual([{ component: 'outbox' }]);
    expect(lines).toEqual([[{ n: 1 }, 'x']]);
    const consoleLines: unknown[][] = [];
    const plain = { info: (...a: unknown[]) => consoleLines.push(a), warn() {}, error() {}, debug() {} };
    createLogger(plain, 'fleet').info('y', { n: 2 });
    expect(consoleLines).toEqual([['y', { component: 'fleet', n: 2 }]]);
  });

  it('derives a component logger from a wafleetLogger, keeping its privacy options', () => {
    const lines: unknown[][] = [];
    const plain = { info: (...a: unknown[]) => lines.push(a), warn() {}, error() {}, debug() {} };
    createLogger(wafleetLogger(plain, { sessionIds: 'plain' }), 'supervisor').info('z', { sessionId: '5511999990000' });
    expect(lines).toEqual([['z', { component: 'supervisor', sessionId: '5511999990000' }]]);
  });
});
