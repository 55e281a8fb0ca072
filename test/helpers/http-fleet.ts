import { existsSync, readFileSync } from 'node:fs';
import { freePort } from '@wafleet/test-utils';
import { startInstance, type InstanceConfig, type InstanceProcess } from './fleet-harness.js';

/** One execution of the fixture's "WhatsApp send", from its `sends` journal. */
export interface SendRecord {
  instance: string;
  session: string;
  key: string;
}

/** Starts an instance serving HTTP on a free loopback port (its registered URL), with the given guard options. */
export async function startHttpInstance(
  base: { redis: string; namespace: string; sends: string; launchMs?: number },
  instanceId: string,
  http: Omit<NonNullable<InstanceConfig['http']>, 'port' | 'sends'> = {},
): Promise<InstanceProcess & { url: string }> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const instance = await startInstance({
    redis: base.redis,
    namespace: base.namespace,
    instanceId,
    maxSessions: 50,
    url,
    launchMs: base.launchMs,
    http: { port, sends: base.sends, ...http },
  });
  return Object.assign(instance, { url });
}

export function sendsOf(path: string): SendRecord[] {
  return existsSync(path)
    ? readFileSync(path, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as SendRecord)
    : [];
}

/** Keys executed more than once. */
export function duplicatedKeys(sends: SendRecord[]): string[] {
  const count = new Map<string, number>();
  for (const s of sends) count.set(s.key, (count.get(s.key) ?? 0) + 1);
  return [...count].filter(([, n]) => n > 1).map(([key]) => key);
}

/** The value below which `p` percent of `values` lie (nearest rank). */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}
