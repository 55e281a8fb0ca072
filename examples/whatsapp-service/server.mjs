// A whatsapp-service instance on wafleet: the real whatsapp-web.js Client, one browser per session, supervised,
// fenced, with durable webhooks. Configuration comes from the environment (the library itself reads none).
//
//   REDIS_URL=redis://127.0.0.1:6379 INSTANCE_ID=wa-1 PORT=3001 PUBLIC_URL=http://127.0.0.1:3001 \
//   WEBHOOK_URL=http://backend/webhooks/whatsapp WEBHOOK_SECRET=whsec_... API_TOKEN=$(openssl rand -base64 32) node server.mjs
//
// Every route but /livez and /readyz wants `Authorization: Bearer $API_TOKEN` (the backend's token).
// Optional: MEMORY_BUDGET_MB (this instance's browsers take no more sessions past it), MEMORY_LIMIT_MB and
// MAX_BROWSER_AGE_H (a browser past either moves to another instance, its login saved first).
import { createFleet, createInbox, createOutbox, createStartBreaker, createSupervisor, startDeadmanSwitch } from '@wafleet/core';
import { createFleetRouter, fleetGuard, idempotency, requireAuth } from '@wafleet/core/express';
import { createWwebjsEngine } from '@wafleet/wwebjs';
import express from 'express';
import wwebjs from 'whatsapp-web.js';

const { Client, LocalAuth } = wwebjs;
const env = (name, fallback) =>
  process.env[name] ??
  fallback ??
  (() => {
    throw new Error(`${name} is required`);
  })();
const port = Number(env('PORT', '3001'));
const instanceId = env('INSTANCE_ID');
const publicUrl = env('PUBLIC_URL', `http://127.0.0.1:${port}`);
const log = (msg, fields = {}) => process.stdout.write(`${JSON.stringify({ t: Date.now(), msg, ...fields })}\n`);
const logger = { debug() {}, info: (m, f) => log(m, f), warn: (m, f) => log(m, f), error: (m, f) => log(m, f) };

// Status and message webhooks go through the outbox; the fleet gives it this instance's id and URL.
const outbox = createOutbox({
  store: env('OUTBOX_FILE', `./data/${instanceId}-outbox.sqlite`),
  endpoint: { url: env('WEBHOOK_URL'), secrets: [env('WEBHOOK_SECRET')] },
  logger,
});
const fleet = createFleet({
  redis: env('REDIS_URL'),
  namespace: env('WAFLEET_NAMESPACE', 'default'),
  instanceId,
  url: publicUrl,
  maxSessions: Number(env('MAX_SESSIONS', '20')),
  // Placement and admission also count the browsers' memory (MiB), when given.
  memoryBudgetBytes: process.env.MEMORY_BUDGET_MB ? Number(process.env.MEMORY_BUDGET_MB) * 2 ** 20 : undefined,
  outbox,
  readyEventType: env('READY_EVENT', 'session_ready'),
  logger,
});
await outbox.start();

// The host builds each Client with its own options; the binding refuses takeoverOnConflict.
const chromiumArgs = (process.env.CHROMIUM_ARGS ?? '--no-sandbox --disable-gpu --disable-background-networking').split(' ').filter(Boolean);
const engine = createWwebjsEngine(
  ({ sessionId }) => {
    return new Client({
      authStrategy: new LocalAuth({ clientId: sessionId, dataPath: env('AUTH_DIR', './data/auth') }),
      puppeteer: { executablePath: env('CHROMIUM', '/usr/bin/chromium'), headless: true, args: chromiumArgs },
    });
  },
  { logger },
);
const deadman = await startDeadmanSwitch({ logger });
const supervisor = createSupervisor({
  fleet,
  engine,
  deadman,
  logger,
  // Incoming messages become message.received webhooks, once each, caught up after every start or move.
  inbox: createInbox({ fleet, outbox }),
  // When most starts across the fleet fail the same way (a WhatsApp Web update), restarts wait: one alert, a few probes.
  breaker: createStartBreaker({ fleet }),
  // A browser past MEMORY_LIMIT_MB (or older than MAX_BROWSER_AGE_H) moves to another instance, one at a time.
  recycle: {
    memoryLimitBytes: process.env.MEMORY_LIMIT_MB ? Number(process.env.MEMORY_LIMIT_MB) * 2 ** 20 : undefined,
    maxAgeMs: process.env.MAX_BROWSER_AGE_H ? Number(process.env.MAX_BROWSER_AGE_H) * 3_600_000 : undefined,
  },
});

// One token for the fleet's routes (QR codes, session list, drain) and this service's own: starting a session
// links a phone, so no route that acts on sessions answers an anonymous caller.
const auth = { token: env('API_TOKEN') };
const authenticated = requireAuth(auth, { logger });
const app = express();
app.use(createFleetRouter(fleet, { auth, qr: (id) => supervisor.qr(id), outbox, supervisor }));
app.post('/sessions/:sessionId/start', authenticated, async (req, res) => {
  try {
    await supervisor.startSession(req.params.sessionId);
    res.status(202).json(supervisor.session(req.params.sessionId));
  } catch (err) {
    // Owned elsewhere or full: tell the caller where to go instead of starting a second copy.
    res
      .status(err.code === 'WAFLEET_OWNED_ELSEWHERE' ? 421 : err.code === 'WAFLEET_CAPACITY' ? 503 : 400)
      .json({ error: err.code, owner: err.owner, ownerUrl: err.ownerUrl });
  }
});
app.get('/sessions/:sessionId/status', authenticated, fleetGuard(fleet), (req, res) => res.json(supervisor.session(req.params.sessionId)));
app.post('/sessions/:sessionId/messages', authenticated, express.json(), fleetGuard(fleet), idempotency(fleet), async (req, res) => {
  try {
    // Answers once WhatsApp's server acknowledged the message: a send that never went out is an error, not a 201.
    const { id, ack } = await supervisor.send(req.params.sessionId, req.body.chatId, req.body.text);
    res.status(201).json({ id, ack });
  } catch (err) {
    // 503, not 409: a transient state must not be stored as this idempotency key's outcome.
    if (err.code === 'WAFLEET_SESSION_NOT_WORKING')
      res.status(503).set('retry-after', '5').json({ error: err.code, status: supervisor.session(req.params.sessionId)?.status });
    // Unacknowledged: it may still go out. The id lets the backend look it up instead of sending it again.
    else if (err.code === 'WAFLEET_SEND_UNACKNOWLEDGED') res.status(504).json({ error: err.code, id: err.messageId });
    else res.status(err.code === 'WAFLEET_CONFIG' ? 400 : 502).json({ error: err.code ?? 'SEND_FAILED', id: err.messageId });
  }
});

// whatsapp-web.js runs async page callbacks and timers without catching: log a stray rejection instead of dying.
process.on('unhandledRejection', (err) => log('unhandled rejection', { err: String(err?.message ?? err) }));
await fleet.start();
supervisor.start();
const server = app.listen(port, '127.0.0.1', () => log('listening', { instanceId, port }));

// The host owns signals: hand every session off (each browser closed first), then exit.
process.on('SIGTERM', async () => {
  await fleet.close();
  await supervisor.close();
  await deadman.close();
  await outbox.close();
  server.close();
  log('stopped');
  process.exit(0);
});
