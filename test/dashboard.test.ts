/// <reference lib="dom" />
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnProcess, uniqueNamespace, waitUntil, type ChildHandle } from '@wafleet/test-utils';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshot, useTestRedis } from './helpers/fleet-harness.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';
import { placeSimSessions, startSimInstance } from './helpers/sim-instances.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'packages', 'cli', 'bin', 'wafleet.mjs');
const TOKEN = 'dashboard-test-admin-token-0123456789ab';
const redis = useTestRedis();
const namespace = uniqueNamespace('dashboard');
const instances = new Map<string, ChildHandle>();
let board: ChildHandle;
let browser: Browser;
let url: string;
let receiver: Receiver;
const SECRET = `whsec_${Buffer.from('wafleet-dashboard-test-secret').toString('base64')}`;

const working = async () => [...(await snapshot(redis.client, namespace)).sessions.values()].filter((r) => r.status === 'WORKING').length;

beforeAll(async () => {
  // wa-3's webhooks go to a backend that refuses them (400): they are dead-lettered, and the page says so.
  receiver = await startReceiver();
  receiver.reply = () => ({ status: 400 });
  const outbox = [
    '--outbox',
    join(mkdtempSync(join(tmpdir(), 'wafleet-dashboard-')), 'wa-3.sqlite'),
    '--webhook-url',
    `${receiver.url}/hooks`,
  ];
  for (const id of ['wa-1', 'wa-2', 'wa-3']) {
    const extra = id === 'wa-3' ? [...outbox, '--webhook-secret', SECRET] : [];
    instances.set(id, await startSimInstance(redis.url, namespace, id, { token: TOKEN, extra }));
  }
  await placeSimSessions(redis.url, namespace, 12);
  await waitUntil(async () => (await working()) === 12, { timeoutMs: 20_000 });
  board = spawnProcess(process.execPath, [CLI, 'dashboard', '--json'], {
    name: 'dashboard',
    env: { WAFLEET_REDIS_URL: redis.url, WAFLEET_NAMESPACE: namespace, WAFLEET_ADMIN_TOKEN: TOKEN },
  });
  url = String((await board.waitFor<{ url: string }>((m) => typeof m['url'] === 'string', 15_000)).url);
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await board?.kill('SIGTERM');
  await Promise.all([...instances.values()].map((c) => c.kill('SIGKILL')));
  await receiver?.close();
});

describe('wafleet dashboard in Chromium', () => {
  it('answers nobody without its key, nor for another host name', async () => {
    const bare = new URL(url);
    bare.search = '';
    expect((await fetch(bare)).status).toBe(403);
    expect((await fetch(`${bare.origin}/events?key=wrong`)).status).toBe(403);
    const rebound = new URL(url);
    rebound.hostname = 'localhost';
    expect((await fetch(rebound)).status).toBe(200);
  });

  it('renders the fleet, shows a killed instance’s sessions moving live, and its rebalance button works', async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(url);
    await page.waitForFunction(() => document.querySelectorAll('#instances tbody tr').length === 3, undefined, { timeout: 15_000 });
    await page.waitForFunction(() => document.querySelector('[data-total="working"]')?.textContent === '12', undefined, {
      timeout: 15_000,
    });
    // The outbox columns: wa-3's refused webhooks are dead letters.
    await page.waitForFunction(() => Number(document.querySelector('[data-instance="wa-3"] .dead')?.textContent ?? 0) > 0, undefined, {
      timeout: 15_000,
    });
    const loads = async () =>
      page.$$eval('#instances tbody tr', (rows) =>
        Object.fromEntries(rows.map((r) => [r.getAttribute('data-instance'), r.querySelector('.load')!.textContent])),
      );
    const before = await loads();
    // kill -9 the instance with the most sessions: the page shows it expired and its sessions adopted by the others.
    const victim = Object.entries(before as Record<string, string>).sort(
      (a, b) => Number(b[1].split('/')[0]) - Number(a[1].split('/')[0]),
    )[0]![0];
    await instances.get(victim)!.kill('SIGKILL');
    // Expired, then gone once the sweep reaps it: the page keeps the row either way.
    await page.waitForFunction(
      (id) => ['expired', 'gone'].includes(document.querySelector(`[data-instance="${id}"] .state`)?.textContent ?? ''),
      victim,
      {
        timeout: 15_000,
      },
    );
    await waitUntil(async () => (await working()) === 12, { timeoutMs: 20_000, message: 'sessions not adopted' });
    await page.waitForFunction(
      (id) =>
        document.querySelector('[data-total="working"]')?.textContent === '12' &&
        Array.from(document.querySelectorAll('#instances tbody tr'))
          .filter((r) => r.getAttribute('data-instance') !== id)
          .reduce((n, r) => n + Number(r.querySelector('.load')!.textContent!.split('/')[0]), 0) === 12,
      victim,
      { timeout: 15_000 },
    );
    expect(await page.locator('#changes tbody tr').count()).toBeGreaterThan(0);
    mkdirSync(join(ROOT, '.wafleet-tmp'), { recursive: true });
    await page.screenshot({ path: join(ROOT, '.wafleet-tmp', 'dashboard.png'), fullPage: true });
    console.log(`[dashboard] ${victim} killed: ${JSON.stringify(before)} -> ${JSON.stringify(await loads())}`);
    // The rebalance button asks every live instance (fullest first) to shed its excess.
    await page.click('#rebalance');
    await page.waitForFunction(() => /^moved \d+ sessions$/.test(document.getElementById('result')?.textContent ?? ''), undefined, {
      timeout: 15_000,
    });
    await page.close();
  });
});
