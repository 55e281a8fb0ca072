import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnProcess } from '@wafleet/test-utils';
import { describe, expect, it } from 'vitest';
import { useTestRedis } from './helpers/fleet-harness.js';

const demo = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'demo', 'demo.mjs');
const redis = useTestRedis();

describe('examples/demo (the README’s first command)', () => {
  it('runs three instances, reports the adoption after kill -9 and the drain, and exits 0', async () => {
    const child = spawnProcess(process.execPath, [demo], { name: 'demo', env: { REDIS_URL: redis.url } });
    const exit = await child.exited;
    const out = child.lines.join('\n');
    expect(exit.code, out).toBe(0);
    expect(out).toMatch(/placed: (wa-\d=10 ?){3}/);
    const adopted = /all 10 adopted (\d+)-(\d+) ms after the kill/.exec(out);
    expect(adopted, out).not.toBeNull();
    // Default timing: the lease ran from the last renewal (up to one 1 s heartbeat before the kill), so adoption
    // comes no earlier than TTL 6 s + delay 1 s - 1 s after the kill, and within one more sweep after the bound.
    expect(Number(adopted![1])).toBeGreaterThanOrEqual(6000 - 50);
    expect(Number(adopted![2])).toBeLessThan(7000 + 1000 + 1000);
    expect(out).toMatch(/wa-1 drained: 15 handed off/);
    expect(out).toMatch(/done$/);
  }, 60_000);
});
