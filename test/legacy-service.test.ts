// examples/legacy-service after its adoption commit: a CommonJS express 4 + winston service on whatsapp-web.js's
// surface (simulated by @wafleet/sim/wwebjs), three instances on one host sharing the LocalAuth folder, and its
// stand-in backend, which reads `event` and checks the legacy HMAC signature. No wafleet code on the backend side.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { linkSimSession } from '@wafleet/sim/wwebjs';
import { freePort, spawnProcess, waitUntil, type ChildHandle } from '@wafleet/test-utils';
import { describe, expect, it } from 'vitest';
import { useTestRedis } from './helpers/fleet-harness.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'legacy-service');
const redis = useTestRedis();
const ADMIN_TOKEN = 'legacy-admin-token-0123456789abcdefgh';
const API_KEY = 'legacy-api-key';
const SECRET = 'legacy-webhook-secret';

interface BackendState {
  accounts: Record<string, { status?: string; assigned_instance_url?: string; workspace_id?: number; phone_number?: string }>;
  log: Array<{ event: string; session_id: string; instance_url: string; data: Record<string, unknown> }>;
}

describe('examples/legacy-service adopted (G4, G6: the backend keeps its webhook format)', () => {
  it('after a kill -9 of the owner, the backend receives session_ready with the service metadata from the adopter, and sends go there', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wafleet-legacy-'));
    const storage = join(dir, 'sessions');
    const backendPort = await freePort();
    const backendUrl = `http://127.0.0.1:${backendPort}`;
    const backend = spawnProcess(process.execPath, [join(root, 'backend.js')], {
      name: 'backend',
      env: { PORT: String(backendPort), WEBHOOK_SECRET: SECRET },
    });
    await backend.waitFor((m) => m.msg === 'listening');
    const state = async () => (await (await fetch(`${backendUrl}/state`)).json()) as BackendState;

    const instances = new Map<string, { child: ChildHandle; url: string }>();
    for (const id of ['wa-1', 'wa-2', 'wa-3']) {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const child = spawnProcess(process.execPath, [join(root, 'server.js')], {
        name: id,
        env: {
          PORT: String(port),
          INSTANCE_ID: id,
          INSTANCE_URL: url,
          REDIS_URL: redis.url,
          SESSION_STORAGE_PATH: storage,
          WEBHOOK_URL: `${backendUrl}/api/webhooks/whatsapp`,
          WEBHOOK_SECRET: SECRET,
          API_KEY,
          ADMIN_TOKEN,
          WWEBJS_MODULE: '@wafleet/sim/wwebjs',
        },
      });
      await child.waitFor((m) => m.message === 'listening', 30_000);
      instances.set(id, { child, url });
    }
    const api = (url: string, path: string, init: RequestInit = {}) =>
      fetch(`${url}${path}`, { ...init, headers: { 'x-api-key': API_KEY, 'content-type': 'application/json', ...init.headers } });

    // The backend creates the session on any instance, as it does today; wafleet places it on the least-loaded one.
    const created = await api(instances.get('wa-1')!.url, '/api/sessions', {
      method: 'POST',
      body: JSON.stringify({ session_id: '5511999990000', workspace_id: 7, account_id: 'acc-1' }),
    });
    expect(created.status).toBe(202);
    await waitUntil(async () => (await state()).log.some((e) => e.event === 'qr_code_generated'), {
      timeoutMs: 15_000,
      message: 'no QR webhook',
    });
    linkSimSession(storage, '5511999990000', '5511999990000');
    await waitUntil(async () => (await state()).accounts['5511999990000']?.status === 'connected', {
      timeoutMs: 15_000,
      message: 'never ready',
    });
    const first = (await state()).accounts['5511999990000']!;
    expect(first).toMatchObject({ workspace_id: 7, phone_number: '5511999990000' });
    const ownerId = [...instances].find(([, i]) => i.url === first.assigned_instance_url)![0];

    // kill -9 the owner: its lease expires, another instance adopts the session and restores the shared login.
    const killedAt = Date.now();
    await instances.get(ownerId)!.child.kill('SIGKILL');
    await waitUntil(
      async () => {
        const s = (await state()).accounts['5511999990000'];
        return s?.status === 'connected' && s.assigned_instance_url !== first.assigned_instance_url;
      },
      { timeoutMs: 30_000, message: 'the backend never heard of the adopter' },
    );
    const failoverMs = Date.now() - killedAt;
    const after = await state();
    const readyEvents = after.log.filter((e) => e.event === 'session_ready');
    const last = readyEvents.at(-1)!;
    expect(last.data).toMatchObject({ workspace_id: 7, account_id: 'acc-1', phone_number: '5511999990000' });
    expect(after.log.filter((e) => e.event === 'qr_code_generated')).toHaveLength(1); // no QR after failover
    const adopter = [...instances.values()].find((i) => i.url === last.instance_url)!;
    // The backend's stored URL is right: a send there works.
    const send = await api(adopter.url, '/api/sessions/5511999990000/messages', {
      method: 'POST',
      body: JSON.stringify({ to: '5511888880000', message: 'hello' }),
    });
    expect(send.status).toBe(201);
    // The user disconnects: the session stops for good (nobody adopts it), and the status route says so.
    expect((await api(adopter.url, '/api/sessions/5511999990000', { method: 'DELETE' })).status).toBe(204);
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const record = (await (await fetch(`${adopter.url}/sessions/5511999990000`, { headers: admin })).json()) as Record<string, unknown>;
    expect(record).toMatchObject({ owner: '', desired: 'stopped' });
    console.log(`[legacy-service] failover: backend saw session_ready from ${last.instance_url} ${failoverMs} ms after kill -9`);
    for (const { child } of instances.values()) await child.kill('SIGTERM').catch(() => undefined);
    await backend.kill('SIGTERM');
  }, 90_000);
});
