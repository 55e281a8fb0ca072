// Helpers shared by the benchmark scripts (registry.mjs, client.mjs, outbox.mjs) and the outbox producer child.
//
// Importing this module has no side effects, so the producer child can use the workload helpers without taking
// over its signals: a script opts into the exit and signal handling by starting through runMain().

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { Redis } from 'ioredis';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BENCHMARKS_MD = path.join(ROOT, 'BENCHMARKS.md');

/** Keeps the keys, namespaces and queue names of one run apart from any earlier run's leftovers. */
export const runTag = Date.now().toString(36);

/** Environment overrides fall back to the default unless they are a positive integer. */
export function positiveInt(raw, fallback) {
  const n = Number(raw);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

export const range = (n) => Array.from({ length: n }, (_, i) => i);
export const sumBy = (items, pick) => items.reduce((s, x) => s + pick(x), 0);

/** Resolves once `cond()` holds (checked every `everyMs`), or false after `timeoutMs`. */
export async function waitFor(cond, timeoutMs, everyMs = 5) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await cond()) return true;
    await sleep(everyMs);
  }
  return false;
}

// Progress goes to stderr so that stdout carries nothing but the markdown section.
let log = (...args) => console.error('[bench]', ...args);

/** The script's logger; the helpers below log through it too, so their lines carry the script's tag. */
export function benchLog(tag) {
  log = (...args) => console.error(`[${tag}]`, ...args);
  return log;
}

// ---------------------------------------------------------------------------------------------------------
// Cleanup: everything a script starts registers how to undo it; runs on success, failure and signals.
// ---------------------------------------------------------------------------------------------------------

/** @type {Array<{ name: string, fn: () => Promise<unknown> }>} newest first when run */
const cleanups = [];
let cleaningUp;

/** Registers an undo step; the returned function runs it now instead (and forgets it). */
export function onCleanup(name, fn) {
  const entry = { name, fn };
  cleanups.push(entry);
  return async () => {
    const i = cleanups.indexOf(entry);
    if (i !== -1) cleanups.splice(i, 1);
    await fn();
  };
}

/**
 * Runs the registered steps, newest first. A step that hangs is given up after 5 s so that the others (dropping a
 * table, stopping a server) still run. Callable again once done: a later phase registers steps of its own.
 */
export function cleanup() {
  cleaningUp ??= (async () => {
    while (cleanups.length > 0) {
      const { name, fn } = cleanups.pop();
      try {
        await Promise.race([fn(), sleep(5_000).then(() => Promise.reject(new Error('timed out after 5 s')))]);
      } catch (err) {
        log(`cleanup "${name}" failed: ${err?.message ?? err}`);
      }
    }
  })().finally(() => {
    cleaningUp = undefined;
  });
  return cleaningUp;
}

/** Child processes still alive: SIGKILLed whatever happens to this process. */
const children = new Set();
/** Removed on exit if cleanup() never got to them (a crash of the script itself). */
const tempDirs = new Set();

export function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

const alive = (child) => child.exitCode === null && child.signalCode === null;

/** A fresh temp directory, removed by cleanup() or, if the process dies before that, on exit. */
export function tempDir(prefix) {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  onCleanup('temp directory', async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Runs a script's main(): exit code 0 once it resolves, 1 after cleanup if it throws, 130 after cleanup on a signal
 * (with 8 s for the cleanup). The exit handler is the last resort that leaves no child and no temp directory behind.
 */
export function runMain(main) {
  process.on('exit', () => {
    for (const child of children) if (alive(child)) child.kill('SIGKILL');
    for (const dir of tempDirs) if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
      log(`${sig}: cleaning up`);
      const hard = setTimeout(() => process.exit(130), 8_000);
      hard.unref();
      cleanup().finally(() => process.exit(130));
    });
  }
  main().then(
    () => process.exit(0),
    async (err) => {
      console.error(err);
      await cleanup().catch(() => undefined);
      process.exit(1);
    },
  );
}

// ---------------------------------------------------------------------------------------------------------
// Private redis-servers
// ---------------------------------------------------------------------------------------------------------

/** A free loopback port; never 6379, so that a benchmark cannot end up on the machine's own Redis. */
async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address();
        srv.close(() => resolve(port));
      });
    });
    if (port !== 6379) return port;
  }
}

export const NO_PERSISTENCE = ['--save', '', '--appendonly', 'no'];

/** A redis-server of this process only, which can be SIGKILLed and started again on the same port and files. */
export class RedisServer {
  /** @param {{ name?: string, persistence?: string[], dir?: string }} options `dir`: where an AOF goes */
  constructor({ name, persistence = NO_PERSISTENCE, dir } = {}) {
    this.name = name;
    this.persistence = persistence;
    this.dir = dir;
    if (dir) mkdirSync(dir, { recursive: true });
    this.bin = process.env.REDIS_SERVER || 'redis-server';
    this.port = undefined;
    this.child = undefined;
    this.starts = 0;
  }

  args(port) {
    const dir = this.dir ? ['--dir', this.dir] : [];
    return ['--port', String(port), '--bind', '127.0.0.1', ...this.persistence, ...dir, '--daemonize', 'no'];
  }

  /** The command line for a report; the temp directory, different on every run, is shortened to `<tmp>`. */
  get command() {
    const shown = (a) => (a === '' ? '""' : a === this.dir ? `<tmp>/${path.basename(this.dir)}` : a);
    return `${this.bin} ${this.args(this.port).map(shown).join(' ')}`;
  }

  get label() {
    return this.name ? `redis-server "${this.name}"` : 'redis-server';
  }

  /** The first start picks a free port (three tries, in case another process takes it first); a restart reuses it. */
  async start() {
    for (let attempt = 1; ; attempt++) {
      const port = this.port ?? (await freePort());
      const child = track(spawn(this.bin, this.args(port), { stdio: ['ignore', 'pipe', 'pipe'] }));
      let output = '';
      const keep = (chunk) => {
        output = (output + chunk.toString()).slice(-4000);
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      child.once('error', (err) => keep(`spawn error: ${err.message}\n`));
      const exited = new Promise((resolve) => child.once('exit', resolve));
      const ready = await Promise.race([waitFor(() => /Ready to accept connections/.test(output), 15_000), exited.then(() => false)]);
      if (ready) {
        this.port = port;
        this.child = child;
        this.starts++;
        if (this.starts === 1) log(`${this.label} pid ${child.pid} on port ${port}`);
        return this;
      }
      if (alive(child)) {
        child.kill('SIGKILL');
        await exited;
      }
      if (attempt >= 3 || this.port !== undefined) throw new Error(`${this.label} did not start:\n${output}`);
      log(`redis-server on port ${port} did not start (attempt ${attempt}), retrying`);
    }
  }

  /** kill -9, as a crash or an OOM kill would. */
  async kill9() {
    const child = this.child;
    if (!child || !alive(child)) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await gone;
  }

  async stop() {
    const child = this.child;
    if (!child || !alive(child)) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
    await gone;
    clearTimeout(timer);
    log(`${this.label} pid ${child.pid} stopped`);
  }
}

/** An ioredis client that connects on `connect()` and fails a command after one retry instead of queueing it. */
export function redisClient(port, onError = (err) => log('redis client error:', err.message)) {
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', onError);
  return client;
}

export async function redisVersion(client) {
  return /redis_version:(\S+)/.exec(await client.info('server'))?.[1] ?? 'unknown';
}

// ---------------------------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------------------------

/** Nearest-rank percentile of ascending `sorted`. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function summarize(samples) {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const x of sorted) sum += x;
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean: sum / sorted.length,
    max: sorted[sorted.length - 1],
  };
}

/** `n` calls of `fn(from + i)` one after another; pushes each call's time to `samples` unless it is null. Returns wall ms. */
export async function runSequential(fn, from, n, samples) {
  const t0 = performance.now();
  if (samples) {
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await fn(from + i);
      samples.push(performance.now() - t);
    }
  } else {
    for (let i = 0; i < n; i++) await fn(from + i);
  }
  return performance.now() - t0;
}

/** `n` calls of `fn(from + i)` from `callers` concurrent callers, each call timed into `samples`. Returns wall ms. */
export async function runConcurrent(fn, from, n, callers, samples) {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const t = performance.now();
      await fn(from + i);
      samples.push(performance.now() - t);
    }
  };
  const t0 = performance.now();
  await Promise.all(range(Math.min(callers, n)).map(worker));
  return performance.now() - t0;
}

/**
 * The order of `names` in round `r`: rotates, and reverses every other cycle, so that none is always first (or
 * always right after another) and a slow moment of a shared machine lands on all of them alike.
 */
export function rotation(r, names) {
  const k = r % names.length;
  const rotated = [...names.slice(k), ...names.slice(0, k)];
  return Math.floor(r / names.length) % 2 === 1 ? rotated.reverse() : rotated;
}

// ---------------------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------------------

export const fmt = (x, digits = 0) =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a';

/** A run's start to the second: the milliseconds only add noise to a report. */
export const isoSeconds = (date) => date.toISOString().replace(/\.\d+Z$/, 'Z');

export const loadAverage = () =>
  os
    .loadavg()
    .map((x) => fmt(x, 2))
    .join(' / ');

/** E.g. `2 cores (Intel(R) Xeon(R) Processor), linux`. */
export function machine() {
  const cpu = os.cpus();
  return `${os.availableParallelism()} cores${cpu[0] ? ` (${cpu[0].model.trim()})` : ''}, ${process.platform}`;
}

/** The version of the copy of `name` this directory resolves, which is the one measured (not what a lock file says). */
export function packageVersion(name) {
  try {
    const require = createRequire(import.meta.url);
    let dir = path.dirname(require.resolve(name));
    for (let i = 0; i < 6; i++, dir = path.dirname(dir)) {
      const file = path.join(dir, 'package.json');
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, 'utf8'));
        if (pkg.name === name) return pkg.version;
      }
    }
  } catch {
    // fall through
  }
  return 'unknown';
}

const BENCHMARKS_INTRO = () =>
  [
    '# Benchmarks',
    '',
    `Numbers in this file come from the scripts under \`bench/\`, run on the development machine (${os.availableParallelism()} cores, shared between Redis, the benchmark process and whatever else was running). Timings are noisy: compare columns measured in the same run, not runs with each other, and rerun before relying on a figure. Each section is written by its script between its own markers and replaced on the next run; add new sections after the existing ones.`,
    '',
  ].join('\n');

/**
 * `text` with the section `name` (between `<!-- bench:<name>:start -->` and `<!-- bench:<name>:end -->`) replaced by
 * `section`. A section not there yet goes right after section `after` if there is one, so that sections keep their
 * order whichever script runs first, else at the end.
 */
function withSection(text, name, section, after) {
  const startMarker = `<!-- bench:${name}:start -->`;
  const endMarker = `<!-- bench:${name}:end -->`;
  const block = `${startMarker}\n${section}\n${endMarker}`;
  const start = text.indexOf(startMarker);
  const end = start === -1 ? -1 : text.indexOf(endMarker, start);
  if (start !== -1 && end !== -1) return text.slice(0, start) + block + text.slice(end + endMarker.length);
  const anchor = after ? `<!-- bench:${after}:end -->` : undefined;
  const at = anchor ? text.indexOf(anchor) : -1;
  if (at !== -1) {
    const cut = at + anchor.length;
    const rest = text.slice(cut);
    return `${text.slice(0, cut)}\n\n${block}${rest.length > 0 ? rest : '\n'}`;
  }
  return `${text.replace(/\s*$/, '')}\n\n${block}\n`;
}

/** Prints the section to stdout and, unless BENCH_NO_WRITE=1 (trial runs), puts it into BENCHMARKS.md. */
export function publish(name, section, { after } = {}) {
  process.stdout.write(`${section}\n`);
  if (process.env.BENCH_NO_WRITE === '1') return;
  const old = existsSync(BENCHMARKS_MD) ? readFileSync(BENCHMARKS_MD, 'utf8') : BENCHMARKS_INTRO();
  writeFileSync(BENCHMARKS_MD, withSection(old, name, section, after));
  log(`wrote ${path.relative(process.cwd(), BENCHMARKS_MD) || BENCHMARKS_MD}`);
}

// ---------------------------------------------------------------------------------------------------------
// Outbox workload, shared by outbox.mjs and its producer child so that both enqueue the same events
// ---------------------------------------------------------------------------------------------------------

/** Event i of a workload: sessions round-robin, `k` = the event's position within its session. */
export function webhookEvent(i, sessions) {
  const session = `5511${String(i % sessions).padStart(9, '0')}`;
  return { type: 'message.received', session, data: { k: Math.floor(i / sessions), from: session, body: `bench message ${i}` } };
}

/** The same envelope wafleet sends (minus its per-session seq, which BullMQ has no equivalent of). */
export function bullEnvelope(event, instance) {
  return {
    id: `evt_${randomUUID()}`,
    type: event.type,
    timestamp: new Date().toISOString(),
    session: event.session,
    epoch: '0',
    instance,
    data: event.data,
  };
}
