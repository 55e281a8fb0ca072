import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { freePort, sleep } from '@wafleet/test-utils';
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

/** One keyed send of a load run: its outcome (an HTTP status or an error message), how long it took, its key. */
export interface KeyedResult {
  status: number | string;
  ms: number;
  key: string;
}

/**
 * Sends `total` keyed requests at one every `everyMs` without waiting for answers (a steady rate, as a backend does),
 * kills `victim` (SIGKILL) before send number `killAt`, and returns every outcome once all have settled.
 */
export async function pacedKeyedSends(
  total: number,
  everyMs: number,
  kill: { at: number; victim: InstanceProcess },
  send: (i: number, key: string) => Promise<{ status: number | string; ms: number }>,
): Promise<{ results: KeyedResult[]; killedAtMs: number }> {
  const results: KeyedResult[] = [];
  const inflight: Array<Promise<void>> = [];
  const started = performance.now();
  let killedAtMs = 0;
  for (let i = 0; i < total; i++) {
    const due = started + i * everyMs;
    if (performance.now() < due) await sleep(due - performance.now());
    if (i === kill.at) {
      void kill.victim.child.kill('SIGKILL');
      killedAtMs = performance.now() - started;
    }
    const key = randomUUID();
    inflight.push(send(i, key).then((r) => void results.push({ ...r, key })));
  }
  await Promise.all(inflight);
  return { results, killedAtMs };
}

/** Failures, keys executed twice (from the sends journal), keys never executed, and a one-line summary for the log. */
export function keyedOutcome(results: KeyedResult[], sendsFile: string) {
  const failures = results.filter((r) => r.status !== 201);
  const sends = sendsOf(sendsFile);
  const executed = new Set(sends.map((s) => s.key));
  const duplicates = duplicatedKeys(sends);
  const missing = results.filter((r) => r.status === 201 && !executed.has(r.key)).map((r) => r.key);
  const ms = results.map((r) => r.ms);
  const kinds = [...new Set(failures.map((f) => f.status))].join(', ');
  const summary = `failures ${failures.length}${failures.length ? ` (${kinds})` : ''}, duplicates ${duplicates.length}, p50 ${percentile(ms, 50).toFixed(1)} ms, p99 ${percentile(ms, 99).toFixed(0)} ms, slowest ${Math.max(...ms).toFixed(0)} ms`;
  return { failures, duplicates, missing, summary };
}
