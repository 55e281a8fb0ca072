import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registryKeys } from '@wafleet/core';
import {
  freePort,
  killAll,
  sleep,
  spawnProcess,
  startRedisCluster,
  startRedisSentinel,
  uniqueNamespace,
  waitUntil,
  type ChildHandle,
} from '@wafleet/test-utils';
import { Redis, type Cluster } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { BrowserWatch, browserRuns, runOverlaps, taggedProcesses } from './helpers/journal-check.js';
import { SIM_BIN } from './helpers/sim-instances.js';

/**
 * A tolerant timing scaled down (the `tolerant` profile's 30 s self-fence deadline rides out a Sentinel failover of
 * up to ~27 s, this one's 10 s one of up to ~9 s; a forced failover here takes 1 to 5 s). The literal profile would
 * hold the first placements of a new namespace for its 55 s quarantine; bench/redis-failover.mjs measures both
 * profiles as they are.
 */
const TIMING = ['--heartbeat-ms', '1000', '--lease-ttl-ms', '15000', '--self-fence-ms', '10000', '--adoption-delay-ms', '3000'];
const TIMING_MORE = ['--sweep-ms', '1000', '--quarantine-ms', '10000'];

/**
 * Redis high availability under load, with real processes: 5 `wafleet-sim instance` processes (tolerant timing,
 * browser processes, dead-man switch) run 100 sessions while a backend loop sends messages through them; then the
 * master fails over (Sentinel: SENTINEL FAILOVER; Cluster: the master serving the namespace is killed -9 and its
 * replica promoted). Ground truth is the journal plus the browser processes: no overlapping runs, no session started
 * again, epochs never lower, every session WORKING on the new master, sends accepted again.
 */

const TAG_NAME = 'WAFLEET_REDIS_HA_TAG';
const ADMIN_TOKEN = 'redis-ha-admin-token-0123456789abcdef';
const INSTANCES = 5;
const SESSIONS = 100;

afterAll(() => killAll());

interface Topology {
  /** The `--redis` argument of the sim runner. */
  redisArg: string;
  /** A client for reading the registry (any role: reads follow the master). */
  client: Redis | Cluster;
  /** Fails the master serving `key` over to its replica; resolves once the replica is the master. */
  failover(key: string): Promise<string>;
  stop(): Promise<void>;
}

interface Instance {
  id: string;
  port: number;
  child: ChildHandle;
}

interface SessionRecord {
  owner: string;
  epoch: string;
  status: string;
}

async function records(client: Redis | Cluster, namespace: string): Promise<Map<string, SessionRecord>> {
  const raw = await client.hgetall(registryKeys(namespace).sessions);
  return new Map(Object.entries(raw).map(([sid, json]) => [sid, JSON.parse(json) as SessionRecord]));
}

async function failoverUnderLoad(topology: Topology, label: string): Promise<void> {
  const namespace = uniqueNamespace(`ha-${label}`);
  const tag = `${label}-${randomBytes(6).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), `wafleet-redis-ha-${label}-`));
  const journal = join(dir, 'journal.jsonl');
  const watch = new BrowserWatch(journal, 20);
  watch.start();
  const instances: Instance[] = [];
  try {
    for (let i = 1; i <= INSTANCES; i++) {
      const id = `wa-${i}`;
      const port = await freePort();
      const child = spawnProcess(
        process.execPath,
        [
          ...[SIM_BIN, 'instance', '--redis', topology.redisArg, '--namespace', namespace, '--id', id, '--port', String(port)],
          ...[
            '--max-sessions',
            '30',
            '--journal',
            journal,
            '--browser-processes',
            ...TIMING,
            ...TIMING_MORE,
            '--sends',
            join(dir, 'sends.jsonl'),
          ],
        ],
        { name: id, env: { [TAG_NAME]: tag, WAFLEET_ADMIN_TOKEN: ADMIN_TOKEN } },
      );
      instances.push({ id, port, child });
    }
    for (const inst of instances) {
      const ready = await inst.child.waitFor<{ deadmanPid?: number }>((m) => m['ev'] === 'ready', 30_000);
      if (typeof ready.deadmanPid === 'number') watch.watch(ready.deadmanPid);
    }
    const placer = spawnProcess(
      process.execPath,
      [SIM_BIN, 'sessions', '--redis', topology.redisArg, '--namespace', namespace, '--count', String(SESSIONS)],
      { name: 'placer', env: { [TAG_NAME]: tag } },
    );
    await placer.waitFor((m) => m['ev'] === 'placed', 30_000);
    await placer.exited;
    const allWorking = async () => {
      const recs = await records(topology.client, namespace);
      return recs.size === SESSIONS && [...recs.values()].every((r) => r.status === 'WORKING' && r.owner !== '');
    };
    await waitUntil(allWorking, { timeoutMs: 60_000, message: `${SESSIONS} sessions not WORKING` });

    // Steady load: a backend sends a message every 10 ms to a random session, at the owner the registry names.
    const owners = new Map<string, string>();
    const portOf = new Map(instances.map((i) => [i.id, i.port]));
    const sends: Array<{ t: number; status: number }> = [];
    let sending = true;
    const refresh = async () => {
      try {
        for (const [sid, r] of await records(topology.client, namespace)) owners.set(sid, r.owner);
      } catch {
        // Redis failing over: keep the last view.
      }
    };
    await refresh();
    const loop = (async () => {
      let n = 0;
      while (sending) {
        if (++n % 50 === 0) await refresh();
        const sid = `sim-${String(Math.floor(Math.random() * SESSIONS)).padStart(4, '0')}`;
        const port = portOf.get(owners.get(sid) ?? '');
        let status = 0;
        if (port !== undefined) {
          try {
            const res = await fetch(`http://127.0.0.1:${port}/sessions/${sid}/messages`, {
              method: 'POST',
              headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
              body: JSON.stringify({ text: 'hi' }),
              signal: AbortSignal.timeout(5000),
            });
            status = res.status;
          } catch {
            status = -1;
          }
        }
        sends.push({ t: Date.now(), status });
        await sleep(10);
      }
    })();

    await sleep(2000);
    watch.poll();
    const startsBefore = watch.journal.lines.filter((l) => l.event === 'start').length;
    const epochsBefore = new Map([...(await records(topology.client, namespace))].map(([sid, r]) => [sid, BigInt(r.epoch)]));
    const failedAt = Date.now();
    const newMaster = await topology.failover(registryKeys(namespace).meta);
    const promotedAfterMs = Date.now() - failedAt;
    // Every instance re-asserts its sessions in the new era (its 'era' line), none stops one.
    await waitUntil(() => instances.every((i) => i.child.messages.some((m) => m['ev'] === 'era')), {
      timeoutMs: 30_000,
      message: 'an instance never saw the new era',
    });
    const erasAfterMs = Date.now() - failedAt;
    await waitUntil(allWorking, { timeoutMs: 30_000, message: 'sessions not WORKING after the failover' });
    // Sends are accepted again: 50 in a row.
    await waitUntil(() => sends.length > 50 && sends.slice(-50).every((s) => s.status === 201), {
      timeoutMs: 30_000,
      message: 'sends not accepted after the failover',
    }).catch((err: Error) => {
      throw new Error(
        `${err.message}; last statuses: ${sends
          .slice(-50)
          .map((s) => s.status)
          .join(',')}`,
      );
    });
    await sleep(3000);
    sending = false;
    await loop;

    watch.poll();
    const starts = watch.journal.lines.filter((l) => l.event === 'start');
    expect(starts.length, 'no session started again').toBe(startsBefore);
    const recs = await records(topology.client, namespace);
    for (const [sid, before] of epochsBefore) expect(BigInt(recs.get(sid)!.epoch) >= before, `${sid}: epoch went back`).toBe(true);
    const fenced = instances.flatMap((i) => i.child.messages.filter((m) => m['ev'] === 'fenced'));
    if (fenced.length > 0) {
      // What each instance said about the fenced sessions and its own recovery, relative to the failover.
      const ids = new Set(fenced.flatMap((m) => m['s'] as string[]));
      for (const i of instances)
        for (const m of i.child.messages)
          if (['era', 'leaseLost', 'leaseRestored', 'log', 'fenced'].includes(String(m['ev'])) || ids.has(String(m['s'] ?? m['sessionId'])))
            console.log(`[redis-ha ${label}] ${i.id} +${Number(m['t']) - failedAt} ms ${JSON.stringify(m)}`);
    }
    expect(fenced, JSON.stringify(fenced)).toEqual([]);
    const eras = instances.map((i) => i.child.messages.find((m) => m['ev'] === 'era')!);
    expect(eras.reduce((n, e) => n + Number(e['reasserted']), 0)).toBe(SESSIONS);
    expect(eras.every((e) => e['lost'] === 0)).toBe(true);
    // Every start waited for a replica to have its grant (WAIT 1), and one did in time; every instance counted the era.
    for (const inst of instances) {
      const res = await fetch(`http://127.0.0.1:${inst.port}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const text = await res.text();
      const metric = (series: string) =>
        Number(
          text
            .split('\n')
            .find((l) => l.startsWith(`${series} `))
            ?.split(' ')[1],
        );
      expect(metric('wafleet_replica_acks_total{result="acked"}'), inst.id).toBeGreaterThan(0);
      expect(metric('wafleet_replica_acks_total{result="timeout"}'), inst.id).toBe(0);
      expect(metric('wafleet_registry_eras_total'), inst.id).toBe(1);
    }
    const during = sends.filter((s) => s.t >= failedAt);
    const refused = during.filter((s) => s.status !== 201);

    // Graceful stop: every instance drains and exits 0, and no browser outlives them.
    await Promise.all(instances.map((i) => i.child.kill('SIGTERM')));
    const codes = await Promise.all(instances.map(async (i) => (await i.child.exited).code));
    expect(codes).toEqual(instances.map(() => 0));
    await sleep(200);
    watch.poll();
    watch.stop();
    const { runs } = browserRuns(watch.journal.lines, (pid) => watch.deaths.get(pid));
    expect(runOverlaps(runs)).toEqual([]);
    expect(watch.aliveBrowsers()).toEqual([]);
    expect(taggedProcesses(TAG_NAME, tag).filter((p) => p.cmdline === 'sleep 86400')).toEqual([]);
    console.log(
      `[redis-ha ${label}] master ${newMaster} ${promotedAfterMs} ms after the failover began; every instance in the new era after ${erasAfterMs} ms; ` +
        `${SESSIONS} sessions, ${starts.length} browser launches, 0 restarts, 0 fenced, 0 overlaps; ` +
        `sends since the failover ${during.length}, not accepted ${refused.length} (${[...new Set(refused.map((s) => s.status))].join(', ') || '-'})`,
    );
  } finally {
    watch.stop();
    await Promise.all(instances.map((i) => i.child.kill('SIGKILL').catch(() => undefined)));
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('Redis failovers under load: 5 sim instances, 100 sessions, tolerant timing', () => {
  it('Sentinel (1 master, 1 replica, 3 sentinels), SENTINEL FAILOVER: no overlapping runs, no restarts, epochs monotonic', async () => {
    const sentinel = await startRedisSentinel({ downAfterMs: 1000, failoverTimeoutMs: 5000 });
    const client = new Redis({
      sentinels: sentinel.sentinelUrls.map((u) => ({ host: '127.0.0.1', port: Number(new URL(u).port) })),
      name: sentinel.name,
    });
    client.on('error', () => undefined);
    try {
      await failoverUnderLoad(
        {
          redisArg: JSON.stringify({ sentinels: sentinel.sentinelUrls, name: sentinel.name }),
          client,
          failover: async () => `127.0.0.1:${await sentinel.failover()}`,
          stop: () => sentinel.stop(),
        },
        'sentinel',
      );
    } finally {
      client.disconnect();
      await sentinel.stop();
    }
  }, 180_000);

  it("Cluster (3 masters, 3 replicas), the namespace's master killed -9: no overlapping runs, no restarts, epochs monotonic", async () => {
    const cluster = await startRedisCluster({ masters: 3, replicas: 1 });
    const client = cluster.client();
    try {
      await failoverUnderLoad(
        {
          redisArg: cluster.urls.join(','),
          client,
          failover: async (key) => cluster.killMasterOf(Number(await client.cluster('KEYSLOT', key))),
          stop: () => cluster.stop(),
        },
        'cluster',
      );
    } finally {
      await cluster.stop();
    }
  }, 180_000);
});
