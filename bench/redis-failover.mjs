#!/usr/bin/env node
// Redis Sentinel failover (issue 15, acceptance 4): time from the failover to every session WORKING again, and what
// else it costs, under each timing profile as it ships (`default`, `tolerant`).
//
//   node bench/redis-failover.mjs    (from the repository root, after `npx -y pnpm@12.4.2 run build`)
//
// Each run starts a private Sentinel setup (1 master, 1 replica, 3 sentinels; test-utils' startRedisSentinel) and 5
// in-process instances (fleet + supervisor + simulated engine, the profile's timing, nothing overridden), places 100
// sessions, waits until all are WORKING, and fails the master over in one of two ways:
//   planned  SENTINEL FAILOVER (the master stays up and is demoted);
//   crash    kill -9 of the master, the sentinels' down-after-milliseconds 5000 (a common production value; Sentinel's
//            own default is 30000), then their election.
// Measured from the start of the failover (one clock, this process):
//   promoted   the sentinels name the replica as the master;
//   stopped    sessions whose engine stopped (fenced at the self-fence deadline: a lost lease);
//   working    every session WORKING again in the supervisors and in the registry on the new master, each record naming
//              the instance that runs it (0 when none stopped and every record was right);
//   placeable  a new session can be placed again (the quarantine a new era starts is over).
// A new namespace starts with the same quarantine, so every run first waits that out (55 s with `tolerant`).
//
// Prints a markdown section and replaces it in BENCHMARKS.md (between the bench:redis-failover markers).
//
// Environment overrides (for quick trial runs only; published numbers use the defaults):
//   BENCH_SESSIONS    sessions                 (default 100)
//   BENCH_PROFILES    comma-separated profiles  (default default,tolerant)
//   BENCH_NO_WRITE=1  print only, do not touch BENCHMARKS.md

import { createFleet, createSupervisor } from '@wafleet/core';
import { createSimEngine } from '@wafleet/sim';
import { startRedisSentinel } from '@wafleet/test-utils';
import { Redis } from 'ioredis';

import { benchLog, fmt, isoSeconds, machine, positiveInt, publish, runMain, runTag, waitFor } from './lib.mjs';

/** waitFor, or an error naming what never happened. */
async function until(what, cond, timeoutMs, everyMs) {
  if (!(await waitFor(cond, timeoutMs, everyMs))) throw new Error(`${what} within ${timeoutMs} ms`);
}

const SESSIONS = positiveInt(process.env.BENCH_SESSIONS, 100);
const PROFILES = (process.env.BENCH_PROFILES ?? 'default,tolerant').split(',');
const INSTANCES = 5;
const log = benchLog('bench:redis-failover');

async function run(profile, kind) {
  const downAfterMs = kind === 'crash' ? 5000 : 1000;
  const sentinel = await startRedisSentinel({ downAfterMs, failoverTimeoutMs: 10_000 });
  const redis = { sentinels: sentinel.sentinelUrls, name: sentinel.name };
  const namespace = `bench-failover-${runTag}-${profile}-${kind}`;
  const hosts = [];
  let starts = 0;
  let stops = 0;
  try {
    for (let i = 1; i <= INSTANCES; i++) {
      const id = `wa-${i}`;
      const fleet = createFleet({ redis, namespace, instanceId: id, url: `http://${id}:3000`, maxSessions: SESSIONS, profile });
      const supervisor = createSupervisor({
        fleet,
        engine: createSimEngine().factory,
        // The placement probe's own launch is not a restart.
        onEngine: ({ event, sessionId }) => {
          if (sessionId.startsWith('probe-')) return;
          if (event === 'start') starts++;
          else stops++;
        },
      });
      await fleet.start();
      supervisor.start();
      hosts.push({ id, fleet, supervisor });
    }
    const t0 = Date.now();
    const ids = Array.from({ length: SESSIONS }, (_, i) => `s-${String(i).padStart(4, '0')}`);
    // Waits out the new namespace's quarantine.
    await Promise.all(ids.map((sid) => hosts[0].fleet.place(sid)));
    log(`${profile}/${kind}: placed after ${Date.now() - t0} ms (the new namespace's quarantine)`);
    const working = () => {
      const where = new Map();
      for (const h of hosts) for (const s of h.supervisor.sessions()) if (s.status === 'WORKING') where.set(s.sessionId, h.id);
      return where;
    };
    await until('sessions not WORKING', () => working().size === SESSIONS, 60_000);
    await new Promise((r) => setTimeout(r, 2000));
    const startsBefore = starts;
    const stopsBefore = stops;

    const failedAt = Date.now();
    const oldPort = await sentinel.masterPort();
    let promotedAt;
    if (kind === 'planned') {
      await sentinel.failover();
      promotedAt = Date.now();
    } else {
      await sentinel.servers[0].kill('SIGKILL');
      await until('no replica promoted', async () => (await sentinel.masterPort().catch(() => oldPort)) !== oldPort, 120_000, 50);
      promotedAt = Date.now();
    }
    const probe = new Redis(`redis://127.0.0.1:${await sentinel.masterPort()}`);
    probe.on('error', () => undefined);
    const sessionsKey = `{wafleet:${namespace}}:sessions`;
    let placeableAt;
    const consistent = async () => {
      const where = working();
      if (!ids.every((sid) => where.has(sid))) return false;
      const raw = await probe.hgetall(sessionsKey).catch(() => ({}));
      return ids.every((sid) => {
        const rec = raw[sid] && JSON.parse(raw[sid]);
        return rec && rec.status === 'WORKING' && rec.owner === where.get(sid);
      });
    };
    const refusals = new Set();
    const placing = (async () => {
      // A new session: placed once the new era's quarantine is over.
      for (;;) {
        try {
          await hosts[1].fleet.place(`probe-${Date.now()}`);
          placeableAt = Date.now();
          return;
        } catch (err) {
          // Redis unreachable (fails at once) or the quarantine outlasted the wait: try again shortly.
          refusals.add(err.code ?? err.message);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    })();
    // Give the instances one heartbeat to notice before reading "all well" as an answer.
    await new Promise((r) => setTimeout(r, 200));
    await until('sessions not WORKING again', consistent, 180_000, 50);
    const workingAt = Date.now();
    await placing;
    const result = {
      profile,
      kind,
      downAfterMs,
      promotedMs: promotedAt - failedAt,
      stopped: stops - stopsBefore,
      restarted: starts - startsBefore,
      workingMs: workingAt - failedAt,
      placeableMs: placeableAt - failedAt,
      fenced: hosts.reduce((n, h) => n + h.fleet.stats().fencedSessions, 0),
      placeRefusals: [...refusals],
    };
    probe.disconnect();
    log(JSON.stringify(result));
    return result;
  } finally {
    for (const h of hosts) await h.supervisor.close().catch(() => undefined);
    for (const h of hosts) await h.fleet.close().catch(() => undefined);
    await sentinel.stop();
  }
}

async function main() {
  const results = [];
  for (const profile of PROFILES) for (const kind of ['planned', 'crash']) results.push(await run(profile, kind));
  const rows = results.map(
    (r) =>
      `| \`${r.profile}\` | ${r.kind === 'planned' ? 'SENTINEL FAILOVER' : `kill -9, down-after ${r.downAfterMs} ms`} | ${fmt(r.promotedMs)} | ${r.stopped} | ${r.restarted} | ${fmt(r.workingMs)} | ${fmt(r.placeableMs)} |`,
  );
  const section = [
    '## Redis Sentinel failover: time to every session WORKING (issue 15)',
    '',
    `\`node bench/redis-failover.mjs\` — ${isoSeconds(new Date())}, ${machine()}. 1 master, 1 replica, 3 sentinels; 5 in-process`,
    `instances with simulated engines, ${SESSIONS} sessions, each profile exactly as it ships. Times in ms from the start of the failover.`,
    '',
    '| profile | failover | replica promoted | sessions stopped | restarted | all WORKING, registry right | placement again |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
    '"All WORKING, registry right": every session WORKING in the supervisors and its record on the new master',
    'WORKING and naming the instance that runs it (the re-assertion of the new era). "Placement again": a new',
    "session can be placed, after the new era's quarantine (TTL + adoption delay: 7 s `default`, 55 s `tolerant`).",
  ].join('\n');
  publish('redis-failover', section);
}

runMain(main);
