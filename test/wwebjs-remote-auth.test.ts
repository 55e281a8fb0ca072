// Issue 12, acceptance 3: the real whatsapp-web.js Client with RemoteAuth on wafleet's fenced session data in Redis,
// offline with Debian Chromium, in instance processes.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killAll, redisForTests, uniqueNamespace, type ChildHandle, type TestRedis } from '@wafleet/test-utils';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { blackHole, indexOf, startWwebjsInstance } from './helpers/wwebjs-instances.js';
import { processesWith } from '@wafleet/test-utils';

const hasChromium = existsSync('/usr/bin/chromium');
const S = 'acc3';
let redis: TestRedis;
let hole: Awaited<ReturnType<typeof blackHole>>;
const dirs: string[] = [];
const children: ChildHandle[] = [];

beforeAll(async () => {
  redis = await redisForTests();
  hole = await blackHole();
});
afterEach(async () => {
  await Promise.all(children.splice(0).map((child) => child.kill('SIGKILL')));
  for (const dir of dirs) for (const pid of processesWith(`--user-data-dir=${dir}`)) process.kill(pid, 'SIGKILL');
});
afterAll(async () => {
  hole?.close();
  await killAll();
  await redis?.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function instance(instanceId: string, namespace: string, extra: { holdAfterPutMs?: number } = {}) {
  const dataPath = mkdtempSync(join(tmpdir(), `wafleet-acc3-${instanceId}-`));
  dirs.push(dataPath);
  const child = startWwebjsInstance({
    redis: redis.url,
    namespace,
    instanceId,
    auth: 'remote',
    dataPath,
    holePort: hole.port,
    deadman: true,
    firstBackupMs: 300,
    ...extra,
  });
  children.push(child);
  return { child, dataPath, profile: join(dataPath, `RemoteAuth-${S}`) };
}

const is =
  (ev: string, extra: Record<string, unknown> = {}) =>
  (msg: Record<string, unknown>) =>
    msg.ev === ev && Object.entries(extra).every(([k, v]) => msg[k] === v);

/** A runs the session, a login lands in its profile, WhatsApp Web gets ready: the first backup follows. */
async function ownerWithBackup(namespace: string, extra: { holdAfterPutMs?: number } = {}) {
  const a = instance('wa-a', namespace, extra);
  await a.child.waitFor(is('up'));
  a.child.send({ cmd: 'start', id: S });
  await a.child.waitFor(is('engine', { type: 'pids' }), 20_000);
  a.child.send({ cmd: 'login', id: S, file: 'login-1', content: 'keys of login 1' });
  await a.child.waitFor(is('login-written'));
  const readyAt = Date.now();
  a.child.send({ cmd: 'ready', id: S });
  const committed = await a.child.waitFor<{ t: number; version: number }>(is('committed'), 10_000);
  return { a, firstBackupMs: committed.t - readyAt };
}

describe.skipIf(!hasChromium)('RemoteAuth on fenced session data with the real Client and Chromium (issue 12, acceptance 3)', () => {
  it("extracts the archive instance A committed into instance B's data path before B's Chromium starts", async () => {
    const namespace = uniqueNamespace('acc3');
    const { a, firstBackupMs } = await ownerWithBackup(namespace);
    const b = instance('wa-b', namespace);
    await b.child.waitFor(is('up'));

    const killedAt = Date.now();
    await a.child.kill('SIGKILL');
    const launched = await b.child.waitFor<{ t: number; profileFiles: string[] }>(is('engine', { s: S, type: 'pids' }), 20_000);
    const restoredAt = indexOf(b.child, is('restored', { s: S }));
    const launchedAt = indexOf(b.child, is('engine', { s: S, type: 'pids' }));

    expect(b.child.messages[restoredAt]).toMatchObject({ version: 1 });
    // The launch order: the restore was done, and its files were in the profile, when Chromium's pid was reported.
    expect(restoredAt).toBeGreaterThanOrEqual(0);
    expect(restoredAt).toBeLessThan(launchedAt);
    expect(launched.profileFiles).toContain('login-1');
    expect(readFileSync(join(b.profile, 'Default', 'Local Storage', 'login-1'), 'utf8')).toBe('keys of login 1');
    // Chromium runs on that profile.
    expect(processesWith(`--user-data-dir=${b.profile}`).length).toBeGreaterThan(0);
    expect(b.child.messages.filter(is('unhandledRejection'))).toEqual([]);
    console.log(
      `acceptance 3: first backup ${firstBackupMs} ms after ready; kill -9 of A to B's Chromium on the restored profile ${launched.t - killedAt} ms`,
    );
  });

  it('keeps the backup when WhatsApp reports CONFLICT on the owner: the relaunch restores it', async () => {
    const namespace = uniqueNamespace('acc3');
    const { a } = await ownerWithBackup(namespace);
    a.child.send({ cmd: 'conflict', id: S });
    await a.child.waitFor(is('conflict-done'));
    // The supervisor stops the run, finds the session still its own, and relaunches it from the kept backup.
    const restored = await a.child.waitFor(
      (msg) => is('restored', { s: S })(msg) && indexOf(a.child, is('conflict-done')) < a.child.messages.indexOf(msg),
      20_000,
    );
    expect(restored).toMatchObject({ version: 1 });
    expect(a.child.messages.filter(is('unhandledRejection'))).toEqual([]);
  });

  it('leaves the previous version restorable after a kill -9 mid-save', async () => {
    const namespace = uniqueNamespace('acc3');
    const { a } = await ownerWithBackup(namespace, { holdAfterPutMs: 30_000 });
    a.child.send({ cmd: 'login', id: S, file: 'login-2', content: 'keys of login 2' });
    await a.child.waitFor(is('login-written', { file: 'login-2' }));
    a.child.send({ cmd: 'backup', id: S });
    // The bytes of version 2 are uploaded under a fresh name; the commit has not happened.
    await a.child.waitFor(is('uploaded'), 10_000);
    const b = instance('wa-b', namespace);
    await b.child.waitFor(is('up'));
    await a.child.kill('SIGKILL');

    const launched = await b.child.waitFor<{ profileFiles: string[] }>(is('engine', { s: S, type: 'pids' }), 20_000);
    expect(b.child.messages.find(is('restored', { s: S }))).toMatchObject({ version: 1 });
    expect(launched.profileFiles).toContain('login-1');
    expect(launched.profileFiles).not.toContain('login-2');
    expect(readFileSync(join(b.profile, 'Default', 'Local Storage', 'login-1'), 'utf8')).toBe('keys of login 1');
  });
});
