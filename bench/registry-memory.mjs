#!/usr/bin/env node
// Registry memory (issue 16, acceptance 3): Redis memory per session record and per instance, at 10,000 sessions
// on 20 instances and 100,000 sessions on 200 instances.
//
//   node bench/registry-memory.mjs    (from the repository root, after `npx -y pnpm@12.4.2 run build`)
//
// Each configuration gets a fresh private redis-server (no persistence). The instances are real `createFleet()`
// instances in this process (default timing, `quarantineMs: 0`, an `http://10.0.x.y:3000` URL, one label), each
// claiming its share of sessions (ids `wa-session-000001`, the length of a typical phone-number id); every session is
// then recorded WORKING, as in steady state. Measured: `INFO memory` used_memory before and after (the whole cost,
// allocator overhead included), and `MEMORY USAGE <key> SAMPLES 0` of each registry key (exact).
//
// Prints a markdown section and replaces it in BENCHMARKS.md (between the bench:registry-memory markers).
//   BENCH_NO_WRITE=1  print only, do not touch BENCHMARKS.md

import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import { createFleet, createSupervisor, registryKeys } from '@wafleet/core';
import { createSimEngine } from '@wafleet/sim';

import { benchLog, fmt, isoSeconds, machine, publish, RedisServer, redisClient, redisVersion, runMain } from './lib.mjs';

const CONFIGS = [
  { sessions: 10_000, instances: 20 },
  { sessions: 10_000, instances: 200 },
  { sessions: 100_000, instances: 200 },
];
/** Steady-state window for the keep-alive cost, after the sessions are WORKING. */
const STEADY_MS = 10_000;
const LOOKUPS = 1000;
const HEAP_SESSIONS = 1000;
const log = benchLog('bench:registry-memory');

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
const heapUsed = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

/** The instance process's heap per supervised session: one fleet + supervisor with simulated engines, 1,000 sessions. */
async function measureHeap() {
  const server = await new RedisServer({ name: 'heap' }).start();
  const fleet = createFleet({
    redis: `redis://127.0.0.1:${server.port}`,
    namespace: 'heap',
    instanceId: 'wa-1',
    url: 'http://10.0.0.1:3000',
    maxSessions: HEAP_SESSIONS,
    quarantineMs: 0,
  });
  const supervisor = createSupervisor({
    fleet,
    engine: createSimEngine({ authDelayMs: 1, readyDelayMs: 1 }).factory,
    startConcurrency: 16,
  });
  try {
    await fleet.start();
    supervisor.start();
    await new Promise((r) => setTimeout(r, 2000));
    const before = heapUsed();
    const ids = Array.from({ length: HEAP_SESSIONS }, (_, i) => `wa-session-${String(i + 1).padStart(6, '0')}`);
    for (let i = 0; i < ids.length; i += 100) await Promise.all(ids.slice(i, i + 100).map((sid) => supervisor.startSession(sid)));
    const t0 = Date.now();
    while (supervisor.sessions().filter((x) => x.status === 'WORKING').length < HEAP_SESSIONS) {
      if (Date.now() - t0 > 120_000) throw new Error('sessions not WORKING within 120 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    // Some probes, status writes and transitions in steady state first.
    await new Promise((r) => setTimeout(r, 5000));
    return { sessions: HEAP_SESSIONS, perSession: (heapUsed() - before) / HEAP_SESSIONS };
  } finally {
    await supervisor.close().catch(() => undefined);
    await fleet.close().catch(() => undefined);
    await server.stop();
  }
}

const usedMemory = async (client) => Number(/used_memory:(\d+)/.exec(await client.info('memory'))[1]);
/** EVALSHA calls and their Redis time (commandstats), and Redis CPU seconds, now. */
async function scriptStats(client) {
  const stats = await client.info('commandstats');
  const cpu = await client.info('cpu');
  const m = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(stats);
  const num = (name) => Number(new RegExp(`${name}:([\\d.]+)`).exec(cpu)?.[1] ?? 0);
  return { at: Date.now(), calls: Number(m?.[1] ?? 0), usec: Number(m?.[2] ?? 0), cpu: num('used_cpu_sys') + num('used_cpu_user') };
}

/** The registry's scripts by sha (from @wafleet/protocol, the copy @wafleet/core runs on). */
async function scriptNames() {
  const coreRequire = createRequire(createRequire(import.meta.url).resolve('@wafleet/core'));
  // The require condition's entry: a CommonJS wrapper, whose exports arrive as `default`.
  const protocol = await import(pathToFileURL(coreRequire.resolve('@wafleet/protocol')).href);
  const { scripts } = protocol.scripts ? protocol : protocol.default;
  return new Map(Object.values(scripts).map((x) => [x.sha, x.name]));
}

/** Every command Redis runs from now on goes to its slow log, with its execution time. */
async function logEveryCommand(client) {
  await client.config('SET', 'slowlog-max-len', '1000000');
  await client.config('SET', 'slowlog-log-slower-than', '0');
  await client.slowlog('RESET');
}

/** Script calls and their Redis time (µs) by script name, from the slow log; then logging goes back to normal. */
async function scriptsByName(client, names) {
  const entries = await client.slowlog('GET', '-1');
  await client.config('SET', 'slowlog-log-slower-than', '10000');
  await client.slowlog('RESET');
  const by = {};
  for (const [, , micros, args] of entries) {
    if (String(args[0]).toLowerCase() !== 'evalsha') continue;
    const name = names.get(String(args[1])) ?? String(args[1]).slice(0, 8);
    by[name] ??= { calls: 0, usec: 0 };
    by[name].calls++;
    by[name].usec += Number(micros);
  }
  return by;
}

const usage = async (client, key) => Number((await client.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0);

async function measure({ sessions, instances }) {
  const server = await new RedisServer({ name: `${sessions}` }).start();
  const client = redisClient(server.port);
  await client.connect();
  const redis = `redis://127.0.0.1:${server.port}`;
  const namespace = 'production';
  const keys = registryKeys(namespace);
  const fleets = [];
  try {
    const version = await redisVersion(client);
    const before = await usedMemory(client);
    for (let i = 0; i < instances; i++) {
      const fleet = createFleet({
        redis,
        namespace,
        instanceId: `wa-${String(i + 1).padStart(3, '0')}`,
        url: `http://10.0.${Math.floor(i / 250)}.${(i % 250) + 1}:3000`,
        labels: { zone: 'eu-west-1a' },
        maxSessions: Math.ceil(sessions / instances),
        quarantineMs: 0,
      });
      await fleet.start();
      fleets.push(fleet);
    }
    const afterInstances = await usedMemory(client);
    const per = sessions / instances;
    const t0 = Date.now();
    // 200 commands in flight at a time: more would wait past the command timeout on two cores.
    for (const [i, fleet] of fleets.entries()) {
      for (let j = 0; j < per; j += 200) {
        const ids = Array.from({ length: Math.min(200, per - j) }, (_, k) => `wa-session-${String(i * per + j + k + 1).padStart(6, '0')}`);
        await Promise.all(ids.map((sid) => fleet.claim(sid)));
        await Promise.all(ids.map((sid) => fleet.setStatus(sid, 'WORKING')));
      }
    }
    log(`${sessions} sessions claimed and WORKING in ${Date.now() - t0} ms`);
    const after = await usedMemory(client);
    const keyUsage = {};
    for (const name of ['sessions', 'owned', 'instances', 'instanceInfo', 'meta', 'pending'])
      keyUsage[name] = await usage(client, keys[name]);
    const sample = await client.hget(keys.sessions, 'wa-session-000001');
    const recordBytes = sample.length;
    // Steady state: every instance renews once a second, the fleet sweeps once a second; how much that costs Redis.
    await new Promise((r) => setTimeout(r, 2000));
    await logEveryCommand(client);
    const stats0 = await scriptStats(client);
    await new Promise((r) => setTimeout(r, STEADY_MS));
    const stats1 = await scriptStats(client);
    const seconds = (stats1.at - stats0.at) / 1000;
    const byScript = await scriptsByName(client, await scriptNames());
    const script = (name) => ({
      perSec: (byScript[name]?.calls ?? 0) / seconds,
      us: (byScript[name]?.usec ?? 0) / Math.max(1, byScript[name]?.calls ?? 0),
    });
    // Owner lookups through the registry's script (no client cache): what a backend pays per uncached lookup.
    const latencies = [];
    for (let i = 0; i < LOOKUPS; i++) {
      const sid = `wa-session-${String(1 + Math.floor(Math.random() * sessions)).padStart(6, '0')}`;
      const l0 = performance.now();
      await fleets[i % fleets.length].owner(sid);
      latencies.push(performance.now() - l0);
    }
    latencies.sort((a, b) => a - b);
    return {
      scriptsPerSec: (stats1.calls - stats0.calls) / seconds,
      usPerScript: (stats1.usec - stats0.usec) / Math.max(1, stats1.calls - stats0.calls),
      cpuMsPerSec: ((stats1.cpu - stats0.cpu) * 1000) / seconds,
      heartbeat: script('heartbeat'),
      sweep: script('sweep'),
      others: Object.keys(byScript).filter((n) => n !== 'heartbeat' && n !== 'sweep'),
      lookupP50: latencies[Math.floor(LOOKUPS * 0.5)],
      lookupP99: latencies[Math.floor(LOOKUPS * 0.99)],
      sessions,
      instances,
      version,
      perSessionUsed: (after - afterInstances) / sessions,
      perSessionKeys: (keyUsage.sessions + keyUsage.owned) / sessions,
      sessionsKeyPer: keyUsage.sessions / sessions,
      ownedKeyPer: keyUsage.owned / sessions,
      perInstanceUsed: (afterInstances - before) / instances,
      perInstanceKeys: (keyUsage.instances + keyUsage.instanceInfo) / instances,
      totalMiB: (after - before) / 2 ** 20,
      recordBytes,
      sample,
    };
  } finally {
    await Promise.all(fleets.map((f) => f.close().catch(() => undefined)));
    client.disconnect();
    await server.stop();
  }
}

async function main() {
  const results = [];
  for (const config of CONFIGS) results.push(await measure(config));
  const heap = await measureHeap();
  const rows = results.map(
    (r) =>
      `| ${fmt(r.sessions)} on ${r.instances} | ${fmt(r.perSessionUsed)} | ${fmt(r.perSessionKeys)} (${fmt(r.sessionsKeyPer)} + ${fmt(r.ownedKeyPer)}) | ${fmt(r.perInstanceUsed)} | ${fmt(r.perInstanceKeys)} | ${fmt(r.totalMiB, 1)} |`,
  );
  const r = results.at(-1);
  const section = [
    '## Registry memory per session and per instance (issue 16)',
    '',
    `\`node bench/registry-memory.mjs\` — ${isoSeconds(new Date())}, ${machine()}, Redis ${r.version}. Real \`createFleet()\``,
    'instances (default timing, one label, a private-network URL), each claiming its share; every session recorded WORKING.',
    'A fresh private redis-server per row.',
    '',
    '| sessions on instances | bytes per session (used_memory delta) | bytes per session (MEMORY USAGE: sessions hash + owned index) | bytes per instance (used_memory delta) | bytes per instance (MEMORY USAGE: instances + instance-info) | registry total (MiB) |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
    `A session record is one field of the \`sessions\` hash holding ${r.recordBytes} bytes of JSON, e.g.`,
    `\`${r.sample}\`, plus a member \`<instanceId>:<sessionId>\` of the \`owned\` sorted set.`,
    "The `used_memory` columns include the client buffers of the instances' connections (three each), which grow and shrink with traffic: with 200 instances and only 10,000 sessions the per-session delta even came out negative. `MEMORY USAGE` is the exact per-record figure.",
    '',
    `Instance process: ${fmt(heap.perSession)} bytes of V8 heap per supervised session (one fleet and supervisor,`,
    `${fmt(heap.sessions)} WORKING sessions on the simulated engine, heap after two full GCs, 5 s of steady state: probes,`,
    'status records, transitions kept). A real session adds its Chromium (about 350 MiB, BENCHMARKS issue 13) and the',
    'whatsapp-web.js `Client` objects, which this figure leaves out.',
    '',
    `### How the registry's costs grow with instances and sessions (same runs, ${STEADY_MS / 1000} s of steady state)`,
    '',
    '| sessions on instances | script calls/s (heartbeats + the sweep) | Redis time per script call (µs) | heartbeats/s | Redis time per heartbeat (µs) | sweeps/s | Redis time per sweep (µs) | Redis CPU (ms per s) | owner lookup p50 / p99 (ms, uncached, ' +
      `${fmt(LOOKUPS)} sequential) |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...results.map(
      (x) =>
        `| ${fmt(x.sessions)} on ${x.instances} | ${fmt(x.scriptsPerSec, 1)} | ${fmt(x.usPerScript, 1)} | ${fmt(x.heartbeat.perSec, 1)} | ${fmt(x.heartbeat.us, 1)} | ${fmt(x.sweep.perSec, 1)} | ${fmt(x.sweep.us, 1)} | ${fmt(x.cpuMsPerSec, 1)} | ${fmt(x.lookupP50, 2)} / ${fmt(x.lookupP99, 2)} |`,
    ),
    '',
    "Per script from Redis's slow log with a threshold of 0 during the window (every command logged with its execution",
    'time; the logging costs Redis time itself, so compare heartbeat and sweep within a row, not these rows with runs without it)' +
      `${results.some((x) => x.others.length > 0) ? `; other scripts in the window: ${[...new Set(results.flatMap((x) => x.others))].join(', ')}` : ''}.`,
    '',
    'Script calls grow with instances (one heartbeat each per second, plus one sweep for the fleet), not with sessions;',
    "a heartbeat counts its instance's sessions with one `ZLEXCOUNT` (logarithmic in the owned index), a lookup reads one",
    'hash field. The sweep scans only dead instances and due placements.',
  ].join('\n');
  publish('registry-memory', section);
}

runMain(main);
