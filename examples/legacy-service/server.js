// A whatsapp-service as teams run them: CommonJS, express 4, winston, whatsapp-web.js with LocalAuth under a
// shared folder, several instances on ports 3001.. of one host, HMAC-signed webhooks to a Laravel backend.
//
//   PORT=3001 INSTANCE_ID=wa-1 INSTANCE_URL=http://127.0.0.1:3001 SESSION_STORAGE_PATH=./sessions API_KEY=... \
//   REDIS_URL=redis://127.0.0.1:6379 ADMIN_TOKEN=$(openssl rand -base64 32) \
//   WEBHOOK_URL=http://backend/api/webhooks/whatsapp WEBHOOK_SECRET=... node server.js
const { createFleet, createOutbox, createSupervisor, legacyBody, legacyHmacSigner, startDeadmanSwitch } = require('@wafleet/core');
const { createFleetRouter, fleetGuard } = require('@wafleet/core/express');
const { createWwebjsEngine } = require('@wafleet/wwebjs');
const express = require('express');
const winston = require('winston');
const { SessionManager } = require('./src/session-manager');

const env = (name, fallback) =>
  process.env[name] ??
  fallback ??
  (() => {
    throw new Error(`${name} is required`);
  })();
const port = Number(env('PORT', '3001'));
const instanceUrl = env('INSTANCE_URL', `http://127.0.0.1:${port}`);
const instanceId = env('INSTANCE_ID', `wa-${port}`);
const storagePath = env('SESSION_STORAGE_PATH', './sessions');
const logger = winston.createLogger({ level: 'info', format: winston.format.json(), transports: [new winston.transports.Console()] });

// wafleet: sessions are placed, adopted and handed off. Webhooks go through a durable outbox in the backend's format,
// sent as this fleet's instance; the session manager sends them (the fleet is not given the outbox: it adds none).
const fleet = createFleet({ redis: env('REDIS_URL'), instanceId, url: instanceUrl, maxSessions: Number(env('MAX_SESSIONS', 10)), logger });
const outbox = createOutbox({
  store: `${storagePath}/outbox/${instanceId}.sqlite`,
  endpoint: { url: env('WEBHOOK_URL'), signer: legacyHmacSigner(env('WEBHOOK_SECRET')), body: legacyBody() },
  instance: fleet,
  adoptOrphans: {}, // an instance that never comes back: its undelivered webhooks go out from here
  logger,
});
const notifier = {
  send: (type, session, data) => outbox.enqueue({ type, session, data }).catch((err) => logger.error('webhook lost', { err })),
};
const engine = createWwebjsEngine(({ sessionId, metadata }) => manager.buildClient(sessionId, metadata));
let supervisor;
const manager = new SessionManager({
  storagePath,
  notifier,
  logger,
  chromium: env('CHROMIUM', '/usr/bin/chromium'),
});

const app = express();
app.use(express.json());
app.get('/health', (_req, res) => res.json({ status: 'ok' }));
app.use(createFleetRouter(fleet, { auth: { token: env('ADMIN_TOKEN') }, qr: (id) => supervisor.qr(id) }));
app.use('/api', (req, res, next) => (req.get('x-api-key') === env('API_KEY') ? next() : res.status(401).json({ error: 'unauthorized' })));

app.post('/api/sessions', async (req, res) => {
  const { session_id: sessionId, workspace_id: workspaceId, account_id: accountId } = req.body;
  res.status(202).json(await fleet.place(sessionId, { metadata: { workspace_id: workspaceId, account_id: accountId } }));
});
app.get('/api/sessions/:sessionId/status', fleetGuard(fleet), (req, res) => {
  const status = manager.status(req.params.sessionId);
  return status ? res.json(status) : res.status(404).json({ error: 'Session not found' });
});
app.get('/api/sessions/:sessionId/qr', fleetGuard(fleet), (req, res) => {
  const qr = manager.sessions.get(req.params.sessionId)?.qr;
  return qr ? res.json({ qr }) : res.status(404).json({ error: 'No QR code' });
});
app.post('/api/sessions/:sessionId/messages', fleetGuard(fleet), async (req, res) => {
  const session = manager.sessions.get(req.params.sessionId);
  if (!session || session.status !== 'connected') return res.status(404).json({ error: 'Session not found' });
  const message = await session.client.sendMessage(`${req.body.to}@c.us`, req.body.message);
  res.status(201).json({ message_id: message.id._serialized });
});
// A disconnect also cancels a session that waits for placement: nobody owns it, so any instance may stop it.
app.delete('/api/sessions/:sessionId', fleetGuard(fleet, { unowned: 'pass' }), async (req, res) => {
  await fleet.stop(req.params.sessionId);
  res.status(204).end();
});

const server = app.listen(port, '127.0.0.1', async () => {
  supervisor = createSupervisor({ fleet, engine, logger, deadman: await startDeadmanSwitch({ logger }) });
  await outbox.start();
  await fleet.start();
  supervisor.start(); // boot restore is the fleet's placement now: this instance runs what it is assigned
  logger.info('listening', { port });
});
process.on('SIGTERM', () => fleet.close().then(() => server.close(() => process.exit(0))));
