import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFleet, registryKeys, type Fleet, type FleetOptions, type TimingOptions } from '@wafleet/core';
import { killAll, redisForTests, spawnProcess, type ChildHandle, type TestRedis } from '@wafleet/test-utils';
import { Redis, type Cluster } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';

/**
 * A Redis for this test file (private unless REDIS_URL is set) and a plain client to inspect it. Registers the
 * hooks; after all tests every spawned process is killed and the private server stopped.
 */
export function useTestRedis(): { readonly url: string; readonly client: Redis } {
  let redis: TestRedis | undefined;
  let client: Redis | undefined;
  beforeAll(async () => {
    redis = await redisForTests();
    client = new Redis(redis.url);
  });
  afterAll(async () => {
    client?.disconnect();
    await killAll();
    await redis?.close();
  });
  return {
    get url() {
      return redis!.url;
    },
    get client() {
      return client!;
    },
  };
}

const fixture = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'instance.mjs');

/**
 * Test timing: heartbeat 200 ms, lease 2 s, self-fence 1.4 s, adoption 0.5 s after expiry.
 * Pause budget = TTL + adoption delay - self-fence = 1.1 s (stop time is zero here: no engine).
 */
export const TEST_TIMING: TimingOptions = Object.freeze({
  heartbeatIntervalMs: 200,
  leaseTtlMs: 2000,
  selfFenceMs: 1400,
  adoptionDelayMs: 500,
  sweepIntervalMs: 200,
});

/** A fleet whose Redis never answers (port 1), never started: for option checks and fail-open paths. */
export function offlineFleet(): Fleet {
  return createFleet({ redis: 'redis://127.0.0.1:1', namespace: 'x', instanceId: 'wa-1', url: 'http://wa-1:3000', maxSessions: 1 });
}

/** An in-process fleet member with the test timing and no quarantine (10 sessions unless `extra` says otherwise). */
export function testFleet(redisUrl: string, namespace: string, instanceId: string, extra: Partial<FleetOptions> = {}): Fleet {
  return createFleet({
    redis: redisUrl,
    namespace,
    instanceId,
    url: `http://${instanceId}:3000`,
    maxSessions: 10,
    ...TEST_TIMING,
    quarantineMs: 0,
    ...extra,
  });
}

export const PAUSE_BUDGET_MS = TEST_TIMING.leaseTtlMs + TEST_TIMING.adoptionDelayMs - TEST_TIMING.selfFenceMs;

export interface InstanceConfig {
  redis: string | string[];
  namespace: string;
  instanceId: string;
  maxSessions: number;
  journal?: string;
  timing?: Partial<TimingOptions> & { quarantineMs?: number };
  labels?: Record<string, string>;
  mode?: 'managed' | 'observe';
  /** Public URL (defaults to a placeholder; set it to the HTTP address when `http` is given). */
  url?: string;
  /** How long after its assignment a session turns from STARTING to WORKING (the engine launch). @default 0 */
  launchMs?: number;
  http?: {
    port: number;
    sends: string;
    abandonedPolicy?: 'retry' | 'conflict';
    /** The guard forwards misdirected requests to the owner (`misdirected: 'forward'`). */
    forward?: boolean;
    forwardWaitMs?: number;
    /** For an owned session that is not WORKING the guard answers 503 (`true`: `'retry-after'`) or holds the request (`'wait'`). */
    notWorking?: boolean | 'wait';
  };
}

/** A spawned instance process with typed helpers around its stdin/stdout protocol. */
export class InstanceProcess {
  private seq = 0;

  constructor(
    readonly id: string,
    readonly child: ChildHandle,
  ) {}

  /** Sends a command and waits until the process reports it done. */
  async run(cmd: string, extra: Record<string, unknown> = {}, timeoutMs = 20_000): Promise<void> {
    const id = ++this.seq;
    this.child.send({ cmd, id, ...extra });
    await this.child.waitFor((m) => (m.ev === 'done' || m.ev === 'cmd-failed') && m.id === id, timeoutMs);
  }

  events(ev: string): Array<Record<string, unknown>> {
    return this.child.messages.filter((m) => m.ev === ev);
  }
}

/** Starts an instance process and waits until it registered. */
export async function startInstance(config: InstanceConfig): Promise<InstanceProcess> {
  const full = { ...config, timing: { ...TEST_TIMING, ...config.timing } };
  const child = spawnProcess(process.execPath, [fixture, JSON.stringify(full)], { name: config.instanceId });
  await child.waitFor((m) => m.ev === 'ready', 20_000);
  return new InstanceProcess(config.instanceId, child);
}

/** A fresh journal file path. */
export function journalPath(label: string): string {
  return join(mkdtempSync(join(tmpdir(), `wafleet-journal-${label}-`)), 'journal.jsonl');
}

export interface JournalEntry {
  t: number;
  instance: string;
  session: string;
  event: 'start' | 'stop';
  epoch: string;
}

export function readJournal(...paths: string[]): JournalEntry[] {
  return paths
    .filter((p) => existsSync(p))
    .flatMap((p) =>
      readFileSync(p, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as JournalEntry),
    )
    .sort((a, b) => a.t - b.t);
}

export interface Run {
  session: string;
  instance: string;
  start: number;
  end: number;
}

/**
 * Turns journal entries into runs per (session, instance). A run without a stop ends at `endOf(instance)`
 * (the kill time of a killed instance) or at +Infinity.
 */
export function runsOf(entries: JournalEntry[], endOf: (instance: string) => number | undefined = () => undefined): Run[] {
  const open = new Map<string, JournalEntry>();
  const runs: Run[] = [];
  for (const e of entries) {
    const key = `${e.session}\u0000${e.instance}`;
    if (e.event === 'start') {
      if (!open.has(key)) open.set(key, e);
    } else {
      const s = open.get(key);
      if (s) runs.push({ session: e.session, instance: e.instance, start: s.t, end: e.t });
      open.delete(key);
    }
  }
  for (const s of open.values()) runs.push({ session: s.session, instance: s.instance, start: s.t, end: endOf(s.instance) ?? Infinity });
  return runs;
}

export interface Overlap {
  session: string;
  a: Run;
  b: Run;
  from: number;
  to: number;
}

/** Pairs of runs of the same session on different instances that overlap in time. */
export function overlaps(runs: Run[]): Overlap[] {
  const bySession = new Map<string, Run[]>();
  for (const r of runs) bySession.set(r.session, [...(bySession.get(r.session) ?? []), r]);
  const found: Overlap[] = [];
  for (const [session, list] of bySession) {
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const a = list[i]!;
        const b = list[j]!;
        if (a.instance === b.instance) continue;
        const from = Math.max(a.start, b.start);
        const to = Math.min(a.end, b.end);
        if (from < to) found.push({ session, a, b, from, to });
      }
    }
  }
  return found;
}

export interface SessionRecord {
  owner: string;
  inc: string;
  epoch: string;
  status: string;
  desired: string;
  since?: number;
  prev?: string;
}

export interface Snapshot {
  sessions: Map<string, SessionRecord>;
  /** instance id -> session ids, from the owned index. */
  owned: Map<string, string[]>;
  deadlines: Map<string, number>;
}

/** Reads the registry of `namespace` with plain commands. */
export async function snapshot(redis: Redis | Cluster, namespace: string): Promise<Snapshot> {
  const keys = registryKeys(namespace);
  const [raw, members, instances] = await Promise.all([
    redis.hgetall(keys.sessions),
    redis.zrange(keys.owned, 0, -1),
    redis.zrange(keys.instances, 0, -1, 'WITHSCORES'),
  ]);
  const sessions = new Map(Object.entries(raw).map(([k, v]) => [k, JSON.parse(v) as SessionRecord]));
  const owned = new Map<string, string[]>();
  for (const m of members) {
    const [inst, ...rest] = m.split(':');
    owned.set(inst!, [...(owned.get(inst!) ?? []), rest.join(':')]);
  }
  const deadlines = new Map<string, number>();
  for (let i = 0; i < instances.length; i += 2) deadlines.set(instances[i]!, Number(instances[i + 1]));
  return { sessions, owned, deadlines };
}

export const sessionIds = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);
