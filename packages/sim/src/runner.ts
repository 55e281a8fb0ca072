import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Server } from 'node:http';
import { parseArgs } from 'node:util';
import { createFleetClient } from '@wafleet/client';
import {
  createFleet,
  createInbox,
  createOutbox,
  createStartBreaker,
  createSupervisor,
  QuarantineError,
  startDeadmanSwitch,
  wafleetLogger,
  type DeadmanSwitch,
  type Fleet,
  type Outbox,
} from '@wafleet/core';
import { createFleetRouter, fleetGuard, idempotency, requireAuth } from '@wafleet/core/express';
import type { RedisEndpoint, RedisOption } from '@wafleet/protocol';
import express from 'express';
import { loginFileContent } from './login-file.js';
import { loginJournal, openSessionStore, type SessionStoreSpec } from './session-store.js';
import { createSimEngine, type SimFault } from './sim-engine.js';

const USAGE = `Usage:
  wafleet-sim instance --redis <url> --namespace <ns> --id <id> --port <port> --max-sessions <n> [--journal <file>]
      [--url <public url>] [--profile default|tolerant] [--heartbeat-ms n] [--lease-ttl-ms n] [--self-fence-ms n]
      [--adoption-delay-ms n] [--sweep-ms n] [--quarantine-ms n] [--browser-processes] [--no-deadman] [--auth-delay-ms n] [--ready-delay-ms n]
      [--start-concurrency n] [--stagger-ms n] [--outbox <file> --webhook-url <url> --webhook-secret <whsec_...>]
      [--start-timeout-ms n] [--restart-base-ms n] [--restart-max-ms n] [--restart-max-attempts n]
      [--qr <regex>] [--hold-starting <regex>] [--fail-start <regex>] [--fail-starts-file <file>] [--bad-config <regex>]
      [--sends <file>] [--messages <dir>] [--breaker [--breaker-probe-ms n]] [--recycle-memory-bytes n]
      [--memory-interval-ms n] [--rebalance-ms n]
      [--session-store redis|dir:<path> [--login-bytes n] [--save-after-ready-ms n] [--save-interval-ms n]
       [--login-journal <file>]]
    Runs core + supervisor + the HTTP routes with simulated sessions until SIGTERM, then drains and exits 0.
    Every route but /livez and /readyz wants \`Authorization: Bearer <token>\`: the token in WAFLEET_ADMIN_TOKEN
    (at least 32 characters), or else a random one, printed once in the "ready" line as "adminToken".
    Sessions whose ids match --qr wait for a QR scan; --hold-starting never get ready (STARTING until the start
    deadline); --fail-start fail every launch (FAILED, restart pending); --bad-config cannot be built (gives up);
    while the --fail-starts-file exists, every launch fails. --breaker turns on the fleet-wide start breaker (its
    defaults; a probe round of --breaker-probe-ms, default 30000); the instance that opens or closes it prints
    {"ev": "breaker", "state", "kind"}.
    --messages <dir>: each session's simulated WhatsApp history is <dir>/<session>.jsonl (lines {"id", "chat", "ts",
    "body"}); a ready session emits lines appended after its ready as live messages, and after every start catches
    up on what arrived while it was down; both go out through the outbox as message.received webhooks (needs --outbox),
    once per message id. --recycle-memory-bytes hands off (one at a time, 500 ms apart) each session whose simulated
    browser grows past it (fault "memory-leak"), checked every --memory-interval-ms (default 30000). --rebalance-ms:
    every n ms (jittered) an instance above the fleet's mean hands off up to 2 idle sessions (spread 2); POST
    /rebalance {"dryRun"?, "spread"?, "maxMoves"?} does one round on demand.
    Journal lines: {"t": unix ms, "instance", "session", "event": "start"|"stop", "epoch", "pid"?}.
    stdout carries one JSON line per event: "ready", "status", "assigned", "fenced", "epoch", "leaseLost", "recycle", "breaker",
    "browser" (a session's browser process spawned: "s", "epoch", "pid"),
    "leaseRestored", "era" (Redis failed over or lost data: sessions re-asserted), "deadman-fired", "drained", and "log"
    (wafleet's warnings and errors). --redis takes a URL, Cluster node URLs separated by commas, or a JSON endpoint
    (e.g. '{"sentinels": ["redis://10.0.0.5:26379"], "name": "wafleet"}').
    With --session-store every session has a login (a file of --login-bytes, default 4096) committed through core's
    fenced session data, in Redis (chunks beside the registry) or in a directory every instance shares: a launch
    restores the newest committed login first (none: SCAN_QR_CODE, like whatsapp-web.js), a ready session saves it
    --save-after-ready-ms after ready (default 100), every --save-interval-ms (default 0: never again) and before a
    drain hands it off; a fenced stop never saves. --login-journal gets one line per restore and save:
    {"t", "instance", "session", "ev": "restore"|"save"|"save-refused"|"save-failed"|"restore-failed", "epoch",
    "version" (null: nothing committed), "writer"?/"writerEpoch"? (of the restored bytes), "startedAt"?, "reason"?,
    "code"?, "ms"?}.
    Extra routes: GET /sim/sessions (the supervisor's view plus the metadata each engine was created with),
    POST /sim/sessions/:id/fault {"fault": "crash"|"zombie"|"frozen"|"logout"|"conflict"|"slow-start"|"memory-leak"|"drop-acks"},
    POST /sim/sessions/:id/scan.
    Send routes for backend clients (admin token, fleetGuard; the POST also honours Idempotency-Key):
    GET /sessions/:sessionId/ping, POST /sessions/:sessionId/messages (503 with Retry-After until the session is
    WORKING; each execution appends {"t", "instance", "session", "key"} to the --sends file).
  wafleet-sim sessions --redis <url> --namespace <ns> --count <n> [--prefix <p>]
      [--logged-in --session-store redis|dir:<path> [--login-bytes n] [--login-journal <file>] [--seeder-id <id>]]
    Declares n desired sessions (<prefix>-0000 ...) and places them; prints one JSON summary line. With --logged-in
    the sessions start logged in, as if a phone had scanned each one's QR code: a short-lived instance (--seeder-id,
    default wafleet-sim-seeder) claims them, commits a login for each (journaled with "reason": "seed") and drains,
    handing them to the running instances (or to the sweep, when none has room yet).`;

/** Raised for bad command lines; the bin prints the message and the usage. */
export class UsageError extends Error {}

const num = (values: Record<string, unknown>, name: string, fallback?: number): number | undefined => {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} expects a non-negative integer, got ${JSON.stringify(raw)}`);
  return n;
};

const need = (values: Record<string, unknown>, name: string): string => {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
};

/** `--redis`: a URL, Cluster node URLs separated by commas, or a JSON endpoint such as `{"sentinels": [...], "name": "..."}`. */
const redisOf = (value: string): RedisOption => {
  if (!value.startsWith('{')) return value.includes(',') ? value.split(',') : value;
  try {
    return JSON.parse(value) as RedisEndpoint;
  } catch {
    throw new UsageError(`--redis: not valid JSON: ${value}`);
  }
};

const sessionStoreOf = (raw: string | undefined): SessionStoreSpec | undefined => {
  if (raw === undefined) return undefined;
  if (raw === 'redis') return { kind: 'redis' };
  if (raw.startsWith('dir:') && raw.length > 4) return { kind: 'dir', dir: raw.slice(4) };
  throw new UsageError(`--session-store expects redis or dir:<path>, got ${JSON.stringify(raw)}`);
};

const matcher = (values: Record<string, unknown>, name: string): ((id: string) => boolean) | undefined => {
  const raw = values[name];
  if (raw === undefined) return undefined;
  let re: RegExp;
  try {
    re = new RegExp(String(raw));
  } catch {
    throw new UsageError(`--${name} expects a regular expression, got ${JSON.stringify(raw)}`);
  }
  return (id) => re.test(id);
};
/**
 * `--fail-start` sessions fail every launch; with `--fail-starts-file`, every launch fails while that file exists
 * (what a WhatsApp Web update that breaks injection does to the whole fleet, switched from outside).
 */
const failStartOf = (match: ((id: string) => boolean) | undefined, file: string | undefined) =>
  match || file ? (sid: string) => (match?.(sid) ?? false) || (file !== undefined && existsSync(file)) : undefined;

const out = (msg: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ t: Date.now(), ...msg })}\n`);
/** wafleet's warnings and errors as `{"ev":"log"}` lines on stdout, with the (simulated) session ids as they are. */
const logAt =
  (level: 'warn' | 'error') =>
  (msg: string, fields: Record<string, unknown> = {}) => {
    const plain = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v instanceof Error ? `${v.name}: ${v.message}` : v]));
    out({ ev: 'log', level, msg, ...plain });
  };
const runnerLogger = wafleetLogger({ warn: logAt('warn'), error: logAt('error') }, { sessionIds: 'plain' });

/** `wafleet-sim instance`: one simulated instance until SIGTERM. */
export async function runInstance(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      redis: { type: 'string' },
      namespace: { type: 'string' },
      id: { type: 'string' },
      port: { type: 'string' },
      url: { type: 'string' },
      'max-sessions': { type: 'string' },
      journal: { type: 'string' },
      profile: { type: 'string' },
      'heartbeat-ms': { type: 'string' },
      'lease-ttl-ms': { type: 'string' },
      'self-fence-ms': { type: 'string' },
      'adoption-delay-ms': { type: 'string' },
      'sweep-ms': { type: 'string' },
      'quarantine-ms': { type: 'string' },
      'browser-processes': { type: 'boolean', default: false },
      'no-deadman': { type: 'boolean', default: false },
      'auth-delay-ms': { type: 'string' },
      'ready-delay-ms': { type: 'string' },
      'start-concurrency': { type: 'string' },
      'stagger-ms': { type: 'string' },
      outbox: { type: 'string' },
      'webhook-url': { type: 'string' },
      'webhook-secret': { type: 'string' },
      'start-timeout-ms': { type: 'string' },
      'restart-base-ms': { type: 'string' },
      'restart-max-ms': { type: 'string' },
      'restart-max-attempts': { type: 'string' },
      qr: { type: 'string' },
      'hold-starting': { type: 'string' },
      'fail-start': { type: 'string' },
      'bad-config': { type: 'string' },
      sends: { type: 'string' },
      'session-store': { type: 'string' },
      'login-bytes': { type: 'string' },
      'save-after-ready-ms': { type: 'string' },
      'save-interval-ms': { type: 'string' },
      'login-journal': { type: 'string' },
      messages: { type: 'string' },
      'recycle-memory-bytes': { type: 'string' },
      'memory-interval-ms': { type: 'string' },
      'rebalance-ms': { type: 'string' },
      'fail-starts-file': { type: 'string' },
      breaker: { type: 'boolean', default: false },
      'breaker-probe-ms': { type: 'string' },
    },
  });
  const id = need(values, 'id');
  const port = num(values, 'port')!;
  if (values.port === undefined) throw new UsageError('--port is required');
  const journalFile = values.journal;
  const journal = (session: string, event: 'start' | 'stop', epoch: string, pid?: number) => {
    // appendFileSync: the line is on disk before the engine starts, and survives kill -9 after it.
    if (journalFile)
      appendFileSync(journalFile, `${JSON.stringify({ t: Date.now(), instance: id, session, event, epoch, ...(pid ? { pid } : {}) })}\n`);
  };

  let outbox: Outbox | undefined;
  if (values.outbox) {
    // The fleet below gives it its instance id and URL.
    outbox = createOutbox({
      store: values.outbox,
      endpoint: { url: need(values, 'webhook-url'), secrets: [need(values, 'webhook-secret')] },
    });
  }
  const fleet = createFleet({
    redis: redisOf(need(values, 'redis')),
    namespace: need(values, 'namespace'),
    instanceId: id,
    url: values.url ?? `http://127.0.0.1:${port}`,
    maxSessions: num(values, 'max-sessions')!,
    profile: values.profile as 'default' | 'tolerant' | undefined,
    heartbeatIntervalMs: num(values, 'heartbeat-ms'),
    leaseTtlMs: num(values, 'lease-ttl-ms'),
    selfFenceMs: num(values, 'self-fence-ms'),
    adoptionDelayMs: num(values, 'adoption-delay-ms'),
    sweepIntervalMs: num(values, 'sweep-ms'),
    quarantineMs: num(values, 'quarantine-ms'),
    outbox,
    logger: runnerLogger,
  });
  await outbox?.start();
  const storeSpec = sessionStoreOf(values['session-store']);
  const store = storeSpec && openSessionStore(storeSpec, fleet, redisOf(need(values, 'redis')), need(values, 'namespace'));
  const sim = createSimEngine({
    browserProcesses: values['browser-processes'],
    onBrowser: ({ sessionId, epoch, pid }) => out({ ev: 'browser', s: sessionId, epoch, pid }),
    authDelayMs: num(values, 'auth-delay-ms'),
    readyDelayMs: num(values, 'ready-delay-ms'),
    requiresQr: matcher(values, 'qr'),
    holdStarting: matcher(values, 'hold-starting'),
    failStart: failStartOf(matcher(values, 'fail-start'), values['fail-starts-file']),
    badConfig: matcher(values, 'bad-config'),
    login: store && {
      store: store.sessionData,
      writer: id,
      bytes: num(values, 'login-bytes'),
      saveAfterReadyMs: num(values, 'save-after-ready-ms'),
      saveIntervalMs: num(values, 'save-interval-ms'),
      onEvent: loginJournal(values['login-journal'], id),
    },
    messages: values.messages === undefined ? undefined : { dir: values.messages, pollMs: 200 },
  });
  if (values.messages !== undefined && !outbox) throw new UsageError('--messages needs --outbox: messages go out as webhooks');
  const inbox = values.messages === undefined || !outbox ? undefined : createInbox({ fleet, outbox });
  const breaker = values.breaker
    ? createStartBreaker({ fleet, logger: runnerLogger, probeIntervalMs: num(values, 'breaker-probe-ms') })
    : undefined;
  breaker?.on('change', ({ state, kind }) => out({ ev: 'breaker', state, kind }));
  const browserPids = new Map<string, number | undefined>();
  let deadman: DeadmanSwitch | undefined;
  if (values['browser-processes'] && !values['no-deadman']) deadman = await startDeadmanSwitch({ logger: runnerLogger });
  const supervisor = createSupervisor({
    // A drain saves each session's login before the supervisor stops it.
    fleet,
    engine: sim.factory,
    deadman,
    inbox,
    breaker,
    memoryIntervalMs: num(values, 'memory-interval-ms'),
    rebalance: values['rebalance-ms'] === undefined ? undefined : { intervalMs: num(values, 'rebalance-ms')! },
    recycle:
      values['recycle-memory-bytes'] === undefined
        ? undefined
        : { memoryLimitBytes: num(values, 'recycle-memory-bytes'), concurrency: 1, staggerMs: 500 },
    logger: runnerLogger,
    startConcurrency: num(values, 'start-concurrency'),
    staggerMs: num(values, 'stagger-ms'),
    probeIntervalMs: 1000,
    probeTimeoutMs: 1000,
    startTimeoutMs: num(values, 'start-timeout-ms', 10_000),
    restart: {
      baseMs: num(values, 'restart-base-ms', 200),
      maxMs: num(values, 'restart-max-ms', 5000),
      maxAttempts: num(values, 'restart-max-attempts', 10),
    },
    onEngine: ({ event, sessionId, epoch }) => {
      // A stop is journaled with the pid its own start had, not a newer engine's.
      if (event === 'start') browserPids.set(sessionId, sim.browserPid(sessionId));
      journal(sessionId, event, epoch, browserPids.get(sessionId));
      if (event === 'stop') browserPids.delete(sessionId);
    },
  });
  // Simulated session ids only: a host with real phone numbers keeps them out of its output.
  fleet.on('fenced', ({ sessionIds, reason }) => out({ ev: 'fenced', count: sessionIds.length, reason, s: sessionIds }));
  fleet.on('assigned', ({ sessionId, epoch, reason }) => out({ ev: 'assigned', s: sessionId, epoch, reason }));
  fleet.on('epoch', ({ sessionId, epoch }) => out({ ev: 'epoch', s: sessionId, epoch }));
  fleet.on('leaseLost', ({ reason }) => out({ ev: 'leaseLost', reason, inc: fleet.incarnation }));
  deadman?.on('fired', ({ reason, killed }) => out({ ev: 'deadman-fired', reason, killed: killed.length }));
  fleet.on('leaseRestored', ({ incarnation }) => out({ ev: 'leaseRestored', inc: incarnation }));
  fleet.on('era', ({ era, reasserted, lost }) => out({ ev: 'era', era, reasserted, lost }));
  supervisor.on('status', ({ sessionId, status, reason }) => out({ ev: 'status', s: sessionId, status, reason }));
  supervisor.on('recycle', ({ sessionId, reason, memoryBytes }) => out({ ev: 'recycle', s: sessionId, reason, memoryBytes }));

  // A host reads its environment; the library never does.
  const givenToken = process.env.WAFLEET_ADMIN_TOKEN;
  const adminToken = givenToken || randomBytes(24).toString('base64url');
  const auth = { token: adminToken };
  const app = express();
  app.use(createFleetRouter(fleet, { auth, qr: (sid) => supervisor.qr(sid), outbox, supervisor }));
  const admin = requireAuth(auth);
  app.get('/sim/sessions', admin, (_req, res) => {
    res.json(supervisor.sessions().map((s) => ({ ...s, metadata: sim.metadata(s.sessionId) })));
  });
  app.post('/sim/sessions/:id/scan', admin, (req, res) => {
    const scanned = sim.scan(req.params.id as string);
    res.status(scanned ? 202 : 404).json({ scanned });
  });
  app.post('/sim/sessions/:id/fault', admin, express.json(), (req, res) => {
    const applied = sim.fault(req.params.id as string, req.body?.fault as SimFault);
    res.status(applied ? 202 : 404).json({ applied });
  });
  const guard = fleetGuard(fleet);
  app.get('/sessions/:sessionId/ping', admin, guard, (_req, res) => {
    res.json({ instance: id });
  });
  const sendsFile = values.sends;
  app.post('/sessions/:sessionId/messages', admin, express.json(), guard, idempotency(fleet), (req, res) => {
    const sessionId = req.params.sessionId as string;
    // A WhatsApp client cannot send before it is ready; a backend waits and retries.
    if (supervisor.session(sessionId)?.status !== 'WORKING') {
      res.status(503).set('Retry-After', '1').json({ error: 'SESSION_NOT_READY' });
      return;
    }
    const key = req.get('idempotency-key') ?? '';
    // appendFileSync: the execution is on disk before the response, and survives kill -9 after it.
    if (sendsFile) appendFileSync(sendsFile, `${JSON.stringify({ t: Date.now(), instance: id, session: sessionId, key })}\n`);
    res.status(201).json({ sent: true, instance: id, key });
  });

  await fleet.start();
  supervisor.start();
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(port, '127.0.0.1', () => resolve(s));
  });
  out({ ev: 'ready', instance: id, port, inc: fleet.incarnation, deadmanPid: deadman?.pid, ...(givenToken ? {} : { adminToken }) });

  // The host, not the library, owns signals: drain, then exit 0.
  let stopping = false;
  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      const drained = await fleet.drain();
      await fleet.close();
      await supervisor.close();
      await deadman?.close();
      await outbox?.close();
      await store?.close();
      server.close();
      out({ ev: 'drained', handedOff: drained.handedOff, pending: drained.pending, failed: drained.failed });
      process.exit(0);
    })();
  });
}

/** `wafleet-sim sessions`: declares and places n sessions (with `--logged-in`, each with a committed login). */
export async function runSessions(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      redis: { type: 'string' },
      namespace: { type: 'string' },
      count: { type: 'string' },
      prefix: { type: 'string' },
      'logged-in': { type: 'boolean', default: false },
      'session-store': { type: 'string' },
      'login-bytes': { type: 'string' },
      'login-journal': { type: 'string' },
      'seeder-id': { type: 'string' },
    },
  });
  const count = num(values, 'count');
  if (count === undefined) throw new UsageError('--count is required');
  const ids = Array.from({ length: count }, (_, i) => `${values.prefix ?? 'sim'}-${String(i).padStart(4, '0')}`);
  const redis = redisOf(need(values, 'redis'));
  const namespace = need(values, 'namespace');
  if (values['logged-in']) {
    const spec = sessionStoreOf(need(values, 'session-store'))!;
    const seeded = await seedLoggedIn(ids, {
      redis,
      namespace,
      spec,
      bytes: num(values, 'login-bytes', 4096)!,
      journal: values['login-journal'],
      seederId: values['seeder-id'] ?? 'wafleet-sim-seeder',
    });
    out({ ev: 'placed', count, outcomes: seeded });
    return;
  }
  const client = createFleetClient({ redis, namespace });
  const outcomes: Record<string, number> = {};
  try {
    for (const sid of ids) {
      const { outcome } = await client.place(sid);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
  } finally {
    await client.close();
  }
  out({ ev: 'placed', count, outcomes });
}

/** Claims, waiting out any quarantine however long (the seeder's own `quarantineMs` is 0, the fleet's is not). */
async function claimPastQuarantine(fleet: Fleet, sessionId: string): Promise<{ epoch: string }> {
  for (;;) {
    try {
      return await fleet.claim(sessionId);
    } catch (err) {
      if (!(err instanceof QuarantineError)) throw err;
      await new Promise((resolve) => setTimeout(resolve, err.retryAfterMs + 10));
    }
  }
}

/**
 * Sessions that start logged in: a short-lived instance claims each one, commits its first login through the same
 * fenced session data the instances use (what a QR scan on some instance would have left), then drains, which hands
 * every session to a running instance (or leaves it to the sweep when none has room).
 */
async function seedLoggedIn(
  ids: string[],
  o: { redis: RedisOption; namespace: string; spec: SessionStoreSpec; bytes: number; journal: string | undefined; seederId: string },
): Promise<Record<string, number>> {
  const fleet = createFleet({
    redis: o.redis,
    namespace: o.namespace,
    instanceId: o.seederId,
    url: 'http://127.0.0.1:9',
    maxSessions: ids.length,
    // A transient tool, not an instance of the fleet: it must not raise the fleet's quarantine (the registry keeps the
    // largest any registration asked for, and the next Redis failover or restart would wait that long).
    quarantineMs: 0,
  });
  await fleet.start();
  const store = openSessionStore(o.spec, fleet, o.redis, o.namespace);
  const journal = loginJournal(o.journal, o.seederId);
  const dir = mkdtempSync(join(tmpdir(), 'wafleet-sim-seed-'));
  try {
    for (const sessionId of ids) {
      const { epoch } = await claimPastQuarantine(fleet, sessionId);
      const file = join(dir, `${sessionId}.login`);
      writeFileSync(file, loginFileContent({ session: sessionId, writer: o.seederId, epoch, n: 1 }, o.bytes));
      const t0 = performance.now();
      const { version } = await store.sessionData.save(sessionId, file);
      journal?.({ ev: 'save', sessionId, epoch, version, reason: 'seed', durationMs: Math.round(performance.now() - t0) });
    }
    const { handedOff, pending, failed } = await fleet.drain();
    return { loggedIn: ids.length, handedOff, pending, failed };
  } finally {
    await fleet.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Entry point of the `wafleet-sim` command. */
export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  try {
    if (command === 'instance') await runInstance(rest);
    else if (command === 'sessions') await runSessions(rest);
    else throw new UsageError(command ? `Unknown command ${command}` : 'No command given');
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
      process.exit(2);
    }
    throw err;
  }
}
