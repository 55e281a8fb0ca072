import type { Registry } from 'prom-client';

const attached = new WeakMap<Registry, WeakSet<object>>();

/** True the first time `source` is attached to `registry`: prom-client refuses a metric name registered twice. */
export function attachOnce(registry: Registry, source: object): boolean {
  const seen = attached.get(registry) ?? new WeakSet<object>();
  attached.set(registry, seen);
  if (seen.has(source)) return false;
  seen.add(source);
  return true;
}
