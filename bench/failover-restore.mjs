#!/usr/bin/env node
// Failover with login data (issue 12, acceptance 5): the time from kill -9 of the instance that runs a session to
// the adopter's engine launched, its login restored and the session ready again, with the fleet's default timing.
//
//   node bench/failover-restore.mjs    (from the repository root, after `npx -y pnpm@12.4.2 run build`)
//
// Each round runs two `wafleet-sim instance` processes (default timing, dead-man switch on, one `sleep` process per
// session standing in for its browser, logins of BENCH_LOGIN_MB in Redis through core's fenced session data): the
// sessions run on the first, the second is idle; the first is SIGKILLed and the second adopts them once the lease
// has expired. The next round starts a fresh instance and kills the adopter, so every round moves every session.
// Times come from the instances' own journals (unix ms, one clock): the engine's launch (journal "start"), the end of
// its login restore (login journal "restore") and WORKING (the supervisor's status line).
//
// Spawns its own redis-server on a free port (never the machine's Redis), prints a markdown section to stdout and
// replaces that section of BENCHMARKS.md (between the bench:failover-restore markers). Progress goes to stderr.
//
// Environment overrides (for quick trial runs only; published numbers use the defaults):
//   BENCH_ROUNDS      failovers (each moves every session)      (default 3)
//   BENCH_SESSIONS    sessions                                  (default 5)
//   BENCH_LOGIN_MB    login size in MiB                         (default 5)
//   BENCH_NO_WRITE=1  print only, do not touch BENCHMARKS.md

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

import { freePort } from '@wafleet/test-utils';

import {
  benchLog,
  fmt,
  isoSeconds,
  machine,
  positiveInt,
  publish,
  RedisServer,
  redisClient,
  redisVersion,
  ROOT,
  runMain,
  runTag,
  summarize,
  tempDir,
  track,
  waitFor,
} from './lib.mjs';

const ROUNDS = positiveInt(process.env.BENCH_ROUNDS, 3);
const SESSIONS = positiveInt(process.env.BENCH_SESSIONS, 5);
const LOGIN_MB = positiveInt(process.env.BENCH_LOGIN_MB, 5);
const LOGIN_BYTES = LOGIN_MB * 1024 * 1024;
const BIN = path.join(ROOT, 'packages', 'sim', 'bin', 'wafleet-sim.mjs');
/** The fleet's defaults (docs/registry.md): what this benchmark measures, so no timing flag is passed. */
const DEFAULTS = { leaseTtlMs: 6000, adoptionDelayMs: 1000, sweepIntervalMs: 1000, heartbeatIntervalMs: 1000 };
const log = benchLog('bench:failover-restore');

/** One `wafleet-sim` process; its JSON stdout lines are collected. */
function sim(args, name) {
  const child = track(spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const messages = [];
  let stderr = '';
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      messages.push(JSON.parse(line));
    } catch {
      // not a JSON line
    }
  });
  child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-4000)));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, messages, exited, name, stderr: () => stderr };
}

const readLines = (file) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l))
    : [];

async function main() {
  const startedAt = new Date();
  const t0 = performance.now();
  const redis = await new RedisServer().start();
  const admin = redisClient(redis.port);
  await admin.connect();
  const version = await redisVersion(admin);
  admin.disconnect();
  const url = `redis://127.0.0.1:${redis.port}`;
  const namespace = `bench-failover-${runTag}`;
  const work = tempDir('wafleet-bench-failover-');
  const journal = path.join(work, 'journal.jsonl');
  const logins = path.join(work, 'logins.jsonl');
  const token = randomBytes(24).toString('base64url');
  const instances = [];
  const stopAll = async () => {
    for (const inst of instances) if (inst.child.exitCode === null && inst.child.signalCode === null) inst.child.kill('SIGTERM');
    await Promise.all(instances.map((i) => i.exited));
  };

  const startInstance = async (n) => {
    const id = `wa-${n}`;
    const args = [
      ...['instance', '--redis', url, '--namespace', namespace, '--id', id, '--port', String(await freePort())],
      ...['--max-sessions', String(SESSIONS), '--journal', journal, '--browser-processes'],
      ...['--session-store', 'redis', '--login-bytes', String(LOGIN_BYTES), '--login-journal', logins],
    ];
    const inst = sim(args, id);
    instances.push(inst);
    if (!(await waitFor(() => inst.messages.some((m) => m.ev === 'ready'), 30_000, 20))) {
      throw new Error(`${id} did not start: ${inst.stderr()}`);
    }
    return inst;
  };
  // The runner reads its admin token from the environment it inherits.
  process.env.WAFLEET_ADMIN_TOKEN = token;

  const working = (inst) => {
    const last = new Map();
    for (const m of inst.messages) if (m.ev === 'status') last.set(m.s, m.status);
    return [...last.values()].filter((s) => s === 'WORKING').length;
  };

  const samples = [];
  try {
    let owner = await startInstance(1);
    log(`seeding ${SESSIONS} logged-in sessions (${LOGIN_MB} MiB logins)`);
    const seeder = sim(
      [
        ...['sessions', '--redis', url, '--namespace', namespace, '--count', String(SESSIONS)],
        ...['--logged-in', '--session-store', 'redis', '--login-bytes', String(LOGIN_BYTES), '--login-journal', logins],
      ],
      'seeder',
    );
    const seeded = await seeder.exited;
    if (seeded.code !== 0) throw new Error(`seeding failed: ${seeder.stderr()}`);
    if (!(await waitFor(() => working(owner) === SESSIONS, 60_000, 50))) throw new Error(`sessions not WORKING on ${owner.name}`);

    for (let round = 1; round <= ROUNDS; round++) {
      const adopter = await startInstance(round + 1);
      // Let the first interval saves pass, so the kill does not land in the middle of the owner's first save.
      await new Promise((r) => setTimeout(r, 1500));
      const killedAt = Date.now();
      owner.child.kill('SIGKILL');
      await owner.exited;
      log(`round ${round}: killed ${owner.name}, waiting for ${adopter.name}`);
      if (!(await waitFor(() => working(adopter) === SESSIONS, 60_000, 20))) {
        throw new Error(`round ${round}: ${adopter.name} has ${working(adopter)} of ${SESSIONS} sessions WORKING`);
      }
      const starts = readLines(journal).filter((l) => l.instance === adopter.name && l.event === 'start' && l.t >= killedAt);
      const restores = readLines(logins).filter((l) => l.instance === adopter.name && l.ev === 'restore' && l.t >= killedAt);
      for (const start of starts) {
        const restore = restores.find((r) => r.session === start.session && r.epoch === start.epoch);
        const ready = adopter.messages.find((m) => m.ev === 'status' && m.s === start.session && m.status === 'WORKING' && m.t >= start.t);
        samples.push({
          round,
          session: start.session,
          launchMs: start.t - killedAt,
          restoredMs: restore ? restore.t - killedAt : null,
          restoreMs: restore?.ms ?? null,
          version: restore?.version ?? null,
          readyMs: ready ? ready.t - killedAt : null,
        });
      }
      const qr = adopter.messages.filter((m) => m.ev === 'status' && m.status === 'SCAN_QR_CODE').length;
      samples.filter((s) => s.round === round).forEach((s) => (s.qr = qr));
      log(
        `round ${round}: ready after ${samples
          .filter((s) => s.round === round)
          .map((s) => s.readyMs)
          .join(', ')} ms`,
      );
      owner = adopter;
    }
  } finally {
    await stopAll();
    await redis.stop();
  }
  const qrScreens = instances.flatMap((i) => i.messages).filter((m) => m.ev === 'status' && m.status === 'SCAN_QR_CODE').length;
  const runtimeS = (performance.now() - t0) / 1000;
  publish('failover-restore', report({ samples, qrScreens, redisCommand: redis.command, redisVersion: version, startedAt, runtimeS }));
}

function report({ samples, qrScreens, redisCommand, redisVersion: version, startedAt, runtimeS }) {
  const col = (pick) => {
    const values = samples.map(pick).filter((v) => typeof v === 'number');
    const s = summarize(values);
    return values.length === samples.length ? `${fmt(s.p50, 0)} / ${fmt(s.max, 0)} ms` : `missing for ${samples.length - values.length}`;
  };
  const bound = DEFAULTS.leaseTtlMs + DEFAULTS.adoptionDelayMs + DEFAULTS.sweepIntervalMs * 1.2;
  const restoredNothing = samples.filter((s) => s.version === null).length;
  return [
    '## Failover with login data: kill -9 to the adopter running the restored session (issue 12)',
    '',
    '- Command: `node bench/failover-restore.mjs` (from the repository root, after `npx -y pnpm@12.4.2 run build`)',
    `- Date: ${isoSeconds(startedAt)} (run took ${fmt(runtimeS, 0)} s)`,
    `- Node ${process.version}, Redis ${version} (a private \`${redisCommand}\` spawned by the script)`,
    `- Machine: ${machine()}`,
    `- ${ROUNDS} rounds, ${SESSIONS} sessions each, logins of ${LOGIN_MB} MiB in Redis (core's fenced session data, Redis chunk backend): two \`wafleet-sim instance\` processes per round with the default timing (lease ${DEFAULTS.leaseTtlMs} ms, adoption delay ${DEFAULTS.adoptionDelayMs} ms, sweep every ${DEFAULTS.sweepIntervalMs} ms +-20 %, heartbeat ${DEFAULTS.heartbeatIntervalMs} ms), the dead-man switch on and a \`sleep\` process per session as its browser. The owner is SIGKILLed; the other instance adopts every session and launches them one at a time (the supervisor's default).`,
    "- Times from the kill, per session, median / max; from the instances' journals (one clock). The simulator stands in for Chromium (its launch takes 50 ms): with whatsapp-web.js add the browser start and WhatsApp Web's own load.",
    '',
    '| from kill -9 to | median / max |',
    '| --- | ---: |',
    `| the adopter's engine launched (journal \`start\`) | ${col((s) => s.launchMs)} |`,
    `| its login restored (before authentication, like RemoteAuth) | ${col((s) => s.restoredMs)} |`,
    `| WORKING | ${col((s) => s.readyMs)} |`,
    `| the restore itself (download, size and SHA-256 check) | ${col((s) => s.restoreMs)} |`,
    '',
    `Sessions moved: ${samples.length}; restores that found no committed login: ${restoredNothing}; SCAN_QR_CODE shown: ${qrScreens} (a QR code would mean a phone has to be found). Expected bound for the first launch: lease ${DEFAULTS.leaseTtlMs} + adoption delay ${DEFAULTS.adoptionDelayMs} + one sweep ${DEFAULTS.sweepIntervalMs * 1.2} = ${bound} ms after the owner's last renewal, which came up to one heartbeat before the kill; each further session of the same adopter follows one launch later. No test asserts these timings.`,
  ].join('\n');
}

runMain(main);
