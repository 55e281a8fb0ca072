import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { killAll } from './process-registry.js';
import { spawnProcess } from './spawn-process.js';
import { startRedis } from './start-redis.js';
import { waitUntil } from './wait-until.js';

const DIST_INDEX = fileURLToPath(new URL('../dist/index.js', import.meta.url));

/** False for gone or zombie processes (an orphaned zombie may wait for a reaper). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    // No /proc (macOS) or no such pid.
  }
  try {
    process.kill(pid, 0);
    return existsSync('/proc') ? false : true;
  } catch {
    return false;
  }
}

describe('killAll', () => {
  it('kills every server and child, paused ones included, and removes temp dirs', async () => {
    const a = await startRedis();
    const b = await startRedis({ appendonly: true });
    b.pause();
    const child = spawnProcess(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { name: 'idler' });
    const stopped = spawnProcess(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { name: 'stopped' });
    await stopped.kill('SIGSTOP');
    const pids = [a.pid, b.pid, child.pid, stopped.pid];
    expect(pids.every(running)).toBe(true);

    await killAll();

    expect(pids.filter(running)).toEqual([]);
    expect(existsSync(a.dir)).toBe(false);
    expect(existsSync(b.dir)).toBe(false);
    expect(child.alive()).toBe(false);
    expect(stopped.alive()).toBe(false);
    await a.stop(); // still safe afterwards
  });
});

// These run a separate Node process against the built package, because the
// hooks only fire when that process ends. `pnpm test` builds first.
describe('cleanup when the test process dies', () => {
  const scenarios: Array<[string, string, NodeJS.Signals | undefined]> = [
    ['process.exit() kills its redis-servers', 'process.exit(3);', undefined],
    ['an uncaught exception kills its redis-servers', "throw new Error('boom');", undefined],
    ['SIGTERM kills its redis-servers', 'setInterval(() => {}, 1000);', 'SIGTERM'],
  ];

  for (const [title, ending, signal] of scenarios) {
    it(title, async () => {
      expect(existsSync(DIST_INDEX), `${DIST_INDEX} missing: build @wafleet/test-utils first`).toBe(true);
      const script = `
        const { startRedis } = await import(${JSON.stringify(DIST_INDEX)});
        const server = await startRedis();
        server.pause();
        console.log(JSON.stringify({ pid: server.pid, dir: server.dir }));
        setTimeout(() => { ${ending} }, ${signal ? 0 : 50});
      `;
      const child = spawnProcess(process.execPath, ['--input-type=module', '-e', script], { name: 'doomed' });
      const info = await child.waitFor<{ pid: number; dir: string }>((m) => typeof m['pid'] === 'number');
      expect(running(info.pid)).toBe(true);
      if (signal) await child.kill(signal);
      const exit = await child.exited;
      expect(exit.signal).toBe(signal ?? null);
      await waitUntil(() => !running(info.pid), { timeoutMs: 5_000, message: `redis-server ${info.pid} survived` });
      expect(existsSync(info.dir)).toBe(false);
    });
  }
});
