import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { parseArgs } from 'node:util';
import { createFleetClient } from '@wafleet/client';
import { createFleet, createOutbox, createSupervisor, startDeadmanSwitch, type DeadmanSwitch, type Outbox } from '@wafleet/core';
import { createFleetRouter, fleetGuard, idempotency, requireAuth } from '@wafleet/core/express';
import express from 'express';
import { createSimEngine, type SimFault } from './sim-engine.js';

const USAGE = `Usage:
  wafleet-sim instance --redis <url> --namespace <ns> --id <id> --port <port> --max-sessions <n> [--journal <file>]
      [--url <public url>] [--profile default|tolerant] [--heartbeat-ms n] [--lease-ttl-ms n] [--self-fence-ms n]
      [--adoption-delay-ms n] [--sweep-ms n] [--browser-processes] [--no-deadman] [--auth-delay-ms n] [--ready-delay-ms n]
      [--start-concurrency n] [--stagger-ms n] [--outbox <file> --webhook-url <url> --webhook-secret <whsec_...>]
      [--start-timeout-ms n] [--restart-base-ms n] [--restart-max-ms n] [--restart-max-attempts n]
      [--qr <regex>] [--hold-starting <regex>] [--fail-start <regex>] [--bad-config <regex>] [--sends <file>]
    Runs core + supervisor + the HTTP routes with simulated sessions until SIGTERM, then drains and exits 0.
    Every route but /livez and /readyz wants \`Authorization: Bearer <token>\`: the token in WAFLEET_ADMIN_TOKEN
    (at least 32 characters), or else a random one, printed once in the "ready" line as "adminToken".
    Sessions whose ids match --qr wait for a QR scan; --hold-starting never get ready (STARTING until the start
    deadline); --fail-start fail every launch (FAILED, restart pending); --bad-config cannot be built (gives up).
    Journal lines: {"t": unix ms, "instance", "session", "event": "start"|"stop", "epoch", "pid"?}.
    Extra routes: GET /sim/sessions (the supervisor's view plus the metadata each engine was created with),
    POST /sim/sessions/:id/fault {"fault": "crash"|"zombie"|"logout"|"conflict"|"slow-start"},
    POST /sim/sessions/:id/scan.
    Send routes for backend clients (admin token, fleetGuard; the POST also honours Idempotency-Key):
    GET /sessions/:sessionId/ping, POST /sessions/:sessionId/messages (503 with Retry-After until the session is
    WORKING; each execution appends {"t", "instance", "session", "key"} to the --sends file).
  wafleet-sim sessions --redis <url> --namespace <ns> --count <n> [--prefix <p>]
    Declares n desired sessions (<prefix>-0000 ...) and places them; prints one JSON summary line.`;

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

const redisOf = (value: string) => (value.includes(',') ? value.split(',') : value);

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
const out = (msg: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ t: Date.now(), ...msg })}\n`);

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
    outbox,
  });
  await outbox?.start();
  const sim = createSimEngine({
    browserProcesses: values['browser-processes'],
    authDelayMs: num(values, 'auth-delay-ms'),
    readyDelayMs: num(values, 'ready-delay-ms'),
    requiresQr: matcher(values, 'qr'),
    holdStarting: matcher(values, 'hold-starting'),
    failStart: matcher(values, 'fail-start'),
    badConfig: matcher(values, 'bad-config'),
  });
  const browserPids = new Map<string, number | undefined>();
  let deadman: DeadmanSwitch | undefined;
  if (values['browser-processes'] && !values['no-deadman']) deadman = await startDeadmanSwitch();
  const supervisor = createSupervisor({
    fleet,
    engine: sim.factory,
    deadman,
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
  fleet.on('fenced', ({ sessionIds, reason }) => out({ ev: 'fenced', count: sessionIds.length, reason }));
  deadman?.on('fired', ({ reason, killed }) => out({ ev: 'deadman-fired', reason, killed: killed.length }));
  fleet.on('leaseRestored', ({ incarnation }) => out({ ev: 'leaseRestored', inc: incarnation }));
  supervisor.on('status', ({ sessionId, status, reason }) => out({ ev: 'status', s: sessionId, status, reason }));

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
      server.close();
      out({ ev: 'drained', handedOff: drained.handedOff, pending: drained.pending, failed: drained.failed });
      process.exit(0);
    })();
  });
}

/** `wafleet-sim sessions`: declares and places n sessions. */
export async function runSessions(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: { redis: { type: 'string' }, namespace: { type: 'string' }, count: { type: 'string' }, prefix: { type: 'string' } },
  });
  const count = num(values, 'count');
  if (count === undefined) throw new UsageError('--count is required');
  const client = createFleetClient({ redis: redisOf(need(values, 'redis')), namespace: need(values, 'namespace') });
  const outcomes: Record<string, number> = {};
  try {
    for (let i = 0; i < count; i++) {
      const { outcome } = await client.place(`${values.prefix ?? 'sim'}-${String(i).padStart(4, '0')}`);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
  } finally {
    await client.close();
  }
  out({ ev: 'placed', count, outcomes });
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
