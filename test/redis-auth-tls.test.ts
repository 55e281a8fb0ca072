// Redis with a password, an ACL user, TLS, and a Cluster with both: wafleet connects with what the `redis` option
// carries, and refuses loudly (never hangs, never shows the password) when Redis refuses it.
import { createFleetClient, type OwnerChange } from '@wafleet/client';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFleet, createSessionData, redisBlobBackend, type Fleet, type WafleetError } from '@wafleet/core';
import type { RedisOption } from '@wafleet/protocol';
import { killAll, startRedis, startRedisCluster, uniqueNamespace, waitUntil, type RedisServerHandle } from '@wafleet/test-utils';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_TIMING } from './helpers/fleet-harness.js';

const PASSWORD = 'p@ss w:rd/%1';
const servers: Array<{ stop(): Promise<void> }> = [];

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await killAll();
});

const withPassword = (url: string, user: string, password: string) =>
  url.replace('://', `://${encodeURIComponent(user)}:${encodeURIComponent(password)}@`);

function fleetOn(redis: RedisOption, namespace: string): Fleet {
  return createFleet({ redis, namespace, instanceId: 'a', url: 'http://a.invalid', maxSessions: 5, ...TEST_TIMING, quarantineMs: 0 });
}

/** A fleet starts, claims and is placed a session; a client looks the owner up and receives the pushes. */
async function roundTrip(namespace: string, instanceRedis: RedisOption, backendRedis: RedisOption = instanceRedis): Promise<void> {
  const fleet = fleetOn(instanceRedis, namespace);
  const client = createFleetClient({ redis: backendRedis, namespace });
  try {
    await fleet.start();
    const changes: OwnerChange[] = [];
    client.on('change', (c) => changes.push(c));
    await client.connect();
    const { epoch } = await fleet.claim('s1');
    await waitUntil(() => changes.some((c) => c.sessionId === 's1' && c.owner === 'a'), { message: 'no push for the claim' });
    expect(await client.lookup('s1')).toMatchObject({ owner: 'a', epoch, live: true });
    expect(await client.place('s2')).toMatchObject({ outcome: 'assigned', owner: 'a' });
    await waitUntil(() => fleet.owns('s2'), { message: 'the placement push did not reach the fleet' });
    await waitUntil(() => fleet.stats().renewals >= 2, { message: 'no heartbeat renewed' });
    expect(fleet.stats().renewalFailures).toBe(0);
    expect((await client.instances()).map((i) => i.id)).toEqual(['a']);
  } finally {
    await Promise.all([fleet.close(), client.close()]);
  }
}

/** A fleet saves, restores and drops a session's data in Redis chunks (the scripts plus SET, GET, DEL of chunk keys). */
async function sessionDataTrip(namespace: string, url: string): Promise<void> {
  const fleet = fleetOn(url, namespace);
  const redis = new Redis(url);
  const dir = mkdtempSync(join(tmpdir(), 'wafleet-acl-'));
  try {
    await fleet.start();
    await fleet.claim('s3');
    const data = createSessionData({ fleet, backend: redisBlobBackend({ redis, namespace, chunkBytes: 4096 }) });
    const bytes = randomBytes(10_000);
    writeFileSync(join(dir, 'in.zip'), bytes);
    await data.save('s3', join(dir, 'in.zip'));
    await data.save('s3', join(dir, 'in.zip'));
    expect(await data.restore('s3', join(dir, 'out.zip'))).toMatchObject({ version: 2 });
    expect(readFileSync(join(dir, 'out.zip')).equals(bytes)).toBe(true);
    await fleet.setStatus('s3', 'STOPPED', { desired: 'stopped', reason: 'logged out' });
    await data.drop('s3');
  } finally {
    await fleet.close();
    redis.disconnect();
  }
}

/** What `start()`/`connect()` rejected with; the test fails if either resolves. */
async function refusal(run: () => Promise<unknown>): Promise<WafleetError> {
  const err = await run().then(
    () => undefined,
    (e: WafleetError) => e,
  );
  expect(err, 'expected a rejection').toBeDefined();
  return err!;
}

/**
 * The recommended ACLs of docs/operations.md: every command wafleet sends (the scripts' commands included, which
 * Redis checks one by one), its namespace's keys and its channel, nothing else.
 */
const COMMANDS =
  '+evalsha +eval +subscribe +info +select +hdel +hget +hmget +hset +publish +time +zadd +zlexcount +zrange +zrangebylex +zrangebyscore +zrem +zscore';
const instanceAcl = (ns: string, password: string) => [
  `>${password}`,
  ...`on resetkeys ~{wafleet:${ns}}:* ~wafleet:${ns}:idem:* ~wafleet:${ns}:blob:* resetchannels &{wafleet:${ns}}:events* nocommands ${COMMANDS} +get +set +del +wait`.split(
    ' ',
  ),
];
const backendAcl = (ns: string, password: string) => [
  `>${password}`,
  ...`on resetkeys ~{wafleet:${ns}}:* resetchannels &{wafleet:${ns}}:events* nocommands ${COMMANDS}`.split(' '),
];

describe('Redis with requirepass', () => {
  let server: RedisServerHandle;

  it('works with the percent-encoded password in the URL', async () => {
    server = await startRedis({ password: PASSWORD });
    servers.push(server);
    expect(server.url).toContain(encodeURIComponent(PASSWORD));
    await roundTrip(uniqueNamespace('pass'), server.url);
  });

  it('start() rejects with WAFLEET_REDIS_AUTH naming WRONGPASS or NOAUTH, without the password, and does not hang', async () => {
    const plain = `redis://127.0.0.1:${server.port}`;
    const wrong = await refusal(() => fleetOn(withPassword(plain, 'default', 'not-the-s3cret'), uniqueNamespace('x')).start());
    expect(wrong).toMatchObject({ code: 'WAFLEET_REDIS_AUTH', message: expect.stringMatching(/WRONGPASS/) });
    expect(wrong.message).not.toContain('not-the-s3cret');
    expect(wrong.message).toContain(`redis://default@127.0.0.1:${server.port}`);
    const missing = await refusal(() => fleetOn(plain, uniqueNamespace('x')).start());
    expect(missing).toMatchObject({ code: 'WAFLEET_REDIS_AUTH', message: expect.stringMatching(/NOAUTH/) });
    const client = createFleetClient({ redis: withPassword(plain, 'default', 'not-the-s3cret') });
    const fromClient = await refusal(() => client.lookup('s1'));
    await client.close();
    expect(fromClient).toMatchObject({ code: 'WAFLEET_REDIS_AUTH' });
    expect(fromClient.message).not.toContain('not-the-s3cret');
  });

  it('an ACL user with the documented instance and backend rules is enough, on database 0 and on database 3', async () => {
    for (const db of [0, 3]) {
      const ns = uniqueNamespace('acl');
      const admin = server.client();
      await admin.call('ACL', 'SETUSER', `inst-${ns}`, ...instanceAcl(ns, 'inst pw:@/'));
      await admin.call('ACL', 'SETUSER', `back-${ns}`, ...backendAcl(ns, 'back-pw'));
      await admin.call('ACL', 'LOG', 'RESET');
      const url = (user: string, pw: string) => `${withPassword(`redis://127.0.0.1:${server.port}`, user, pw)}${db ? `/${db}` : ''}`;
      await roundTrip(ns, url(`inst-${ns}`, 'inst pw:@/'), url(`back-${ns}`, 'back-pw'));
      await sessionDataTrip(ns, url(`inst-${ns}`, 'inst pw:@/'));
      // Nothing wafleet sent was refused (a refusal would also show as a failure above, unless retried away).
      expect(await admin.call('ACL', 'LOG')).toEqual([]);
    }
  });
});

describe('Redis with TLS only', () => {
  it('works with `{ url: rediss://…, tls: { ca } }` and a private CA', async () => {
    const server = await startRedis({ tls: true });
    servers.push(server);
    expect(server.url).toMatch(/^rediss:\/\//);
    await roundTrip(uniqueNamespace('tls'), { url: server.url, tls: { ca: server.tls!.ca } });
    const untrusted = await refusal(() => fleetOn(server.url, uniqueNamespace('x')).start());
    expect(untrusted).toMatchObject({ code: 'WAFLEET_REDIS_CONNECT', message: expect.stringMatching(/certificate/) });
  });

  it('works with TLS and a password together', async () => {
    const server = await startRedis({ tls: true, password: PASSWORD });
    servers.push(server);
    await roundTrip(uniqueNamespace('tls-pass'), { url: server.url, tls: { ca: server.tls!.ca, servername: 'localhost' } });
  });
});

describe('Redis Cluster with a password and TLS', () => {
  it('a plain list of node URLs carries the password to every node', async () => {
    const cluster = await startRedisCluster({ masters: 2, password: PASSWORD });
    servers.push(cluster);
    await roundTrip(uniqueNamespace('cluster-pass'), cluster.urls);
  });

  it('works from the node URL list with `{ nodes, tls }`, and refuses a wrong password loudly', async () => {
    const cluster = await startRedisCluster({ masters: 3, password: PASSWORD, tls: true });
    servers.push(cluster);
    expect(cluster.urls.every((u) => u.startsWith(`rediss://:${encodeURIComponent(PASSWORD)}@`))).toBe(true);
    await roundTrip(uniqueNamespace('cluster-sec'), { nodes: cluster.urls, tls: { ca: cluster.tls!.ca } });
    const wrong = cluster.urls.map((u) => u.replace(encodeURIComponent(PASSWORD), 'not-the-s3cret'));
    const err = await refusal(() => fleetOn({ nodes: wrong, tls: { ca: cluster.tls!.ca } }, uniqueNamespace('x')).start());
    expect(err).toMatchObject({ code: 'WAFLEET_REDIS_AUTH', message: expect.stringMatching(/WRONGPASS/) });
    expect(err.message).not.toContain('not-the-s3cret');
  });
});
