import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, freePortPair } from './free-port.js';
import { sleep } from './sleep.js';
import { uniqueNamespace } from './unique-namespace.js';
import { waitUntil } from './wait-until.js';

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port }, () => server.close(() => resolve(true)));
  });
}

describe('freePort', () => {
  it('returns distinct ports that can be bound on 127.0.0.1', async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    expect(new Set(ports).size).toBe(3);
    for (const port of ports) expect(await bindable(port)).toBe(true);
  });

  it('freePortPair returns a port below 55536 whose bus port is free too', async () => {
    const { port, busPort } = await freePortPair();
    expect(port).toBeLessThan(55_536);
    expect(busPort).toBe(port + 10_000);
    expect(await bindable(port)).toBe(true);
    expect(await bindable(busPort)).toBe(true);
  });
});

describe('uniqueNamespace', () => {
  it('is registry-safe and unique per call', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) seen.add(uniqueNamespace('same'));
    expect(seen.size).toBe(1000);
    for (const ns of seen) expect(ns).toMatch(/^t-same-[a-z0-9]+$/);
  });

  it('sanitizes and truncates labels to at most 48 characters of [a-z0-9-]', () => {
    const cases = [undefined, '', 'Lease Expiry: fencing/epoch #2', '---', 'É'.repeat(10), 'x'.repeat(200)];
    for (const label of cases) {
      const ns = uniqueNamespace(label);
      expect(ns.length).toBeLessThanOrEqual(48);
      expect(ns).toMatch(/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/);
    }
    expect(uniqueNamespace('Lease Expiry: fencing/epoch #2')).toMatch(/^t-lease-expiry-fencing-epoch-2-[a-z0-9]+$/);
  });
});

describe('waitUntil', () => {
  it('resolves once the condition holds, polling async conditions', async () => {
    let calls = 0;
    await waitUntil(async () => ++calls >= 3, { intervalMs: 1 });
    expect(calls).toBe(3);
  });

  it('rejects with the given message on timeout, keeping the last error as cause', async () => {
    const err = await waitUntil(
      () => {
        throw new Error('not yet');
      },
      { timeoutMs: 50, message: 'never ready' },
    ).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('never ready');
    expect(((err as Error).cause as Error).message).toBe('not yet');
  });

  it('does not hang on a condition that never settles', async () => {
    const started = Date.now();
    await expect(waitUntil(() => new Promise<boolean>(() => {}), { timeoutMs: 100 })).rejects.toThrow(/100 ms/);
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});

describe('sleep', () => {
  it('waits at least the given time', async () => {
    const started = Date.now();
    await sleep(30);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
  });
});
