import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { catchAsyncListeners } from './catch-listeners.js';

describe('catchAsyncListeners', () => {
  it('hands a rejecting async listener to onError instead of an unhandled rejection; off removes it as added', async () => {
    const emitter = new EventEmitter();
    const errors: Array<[string, string]> = [];
    catchAsyncListeners(emitter, (event, err) => errors.push([event, (err as Error).message]));
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const calls: string[] = [];
      const failing = async (value: string) => {
        calls.push(value);
        throw new Error(`target closed (${value})`);
      };
      const plain = (value: string) => void calls.push(`plain ${value}`);
      emitter.on('response', failing);
      emitter.on('response', plain);
      emitter.emit('response', 'a');
      await new Promise((r) => setTimeout(r, 20));
      expect(calls).toEqual(['a', 'plain a']);
      expect(errors).toEqual([['response', 'target closed (a)']]);
      emitter.off('response', failing);
      emitter.emit('response', 'b');
      await new Promise((r) => setTimeout(r, 20));
      expect(calls).toEqual(['a', 'plain a', 'plain b']);
      expect(emitter.listenerCount('response')).toBe(1);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
