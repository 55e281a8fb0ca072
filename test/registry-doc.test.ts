// Checks docs/registry.md against a real fleet: the plain Redis commands it documents, run verbatim with a raw
// ioredis client (no wafleet code on the read side), must give the answers the fleet itself gives.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Redis } from 'ioredis';
import { createFleet, registryKeys, ReplyCode, type Fleet } from '@wafleet/core';
import { redisForTests, uniqueNamespace, waitUntil, type TestRedis } from '@wafleet/test-utils';

const DOC_URL = new URL('../docs/registry.md', import.meta.url);

/** The command blocks of docs/registry.md, character for character (checked by the first test). */
const DOCUMENTED = {
  getSession: 'HGET {wafleet:<ns>}:sessions <sessionId>',
  ownerSnapshot: [
    'MULTI',
    'HGET {wafleet:<ns>}:sessions <sessionId>',
    'HGET {wafleet:<ns>}:instance-info <owner>',
    'ZSCORE {wafleet:<ns>}:instances <owner>',
    'TIME',
    'EXEC',
  ].join('\n'),
  instancesSnapshot: [
    'MULTI',
    'ZRANGE {wafleet:<ns>}:instances 0 -1 WITHSCORES',
    'HGETALL {wafleet:<ns>}:instance-info',
    'TIME',
    'EXEC',
  ].join('\n'),
  load: 'ZLEXCOUNT {wafleet:<ns>}:owned [<id>: (<id>;',
  subscribe: 'SUBSCRIBE {wafleet:<ns>}:events',
} as const;

const INSTANCE_FIELDS = ['id', 'inc', 'url', 'max', 'labels', 'draining', 'mode', 'registeredAt'];
/** Written only by instances with a memory budget (none here). */
const OPTIONAL_INSTANCE_FIELDS = ['mem'];
const SESSION_FIELDS = [
  'owner',
  'inc',
  'epoch',
  'status',
  'desired',
  'reason',
  'labels',
  'metadata',
  'prev',
  'attempts',
  'since',
  'updatedAt',
  'lostAt',
];
const EVENT_FIELDS = ['s', 'o', 'i', 'e', 'st', 'd', 'u'];

const TIMING = { heartbeatIntervalMs: 100, leaseTtlMs: 1000, selfFenceMs: 700, adoptionDelayMs: 200, sweepIntervalMs: 100 };

interface SessionRecord {
  owner?: string;
  inc?: string;
  epoch?: string;
  status?: string;
  desired?: string;
  prev?: string;
  [field: string]: unknown;
}

interface InstanceRecord {
  id: string;
  inc: string;
  url: string;
  max: number;
  labels: Record<string, string>;
  draining: boolean;
  mode: string;
  registeredAt: number;
}

interface OwnerRead {
  owner: string;
  url: string;
  epoch: string;
  status: string;
  desired: string;
  live: boolean;
  rec: SessionRecord;
}

interface InstanceRead {
  id: string;
  info: InstanceRecord;
  deadline: number;
  load: number;
  live: boolean;
}

interface EventMessage {
  s: string;
  o: string;
  i: string;
  e: string;
  st: string;
  d: string;
  u: string;
}

/** `now` as the doc defines it: TIME[0] * 1000 + floor(TIME[1] / 1000). */
function redisNowMs(time: unknown): number {
  const [sec, usec] = time as [string, string];
  return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
}

describe('docs/registry.md: reading the registry with plain Redis commands', () => {
  let redis: TestRedis;
  let ns: string;
  let a: Fleet;
  let b: Fleet;
  let client: Redis;
  const subscribers: Redis[] = [];
  const claimed = new Map<string, { owner: string; epoch: string }>();

  /** Runs a documented command block with its placeholders filled in: one command, or MULTI … EXEC. */
  async function run(block: string, vars: Record<string, string>): Promise<unknown> {
    const lines = block.split('\n').map((line) =>
      line.replace(/<(\w+)>/g, (_, name: string) => {
        const value = name === 'ns' ? ns : vars[name];
        if (value === undefined) throw new Error(`no value for <${name}>`);
        return value;
      }),
    );
    const commands = lines.map((line) => line.split(' '));
    if (commands[0]?.[0] !== 'MULTI') {
      expect(commands).toHaveLength(1);
      const [name, ...args] = commands[0]!;
      return client.call(name!, ...args);
    }
    expect(commands.at(-1)).toEqual(['EXEC']);
    return transaction(commands.slice(1, -1));
  }

  async function transaction(commands: string[][]): Promise<unknown[]> {
    const tx = client.multi();
    for (const [name, ...args] of commands) tx.call(name!, ...args);
    const replies = await tx.exec();
    if (replies === null) throw new Error('EXEC aborted');
    return replies.map(([err, value]) => {
      if (err) throw err;
      return value;
    });
  }

  /** Section (a): owner of a session. */
  async function readOwner(sessionId: string): Promise<OwnerRead | null> {
    const raw = (await run(DOCUMENTED.getSession, { sessionId })) as string | null;
    if (raw === null) return null;
    let rec = JSON.parse(raw) as SessionRecord;
    for (let round = 0; round < 20; round++) {
      const owner = rec.owner ?? '';
      if (owner === '') {
        return {
          owner: '',
          url: '',
          epoch: rec.epoch ?? '0',
          status: rec.status ?? 'STOPPED',
          desired: rec.desired ?? 'stopped',
          live: false,
          rec,
        };
      }
      const [again, infoRaw, score, time] = (await run(DOCUMENTED.ownerSnapshot, { sessionId, owner })) as [
        string | null,
        string | null,
        string | null,
        unknown,
      ];
      if (again === null) return null;
      rec = JSON.parse(again) as SessionRecord;
      if ((rec.owner ?? '') !== owner) continue; // moved between the two round trips: look again
      const info = infoRaw === null ? null : (JSON.parse(infoRaw) as InstanceRecord);
      const now = redisNowMs(time);
      const live = score !== null && Number(score) > now && info !== null && info.inc === rec.inc;
      return { owner, url: info?.url ?? '', epoch: rec.epoch!, status: rec.status!, desired: rec.desired!, live, rec };
    }
    throw new Error(`owner of ${sessionId} kept changing`);
  }

  /** Section (b): instances and their load. */
  async function readInstances(): Promise<InstanceRead[]> {
    const [flat, infoFlat, time] = (await run(DOCUMENTED.instancesSnapshot, {})) as [string[], string[], unknown];
    const now = redisNowMs(time);
    const infos = new Map<string, InstanceRecord>();
    for (let i = 0; i < infoFlat.length; i += 2) infos.set(infoFlat[i]!, JSON.parse(infoFlat[i + 1]!) as InstanceRecord);
    const rows: Array<{ id: string; deadline: number }> = [];
    for (let i = 0; i < flat.length; i += 2) {
      if (infos.has(flat[i]!)) rows.push({ id: flat[i]!, deadline: Number(flat[i + 1]) });
    }
    if (rows.length === 0) return [];
    const loads = await transaction(rows.map(({ id }) => DOCUMENTED.load.replace(/<ns>/g, ns).replace(/<id>/g, id).split(' ')));
    return rows.map(({ id, deadline }, i) => ({ id, deadline, info: infos.get(id)!, load: Number(loads[i]), live: deadline > now }));
  }

  /** Section (c): a raw subscriber on the documented channel, collecting the parsed messages. */
  async function subscribe(): Promise<EventMessage[]> {
    const sub = new Redis(redis.url, { lazyConnect: true });
    subscribers.push(sub);
    await sub.connect();
    const messages: EventMessage[] = [];
    sub.on('message', (_channel: string, message: string) => messages.push(JSON.parse(message) as EventMessage));
    const [name, channel] = DOCUMENTED.subscribe.replace('<ns>', ns).split(' ');
    expect(name).toBe('SUBSCRIBE');
    await sub.subscribe(channel!);
    return messages;
  }

  async function sessionsOf(instanceId: string): Promise<string[]> {
    const all = (await client.hgetall(`{wafleet:${ns}}:sessions`)) as Record<string, string>;
    return Object.entries(all)
      .filter(([, raw]) => (JSON.parse(raw) as SessionRecord).owner === instanceId)
      .map(([sid]) => sid)
      .sort();
  }

  beforeAll(async () => {
    redis = await redisForTests();
    ns = uniqueNamespace('registry-doc');
    client = new Redis(redis.url, { lazyConnect: true });
    await client.connect();
    const base = { redis: redis.url, namespace: ns, maxSessions: 10, ...TIMING };
    a = createFleet({ ...base, instanceId: 'wa-a', url: 'http://wa-a.internal:3000' });
    b = createFleet({ ...base, instanceId: 'wa-b', url: 'http://wa-b.internal:3000', labels: { zone: 'b' } });
    await a.start();
    await b.start();
    // The first claim waits out the new namespace's quarantine (quarantineMs ≈ 1.2 s here).
    for (const sid of ['a-1', 'a-2', 'a-3']) claimed.set(sid, { owner: 'wa-a', epoch: (await a.claim(sid)).epoch });
    claimed.set('b-1', { owner: 'wa-b', epoch: (await b.claim('b-1', { labels: { zone: 'b' } })).epoch });
    for (const sid of ['p-1', 'p-2']) {
      const placed = await b.place(sid);
      expect(placed.outcome).toBe('assigned');
      claimed.set(sid, { owner: placed.owner, epoch: placed.epoch });
    }
    await a.setStatus('a-1', 'WORKING');
    await b.claim('stopped-1');
    await b.release('stopped-1');
  });

  afterAll(async () => {
    await Promise.allSettled([a?.close(), b?.close()]);
    await Promise.allSettled([...subscribers, client].filter(Boolean).map((c) => c.quit()));
    await redis?.close();
  });

  it('documents the commands, keys, fields and reply codes the implementation uses', async () => {
    const doc = await readFile(DOC_URL, 'utf8');
    for (const block of Object.values(DOCUMENTED)) expect(doc).toContain(`\n${block}\n`);
    const { namespace: _, ...keys } = registryKeys('NS');
    for (const key of Object.values(keys)) expect(doc).toContain(`\`${key.replace('{wafleet:NS}', '{wafleet:<ns>}')}\``);
    for (const field of [...INSTANCE_FIELDS, ...OPTIONAL_INSTANCE_FIELDS, ...SESSION_FIELDS, ...EVENT_FIELDS])
      expect(doc).toContain(`| \`${field}\` |`);
    const table = Object.fromEntries([...doc.matchAll(/^\| (-?\d+) \| ([A-Z_]+) \|/gm)].map((m) => [m[2], Number(m[1])]));
    expect(table).toEqual({ ...ReplyCode });
  });

  it('(a) gives the owner, URL, epoch and liveness of a session', async () => {
    for (const [sid, { owner, epoch }] of claimed) {
      const read = await readOwner(sid);
      expect(read, sid).not.toBeNull();
      expect(read!.owner, sid).toBe(owner);
      expect(read!.url, sid).toBe(owner === 'wa-a' ? 'http://wa-a.internal:3000' : 'http://wa-b.internal:3000');
      expect(read!.epoch, sid).toBe(epoch);
      expect(read!.live, sid).toBe(true);
      expect(read!.desired, sid).toBe('running');
      expect(read!.status, sid).toBe(sid === 'a-1' ? 'WORKING' : 'STARTING');
      for (const field of Object.keys(read!.rec)) expect(SESSION_FIELDS, `${sid}.${field}`).toContain(field);
      // The Node client's one-round-trip lookup agrees with the documented rule.
      const lookup = await a.owner(sid);
      expect(lookup).toMatchObject({ owner: read!.owner, ownerUrl: read!.url, epoch: read!.epoch, status: read!.status, live: true });
    }
    expect(typeof claimed.get('a-1')!.epoch).toBe('string');
    expect(await readOwner('never-seen')).toBeNull();
    const stopped = await readOwner('stopped-1');
    expect(stopped).toMatchObject({ owner: '', url: '', live: false, status: 'STOPPED', desired: 'stopped' });
    expect(stopped!.rec.prev).toBe('wa-b');
  });

  it('(b) lists the instances with the load each one holds', async () => {
    await waitUntil(
      async () => {
        const rows = await readInstances();
        const byId = new Map(rows.map((r) => [r.id, r.load]));
        return byId.get('wa-a') === a.ownedSessions().size && byId.get('wa-b') === b.ownedSessions().size;
      },
      { timeoutMs: 5000, message: 'documented loads never matched the sessions the fleets hold' },
    );
    const rows = await readInstances();
    expect(rows.map((r) => r.id).sort()).toEqual(['wa-a', 'wa-b']);
    for (const row of rows) {
      const fleet = row.id === 'wa-a' ? a : b;
      expect(Object.keys(row.info).sort()).toEqual([...INSTANCE_FIELDS].sort());
      expect(row.info).toMatchObject({
        id: row.id,
        inc: fleet.incarnation,
        url: fleet.url,
        max: 10,
        draining: false,
        mode: 'managed',
      });
      expect(row.live).toBe(true);
      expect(row.load).toBe((await sessionsOf(row.id)).length);
      expect(row.load).toBe(fleet.ownedSessions().size);
    }
    expect(rows.find((r) => r.id === 'wa-b')!.info.labels).toEqual({ zone: 'b' });
    expect(rows.find((r) => r.id === 'wa-a')!.info.labels).toEqual({});
    expect(rows.reduce((n, r) => n + r.load, 0)).toBe(claimed.size);
    const viaNode = await b.instances();
    for (const row of rows)
      expect(viaNode.find((i) => i.id === row.id)).toMatchObject({ load: row.load, leaseDeadline: expect.any(Number), live: true });
  });

  it('(c) publishes the documented message on the documented channel', async () => {
    const messages = await subscribe();
    const { epoch } = await b.claim('evt-1');
    await waitUntil(() => messages.some((m) => m.s === 'evt-1'), { timeoutMs: 5000, message: 'no message for evt-1' });
    const first = messages.find((m) => m.s === 'evt-1')!;
    expect(Object.keys(first).sort()).toEqual([...EVENT_FIELDS].sort());
    expect(first).toEqual({
      s: 'evt-1',
      o: 'wa-b',
      i: b.incarnation,
      e: epoch,
      st: 'STARTING',
      d: 'running',
      u: 'http://wa-b.internal:3000',
    });
    await b.setStatus('evt-1', 'WORKING');
    await waitUntil(() => messages.some((m) => m.s === 'evt-1' && m.st === 'WORKING'), { timeoutMs: 5000, message: 'no WORKING message' });
    expect(messages.find((m) => m.st === 'WORKING')).toMatchObject({ s: 'evt-1', o: 'wa-b', e: epoch });
    await b.release('evt-1');
    await waitUntil(() => messages.some((m) => m.s === 'evt-1' && m.o === ''), { timeoutMs: 5000, message: 'no release message' });
    expect(messages.find((m) => m.s === 'evt-1' && m.o === '')).toMatchObject({ i: '', u: '', e: epoch, st: 'STOPPED', d: 'stopped' });
  });

  it('the PHP snippet (phpredis) gives the same answers, when php with the redis extension is installed', async (ctx) => {
    const exec = promisify(execFile);
    const hasPhp = await exec('php', ['-r', 'exit(class_exists("Redis") ? 0 : 1);']).then(
      () => true,
      () => false,
    );
    if (!hasPhp) return ctx.skip();
    const doc = await readFile(DOC_URL, 'utf8');
    const snippet = /```php\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(snippet).toBeDefined();
    const url = new URL(redis.url);
    const driver = `
$r = new Redis();
$r->connect('${url.hostname}', ${Number(url.port || 6379)});
${url.password ? `$r->auth(${JSON.stringify(decodeURIComponent(url.password))});` : ''}
echo json_encode(['owner' => wafleetOwner($r, $argv[1], 'a-1'), 'stopped' => wafleetOwner($r, $argv[1], 'stopped-1'),
  'unknown' => wafleetOwner($r, $argv[1], 'never-seen'), 'instances' => wafleetInstances($r, $argv[1])]);
`;
    const dir = await mkdtemp(join(tmpdir(), 'wafleet-php-'));
    try {
      await writeFile(join(dir, 'read.php'), snippet + driver);
      const { stdout } = await exec('php', [join(dir, 'read.php'), ns]);
      const out = JSON.parse(stdout) as {
        owner: { owner: string; url: string; epoch: string; status: string; live: boolean };
        stopped: { owner: string; live: boolean; desired: string };
        unknown: null;
        instances: Array<{ id: string; load: number; live: boolean; url: string }>;
      };
      expect(out.owner).toEqual({
        owner: 'wa-a',
        url: 'http://wa-a.internal:3000',
        epoch: claimed.get('a-1')!.epoch,
        status: 'WORKING',
        desired: 'running',
        live: true,
      });
      expect(out.stopped).toMatchObject({ owner: '', live: false, desired: 'stopped' });
      expect(out.unknown).toBeNull();
      const expected = await readInstances();
      expect(
        out.instances.map(({ id, load, live, url: u }) => ({ id, load, live, url: u })).sort((x, y) => x.id.localeCompare(y.id)),
      ).toEqual(expected.map(({ id, load, live, info }) => ({ id, load, live, url: info.url })).sort((x, y) => x.id.localeCompare(y.id)));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('after one instance closes, the documented reads show the new owner', async () => {
    const moving = await sessionsOf('wa-a');
    expect(moving.length).toBeGreaterThan(0);
    const before = new Map<string, string>();
    for (const sid of moving) before.set(sid, (await readOwner(sid))!.epoch);
    await a.close();
    // A graceful close hands the sessions off at once; were the handoff skipped, the sweep adopts them once the
    // lease (1 s) and the adoption delay (0.2 s) have passed. Either way the reads must end on wa-b.
    await waitUntil(
      async () => {
        for (const sid of moving) {
          const read = await readOwner(sid);
          if (read?.owner !== 'wa-b' || !read.live) return false;
        }
        return true;
      },
      { timeoutMs: 10_000, message: `sessions of wa-a never moved to wa-b: ${moving.join(', ')}` },
    );
    for (const sid of moving) {
      const read = (await readOwner(sid))!;
      expect(read).toMatchObject({ owner: 'wa-b', url: 'http://wa-b.internal:3000', live: true, desired: 'running' });
      expect(read.rec.prev).toBe('wa-a');
      expect(BigInt(read.epoch) > BigInt(before.get(sid)!), sid).toBe(true);
    }
    await waitUntil(async () => (await readInstances()).every((r) => r.id !== 'wa-a'), {
      timeoutMs: 10_000,
      message: 'wa-a never left the instances',
    });
    const rows = await readInstances();
    expect(rows.map((r) => r.id)).toEqual(['wa-b']);
    expect(rows[0]!.load).toBe((await sessionsOf('wa-b')).length);
    expect(rows[0]!.load).toBe(claimed.size);
  });
});
