#!/usr/bin/env node
// Outbox benchmark (issue 4): wafleet's durable webhook outbox (SQLite, WAL, synchronous=FULL) next to the
// BullMQ webhook queue a user would otherwise pick, on the same local receiver, in one run.
//
//   node bench/outbox.mjs          (from the repository root, after `npx -y pnpm@12.4.2 run build`)
//
// 1. Enqueue throughput: sequential single `enqueue` / `Queue.add` (events/s, p50/p99 latency) and batches of 100
//    (`enqueueMany` / `Queue.addBulk`).
// 2. Delivery throughput and end-to-end latency (enqueue resolved -> receiver got it) of a 10,000-event burst over
//    1,000 sessions, concurrency 16; and end-to-end latency at a paced offered load well below capacity.
// 3. Every measurement runs for wafleet, BullMQ on a Redis without persistence (`--appendonly no --save ""`, how
//    BullMQ is usually run) and BullMQ on a Redis with `--appendonly yes --appendfsync always` (the durability that
//    matches a synchronous=FULL commit), alternating between the three in rotating order.
// 4. Events lost under kill -9: a child (bench/outbox/producer.mjs) enqueues as fast as it can and prints each
//    acknowledged id; the parent SIGKILLs it after ~1 s, optionally SIGKILLs and restarts the Redis server, then
//    delivers everything it can and counts acknowledged ids that never reached the receiver.
//
// Spawns its own redis-servers on free ports (never the machine's Redis), keeps every file in one temp directory
// (removed at the end), prints a markdown section to stdout and replaces that section of BENCHMARKS.md (between
// the bench:outbox markers). Progress goes to stderr.
//
// Environment overrides (for quick trial runs only; published numbers use the defaults):
//   BENCH_ENQ_SINGLE      sequential single enqueues per system and round       (default 1000)
//   BENCH_ENQ_BATCHED     events enqueued in batches of 100 per system/round     (default 5000)
//   BENCH_ENQ_ROUNDS      enqueue rounds per system                              (default 3)
//   BENCH_EVENTS          events of the delivery burst                           (default 10000)
//   BENCH_BURST_ROUNDS    delivery bursts per system                             (default 3)
//   BENCH_PACED_EVENTS    events of a paced latency run                          (default 1000)
//   BENCH_PACED_RATE      offered load of a paced run, events/s                  (default 500)
//   BENCH_KILL_REPS       repetitions of each kill -9 scenario                   (default 5)
//   BENCH_KILL_AFTER_MS   how long the producer runs before SIGKILL              (default 1000)
//   REDIS_SERVER          redis-server binary                                    (default: redis-server on PATH)
//   BENCH_NO_WRITE=1      print only, do not touch BENCHMARKS.md

import { spawn, spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, fdatasyncSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { createOutbox, standardWebhooksSigner } from '@wafleet/core';
import { Queue, Worker } from 'bullmq';
import { Agent, request } from 'undici';

import {
  benchLog,
  bullEnvelope,
  cleanup,
  fmt,
  isoSeconds,
  loadAverage,
  machine,
  NO_PERSISTENCE,
  onCleanup,
  packageVersion,
  positiveInt,
  publish,
  range,
  redisClient,
  redisVersion,
  RedisServer,
  ROOT,
  rotation,
  runMain,
  runTag,
  summarize,
  sumBy,
  tempDir,
  track,
  waitFor,
  webhookEvent,
} from './lib.mjs';

const PRODUCER = path.join(ROOT, 'bench', 'outbox', 'producer.mjs');

const SESSIONS = 1_000;
const CONCURRENCY = 16;
const RATE = 100_000; // wafleet's ratePerSecond for every throughput run (the default 200/s would be the bottleneck)
const BATCH = 100;
const ENQ_SINGLE = positiveInt(process.env.BENCH_ENQ_SINGLE, 1_000);
const ENQ_BATCHED = Math.ceil(positiveInt(process.env.BENCH_ENQ_BATCHED, 5_000) / BATCH) * BATCH;
const ENQ_ROUNDS = positiveInt(process.env.BENCH_ENQ_ROUNDS, 3);
const ENQ_WARMUP = 100;
const EVENTS = Math.ceil(positiveInt(process.env.BENCH_EVENTS, 10_000) / BATCH) * BATCH;
const BURST_ROUNDS = positiveInt(process.env.BENCH_BURST_ROUNDS, 3);
const PACED_EVENTS = positiveInt(process.env.BENCH_PACED_EVENTS, 1_000);
const PACED_RATE = positiveInt(process.env.BENCH_PACED_RATE, 500);
const KILL_REPS = positiveInt(process.env.BENCH_KILL_REPS, 5);
const KILL_AFTER_MS = positiveInt(process.env.BENCH_KILL_AFTER_MS, 1_000);
const PRODUCER_LOOPS = 8;
const DRAIN_TIMEOUT_MS = 30_000;
const QUIET_MS = 500;

const SECRET = `whsec_${Buffer.from('wafleet-bench-outbox-secret-0123456789').toString('base64')}`;
const INSTANCE = { id: 'wa-bench', url: 'http://wa-bench.invalid:3000' };
// What a webhook sender typically configures on a BullMQ queue: retries with exponential backoff (1 s, 2 s, 4 s, ...),
// completed jobs trimmed so Redis does not grow without bound, failed ones kept for inspection.
const JOB_OPTIONS = {
  attempts: 10,
  backoff: { type: 'exponential', delay: 1_000 },
  removeOnComplete: { count: 1_000 },
  removeOnFail: { count: 5_000 },
};

const SYSTEMS = ['wafleet', 'bullmq', 'bullmq-aof'];
/** wafleet's other SQLite modes (`createOutbox({ sqlite })`), measured in the delivery rounds next to the default. */
const SQLITE_MODES = {
  wafleet: { thread: 'worker', commit: 'group' },
  'wafleet-worker-event': { thread: 'worker', commit: 'event' },
  'wafleet-main-group': { thread: 'main', commit: 'group' },
  'wafleet-main-event': { thread: 'main', commit: 'event' },
};
const DELIVERY_SYSTEMS = [...SYSTEMS, ...Object.keys(SQLITE_MODES).filter((s) => s !== 'wafleet')];
const LABEL = {
  wafleet: 'wafleet outbox (SQLite WAL, `synchronous=FULL`)',
  bullmq: 'BullMQ, Redis `appendonly no`',
  'bullmq-aof': 'BullMQ, Redis `appendfsync always`',
};
const SHORT = { wafleet: 'wafleet', bullmq: 'BullMQ (no persistence)', 'bullmq-aof': 'BullMQ (AOF always)' };

const log = benchLog('bench:outbox');

/** Event-loop delay p99 (ms) of wafleet's paced rounds in the last run before issue 16 (2026-11-30T08:58Z). */
const LOOP_P99_BEFORE = 7.41;
/** Headline figures of the last full runs, so that consecutive runs can be compared (issue 16's targets). */
const HISTORY_FILE = path.join(ROOT, 'bench', 'outbox-history.json');
const HISTORY_KEEP = 10;
const OVERRIDDEN = Object.keys(process.env).some((k) => k.startsWith('BENCH_') && k !== 'BENCH_NO_WRITE');

const targetsMet = (h) =>
  h.burstVsBull >= 1 && h.burstVsAof >= 1 && h.pacedVsBull <= 1 && h.pacedVsAof <= 1 && h.loopP99 <= LOOP_P99_BEFORE / 2 && h.lost === 0;

/** Appends this run's figures to the history (full runs that write BENCHMARKS.md only); returns what to show. */
function recordRun(entry) {
  let history = [];
  try {
    history = JSON.parse(readFileSync(HISTORY_FILE, 'utf8'));
  } catch {
    // first run
  }
  if (OVERRIDDEN || process.env.BENCH_NO_WRITE === '1') return [...history, { ...entry, date: `${entry.date} (this run, not recorded)` }];
  history = [...history, entry].slice(-HISTORY_KEEP);
  writeFileSync(HISTORY_FILE, `${JSON.stringify(history, null, 2)}\n`);
  return history;
}

/** Every file of the run (SQLite stores, AOFs, the fsync probe) lives here; set first thing in main(). */
let tmpDir;

// ---------------------------------------------------------------------------------------------------------
// Private redis-servers: one without persistence, one with appendfsync always
// ---------------------------------------------------------------------------------------------------------

const AOF_ALWAYS = ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always'];

/** `fn(client)` on a connection of its own: a long-lived one would have to ride out every kill -9 of the server. */
async function withAdmin(server, fn) {
  const admin = redisClient(server.port, () => undefined);
  try {
    await admin.connect();
    return await fn(admin);
  } finally {
    admin.disconnect();
  }
}

async function redisCpuSeconds(server) {
  const text = await withAdmin(server, (admin) => admin.info('cpu'));
  const user = Number(/used_cpu_user:([\d.]+)/.exec(text)?.[1] ?? NaN);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(text)?.[1] ?? NaN);
  return user + sys;
}

const flushRedis = (server) => withAdmin(server, (admin) => admin.flushall());

// ---------------------------------------------------------------------------------------------------------
// The receiver: node:http on 127.0.0.1, answers 200, records each event id with the time it fully arrived
// ---------------------------------------------------------------------------------------------------------

const receiver = {
  url: '',
  server: undefined,
  total: 0,
  /** @type {((id: string, body: any, t: number) => void) | null} */
  sink: null,
};

async function startReceiver() {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const t = performance.now();
      res.writeHead(200, { 'content-length': '0' });
      res.end();
      receiver.total++;
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = undefined;
      }
      const id = req.headers['webhook-id'] ?? body?.id;
      receiver.sink?.(String(id), body, t);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.server = server;
  receiver.url = `http://127.0.0.1:${server.address().port}/hooks`;
  onCleanup(
    'receiver',
    () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  );
  log(`receiver on ${receiver.url}`);
}

/** Collects what the receiver got while it is installed: per id the first arrival time, duplicates, order per session. */
function collector() {
  const got = new Map();
  const lastK = new Map();
  const c = {
    got,
    duplicates: 0,
    outOfOrder: 0,
    lastAt: 0,
    install() {
      receiver.sink = (id, body, t) => {
        if (got.has(id)) {
          c.duplicates++;
          return;
        }
        got.set(id, t);
        c.lastAt = t;
        const session = body?.session;
        const k = body?.data?.k;
        if (session !== undefined && typeof k === 'number') {
          const prev = lastK.get(session);
          if (prev !== undefined && k < prev) c.outOfOrder++;
          else lastK.set(session, k);
        }
      };
      return c;
    },
    uninstall() {
      if (receiver.sink) receiver.sink = null;
    },
  };
  return c;
}

// ---------------------------------------------------------------------------------------------------------
// Events and the two systems
// ---------------------------------------------------------------------------------------------------------

const eventFor = (i) => webhookEvent(i, SESSIONS);
const deleteStore = (store) => {
  for (const suffix of ['', '-wal', '-shm']) rmSync(store + suffix, { force: true });
};
const envelope = (event) => bullEnvelope(event, INSTANCE);

const errors = new Map();
function noteError(system, err) {
  // Job ids and numbers vary from error to error: grouped by the message with digits replaced.
  const key = `${system}: ${String(err?.message ?? err)
    .slice(0, 160)
    .replace(/\d+/g, 'N')}`;
  errors.set(key, (errors.get(key) ?? 0) + 1);
}

function newOutbox(store, overrides = {}) {
  const outbox = createOutbox({
    store,
    endpoint: { url: receiver.url, secrets: [SECRET] },
    instance: { instanceId: INSTANCE.id, url: INSTANCE.url },
    concurrency: CONCURRENCY,
    ratePerSecond: RATE,
    ...overrides,
  });
  outbox.on('error', (err) => noteError('wafleet', err));
  return outbox;
}

const sign = standardWebhooksSigner([SECRET]);

/** Processor calls running now (one Worker at a time), so a drain can tell an idle Worker from a busy one. */
let bullInFlight = 0;

/** The BullMQ processor a webhook sender writes: sign like wafleet does, POST with `fetch`, throw on non-2xx. */
async function deliverJob(job) {
  bullInFlight++;
  try {
    await postJob(job);
  } finally {
    bullInFlight--;
  }
}

/** Keep-alive connections for the BullMQ processor, as wafleet's outbox keeps its own. */
const bullAgent = new Agent();

async function postJob(job) {
  const body = JSON.stringify(job.data);
  // The HTTP client wafleet's outbox uses (undici's request, a 15 s timeout through an emitter), so both columns pay
  // the same per request and the comparison is of the queues.
  const signal = new EventEmitter();
  const timer = setTimeout(() => signal.emit('abort'), 15_000);
  try {
    const res = await request(receiver.url, {
      method: 'POST',
      headers: {
        ...sign({ id: job.data.id, timestamp: Math.floor(Date.now() / 1000), body }),
        'content-type': 'application/json',
        'user-agent': 'bullmq-webhook-bench',
      },
      body,
      dispatcher: bullAgent,
      signal,
    });
    await res.body.dump().catch(() => undefined);
    if (res.statusCode < 200 || res.statusCode > 299) throw new Error(`HTTP ${res.statusCode}`);
  } finally {
    clearTimeout(timer);
  }
}

function newQueue(server, name) {
  const queue = new Queue(name, { connection: { host: '127.0.0.1', port: server.port }, defaultJobOptions: JOB_OPTIONS });
  queue.on('error', (err) => noteError('bullmq queue', err));
  return queue;
}

function newWorker(server, name) {
  const worker = new Worker(name, deliverJob, {
    connection: { host: '127.0.0.1', port: server.port, maxRetriesPerRequest: null },
    concurrency: CONCURRENCY,
  });
  worker.on('error', (err) => noteError('bullmq worker', err));
  worker.on('failed', (_job, err) => noteError('bullmq job failed', err));
  return worker;
}

// ---------------------------------------------------------------------------------------------------------
// Measurement helpers
// ---------------------------------------------------------------------------------------------------------

const orderFor = (r, names = SYSTEMS) => rotation(r, names);

const ms = (x) => (Number.isFinite(x) ? (x < 0.1 ? fmt(x, 4) : x < 100 ? fmt(x, 3) : fmt(x, 1)) : 'n/a');
const ratio = (a, b) =>
  Number.isFinite(a) && Number.isFinite(b) && b > 0
    ? `${a / b >= 100 ? fmt(a / b, 0) : a / b >= 10 ? fmt(a / b, 1) : fmt(a / b, 2)}x`
    : 'n/a';

// better-sqlite3 is a dependency of @wafleet/core, not of the benchmarks: this loads the copy the outbox runs on.
const requireFromCore = () => createRequire(createRequire(import.meta.url).resolve('@wafleet/core'));

function sqliteInfo() {
  try {
    const coreRequire = requireFromCore();
    const Database = coreRequire('better-sqlite3');
    const db = new Database(':memory:');
    const v = db.prepare('SELECT sqlite_version() AS v').get().v;
    db.close();
    const pkg = JSON.parse(readFileSync(path.join(path.dirname(coreRequire.resolve('better-sqlite3')), '..', 'package.json'), 'utf8'));
    return { sqlite: v, betterSqlite3: pkg.version };
  } catch (err) {
    log(`could not read the SQLite version: ${err.message}`);
    return { sqlite: 'unknown', betterSqlite3: 'unknown' };
  }
}

/** `df -T` and mount options of the temp directory, and what one 4 KB append + fdatasync costs there. */
async function diskInfo(dir) {
  const df = spawnSync('df', ['-T', dir], { encoding: 'utf8' });
  const line = (df.stdout || '').trim().split('\n')[1] ?? '';
  const [device, fsType, size] = line.split(/\s+/);
  const mnt = spawnSync('findmnt', ['-n', '-o', 'TARGET,OPTIONS', '--target', dir], { encoding: 'utf8' });
  const file = path.join(dir, 'fsync-probe');
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(4096, 7);
  const samples = [];
  const idle = [];
  try {
    for (let i = 0; i < 300; i++) {
      const t = performance.now();
      writeSync(fd, buf);
      fdatasyncSync(fd);
      samples.push(performance.now() - t);
    }
    // The same after 5 ms of idle each time: on this virtual disk an fsync after a pause costs more.
    for (let i = 0; i < 100; i++) {
      await sleep(5);
      const t = performance.now();
      writeSync(fd, buf);
      fdatasyncSync(fd);
      idle.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return {
    device: device ?? '?',
    fsType: fsType ?? '?',
    sizeGiB: Number(size) / 1024 / 1024,
    mount: (mnt.stdout || '').trim().replace(/\s+/, ' '),
    fdatasync: summarize(samples.slice(20)),
    fdatasyncIdle: summarize(idle),
  };
}

// ---------------------------------------------------------------------------------------------------------
// 1. Enqueue throughput
// ---------------------------------------------------------------------------------------------------------

async function enqueueRound(system, servers, round, acc) {
  const single = [];
  let singleMs;
  let batchedMs;
  if (system === 'wafleet') {
    const store = path.join(tmpDir, `enqueue-${round}.sqlite`);
    // Delivery throttled to 1 attempt per second while enqueue is measured, so only the enqueue path is timed
    // (BullMQ's rows run without a Worker).
    const outbox = newOutbox(store, { concurrency: 1, ratePerSecond: 1 });
    const close = onCleanup('enqueue outbox', () => outbox.close());
    await outbox.start();
    let i = 0;
    for (let w = 0; w < ENQ_WARMUP; w++) await outbox.enqueue(eventFor(i++));
    let t0 = performance.now();
    for (let n = 0; n < ENQ_SINGLE; n++) {
      const t = performance.now();
      await outbox.enqueue(eventFor(i++));
      single.push(performance.now() - t);
    }
    singleMs = performance.now() - t0;
    t0 = performance.now();
    for (let b = 0; b < ENQ_BATCHED / BATCH; b++) {
      const events = range(BATCH).map(() => eventFor(i++));
      await outbox.enqueueMany(events);
    }
    batchedMs = performance.now() - t0;
    await close();
    deleteStore(store);
  } else {
    const server = servers[system];
    const queue = newQueue(server, `enqueue-${runTag}-${round}`);
    const close = onCleanup('enqueue queue', () => queue.close());
    await queue.waitUntilReady();
    let i = 0;
    for (let w = 0; w < ENQ_WARMUP; w++) {
      const e = eventFor(i++);
      await queue.add(e.type, envelope(e));
    }
    let t0 = performance.now();
    for (let n = 0; n < ENQ_SINGLE; n++) {
      const e = eventFor(i++);
      const data = envelope(e);
      const t = performance.now();
      await queue.add(e.type, data);
      single.push(performance.now() - t);
    }
    singleMs = performance.now() - t0;
    t0 = performance.now();
    for (let b = 0; b < ENQ_BATCHED / BATCH; b++) {
      const jobs = range(BATCH).map(() => {
        const e = eventFor(i++);
        return { name: e.type, data: envelope(e) };
      });
      await queue.addBulk(jobs);
    }
    batchedMs = performance.now() - t0;
    await close();
    await flushRedis(server);
  }
  acc.single.push(...single);
  acc.singleMs += singleMs;
  acc.singleN += ENQ_SINGLE;
  acc.batchedMs += batchedMs;
  acc.batchedN += ENQ_BATCHED;
}

async function enqueueBench(servers) {
  const acc = Object.fromEntries(SYSTEMS.map((s) => [s, { single: [], singleMs: 0, singleN: 0, batchedMs: 0, batchedN: 0 }]));
  for (let r = 0; r < ENQ_ROUNDS; r++) {
    for (const system of orderFor(r)) {
      log(`enqueue round ${r + 1}/${ENQ_ROUNDS}: ${system}`);
      await enqueueRound(system, servers, r, acc[system]);
    }
  }
  return Object.fromEntries(
    SYSTEMS.map((s) => {
      const a = acc[s];
      return [
        s,
        { single: summarize(a.single), singlePerSec: (a.singleN * 1000) / a.singleMs, batchedPerSec: (a.batchedN * 1000) / a.batchedMs },
      ];
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------
// 2. Delivery: a burst of EVENTS over SESSIONS sessions, and a paced run
// ---------------------------------------------------------------------------------------------------------

/** Opens the system's consumer (the outbox, or a Queue plus a Worker) and returns enqueue functions and a closer. */
async function openSystem(system, servers, name) {
  if (system in SQLITE_MODES) {
    const store = path.join(tmpDir, `${name}.sqlite`);
    const outbox = newOutbox(store, { sqlite: SQLITE_MODES[system] });
    const close = onCleanup(`outbox ${name}`, async () => {
      await outbox.close();
      deleteStore(store);
    });
    await outbox.start();
    return {
      one: async (event) => (await outbox.enqueue(event)).id,
      many: async (events) => (await outbox.enqueueMany(events)).map((r) => r.id),
      close,
    };
  }
  const server = servers[system];
  const queue = newQueue(server, name);
  const worker = newWorker(server, name);
  const close = onCleanup(`bullmq ${name}`, async () => {
    await worker.close();
    await queue.close();
    await flushRedis(server);
  });
  await Promise.all([queue.waitUntilReady(), worker.waitUntilReady()]);
  return {
    one: async (event) => {
      const data = envelope(event);
      await queue.add(event.type, data);
      return data.id;
    },
    many: async (events) => {
      const jobs = events.map((e) => ({ name: e.type, data: envelope(e) }));
      await queue.addBulk(jobs);
      return jobs.map((j) => j.data.id);
    },
    close,
    server,
  };
}

async function burstRound(system, servers, round) {
  const name = `burst-${runTag}-${system}-${round}`;
  const sys = await openSystem(system, servers, name);
  const col = collector().install();
  const enqAt = new Map();
  const redisCpu0 = sys.server ? await redisCpuSeconds(sys.server) : 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let i = 0;
  for (let b = 0; b < EVENTS / BATCH; b++) {
    const ids = await sys.many(range(BATCH).map(() => eventFor(i++)));
    const t = performance.now();
    for (const id of ids) enqAt.set(id, t);
  }
  const enqueuedAt = performance.now();
  const complete = await waitFor(() => col.got.size >= EVENTS, 120_000);
  const cpu = process.cpuUsage(cpu0);
  const redisCpu = sys.server ? (await redisCpuSeconds(sys.server)) - redisCpu0 : 0;
  col.uninstall();
  await sys.close();
  const latencies = [];
  for (const [id, t] of enqAt) {
    const at = col.got.get(id);
    if (at !== undefined) latencies.push(Math.max(0, at - t));
  }
  return {
    seconds: (col.lastAt - t0) / 1000,
    enqueueSeconds: (enqueuedAt - t0) / 1000,
    received: col.got.size,
    complete,
    latencies,
    duplicates: col.duplicates,
    outOfOrder: col.outOfOrder,
    nodeCpuMs: (cpu.user + cpu.system) / 1000,
    redisCpuMs: redisCpu * 1000,
  };
}

async function pacedRound(system, servers, round) {
  const name = `paced-${runTag}-${system}-${round}`;
  const sys = await openSystem(system, servers, name);
  const col = collector().install();
  const enqAt = new Map();
  const enqLatency = [];
  const loop = monitorEventLoopDelay({ resolution: 1 });
  // A short warm-up so the first connections are open before timing.
  for (let w = 0; w < 20; w++) await sys.one(eventFor(PACED_EVENTS + w));
  await waitFor(() => col.got.size >= 20, 5_000);
  col.got.clear();
  loop.enable();
  const interval = 1000 / PACED_RATE;
  const t0 = performance.now();
  for (let i = 0; i < PACED_EVENTS; i++) {
    const wait = t0 + i * interval - performance.now();
    if (wait >= 1) await sleep(wait);
    const t = performance.now();
    const id = await sys.one(eventFor(i));
    const done = performance.now();
    enqAt.set(id, done);
    enqLatency.push(done - t);
  }
  const complete = await waitFor(() => [...enqAt.keys()].every((id) => col.got.has(id)), 30_000, 10);
  loop.disable();
  col.uninstall();
  await sys.close();
  const latencies = [];
  let lastEnqAt = 0;
  let lastArrival = 0;
  for (const [id, t] of enqAt) {
    const at = col.got.get(id);
    lastEnqAt = Math.max(lastEnqAt, t);
    if (at !== undefined) {
      latencies.push(Math.max(0, at - t));
      lastArrival = Math.max(lastArrival, at);
    }
  }
  return {
    latencies,
    p50: summarize(latencies).p50,
    // How long after the last enqueue the last event arrived: a few ms if delivery kept up, more if a backlog grew.
    tailMs: lastArrival - lastEnqAt,
    enqLatency,
    complete,
    offeredSeconds: (PACED_EVENTS * interval) / 1000,
    loopP99: loop.percentile(99) / 1e6,
    loopMax: loop.max / 1e6,
  };
}

async function deliveryBench(servers) {
  const burst = Object.fromEntries(DELIVERY_SYSTEMS.map((s) => [s, []]));
  for (let r = 0; r < BURST_ROUNDS; r++) {
    for (const system of orderFor(r, DELIVERY_SYSTEMS)) {
      log(`burst ${r + 1}/${BURST_ROUNDS}: ${system}, ${fmt(EVENTS)} events over ${fmt(SESSIONS)} sessions`);
      const res = await burstRound(system, servers, r);
      if (!res.complete) log(`burst: ${system} delivered only ${res.received} of ${EVENTS}`);
      burst[system].push(res);
    }
  }
  const paced = Object.fromEntries(DELIVERY_SYSTEMS.map((s) => [s, []]));
  for (let r = 0; r < 2; r++) {
    for (const system of orderFor(r + 1, DELIVERY_SYSTEMS)) {
      log(`paced ${r + 1}/2: ${system}, ${fmt(PACED_EVENTS)} events at ${PACED_RATE}/s`);
      paced[system].push(await pacedRound(system, servers, r));
    }
  }
  return Object.fromEntries(
    DELIVERY_SYSTEMS.map((s) => {
      const b = burst[s];
      const p = paced[s];
      const events = sumBy(b, (x) => x.received);
      return [
        s,
        {
          burst: {
            perSec: events / sumBy(b, (x) => x.seconds),
            perRound: b.map((x) => x.received / x.seconds),
            enqueueSeconds: sumBy(b, (x) => x.enqueueSeconds) / b.length,
            drainSeconds: sumBy(b, (x) => x.seconds) / b.length,
            latency: summarize(b.flatMap((x) => x.latencies)),
            complete: b.every((x) => x.complete),
            received: events,
            duplicates: sumBy(b, (x) => x.duplicates),
            outOfOrder: sumBy(b, (x) => x.outOfOrder),
            nodeCpuPer1k: (sumBy(b, (x) => x.nodeCpuMs) / events) * 1000,
            redisCpuPer1k: (sumBy(b, (x) => x.redisCpuMs) / events) * 1000,
          },
          paced: {
            latency: summarize(p.flatMap((x) => x.latencies)),
            enqLatency: summarize(p.flatMap((x) => x.enqLatency)),
            complete: p.every((x) => x.complete),
            loopP99: Math.max(...p.map((x) => x.loopP99)),
            loopMax: Math.max(...p.map((x) => x.loopMax)),
            perRoundP50: p.map((x) => x.p50),
            tailMs: p.map((x) => x.tailMs),
          },
        },
      ];
    }),
  );
}

// ---------------------------------------------------------------------------------------------------------
// 4. kill -9
// ---------------------------------------------------------------------------------------------------------

/** Runs the producer child until `KILL_AFTER_MS` after it is ready, SIGKILLs it; returns the ids it acknowledged. */
async function runProducer(config) {
  const child = track(spawn(process.execPath, [PRODUCER, JSON.stringify(config)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  const acked = [];
  let ready = false;
  let partial = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    for (const line of lines) {
      if (line === 'ready') ready = true;
      else if (line) acked.push(line);
    }
  });
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const stdoutClosed = new Promise((resolve) => child.stdout.once('close', resolve));
  const ok = await Promise.race([waitFor(() => ready, 15_000, 2), exited.then(() => false)]);
  if (!ok) {
    child.kill('SIGKILL');
    throw new Error(`producer did not become ready: ${stderr}`);
  }
  await sleep(KILL_AFTER_MS);
  child.kill('SIGKILL');
  const { signal } = await exited;
  await stdoutClosed; // everything the child wrote before it died is still read from the pipe
  // A line cut off by the kill was not acknowledged.
  return { acked, signal, stderr };
}

/**
 * One kill -9 run. scenario 'a': SIGKILL the producer only. 'b': SIGKILL the producer, then SIGKILL the Redis server
 * and start it again on the same port (with its own persistence settings). Then deliver what is left, count.
 */
async function killRun(system, scenario, servers, rep) {
  const name = `kill-${runTag}-${system}-${scenario}-${rep}`;
  const col = collector().install();
  // BullMQ: the Redis the queue lives on; wafleet: the Redis restarted in scenario (b), which the outbox never uses.
  const server = system === 'bullmq-aof' ? servers['bullmq-aof'] : servers.bullmq;
  let prod;
  let beforeKill;
  let pendingAtRecovery;
  let drainMs;
  /** Acknowledged ids that never arrived but are still stored (pending / queued), with their state. */
  const stillStored = new Map();
  if (system === 'wafleet') {
    const store = path.join(tmpDir, `${name}.sqlite`);
    const removeStore = onCleanup(`store ${name}`, async () => {
      deleteStore(store);
    });
    prod = await runProducer({ system, loops: PRODUCER_LOOPS, sessions: SESSIONS, url: receiver.url, secret: SECRET, store });
    beforeKill = col.got.size;
    const t0 = performance.now();
    if (scenario === 'b') {
      await server.kill9();
      await server.start();
    }
    // A fresh outbox on the same file, as the restarted instance would open it.
    const outbox = newOutbox(store);
    const close = onCleanup(`outbox ${name}`, () => outbox.close());
    await outbox.start();
    pendingAtRecovery = outbox.stats().pending;
    let quietSince = performance.now();
    let lastSize = col.got.size;
    await waitFor(
      () => {
        if (prod.acked.every((id) => col.got.has(id))) return true;
        if (col.got.size !== lastSize) {
          lastSize = col.got.size;
          quietSince = performance.now();
        }
        const s = outbox.stats();
        return s.pending === 0 && s.inFlight === 0 && performance.now() - quietSince > QUIET_MS;
      },
      DRAIN_TIMEOUT_MS,
      10,
    );
    drainMs = performance.now() - t0;
    await close();
    const missing = prod.acked.filter((id) => !col.got.has(id));
    if (missing.length > 0) for (const [id, state] of sqliteStates(store, missing)) stillStored.set(id, state);
    await removeStore();
  } else {
    const queue = newQueue(server, name);
    const worker = newWorker(server, name);
    const close = onCleanup(`bullmq ${name}`, async () => {
      await worker.close(true);
      await queue.close();
    });
    await Promise.all([queue.waitUntilReady(), worker.waitUntilReady()]);
    prod = await runProducer({
      system: 'bullmq',
      loops: PRODUCER_LOOPS,
      sessions: SESSIONS,
      url: receiver.url,
      secret: SECRET,
      port: server.port,
      queue: name,
      jobOptions: JOB_OPTIONS,
    });
    beforeKill = col.got.size;
    const t0 = performance.now();
    if (scenario === 'b') {
      await server.kill9();
      await server.start();
    }
    const counts = async () => {
      try {
        return await queue.getJobCounts('active', 'wait', 'delayed', 'prioritized', 'paused');
      } catch {
        return undefined;
      }
    };
    const c0 = await waitForValue(counts, 5_000);
    pendingAtRecovery = c0 ? Object.values(c0).reduce((s, x) => s + x, 0) : NaN;
    let quietSince = performance.now();
    let lastSize = col.got.size;
    // Done when every acknowledged id arrived, or when the Worker is idle, nothing is waiting or delayed and nothing
    // arrived for a while. Jobs left 'active' with no Worker holding them wait for BullMQ's stalled-job check
    // (lockDuration 30 s) and are counted apart below, not waited for.
    await waitFor(
      async () => {
        if (prod.acked.every((id) => col.got.has(id))) return true;
        if (col.got.size !== lastSize) {
          lastSize = col.got.size;
          quietSince = performance.now();
        }
        if (performance.now() - quietSince < QUIET_MS || bullInFlight > 0) return false;
        const c = await counts();
        return c !== undefined && c.wait + c.delayed + c.prioritized + c.paused === 0;
      },
      DRAIN_TIMEOUT_MS,
      10,
    );
    drainMs = performance.now() - t0;
    const missing = new Set(prod.acked.filter((id) => !col.got.has(id)));
    if (missing.size > 0) {
      for (const state of ['active', 'wait', 'delayed', 'prioritized', 'paused', 'failed']) {
        const jobs = await queue.getJobs([state], 0, -1).catch(() => []);
        for (const job of jobs) if (job?.data?.id && missing.has(job.data.id)) stillStored.set(job.data.id, state);
      }
    }
    await close();
    await flushRedis(server);
  }
  col.uninstall();
  const ackedSet = new Set(prod.acked);
  const notDelivered = prod.acked.filter((id) => !col.got.has(id)).length;
  let unacked = 0;
  for (const id of col.got.keys()) if (!ackedSet.has(id)) unacked++;
  const storedStates = {};
  for (const state of stillStored.values()) storedStates[state] = (storedStates[state] ?? 0) + 1;
  const stuck = [...stillStored.values()].filter((state) => WAITING_STATES.has(state)).length;
  return {
    acked: prod.acked.length,
    deliveredBeforeKill: beforeKill,
    pendingAtRecovery,
    notDelivered,
    stuck,
    storedStates,
    lost: notDelivered - stuck,
    unackedDelivered: unacked,
    duplicates: col.duplicates,
    drainMs,
  };
}

/** States in which an undelivered event would still be delivered later (wafleet: pending; BullMQ: queued or active). */
const WAITING_STATES = new Set(['pending', 'active', 'wait', 'delayed', 'prioritized', 'paused']);

/** Polls `fn` until it returns something other than undefined, or undefined after `timeoutMs`. */
async function waitForValue(fn, timeoutMs) {
  let value;
  await waitFor(async () => (value = await fn()) !== undefined, timeoutMs, 20);
  return value;
}

/** The state of each of `ids` in an outbox SQLite file (read after the outbox closed it). */
function sqliteStates(store, ids) {
  const Database = requireFromCore()('better-sqlite3');
  const db = new Database(store, { readonly: true });
  try {
    const q = db.prepare('SELECT state FROM events WHERE id = ?');
    const out = new Map();
    for (const id of ids) {
      const row = q.get(id);
      if (row) out.set(id, row.state);
    }
    return out;
  } finally {
    db.close();
  }
}

const KILL_SCENARIOS = [
  { key: 'wafleet-a', system: 'wafleet', scenario: 'a' },
  { key: 'bullmq-a', system: 'bullmq', scenario: 'a' },
  { key: 'wafleet-b', system: 'wafleet', scenario: 'b' },
  { key: 'bullmq-b', system: 'bullmq', scenario: 'b' },
  { key: 'bullmq-aof-b', system: 'bullmq-aof', scenario: 'b' },
];

async function killBench(servers) {
  const runs = Object.fromEntries(KILL_SCENARIOS.map((s) => [s.key, []]));
  const keys = KILL_SCENARIOS.map((s) => s.key);
  for (let rep = 0; rep < KILL_REPS; rep++) {
    for (const key of orderFor(rep, keys)) {
      const s = KILL_SCENARIOS.find((x) => x.key === key);
      const res = await killRun(s.system, s.scenario, servers, rep);
      log(
        `kill -9 ${rep + 1}/${KILL_REPS} ${key}: acked ${res.acked}, delivered before the kill ${res.deliveredBeforeKill}, ` +
          `lost ${res.lost}, still stored ${res.stuck} ${JSON.stringify(res.storedStates)}, duplicates ${res.duplicates} (${fmt(res.drainMs)} ms to drain)`,
      );
      runs[key].push(res);
    }
  }
  return runs;
}

// ---------------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------------

function report({ env, enq, del, kill, startedAt, runtimeS, history }) {
  const w = (obj) => obj.wafleet;
  const killRow = (key) => {
    const r = kill[key];
    return {
      acked: sumBy(r, (x) => x.acked),
      before: sumBy(r, (x) => x.deliveredBeforeKill),
      lost: sumBy(r, (x) => x.lost),
      perRep: r.map((x) => x.lost),
      unacked: sumBy(r, (x) => x.unackedDelivered),
      dups: sumBy(r, (x) => x.duplicates),
      drain: sumBy(r, (x) => x.drainMs) / r.length,
      pending: sumBy(r, (x) => (Number.isFinite(x.pendingAtRecovery) ? x.pendingAtRecovery : 0)),
      stuck: sumBy(r, (x) => x.stuck),
      states: r.reduce((acc, x) => {
        for (const [state, n] of Object.entries(x.storedStates)) acc[state] = (acc[state] ?? 0) + n;
        return acc;
      }, {}),
    };
  };
  const k = Object.fromEntries(KILL_SCENARIOS.map((s) => [s.key, killRow(s.key)]));
  const d = env.disk;

  const lines = [
    '## Webhook outbox vs a BullMQ queue (issues 4 and 16)',
    '',
    `- Command: \`node bench/outbox.mjs\` (from the repository root, after \`npx -y pnpm@12.4.2 run build\`; ${env.rootBench ? 'the root `bench` script also runs it, after the other benchmarks' : 'no root script runs it'})`,
    `- Date: ${isoSeconds(startedAt)} (run took ${fmt(runtimeS)} s: enqueue ${fmt(env.phases.enqueue)} s, delivery ${fmt(env.phases.delivery)} s, kill -9 ${fmt(env.phases.kill)} s)`,
    `- Node ${process.version}; @wafleet/core ${env.versions.core} with better-sqlite3 ${env.sqlite.betterSqlite3} (SQLite ${env.sqlite.sqlite}); bullmq ${env.versions.bullmq}, ioredis ${env.versions.ioredis}; Redis ${env.redisVersion}`,
    `- Redis for BullMQ, two private servers spawned by the script: \`${env.redisNone}\` (no persistence: how BullMQ is commonly run, and Redis's default \`appendonly no\`; RDB snapshots off too, so a restart starts empty) and \`${env.redisAof}\` (every write fsynced before the reply: the durability of a \`synchronous=FULL\` commit)`,
    `- Disk: the temp directory (SQLite files and the AOF alike) is on \`${d.device}\`, **${d.fsType}** (\`df -T\`; ${fmt(d.sizeGiB)} GiB; mount \`${d.mount}\`), a virtual disk. One 4 KB append + \`fdatasync\` there: p50 ${ms(d.fdatasync.p50)} ms, p99 ${ms(d.fdatasync.p99)} ms back to back; p50 ${ms(d.fdatasyncIdle.p50)} ms, p99 ${ms(d.fdatasyncIdle.p99)} ms after 5 ms of idle each (this virtual disk flushes fastest under a steady stream of fsyncs). Every fsync-bound number below scales with this; on a disk with slower flushes (no write cache, network storage) the synchronous=FULL and AOF-always columns drop, the no-persistence column does not.`,
    `- Machine: ${machine()}; Redis, the benchmark process (outbox or Worker, producer loop and receiver alike) and the kill -9 producer children share it. Load average at the start ${env.loadAtStart}, at the end ${env.loadAtEnd} (1 / 5 / 15 min)${Number(env.loadAtStart.split(' / ')[0]) > 1 ? ': other work was running, so compare rows of one run, not runs' : ''}.`,
    `- Receiver: a \`node:http\` server on 127.0.0.1 in the benchmark process; it reads each body, answers 200 and records the event id (the \`webhook-id\` header) with \`performance.now()\` when the request has fully arrived.`,
    `- wafleet: \`createOutbox({ store: <tmp file>, endpoint: { url, secrets: [whsec_...] }, instance, concurrency: ${CONCURRENCY}, ratePerSecond: ${fmt(RATE)} })\`. **\`ratePerSecond\` is raised from its default of 200/s**, which would otherwise cap delivery at 200 events/s; everything else is default: SQLite in the outbox's worker thread with group commits (\`sqlite: { thread: 'worker', commit: 'group' }\`, every write answered after its \`synchronous=FULL\` commit), retry schedule, \`pollIntervalMs\` 250, \`quickRetries\` 2, timeout 15 s. The other three SQLite modes are measured in the delivery rounds too (table below).`,
    `- BullMQ: a \`Queue\` with \`defaultJobOptions: ${JSON.stringify(JOB_OPTIONS).replace(/"/g, '')}\` (add = enqueue) and a \`Worker\` with \`concurrency: ${CONCURRENCY}\` whose processor builds the same Standard Webhooks signature (wafleet's \`standardWebhooksSigner\`, so signing costs the same), POSTs \`JSON.stringify(job.data)\` with undici's \`request\` on a keep-alive \`Agent\` and a 15 s timeout (the client and settings wafleet's outbox uses, so the columns compare queues, not HTTP clients; runs before 2026-11-30T19:00Z used the global \`fetch\` in both), and throws on a non-2xx answer so BullMQ retries. Job data is the same envelope wafleet sends (id, type, timestamp, session, epoch, instance, data).`,
    `- Workload: \`message.received\` events, sessions round-robin over ${fmt(SESSIONS)} sessions (\`5511000000000\`...), payload about 300 bytes. Measurements of the three columns alternate (rotating order per round) so a slow moment of the shared machine lands on all of them.`,
    '',
    `### Enqueue: ${ENQ_ROUNDS} rounds per system of ${fmt(ENQ_SINGLE)} sequential single calls (after ${ENQ_WARMUP} warm-up) and ${fmt(ENQ_BATCHED)} events in batches of ${BATCH}`,
    '',
    '- wafleet: `await outbox.enqueue(event)` (a sequential caller: one `synchronous=FULL` commit, so one WAL fsync, per call, in the worker thread) and `await outbox.enqueueMany(batch)` (one transaction per batch). Delivery is throttled to 1 attempt/s while enqueue is measured (`ratePerSecond: 1, concurrency: 1`), so only the enqueue path is timed.',
    '- BullMQ: `await queue.add(name, data)` and `await queue.addBulk(batch)`, no Worker running. With `appendfsync always` Redis fsyncs the AOF before it replies.',
    '',
    `| Enqueue | single: events/s | single: p50 (ms) | single: p99 (ms) | single: mean (ms) | batches of ${BATCH}: events/s |`,
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...SYSTEMS.map(
      (s) =>
        `| ${LABEL[s]} | ${fmt(enq[s].singlePerSec)} | ${ms(enq[s].single.p50)} | ${ms(enq[s].single.p99)} | ${ms(enq[s].single.mean)} | ${fmt(enq[s].batchedPerSec)} |`,
    ),
    `| **wafleet / BullMQ (no persistence)** | **${ratio(w(enq).singlePerSec, enq.bullmq.singlePerSec)}** | ${ratio(w(enq).single.p50, enq.bullmq.single.p50)} | ${ratio(w(enq).single.p99, enq.bullmq.single.p99)} | ${ratio(w(enq).single.mean, enq.bullmq.single.mean)} | **${ratio(w(enq).batchedPerSec, enq.bullmq.batchedPerSec)}** |`,
    `| **wafleet / BullMQ (AOF always)** | **${ratio(w(enq).singlePerSec, enq['bullmq-aof'].singlePerSec)}** | ${ratio(w(enq).single.p50, enq['bullmq-aof'].single.p50)} | ${ratio(w(enq).single.p99, enq['bullmq-aof'].single.p99)} | ${ratio(w(enq).single.mean, enq['bullmq-aof'].single.mean)} | **${ratio(w(enq).batchedPerSec, enq['bullmq-aof'].batchedPerSec)}** |`,
    '',
    'Ratios are wafleet divided by BullMQ: for events/s above 1x wafleet is faster, for latencies above 1x wafleet is slower.',
    '',
    `### Delivery: a burst of ${fmt(EVENTS)} events over ${fmt(SESSIONS)} sessions, concurrency ${CONCURRENCY}, ${BURST_ROUNDS} rounds per system`,
    '',
    `- The consumer (outbox / Worker) runs first; then the ${fmt(EVENTS)} events are enqueued in batches of ${BATCH} (\`enqueueMany\` / \`addBulk\`) as fast as possible, while delivery runs. Delivery events/s = events received / (last arrival − start of the first enqueue); end-to-end latency = arrival at the receiver − the resolution of the enqueue call that stored the event, so in a burst it is mostly time spent waiting behind the backlog.`,
    '- CPU per 1,000 events: this process (enqueue, delivery and the receiver) from `process.cpuUsage()`, and Redis from `INFO cpu`, over the round.',
    '- Out-of-order: an event of a session that arrived after a later event of the same session. wafleet delivers one event per session at a time, in order; BullMQ (open source) has no per-session ordering, its Worker takes jobs in FIFO order 16 at a time.',
    '',
    '| Burst delivery | delivery events/s | per round | enqueue of the burst (s) | e2e p50 (ms) | e2e p99 (ms) | duplicates | out-of-order | CPU, this process (ms / 1k events) | CPU, Redis (ms / 1k events) |',
    '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...SYSTEMS.map((s) => {
      const b = del[s].burst;
      return `| ${LABEL[s]} | ${fmt(b.perSec)}${b.complete ? '' : ` (only ${fmt(b.received)} arrived)`} | ${b.perRound.map((x) => fmt(x)).join(', ')} | ${fmt(b.enqueueSeconds, 2)} | ${ms(b.latency.p50)} | ${ms(b.latency.p99)} | ${fmt(b.duplicates)} | ${fmt(b.outOfOrder)} | ${fmt(b.nodeCpuPer1k)} | ${s === 'wafleet' ? '–' : fmt(b.redisCpuPer1k)} |`;
    }),
    `| **wafleet / BullMQ (no persistence)** | **${ratio(w(del).burst.perSec, del.bullmq.burst.perSec)}** | | | ${ratio(w(del).burst.latency.p50, del.bullmq.burst.latency.p50)} | ${ratio(w(del).burst.latency.p99, del.bullmq.burst.latency.p99)} | | | ${ratio(w(del).burst.nodeCpuPer1k, del.bullmq.burst.nodeCpuPer1k)} | |`,
    `| **wafleet / BullMQ (AOF always)** | **${ratio(w(del).burst.perSec, del['bullmq-aof'].burst.perSec)}** | | | ${ratio(w(del).burst.latency.p50, del['bullmq-aof'].burst.latency.p50)} | ${ratio(w(del).burst.latency.p99, del['bullmq-aof'].burst.latency.p99)} | | | ${ratio(w(del).burst.nodeCpuPer1k, del['bullmq-aof'].burst.nodeCpuPer1k)} | |`,
    '',
    `### End-to-end latency at a paced load: ${fmt(PACED_EVENTS)} single enqueues at ${PACED_RATE} events/s, 2 rounds per system`,
    '',
    `- One \`enqueue\` / \`add\` every ${fmt(1000 / PACED_RATE, 1)} ms (meant to stay below every system's delivery capacity, so that latency is the path of one event, not a queue); latency from the enqueue's resolution to the event's arrival. "Last arrival after the last enqueue" checks that: a few ms when delivery kept up, hundreds when a backlog built up during the round. Event-loop delay of the benchmark process during the run (\`monitorEventLoopDelay\` at 1 ms resolution, worst round; the process also runs the receiver and the pacing loop): better-sqlite3 is synchronous, so with \`thread: 'main'\` each commit (and its fsync) runs on the event loop; by default they run in the outbox's worker thread.`,
    '',
    '| Paced | e2e p50 (ms) | per round p50 (ms) | e2e p99 (ms) | e2e mean (ms) | e2e max (ms) | last arrival after the last enqueue, per round (ms) | enqueue call p50 (ms) | enqueue call p99 (ms) | event-loop delay p99 (ms) |',
    '| --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |',
    ...SYSTEMS.map((s) => {
      const p = del[s].paced;
      return `| ${LABEL[s]}${p.complete ? '' : ' (incomplete)'} | ${ms(p.latency.p50)} | ${p.perRoundP50.map(ms).join(', ')} | ${ms(p.latency.p99)} | ${ms(p.latency.mean)} | ${ms(p.latency.max)} | ${p.tailMs.map(ms).join(', ')} | ${ms(p.enqLatency.p50)} | ${ms(p.enqLatency.p99)} | ${ms(p.loopP99)} |`;
    }),
    `| **wafleet / BullMQ (no persistence)** | **${ratio(w(del).paced.latency.p50, del.bullmq.paced.latency.p50)}** | | ${ratio(w(del).paced.latency.p99, del.bullmq.paced.latency.p99)} | ${ratio(w(del).paced.latency.mean, del.bullmq.paced.latency.mean)} | | | ${ratio(w(del).paced.enqLatency.p50, del.bullmq.paced.enqLatency.p50)} | ${ratio(w(del).paced.enqLatency.p99, del.bullmq.paced.enqLatency.p99)} | |`,
    `| **wafleet / BullMQ (AOF always)** | **${ratio(w(del).paced.latency.p50, del['bullmq-aof'].paced.latency.p50)}** | | ${ratio(w(del).paced.latency.p99, del['bullmq-aof'].paced.latency.p99)} | ${ratio(w(del).paced.latency.mean, del['bullmq-aof'].paced.latency.mean)} | | | ${ratio(w(del).paced.enqLatency.p50, del['bullmq-aof'].paced.enqLatency.p50)} | ${ratio(w(del).paced.enqLatency.p99, del['bullmq-aof'].paced.enqLatency.p99)} | |`,
    '',
    `### wafleet's SQLite modes (\`createOutbox({ sqlite: { thread, commit } })\`), in the same burst and paced rounds`,
    '',
    "- Every mode answers a write only after its `synchronous=FULL` commit, so what an acknowledged event survives is the same; they differ in where the commit runs and how many writes share one fsync. `worker` / `group` is the default; `main` / `event` is how the outbox worked before issue 16 (one commit per write, on the event loop), with today's delivery path.",
    '',
    '| SQLite mode | burst: delivery events/s | burst: CPU, this process (ms / 1k events) | paced: e2e p50 (ms) | paced: e2e p99 (ms) | paced: enqueue call p50 (ms) | paced: event-loop delay p99 (ms) | burst vs BullMQ (no persistence) | paced p50 vs BullMQ (no persistence) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...Object.entries(SQLITE_MODES).map(([s, m]) => {
      const b = del[s].burst;
      const p = del[s].paced;
      return `| \`thread: '${m.thread}', commit: '${m.commit}'\`${s === 'wafleet' ? ' (default)' : ''} | ${fmt(b.perSec)}${b.complete ? '' : ` (only ${fmt(b.received)} arrived)`} | ${fmt(b.nodeCpuPer1k)} | ${ms(p.latency.p50)} | ${ms(p.latency.p99)} | ${ms(p.enqLatency.p50)} | ${ms(p.loopP99)} | ${ratio(b.perSec, del.bullmq.burst.perSec)} | ${ratio(p.latency.p50, del.bullmq.paced.latency.p50)} |`;
    }),
    '',
    `### Issue 16's targets, run by run (the last ${fmt(history.length)} full runs of this benchmark, newest last)`,
    '',
    `- Targets: burst delivery at least 1.0x BullMQ (no persistence, and AOF always), paced e2e p50 no worse than BullMQ's (ratio at most 1.0x), event-loop delay p99 at 500 events/s at most half of the ${ms(LOOP_P99_BEFORE)} ms this benchmark measured before the change (2026-11-30T08:58Z), and 0 acknowledged events lost under kill -9. Runs with environment overrides are not recorded.`,
    '',
    '| run | burst vs BullMQ (no persistence) | burst vs BullMQ (AOF always) | paced p50 vs BullMQ (no persistence) | paced p50 vs BullMQ (AOF always) | event-loop delay p99 (ms), wafleet / BullMQ (no persistence) | lost under kill -9 (wafleet) | all targets met |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...history.map(
      (h) =>
        `| ${h.date} | ${fmt(h.burstVsBull, 2)}x | ${fmt(h.burstVsAof, 2)}x | ${fmt(h.pacedVsBull, 2)}x | ${fmt(h.pacedVsAof, 2)}x | ${ms(h.loopP99)} / ${ms(h.loopP99Bull)} | ${fmt(h.lost)} of ${fmt(h.acked)} | ${targetsMet(h) ? 'yes' : 'no'} |`,
    ),
    '',
    `### Events lost under kill -9 (${KILL_REPS} repetitions of each scenario, interleaved)`,
    '',
    `- A child process (\`bench/outbox/producer.mjs\`) enqueues from ${PRODUCER_LOOPS} concurrent loops as fast as it can and prints each event id to stdout only after its \`enqueue\` / \`add\` resolved; the parent SIGKILLs it ${fmt(KILL_AFTER_MS)} ms after it reported ready. An id counts as acknowledged if its whole line reached the parent. Lost = acknowledged ids that never reached the receiver after recovery.`,
    "- wafleet: the outbox lives in the producer (as in a WhatsApp instance), with the throughput settings above, so it may deliver while it enqueues; recovery = a fresh `createOutbox()` on the same SQLite file in the parent (WAL recovery and `quick_check` on open), which delivers what is pending. BullMQ: the producer only adds (its Queue with the job options above); the parent's Worker delivers during and after the kill.",
    `- Scenario (b) also SIGKILLs the Redis server right after the producer and starts it again on the same port with the same settings. wafleet's outbox has no Redis connection; its (b) runs kill and restart the no-persistence Redis all the same, so the two scenarios differ for it only in timing. The wait after recovery ends when every acknowledged id arrived, or when nothing is pending and nothing arrived for ${QUIET_MS} ms (at most ${fmt(DRAIN_TIMEOUT_MS / 1000)} s).`,
    '',
    '| kill -9 scenario | system | acknowledged | delivered before the kill | pending after recovery | **lost: acknowledged, never delivered, gone** | lost per run | undelivered but still stored at the end | delivered but unacknowledged | duplicate deliveries | recovery to drained (s, mean) |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |',
    ...KILL_SCENARIOS.map(({ key, system, scenario }) => {
      const r = k[key];
      const what =
        scenario === 'a'
          ? '(a) producer kill -9'
          : system === 'wafleet'
            ? '(b) producer kill -9 + Redis kill -9 and restart (a Redis the outbox does not use)'
            : system === 'bullmq'
              ? '(b) producer kill -9 + Redis kill -9 and restart, `appendonly no`'
              : '(b) producer kill -9 + Redis kill -9 and restart, `appendfsync always`';
      const states = Object.entries(r.states)
        .map(([state, n]) => `${fmt(n)} ${state}`)
        .join(', ');
      return `| ${what} | ${SHORT[system]} | ${fmt(r.acked)} | ${fmt(r.before)} | ${fmt(r.pending)} | **${fmt(r.lost)}** (${r.acked > 0 ? fmt((100 * r.lost) / r.acked, 1) : 'n/a'}%) | ${r.perRep.map((x) => fmt(x)).join(', ')} | ${fmt(r.stuck)}${states ? ` (${states})` : ''} | ${fmt(r.unacked)} | ${fmt(r.dups)} | ${fmt(r.drain / 1000, 1)} |`;
    }),
    '',
    '- "Pending after recovery": events the recovered outbox found pending in the file / jobs in the queue (waiting, active, delayed) right after recovery, summed over the runs.',
    '- "Undelivered but still stored": acknowledged events that had not arrived when the wait ended but still exist in the store in a state that will be delivered later. For BullMQ that would be a job left `active` with no Worker holding it (seen in trial runs with AOF: Redis persisted the job\'s move to active but was killed before the Worker got the reply); it waits for BullMQ\'s stalled-job check (`lockDuration` 30 s, `stalledInterval` 30 s) to be put back in the queue. Such jobs are late, not lost, and this benchmark does not wait the 30 to 60 s for them.',
    '- "Delivered but unacknowledged": stored and delivered, but the kill came before the producer printed the id (at-least-once, not a loss). "Duplicate deliveries": an event that arrived more than once (wafleet: an attempt in flight in the killed producer is sent again by the recovered outbox, with the same `webhook-id` for the receiver to deduplicate).',
  ];
  const problems = [...errors.entries()].map(([key, n]) => `${key} (x${n})`);
  if (problems.length > 0) lines.push('', `Errors reported during the run (digits replaced by N): ${problems.slice(0, 12).join('; ')}.`);
  lines.push('', 'Reading the numbers:', '', ...reading({ enq, del, k, disk: env.disk }));
  return lines.join('\n');
}

/** The interpretation paragraphs, written from the measured numbers (no direction is assumed). */
function reading({ enq, del, k, disk }) {
  const out = [];
  const W = enq.wafleet;
  const B = enq.bullmq;
  const A = enq['bullmq-aof'];
  const cmp = (a, b) => (a >= b * 1.1 ? 'faster than' : a <= b / 1.1 ? 'slower than' : 'about as fast as');
  out.push(
    `- **Enqueue.** One durable \`enqueue\` took ${ms(W.single.p50)} ms at the median (${fmt(W.singlePerSec)}/s sequentially): ${cmp(W.singlePerSec, B.singlePerSec)} a \`Queue.add\` to Redis without persistence (${ms(B.single.p50)} ms, ${fmt(B.singlePerSec)}/s, ${ratio(W.singlePerSec, B.singlePerSec)}) and ${cmp(W.singlePerSec, A.singlePerSec)} one to Redis with \`appendfsync always\` (${ms(A.single.p50)} ms, ${fmt(A.singlePerSec)}/s, ${ratio(W.singlePerSec, A.singlePerSec)}). ` +
      `An \`enqueue\` is a message to the outbox's SQLite thread, a commit with one WAL fsync, and the answer back; a sequential caller pays all of it on every call, while concurrent callers (many sessions at once, as in an instance) share commits. An \`add\` is a loopback round trip into a Lua script (plus Redis's own fsync with AOF). ` +
      `In batches of ${BATCH} both durable stores pay about one fsync per batch (Redis fsyncs the AOF once per event-loop pass), and wafleet enqueues ${fmt(W.batchedPerSec)}/s against ${fmt(B.batchedPerSec)}/s and ${fmt(A.batchedPerSec)}/s (${ratio(W.batchedPerSec, B.batchedPerSec)} and ${ratio(W.batchedPerSec, A.batchedPerSec)}): \`addBulk\` is a pipeline of one Lua script per job (and not all-or-nothing, unlike \`enqueueMany\`'s single transaction). ` +
      `The caveat is the disk: back-to-back fsyncs cost ${ms(disk.fdatasync.p50)} ms here, so durability is almost free on this machine; where an fsync costs 1 to 10 ms, single durable enqueues fall to hundreds per second, and only the no-persistence BullMQ column would not move (it is also the only column that loses acknowledged events, below).`,
  );
  const Wd = del.wafleet.burst;
  const Bd = del.bullmq.burst;
  const Ad = del['bullmq-aof'].burst;
  const Wp = del.wafleet.paced;
  const Bp = del.bullmq.paced;
  const Ap = del['bullmq-aof'].paced;
  const bullFaster = Wd.perSec < Math.max(Bd.perSec, Ad.perSec) / 1.1;
  const M = (mode) => del[mode];
  out.push(
    `- **Delivery.** The ${fmt(EVENTS)}-event burst went out at ${fmt(Wd.perSec)} events/s with wafleet, ${fmt(Bd.perSec)}/s with BullMQ without persistence and ${fmt(Ad.perSec)}/s with AOF always (${ratio(Wd.perSec, Bd.perSec)} and ${ratio(Wd.perSec, Ad.perSec)}). ` +
      (bullFaster
        ? 'BullMQ was faster at delivering in this run. '
        : 'wafleet was not slower at delivering, and every delivery it records is a `synchronous=FULL` commit. ') +
      "wafleet's SQLite work runs in the outbox's worker thread, on the other core: each commit (one fsync) covers every enqueue and delivery outcome that queued up during the previous one, and each `markDelivered` hands back the session's next event, so no query is needed to find it. BullMQ spends two Redis script calls per job (`moveToActive`, `moveToFinished`, which also hands the Worker its next job). " +
      `The modes table shows what each part is worth: one commit per event in the worker thread ${fmt(M('wafleet-worker-event').burst.perSec)}/s, group commits on the event loop ${fmt(M('wafleet-main-group').burst.perSec)}/s, and one commit per event on the event loop, the way the outbox worked before, ${fmt(M('wafleet-main-event').burst.perSec)}/s. ` +
      `Per 1,000 events this process used ${fmt(Wd.nodeCpuPer1k)} ms of CPU with wafleet (its SQLite thread included) and ${fmt(Bd.nodeCpuPer1k)} ms with BullMQ, whose Redis used another ${fmt(Bd.redisCpuPer1k)} ms (${fmt(Ad.redisCpuPer1k)} ms with AOF). ` +
      `Out-of-order arrivals within a session: wafleet ${fmt(Wd.outOfOrder)}, BullMQ ${fmt(Bd.outOfOrder)} and ${fmt(Ad.outOfOrder)}. With 10 events per session spread round-robin, FIFO order across 16 concurrent jobs rarely reorders one session's events; open-source BullMQ does not promise it, wafleet does (one event per session in flight), and that promise also caps wafleet's parallelism at the number of sessions with pending events.`,
  );
  out.push(
    `- **Latency without a backlog.** At ${PACED_RATE} events/s an event arrived ${ms(Wp.latency.p50)} ms (p50) / ${ms(Wp.latency.p99)} ms (p99) after \`enqueue\` resolved with wafleet, ${ms(Bp.latency.p50)} / ${ms(Bp.latency.p99)} ms with BullMQ without persistence and ${ms(Ap.latency.p50)} / ${ms(Ap.latency.p99)} ms with AOF always. ` +
      (Wp.latency.p50 > Math.max(Bp.latency.p50, Ap.latency.p50) * 1.1 ? 'BullMQ was faster here in this run. ' : '') +
      'An event that is already the oldest pending one of its session goes on the wire as soon as its commit is answered, without another look at SQLite; a BullMQ Worker learns of a job through Redis and needs a `moveToActive` round trip before it sends. ' +
      `The \`enqueue\` call itself takes longer with wafleet (${ms(Wp.enqLatency.p50)} ms at the median against ${ms(Bp.enqLatency.p50)} ms): it resolves after an fsync, and at this rate it often waits for the commit of the previous event's delivery first. ` +
      `Event-loop delay p99: ${ms(Wp.loopP99)} ms with wafleet, ${ms(M('wafleet-main-event').paced.loopP99)} ms with one commit per event on the event loop, ${ms(Bp.loopP99)} ms with BullMQ; at 1 ms resolution, in a process that also runs the receiver and the pacing loop, a garbage-collection pause of a few ms shows in the p99 whatever the queue. ` +
      (Math.max(...Wp.tailMs) > 50
        ? `In this run wafleet did not keep up with ${PACED_RATE} events/s in every round (last arrival ${Wp.tailMs.map(ms).join(' and ')} ms after the last enqueue; round p50s ${Wp.perRoundP50.map(ms).join(' and ')} ms). `
        : '') +
      'In the burst, latency is queueing behind the backlog and follows the delivery rate.',
  );
  const wBefore = k['wafleet-a'].before + k['wafleet-b'].before;
  const wl = k['wafleet-a'].lost + k['wafleet-b'].lost;
  const ws = k['wafleet-a'].stuck + k['wafleet-b'].stuck;
  out.push(
    `- **kill -9.** wafleet lost ${fmt(wl)} of ${fmt(k['wafleet-a'].acked + k['wafleet-b'].acked)} acknowledged events over both scenarios${ws > 0 ? ` (${fmt(ws)} still pending when the wait ended)` : ''}: an acknowledged event is a committed row, and the next outbox on the file delivers it. ` +
      (wBefore === 0
        ? 'The producer delivered nothing before it was killed, so everything was still pending at the kill, the hardest case for recovery. '
        : `The producer delivered ${fmt(wBefore)} events before it was killed (enqueue yields to the event loop while deliveries are in flight), and the rest was pending at the kill. `) +
      `BullMQ lost ${fmt(k['bullmq-a'].lost)} of ${fmt(k['bullmq-a'].acked)} when only the producer died (the jobs were already in Redis), ` +
      `and ${fmt(k['bullmq-b'].lost)} of ${fmt(k['bullmq-b'].acked)} (${k['bullmq-b'].acked > 0 ? fmt((100 * k['bullmq-b'].lost) / k['bullmq-b'].acked, 1) : 'n/a'}%) when Redis without persistence restarted too: every job not yet delivered by the Worker was gone. Nothing reported the loss itself: the Worker logged connection errors while Redis was down and \`Missing key for job N\` for the jobs it was sending at that moment (those had been delivered), then idled on an empty queue. ` +
      `With \`appendfsync always\` it lost ${fmt(k['bullmq-aof-b'].lost)} of ${fmt(k['bullmq-aof-b'].acked)}${k['bullmq-aof-b'].stuck > 0 ? `, though ${fmt(k['bullmq-aof-b'].stuck)} ${k['bullmq-aof-b'].stuck === 1 ? 'job was' : 'jobs were'} left \`active\` in Redis, to come back only after the 30 s stalled-job check` : ''}: BullMQ is as durable as the Redis under it, and that Redis is the one in the AOF-always rows above. ` +
      'A process kill -9 leaves the page cache intact, so these runs test recovery from process crashes, not the fsyncs; surviving a power cut or kernel crash is what `synchronous=FULL` and `appendfsync always` pay for, and neither is tested here.',
  );
  return out;
}

/** Whether the root package.json's `bench` script runs this file. */
function rootBenchRunsThis() {
  try {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
    return String(pkg.scripts?.bench ?? '').includes('bench/outbox.mjs');
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------

async function main() {
  const startedAt = new Date();
  const t0 = performance.now();
  const loadAtStart = loadAverage();
  tmpDir = tempDir('wafleet-bench-outbox-');
  log(`temp directory ${tmpDir}`);
  const disk = await diskInfo(tmpDir);
  log(`disk: ${disk.device} ${disk.fsType}, 4 KB append + fdatasync p50 ${ms(disk.fdatasync.p50)} ms`);

  const redisIn = (name, persistence) => new RedisServer({ name, persistence, dir: path.join(tmpDir, `redis-${name}`) });
  const servers = { bullmq: redisIn('none', NO_PERSISTENCE), 'bullmq-aof': redisIn('aof', AOF_ALWAYS) };
  for (const s of Object.values(servers)) onCleanup(`redis-server ${s.name}`, () => s.stop());
  await Promise.all(Object.values(servers).map((s) => s.start()));
  await startReceiver();

  const version = await withAdmin(servers.bullmq, redisVersion);

  try {
    const phases = {};
    let tp = performance.now();
    const enq = await enqueueBench(servers);
    phases.enqueue = (performance.now() - tp) / 1000;
    tp = performance.now();
    const del = await deliveryBench(servers);
    phases.delivery = (performance.now() - tp) / 1000;
    tp = performance.now();
    const kill = await killBench(servers);
    phases.kill = (performance.now() - tp) / 1000;
    log(`phases: enqueue ${fmt(phases.enqueue, 1)} s, delivery ${fmt(phases.delivery, 1)} s, kill -9 ${fmt(phases.kill, 1)} s`);
    const env = {
      disk,
      phases,
      rootBench: rootBenchRunsThis(),
      loadAtStart,
      loadAtEnd: loadAverage(),
      redisVersion: version,
      redisNone: servers.bullmq.command,
      redisAof: servers['bullmq-aof'].command,
      sqlite: sqliteInfo(),
      versions: {
        core: packageVersion('@wafleet/core'),
        bullmq: packageVersion('bullmq'),
        ioredis: packageVersion('ioredis'),
      },
    };
    const lost = (key) => sumBy(kill[key], (x) => x.lost);
    const acked = (key) => sumBy(kill[key], (x) => x.acked);
    const history = recordRun({
      date: isoSeconds(startedAt),
      burstVsBull: del.wafleet.burst.perSec / del.bullmq.burst.perSec,
      burstVsAof: del.wafleet.burst.perSec / del['bullmq-aof'].burst.perSec,
      pacedVsBull: del.wafleet.paced.latency.p50 / del.bullmq.paced.latency.p50,
      pacedVsAof: del.wafleet.paced.latency.p50 / del['bullmq-aof'].paced.latency.p50,
      loopP99: del.wafleet.paced.loopP99,
      loopP99Bull: del.bullmq.paced.loopP99,
      lost: lost('wafleet-a') + lost('wafleet-b'),
      acked: acked('wafleet-a') + acked('wafleet-b'),
    });
    publish('outbox', report({ env, enq, del, kill, startedAt, runtimeS: (performance.now() - t0) / 1000, history }));
  } finally {
    await cleanup();
    log(`total ${fmt((performance.now() - t0) / 1000, 1)} s`);
  }
}

runMain(main);
