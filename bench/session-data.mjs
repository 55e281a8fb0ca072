#!/usr/bin/env node
// Session data benchmark (issue 12): save and restore time of 5, 20 and 100 MB archives (random bytes) through the
// fenced commit protocol, for the Redis chunk backend and the directory backend side by side, and the Redis memory
// one stored session takes.
//
//   node bench/session-data.mjs        (from the repository root; `pnpm bench` builds first, then runs this)
//
// Spawns its own redis-server on a free port (never the machine's Redis), prints a markdown section to stdout and
// replaces that section of BENCHMARKS.md (between the bench:session-data markers). Progress goes to stderr.
//
// Environment overrides (for quick trial runs only; published numbers use the defaults):
//   BENCH_RUNS        saves and restores per size and backend, the median is reported   (default 5)
//   REDIS_SERVER      redis-server binary                                                (default: redis-server on PATH)
//   BENCH_NO_WRITE=1  print only, do not touch BENCHMARKS.md

import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import { createFleet, createSessionData, directoryBlobBackend, REDIS_BLOB_DEFAULTS, redisBlobBackend } from '@wafleet/core';

import {
  benchLog,
  fmt,
  isoSeconds,
  machine,
  positiveInt,
  publish,
  redisClient,
  redisVersion,
  RedisServer,
  runMain,
  runTag,
  summarize,
  tempDir,
} from './lib.mjs';

const SIZES_MB = [5, 20, 100];
const RUNS = positiveInt(process.env.BENCH_RUNS, 5);
const MB = 1024 * 1024;
const log = benchLog('bench:session-data');

/** A file of `mb` MiB of random bytes, written in 1 MiB pieces (never held whole). */
async function randomArchive(dir, mb) {
  const file = path.join(dir, `archive-${mb}.zip`);
  const out = createWriteStream(file);
  for (let i = 0; i < mb; i++) if (!out.write(randomBytes(MB))) await once(out, 'drain');
  out.end();
  await once(out, 'close');
  return file;
}

const usedMemory = async (admin) => Number(/used_memory:(\d+)/.exec(await admin.info('memory'))[1]);

/** MEMORY USAGE summed over the chunk keys of one stored version. */
async function chunkMemory(admin, namespace, sessionId, uploadId) {
  let total = 0;
  let keys = 0;
  for (let i = 0; ; i++) {
    const bytes = await admin.call('MEMORY', 'USAGE', `wafleet:${namespace}:blob:${sessionId}:${uploadId}:${i}`, 'SAMPLES', '0');
    if (bytes === null) return { total, keys };
    total += Number(bytes);
    keys++;
  }
}

async function measure(data, sessionId, file, restoreTo) {
  const saves = [];
  const restores = [];
  let committed;
  for (let r = 0; r < RUNS; r++) {
    let t = performance.now();
    committed = await data.save(sessionId, file);
    saves.push(performance.now() - t);
    t = performance.now();
    await data.restore(sessionId, restoreTo);
    restores.push(performance.now() - t);
  }
  return { save: summarize(saves), restore: summarize(restores), committed };
}

async function main() {
  const startedAt = new Date();
  const t0 = performance.now();
  const redis = await new RedisServer().start();
  const admin = redisClient(redis.port);
  const namespace = `bench-data-${runTag}`;
  const fleet = createFleet({
    redis: `redis://127.0.0.1:${redis.port}`,
    namespace,
    instanceId: 'bench',
    url: 'http://bench.invalid:3000',
    maxSessions: 10,
    quarantineMs: 0,
  });
  const chunks = redisClient(redis.port);
  try {
    await Promise.all([admin.connect(), chunks.connect()]);
    const version = await redisVersion(admin);
    await fleet.start();
    const work = tempDir('wafleet-bench-data-');
    const backends = {
      redis: createSessionData({ fleet, backend: redisBlobBackend({ redis: chunks, namespace }) }),
      directory: createSessionData({ fleet, backend: directoryBlobBackend({ dir: path.join(work, 'shared') }) }),
    };
    const rows = [];
    for (const mb of SIZES_MB) {
      const file = await randomArchive(work, mb);
      const row = { mb };
      for (const [kind, data] of Object.entries(backends)) {
        const sessionId = `s-${kind}-${mb}`;
        await fleet.claim(sessionId);
        const before = kind === 'redis' ? await usedMemory(admin) : 0;
        log(`${mb} MB, ${kind}: ${RUNS} saves and restores`);
        const m = await measure(data, sessionId, file, path.join(work, `restored-${kind}.zip`));
        row[kind] = m;
        if (kind === 'redis') {
          row.memoryDelta = (await usedMemory(admin)) - before;
          row.chunks = await chunkMemory(admin, namespace, sessionId, m.committed.uploadId);
          row.pointer = Number(await admin.call('MEMORY', 'USAGE', `{wafleet:${namespace}}:data`, 'SAMPLES', '0'));
        }
        // Only the newest version stays: the next size starts from an empty Redis (for the memory delta).
        await fleet.setStatus(sessionId, 'STOPPED', { desired: 'stopped', reason: 'stopped by request' });
        await data.drop(sessionId);
      }
      rows.push(row);
    }
    const runtimeS = (performance.now() - t0) / 1000;
    publish('session-data', report({ rows, redisCommand: redis.command, redisVersion: version, startedAt, runtimeS }));
  } finally {
    await fleet.close();
    chunks.disconnect();
    admin.disconnect();
    await redis.stop();
    log(`total ${fmt((performance.now() - t0) / 1000, 1)} s`);
  }
}

function report({ rows, redisCommand, redisVersion: version, startedAt, runtimeS }) {
  const ms = (x) => fmt(x, 0);
  const mbps = (mb, t) => fmt(mb / (t / 1000), 0);
  const lines = [
    '## Session data: save and restore (issue 12)',
    '',
    '- Command: `node bench/session-data.mjs` (from the repository root; `pnpm bench` builds first)',
    `- Date: ${isoSeconds(startedAt)} (run took ${fmt(runtimeS, 0)} s)`,
    `- Node ${process.version}, Redis ${version} (a private \`${redisCommand}\` spawned by the script)`,
    `- Machine: ${machine()}; Redis, the benchmark process and the directory (a local disk under the OS temp dir, not a network volume) share it`,
    `- Archives of random bytes (incompressible, like the zip RemoteAuth makes); ${RUNS} saves and ${RUNS} restores per size and backend, the median shown.`,
    `- A save is \`sessionData.save()\`: SHA-256 of the file, \`data-begin\`, upload under a fresh name, \`data-commit\` (the fenced pointer swap), removal of the replaced version. A restore is \`sessionData.restore()\`: read the pointer, download to a sibling temp file, verify size and SHA-256, rename into place.`,
    `- Redis backend: chunks of ${REDIS_BLOB_DEFAULTS.chunkBytes} bytes (the default, 1 MiB - 1 KiB: exactly 1 MiB would fall into jemalloc's 1.25 MiB size class and take 25 % more memory), 4 in flight, over one ioredis connection; directory backend: write \`<uploadId>.tmp\`, fsync, rename, fsync the folder.`,
    '',
    '| archive | Redis save | Redis restore | directory save | directory restore |',
    '| ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.mb} MB | ${ms(r.redis.save.p50)} ms (${mbps(r.mb, r.redis.save.p50)} MB/s) | ${ms(r.redis.restore.p50)} ms (${mbps(r.mb, r.redis.restore.p50)} MB/s) | ${ms(r.directory.save.p50)} ms (${mbps(r.mb, r.directory.save.p50)} MB/s) | ${ms(r.directory.restore.p50)} ms (${mbps(r.mb, r.directory.restore.p50)} MB/s) |`,
    ),
    '',
    '### Redis memory per stored session',
    '',
    'One committed version per session (a commit removes the version it replaced). `MEMORY USAGE` summed over the chunk keys of the stored version, and the `INFO memory` `used_memory` delta from before the first save to after the last (allocator effects included).',
    '',
    '| archive | chunk keys | MEMORY USAGE of the chunks | overhead | `used_memory` delta | pointer hash (all sessions of the namespace) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.mb} MB | ${r.chunks.keys} | ${fmt(r.chunks.total / MB, 2)} MiB | ${fmt(((r.chunks.total - r.mb * MB) / (r.mb * MB)) * 100, 2)} % | ${fmt(r.memoryDelta / MB, 2)} MiB | ${r.pointer} bytes |`,
    ),
    '',
    'Timings are wall-clock around each awaited call (`performance.now()`), on one machine with loopback networking: a Redis or an NFS/EFS volume across a network adds its transfer time. They are figures for sizing, not guarantees; no test asserts them.',
  ];
  return lines.join('\n');
}

runMain(main);
