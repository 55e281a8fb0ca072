// One fleet instance for bench/forward.mjs: a fleet and an express server with a forwarding guard on
// GET /sessions/:sessionId/ping and POST /sessions/:sessionId/echo (body streamed through, no body parser).
// Config (JSON in argv[2]): { redis, namespace, instanceId, claim: [ids] }. Prints `ready <url> <epochs JSON>`
// once it listens and holds its sessions; exits on SIGTERM.

import http from 'node:http';

import { createFleet } from '@wafleet/core';
import { fleetGuard } from '@wafleet/core/express';
import express from 'express';

const config = JSON.parse(process.argv[2]);
const server = http.createServer();
server.keepAliveTimeout = 60_000;
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${server.address().port}`;

const fleet = createFleet({
  redis: config.redis,
  namespace: config.namespace,
  instanceId: config.instanceId,
  url,
  maxSessions: 10_000,
  quarantineMs: 0,
});
fleet.on('error', (err) => process.stderr.write(`fleet error: ${err.message}\n`));
await fleet.start();

const guard = fleetGuard(fleet, { misdirected: 'forward' });
const app = express();
app.disable('x-powered-by');
app.disable('etag');
app.get('/sessions/:sessionId/ping', guard, (req, res) =>
  res.json({ ok: true, sessionId: req.params.sessionId, instance: config.instanceId }),
);
app.post('/sessions/:sessionId/echo', guard, async (req, res) => {
  let bytes = 0;
  for await (const chunk of req) bytes += chunk.length;
  res.json({ ok: true, sessionId: req.params.sessionId, instance: config.instanceId, bytes });
});
server.on('request', app);

const epochs = {};
for (const id of config.claim) epochs[id] = (await fleet.claim(id)).epoch;
process.stdout.write(`ready ${url} ${JSON.stringify(epochs)}\n`);

process.on('SIGTERM', async () => {
  server.closeAllConnections();
  server.close();
  await fleet.close();
  process.exit(0);
});
