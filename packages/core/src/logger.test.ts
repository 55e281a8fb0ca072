import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

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
