import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep, spawnProcess, uniqueNamespace, waitUntil } from '@wafleet/test-utils';
import { describe, expect, it } from 'vitest';
import { journalPath, useTestRedis } from './helpers/fleet-harness.js';
import { keyedOutcome, pacedKeyedSends, startHttpInstance } from './helpers/http-fleet.js';

const redis = useTestRedis();

const HAPROXY = [process.env.HAPROXY, '/usr/sbin/haproxy', '/usr/local/sbin/haproxy', '/usr/bin/haproxy'].find(
  (p): p is string => !!p && existsSync(p),
);
if (!HAPROXY) console.warn('haproxy-forwarding: skipped, haproxy is not installed (apt-get install haproxy; .ci/run installs it)');

/**
 * A load balancer as it would stand in front of the fleet: round-robin, health checks on /readyz, and the retries
 * haproxy offers for requests it still holds (a refused connection, a connection closed without an answer, a 503):
 * safe here because every caller request carries an Idempotency-Key.
 */
function haproxyConfig(port: number, servers: Array<{ id: string; url: string }>): string {
  return [
    'global',
    '  maxconn 4096',
    'defaults',
    '  mode http',
    '  timeout connect 1s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  retries 3',
    '  option redispatch 1',
    '  option http-buffer-request',
    '  retry-on conn-failure empty-response 503',
    'frontend fleet',
    `  bind 127.0.0.1:${port}`,
    '  default_backend instances',
    'backend instances',
    '  balance roundrobin',
    '  option httpchk GET /readyz',
    '  default-server inter 200ms fall 1 rise 2',
    ...servers.map((s) => `  server ${s.id} ${new URL(s.url).host} check`),
    '',
  ].join('\n');
}

describe.skipIf(!HAPROXY)('forwarding behind haproxy (G5): a caller that knows one URL and no wafleet', () => {
  it('keyed sends through round-robin haproxy, one instance kill -9ed mid-run: 0 failed, 0 executed twice', async () => {
    const ids = Array.from({ length: 30 }, (_, i) => `lb-${i}`);
    const base = { redis: redis.url, namespace: uniqueNamespace('haproxy'), sends: journalPath('haproxy') };
    const instances = await Promise.all(['a', 'b', 'c'].map((id) => startHttpInstance(base, id, { forward: true, notWorking: 'wait' })));
    await instances[0]!.run('place', { ids });
    await waitUntil(() => instances.reduce((n, p) => n + p.events('assigned').length, 0) === ids.length, {
      message: 'sessions not placed',
    });

    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'wafleet-haproxy-'));
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, haproxyConfig(port, instances));
    const lb = spawnProcess(HAPROXY!, ['-db', '-f', cfg], { name: 'haproxy' });
    const lbUrl = `http://127.0.0.1:${port}`;
    await waitUntil(async () => (await fetch(`${lbUrl}/readyz`)).status === 200, { message: `haproxy did not come up: ${lb.stderr()}` });
    // All three servers passed their health checks (rise 2 at 200 ms).
    await sleep(600);

    const victim = instances[1]!;
    const total = 800;
    // A plain fetch, one attempt: no wafleet code and no retry on the caller side.
    const { results, killedAtMs } = await pacedKeyedSends(total, 10, { at: 200, victim }, async (i, key) => {
      const t0 = performance.now();
      try {
        const res = await fetch(`${lbUrl}/sessions/${ids[i % ids.length]!}/messages`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify({ text: `hello ${i}` }),
        });
        await res.arrayBuffer();
        return { status: res.status, ms: performance.now() - t0 };
      } catch (err) {
        return { status: (err as Error).message, ms: performance.now() - t0 };
      }
    });
    await lb.kill('SIGTERM');
    const { failures, duplicates, missing, summary } = keyedOutcome(results, base.sends);
    console.log(
      `haproxy forwarding: ${total} keyed sends (one fetch each) through haproxy round-robin over 3 instances, ${victim.id} kill -9ed ${killedAtMs.toFixed(0)} ms in; ${summary}`,
    );
    expect(failures).toEqual([]);
    expect(duplicates).toEqual([]);
    expect(missing).toEqual([]);
  });
});
