import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { redisForTests, sleep, uniqueNamespace, type TestRedis } from '@wafleet/test-utils';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { registryKeys, type RegistryKeys } from './keys.js';
import { runScript, type Script } from './redis.js';
import { ReplyCode } from './reply-codes.js';
import { scripts } from './scripts.generated.js';

const { OK, PENDING, FENCED, DUPLICATE, OWNED_ELSEWHERE, OWNER_EXPIRING, CAPACITY, QUARANTINE, NOT_OWNER, DRAINING, NOT_FOUND } = ReplyCode;

let redis: TestRedis;
let client: Redis;
let k: RegistryKeys;

beforeAll(async () => {
  redis = await redisForTests();
  client = new Redis(redis.url);
});
afterAll(async () => {
  client.disconnect();
  await redis.close();
});
beforeEach(() => {
  k = registryKeys(uniqueNamespace('lua'));
});

const TTL = 300;
const DELAY = 200;
const all = () => [k.instances, k.instanceInfo, k.owned, k.sessions, k.pending, k.meta];
const run = (script: Script, keys: string[], args: Array<string | number>) => runScript(client, script, keys, args);

/** register(id, inc, max, quarantineMs) */
const register = (id: string, inc: string, max = 2, quarantine = 0, ttl = TTL) =>
  run(scripts.register, all(), [id, inc, `http://${id}`, max, '{"zone":"eu"}', ttl, DELAY, 'managed', quarantine, k.events]);
const heartbeat = (id: string, inc: string) => run(scripts.heartbeat, [k.instances, k.instanceInfo, k.owned, k.meta], [id, inc, TTL]);
const claim = (id: string, inc: string, sid: string, reassert = '0') =>
  run(scripts.claim, all(), [id, inc, sid, DELAY, reassert, '0', k.events, '']);
const place = (sid: string, labels = '', exclude = '') => run(scripts.place, all(), [sid, labels, exclude, DELAY, k.events, 1000]);
const release = (id: string, inc: string, sid: string, mode: 'stop' | 'handoff') =>
  run(scripts.release, all(), [id, inc, sid, mode, k.events, 1000]);
const setStatus = (id: string, inc: string, sid: string) =>
  run(scripts.setStatus, [k.instances, k.instanceInfo, k.sessions], [id, inc, sid, 'WORKING', '', k.events]);
const sweep = () => run(scripts.sweep, all(), [DELAY, 100, 1000, 30000, k.events]);

describe('Lua scripts: every reply code', () => {
  it('register: OK, FENCED for an expired incarnation, DUPLICATE while another incarnation lives', async () => {
    expect((await register('a', 'inc1'))[0]).toBe(OK);
    expect(await register('a', 'inc2')).toEqual([DUPLICATE, expect.any(Number), 'inc1']);
    await sleep(TTL + 20);
    expect(await register('a', 'inc1')).toEqual([FENCED, 'expired']);
    // Still within the adoption delay after expiry: the old incarnation may be paused, not dead.
    expect((await register('a', 'inc2'))[0]).toBe(DUPLICATE);
    await sleep(DELAY);
    expect((await register('a', 'inc2'))[0]).toBe(OK);
  });

  it('heartbeat: OK with the owned count, FENCED missing, replaced, expired; never revives', async () => {
    await register('a', 'inc1');
    await claim('a', 'inc1', 's1');
    expect(await heartbeat('a', 'inc1')).toEqual([OK, expect.any(Number), 1, expect.any(String)]);
    expect(await heartbeat('b', 'x')).toEqual([FENCED, 'missing']);
    expect(await heartbeat('a', 'other')).toEqual([FENCED, 'replaced']);
    await sleep(TTL + 20);
    expect(await heartbeat('a', 'inc1')).toEqual([FENCED, 'expired']);
    expect(await heartbeat('a', 'inc1')).toEqual([FENCED, 'expired']);
  });

  it('claim: OK new and held, OWNED_ELSEWHERE, CAPACITY, DRAINING, FENCED', async () => {
    await register('a', 'ia', 1);
    await register('b', 'ib', 1);
    expect(await claim('a', 'ia', 's1')).toEqual([OK, expect.any(String), 'new', '']);
    expect(await claim('a', 'ia', 's1')).toEqual([OK, expect.any(String), 'held', 'a']);
    expect(await claim('b', 'ib', 's1')).toEqual([OWNED_ELSEWHERE, 'a', expect.any(String), 'http://a']);
    expect(await claim('a', 'ia', 's2')).toEqual([CAPACITY, 1, 1]);
    await run(scripts.setDraining, [k.instances, k.instanceInfo], ['b', 'ib', '1']);
    expect(await claim('b', 'ib', 's3')).toEqual([DRAINING]);
    expect(await claim('b', 'wrong', 's3')).toEqual([FENCED, 'replaced']);
    expect(await claim('z', 'iz', 's3')).toEqual([FENCED, 'expired']);
  });

  it('claim: OWNER_EXPIRING until expiry + adoption delay, then OK with a greater epoch', async () => {
    await register('a', 'ia', 2, 0, 200);
    await register('b', 'ib', 2, 0, 5000);
    const [, first] = await claim('a', 'ia', 's1');
    await sleep(220);
    const refused = await claim('b', 'ib', 's1');
    expect(refused[0]).toBe(OWNER_EXPIRING);
    expect(refused[2]).toBe('a');
    await sleep(Number(refused[1]) + 10);
    const [code, epoch] = await claim('b', 'ib', 's1');
    expect(code).toBe(OK);
    expect(BigInt(epoch as string) > BigInt(first as string)).toBe(true);
  });

  it('claim and place: QUARANTINE after data loss, except for re-assertions', async () => {
    await register('a', 'ia', 2, 1000);
    expect(await claim('a', 'ia', 's1')).toEqual([QUARANTINE, expect.any(Number)]);
    expect(await place('s2')).toEqual([QUARANTINE, expect.any(Number)]);
    expect((await sweep())[0]).toBe(QUARANTINE);
    expect((await claim('a', 'ia', 's1', '1'))[0]).toBe(OK);
  });

  it('place: OK new (least loaded, labels matched), OK existing, PENDING without capacity, OWNER_EXPIRING', async () => {
    await register('a', 'ia', 2);
    await register('b', 'ib', 2);
    await claim('a', 'ia', 's1');
    expect(await place('s2')).toEqual([OK, 'b', expect.any(String), 'http://b', 'new']);
    expect(await place('s2')).toEqual([OK, 'b', expect.any(String), 'http://b', 'existing']);
    expect(await place('s3', '{"zone":"us"}')).toEqual([PENDING, 1000]);
    expect(JSON.parse((await client.hget(k.sessions, 's3'))!)).toMatchObject({ owner: '', desired: 'running' });
    await register('c', 'ic', 1, 0, 100);
    await claim('c', 'ic', 's4');
    await sleep(120);
    expect((await place('s4'))[0]).toBe(OWNER_EXPIRING);
  });

  it('release: OK stop, OK handoff, PENDING handoff, NOT_OWNER, NOT_FOUND, FENCED', async () => {
    await register('a', 'ia', 3);
    await register('b', 'ib', 1);
    for (const s of ['s1', 's2', 's3']) await claim('a', 'ia', s);
    expect(await release('a', 'ia', 's1', 'stop')).toEqual([OK, '', expect.any(String), '']);
    expect(JSON.parse((await client.hget(k.sessions, 's1'))!)).toMatchObject({ owner: '', desired: 'stopped', status: 'STOPPED' });
    expect(await release('a', 'ia', 's2', 'handoff')).toEqual([OK, 'b', expect.any(String), 'http://b']);
    expect(await release('a', 'ia', 's3', 'handoff')).toEqual([PENDING, 1000]);
    expect(await release('a', 'ia', 's2', 'stop')).toEqual([NOT_OWNER, 'b', expect.any(String)]);
    expect(await release('a', 'ia', 'nope', 'stop')).toEqual([NOT_FOUND]);
    expect(await release('a', 'bad', 's2', 'stop')).toEqual([FENCED, 'replaced']);
  });

  it('set-status: OK, NOT_OWNER, NOT_FOUND, FENCED', async () => {
    await register('a', 'ia');
    await register('b', 'ib');
    await claim('a', 'ia', 's1');
    expect((await setStatus('a', 'ia', 's1'))[0]).toBe(OK);
    expect((await setStatus('b', 'ib', 's1'))[0]).toBe(NOT_OWNER);
    expect(await setStatus('a', 'ia', 'nope')).toEqual([NOT_FOUND]);
    expect((await setStatus('a', 'old', 's1'))[0]).toBe(FENCED);
  });

  it('sweep: orphans running sessions of a dead instance, skips FAILED and SCAN_QR_CODE, reaps the instance', async () => {
    await register('a', 'ia', 3, 0, 100);
    await register('b', 'ib', 5, 0, 5000);
    for (const s of ['s1', 's2', 's3']) await claim('a', 'ia', s);
    await run(scripts.setStatus, [k.instances, k.instanceInfo, k.sessions], ['a', 'ia', 's2', 'FAILED', '', k.events]);
    await run(scripts.setStatus, [k.instances, k.instanceInfo, k.sessions], ['a', 'ia', 's3', 'SCAN_QR_CODE', '', k.events]);
    expect(await sweep()).toEqual([OK, 0, 0, 0, 0]);
    await sleep(100 + DELAY + 20);
    expect(await sweep()).toEqual([OK, 1, 3, 0, 1]);
    const s = await client.hgetall(k.sessions);
    expect(JSON.parse(s.s1!)).toMatchObject({ owner: 'b', prev: 'a' });
    expect(JSON.parse(s.s2!)).toMatchObject({ owner: '', status: 'FAILED' });
    expect(JSON.parse(s.s3!)).toMatchObject({ owner: '', status: 'SCAN_QR_CODE' });
    expect(await client.zscore(k.instances, 'a')).toBeNull();
  });

  it('deregister, set-draining, lookup, instances and owned answer OK, NOT_FOUND and FENCED', async () => {
    await register('a', 'ia', 2);
    await claim('a', 'ia', 's1');
    expect(await run(scripts.lookup, [k.instances, k.instanceInfo, k.sessions], ['s1'])).toEqual([
      OK,
      'a',
      expect.any(String),
      'STARTING',
      'running',
      'http://a',
      '1',
      expect.any(Number),
    ]);
    expect(await run(scripts.lookup, [k.instances, k.instanceInfo, k.sessions], ['nope'])).toEqual([NOT_FOUND]);
    const [code, , json] = await run(scripts.instances, [k.instances, k.instanceInfo, k.owned], []);
    expect(code).toBe(OK);
    expect(JSON.parse(json as string)).toEqual([expect.objectContaining({ id: 'a', load: 1, max: 2, live: true })]);
    expect(await run(scripts.owned, [k.instances, k.instanceInfo, k.owned, k.sessions], ['a', 'ia', 10])).toEqual([
      OK,
      's1',
      expect.any(String),
    ]);
    expect(await run(scripts.owned, [k.instances, k.instanceInfo, k.owned, k.sessions], ['a', 'old', 10])).toEqual([FENCED, 'replaced']);
    expect(await run(scripts.setDraining, [k.instances, k.instanceInfo], ['a', 'old', '1'])).toEqual([FENCED, 'replaced']);
    expect(await run(scripts.deregister, [k.instances, k.instanceInfo, k.owned, k.sessions, k.pending], ['a', 'old', k.events])).toEqual([
      FENCED,
      'replaced',
    ]);
    expect(await run(scripts.deregister, [k.instances, k.instanceInfo, k.owned, k.sessions, k.pending], ['a', 'ia', k.events])).toEqual([
      OK,
      1,
    ]);
    expect(await client.zscore(k.pending, 's1')).not.toBeNull();
    // Nothing runs it any more: the record says so instead of keeping the departed owner's status.
    expect(JSON.parse((await client.hget(k.sessions, 's1'))!)).toMatchObject({ owner: '', status: 'STOPPED', prev: 'a' });
  });

  it('deregister leaves FAILED and SCAN_QR_CODE sessions ownerless and unqueued, like the sweep', async () => {
    await register('a', 'ia', 3);
    for (const s of ['s1', 's2']) await claim('a', 'ia', s);
    await run(scripts.setStatus, [k.instances, k.instanceInfo, k.sessions], ['a', 'ia', 's1', 'FAILED', '', k.events]);
    await run(scripts.setStatus, [k.instances, k.instanceInfo, k.sessions], ['a', 'ia', 's2', 'SCAN_QR_CODE', '', k.events]);
    expect(await run(scripts.deregister, [k.instances, k.instanceInfo, k.owned, k.sessions, k.pending], ['a', 'ia', k.events])).toEqual([
      OK,
      0,
    ]);
    expect(await client.zcard(k.pending)).toBe(0);
    expect(JSON.parse((await client.hget(k.sessions, 's1'))!)).toMatchObject({ owner: '', status: 'FAILED' });
  });

  it('a draining instance still answers OK for a session it holds', async () => {
    await register('a', 'ia', 3);
    await claim('a', 'ia', 's1');
    await run(scripts.setDraining, [k.instances, k.instanceInfo], ['a', 'ia', '1']);
    expect(await claim('a', 'ia', 's1')).toEqual([OK, expect.any(String), 'held', 'a']);
    expect(await claim('a', 'ia', 's2')).toEqual([DRAINING]);
  });

  it('place announces the removal of a dead owner even when nobody can take the session', async () => {
    await register('a', 'ia', 1, 0, 100);
    await claim('a', 'ia', 's1');
    await sleep(100 + DELAY + 20);
    const sub = client.duplicate();
    const messages: string[] = [];
    sub.on('message', (_c, m) => messages.push(m));
    await sub.subscribe(k.events);
    expect(await place('s1')).toEqual([PENDING, 1000]);
    await sleep(50);
    sub.disconnect();
    expect(messages.map((m) => JSON.parse(m))).toEqual([expect.objectContaining({ s: 's1', o: '', st: 'STOPPED' })]);
  });

  it('epochs stay above every earlier epoch after Redis loses the session record', async () => {
    await register('a', 'ia', 2);
    const [, first] = await claim('a', 'ia', 's1');
    await client.hdel(k.sessions, 's1');
    await client.zrem(k.owned, 'a:s1');
    // The floor is server ms * 1024, so it assumes the data loss lasted at least 1 ms (a restart takes far longer).
    await sleep(2);
    const [, second] = await claim('a', 'ia', 's1');
    expect(BigInt(second as string) > BigInt(first as string)).toBe(true);
  });
});

describe('Lua script files', () => {
  const dir = join(import.meta.dirname, '..', '..', 'lua');
  it.each(readdirSync(dir).filter((f) => f.endsWith('.lua')))('%s declares exactly as many KEYS as its name says', (file) => {
    const source = readFileSync(join(dir, file), 'utf8');
    const declared = new Set([...source.matchAll(/^\s*KEYS\[(\d+)\]/gm)].map((m) => m[1]));
    const used = new Set([...source.matchAll(/KEYS\[(\d+)\]/g)].map((m) => m[1]));
    const n = Number(/-(\d+)\.lua$/.exec(file)![1]);
    expect(declared.size).toBe(n);
    expect([...used].every((i) => Number(i) <= n)).toBe(true);
    expect(source).toMatch(/Reply:/);
  });
});
