import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { redisForTests, sleep, uniqueNamespace, type TestRedis } from '@wafleet/test-utils';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { inboxKeys, registryKeys, sessionBlobKey, type RegistryKeys } from './keys.js';
import { runScript, type Script } from './redis.js';
import { listInstances } from './queries.js';
import { parseReply, ReplyCode } from './reply-codes.js';
import * as lua from './scripts.generated.js';
import { scripts } from './scripts.generated.js';

const {
  OK,
  PENDING,
  FENCED,
  DUPLICATE,
  OWNED_ELSEWHERE,
  OWNER_EXPIRING,
  CAPACITY,
  QUARANTINE,
  NOT_OWNER,
  DRAINING,
  NOT_FOUND,
  UPLOAD_EXPIRED,
  BREAKER_OPEN,
} = ReplyCode;

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

/** register(id, inc, max, quarantineMs, ttl, the instance's own timing facts) */
const register = (id: string, inc: string, max = 2, quarantine = 0, ttl = TTL, facts = { delay: DELAY, retry: 1000, retryMax: 30000 }) =>
  run(scripts.register, all(), [
    id,
    inc,
    `http://${id}`,
    max,
    '{"zone":"eu"}',
    ttl,
    facts.delay,
    'managed',
    quarantine,
    k.events,
    facts.retry,
    facts.retryMax,
  ]);
const heartbeat = (id: string, inc: string, memory = '', sweepIntervalMs = 0) =>
  run(scripts.heartbeat, [k.instances, k.instanceInfo, k.owned, k.meta], [id, inc, TTL, memory, sweepIntervalMs]);
const claim = (id: string, inc: string, sid: string, reassert = '0', metadata = '') =>
  run(scripts.claim, all(), [id, inc, sid, reassert, '0', k.events, '', metadata]);
const place = (sid: string, labels = '', exclude = '', metadata = '') =>
  run(scripts.place, all(), [sid, labels, exclude, k.events, metadata]);
const release = (id: string, inc: string, sid: string, mode: 'stop' | 'handoff', reason = '') =>
  run(scripts.release, all(), [id, inc, sid, mode, k.events, reason]);
const setStatus = (id: string, inc: string, sid: string, status = 'WORKING', desired = '', reason = '') =>
  run(scripts.setStatus, [k.instances, k.instanceInfo, k.sessions], [id, inc, sid, status, desired, k.events, reason]);
const setMetadata = (id: string, inc: string, sid: string, metadata: string) =>
  run(scripts.setMetadata, [k.instances, k.instanceInfo, k.sessions], [id, inc, sid, metadata, k.events]);
const stop = (sid: string, reason = 'stopped by request') => run(scripts.stop, all(), [sid, reason, k.events]);
const lookup = (sid: string) => run(scripts.lookup, [k.instances, k.instanceInfo, k.sessions], [sid]);
const record = async (sid: string) => JSON.parse((await client.hget(k.sessions, sid))!) as Record<string, unknown>;
const sweep = () => run(scripts.sweep, all(), [100, k.events]);
const serverNow = async () => {
  const [s, us] = await client.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
};

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
    const era = await client.hget(k.meta, 'era');
    // No quarantine, no replica (a private standalone Redis).
    expect(await heartbeat('a', 'inc1')).toEqual([OK, expect.any(Number), 1, era, 0, 0, 0]);
    expect(await heartbeat('b', 'x')).toEqual([FENCED, 'missing', era]);
    expect(await heartbeat('a', 'other')).toEqual([FENCED, 'replaced', era]);
    await sleep(TTL + 20);
    expect(await heartbeat('a', 'inc1')).toEqual([FENCED, 'expired', era]);
    expect(await heartbeat('a', 'inc1')).toEqual([FENCED, 'expired', era]);
  });

  it('claim: OK new and held, OWNED_ELSEWHERE, CAPACITY, DRAINING, FENCED', async () => {
    await register('a', 'ia', 1);
    await register('b', 'ib', 1);
    expect(await claim('a', 'ia', 's1')).toEqual([OK, expect.any(String), 'new', '']);
    expect(await claim('a', 'ia', 's1')).toEqual([OK, expect.any(String), 'held', 'a']);
    expect(await claim('b', 'ib', 's1')).toEqual([OWNED_ELSEWHERE, 'a', expect.any(String), 'http://a']);
    expect(await claim('a', 'ia', 's2')).toEqual([CAPACITY, 1, 1, 'sessions']);
    await run(scripts.setDraining, [k.instances, k.instanceInfo], ['b', 'ib', '1']);
    expect(await claim('b', 'ib', 's3')).toEqual([DRAINING]);
    expect(await claim('b', 'wrong', 's3')).toEqual([FENCED, 'replaced']);
    expect(await claim('z', 'iz', 's3')).toEqual([FENCED, 'expired']);
  });

  it('heartbeat with memory: a full memory budget refuses claims (CAPACITY memory) and placement skips the instance', async () => {
    await register('a', 'ia', 5);
    await register('b', 'ib', 5);
    expect((await heartbeat('a', 'ia', '{"used":300,"budget":300}'))[0]).toBe(OK);
    expect(JSON.parse((await client.hget(k.instanceInfo, 'a'))!).mem).toEqual({ used: 300, budget: 300 });
    expect(await claim('a', 'ia', 's1')).toEqual([CAPACITY, 0, 5, 'memory']);
    expect(await place('s2')).toEqual([OK, 'b', expect.any(String), 'http://b', 'new']);
    // '' leaves the recorded figure; a lower one lets it take sessions again, preferring the emptier instance.
    expect((await heartbeat('a', 'ia'))[0]).toBe(OK);
    expect(JSON.parse((await client.hget(k.instanceInfo, 'a'))!).mem).toEqual({ used: 300, budget: 300 });
    expect((await heartbeat('a', 'ia', '{"used":100,"budget":300}'))[0]).toBe(OK);
    expect((await claim('a', 'ia', 's1'))[0]).toBe(OK);
    // a: 1/5 sessions but a third of its memory; b: 1/5: a tie on sessions goes to the one with memory to spare? a's
    // ratio is max(0.2, 0.33) = 0.33 against b's 0.2, so b.
    expect(await place('s3')).toEqual([OK, 'b', expect.any(String), 'http://b', 'new']);
  });

  it('breaker: counts distinct failing sessions, opens once, permits probeStarts per round (BREAKER_OPEN between), closes on a success', async () => {
    const keys = [k.breaker, k.breakerStarts];
    // window 10 s, 3 sessions, 80 %, probe round 200 ms, 1 probe per round
    const breaker = (op: string, sid = '', kind = '') => run(scripts.breaker, keys, [op, sid, kind, 10_000, 3, 80, 200, 1]);
    expect(await breaker('permit')).toEqual([OK, 'closed', '', '']);
    expect(await breaker('fail', 's1', 'boom')).toEqual([OK, 'closed', '', '']);
    expect(await breaker('fail', 's1', 'boom')).toEqual([OK, 'closed', '', '']);
    expect(await breaker('fail', 's2', 'boom')).toEqual([OK, 'closed', '', '']);
    expect(await breaker('fail', 's3', 'boom')).toEqual([OK, 'open', 'opened', 'boom']);
    expect(await breaker('fail', 's4', 'boom')).toEqual([OK, 'open', '', 'boom']);
    expect(await breaker('state')).toEqual([OK, 'open', '', 'boom']);
    const [code, kind, wait] = await breaker('permit');
    expect([code, kind]).toEqual([BREAKER_OPEN, 'boom']);
    expect(wait).toBeGreaterThan(0);
    await sleep(Number(wait) + 10);
    expect(await breaker('permit')).toEqual([OK, 'open', 'probe', 'boom']);
    expect((await breaker('permit'))[0]).toBe(BREAKER_OPEN);
    expect(await breaker('ok', 's1')).toEqual([OK, 'closed', 'closed', 'boom']);
    expect(await breaker('ok', 's2')).toEqual([OK, 'closed', '', '']);
    expect(await client.zcard(k.breakerStarts)).toBe(1);
  });

  it('inbox-mark: records ids as seen, moves cursors and the watermark only forward and only with advance', async () => {
    const { seen, cursors } = inboxKeys(k.namespace, 's1');
    const keys = [seen, cursors];
    const mark = (advance: string, watermark: string, messages: unknown[]) =>
      run(scripts.inboxMark, keys, [100, 60_000, advance, watermark, JSON.stringify(messages)]);
    expect(await mark('0', '', [['m1', 'c1', 1000]])).toEqual([OK, 1]);
    expect(await client.hgetall(keys[1]!)).toEqual({});
    expect(
      await mark('1', '5000', [
        ['m2', 'c1', 2000],
        ['m1', 'c1', 1000],
      ]),
    ).toEqual([OK, 1]);
    expect(await client.hgetall(keys[1]!)).toEqual({ c1: '{"id":"m2","ts":"2000"}', '*': '5000' });
    // Older ones never move a cursor or the watermark back.
    expect(await mark('1', '4000', [['m0', 'c1', 500]])).toEqual([OK, 1]);
    expect(await client.hgetall(keys[1]!)).toEqual({ c1: '{"id":"m2","ts":"2000"}', '*': '5000' });
    expect(await client.zrange(keys[0]!, 0, -1)).toEqual(['m0', 'm1', 'm2']);
    expect(await client.pttl(keys[0]!)).toBeGreaterThan(50_000);
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

  it('heartbeat hands out one sweep per interval to whichever renewal finds it due, never to a non-sweeper', async () => {
    await register('a', 'ia');
    await register('b', 'ib');
    // The first renewal after it is due claims it; the others in the same interval do not.
    expect((await heartbeat('a', 'ia', '', 250))[6]).toBe(1);
    expect((await heartbeat('b', 'ib', '', 250))[6]).toBe(0);
    expect((await heartbeat('a', 'ia', '', 250))[6]).toBe(0);
    expect(await client.hget(k.meta, 'sweptBy')).toBe('a');
    await sleep(260);
    // Due again: b's renewal claims it (a could have died meanwhile); an instance that does not sweep never does.
    expect((await heartbeat('b', 'ib', '', 0))[6]).toBe(0);
    expect((await heartbeat('b', 'ib', '', 250))[6]).toBe(1);
    expect(await client.hget(k.meta, 'sweptBy')).toBe('b');
  });

  it('a new replication id (a promoted replica, a restart from the files) starts a new era with a quarantine', async () => {
    // Leases of 1 s outlive the quarantines of 200 ms this test waits out.
    const Q = 200;
    await register('a', 'ia', 2, Q, 1000);
    await register('b', 'ib', 2, Q, 1000);
    await sleep(Q + 20);
    expect((await claim('b', 'ib', 's1'))[0]).toBe(OK);
    const era = await client.hget(k.meta, 'era');
    expect(await client.hget(k.meta, 'replid')).toMatch(/^[0-9a-f]{40}$/);
    // The meta hash was written under another replication id: what a replica promoted by a failover holds.
    await client.hset(k.meta, 'replid', 'replication-id-of-the-old-master');
    const [code, , count, newEra, left] = await heartbeat('a', 'ia');
    expect([code, count]).toEqual([OK, 0]);
    expect(newEra).not.toBe(era);
    expect(left).toBeGreaterThan(Q / 2);
    expect(left).toBeLessThanOrEqual(Q);
    expect(await claim('a', 'ia', 's2')).toEqual([QUARANTINE, expect.any(Number)]);
    expect(await place('s3')).toEqual([QUARANTINE, expect.any(Number)]);
    expect((await sweep())[0]).toBe(QUARANTINE);
    // The instance that runs a session re-asserts it, even over a record naming another live owner (the record can be
    // older than a handoff the failover lost); outside a quarantine it could not.
    const [, , before] = await lookup('s1');
    const [reasserted, epoch, kind, previous] = await claim('a', 'ia', 's1', '1');
    expect([reasserted, kind, previous]).toEqual([OK, 'new', 'b']);
    expect(BigInt(epoch as string) > BigInt(before as string)).toBe(true);
    await sleep(Q + 20);
    expect((await claim('b', 'ib', 's1', '1'))[0]).toBe(OWNED_ELSEWHERE);
    // The same replication id again: the era stays.
    expect((await heartbeat('a', 'ia'))[3]).toBe(newEra);
    // Whichever script runs first on the new master starts the era: here a claim.
    await client.hset(k.meta, 'replid', 'another-old-master');
    expect(await claim('b', 'ib', 's4')).toEqual([QUARANTINE, expect.any(Number)]);
    expect(await client.hget(k.meta, 'era')).not.toBe(newEra);
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
    await register('a', 'ia', 4);
    await register('b', 'ib', 1);
    for (const s of ['s1', 's2', 's3']) await claim('a', 'ia', s);
    expect(await release('a', 'ia', 's1', 'stop', 'stopped by request')).toEqual([OK, '', expect.any(String), '']);
    expect(await record('s1')).toMatchObject({ owner: '', desired: 'stopped', status: 'STOPPED', reason: 'stopped by request' });
    expect(await release('a', 'ia', 's2', 'handoff')).toEqual([OK, 'b', expect.any(String), 'http://b']);
    expect(await release('a', 'ia', 's3', 'handoff')).toEqual([PENDING, 1000]);
    expect(await release('a', 'ia', 's2', 'stop')).toEqual([NOT_OWNER, 'b', expect.any(String)]);
    // A handoff does not start elsewhere what waits for a human.
    await claim('a', 'ia', 's4');
    await setStatus('a', 'ia', 's4', 'FAILED', 'stopped', 'restarts exhausted: crash');
    expect(await release('a', 'ia', 's4', 'handoff')).toEqual([OK, '', expect.any(String), '']);
    expect(await record('s4')).toMatchObject({ owner: '', status: 'FAILED', desired: 'stopped', reason: 'restarts exhausted: crash' });
    expect(await client.zscore(k.pending, 's4')).toBeNull();
    expect(await release('a', 'ia', 'nope', 'stop')).toEqual([NOT_FOUND]);
    expect(await release('a', 'bad', 's2', 'stop')).toEqual([FENCED, 'replaced']);
  });

  it('set-status: OK (a reason recorded with desired stopped, cleared with desired running), NOT_OWNER, NOT_FOUND, FENCED', async () => {
    await register('a', 'ia');
    await register('b', 'ib');
    await claim('a', 'ia', 's1');
    expect((await setStatus('a', 'ia', 's1'))[0]).toBe(OK);
    expect((await setStatus('a', 'ia', 's1', 'FAILED', 'stopped', 'restarts exhausted: crash'))[0]).toBe(OK);
    expect(await record('s1')).toMatchObject({ status: 'FAILED', desired: 'stopped', reason: 'restarts exhausted: crash' });
    // A status without a desired state keeps both.
    expect((await setStatus('a', 'ia', 's1', 'FAILED'))[0]).toBe(OK);
    expect(await record('s1')).toMatchObject({ desired: 'stopped', reason: 'restarts exhausted: crash' });
    expect((await setStatus('a', 'ia', 's1', 'STARTING', 'running'))[0]).toBe(OK);
    expect(await record('s1')).toMatchObject({ status: 'STARTING', desired: 'running' });
    expect(await record('s1')).not.toHaveProperty('reason');
    expect((await setStatus('b', 'ib', 's1'))[0]).toBe(NOT_OWNER);
    expect(await setStatus('a', 'ia', 'nope')).toEqual([NOT_FOUND]);
    expect((await setStatus('a', 'old', 's1'))[0]).toBe(FENCED);
  });

  it('sweep: adopts every session of a dead instance that should run (WORKING, STARTING, FAILED restart pending, SCAN_QR_CODE), not one that gave up, and reaps the instance', async () => {
    await register('a', 'ia', 5, 0, 100);
    await register('b', 'ib', 5, 0, 5000);
    for (const s of ['s1', 's2', 's3', 's4', 's5']) await claim('a', 'ia', s);
    await setStatus('a', 'ia', 's1', 'WORKING');
    await setStatus('a', 'ia', 's3', 'FAILED');
    await setStatus('a', 'ia', 's4', 'SCAN_QR_CODE');
    await setStatus('a', 'ia', 's5', 'FAILED', 'stopped', 'restarts exhausted: start deadline passed');
    expect(await sweep()).toEqual([OK, 0, 0, 0, 0]);
    await sleep(100 + DELAY + 20);
    const swept = await sweep();
    expect(swept.slice(0, 5)).toEqual([OK, 4, 5, 0, 1]);
    // For each adopted session: ms from the dead owner's lease deadline to its new assignment (about the adoption delay).
    const delays = swept.slice(5).map(Number);
    expect(delays).toHaveLength(4);
    for (const ms of delays) expect(ms).toBeGreaterThanOrEqual(DELAY);
    for (const sid of ['s1', 's2', 's3', 's4']) expect(await record(sid)).toMatchObject({ owner: 'b', prev: 'a', status: 'STARTING' });
    for (const sid of ['s1', 's2', 's3', 's4']) expect(await record(sid)).not.toHaveProperty('lostAt');
    // The given-up session keeps its status and reason, ownerless and out of the placement queue.
    expect(await record('s5')).toMatchObject({
      owner: '',
      status: 'FAILED',
      desired: 'stopped',
      reason: 'restarts exhausted: start deadline passed',
    });
    expect(await client.zscore(k.pending, 's5')).toBeNull();
    expect((await lookup('s5')).slice(0, 5)).toEqual([OK, '', expect.any(String), 'FAILED', 'stopped']);
    expect((await lookup('s5'))[8]).toBe('restarts exhausted: start deadline passed');
    expect(await client.zscore(k.instances, 'a')).toBeNull();
  });

  it('deregister, set-draining, lookup, instances and owned answer OK, NOT_FOUND and FENCED', async () => {
    await register('a', 'ia', 2);
    await claim('a', 'ia', 's1');
    expect(await lookup('s1')).toEqual([OK, 'a', expect.any(String), 'STARTING', 'running', 'http://a', '1', expect.any(Number), '', '']);
    expect(await run(scripts.lookup, [k.instances, k.instanceInfo, k.sessions], ['nope'])).toEqual([NOT_FOUND]);
    const [code, , json] = await run(scripts.instances, [k.instances, k.instanceInfo, k.owned], []);
    expect(code).toBe(OK);
    expect(JSON.parse(json as string)).toEqual([expect.objectContaining({ id: 'a', load: 1, max: 2, live: true })]);
    expect(await run(scripts.owned, [k.instances, k.instanceInfo, k.owned, k.sessions, k.meta], ['a', 'ia', 10])).toEqual([
      OK,
      await client.hget(k.meta, 'era'),
      's1',
      expect.any(String),
    ]);
    expect(await run(scripts.owned, [k.instances, k.instanceInfo, k.owned, k.sessions, k.meta], ['a', 'old', 10])).toEqual([
      FENCED,
      'replaced',
    ]);
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

  it('deregister queues FAILED (restart pending) and SCAN_QR_CODE sessions and leaves a given-up one ownerless with its reason, like the sweep', async () => {
    await register('a', 'ia', 3);
    for (const s of ['s1', 's2', 's3']) await claim('a', 'ia', s);
    await setStatus('a', 'ia', 's1', 'FAILED');
    await setStatus('a', 'ia', 's2', 'SCAN_QR_CODE');
    await setStatus('a', 'ia', 's3', 'FAILED', 'stopped', 'restarts exhausted: crash');
    expect(await run(scripts.deregister, [k.instances, k.instanceInfo, k.owned, k.sessions, k.pending], ['a', 'ia', k.events])).toEqual([
      OK,
      2,
    ]);
    expect((await client.zrange(k.pending, 0, -1)).sort()).toEqual(['s1', 's2']);
    expect(await record('s1')).toMatchObject({ owner: '', status: 'STOPPED', desired: 'running' });
    expect(await record('s3')).toMatchObject({ owner: '', status: 'FAILED', desired: 'stopped', reason: 'restarts exhausted: crash' });
  });

  it('claim and place store metadata as given, keep it when omitted; place clears the reason of a session that gave up', async () => {
    await register('a', 'ia', 3);
    // Stored as text: big numbers, empty arrays and '/' come back exactly as written.
    const meta = '{"workspace":"w/1","ids":[],"n":12345678901234567890}';
    await claim('a', 'ia', 's1', '0', meta);
    expect(await record('s1')).toMatchObject({ metadata: meta });
    expect((await lookup('s1'))[9]).toBe(meta);
    await setStatus('a', 'ia', 's1', 'FAILED', 'stopped', 'restarts exhausted: crash');
    await release('a', 'ia', 's1', 'stop', 'restarts exhausted: crash');
    expect((await place('s1'))[0]).toBe(OK);
    const placed = await record('s1');
    expect(placed).toMatchObject({ owner: 'a', desired: 'running', status: 'STARTING', metadata: meta });
    expect(placed).not.toHaveProperty('reason');
    // The owner's claim of a session it holds replaces the metadata it gives.
    expect(await claim('a', 'ia', 's1', '0', '{"v":2}')).toEqual([OK, expect.any(String), 'held', 'a']);
    expect(await record('s1')).toMatchObject({ metadata: '{"v":2}' });
    expect(await place('s2', '', '', '{"a":1}')).toEqual([OK, 'a', expect.any(String), 'http://a', 'new']);
    expect(await record('s2')).toMatchObject({ metadata: '{"a":1}' });
  });

  it('set-metadata: OK for the owner, NOT_OWNER, NOT_FOUND, FENCED', async () => {
    await register('a', 'ia');
    await register('b', 'ib');
    await claim('a', 'ia', 's1', '0', '{"v":1}');
    expect(await setMetadata('a', 'ia', 's1', '{"v":2}')).toEqual([OK, expect.any(String)]);
    expect(await record('s1')).toMatchObject({ metadata: '{"v":2}' });
    expect(await setMetadata('b', 'ib', 's1', '{"v":3}')).toEqual([NOT_OWNER, 'a', expect.any(String)]);
    expect(await setMetadata('a', 'ia', 'nope', '{}')).toEqual([NOT_FOUND]);
    expect(await setMetadata('a', 'old', 's1', '{"v":3}')).toEqual([FENCED, 'replaced']);
    expect(await record('s1')).toMatchObject({ metadata: '{"v":2}' });
  });

  it('stop: OK for a pending session (leaves the queue, never placed), OWNED_ELSEWHERE, OWNER_EXPIRING, NOT_FOUND', async () => {
    await register('a', 'ia', 1, 0, 5000);
    await claim('a', 'ia', 's1');
    // No capacity anywhere: s2 waits for placement.
    expect(await place('s2')).toEqual([PENDING, 1000]);
    expect(await stop('s2')).toEqual([OK, expect.any(String)]);
    expect(await client.zscore(k.pending, 's2')).toBeNull();
    expect(await record('s2')).toMatchObject({ owner: '', desired: 'stopped', status: 'STOPPED', reason: 'stopped by request' });
    expect(await stop('s1')).toEqual([OWNED_ELSEWHERE, 'a', expect.any(String), 'http://a']);
    expect(await stop('nope')).toEqual([NOT_FOUND]);
    await register('c', 'ic', 1, 0, 100);
    await claim('c', 'ic', 's3');
    await sleep(120);
    expect(await stop('s3')).toEqual([OWNER_EXPIRING, expect.any(Number), 'c']);
    await sleep(DELAY);
    // The dead owner is past its adoption delay: the session is taken from it and stopped.
    expect(await stop('s3')).toEqual([OK, expect.any(String)]);
    expect(await record('s3')).toMatchObject({ owner: '', prev: 'c', desired: 'stopped' });
    expect(await client.zscore(k.owned, 'c:s3')).toBeNull();
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

describe('Lua scripts: timing facts come from the registry', () => {
  it('register records the largest adoption delay and placement retry any instance registered; a smaller one never lowers them', async () => {
    await register('a', 'ia', 2, 0, TTL, { delay: 900, retry: 2000, retryMax: 40000 });
    await register('b', 'ib', 2, 0, TTL, { delay: 0, retry: 1, retryMax: 1 });
    expect(await client.hmget(k.meta, 'adoptionDelayMs', 'placementRetryMs', 'placementRetryMaxMs')).toEqual(['900', '2000', '40000']);
    await register('c', 'ic', 2, 0, TTL, { delay: 1200, retry: 500, retryMax: 60000 });
    expect(await client.hmget(k.meta, 'adoptionDelayMs', 'placementRetryMs', 'placementRetryMaxMs')).toEqual(['1200', '2000', '60000']);
  });

  it("claim, place, stop and sweep refuse a dead owner's session until its deadline + the registered delay, whatever the caller uses", async () => {
    // The owner registered with 600 ms; the survivor with 0: the larger one governs every adoption decision.
    await register('a', 'ia', 4, 0, 100, { delay: 600, retry: 1000, retryMax: 30000 });
    await register('b', 'ib', 4, 0, 5000, { delay: 0, retry: 1000, retryMax: 30000 });
    for (const s of ['s1', 's2', 's3', 's4']) await claim('a', 'ia', s);
    const deadline = Number(await client.zscore(k.instances, 'a'));
    while ((await serverNow()) <= deadline) await sleep(10);
    expect(await claim('b', 'ib', 's1')).toEqual([OWNER_EXPIRING, expect.any(Number), 'a']);
    expect(await place('s2')).toEqual([OWNER_EXPIRING, expect.any(Number), 'a']);
    expect(await stop('s3')).toEqual([OWNER_EXPIRING, expect.any(Number), 'a']);
    expect(await sweep()).toEqual([OK, 0, 0, 0, 0]);
    expect(await serverNow()).toBeLessThan(deadline + 600);
    // The same register from the dead owner's id waits for the same delay.
    expect((await register('a', 'ia2', 4, 0, 100, { delay: 0, retry: 1000, retryMax: 30000 }))[0]).toBe(DUPLICATE);
    for (const s of ['s1', 's2', 's3', 's4']) expect(await record(s)).toMatchObject({ owner: 'a' });

    while ((await serverNow()) < deadline + 600) await sleep(10);
    expect((await claim('b', 'ib', 's1'))[0]).toBe(OK);
    expect(await place('s2')).toEqual([OK, 'b', expect.any(String), 'http://b', 'new']);
    expect(await stop('s3')).toEqual([OK, expect.any(String)]);
    expect((await sweep()).slice(0, 5)).toEqual([OK, 1, 1, 0, 1]);
    for (const s of ['s1', 's2', 's4']) expect((await record(s)).since as number).toBeGreaterThanOrEqual(deadline + 600);
  });

  it('place, release and sweep retry a placement that found no capacity after the registered retry delays', async () => {
    await register('a', 'ia', 1, 0, 5000, { delay: DELAY, retry: 700, retryMax: 900 });
    await register('b', 'ib', 1, 0, 5000, { delay: DELAY, retry: 1, retryMax: 1 });
    await claim('a', 'ia', 's1');
    await claim('b', 'ib', 's2');
    expect(await place('s3')).toEqual([PENDING, 700]);
    expect(await release('a', 'ia', 's1', 'handoff')).toEqual([PENDING, 700]);
    await claim('a', 'ia', 's4');
    await client.zadd(k.pending, 0, 's1', 0, 's3');
    const before = await serverNow();
    expect(await sweep()).toEqual([OK, 0, 0, 2, 0]);
    // First failed attempt: the base delay; the second doubles it up to the registered maximum.
    expect(Number(await client.zscore(k.pending, 's3'))).toBeGreaterThanOrEqual(before + 700);
    await client.zadd(k.pending, 0, 's3');
    await sweep();
    const due = Number(await client.zscore(k.pending, 's3'));
    expect(due - (await serverNow())).toBeGreaterThan(800);
    expect(due - (await serverNow())).toBeLessThanOrEqual(900);
  });
});

describe('Lua scripts: session data (every reply code)', () => {
  const begin = (id: string, inc: string, sid: string, epoch: string, upload: string) =>
    run(scripts.dataBegin, [k.instances, k.instanceInfo, k.sessions, k.dataUploads], [id, inc, sid, epoch, upload]);
  const commit = (id: string, inc: string, sid: string, epoch: string, upload: string, timeoutMs = 60_000) =>
    run(
      scripts.dataCommit,
      [k.instances, k.instanceInfo, k.sessions, k.data, k.dataUploads],
      [id, inc, sid, epoch, upload, 42, 'ab'.repeat(32), timeoutMs],
    );
  const drop = (sid: string) => run(scripts.dataDrop, [k.sessions, k.data, k.dataUploads], [sid]);
  const pointer = async (sid: string) => JSON.parse((await client.hget(k.data, sid)) ?? 'null') as Record<string, unknown> | null;

  it('data-begin: OK with the server time, NOT_OWNER (another owner, or an older epoch), NOT_FOUND, FENCED', async () => {
    await register('a', 'ia');
    await register('b', 'ib');
    const [, epoch] = (await claim('a', 'ia', 's1')) as [number, string];
    const before = await serverNow();
    const ok = await begin('a', 'ia', 's1', epoch, 'u1');
    expect(ok).toEqual([OK, expect.any(Number)]);
    expect(ok[1]).toBeGreaterThanOrEqual(before);
    expect(await client.zscore(k.dataUploads, 's1/u1')).toBe(String(ok[1]));
    expect(await begin('b', 'ib', 's1', epoch, 'u2')).toEqual([NOT_OWNER, 'a', epoch]);
    expect(await begin('a', 'ia', 's1', '1', 'u3')).toEqual([NOT_OWNER, 'a', epoch]);
    expect(await begin('a', 'ia', 'nope', epoch, 'u4')).toEqual([NOT_FOUND]);
    expect(await begin('a', 'old', 's1', epoch, 'u5')).toEqual([FENCED, 'replaced']);
    expect(await client.zcard(k.dataUploads)).toBe(1);
  });

  it('data-commit: OK with increasing versions and the previous upload, the same answer to a resent commit, NOT_OWNER, NOT_FOUND, FENCED, UPLOAD_EXPIRED', async () => {
    await register('a', 'ia');
    await register('b', 'ib');
    const [, epoch] = (await claim('a', 'ia', 's1')) as [number, string];
    await begin('a', 'ia', 's1', epoch, 'u1');
    expect(await commit('a', 'ia', 's1', epoch, 'u1')).toEqual([OK, 1, expect.any(Number), '']);
    expect(await pointer('s1')).toMatchObject({ version: 1, uploadId: 'u1', size: 42, sha256: 'ab'.repeat(32), epoch, writer: 'a' });
    expect(await client.zscore(k.dataUploads, 's1/u1')).toBeNull();
    await begin('a', 'ia', 's1', epoch, 'u2');
    expect(await commit('a', 'ia', 's1', epoch, 'u2')).toEqual([OK, 2, expect.any(Number), 'u1']);
    // The same commit again (a client resending it after a lost reply): the same answer, nothing changes.
    const [, , committedAt] = (await commit('a', 'ia', 's1', epoch, 'u2')) as [number, number, number, string];
    expect(await commit('a', 'ia', 's1', epoch, 'u2')).toEqual([OK, 2, committedAt, 'u1']);
    expect(await pointer('s1')).toMatchObject({ version: 2, uploadId: 'u2' });
    // Never begun, or the version before the current one: not pending.
    expect(await commit('a', 'ia', 's1', epoch, 'never')).toEqual([UPLOAD_EXPIRED]);
    expect(await commit('a', 'ia', 's1', epoch, 'u1')).toEqual([UPLOAD_EXPIRED]);
    await begin('a', 'ia', 's1', epoch, 'u3');
    expect(await commit('b', 'ib', 's1', epoch, 'u3')).toEqual([NOT_OWNER, 'a', epoch]);
    expect(await commit('a', 'ia', 's1', '1', 'u3')).toEqual([NOT_OWNER, 'a', epoch]);
    expect(await commit('a', 'ia', 'nope', epoch, 'u3')).toEqual([NOT_FOUND]);
    expect(await commit('a', 'old', 's1', epoch, 'u3')).toEqual([FENCED, 'replaced']);
    expect(await pointer('s1')).toMatchObject({ version: 2, uploadId: 'u2' });
  });

  it('data-commit refuses an owner whose lease expired while it uploaded, and one that lost the session to an adopter', async () => {
    await register('a', 'ia', 2, 0, 200);
    await register('b', 'ib', 2, 0, 5000);
    const [, epoch] = (await claim('a', 'ia', 's1')) as [number, string];
    await begin('a', 'ia', 's1', epoch, 'slow');
    await sleep(220);
    expect(await commit('a', 'ia', 's1', epoch, 'slow')).toEqual([FENCED, 'expired']);
    await sleep(DELAY);
    const [, adopted] = (await claim('b', 'ib', 's1')) as [number, string];
    await begin('b', 'ib', 's1', adopted, 'fresh');
    expect(await commit('b', 'ib', 's1', adopted, 'fresh')).toEqual([OK, 1, expect.any(Number), '']);
    expect(await commit('a', 'ia', 's1', epoch, 'slow')).toEqual([FENCED, 'expired']);
    expect(await pointer('s1')).toMatchObject({ uploadId: 'fresh', writer: 'b', epoch: adopted });
  });

  it("data-commit hands back this session's uploads older than the timeout, never another session's, and refuses them afterwards", async () => {
    await register('a', 'ia');
    const [, e1] = (await claim('a', 'ia', 's1')) as [number, string];
    const [, e2] = (await claim('a', 'ia', 's2')) as [number, string];
    await begin('a', 'ia', 's1', e1, 'crashed');
    await begin('a', 'ia', 's2', e2, 'other');
    await sleep(60);
    await begin('a', 'ia', 's1', e1, 'young');
    await begin('a', 'ia', 's1', e1, 'u1');
    expect(await commit('a', 'ia', 's1', e1, 'u1', 40)).toEqual([OK, 1, expect.any(Number), '', 'crashed']);
    expect((await client.zrange(k.dataUploads, 0, -1)).sort()).toEqual(['s1/young', 's2/other']);
    expect(await commit('a', 'ia', 's1', e1, 'crashed')).toEqual([UPLOAD_EXPIRED]);
  });

  it('data-drop: OK for a session that is stopped or unknown (with its pending uploads), OWNED_ELSEWHERE for one that should run', async () => {
    await register('a', 'ia');
    const [, epoch] = (await claim('a', 'ia', 's1')) as [number, string];
    await begin('a', 'ia', 's1', epoch, 'u1');
    await commit('a', 'ia', 's1', epoch, 'u1');
    await begin('a', 'ia', 's1', epoch, 'u2');
    expect(await drop('s1')).toEqual([OWNED_ELSEWHERE, 'a', epoch]);
    await setStatus('a', 'ia', 's1', 'STOPPED', 'stopped', 'logged out');
    expect(await drop('s1')).toEqual([OK, 'u1', 'u2']);
    expect(await pointer('s1')).toBeNull();
    expect(await client.zcard(k.dataUploads)).toBe(0);
    expect(await drop('s1')).toEqual([OK, '']);
    expect(await drop('never-seen')).toEqual([OK, '']);
    // An upload dropped meanwhile is never committed.
    expect(await commit('a', 'ia', 's1', epoch, 'u2')).toEqual([UPLOAD_EXPIRED]);
  });

  it('the typed callers name the values, and chunk keys stay outside the hash tag', async () => {
    await register('a', 'ia');
    const [, epoch] = (await claim('a', 'ia', 's1')) as [number, string];
    const ids = { instanceId: 'a', incarnation: 'ia', sessionId: 's1', epoch };
    expect(await lua.dataBegin(client, k, { ...ids, uploadId: 'u1' })).toEqual({ code: 'OK', startedAt: expect.any(Number) });
    expect(await lua.dataCommit(client, k, { ...ids, uploadId: 'u1', size: 1, digest: 'x', uploadTimeoutMs: 1000 })).toEqual({
      code: 'OK',
      version: 1,
      committedAt: expect.any(Number),
      previousUploadId: '',
      garbage: [],
    });
    expect(await lua.dataDrop(client, k, { sessionId: 's1' })).toEqual({ code: 'OWNED_ELSEWHERE', owner: 'a', epoch });
    expect(sessionBlobKey(k.namespace, 's1', 'u1', 3)).toBe(`wafleet:${k.namespace}:blob:s1:u1:3`);
    expect(sessionBlobKey(k.namespace, 's1', 'u1', 3)).not.toContain('{');
    expect(() => sessionBlobKey(k.namespace, 'a:b', 'u1', 0)).toThrow(expect.objectContaining({ code: 'WAFLEET_INVALID_ID' }));
    expect(() => sessionBlobKey(k.namespace, 's1', 'u/1', 0)).toThrow(expect.objectContaining({ code: 'WAFLEET_CONFIG' }));
    expect(() => sessionBlobKey(k.namespace, 's1', 'u1', -1)).toThrow(expect.objectContaining({ code: 'WAFLEET_CONFIG' }));
  });
});

describe('Lua script files', () => {
  const dir = join(import.meta.dirname, '..', 'lua');
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

describe('typed callers (generated from the script headers)', () => {
  it('pass KEYS and ARGV in header order and name the reply values', async () => {
    expect((await register('i1', 'inc1', 1))[0]).toBe(OK);
    const granted = await lua.claim(client, k, {
      instanceId: 'i1',
      incarnation: 'inc1',
      sessionId: 's1',
      reassert: '0',
      force: '0',
      labels: '',
      metadata: '',
    });
    expect(granted).toEqual({ code: 'OK', epoch: expect.stringMatching(/^\d+$/), kind: 'new', previousOwner: '' });
    const full = await lua.claim(client, k, {
      instanceId: 'i1',
      incarnation: 'inc1',
      sessionId: 's2',
      reassert: '0',
      force: '0',
      labels: '',
      metadata: '',
    });
    expect(full).toEqual({ code: 'CAPACITY', load: 1, maxSessions: 1, resource: 'sessions' });
    expect(await lua.lookup(client, k, { sessionId: 's1' })).toMatchObject({ code: 'OK', owner: 'i1', ownerUrl: 'http://i1', live: '1' });
    expect(await lua.lookup(client, k, { sessionId: 'nobody' })).toEqual({ code: 'NOT_FOUND' });
    const owned = await lua.owned(client, k, { instanceId: 'i1', incarnation: 'inc1', limit: 10 });
    expect(owned).toEqual({ code: 'OK', era: await client.hget(k.meta, 'era'), pairs: ['s1', (granted as { epoch: string }).epoch] });
  });

  it('refuse a reply the script cannot give (another version wrote it) with WAFLEET_REDIS_REPLY', () => {
    const shapes = { 1: { name: 'OK', fields: [['epoch', 's']] as const } };
    expect(parseReply('x', [1, 7], shapes)).toEqual({ code: 'OK', epoch: '7' });
    expect(() => parseReply('x', [-99, 'what'], shapes)).toThrow(expect.objectContaining({ code: 'WAFLEET_REDIS_REPLY' }));
    expect(() => parseReply('x', 'OK', shapes)).toThrow(expect.objectContaining({ code: 'WAFLEET_REDIS_REPLY' }));
  });

  it('listInstances answers [] for a namespace without instances (cjson encodes an empty list as {})', async () => {
    expect(await listInstances(client, k)).toEqual([]);
    await register('i1', 'inc1');
    expect((await listInstances(client, k)).map((i) => i.id)).toEqual(['i1']);
  });
});
