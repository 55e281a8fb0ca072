// Issue 12, acceptance 4: LocalAuth on a folder that every instance shares, with real Chromium in instance processes.
import { existsSync, lstatSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { killAll, redisForTests, sleep, uniqueNamespace, waitUntil, type TestRedis } from '@wafleet/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blackHole, startWwebjsInstance } from './helpers/wwebjs-instances.js';
import { processesWith } from '@wafleet/test-utils';

const hasChromium = existsSync('/usr/bin/chromium');
const S = 'acc4';
let redis: TestRedis;
let hole: Awaited<ReturnType<typeof blackHole>>;
let shared: string;

beforeAll(async () => {
  redis = await redisForTests();
  hole = await blackHole();
  shared = mkdtempSync(join(tmpdir(), 'wafleet-acc4-shared-'));
});
afterAll(async () => {
  await killAll();
  for (const pid of processesWith(`--user-data-dir=${shared}`)) process.kill(pid, 'SIGKILL');
  hole?.close();
  await redis?.close();
  rmSync(shared, { recursive: true, force: true });
});

const is =
  (ev: string, extra: Record<string, unknown> = {}) =>
  (msg: Record<string, unknown>) =>
    msg.ev === ev && Object.entries(extra).every(([k, v]) => msg[k] === v);

describe.skipIf(!hasChromium)('LocalAuth on a shared folder (issue 12, acceptance 4)', () => {
  it("B never opens the profile while A owns it; after kill -9 of A, B starts it with real Chromium despite A's lock", async () => {
    const namespace = uniqueNamespace('acc4');
    const profile = join(shared, `session-${S}`);
    const marker = `--user-data-dir=${profile}`;
    const start = (instanceId: string) =>
      startWwebjsInstance({ redis: redis.url, namespace, instanceId, auth: 'local', dataPath: shared, holePort: hole.port, deadman: true });
    const a = start('wa-a');
    const b = start('wa-b');
    await Promise.all([a.waitFor(is('up')), b.waitFor(is('up'))]);

    a.send({ cmd: 'start', id: S });
    const aLaunch = await a.waitFor<{ pids: number[] }>(is('engine', { type: 'pids' }), 20_000);
    const aBrowser = aLaunch.pids[0]!;
    // A symlink to `<host>-<pid>`, a name that exists nowhere: lstat, not existsSync.
    await waitUntil(() => lstatSync(join(profile, 'SingletonLock'), { throwIfNoEntry: false }) !== undefined, {
      timeoutMs: 10_000,
      message: 'A holds no profile lock',
    });
    expect(readlinkSync(join(profile, 'SingletonLock'))).toBe(`${hostname()}-${aBrowser}`);

    // While A is alive and owns the session, B is refused and never launches a browser on the profile.
    b.send({ cmd: 'start', id: S });
    expect(await b.waitFor(is('start-refused'))).toMatchObject({ code: 'WAFLEET_OWNED_ELSEWHERE' });
    await sleep(2500);
    expect(b.messages.filter(is('engine'))).toEqual([]);
    expect(readlinkSync(join(profile, 'SingletonLock'))).toBe(`${hostname()}-${aBrowser}`);

    const killedAt = Date.now();
    await a.kill('SIGKILL');
    // The dead-man switch kills A's Chromium at once; its lock stays in the profile.
    await waitUntil(() => processesWith(marker).length === 0, { timeoutMs: 5000, message: "A's Chromium survived A" });
    // On a shared network volume the lock names the dead owner's host: Chromium on any other host refuses it
    // ("The profile appears to be in use by another Chromium process ... on another computer", exit code 21).
    unlinkSync(join(profile, 'SingletonLock'));
    symlinkSync('instance-a-host-4242', join(profile, 'SingletonLock'));

    const bLaunch = await b.waitFor<{ t: number; pids: number[] }>(is('engine', { s: S, type: 'pids' }), 20_000);
    const bBrowser = bLaunch.pids[0]!;
    await sleep(2000); // a Chromium that refused the profile exits within this
    expect(processesWith(marker)).toContain(bBrowser);
    expect(readlinkSync(join(profile, 'SingletonLock'))).toBe(`${hostname()}-${bBrowser}`);
    expect(b.messages.filter(is('engine', { type: 'crashed' }))).toEqual([]);
    console.log(`acceptance 4: kill -9 of A to B's Chromium on the shared profile ${bLaunch.t - killedAt} ms`);
  });
});
