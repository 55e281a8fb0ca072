// A local fleet in one command: a private Redis, three instances, 30 sessions; one instance is killed with
// SIGKILL and the survivors adopt its sessions; then one is drained gracefully. Set REDIS_URL to use your Redis.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFleet, registryKeys, TIMING_PROFILES } from '@wafleet/core';
import { startRedis } from '@wafleet/test-utils';
import { Redis } from 'ioredis';

const here = dirname(fileURLToPath(import.meta.url));
const t0 = Date.now();
const log = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = process.env.REDIS_URL ? undefined : await startRedis();
const url = process.env.REDIS_URL ?? server.url;
const children = new Map();
const cleanup = async () => {
  for (const child of children.values()) child.kill('SIGKILL');
  await server?.stop();
};
process.on('SIGINT', () => cleanup().then(() => process.exit(130)));

function startInstance(id, max) {
  const child = spawn(process.execPath, [join(here, 'instance.mjs'), url, id, String(max)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.set(id, child);
  const ready = new Promise((resolve) => {
    let buf = '';
    child.stdout.on('data', (chunk) => {
      buf += chunk;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const m = JSON.parse(line);
        if (m.ev === 'ready') resolve();
        if (m.ev === 'drained') log(`${id} drained: ${m.handedOff} handed off, ${m.pending} waiting for capacity`);
      }
    });
  });
  return ready;
}

try {
  const p = TIMING_PROFILES.default;
  log(`Redis at ${url}; timing: heartbeat ${p.heartbeatIntervalMs} ms, lease ${p.leaseTtlMs} ms, self-fence ${p.selfFenceMs} ms, adoption delay ${p.adoptionDelayMs} ms`);
  await Promise.all([startInstance('wa-1', 15), startInstance('wa-2', 15), startInstance('wa-3', 15)]);
  log('three instances registered (maxSessions 15 each)');

  // The backend side: place sessions and watch owner changes arrive by push.
  const sub = new Redis(url);
  const backend = createFleet({ redis: url, namespace: 'demo', instanceId: 'backend', url: 'http://127.0.0.1/backend', maxSessions: 1, mode: 'observe' });
  await backend.start();
  const owners = new Map();
  const changes = [];
  // A fleet on database n publishes on a channel of its own (docs/registry.md).
  await sub.subscribe(registryKeys('demo', Number(new URL(url).pathname.slice(1) || 0)).events);
  sub.on('message', (_ch, raw) => {
    const m = JSON.parse(raw);
    if (m.o && owners.get(m.s) !== m.o) changes.push({ t: Date.now(), session: m.s, from: owners.get(m.s), to: m.o, epoch: m.e });
    if (m.o) owners.set(m.s, m.o);
  });

  log('placing 30 sessions (a new Redis starts in quarantine: nobody may claim until earlier owners could re-assert)');
  const ids = Array.from({ length: 30 }, (_, i) => `55119000000${String(i).padStart(2, '0')}`);
  for (const id of ids) await backend.place(id);
  await sleep(300);
  const load = (list) => list.filter((i) => i.id !== 'backend').map((i) => `${i.id}=${i.load}`).join(' ');
  log(`placed: ${load(await backend.instances())}`);

  const victim = 'wa-2';
  const victims = ids.filter((id) => owners.get(id) === victim);
  changes.length = 0;
  children.get(victim).kill('SIGKILL');
  const killedAt = Date.now();
  log(`kill -9 ${victim} (held ${victims.length} sessions); survivors adopt after lease expiry + adoption delay`);
  while (victims.some((id) => owners.get(id) === victim) && Date.now() - killedAt < 30_000) await sleep(50);
  const adopted = changes.filter((c) => c.from === victim);
  for (const to of ['wa-1', 'wa-3']) {
    const mine = adopted.filter((c) => c.to === to);
    log(`  ${to} adopted ${mine.length}: ${mine.map((c) => c.session.slice(-2)).join(' ')}`);
  }
  const times = adopted.map((c) => c.t - killedAt);
  log(`all ${adopted.length} adopted ${Math.min(...times)}-${Math.max(...times)} ms after the kill (bound: TTL ${p.leaseTtlMs} + delay ${p.adoptionDelayMs} + one sweep ${p.sweepIntervalMs} ms)`);
  log(`now: ${load(await backend.instances())}`);

  await startInstance('wa-4', 15);
  changes.length = 0;
  const termAt = Date.now();
  log('wa-4 joined; SIGTERM wa-1: it drains, handing each session off without waiting for any lease');
  children.get('wa-1').kill('SIGTERM');
  await new Promise((r) => children.get('wa-1').on('exit', r));
  const handoff = changes.map((c) => c.t - termAt);
  log(`${changes.length} sessions moved off wa-1, the last ${Math.max(0, ...handoff)} ms after SIGTERM; now: ${load(await backend.instances())}`);

  sub.disconnect();
  await backend.close();
  await cleanup();
  log('done');
} catch (err) {
  console.error(err);
  await cleanup();
  process.exit(1);
}
