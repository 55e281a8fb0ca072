import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createFleet, createSupervisor, type Fleet, type Supervisor } from '@wafleet/core';
import { redisForTests, uniqueNamespace, waitUntil, type TestRedis } from '@wafleet/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, localClient, removeTempDirs, tempDir } from '../test/client-fixture.js';
import { createWwebjsEngine } from './engine.js';

const hasChromium = existsSync(CHROMIUM);
let redis: TestRedis;
let fleet: Fleet;
let supervisor: Supervisor;

beforeAll(async () => {
  redis = await redisForTests();
});

afterAll(async () => {
  await supervisor?.close();
  await fleet?.close();
  await redis.close();
  removeTempDirs();
});

describe('supervisor with the real whatsapp-web.js Client and Debian Chromium, offline (G4)', () => {
  it.skipIf(!hasChromium)(
    'initialize() fails without network: the session goes to FAILED, restarts with backoff, the instance keeps running',
    async () => {
      const dataPath = tempDir('wafleet-wwebjs-sup-');
      fleet = createFleet({
        redis: redis.url,
        namespace: uniqueNamespace('wwebjs'),
        instanceId: 'wa-1',
        url: 'http://wa-1:3000',
        maxSessions: 2,
        heartbeatIntervalMs: 200,
        leaseTtlMs: 2000,
        selfFenceMs: 1400,
        adoptionDelayMs: 500,
        quarantineMs: 0,
      });
      // Name resolution fails at once, so the test is offline even on a machine that has a network.
      const engine = createWwebjsEngine(({ sessionId }) =>
        localClient(sessionId, dataPath, { authTimeoutMs: 5000 }, ['--host-resolver-rules=MAP * ~NOTFOUND']),
      );
      supervisor = createSupervisor({ fleet, engine, restart: { baseMs: 300, maxMs: 1200, maxAttempts: 3 }, startTimeoutMs: 20_000 });
      await fleet.start();
      supervisor.start();
      await supervisor.startSession('5511999990000');

      await waitUntil(() => supervisor.session('5511999990000')!.transitions.filter((t) => t.to === 'FAILED').length === 3, {
        timeoutMs: 40_000,
        message: 'the session did not fail three times',
      });
      const transitions = supervisor.session('5511999990000')!.transitions;
      const failures = transitions.filter((t) => t.to === 'FAILED');
      expect(failures[0]!.reason).toMatch(/ERR_NAME_NOT_RESOLVED|initialize/);
      // Backoff: the gap before each relaunch grows (300 ms then 600 ms, each with 50-100% jitter).
      const relaunches = transitions.filter((t) => t.to === 'STARTING' && t.reason === 'restart');
      expect(relaunches).toHaveLength(2);
      const gaps = relaunches.map((r, i) => r.at - failures[i]!.at);
      expect(gaps[0]!).toBeGreaterThanOrEqual(150);
      expect(gaps[1]!).toBeGreaterThanOrEqual(300);
      // After maxAttempts it stays FAILED (recorded in the registry), and the instance itself is fine.
      await new Promise((r) => setTimeout(r, 1500));
      expect(supervisor.session('5511999990000')!.status).toBe('FAILED');
      expect(await fleet.owner('5511999990000')).toMatchObject({ owner: 'wa-1', status: 'FAILED', live: true });
      expect(fleet.state).toBe('active');
      expect(fleet.stats().renewalFailures).toBe(0);
      console.log(
        `wwebjs offline: FAILED x3, relaunch gaps ${gaps.map((g) => `${g} ms`).join(', ')}; reason "${failures[0]!.reason.slice(0, 80)}"`,
      );
      // No browser is left behind by the failed runs.
      await waitUntil(
        () => {
          try {
            return !execFileSync('pgrep', ['-f', `user-data-dir=${dataPath}`])
              .toString()
              .trim();
          } catch {
            return true;
          }
        },
        { timeoutMs: 5000, message: 'a Chromium of a failed run is still running' },
      );
    },
  );
});
