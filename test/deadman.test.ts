import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAll, sleep, spawnProcess, waitUntil } from '@wafleet/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { startDeadmanSwitch, type DeadmanFiredEvent, type DeadmanSwitch } from '@wafleet/core';

const HOST = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'deadman-host.mjs');
const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) console.log(`deadman: skipping the Chromium tests: ${CHROMIUM} is missing (apt-get install -y chromium)`);

// Everything these tests start, so that afterAll can make sure none of it outlives the file.
const groups = new Set<number>();
const watchdogs = new Set<number>();
const switches = new Set<DeadmanSwitch>();
const dirs = new Set<string>();

afterAll(async () => {
  await Promise.all([...switches].map((s) => s.close()));
  for (const pid of watchdogs) signal(pid, 'SIGKILL');
  for (const pgid of groups) signal(-pgid, 'SIGKILL');
  await killAll();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  const pids = [...watchdogs, ...groups];
  await waitUntil(() => pids.every((p) => !alive(p)) && [...groups].every((g) => groupMembers(g).length === 0), {
    timeoutMs: 10_000,
    message: 'a browser, sleep or watchdog process outlived the dead-man tests',
  });
});

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

/** State letter and process group of a pid, from /proc; undefined once it is gone. */
function stat(pid: number): { state: string; pgid: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses, so split after the last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0]!, pgid: Number(fields[2]) };
  } catch {
    return undefined;
  }
}

/**
 * False once the process is gone or a zombie. A killed process stays a zombie (state Z) until its parent reaps it:
 * Chromium's parent is the instance, which cannot reap while SIGSTOPped, and orphans wait for init. A zombie runs no
 * code and holds no connection, so for WhatsApp it is dead.
 */
function alive(pid: number): boolean {
  const s = stat(pid);
  return s !== undefined && s.state !== 'Z';
}

/** Live (non-zombie) processes of a process group. */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = stat(Number(entry));
    if (s && s.pgid === pgid && s.state !== 'Z') members.push(Number(entry));
  }
  return members;
}

/** Milliseconds from `since` until `cond` holds, polled every 5 ms. */
async function msUntil(since: number, cond: () => boolean, timeoutMs: number, what: string): Promise<number> {
  await waitUntil(cond, { timeoutMs, intervalMs: 5, message: `${what} within ${timeoutMs} ms` });
  return performance.now() - since;
}

/** A cheap stand-in for a browser: a shell leading its own process group, with two `sleep 1000` children. */
function fakeBrowser(): { pid: number; exited: Promise<number> } {
  const child = spawn('sh', ['-c', 'sleep 1000 & sleep 1000 & wait'], { detached: true, stdio: 'ignore' });
  const pid = child.pid!;
  groups.add(pid);
  const exited = new Promise<number>((resolve) => child.once('exit', () => resolve(performance.now())));
  return { pid, exited };
}

async function newSwitch(): Promise<DeadmanSwitch> {
  const sw = await startDeadmanSwitch();
  switches.add(sw);
  watchdogs.add(sw.pid);
  return sw;
}

function firedOnce(sw: DeadmanSwitch): Promise<DeadmanFiredEvent> {
  return new Promise((resolve) => sw.once('fired', resolve));
}

describe('dead-man switch with a fake browser', () => {
  it('kills the tracked process group once refreshes stop, not before the deadline', async () => {
    const sw = await newSwitch();
    const browser = fakeBrowser();
    await waitUntil(() => groupMembers(browser.pid).length === 3);
    sw.track('s1', [browser.pid]);
    const fired = firedOnce(sw);
    // Refreshes keep it from firing...
    let last = 0;
    for (let i = 0; i < 6; i++) {
      last = performance.now();
      sw.refresh(300);
      await sleep(100);
    }
    expect(alive(browser.pid)).toBe(true);
    // ...and the last one's deadline kills the leader and its children.
    const killedAfter = (await browser.exited) - last;
    const groupGoneAfter = await msUntil(last, () => groupMembers(browser.pid).length === 0, 2_000, 'group not gone');
    console.log(
      `deadman (fake browser): killed ${killedAfter.toFixed(0)} ms after the last refresh(300); group gone after ${groupGoneAfter.toFixed(0)} ms`,
    );
    expect(killedAfter).toBeGreaterThanOrEqual(295);
    expect(killedAfter).toBeLessThan(300 + 400);
    expect(await fired).toEqual({ reason: 'deadline', killed: [browser.pid] });
    expect(sw.active).toBe(false);
    await waitUntil(() => !alive(sw.pid), { timeoutMs: 2_000, message: 'watchdog did not exit after firing' });
  });

  it('close() stops the watchdog without killing anything', async () => {
    const sw = await newSwitch();
    const browser = fakeBrowser();
    sw.track('s1', [browser.pid]);
    let fired = false;
    sw.on('fired', () => (fired = true));
    sw.refresh(300);
    await sw.close();
    await sw.close(); // idempotent
    expect(alive(sw.pid)).toBe(false);
    expect(sw.active).toBe(false);
    await sleep(600);
    expect(alive(browser.pid)).toBe(true);
    expect(fired).toBe(false);
    sw.refresh(10); // dropped, never thrown
  });

  it('never fires on a timer before the first refresh (and costs one small process)', async () => {
    const sw = await newSwitch();
    const browser = fakeBrowser();
    sw.track('s1', [browser.pid]);
    let fired = false;
    sw.on('fired', () => (fired = true));
    await sleep(1_000);
    expect(alive(browser.pid)).toBe(true);
    expect(alive(sw.pid)).toBe(true);
    expect(fired).toBe(false);
    expect(sw.active).toBe(true);
    const rssKb = Number(execFileSync('ps', ['-o', 'rss=', '-p', String(sw.pid)], { encoding: 'utf8' }).trim());
    console.log(`deadman: idle watchdog RSS ${(rssKb / 1024).toFixed(1)} MB`);
    expect(rssKb).toBeLessThan(120 * 1024);
    await sw.close();
    expect(alive(browser.pid)).toBe(true);
  });

  it('untrack removes a session from the kill set; track replaces a session’s pids', async () => {
    const sw = await newSwitch();
    const a = fakeBrowser();
    const b = fakeBrowser();
    const c = fakeBrowser();
    sw.track('s1', [c.pid]);
    sw.track('s1', [a.pid]); // replaces c
    sw.track('s2', [b.pid]);
    sw.untrack('s2');
    const fired = firedOnce(sw);
    sw.refresh(100);
    expect(await fired).toEqual({ reason: 'deadline', killed: [a.pid] });
    await a.exited;
    await sleep(200);
    expect(alive(b.pid)).toBe(true);
    expect(alive(c.pid)).toBe(true);
  });

  it('a deadline already passed fires at once', async () => {
    const sw = await newSwitch();
    const browser = fakeBrowser();
    sw.track('s1', [browser.pid]);
    const t0 = performance.now();
    sw.refresh(-50);
    const after = (await browser.exited) - t0;
    expect(after).toBeLessThan(200);
  });

  it('re-arms after firing: browsers launched after the instance recovered are still protected', async () => {
    const sw = await newSwitch();
    const first = fakeBrowser();
    sw.track('s1', [first.pid]);
    const fired = firedOnce(sw);
    sw.refresh(150);
    await fired;
    await first.exited;
    expect(sw.active).toBe(false);
    // Spent: a launch waits for the next watchdog, which only a refresh (a renewed lease) starts.
    let armed = false;
    const waiting = sw.armed().then(() => (armed = true));
    await sleep(300);
    expect(armed).toBe(false);
    // The instance recovers: it renews its lease, then launches a new browser.
    sw.refresh(5_000);
    await waiting;
    expect(sw.active).toBe(true);
    const second = fakeBrowser();
    sw.untrack('s1');
    sw.track('s1', [second.pid]);
    watchdogs.add(sw.pid);
    // ...and pauses again: the new watchdog kills the new browser.
    const t0 = performance.now();
    sw.refresh(200);
    const after = (await second.exited) - t0;
    console.log(`deadman re-armed: second browser killed ${after.toFixed(0)} ms after the last refresh(200)`);
    expect(after).toBeGreaterThanOrEqual(150);
    await sw.close();
  });

  it('never throws into the host once the watchdog is gone, and reports a watchdog that died', async () => {
    const sw = await newSwitch();
    const errors: Error[] = [];
    sw.on('error', (err) => errors.push(err));
    process.kill(sw.pid, 'SIGKILL');
    await waitUntil(() => errors.length === 1, { timeoutMs: 2_000, message: 'no error event' });
    expect(errors[0]!.message).toMatch(/exited unexpectedly/);
    expect(sw.active).toBe(false);
    for (let i = 0; i < 20; i++) {
      sw.refresh(100);
      sw.track('s1', [12345]);
      sw.untrack('s1');
    }
    await sw.close();

    // Without an 'error' listener nothing is emitted (an unlistened 'error' would crash the host).
    const quiet = await newSwitch();
    process.kill(quiet.pid, 'SIGKILL');
    await waitUntil(() => !quiet.active, { timeoutMs: 2_000 });
    quiet.refresh(100);
    await sleep(50);
    quiet.refresh(100);
    await quiet.close();
  });

  it('validates its arguments', async () => {
    const sw = await newSwitch();
    expect(() => sw.refresh(Number.NaN)).toThrow(expect.objectContaining({ code: 'WAFLEET_CONFIG', option: 'inMs' }));
    expect(() => sw.track('', [1234])).toThrow(expect.objectContaining({ code: 'WAFLEET_CONFIG', option: 'sessionId' }));
    for (const pids of [[0], [1], [-1], [1.5], ['123']]) {
      expect(() => sw.track('s1', pids as number[])).toThrow(expect.objectContaining({ code: 'WAFLEET_CONFIG', option: 'pids' }));
    }
    await expect(startDeadmanSwitch({ startTimeoutMs: -1 })).rejects.toMatchObject({ code: 'WAFLEET_CONFIG', option: 'startTimeoutMs' });
    await sw.close();
  });

  it('kill -9 of the instance kills the tracked processes at once (parent-gone)', async () => {
    const host = spawnProcess(process.execPath, [HOST, JSON.stringify({ browser: 'sleep', deadlineMs: 60_000 })], { name: 'deadman-host' });
    const ready = await host.waitFor<{ browserPid: number; watchdogPid: number }>((m) => m['ev'] === 'ready');
    groups.add(ready.browserPid);
    watchdogs.add(ready.watchdogPid);
    const t0 = performance.now();
    await host.kill('SIGKILL');
    const after = await msUntil(t0, () => !alive(ready.browserPid), 2_000, 'sleep survived its instance');
    console.log(`deadman (fake browser): killed ${after.toFixed(0)} ms after kill -9 of the instance`);
    expect(after).toBeLessThan(1_000);
    await waitUntil(() => !alive(ready.watchdogPid), { timeoutMs: 2_000, message: 'watchdog did not exit' });
  });
});

describe('dead-man switch with Debian Chromium through puppeteer-core', () => {
  const DEADLINE_MS = 1_500;
  const REFRESH_MS = 200;

  async function startHost(options: { deadman: boolean; deadlineMs?: number }) {
    // A killed Chromium leaves its profile and its TMPDIR files behind: both go into one directory removed afterwards.
    const dir = mkdtempSync(join(tmpdir(), 'wafleet-deadman-chromium-'));
    dirs.add(dir);
    const userDataDir = join(dir, 'profile');
    const config = {
      browser: 'chromium',
      deadman: options.deadman,
      deadlineMs: options.deadlineMs ?? DEADLINE_MS,
      refreshMs: REFRESH_MS,
      userDataDir,
    };
    const host = spawnProcess(process.execPath, [HOST, JSON.stringify(config)], { name: 'deadman-host', env: { TMPDIR: dir } });
    const ready = await host.waitFor<{ browserPid: number; watchdogPid: number | null }>((m) => m['ev'] === 'ready', 30_000);
    // Puppeteer launches Chromium detached: its main process leads a group holding the zygote and renderers.
    groups.add(ready.browserPid);
    if (ready.watchdogPid !== null) watchdogs.add(ready.watchdogPid);
    expect(stat(ready.browserPid)?.pgid).toBe(ready.browserPid);
    expect(groupMembers(ready.browserPid).length).toBeGreaterThan(1);
    return { host, ...ready };
  }

  it.skipIf(!HAVE_CHROMIUM)(
    'The dead-man switch kills a real Chromium (Debian’s, launched through puppeteer-core) within the self-fence deadline when its instance process is SIGSTOPped',
    async () => {
      const { host, browserPid, watchdogPid } = await startHost({ deadman: true });
      const processes = groupMembers(browserPid).length;
      await host.kill('SIGSTOP');
      const t0 = performance.now();
      const killedAfter = await msUntil(t0, () => !alive(browserPid), DEADLINE_MS + 5_000, 'Chromium survived');
      const groupGoneAfter = await msUntil(t0, () => groupMembers(browserPid).length === 0, 5_000, 'Chromium processes survived');
      console.log(
        `deadman (Chromium): SIGSTOP -> main process killed after ${killedAfter.toFixed(0)} ms, all ${processes} processes of its group after ${groupGoneAfter.toFixed(0)} ms (deadline ${DEADLINE_MS} ms, refreshed every ${REFRESH_MS} ms)`,
      );
      // The last refresh came about REFRESH_MS before the SIGSTOP (more if the host was slow): the deadline fired, not
      // parent-gone, which takes milliseconds.
      expect(killedAfter).toBeGreaterThan(DEADLINE_MS - REFRESH_MS - 300);
      expect(killedAfter).toBeLessThan(DEADLINE_MS + 1_000);
      expect(groupGoneAfter).toBeLessThan(DEADLINE_MS + 1_000);
      await waitUntil(() => !alive(watchdogPid!), { timeoutMs: 2_000, message: 'watchdog did not exit after firing' });

      // Woken up, the instance learns what happened, and its refreshes into the dead pipe do not crash it.
      await host.kill('SIGCONT');
      const fired = await host.waitFor((m) => m['ev'] === 'fired', 5_000);
      expect(fired).toMatchObject({ reason: 'deadline', killed: [browserPid] });
      await sleep(3 * REFRESH_MS);
      expect(host.alive()).toBe(true);
      await host.kill('SIGKILL');
    },
  );

  it.skipIf(!HAVE_CHROMIUM)('kill -9 of the instance kills its Chromium at once (parent-gone), long before the deadline', async () => {
    const { host, browserPid, watchdogPid } = await startHost({ deadman: true, deadlineMs: 60_000 });
    const t0 = performance.now();
    await host.kill('SIGKILL');
    const killedAfter = await msUntil(t0, () => !alive(browserPid), 5_000, 'Chromium survived');
    const groupGoneAfter = await msUntil(t0, () => groupMembers(browserPid).length === 0, 5_000, 'Chromium processes survived');
    console.log(
      `deadman (Chromium): kill -9 -> main process killed after ${killedAfter.toFixed(0)} ms, whole group after ${groupGoneAfter.toFixed(0)} ms`,
    );
    expect(killedAfter).toBeLessThan(1_000);
    expect(groupGoneAfter).toBeLessThan(1_000);
    await waitUntil(() => !alive(watchdogPid!), { timeoutMs: 2_000, message: 'watchdog did not exit after firing' });
  });

  it.skipIf(!HAVE_CHROMIUM)('without the switch, Chromium outlives a SIGSTOPped instance (why the switch exists)', async () => {
    const { host, browserPid } = await startHost({ deadman: false });
    const before = groupMembers(browserPid).length;
    await host.kill('SIGSTOP');
    await sleep(DEADLINE_MS + 1_000);
    const after = groupMembers(browserPid).length;
    console.log(`deadman (Chromium, no switch): ${after} of ${before} processes still running ${DEADLINE_MS + 1_000} ms after SIGSTOP`);
    expect(alive(browserPid)).toBe(true);
    expect(after).toBeGreaterThan(1);
    process.kill(-browserPid, 'SIGKILL');
    await host.kill('SIGKILL');
    await waitUntil(() => groupMembers(browserPid).length === 0, { timeoutMs: 5_000, message: 'cleanup left Chromium running' });
  });
});
