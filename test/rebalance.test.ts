import { mkdtempSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFleetRouter } from '@wafleet/core/express';
import type { SimLoginEvent } from '@wafleet/sim';
import { freePort, spawnProcess, uniqueNamespace, waitUntil, type ChildHandle } from '@wafleet/test-utils';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { runOverlaps, type EngineRuns } from './helpers/engine-runs.js';
import { overlaps as journalOverlaps, readJournal, runsOf, sessionIds, snapshot, useTestRedis } from './helpers/fleet-harness.js';
import { startSimHost } from './helpers/sim-hosts.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'packages', 'sim', 'bin', 'wafleet-sim.mjs');

const redis = useTestRedis();
const closers: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
});

const host = (namespace: string, id: string, dataDir: string, runs: EngineRuns, logins: Array<SimLoginEvent & { host: string }>) =>
  startSimHost({ redisUrl: redis.url, namespace, id, dataDir, runs, logins, close: (fn) => closers.push(fn), fleet: { maxSessions: 20 } });

describe('rebalancing (handoff of the fullest instance’s excess)', () => {
  it('from 20/0/0 to a spread of at most 2: no overlapping runs, no cap exceeded, every moved session restores its newest login', async () => {
    const namespace = uniqueNamespace('rebalance');
    const dataDir = mkdtempSync(join(tmpdir(), 'wafleet-rebalance-'));
    const runs: EngineRuns = [];
    const logins: Array<SimLoginEvent & { host: string }> = [];
    const a = await host(namespace, 'wa-a', dataDir, runs, logins);
    const ids = sessionIds('rb', 20);
    for (const sid of ids) await a.supervisor.startSession(sid);
    await waitUntil(() => ids.every((sid) => a.supervisor.session(sid)?.status === 'SCAN_QR_CODE'), { timeoutMs: 10_000 });
    for (const sid of ids) a.sim.scan(sid);
    await waitUntil(() => ids.every((sid) => logins.some((e) => e.ev === 'save' && e.sessionId === sid)), {
      timeoutMs: 10_000,
      message: 'logins not saved after the scan',
    });
    const others = [await host(namespace, 'wa-b', dataDir, runs, logins), await host(namespace, 'wa-c', dataDir, runs, logins)];
    const loads = async () => Object.fromEntries((await a.fleet.instances()).map((i) => [i.id, i.load]));
    expect(await loads()).toEqual({ 'wa-a': 20, 'wa-b': 0, 'wa-c': 0 });

    // A dry run plans without moving; an instance at or below the target moves nothing.
    const dry = await a.supervisor.rebalance({ dryRun: true, maxMoves: 20 });
    expect(dry).toMatchObject({ load: 20, target: 7, spread: 20, moved: [] });
    expect(dry.planned).toHaveLength(13);
    expect(await others[0]!.supervisor.rebalance({ maxMoves: 20 })).toMatchObject({ planned: [], moved: [] });
    expect(await loads()).toEqual({ 'wa-a': 20, 'wa-b': 0, 'wa-c': 0 });

    const result = await a.supervisor.rebalance({ maxMoves: 20 });
    expect(result.moved.map((m) => m.outcome)).toEqual(Array(13).fill('handed-off'));
    await waitUntil(() => result.moved.every((m) => others.some((h) => h.supervisor.session(m.sessionId)?.status === 'WORKING')), {
      timeoutMs: 15_000,
      message: 'moved sessions not WORKING on their new owners',
    });
    const after = await loads();
    console.log(`[rebalance] 20/0/0 -> ${Object.values(after).join('/')}, ${result.moved.length} handed off`);
    const values = Object.values(after);
    expect(Math.max(...values) - Math.min(...values)).toBeLessThanOrEqual(2);
    expect(Math.max(...values)).toBeLessThanOrEqual(20);
    expect(runOverlaps(runs)).toEqual([]);
    // Every moved session restored the newest version committed before its move (the handoff save included).
    for (const { sessionId, owner } of result.moved) {
      const restore = logins.find((e) => e.ev === 'restore' && e.sessionId === sessionId && e.host === owner);
      const newest = Math.max(
        ...logins
          .filter((e) => e.ev === 'save' && e.sessionId === sessionId && e.host === 'wa-a')
          .map((e) => (e as { version: number }).version),
      );
      expect(restore, `${sessionId} restored on ${owner}`).toMatchObject({ version: newest, writer: 'wa-a' });
    }
    // Balanced now: a second call moves nothing.
    expect((await a.supervisor.rebalance()).moved).toEqual([]);
  });

  it('automatic, across instance processes (wafleet-sim --rebalance-ms): 20/0/0 settles within a spread of 2, journal without overlaps, logins restored', async () => {
    const namespace = uniqueNamespace('rebalance-processes');
    const dir = mkdtempSync(join(tmpdir(), 'wafleet-rebalance-processes-'));
    const journal = join(dir, 'journal.jsonl');
    const loginJournal = join(dir, 'logins.jsonl');
    const store = ['--session-store', `dir:${join(dir, 'store')}`, '--login-bytes', '1024'];
    const instance = async (id: string): Promise<ChildHandle> => {
      const child = spawnProcess(
        process.execPath,
        [
          ...[BIN, 'instance', '--redis', redis.url, '--namespace', namespace, '--id', id, '--port', String(await freePort())],
          ...['--max-sessions', '20', '--journal', journal, '--login-journal', loginJournal, ...store],
          ...['--heartbeat-ms', '200', '--lease-ttl-ms', '2000', '--self-fence-ms', '1400', '--adoption-delay-ms', '500'],
          ...['--sweep-ms', '200', '--rebalance-ms', '1000'],
        ],
        { name: id, env: { WAFLEET_ADMIN_TOKEN: 'rebalance-test-token-0123456789abcdef' } },
      );
      closers.push(() => child.kill('SIGKILL'));
      await child.waitFor((m) => m['ev'] === 'ready', 20_000);
      return child;
    };
    await instance('wa-1');
    const seeder = spawnProcess(
      process.execPath,
      [
        BIN,
        'sessions',
        '--redis',
        redis.url,
        '--namespace',
        namespace,
        '--count',
        '20',
        '--logged-in',
        ...store,
        '--login-journal',
        loginJournal,
      ],
      { name: 'seeder' },
    );
    await seeder.waitFor((m) => m['ev'] === 'placed', 30_000);
    const working = async () => [...(await snapshot(redis.client, namespace)).sessions.values()].filter((r) => r.status === 'WORKING');
    await waitUntil(async () => (await working()).length === 20, { timeoutMs: 20_000, message: '20 sessions not WORKING on wa-1' });
    expect((await snapshot(redis.client, namespace)).owned.get('wa-1')).toHaveLength(20);
    await instance('wa-2');
    await instance('wa-3');
    const spread = async () => {
      const { owned } = await snapshot(redis.client, namespace);
      const loads = ['wa-1', 'wa-2', 'wa-3'].map((id) => owned.get(id)?.length ?? 0);
      return { loads, spread: Math.max(...loads) - Math.min(...loads) };
    };
    await waitUntil(async () => (await spread()).spread <= 2 && (await working()).length === 20, {
      timeoutMs: 30_000,
      message: 'the fleet never settled within a spread of 2',
    });
    const settled = await spread();
    console.log(`[rebalance] processes: 20/0/0 -> ${settled.loads.join('/')}`);
    expect(Math.max(...settled.loads)).toBeLessThanOrEqual(20);
    expect(journalOverlaps(runsOf(readJournal(journal)))).toEqual([]);
    // Every session that moved restored the newest login committed before it started on its new owner.
    const events = readFileSync(loginJournal, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const moved = events.filter((e) => e['ev'] === 'restore' && e['instance'] !== 'wa-1');
    expect(moved.length).toBeGreaterThanOrEqual(10);
    for (const restore of moved) {
      const before = events.filter(
        (e) => e['ev'] === 'save' && e['session'] === restore['session'] && Number(e['t']) <= Number(restore['startedAt']),
      );
      const newest = Math.max(...before.map((e) => Number(e['version'])));
      expect(restore['version'], `${String(restore['session'])} on ${String(restore['instance'])}`).toBe(newest);
    }
  });

  it('POST /rebalance runs it on that instance behind the admin token, and refuses a bad body', async () => {
    const namespace = uniqueNamespace('rebalance-route');
    const dataDir = mkdtempSync(join(tmpdir(), 'wafleet-rebalance-route-'));
    const a = await host(namespace, 'wa-a', dataDir, [], []);
    const token = 'rebalance-route-token-0123456789abcdef';
    const app = express().use(createFleetRouter(a.fleet, { auth: { token }, supervisor: a.supervisor }));
    const port = await freePort();
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(port, '127.0.0.1', () => resolve(s));
    });
    closers.push(() => new Promise((resolve) => server.close(resolve)));
    const post = (body: unknown, auth = true) =>
      fetch(`http://127.0.0.1:${port}/rebalance`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
    expect((await post({ dryRun: true }, false)).status).toBe(401);
    const ok = await post({ dryRun: true });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ load: 0, target: 0, spread: 0, planned: [], moved: [] });
    const bad = await post({ dryRun: 'yes' });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'WAFLEET_CONFIG' });
    expect((await post({ everything: true })).status).toBe(400);
  });
});
