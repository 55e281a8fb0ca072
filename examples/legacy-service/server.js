// A whatsapp-service as teams run them: CommonJS, express 4, winston, whatsapp-web.js with LocalAuth under a
// shared folder, several instances on ports 3001.. of one host, HMAC-signed webhooks to a Laravel backend.
//
//   PORT=3001 INSTANCE_URL=http://127.0.0.1:3001 SESSION_STORAGE_PATH=./sessions API_KEY=... \
//   WEBHOOK_URL=http://backend/api/webhooks/whatsapp WEBHOOK_SECRET=... node server.js
const express = require('express');
const winston = require('winston');
const { SessionManager } = require('./src/session-manager');
const { WebhookNotifier } = require('./src/webhook-notifier');

const env = (name, fallback) =>
  process.env[name] ??
  fallback ??
  (() => {
    throw new Error(`${name} is required`);
  })();
const port = Number(env('PORT', '3001'));
const instanceUrl = env('INSTANCE_URL', `http://127.0.0.1:${port}`);
const logger = winston.createLogger({ level: 'info', format: winston.format.json(), transports: [new winston.transports.Console()] });

const notifier = new WebhookNotifier({ url: env('WEBHOOK_URL'), secret: env('WEBHOOK_SECRET'), instanceUrl, logger });
const manager = new SessionManager({
  storagePath: env('SESSION_STORAGE_PATH', './sessions'),
  notifier,
  logger,
  chromium: env('CHROMIUM', '/usr/bin/chromium'),
});

const app = express();
app.use(express.json());
app.get('/health', (_req, res) => res.json({ status: 'ok' }));
app.use('/api', (req, res, next) => (req.get('x-api-key') === env('API_KEY') ? next() : res.status(401).json({ error: 'unauthorized' })));

app.post('/api/sessions', async (req, res) => {
  const { session_id: sessionId, workspace_id: workspaceId, account_id: accountId } = req.body;
  await manager.createSession(sessionId, { workspace_id: workspaceId, account_id: accountId });
  res.status(202).json(manager.status(sessionId));
});
app.get('/api/sessions/:sessionId/status', (req, res) => {
  const status = manager.status(req.params.sessionId);
  return status ? res.json(status) : res.status(404).json({ error: 'Session not found' });
});
app.get('/api/sessions/:sessionId/qr', (req, res) => {
  const qr = manager.sessions.get(req.params.sessionId)?.qr;
  return qr ? res.json({ qr }) : res.status(404).json({ error: 'No QR code' });
});
app.post('/api/sessions/:sessionId/messages', async (req, res) => {
  const session = manager.sessions.get(req.params.sessionId);
  if (!session || session.status !== 'connected') return res.status(404).json({ error: 'Session not found' });
  const message = await session.client.sendMessage(`${req.body.to}@c.us`, req.body.message);
  res.status(201).json({ message_id: message.id._serialized });
});
app.delete('/api/sessions/:sessionId', async (req, res) => {
  await manager.removeSession(req.params.sessionId);
  res.status(204).end();
});

const server = app.listen(port, '127.0.0.1', () => {
  logger.info('listening', { port });
  manager.restoreSessions();
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
