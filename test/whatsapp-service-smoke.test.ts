import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, spawnProcess, waitUntil } from '@wafleet/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { useTestRedis } from './helpers/fleet-harness.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';

const server = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'whatsapp-service', 'server.mjs');
const redis = useTestRedis();
const TOKEN = randomBytes(24).toString('base64');
const authorization = { authorization: `Bearer ${TOKEN}` };
let receiver: Receiver | undefined;
afterAll(() => receiver?.close());

describe('examples/whatsapp-service (real whatsapp-web.js, Debian Chromium, offline)', () => {
  it.skipIf(!existsSync('/usr/bin/chromium'))(
    'starts, runs a session to FAILED without network, sends its status webhooks, drains on SIGTERM',
    async () => {
      receiver = await startReceiver();
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'wafleet-wa-service-'));
      const child = spawnProcess(process.execPath, [server], {
        name: 'whatsapp-service',
        env: {
          REDIS_URL: redis.url,
          INSTANCE_ID: 'wa-1',
          PORT: String(port),
          WAFLEET_NAMESPACE: 'example',
          WEBHOOK_URL: `${receiver.url}/webhooks/whatsapp`,
          WEBHOOK_SECRET: `whsec_${Buffer.from('example-service-secret-0123').toString('base64')}`,
          OUTBOX_FILE: join(dir, 'outbox.sqlite'),
          API_TOKEN: TOKEN,
          AUTH_DIR: join(dir, 'auth'),
          CHROMIUM_ARGS:
            '--no-sandbox --disable-gpu --disable-background-networking --disable-component-update --no-first-run --host-resolver-rules=MAP * ~NOTFOUND',
        },
      });
      await child.waitFor((m) => m.msg === 'listening', 30_000);
      const base = `http://127.0.0.1:${port}`;
      // Starting a session links a phone: an anonymous caller is refused.
      expect((await fetch(`${base}/sessions/5511999990000/start`, { method: 'POST' })).status).toBe(401);
      const start = await fetch(`${base}/sessions/5511999990000/start`, { method: 'POST', headers: authorization });
      expect(start.status).toBe(202);
      // Offline, whatsapp-web.js cannot load WhatsApp Web: the supervisor records FAILED and retries with backoff.
      await waitUntil(
        async () =>
          ((await (await fetch(`${base}/sessions/5511999990000`, { headers: authorization })).json()) as { status: string }).status ===
          'FAILED',
        {
          timeoutMs: 30_000,
          message: 'the session never reached FAILED',
        },
      );
      await waitUntil(() => receiver!.received.some((r) => r.json.data.status === 'FAILED'), {
        timeoutMs: 10_000,
        message: 'no FAILED webhook',
      });
      expect(receiver.received[0]!.json).toMatchObject({ type: 'session.status', session: '5511999990000', data: { status: 'STARTING' } });
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      const send = await fetch(`${base}/sessions/5511999990000/messages`, {
        method: 'POST',
        headers: { ...authorization, 'content-type': 'application/json', 'idempotency-key': 'm-1' },
        body: JSON.stringify({ chatId: '5511888880000@c.us', text: 'hi' }),
      });
      expect(send.status).toBe(503);
      await child.kill('SIGTERM');
      expect(await child.exited).toMatchObject({ code: 0 });
      expect(child.messages.some((m) => m.msg === 'stopped')).toBe(true);
    },
    90_000,
  );
});
