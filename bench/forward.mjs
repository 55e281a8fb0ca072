#!/usr/bin/env node
// Forwarding benchmark: what a request pays when it reaches a non-owner that forwards it to the owner
// (`fleetGuard(fleet, { misdirected: 'forward' })`) instead of reaching the owner directly.
//
//   node bench/forward.mjs          (from the repository root, after `npx -y pnpm@12.4.2 run build`)
//
// Two instance processes (bench/forward/instance.mjs), each a fleet plus an express server with the forwarding
// guard: the owner claims every session, the other owns none. The benchmark process sends the same requests
// directly to the owner and to the other instance (which forwards them), over one keep-alive undici Agent:
// GET /sessions/:id/ping and POST /sessions/:id/echo with a 1 KiB JSON body (streamed through the forwarder,
// no body parser). Sequential batches run the four methods in rotating order (paired by batch), then batches
// from 32 concurrent callers.
//
// Spawns its own redis-server on a free port (never the machine's Redis), prints a markdown section to stdout
// and replaces that section of BENCHMARKS.md (between the bench:forward markers). Progress goes to stderr.
//
// Environment overrides (for quick trial runs only; published numbers use the defaults):
//   BENCH_REQUESTS       sequential requests per method              (default 4000; 32-caller runs do 2x)
//   REDIS_SERVER         redis-server binary                         (default: redis-server on PATH)
//   BENCH_NO_WRITE=1     print only, do not touch BENCHMARKS.md

import { spawn } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import { Agent, request } from 'undici';

import {
  ROOT,
  benchLog,
  cleanup,
  fmt,
  isoSeconds,
  loadAverage,
  machine,
  onCleanup,
  packageVersion,
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
  track,
} from './lib.mjs';

const log = benchLog('forward');
const INSTANCE = path.join(ROOT, 'bench', 'forward', 'instance.mjs');
const SESSIONS = 200;
const REQUESTS = positiveInt(process.env.BENCH_REQUESTS, 4_000);
const WARMUP = 300;
const BATCH = 100;
const CONC_BATCH = 1_000;
const CONCURRENCY = 32;
const BODY = JSON.stringify({ text: 'x'.repeat(1000) });

/** Starts an instance child; resolves with its URL and the epochs of the sessions it claimed. */
function startInstance(config) {
  const child = track(spawn(process.execPath, [INSTANCE, JSON.stringify(config)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  onCleanup(`instance ${config.instanceId}`, async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-2000)));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const line = out.split('\n').find((l) => l.startsWith('ready '));
      if (line) {
        const [, url, epochs] = line.match(/^ready (\S+) (.*)$/);
        resolve({ url, epochs: JSON.parse(epochs) });
      }
    });
    child.once('exit', (code) => reject(new Error(`instance ${config.instanceId} exited (${code}): ${stderr}`)));
  });
}

const ms = (x) => fmt(x, x < 1 ? 3 : 2);

async function main() {
  const startedAt = new Date();
  const t0 = performance.now();
  const loadAtStart = loadAverage();
  const redis = await new RedisServer().start();
  onCleanup('redis-server', () => redis.stop());
  const admin = redisClient(redis.port);
  await admin.connect();
  onCleanup('redis client', async () => admin.disconnect());
  const version = await redisVersion(admin);
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const namespace = `bench-forward-${runTag}`;
  const ids = range(SESSIONS).map((i) => `5531${String(900000000 + i)}`);

  log(`starting the owner (claims ${SESSIONS} sessions) and the forwarder`);
  const owner = await startInstance({ redis: redisUrl, namespace, instanceId: 'owner', claim: ids });
  const forwarder = await startInstance({ redis: redisUrl, namespace, instanceId: 'forwarder', claim: [] });
  const agent = new Agent({ connections: CONCURRENCY, keepAliveTimeout: 60_000 });
  onCleanup('caller agent', () => agent.close());

  const call = (base, method, forwarded) => async (i) => {
    const id = ids[i % ids.length];
    const post = method === 'POST';
    const { statusCode, headers, body } = await request(`${base}/sessions/${id}/${post ? 'echo' : 'ping'}`, {
      method,
      dispatcher: agent,
      ...(post ? { body: BODY, headers: { 'content-type': 'application/json' } } : {}),
    });
    const json = await body.json();
    if (statusCode !== 200 || json.instance !== 'owner' || (post && json.bytes !== BODY.length)) {
      throw new Error(`${method} ${id}: HTTP ${statusCode} ${JSON.stringify(json)}`);
    }
    if (forwarded !== (headers['x-wafleet-forwarded-by'] === 'forwarder')) throw new Error(`${method} ${id}: forwarded? ${forwarded}`);
  };
  const methods = {
    directGet: call(owner.url, 'GET', false),
    forwardedGet: call(forwarder.url, 'GET', true),
    directPost: call(owner.url, 'POST', false),
    forwardedPost: call(forwarder.url, 'POST', true),
  };
  const names = Object.keys(methods);
  const st = Object.fromEntries(names.map((n) => [n, { next: 0, seq: [], batchP50: [], conc: [], concMs: 0, concN: 0 }]));
  for (const name of names) {
    await runConcurrent(methods[name], 0, WARMUP, CONCURRENCY, []);
    await runSequential(methods[name], 0, WARMUP, null);
  }
  const batches = Math.ceil(REQUESTS / BATCH);
  log(
    `${batches} sequential batches of ${BATCH}, then ${Math.ceil((2 * REQUESTS) / CONC_BATCH)} batches of ${CONC_BATCH} from ${CONCURRENCY} callers, per method`,
  );
  for (let b = 0; b < batches; b++) {
    for (const name of rotation(b, names)) {
      const s = st[name];
      const batch = [];
      await runSequential(methods[name], s.next, BATCH, batch);
      s.next += BATCH;
      s.seq.push(...batch);
      s.batchP50.push(summarize(batch).p50);
    }
  }
  for (let b = 0; b < Math.ceil((2 * REQUESTS) / CONC_BATCH); b++) {
    for (const name of rotation(b, names)) {
      const s = st[name];
      s.concMs += await runConcurrent(methods[name], s.next, CONC_BATCH, CONCURRENCY, s.conc);
      s.next += CONC_BATCH;
      s.concN += CONC_BATCH;
    }
  }
  const results = Object.fromEntries(
    names.map((n) => [
      n,
      {
        seq: summarize(st[n].seq),
        conc: { ...summarize(st[n].conc), perSec: (st[n].concN * 1000) / st[n].concMs },
        batchP50: st[n].batchP50,
      },
    ]),
  );
  const env = {
    loadAtStart,
    redisVersion: version,
    redisCommand: redis.command,
    versions: ['undici', 'express'].map((n) => `${n} ${packageVersion(n)}`),
  };
  publish('forward', report({ env, results, startedAt, runtimeS: (performance.now() - t0) / 1000 }), { after: 'client' });
  await cleanup();
  log(`total ${fmt((performance.now() - t0) / 1000, 1)} s`);
}

/** Median and interquartile range of `a`'s minus `b`'s p50 in the same batch. */
function pairedDiff(a, b) {
  const d = Float64Array.from(a.batchP50.map((x, i) => x - b.batchP50[i])).sort();
  const at = (q) => d[Math.min(d.length - 1, Math.floor(q * d.length))];
  return { p25: at(0.25), p50: at(0.5), p75: at(0.75) };
}

function report({ env, results: r, startedAt, runtimeS }) {
  const row = (label, x) =>
    `| ${label} | ${ms(x.seq.p50)} | ${ms(x.seq.p99)} | ${ms(x.seq.mean)} | ${fmt(x.conc.perSec)} | ${ms(x.conc.p50)} | ${ms(x.conc.p99)} |`;
  const over = (label, f, d) => {
    const p = pairedDiff(f, d);
    return `| ${label} | +${ms(p.p50)} [${ms(p.p25)} … ${ms(p.p75)}] | ${fmt(f.seq.p50 / d.seq.p50, 2)}x | ${fmt(f.conc.perSec / d.conc.perSec, 2)}x | ${fmt(f.conc.p50 / d.conc.p50, 2)}x |`;
  };
  const get = pairedDiff(r.forwardedGet, r.directGet);
  return [
    '## Forwarding cost: a request to a non-owner vs the same request to the owner',
    '',
    '- Command: `node bench/forward.mjs` (from the repository root, after `npx -y pnpm@12.4.2 run build`; no root script runs it)',
    `- Date: ${isoSeconds(startedAt)} (run took ${fmt(runtimeS)} s)`,
    `- Node ${process.version}, Redis ${env.redisVersion} (a private \`${env.redisCommand}\` spawned by the script), ${env.versions.join(', ')}`,
    `- Machine: ${machine()}; Redis, the two instance processes and the benchmark process share it. Load average at the start ${env.loadAtStart}, at the end ${loadAverage()} (1 / 5 / 15 min).`,
    '',
    `Two instance processes with \`fleetGuard(fleet, { misdirected: 'forward' })\`: the owner claimed ${fmt(SESSIONS)} sessions, the forwarder none. The benchmark process sends each request either to the owner (direct) or to the forwarder, which looks the owner up in Redis (one \`EVALSHA\`) and forwards it over its keep-alive undici Agent. GET \`/sessions/:id/ping\`; POST \`/sessions/:id/echo\` with a ${fmt(BODY.length)}-byte JSON body streamed through (no body parser). ${fmt(REQUESTS)} sequential requests per method in batches of ${BATCH}, the four methods in rotating order per batch, then ${fmt(2 * REQUESTS)} per method from ${CONCURRENCY} concurrent callers; every answer is checked (status, owner, byte count, forwarded or not).`,
    '',
    `| Request | seq p50 (ms) | seq p99 (ms) | seq mean (ms) | ${CONCURRENCY} callers: req/s | ${CONCURRENCY} callers: p50 (ms) | ${CONCURRENCY} callers: p99 (ms) |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    row('GET, direct to the owner', r.directGet),
    row('GET, forwarded by a non-owner', r.forwardedGet),
    row('POST 1 KiB, direct to the owner', r.directPost),
    row('POST 1 KiB, forwarded by a non-owner', r.forwardedPost),
    '',
    `| Cost of the hop | seq p50, paired by batch: median [IQR] (ms) | seq p50 ratio | ${CONCURRENCY} callers: req/s ratio | ${CONCURRENCY} callers: p50 ratio |`,
    '| --- | ---: | ---: | ---: | ---: |',
    over('GET', r.forwardedGet, r.directGet),
    over('POST 1 KiB', r.forwardedPost, r.directPost),
    '',
    `Reading the numbers: a forwarded request costs one more HTTP hop on loopback plus the forwarder's owner lookup in Redis, about ${ms(get.p50)} ms at the sequential median here; under ${CONCURRENCY} concurrent callers the forwarder and the owner share this machine's ${machine().split(' ')[0]} cores with Redis and the caller, so throughput drops by the work of a second express process per request. Across a real network add one round trip between instances. Callers that use \`@wafleet/client\` go to the owner directly and never pay it; forwarding is for callers that know only a load balancer's URL.`,
  ].join('\n');
}

runMain(main);
