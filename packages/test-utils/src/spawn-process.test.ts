import { afterAll, describe, expect, it } from 'vitest';
import { killAll } from './process-registry.js';
import { spawnProcess } from './spawn-process.js';

afterAll(killAll);

const ECHO_WORKER = `
const readline = require('node:readline');
console.log(JSON.stringify({ type: 'ready', pid: process.pid, env: process.env.WAFLEET_TEST ?? null, home: process.env.WAFLEET_DROP ?? null }));
console.log('plain text line');
console.log('[1, 2, 3]');
console.error('a stderr line');
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const msg = JSON.parse(line);
  console.log(JSON.stringify({ type: 'echo', got: msg }));
  if (msg.exit !== undefined) process.exit(msg.exit);
});
`;

function startWorker(env: Record<string, string | undefined> = {}) {
  return spawnProcess(process.execPath, ['-e', ECHO_WORKER], { name: 'echo-worker', env });
}

describe('spawnProcess', () => {
  it('collects stdout lines and keeps only JSON objects as messages', async () => {
    const child = startWorker();
    const ready = await child.waitFor<{ pid: number }>((m) => m['type'] === 'ready');
    expect(ready.pid).toBe(child.pid);
    await child.waitFor(() => true); // already received: resolves immediately
    await expect.poll(() => child.lines).toContain('[1, 2, 3]');
    expect(child.lines).toContain('plain text line');
    expect(child.messages.map((m) => m['type'])).toEqual(['ready']);
    await expect.poll(() => child.stderr()).toContain('a stderr line');
    await child.kill();
  });

  it('send writes JSON lines to stdin and waitFor sees the replies', async () => {
    const child = startWorker();
    child.send({ n: 1 });
    child.send({ n: 2 });
    const reply = await child.waitFor<{ got: { n: number } }>((m) => m['type'] === 'echo' && (m['got'] as { n: number }).n === 2);
    expect(reply.got).toEqual({ n: 2 });
    child.send({ exit: 7 });
    expect(await child.exited).toEqual({ code: 7, signal: null });
    expect(child.alive()).toBe(false);
    expect(() => child.send({ late: true })).toThrow(/cannot send/);
  });

  it('waitFor times out with the process name and its recent output', async () => {
    const child = startWorker();
    await child.waitFor((m) => m['type'] === 'ready');
    const err = await child.waitFor((m) => m['type'] === 'never', 200).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/echo-worker/);
    expect((err as Error).message).toMatch(/within 200 ms/);
    expect((err as Error).message).toContain('[stdout] plain text line');
    await child.kill();
  });

  it('waitFor rejects as soon as the process exits without a match', async () => {
    const child = spawnProcess(process.execPath, ['-e', 'console.log("bye"); process.exit(3)'], { name: 'quitter' });
    const started = Date.now();
    await expect(child.waitFor(() => false, 10_000)).rejects.toThrow(/quitter .*exited \(code 3/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('kill defaults to SIGKILL and waits for the exit', async () => {
    const child = startWorker();
    await child.waitFor((m) => m['type'] === 'ready');
    await child.kill();
    expect(child.alive()).toBe(false);
    expect(await child.exited).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('kill with SIGSTOP pauses without waiting and SIGTERM still ends a paused child', async () => {
    const child = startWorker();
    await child.waitFor((m) => m['type'] === 'ready');
    await child.kill('SIGSTOP');
    expect(child.alive()).toBe(true);
    await child.kill('SIGTERM');
    expect(await child.exited).toEqual({ code: null, signal: 'SIGTERM' });
  });

  it('env overrides are merged and undefined removes a variable', async () => {
    process.env['WAFLEET_DROP'] = 'inherited';
    try {
      const child = startWorker({ WAFLEET_TEST: 'yes', WAFLEET_DROP: undefined });
      const ready = await child.waitFor((m) => m['type'] === 'ready');
      expect(ready).toMatchObject({ env: 'yes', home: null });
      await child.kill();
    } finally {
      delete process.env['WAFLEET_DROP'];
    }
  });

  it('throws synchronously when the command does not exist', () => {
    expect(() => spawnProcess('/nonexistent/wafleet-binary', [])).toThrow(/could not start/);
  });
});
