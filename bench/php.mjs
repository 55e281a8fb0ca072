#!/usr/bin/env node
// PHP kit benchmark (issue 10): what a Laravel/PHP backend pays to find a session's owner and to send it a request.
//
//   node bench/php.mjs          (from the repository root, after `npx -y pnpm@12.4.2 run build`; needs php-cli,
//                                php-redis, php-mysql and Debian's php-guzzlehttp-guzzle)
//
// One PHP process (bench/php/bench.php) measures side by side, in interleaved rounds, on 1,000 sessions claimed by
// 3 in-process fleets:
// 1. owner lookup: `$fleet->lookup($id)` from the kit's per-process cache; `$fleet->lookup($id, true)`, the
//    registry's own Lua lookup (one EVALSHA); and today's pattern, one MariaDB query per message (PDO prepared
//    `SELECT assigned_instance_url ...`);
// 2. a request to the owner: `$fleet->send($id, 'GET', "/sessions/$id/ping")` next to the same request sent directly
//    with a pooled Guzzle client to the URL the backend already knows, and to a non-owner, which forwards it (what a
//    backend behind a round-robin load balancer gets). The route is an express route guarded by
//    `fleetGuard(fleet, { misdirected: 'forward' })`, served by this Node process.
//
// Spawns its own redis-server on a free port, uses MariaDB on 127.0.0.1:3306 (user root, database `test`; a table
// `wafleet_bench_php_accounts` is created and dropped), prints a markdown section and replaces that section of
// BENCHMARKS.md (between the bench:php markers).
//   BENCH_LOOKUPS (default 20000), BENCH_REQUESTS (default 4000), BENCH_NO_WRITE=1: print only.

import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';

import { createFleet } from '@wafleet/core';
import { fleetGuard } from '@wafleet/core/express';
import express from 'express';
import mysql from 'mysql2/promise';

import {
  ROOT,
  benchLog,
  fmt,
  isoSeconds,
  loadAverage,
  machine,
  onCleanup,
  positiveInt,
  publish,
  range,
  RedisServer,
  runMain,
  runTag,
  tempDir,
} from './lib.mjs';
import { MARIADB, accountsTable, ensureMariadb } from './mariadb.mjs';

const FLEETS = 3;
const SESSIONS = 1_000;
const LOOKUPS = positiveInt(process.env.BENCH_LOOKUPS, 20_000);
const REQUESTS = positiveInt(process.env.BENCH_REQUESTS, 4_000);
const TABLE = 'wafleet_bench_php_accounts';
const log = benchLog('bench:php');

async function instance(redisUrl, namespace, i) {
  const app = express();
  const server = http.createServer(app);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(`server ${i}`, () => new Promise((resolve) => server.close(resolve)));
  const url = `http://127.0.0.1:${server.address().port}`;
  const fleet = createFleet({ redis: redisUrl, namespace, instanceId: `wa-${i}`, url, maxSessions: SESSIONS, quarantineMs: 0 });
  // Forwarding on: a request that reaches a non-owner (through a load balancer) is passed to the owner.
  app.get('/sessions/:sessionId/ping', fleetGuard(fleet, { misdirected: 'forward' }), (req, res) =>
    res.json({ ok: true, sessionId: req.params.sessionId }),
  );
  onCleanup(`fleet ${i}`, () => fleet.close());
  await fleet.start();
  return fleet;
}

async function main() {
  const startedAt = new Date();
  const redis = new RedisServer();
  await redis.start();
  onCleanup('redis-server', () => redis.stop());
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const namespace = `bench-php-${runTag}`;
  const fleets = await Promise.all(range(FLEETS).map((i) => instance(redisUrl, namespace, i)));
  const ids = range(SESSIONS).map((i) => `5511${String(900000000 + i)}`);
  const expected = Object.fromEntries(ids.map((id, i) => [id, fleets[i % FLEETS].url]));
  const elsewhere = Object.fromEntries(ids.map((id, i) => [id, fleets[(i + 1) % FLEETS].url]));
  log(`claiming ${SESSIONS} sessions on ${FLEETS} fleets`);
  await Promise.all(ids.map((id, i) => fleets[i % FLEETS].claim(id)));

  const mariadb = await ensureMariadb();
  let engine = '';
  if (mariadb.version) {
    const pool = mysql.createPool({ ...MARIADB, connectionLimit: 2 });
    onCleanup('mariadb pool', () => pool.end());
    engine = await accountsTable(pool, TABLE, ids, (id) => expected[id], log);
  }

  const dir = tempDir('wafleet-bench-php-');
  writeFileSync(path.join(dir, 'ids.json'), JSON.stringify(ids));
  writeFileSync(path.join(dir, 'expected.json'), JSON.stringify(expected));
  writeFileSync(path.join(dir, 'elsewhere.json'), JSON.stringify(elsewhere));
  log(`running php: ${LOOKUPS} lookups and ${REQUESTS} requests per method`);
  // Asynchronous: the instances PHP calls are served by this process's event loop.
  const php = await promisify(execFile)('php', [path.join(ROOT, 'bench', 'php', 'bench.php')], {
    encoding: 'utf8',
    env: {
      ...process.env,
      BENCH_IDS_FILE: path.join(dir, 'ids.json'),
      BENCH_EXPECTED_FILE: path.join(dir, 'expected.json'),
      BENCH_ELSEWHERE_FILE: path.join(dir, 'elsewhere.json'),
      BENCH_REDIS_PORT: String(redis.port),
      BENCH_NAMESPACE: namespace,
      BENCH_LOOKUPS: String(LOOKUPS),
      BENCH_REQUESTS: String(REQUESTS),
      BENCH_MARIADB_TABLE: mariadb.version ? TABLE : '',
      BENCH_MARIADB_PORT: String(MARIADB.port),
    },
    maxBuffer: 16 * 1024 * 1024,
  });
  const r = JSON.parse(php.stdout.trim().split('\n').at(-1));
  publish('php', report(r, { startedAt, mariadb, engine }), { after: 'client' });
}

function report(r, { startedAt, mariadb, engine }) {
  const ms = (x) => fmt(x, 3);
  const row = (label, s) => `| ${label} | ${fmt(s.n)} | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.mean)} | ${fmt(s.perSecond)} |`;
  const L = r.lookup;
  const S = r.send;
  const lines = [
    '## PHP kit: owner lookup and send (`node bench/php.mjs`)',
    '',
    `Run ${isoSeconds(startedAt)}, ${machine()}, load average ${loadAverage()}; PHP ${r.php} with phpredis and Guzzle (Debian), one PHP process, sequential calls; ${FLEETS} in-process fleets, ${fmt(SESSIONS)} sessions, methods interleaved in 10 rounds. Times in ms.`,
    '',
    '### Owner lookup',
    '',
    '| method | calls | p50 | p99 | mean | per second |',
    '|---|---|---|---|---|---|',
    row('`$fleet->lookup($id)`: per-process cache', L.cache),
    row('`$fleet->lookup($id, true)`: registry Lua lookup (1 EVALSHA)', L.redis),
    ...(L.mariadb ? [row(`MariaDB query per message (${engine}, PDO prepared)`, L.mariadb)] : []),
    '',
    L.mariadb
      ? `The cached lookup is ${fmt(L.mariadb.mean / L.cache.mean, 0)}x faster than a MariaDB query per message (mean); an uncached registry lookup takes ${fmt(L.redis.mean / L.mariadb.mean, 2)}x the time of that query. The cache is per PHP process: each PHP-FPM worker pays one uncached lookup per session, then reads its cache until the entry's TTL (60 s) or a 421.`
      : `MariaDB not measured: ${mariadb.note}.`,
    '',
    '### Request to the owner',
    '',
    '| method | requests | p50 | p99 | mean | per second |',
    '|---|---|---|---|---|---|',
    row('direct: pooled Guzzle client, URL known', S.direct),
    row('`$fleet->send()`: cached lookup + epoch header + checks', S.send),
    row('forwarded: direct Guzzle request to a non-owner, which forwards it', S.forwarded),
    '',
    `\`send\` costs ${ms(S.send.p50 - S.direct.p50)} ms more than a direct request at p50 (${fmt(S.send.mean / S.direct.mean, 2)}x the mean), for a request that also fails over and never reaches a stale owner. A request that lands on a non-owner and is forwarded (no wafleet code on the caller) costs ${ms(S.forwarded.p50 - S.direct.p50)} ms more at p50 (${fmt(S.forwarded.mean / S.direct.mean, 2)}x the mean): one more hop through a Node process.`,
  ];
  return lines.join('\n');
}

runMain(main);
