#!/usr/bin/env node
// Registry benchmark (issue 2): keep-alive cost of 10,000 sessions on 20 instances, wafleet vs node-redlock,
// and the latency of fleet.claim(), fleet.owner() and redlock.acquire().
//
//   node bench/registry.mjs        (from the repository root; `pnpm bench` builds first, then runs this)
//
// Spawns its own redis-server on a free port (never the machine's Redis), prints a markdown section to stdout
// and replaces that section of BENCHMARKS.md (between the bench:registry markers). Progress goes to stderr.
//
// Environment overrides (for quick trial runs only; published numbers use the defaults):
//   BENCH_WINDOW_MS   measurement window of each keep-alive run      (default 10000)
//   BENCH_SAMPLES     sequential operations per latency measurement   (default 2000)
//   REDIS_SERVER      redis-server binary                             (default: redis-server on PATH)
//   BENCH_NO_WRITE=1  print only, do not touch BENCHMARKS.md

import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { createFleet } from '@wafleet/core';
import Redlock from 'redlock';

import {
  benchLog,
  fmt,
  isoSeconds,
  machine,
  positiveInt,
  publish,
  range,
  redisClient,
  redisVersion,
  RedisServer,
  runMain,
  runSequential,
  runTag,
  summarize,
  sumBy,
} from './lib.mjs';

const INSTANCES = 20;
const SESSIONS_PER_INSTANCE = 500;
const TOTAL_SESSIONS = INSTANCES * SESSIONS_PER_INSTANCE;
const WINDOW_MS = positiveInt(process.env.BENCH_WINDOW_MS, 10_000);
const SAMPLES = positiveInt(process.env.BENCH_SAMPLES, 2_000);
const WARMUP = 100;
const LOCK_TTL_MS = 6_000; // wafleet's default leaseTtlMs
const EXTEND_EVERY_MS = 1_000; // wafleet's default heartbeatIntervalMs
const SETTLE_MS = 1_500; // after setup, before a window opens: every timer has fired at least once
const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']);

const log = benchLog('bench');

// ---------------------------------------------------------------------------------------------------------
// INFO snapshots
// ---------------------------------------------------------------------------------------------------------

async function snapshot(admin) {
  const text = await admin.info('commandstats', 'cpu', 'stats');
  const calls = {};
  const fields = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (m) calls[m[1]] = Number(m[2]);
    else {
      const kv = /^([a-z_]+):([\d.]+)$/.exec(line);
      if (kv) fields[kv[1]] = Number(kv[2]);
    }
  }
  return { at: performance.now(), calls, fields, cpu: process.cpuUsage() };
}

/** Differences between two snapshots, per second. The INFO calls of this script are excluded. */
function rates(a, b) {
  const seconds = (b.at - a.at) / 1000;
  const perCommand = {};
  let total = 0;
  let scripts = 0;
  for (const [cmd, n] of Object.entries(b.calls)) {
    if (cmd === 'info') continue;
    const d = n - (a.calls[cmd] ?? 0);
    if (d === 0) continue;
    perCommand[cmd] = d;
    total += d;
    if (SCRIPT_COMMANDS.has(cmd)) scripts += d;
  }
  const cpuA = a.fields.used_cpu_user + a.fields.used_cpu_sys;
  const cpuB = b.fields.used_cpu_user + b.fields.used_cpu_sys;
  const nodeCpuMs = (b.cpu.user - a.cpu.user + b.cpu.system - a.cpu.system) / 1000;
  return {
    seconds,
    perCommand,
    commandsPerSec: total / seconds,
    // Every command the clients sent during the windows is a script call, so these are the round trips.
    scriptCallsPerSec: scripts / seconds,
    // Commands that were not script calls themselves: those scripts ran inside Redis.
    innerPerSec: (total - scripts) / seconds,
    redisCpuMsPerSec: ((cpuB - cpuA) * 1000) / seconds,
    nodeCpuMsPerSec: nodeCpuMs / seconds,
    netInBytesPerSec: (b.fields.total_net_input_bytes - a.fields.total_net_input_bytes) / seconds,
    netOutBytesPerSec: (b.fields.total_net_output_bytes - a.fields.total_net_output_bytes) / seconds,
  };
}

async function measureWindow(admin, label) {
  log(`${label}: measuring for ${WINDOW_MS} ms`);
  const a = await snapshot(admin);
  await sleep(WINDOW_MS);
  const b = await snapshot(admin);
  return rates(a, b);
}

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

/** Runs `fn(item)` over `items` with at most `limit` in flight. */
async function pool(items, limit, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++];
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const ms = (x) => fmt(x, 3);

// ---------------------------------------------------------------------------------------------------------
// 1b. node-redlock keep-alive: one lock per session, each extended every second
// ---------------------------------------------------------------------------------------------------------

async function redlockKeepAlive(port, admin) {
  const clients = range(INSTANCES).map(() => redisClient(port));
  await Promise.all(clients.map((c) => c.connect()));
  const redlocks = clients.map((c) => new Redlock([c]));
  const errors = new Map();
  for (const r of redlocks) r.on('error', (err) => errors.set(err.message, (errors.get(err.message) ?? 0) + 1));

  log(`redlock: acquiring ${TOTAL_SESSIONS} locks on ${INSTANCES} clients`);
  const t0 = performance.now();
  const locks = await Promise.all(
    redlocks.map((redlock, inst) =>
      (async () => {
        const mine = new Array(SESSIONS_PER_INSTANCE);
        await pool(range(SESSIONS_PER_INSTANCE), 50, async (i) => {
          mine[i] = {
            key: `bench:${runTag}:lock:i${inst}:s${i}`,
            redlock,
            lock: await redlock.acquire([`bench:${runTag}:lock:i${inst}:s${i}`], LOCK_TTL_MS),
          };
        });
        return mine;
      })(),
    ),
  );
  const setupMs = performance.now() - t0;
  const entries = locks.flat();

  // Each lock gets its own 1 s extension timer, with a random phase so the load is spread like real sessions.
  const counters = { ok: 0, failed: 0, skippedOverlap: 0, minMarginMs: Infinity, maxGapMs: 0 };
  const extendLatencies = [];
  let measuring = false;
  const timers = [];
  const inflight = new Set();
  for (const e of entries) {
    e.lastOkAt = performance.now();
    e.busy = false;
    const tick = () => {
      if (e.busy) {
        counters.skippedOverlap++;
        return;
      }
      e.busy = true;
      const started = performance.now();
      counters.minMarginMs = Math.min(counters.minMarginMs, e.lock.expiration - Date.now());
      const p = e.lock
        .extend(LOCK_TTL_MS)
        .then((lock) => {
          e.lock = lock;
          counters.ok++;
          if (measuring) extendLatencies.push(performance.now() - started);
          counters.maxGapMs = Math.max(counters.maxGapMs, started - e.lastOkAt);
          e.lastOkAt = started;
        })
        .catch((err) => {
          counters.failed++;
          errors.set(err.message, (errors.get(err.message) ?? 0) + 1);
        })
        .finally(() => {
          e.busy = false;
          inflight.delete(p);
        });
      inflight.add(p);
    };
    const phase = Math.random() * EXTEND_EVERY_MS;
    timers.push(
      setTimeout(() => {
        tick();
        timers.push(setInterval(tick, EXTEND_EVERY_MS));
      }, phase),
    );
  }
  await sleep(SETTLE_MS);
  const before = { ...counters };
  measuring = true;
  const window = await measureWindow(admin, 'redlock');
  measuring = false;
  const during = {
    ok: counters.ok - before.ok,
    failed: counters.failed - before.failed,
    skippedOverlap: counters.skippedOverlap - before.skippedOverlap,
  };
  for (const t of timers) clearTimeout(t);
  await Promise.all(inflight);

  // Every lock must still be held: count the keys that still carry their lock's value.
  const pipeline = admin.pipeline();
  for (const e of entries) pipeline.get(e.key);
  const values = await pipeline.exec();
  const held = values.filter(([err, v], i) => !err && v === entries[i].lock.value).length;

  await admin.flushall();
  await Promise.all(clients.map((c) => c.quit()));
  return {
    setupMs,
    window,
    extensions: {
      ...during,
      total: counters,
      minMarginMs: counters.minMarginMs,
      maxGapMs: counters.maxGapMs,
      latency: summarize(extendLatencies),
    },
    held,
    errors: Object.fromEntries(errors),
  };
}

// ---------------------------------------------------------------------------------------------------------
// 1a. wafleet keep-alive: 20 instances, 500 sessions each, default timing
// ---------------------------------------------------------------------------------------------------------

async function wafleetKeepAlive(port, admin) {
  const namespace = `bench-keepalive-${runTag}`;
  const errors = [];
  const fleets = range(INSTANCES).map((i) =>
    createFleet({
      redis: `redis://127.0.0.1:${port}`,
      namespace,
      instanceId: `wa-${i}`,
      url: `http://wa-${i}.bench:3000`,
      maxSessions: SESSIONS_PER_INSTANCE,
      // A fresh namespace starts in quarantine (leaseTtlMs + adoptionDelayMs = 7 s) during which claims wait.
      quarantineMs: 0,
    }),
  );
  for (const f of fleets) f.on('error', (err) => errors.push(err.message));
  log(`wafleet: starting ${INSTANCES} instances`);
  await Promise.all(fleets.map((f) => f.start()));

  log(`wafleet: claiming ${TOTAL_SESSIONS} sessions`);
  const t0 = performance.now();
  await Promise.all(fleets.map((fleet, inst) => pool(range(SESSIONS_PER_INSTANCE), 50, (i) => fleet.claim(`bench-${inst}-${i}`))));
  const setupMs = performance.now() - t0;

  await sleep(SETTLE_MS);
  const before = fleets.map((f) => f.stats());
  const window = await measureWindow(admin, 'wafleet');
  const after = fleets.map((f) => f.stats());

  const instances = await fleets[0].instances();
  const result = {
    setupMs,
    window,
    renewals: sumBy(after, (s) => s.renewals) - sumBy(before, (s) => s.renewals),
    renewalFailures: sumBy(after, (s) => s.renewalFailures) - sumBy(before, (s) => s.renewalFailures),
    fencedSessions: sumBy(after, (s) => s.fencedSessions),
    maxHeartbeatGapMs: Math.max(...after.map((s) => s.maxHeartbeatGapMs)),
    ownedLocally: sumBy(fleets, (f) => f.ownedSessions().size),
    registryLoad: sumBy(instances, (i) => i.load),
    liveInstances: instances.filter((i) => i.live).length,
    errors,
  };

  log('wafleet: closing instances');
  const tClose = performance.now();
  await Promise.all(fleets.map((f) => f.close()));
  result.closeMs = performance.now() - tClose;
  log(`wafleet: closed in ${fmt(result.closeMs)} ms`);
  await admin.flushall();
  return result;
}

// ---------------------------------------------------------------------------------------------------------
// 2. Latency: sequential claim, uncached lookup, and redlock acquire for reference
// ---------------------------------------------------------------------------------------------------------

async function latency(port) {
  const fleet = createFleet({
    redis: `redis://127.0.0.1:${port}`,
    namespace: `bench-latency-${runTag}`,
    instanceId: 'wa-latency',
    url: 'http://wa-latency.bench:3000',
    maxSessions: 100_000,
    quarantineMs: 0,
  });
  await fleet.start();
  const time = async (n, fn) => {
    const out = [];
    await runSequential(fn, 0, n, out);
    return out;
  };

  log(`latency: ${SAMPLES} claims, ${SAMPLES} lookups, ${SAMPLES} redlock acquires (after ${WARMUP} warm-up each)`);
  await time(WARMUP, (i) => fleet.claim(`warm-${i}`));
  const claim = await time(SAMPLES, (i) => fleet.claim(`lat-${i}`));
  await time(WARMUP, (i) => fleet.owner(`warm-${i}`));
  const lookup = await time(SAMPLES, async (i) => {
    const o = await fleet.owner(`lat-${i}`);
    if (!o || o.owner !== 'wa-latency' || !o.live) throw new Error(`lookup of lat-${i} returned ${JSON.stringify(o)}`);
  });
  await fleet.close();

  const client = redisClient(port);
  await client.connect();
  const redlock = new Redlock([client]);
  await time(WARMUP, (i) => redlock.acquire([`bench:${runTag}:warm:${i}`], LOCK_TTL_MS));
  const acquire = await time(SAMPLES, (i) => redlock.acquire([`bench:${runTag}:lat:${i}`], LOCK_TTL_MS));
  await client.quit();
  return { claim: summarize(claim), lookup: summarize(lookup), acquire: summarize(acquire) };
}

// ---------------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------------

function breakdown(perCommand, seconds) {
  return Object.entries(perCommand)
    .sort((a, b) => b[1] - a[1])
    .map(([cmd, n]) => `${cmd.toUpperCase()} ${fmt(n / seconds)}`)
    .join(', ');
}

function report({ redisCommand, redisVersion, wafleet: w, redlock: r, lat, startedAt, runtimeS }) {
  const command = process.env.npm_lifecycle_event === 'bench' ? 'pnpm bench' : 'node bench/registry.mjs';
  const ratio = r.window.commandsPerSec / w.window.commandsPerSec;
  const rtRatio = r.window.scriptCallsPerSec / w.window.scriptCallsPerSec;
  const cpuRatio = r.window.redisCpuMsPerSec / w.window.redisCpuMsPerSec;
  const lines = [
    '## Registry keep-alive and claim latency (issue 2)',
    '',
    `- Command: \`${command}\` (from the repository root; \`pnpm bench\` builds first)`,
    `- Date: ${isoSeconds(startedAt)} (run took ${fmt(runtimeS)} s)`,
    `- Node ${process.version}, Redis ${redisVersion} (a private \`${redisCommand}\` spawned by the script), ioredis 5.9.2, redlock 5.0.0-beta.2`,
    `- Machine: ${machine()}; Redis and the benchmark process share it`,
    '',
    `### Keep-alive cost: ${fmt(TOTAL_SESSIONS)} sessions on ${INSTANCES} instances (${SESSIONS_PER_INSTANCE} each), ${fmt(w.window.seconds, 1)} s window`,
    '',
    `- **wafleet**: ${INSTANCES} \`createFleet()\` instances with default timing (heartbeat 1 s, sweep 1 s, lease 6 s), \`maxSessions: ${SESSIONS_PER_INSTANCE}\`, each claiming ${SESSIONS_PER_INSTANCE} sessions. \`quarantineMs: 0\` skips the start-up quarantine of a fresh namespace (7 s by default); it does not change the steady state.`,
    `- **node-redlock**: ${INSTANCES} ioredis clients (one \`Redlock\` each, one per simulated instance), ${fmt(TOTAL_SESSIONS)} locks from \`redlock.acquire([key], ${LOCK_TTL_MS})\`, each extended with \`lock.extend(${LOCK_TTL_MS})\` every ${EXTEND_EVERY_MS} ms by its own timer (random phase).`,
    "- Rates are `INFO commandstats` deltas over the window, opened after all claims/acquires finished plus 1.5 s; the script's own `INFO` calls are excluded. Redis counts the commands a Lua script runs as well as the `EVALSHA` itself, so both totals are shown.",
    '',
    '| Keep-alive, steady state | wafleet | node-redlock | redlock / wafleet |',
    '| --- | ---: | ---: | ---: |',
    `| **Redis commands/s** (all, incl. inside Lua) | **${fmt(w.window.commandsPerSec)}** | **${fmt(r.window.commandsPerSec)}** | **${fmt(ratio, 1)}x** |`,
    `| Client round trips/s (\`EVALSHA\`) | ${fmt(w.window.scriptCallsPerSec)} | ${fmt(r.window.scriptCallsPerSec)} | ${fmt(rtRatio, 1)}x |`,
    `| Commands run inside Lua/s | ${fmt(w.window.innerPerSec)} | ${fmt(r.window.innerPerSec)} | ${fmt(r.window.innerPerSec / w.window.innerPerSec, 1)}x |`,
    `| Redis CPU (ms per s) | ${fmt(w.window.redisCpuMsPerSec, 1)} | ${fmt(r.window.redisCpuMsPerSec, 1)} | ${fmt(cpuRatio, 1)}x |`,
    `| Redis network in (KB/s) | ${fmt(w.window.netInBytesPerSec / 1024, 1)} | ${fmt(r.window.netInBytesPerSec / 1024, 1)} | ${fmt(r.window.netInBytesPerSec / w.window.netInBytesPerSec, 1)}x |`,
    `| Benchmark process CPU (ms per s) | ${fmt(w.window.nodeCpuMsPerSec, 1)} | ${fmt(r.window.nodeCpuMsPerSec, 1)} | ${fmt(r.window.nodeCpuMsPerSec / w.window.nodeCpuMsPerSec, 1)}x |`,
    `| Renewals in window (ok / failed) | ${fmt(w.renewals)} heartbeats / ${fmt(w.renewalFailures)} | ${fmt(r.extensions.ok)} extensions / ${fmt(r.extensions.failed)} | |`,
    `| Longest gap between renewals (ms) | ${fmt(w.maxHeartbeatGapMs)} (per instance) | ${fmt(r.extensions.maxGapMs)} (per lock) | |`,
    `| Still held after the window | ${fmt(w.registryLoad)} sessions on ${w.liveInstances} live instances, ${fmt(w.fencedSessions)} fenced | ${fmt(r.held)} of ${fmt(TOTAL_SESSIONS)} locks | |`,
    `| Setup: claim / acquire all ${fmt(TOTAL_SESSIONS)} (s) | ${fmt(w.setupMs / 1000, 2)} | ${fmt(r.setupMs / 1000, 2)} | |`,
    '',
    `Ratio (redlock / wafleet), Redis commands per second: **${fmt(ratio, 1)}x** (${fmt(rtRatio, 1)}x in client round trips).`,
    '',
    `Per command, per second: wafleet ${breakdown(w.window.perCommand, w.window.seconds)}; node-redlock ${breakdown(r.window.perCommand, r.window.seconds)}.`,
    `Redlock extension latency during the window: p50 ${ms(r.extensions.latency.p50)} ms, p99 ${ms(r.extensions.latency.p99)} ms; smallest remaining lock validity at an extension ${fmt(r.extensions.minMarginMs)} ms of ${LOCK_TTL_MS}; extensions skipped because the previous one was still running: ${fmt(r.extensions.skippedOverlap)}.`,
    '',
    'Reading the numbers:',
    '',
    `- wafleet's cost grows with instances, not sessions: each instance sends one heartbeat script per second, and the fleet one sweep per second between all instances, claimed by whichever heartbeat finds it due (${INSTANCES} instances: ${fmt(w.window.scriptCallsPerSec)} script calls/s whether they hold ${fmt(TOTAL_SESSIONS)} sessions or none; before issue 16 every instance swept every second, 40 calls/s). The sweep (orphan adoption and pending placement) is something per-session locks do not offer at all.`,
    `- node-redlock's cost grows with sessions: one \`EVALSHA\` (\`GET\` + \`SET PX\` inside) per lock per extension interval.`,
    `- The Redis CPU ratio (${fmt(cpuRatio, 1)}x) is smaller than the command ratio: each wafleet script does more work per call (JSON decoding, sorted-set range scans), and Redis's own background work (\`serverCron\`, client bookkeeping for ${INSTANCES * 3} wafleet or ${INSTANCES} redlock connections) is a floor both columns pay.`,
    '',
    `### Latency: ${fmt(SAMPLES)} sequential operations each (after ${WARMUP} warm-up operations), one client, quiet Redis`,
    '',
    '| Operation | p50 (ms) | p99 (ms) | mean (ms) | max (ms) |',
    '| --- | ---: | ---: | ---: | ---: |',
    `| wafleet \`fleet.claim(id)\` (fresh ids, \`maxSessions: 100000\`) | ${ms(lat.claim.p50)} | ${ms(lat.claim.p99)} | ${ms(lat.claim.mean)} | ${ms(lat.claim.max)} |`,
    `| wafleet \`fleet.owner(id)\` (uncached lookup script) | ${ms(lat.lookup.p50)} | ${ms(lat.lookup.p99)} | ${ms(lat.lookup.mean)} | ${ms(lat.lookup.max)} |`,
    `| node-redlock \`redlock.acquire([key], ${LOCK_TTL_MS})\` (reference) | ${ms(lat.acquire.p50)} | ${ms(lat.acquire.p99)} | ${ms(lat.acquire.mean)} | ${ms(lat.acquire.max)} |`,
    '',
    'Latencies are measured with `performance.now()` around each awaited call, so they include ioredis and the event loop, not only Redis.',
  ];
  const problems = [];
  if (w.renewalFailures > 0 || w.fencedSessions > 0 || w.registryLoad !== TOTAL_SESSIONS)
    problems.push('wafleet did not keep every session');
  if (r.extensions.failed > 0 || r.held !== TOTAL_SESSIONS) problems.push('node-redlock did not keep every lock');
  if (w.errors.length > 0) problems.push(`wafleet errors: ${w.errors.slice(0, 3).join('; ')}`);
  if (Object.keys(r.errors).length > 0) problems.push(`redlock errors: ${JSON.stringify(r.errors).slice(0, 300)}`);
  if (problems.length > 0) lines.push('', `**Warning:** ${problems.join('; ')}.`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------

async function main() {
  const startedAt = new Date();
  const t0 = performance.now();
  const redis = await new RedisServer().start();
  const admin = redisClient(redis.port);
  try {
    await admin.connect();
    const version = await redisVersion(admin);
    const redlock = await redlockKeepAlive(redis.port, admin);
    const wafleet = await wafleetKeepAlive(redis.port, admin);
    const lat = await latency(redis.port);
    const runtimeS = (performance.now() - t0) / 1000;
    publish('registry', report({ redisCommand: redis.command, redisVersion: version, wafleet, redlock, lat, startedAt, runtimeS }));
  } finally {
    admin.disconnect();
    await redis.stop();
    log(`total ${fmt((performance.now() - t0) / 1000, 1)} s`);
  }
}

runMain(main);
