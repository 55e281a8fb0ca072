import { describe, expect, it } from 'vitest';
import { registryKeys } from './keys.js';
import { parsePush } from './push.js';

const keys = registryKeys('push-ns');
const message = (fields: Record<string, unknown>) =>
  JSON.stringify({ s: 's1', o: 'wa-1', i: 'inc-1', e: '42', st: 'WORKING', d: 'running', u: 'http://wa-1:3000', ...fields });

describe('parsePush', () => {
  it('reads a push of the fleet channel into the owner vocabulary', () => {
    expect(parsePush(keys, keys.events, message({}))).toEqual({
      sessionId: 's1',
      owner: 'wa-1',
      incarnation: 'inc-1',
      epoch: '42',
      status: 'WORKING',
      desired: 'running',
      ownerUrl: 'http://wa-1:3000',
    });
    expect(parsePush(keys, keys.events, message({ o: '', i: '', u: undefined, st: 'STOPPED', d: 'stopped' }))).toMatchObject({
      owner: '',
      ownerUrl: '',
      status: 'STOPPED',
    });
  });

  it('gives undefined for another channel, a message that is not JSON, no session id or a status outside SESSION_STATUSES', () => {
    expect(parsePush(keys, registryKeys('other').events, message({}))).toBeUndefined();
    expect(parsePush(keys, keys.events, 'not json')).toBeUndefined();
    expect(parsePush(keys, keys.events, 'null')).toBeUndefined();
    expect(parsePush(keys, keys.events, message({ s: '' }))).toBeUndefined();
    for (const st of [undefined, '', 'working', 'DANCING', 3])
      expect(parsePush(keys, keys.events, message({ st })), String(st)).toBeUndefined();
  });
});
