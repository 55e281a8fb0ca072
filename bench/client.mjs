#!/usr/bin/env node
// Client benchmark (issue 3): what a backend pays to find a session's owner and to send it a request.
//
//   node bench/client.mjs          (from the repository root, after `npx -y pnpm@12.4.2 run build`)
//
// 1. Owner lookup, three ways, on the same 1,000 sessions claimed by 3 in-process fleets:
//    (a) `client.lookup(id)` answered from the FleetClient cache (warm, kept fresh by pub/sub pushes);
//    (b) `fleet.owner(id)`: the uncached lookup script, one EVALSHA round trip to Redis;
//    (c) today's pattern: one MariaDB query per message (`pool.execute('SELECT assigned_instance_url ...')`).
// 2. `client.fetch(id, path)` against a real express server guarded by `fleetGuard(fleet)`, next to a direct
//    keep-alive call to the same URL with undici `fetch` and undici `request` over the caller's own Agent.
//
// Spawns its own redis-server on a free port (never the machine's Redis), uses MariaDB on 127.0.0.1:3306
// (user root, no password, database `test`; a table `wafleet_bench_accounts` is created and dropped), prints a
// markdown section to stdout and replaces that section of BENCHMARKS.md (between the bench:client markers).
// Progress goes to stderr.
//
// Environment overrides (for quick trial runs only; published numbers use the defaults):
//   BENCH_LOOKUPS        lookups per measurement                     (default 20000)
//   BENCH_REQUESTS       sequential requests per fetch method        (default 6000; 32-caller runs do 2x)
//   REDIS_SERVER         redis-server binary                         (default: redis-server on PATH)
//   MARIADB_HOST/PORT    MariaDB address                             (default 127.0.0.1:3306)
//   BENCH_NO_WRITE=1     print only, do not touch BENCHMARKS.md

import http from 'node:http';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

import { createFleetClient } from '@wafleet/client';
import { createFleet } from '@wafleet/core';
import { fleetGuard } from '@wafleet/core/express';
import express from 'express';
import mysql from 'mysql2/promise';

import { MARIADB, accountsTable, ensureMariadb } from './mariadb.mjs';
import { Agent, Headers, fetch as undiciFetch, request as undiciRequest } from 'undici';

import {
  benchLog,
  cleanup,
  fmt,
  isoSeconds,
  loadAverage,
  machine,
  onCleanup,
  packageVersion,
  percentile,
  positiveInt,
  publish,
  range,
  redisClient,
  redisVersion,
  RedisServer,
  rotation,
  runConcurrent,
  runMain,
  runSequential,
  runTag,
  summarize,
} from './lib.mjs';

const log = benchLog('bench:client');

const FLEETS = 3;
const SESSIONS = 1_000;
const LOOKUPS = positiveInt(process.env.BENCH_LOOKUPS, 20_000);
const LOOKUP_WARMUP = 2_000;
const LOOKUP_BATCH = 500;
const LOOKUP_CONC_BATCH = 2_000;
const REQUESTS = positiveInt(process.env.BENCH_REQUESTS, 6_000);
const REQUEST_WARMUP = 500;
const REQUEST_BATCH = 100;
const REQUEST_CONC_BATCH = 1_000;
const CONCURRENCY = 32;
const TABLE = 'wafleet_bench_accounts';
// ---------------------------------------------------------------------------------------------------------
// Measurement helpers
// ---------------------------------------------------------------------------------------------------------

/**
 * Measures several methods side by side. Each phase (sequential timed, sequential untimed, concurrent) is cut
 * into batches and every batch runs each method once, in an order that rotates from batch to batch, so a slow
 * moment of a shared machine lands on all methods alike instead of deciding one column.
 */
async function interleaved(label, methods, { warmup, seqN, seqBatch, concN, concBatch }) {
  const names = Object.keys(methods);
  const st = Object.fromEntries(
    names.map((n) => [n, { next: 0, seq: [], batchP50: [], rateMs: 0, rateN: 0, conc: [], concMs: 0, concN: 0 }]),
  );
  const seqBatches = Math.ceil(seqN / seqBatch);
  const concBatches = Math.ceil(concN / concBatch);
  log(
    `${label}: ${names.join(', ')} interleaved: ${fmt(warmup)} warm-up, ${fmt(seqBatches)} x ${fmt(seqBatch)} sequential timed, ` +
      `${fmt(seqBatches)} x ${fmt(seqBatch)} sequential untimed, ${fmt(concBatches)} x ${fmt(concBatch)} with ${CONCURRENCY} callers, each`,
  );
  for (const name of names) {
    const s = st[name];
    await runConcurrent(methods[name], s.next, warmup, CONCURRENCY, []);
    s.next += warmup;
    await runSequential(methods[name], s.next, warmup, null);
    s.next += warmup;
  }
  for (let b = 0; b < seqBatches; b++) {
    for (const name of rotation(b, names)) {
      const s = st[name];
      const batch = [];
      await runSequential(methods[name], s.next, seqBatch, batch);
      s.next += seqBatch;
      for (const x of batch) s.seq.push(x);
      s.batchP50.push(summarize(batch).p50);
    }
  }
  for (let b = 0; b < seqBatches; b++) {
    for (const name of rotation(b, names)) {
      const s = st[name];
      s.rateMs += await runSequential(methods[name], s.next, seqBatch, null);
      s.next += seqBatch;
      s.rateN += seqBatch;
    }
  }
  for (let b = 0; b < concBatches; b++) {
    for (const name of rotation(b, names)) {
      const s = st[name];
      s.concMs += await runConcurrent(methods[name], s.next, concBatch, CONCURRENCY, s.conc);
      s.next += concBatch;
      s.concN += concBatch;
    }
  }
  return Object.fromEntries(
    names.map((name) => {
      const s = st[name];
      return [
        name,
        {
          seq: summarize(s.seq),
          seqRate: (s.rateN * 1000) / s.rateMs,
          conc: { ...summarize(s.conc), perSec: (s.concN * 1000) / s.concMs },
          batchP50: s.batchP50,
        },
      ];
    }),
  );
}

/** Median and interquartile range of `a`'s minus `b`'s p50 in the same batch (the same moment of the run). */
function pairedDiff(a, b) {
  const diffs = a.batchP50.map((x, i) => x - b.batchP50[i]).sort((x, y) => x - y);
  return { p25: percentile(diffs, 25), p50: percentile(diffs, 50), p75: percentile(diffs, 75), n: diffs.length };
}

/** Seeded shuffle, so every method walks the sessions in the same (non-sequential) order. */
function shuffled(items, seed = 42) {
  const out = [...items];
  let s = seed;
  const rand = () => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

const ms = (x) => (Number.isFinite(x) ? (x < 0.1 ? fmt(x, 4) : fmt(x, 3)) : 'n/a');
const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${a / b >= 100 ? fmt(a / b, 0) : fmt(a / b, 1)}x` : 'n/a');

// ---------------------------------------------------------------------------------------------------------
// 1. Owner lookup: client cache, Redis lookup script, MariaDB query
// ---------------------------------------------------------------------------------------------------------

async function lookupBench(redisUrl, mariadb) {
  const namespace = `bench-lookup-${runTag}`;
  const fleets = range(FLEETS).map((i) =>
    createFleet({
      redis: redisUrl,
      namespace,
      instanceId: `wa-${i}`,
      url: `http://wa-${i}.bench:3000`,
      maxSessions: SESSIONS,
      quarantineMs: 0,
    }),
  );
  const errors = [];
  for (const f of fleets) f.on('error', (err) => errors.push(err.message));
  onCleanup('lookup fleets', () => Promise.all(fleets.map((f) => f.close())));
  await Promise.all(fleets.map((f) => f.start()));

  // Session i lives on fleet i % 3; `expected` is what every method must answer.
  const ids = range(SESSIONS).map((i) => `5511${String(900000000 + i)}`);
  const expected = new Map(ids.map((id, i) => [id, fleets[i % FLEETS].url]));
  log(`lookup: claiming ${SESSIONS} sessions on ${FLEETS} fleets`);
  await Promise.all(ids.map((id, i) => fleets[i % FLEETS].claim(id)));
  const order = shuffled(ids);
  const idAt = (i) => order[i % order.length];
  const check = (id, url) => {
    if (url !== expected.get(id)) throw new Error(`lookup of ${id} answered ${JSON.stringify(url)}, expected ${expected.get(id)}`);
  };

  const client = createFleetClient({ redis: redisUrl, namespace });
  onCleanup('lookup client', () => client.close());
  await client.connect();
  for (const id of ids) check(id, (await client.lookup(id))?.ownerUrl); // fills the cache: one registry read each
  const owner = fleets[0];
  const methods = {
    cache: async (i) => {
      const id = idAt(i);
      const o = await client.lookup(id);
      check(id, o.ownerUrl);
    },
    redis: async (i) => {
      const id = idAt(i);
      const o = await owner.owner(id);
      if (!o.live) throw new Error(`owner of ${id} is not live`);
      check(id, o.ownerUrl);
    },
  };

  const results = {};
  if (mariadb.version) {
    const pool = mysql.createPool({ ...MARIADB, connectionLimit: CONCURRENCY, waitForConnections: true });
    onCleanup('mariadb pool', () => pool.end());
    results.mariadbEngine = await accountsTable(pool, TABLE, ids, (id) => expected.get(id), log);
    const sql = `SELECT assigned_instance_url FROM ${TABLE} WHERE session_id = ?`;
    methods.mariadb = async (i) => {
      const id = idAt(i);
      const [rows] = await pool.execute(sql, [id]);
      check(id, rows[0]?.assigned_instance_url);
    };
  }

  const statsBefore = client.stats();
  Object.assign(
    results,
    await interleaved('lookup', methods, {
      warmup: LOOKUP_WARMUP,
      seqN: LOOKUPS,
      seqBatch: LOOKUP_BATCH,
      concN: LOOKUPS,
      concBatch: LOOKUP_CONC_BATCH,
    }),
  );
  const statsAfter = client.stats();
  const cacheStats = {
    lookups: statsAfter.lookups - statsBefore.lookups,
    hits: statsAfter.cacheHits - statsBefore.cacheHits,
    registryReads: statsAfter.registryReads - statsBefore.registryReads,
  };

  results.cacheStats = cacheStats;
  results.errors = errors;
  log('lookup: closing fleets and client');
  await cleanup();
  return results;
}

// ---------------------------------------------------------------------------------------------------------
// 2. fetch overhead: client.fetch vs a direct keep-alive call, against a guarded express route
// ---------------------------------------------------------------------------------------------------------

async function fetchBench(redisUrl) {
  const namespace = `bench-fetch-${runTag}`;
  const server = http.createServer();
  server.keepAliveTimeout = 60_000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  onCleanup('http server', () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  const baseUrl = `http://127.0.0.1:${server.address().port}`;

  const fleet = createFleet({ redis: redisUrl, namespace, instanceId: 'wa-http', url: baseUrl, maxSessions: SESSIONS, quarantineMs: 0 });
  const errors = [];
  fleet.on('error', (err) => errors.push(err.message));
  onCleanup('http fleet', () => fleet.close());
  await fleet.start();

  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');
  app.get('/sessions/:sessionId/ping', fleetGuard(fleet), (req, res) => {
    res.json({ ok: true, sessionId: req.params.sessionId, instance: 'wa-http' });
  });
  server.on('request', app);

  const ids = range(SESSIONS).map((i) => `5521${String(900000000 + i)}`);
  log(`fetch: claiming ${SESSIONS} sessions on ${baseUrl}`);
  const epochs = new Map();
  for (const id of ids) epochs.set(id, (await fleet.claim(id)).epoch);
  const order = shuffled(ids, 7);
  const idAt = (i) => order[i % order.length];

  const client = createFleetClient({ redis: redisUrl, namespace });
  onCleanup('fetch client', () => client.close());
  const agent = new Agent({ connections: CONCURRENCY });
  onCleanup('direct agent', () => agent.close());

  const expectOk = (status, body, id, how) => {
    if (status !== 200 || body.sessionId !== id) throw new Error(`${how} ${id}: HTTP ${status} ${JSON.stringify(body)}`);
  };
  const methods = {
    client: async (i) => {
      const id = idAt(i);
      const res = await client.fetch(id, `/sessions/${id}/ping`);
      expectOk(res.status, await res.json(), id, 'client.fetch');
    },
    fetch: async (i) => {
      const id = idAt(i);
      const res = await undiciFetch(`${baseUrl}/sessions/${id}/ping`, { dispatcher: agent });
      expectOk(res.status, await res.json(), id, 'undici fetch');
    },
    // The same request client.fetch sends (epoch header, per-request timeout signal, URL object), minus wafleet.
    fetchAsClient: async (i) => {
      const id = idAt(i);
      const headers = new Headers();
      headers.set('x-wafleet-epoch', epochs.get(id));
      const res = await undiciFetch(new URL(`sessions/${id}/ping`, `${baseUrl}/`), {
        headers,
        signal: globalThis.AbortSignal.timeout(30_000),
        dispatcher: agent,
      });
      expectOk(res.status, await res.json(), id, 'undici fetch (client options)');
    },
    request: async (i) => {
      const id = idAt(i);
      const { statusCode, body } = await undiciRequest(`${baseUrl}/sessions/${id}/ping`, { dispatcher: agent });
      expectOk(statusCode, await body.json(), id, 'undici request');
    },
  };

  // Fill the client's cache first, as a running backend would have it.
  for (const id of ids) await client.lookup(id);
  const statsBefore = client.stats();
  const merged = await interleaved('fetch', methods, {
    warmup: REQUEST_WARMUP,
    seqN: REQUESTS,
    seqBatch: REQUEST_BATCH,
    concN: 2 * REQUESTS,
    concBatch: REQUEST_CONC_BATCH,
  });
  const statsAfter = client.stats();
  const result = {
    ...merged,
    baseUrl,
    clientStats: {
      lookups: statsAfter.lookups - statsBefore.lookups,
      hits: statsAfter.cacheHits - statsBefore.cacheHits,
      registryReads: statsAfter.registryReads - statsBefore.registryReads,
      failovers: statsAfter.failovers - statsBefore.failovers,
    },
    errors,
  };
  log('fetch: closing');
  await cleanup();
  return result;
}

// ---------------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------------

function report({ env, lookups: L, fetches: F, startedAt, runtimeS }) {
  const c = L.cache;
  const rd = L.redis;
  const db = L.mariadb;
  const fc = F.client;
  const ff = F.fetch;
  const fo = F.fetchAsClient;
  const fr = F.request;
  const lookupRows = [
    ['(a) `client.lookup(id)`, warm FleetClient cache', c],
    ['(b) `fleet.owner(id)`, uncached Redis lookup script (1 `EVALSHA`)', rd],
    [`(c) MariaDB \`pool.execute('SELECT assigned_instance_url FROM ${TABLE} WHERE session_id = ?', [id])\``, db],
  ];
  const row = ([label, r]) =>
    r
      ? `| ${label} | ${ms(r.seq.p50)} | ${ms(r.seq.p99)} | ${ms(r.seq.mean)} | ${fmt(r.seqRate)} | ${fmt(r.conc.perSec)} | ${ms(r.conc.p50)} | ${ms(r.conc.p99)} |`
      : `| ${label} | skipped | | | | | | |`;
  // Latency ratios: slower / faster; throughput ratios: faster's rate / slower's rate. Above 1x: the second is better.
  const cmpRow = (label, slow, fast) =>
    `| ${label} | ${ratio(slow.seq.p50, fast.seq.p50)} | ${ratio(slow.seq.p99, fast.seq.p99)} | ${ratio(fast.seqRate, slow.seqRate)} | ${ratio(fast.conc.perSec, slow.conc.perSec)} |`;
  const overRow = (label, d) =>
    `| ${label} | ${pairedText(pairedDiff(fc, d))} | ${signedMs(fc.seq.p50 - d.seq.p50)} (${ratio(fc.seq.p50, d.seq.p50)}) | ${signedMs(fc.seq.mean - d.seq.mean)} (${ratio(fc.seq.mean, d.seq.mean)}) | ${ratio(fc.seqRate, d.seqRate)} | ${ratio(fc.conc.perSec, d.conc.perSec)} | ${signedMs(fc.conc.p50 - d.conc.p50)} (${ratio(fc.conc.p50, d.conc.p50)}) |`;
  const fetchRows = [
    ['`client.fetch(id, path)`', fc, 'client.fetch'],
    ['direct undici `fetch(url, { dispatcher: agent })`', ff, 'undici fetch'],
    [
      "direct undici `fetch` with `client.fetch`'s request options (`URL` object, `x-wafleet-epoch` header, `AbortSignal.timeout(30000)`)",
      fo,
      'undici fetch with client options',
    ],
    ['direct undici `request(url, { dispatcher: agent })`', fr, 'undici request'],
  ];

  const lines = [
    '## Owner lookup and fetch overhead (issue 3)',
    '',
    '- Command: `node bench/client.mjs` (from the repository root, after `npx -y pnpm@12.4.2 run build`; no root script runs it)',
    `- Date: ${isoSeconds(startedAt)} (run took ${fmt(runtimeS)} s)`,
    `- Node ${process.version}, Redis ${env.redisVersion} (a private \`${env.redisCommand}\` spawned by the script), ${env.mariadbVersion ? `MariaDB ${env.mariadbVersion} on ${MARIADB.host}:${MARIADB.port}${env.mariadbNote}` : 'MariaDB: not reachable, (c) skipped'}`,
    `- ioredis ${env.versions.ioredis}, mysql2 ${env.versions.mysql2}, undici ${env.versions.undici}, express ${env.versions.express}`,
    `- Machine: ${machine()}; Redis, MariaDB and the benchmark process (fleets, clients and the HTTP server alike) share it. Load average at the start ${env.loadAtStart}, at the end ${loadAverage()} (1 / 5 / 15 min): other work was running, so compare rows of one run, not runs.`,
    '',
    `### Owner lookup: ${fmt(SESSIONS)} sessions claimed by ${FLEETS} in-process fleets`,
    '',
    '- Every method answers the owner URL of a session, checked against the expected one on every call; all visit the sessions in the same shuffled order.',
    `- Per method: ${fmt(LOOKUP_WARMUP)} warm-up lookups each sequential and concurrent, then ${fmt(LOOKUPS)} sequential lookups each timed with \`performance.now()\` (p50/p99/mean), then ${fmt(LOOKUPS)} sequential lookups untimed (seq lookups/s), then ${fmt(LOOKUPS)} lookups from ${CONCURRENCY} concurrent callers (lookups/s, and each call's latency under that load, which includes waiting for the other callers). The methods run interleaved: each phase is cut into batches (${fmt(LOOKUP_BATCH)} sequential, ${fmt(LOOKUP_CONC_BATCH)} concurrent) and every batch runs each method once, in a rotating order.`,
    `- (a) one \`createFleetClient()\` whose cache was filled by one lookup of each session beforehand; it answered ${fmt(L.cacheStats.hits)} of the ${fmt(L.cacheStats.lookups)} measured lookups from the cache (${fmt(L.cacheStats.registryReads)} registry reads). (b) one fleet's command connection: one ioredis socket, so concurrent callers' commands are pipelined on it. ${db ? `(c) a mysql2 pool with \`connectionLimit: ${CONCURRENCY}\` (so ${CONCURRENCY} callers never queue for a connection; prepared statements via \`pool.execute\`, cached per connection), an ${L.mariadbEngine} table \`test.${TABLE}\` with the same ${fmt(SESSIONS)} rows (dropped at the end), over TCP on loopback.` : `(c) skipped: ${env.mariadbNote}.`}`,
    '',
    `| Owner lookup | seq p50 (ms) | seq p99 (ms) | seq mean (ms) | seq lookups/s | ${CONCURRENCY} callers: lookups/s | ${CONCURRENCY} callers: p50 (ms) | ${CONCURRENCY} callers: p99 (ms) |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...lookupRows.map(row),
    '',
    `| Ratio (how many times slower / how many times fewer lookups per second) | seq p50 | seq p99 | seq lookups/s | ${CONCURRENCY} callers: lookups/s |`,
    '| --- | ---: | ---: | ---: | ---: |',
    ...(db ? [cmpRow('**MariaDB query (c) vs cache (a)**', db, c)] : []),
    cmpRow('Redis lookup (b) vs cache (a)', rd, c),
    ...(db ? [cmpRow('MariaDB query (c) vs Redis lookup (b)', db, rd)] : []),
    '',
    "Each cell is the first method's latency divided by the second's, or the second's lookups/s divided by the first's: above 1x the second method is faster, below 1x it is slower.",
    '',
    `### \`fetch\` overhead: one fleet behind a real express server on 127.0.0.1, same process`,
    '',
    `- Route \`GET /sessions/:sessionId/ping\` guarded by \`fleetGuard(fleet)\`, answering \`{"ok":true,"sessionId":"...","instance":"wa-http"}\`; ${fmt(SESSIONS)} sessions claimed by that fleet, visited in a shuffled order; every response is checked (200, right session) and its body read as JSON. The server runs in the benchmark's event loop, so req/s is what one Node process doing both ends manages.`,
    `- \`client.fetch\`: cached owner lookup, then undici \`fetch\` over the client's own Agent (32 keep-alive connections per instance) with the epoch header and a per-request timeout signal. Its cache was filled beforehand; ${fmt(F.clientStats.hits)} of ${fmt(F.clientStats.lookups)} lookups were cache hits (${fmt(F.clientStats.registryReads)} registry reads, ${fmt(F.clientStats.failovers)} failovers).`,
    `- Direct calls know the URL in advance and use the caller's own \`new Agent({ connections: ${CONCURRENCY} })\`, as a backend with a reused HTTP client does. The third row sends exactly what \`client.fetch\` sends but without wafleet, to split its overhead into wafleet's own work and the request options it uses.`,
    `- Per method: ${fmt(REQUEST_WARMUP)} warm-up requests each sequential and concurrent, ${fmt(REQUESTS)} sequential timed, ${fmt(REQUESTS)} sequential untimed (seq req/s) and ${fmt(2 * REQUESTS)} from ${CONCURRENCY} concurrent callers, interleaved like the lookups (batches of ${fmt(REQUEST_BATCH)} sequential and ${fmt(REQUEST_CONC_BATCH)} concurrent requests, each method once per batch, rotating order).`,
    '',
    `| Request to the owner | seq p50 (ms) | seq p99 (ms) | seq mean (ms) | seq req/s | ${CONCURRENCY} callers: req/s | ${CONCURRENCY} callers: p50 (ms) | ${CONCURRENCY} callers: p99 (ms) |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...fetchRows.map(row),
    '',
    `| Overhead of \`client.fetch\` | seq p50, paired by batch: median [IQR] | seq p50 | seq mean | seq req/s | ${CONCURRENCY} callers: req/s | ${CONCURRENCY} callers: p50 |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    overRow('**vs direct undici `fetch`**', ff),
    overRow("vs direct undici `fetch` with `client.fetch`'s options (the rest is wafleet's own work)", fo),
    overRow('vs direct undici `request`', fr),
    '',
    `Latency: \`client.fetch\` minus direct (and \`client.fetch\` / direct); req/s: \`client.fetch\` / direct, below 1x it serves fewer. "Paired by batch": the difference of the two methods' p50 within each of the ${fmt(Math.ceil(REQUESTS / REQUEST_BATCH))} sequential batches (run back to back, so under the same machine conditions), median and interquartile range over the batches; an IQR that includes 0 means this run cannot tell the two apart.`,
    '',
    `Reading the numbers: ${reading({ c, rd, db, fc, ff, fo, fr })}`,
  ];
  const problems = [];
  if (L.cacheStats.registryReads > 0) problems.push(`${L.cacheStats.registryReads} cache misses during the cache measurement`);
  if (F.clientStats.failovers > 0) problems.push(`${F.clientStats.failovers} failovers during the fetch measurement`);
  if (L.errors.length > 0 || F.errors.length > 0) problems.push(`fleet errors: ${[...L.errors, ...F.errors].slice(0, 3).join('; ')}`);
  if (problems.length > 0) lines.push('', `**Warning:** ${problems.join('; ')}.`);
  return lines.join('\n');
}

function pairedText(d) {
  return `${signedMs(d.p50)} [${signedMs(d.p25).replace(' ms', '')} … ${signedMs(d.p75)}]`;
}

function signedMs(x) {
  return `${x >= 0 ? '+' : '−'}${ms(Math.abs(x))} ms`;
}

/** "1.3x slower" / "about the same" / "1.3x faster", for a / b where lower is better. */
function compare(a, b) {
  const r = a / b;
  if (!Number.isFinite(r)) return 'n/a';
  if (r > 1.15) return `${ratio(a, b)} slower than`;
  if (r < 1 / 1.15) return `${ratio(b, a)} faster than`;
  return 'about as fast as';
}

function reading({ c, rd, db, fc, ff, fo, fr }) {
  const parts = [];
  parts.push(
    `a warm cache answers an owner lookup in ${ms(c.seq.p50)} ms at the median: a \`Map\` read behind an \`await\`, no I/O. That is ${ratio(rd.seq.p50, c.seq.p50)} less than one uncached Redis lookup (${ms(rd.seq.p50)} ms)${db ? ` and ${ratio(db.seq.p50, c.seq.p50)} less than today's MariaDB query per message (${ms(db.seq.p50)} ms)` : ''}.`,
  );
  if (db) {
    parts.push(
      `On this machine, over loopback, the MariaDB point query is ${compare(db.seq.p50, rd.seq.p50)} the Redis lookup script (p50 ${ms(db.seq.p50)} vs ${ms(rd.seq.p50)} ms, p99 ${ms(db.seq.p99)} vs ${ms(rd.seq.p99)} ms), so one at a time the saving comes from the cache, not from asking Redis instead of the database; with ${CONCURRENCY} callers MariaDB serves ${fmt(db.conc.perSec)} lookups/s against Redis's ${fmt(rd.conc.perSec)} (${ratio(rd.conc.perSec, db.conc.perSec)}), Redis pipelining every caller's command on one socket while MariaDB runs each query on its own pooled connection, all on the same ${os.availableParallelism()} cores. Across a real network both would add a round trip the cache does not.`,
    );
  }
  const total = pairedDiff(fc, ff);
  const own = pairedDiff(fc, fo);
  const opts = pairedDiff(fo, ff);
  const unresolved = (d) => d.p25 <= 0 && d.p75 >= 0;
  parts.push(
    `\`client.fetch\` costs ${signedMs(total.p50)} per request at the sequential median over a plain direct undici \`fetch\` to the same URL (paired by batch; ${ratio(fc.seq.p50, ff.seq.p50)} the p50) and serves ${ratio(fc.conc.perSec, ff.conc.perSec)} its req/s with ${CONCURRENCY} callers.` +
      ` Of that, ${signedMs(opts.p50)} comes with the request options it sends (URL object, epoch header, a timeout signal per request)${unresolved(opts) ? ', not resolved by this run' : ''}` +
      ` and ${signedMs(own.p50)} with the rest of \`client.fetch\` (cached lookup, id validation, the wrapper's awaits, its own Agent)${unresolved(own) ? ', which this run cannot tell apart from zero' : ''}.` +
      ` For comparison, undici \`request\` is ${compare(fr.seq.p50, ff.seq.p50)} undici \`fetch\` (p50 ${ms(fr.seq.p50)} vs ${ms(ff.seq.p50)} ms)${ff.seq.p50 - fr.seq.p50 > Math.abs(total.p50) ? ': the HTTP API a backend uses matters more than what wafleet adds' : ''}.`,
  );
  return parts.join(' ');
}

// ---------------------------------------------------------------------------------------------------------

async function main() {
  const startedAt = new Date();
  const t0 = performance.now();
  const loadAtStart = loadAverage();
  const mariadb = await ensureMariadb();
  if (!mariadb.version) log(`(c) will be skipped: ${mariadb.note}`);
  const redis = await new RedisServer().start();
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const admin = redisClient(redis.port);
  try {
    await admin.connect();
    const version = await redisVersion(admin);
    const lookups = await lookupBench(redisUrl, mariadb);
    await admin.flushall();
    const fetches = await fetchBench(redisUrl);
    const env = {
      loadAtStart,
      redisVersion: version,
      redisCommand: redis.command,
      mariadbVersion: mariadb.version,
      mariadbNote: mariadb.note,
      versions: Object.fromEntries(['ioredis', 'mysql2', 'undici', 'express'].map((n) => [n, packageVersion(n)])),
    };
    publish('client', report({ env, lookups, fetches, startedAt, runtimeS: (performance.now() - t0) / 1000 }), { after: 'registry' });
  } finally {
    await cleanup();
    admin.disconnect();
    await redis.stop();
    log(`total ${fmt((performance.now() - t0) / 1000, 1)} s`);
  }
}

runMain(main);
