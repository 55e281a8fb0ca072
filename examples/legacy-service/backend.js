// A stand-in for the Laravel backend: verifies the HMAC signature, reads `event`, stores the instance URL per
// session. Like the real one, it logs an unknown event and still answers 200.
//   PORT=8000 WEBHOOK_SECRET=... node backend.js      GET /state shows what it stored
const crypto = require('node:crypto');
const express = require('express');

const secret = process.env.WEBHOOK_SECRET;
const accounts = {}; // session_id -> { assigned_instance_url, status, workspace_id, phone_number, qr }
const log = [];

const app = express();
app.post('/api/webhooks/whatsapp', express.raw({ type: 'application/json' }), (req, res) => {
  const timestamp = req.get('x-timestamp') ?? '';
  const expected = crypto
    .createHmac('sha256', secret)
    .update(timestamp + req.body)
    .digest('hex');
  const given = Buffer.from(req.get('x-hmac-signature') ?? '');
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, Buffer.from(expected))) return res.status(401).end();
  const input = JSON.parse(req.body);
  const event = input.event;
  const account = (accounts[input.session_id] ??= {});
  log.push({ event, session_id: input.session_id, instance_url: req.get('x-instance-url'), data: input.data });
  switch (event) {
    case 'session_ready':
      Object.assign(account, { status: 'connected', assigned_instance_url: req.get('x-instance-url'), ...input.data });
      break;
    case 'qr_code_generated':
      Object.assign(account, { status: 'qr_scanning', qr: input.data.qr, assigned_instance_url: req.get('x-instance-url') });
      break;
    case 'session_disconnected':
      account.status = 'disconnected';
      break;
    default:
      console.log(JSON.stringify({ msg: 'unknown event', event }));
  }
  res.json({ received: true });
});
app.get('/state', (_req, res) => res.json({ accounts, log }));
app.listen(Number(process.env.PORT ?? 8000), '127.0.0.1', () => console.log(JSON.stringify({ msg: 'listening' })));
