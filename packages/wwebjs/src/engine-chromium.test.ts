// The real whatsapp-web.js initialize() with Debian's Chromium and no network: what the engine reports, and that no
// Chromium outlives stop().
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import type { EngineEvent, SessionEngine } from '@wafleet/core';
import { processesWith, sleep, waitUntil } from '@wafleet/test-utils';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CHROMIUM, localClient, removeTempDirs, tempDir } from '../test/client-fixture.js';
import { createWwebjsEngine } from './index.js';

const hasChromium = existsSync(CHROMIUM);
const hasOpenssl = existsSync('/usr/bin/openssl');

/**
 * Waits until no live process holds `marker`. Once the browser process has exited, its renderers and utility processes
 * take a few milliseconds more to notice and exit: that is not a leak, one still there after seconds would be.
 */
async function expectNoChromium(marker: string): Promise<void> {
  await waitUntil(() => processesWith(marker).length === 0, {
    timeoutMs: 3000,
    message: 'Chromium processes still running 3 s after stop()',
  });
}

/** A TCP server that accepts and never answers: Chromium's page.goto() to it never settles. */
async function blackHole(): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** An HTTPS server (self-signed, hence --ignore-certificate-errors) that serves a page that is not WhatsApp Web. */
async function notWhatsApp(): Promise<{ port: number; close(): void }> {
  const dir = tempDir('wafleet-wwebjs-tls-');
  const [key, cert] = [path.join(dir, 'key.pem'), path.join(dir, 'cert.pem')];
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
      '-keyout',
      key,
      '-out',
      cert,
      '-subj',
      '/CN=web.whatsapp.com',
      '-days',
      '1',
    ]),
    { stdio: 'ignore' },
  );
  const server = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => res.end('<html></html>'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

const engines: SessionEngine[] = [];
const cleanups: Array<() => void> = [];

afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.stop()));
  for (const cleanup of cleanups.splice(0)) cleanup();
});
afterAll(removeTempDirs);

let counter = 0;

/**
 * An engine over a real Client with LocalAuth in a fresh directory. `resolveTo` decides where every host name goes:
 * nowhere (a machine without network) or a local port. The host-resolver rule keeps the test off the network even on a
 * machine that has one.
 */
async function launchable(resolveTo: { port: number } | 'nowhere', extraArgs: string[] = [], authTimeoutMs = 3000) {
  const clientId = `chromium-${process.pid}-${++counter}`;
  const dataPath = tempDir('wafleet-wwebjs-chromium-');
  const rule = resolveTo === 'nowhere' ? 'MAP * ~NOTFOUND' : `MAP * 127.0.0.1:${resolveTo.port}`;
  const events: EngineEvent[] = [];
  const client = localClient(clientId, dataPath, { authTimeoutMs }, [`--host-resolver-rules=${rule}`, ...extraArgs]);
  const factory = createWwebjsEngine(() => client, { probeTimeoutMs: 1000 });
  const engine = await factory({ sessionId: clientId, epoch: '1', metadata: {}, report: (event) => events.push(event), owns: () => true });
  engines.push(engine);
  // LocalAuth puts the profile in <dataPath>/session-<clientId>; Chromium's command line names it.
  return { engine, events, client, chromiumMarker: `--user-data-dir=${dataPath}` };
}

/** Chromium's renderer processes in the process group of the browser `browserPid` (puppeteer starts it detached). */
function renderersOf(browserPid: number): number[] {
  return processesWith('--type=renderer').filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === browserPid;
    } catch {
      return false;
    }
  });
}

function pidsOf(events: EngineEvent[]): number[] {
  return events.flatMap((event) => (event.type === 'pids' ? event.pids : []));
}

describe.skipIf(!hasChromium)('whatsapp-web.js engine on Debian Chromium without network', () => {
  it('reports a failed initialize() as one crash with a reason, and stop() leaves no Chromium', async () => {
    const { engine, events, chromiumMarker } = await launchable('nowhere');
    const started = Date.now();
    await engine.start();
    const startMs = Date.now() - started;

    const crashes = events.filter((event) => event.type === 'crashed');
    expect(crashes).toEqual([{ type: 'crashed', reason: 'initialize: net::ERR_NAME_NOT_RESOLVED at https://web.whatsapp.com/' }]);
    expect(events.filter((event) => !['pids', 'crashed'].includes(event.type))).toEqual([]);
    expect(pidsOf(events)).toHaveLength(1);
    expect(startMs).toBeLessThan(15_000);
    // The browser still runs on the error page: the supervisor's stop() is what closes it.
    expect(processesWith(chromiumMarker).length).toBeGreaterThan(0);
    await expect(engine.probe()).resolves.toBe(false);

    await engine.stop();
    await expectNoChromium(chromiumMarker);
  });

  it('leaves a hung initialize() to the caller: an external deadline, then stop(), leaves no Chromium', async () => {
    const hole = await blackHole();
    cleanups.push(() => hole.close());
    const { engine, events, chromiumMarker } = await launchable(hole);

    const start = engine.start();
    let settled = false;
    void start.then(() => (settled = true));
    await waitUntil(() => pidsOf(events).length > 0, { timeoutMs: 15_000, message: 'no pids reported' });
    await sleep(3000); // the supervisor's start deadline
    expect(settled).toBe(false);
    await expect(engine.probe()).resolves.toBe(false);

    await engine.stop();
    await start; // destroy() detaches the navigating frame, so initialize() rejects
    expect(events.map((event) => event.type)).toEqual(['pids']);
    await expectNoChromium(chromiumMarker);
  });

  it('stop() while the browser is still launching leaves no Chromium', async () => {
    const hole = await blackHole();
    cleanups.push(() => hole.close());
    const { engine, events, chromiumMarker } = await launchable(hole);

    const start = engine.start();
    const stopping = Date.now();
    await engine.stop();
    await start;
    // Closed as soon as the launch hands the browser over, not killed when stopTimeoutMs (10 s) runs out.
    expect(Date.now() - stopping).toBeLessThan(5000);
    await sleep(500); // a launch that stop() missed would show up by now
    await expectNoChromium(chromiumMarker);
    expect(events).toEqual([]);
  });

  it('reports Chromium dying under a running session as one crash, and stop() leaves no Chromium', async () => {
    const hole = await blackHole();
    cleanups.push(() => hole.close());
    const { engine, events, chromiumMarker } = await launchable(hole);

    const start = engine.start();
    await waitUntil(() => pidsOf(events).length > 0, { timeoutMs: 15_000, message: 'no pids reported' });
    process.kill(pidsOf(events)[0]!, 'SIGKILL');
    await waitUntil(() => events.some((event) => event.type === 'crashed'), { timeoutMs: 10_000, message: 'no crash reported' });
    await start;
    expect(events.filter((event) => event.type === 'crashed')).toEqual([{ type: 'crashed', reason: 'browser disconnected' }]);

    await engine.stop();
    await expectNoChromium(chromiumMarker);
  });

  it.skipIf(!hasOpenssl)(
    'reports a renderer killed under a loaded page as one crash (page crashed), the browser still up, and nothing rejects unhandled',
    async () => {
      const server = await notWhatsApp();
      cleanups.push(() => server.close());
      // A long auth timeout: whatsapp-web.js waits for WhatsApp Web's scripts on the loaded page and reports nothing itself.
      const { engine, events, chromiumMarker } = await launchable(server, ['--ignore-certificate-errors'], 60_000);
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      try {
        const start = engine.start();
        await waitUntil(() => pidsOf(events).length > 0, { timeoutMs: 15_000, message: 'no pids reported' });
        const browserPid = pidsOf(events)[0]!;
        await waitUntil(() => renderersOf(browserPid).length > 0, { timeoutMs: 15_000, message: 'no renderer process' });
        // What an out-of-memory kill or "Aw, Snap!" does: the page's renderer dies, the browser process lives on.
        for (const pid of renderersOf(browserPid)) process.kill(pid, 'SIGKILL');
        await waitUntil(() => events.some((event) => event.type === 'crashed'), { timeoutMs: 10_000, message: 'no crash reported' });
        expect(processesWith(chromiumMarker)).toContain(browserPid);
        await sleep(300);
        expect(events.filter((event) => event.type === 'crashed')).toEqual([{ type: 'crashed', reason: 'page crashed' }]);
        await engine.stop();
        await start;
        await expectNoChromium(chromiumMarker);
        await sleep(200);
        // whatsapp-web.js's own async page listeners reject once the page is gone; the binding catches them.
        expect(unhandled).toEqual([]);
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
    },
  );

  it.skipIf(!hasOpenssl)('the health probe answers false on a frozen page instead of waiting on it', async () => {
    const server = await notWhatsApp();
    cleanups.push(() => server.close());
    const { engine, events, client, chromiumMarker } = await launchable(server, ['--ignore-certificate-errors'], 60_000);
    const start = engine.start();
    await waitUntil(() => pidsOf(events).length > 0 && client.pupPage !== undefined, { timeoutMs: 15_000, message: 'no page' });
    const page = client.pupPage!;
    await waitUntil(async () => (await page.evaluate(() => document.readyState).catch(() => '')) === 'complete', {
      timeoutMs: 15_000,
      message: 'the page did not load',
    });
    // The browser's memory: its own process and its renderers, GPU and utility processes (proportional set sizes).
    const memory = await engine.memoryBytes!();
    console.log(`[chromium] resident memory of one session's browser: ${Math.round((memory ?? 0) / 2 ** 20)} MiB`);
    expect(memory).toBeGreaterThan(20 * 2 ** 20);
    // A page stuck in a script (what a broken WhatsApp Web update can do): every evaluate waits forever.
    void page
      .evaluate(() => {
        for (;;);
      })
      .catch(() => undefined);
    await sleep(200);
    const stuck = await Promise.race([page.evaluate(() => 1).then(() => 'answered'), sleep(1500).then(() => 'stuck')]);
    expect(stuck).toBe('stuck');
    // The probe gives up after probeTimeoutMs (1000 here): false, so the supervisor marks a zombie and restarts.
    const verdict = await Promise.race([engine.probe(), sleep(5000).then(() => 'hung' as const)]);
    expect(verdict).toBe(false);
    await engine.stop();
    await start;
    await expectNoChromium(chromiumMarker);
  });

  it.skipIf(!hasOpenssl)('reports the string whatsapp-web.js throws when WhatsApp Web never comes up (auth timeout)', async () => {
    const server = await notWhatsApp();
    cleanups.push(() => server.close());
    const { engine, events, chromiumMarker } = await launchable(server, ['--ignore-certificate-errors']);

    const started = Date.now();
    await engine.start();
    // authTimeoutMs (3000) counts from the loaded page, after the browser launch.
    expect(Date.now() - started).toBeGreaterThanOrEqual(3000);
    expect(events.filter((event) => event.type === 'crashed')).toEqual([{ type: 'crashed', reason: 'initialize: auth timeout' }]);

    await engine.stop();
    await expectNoChromium(chromiumMarker);
  });
});
