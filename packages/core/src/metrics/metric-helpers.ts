import type { Gauge, Registry } from 'prom-client';
import { optionalPeer } from '../http/optional-peer.js';

const attached = new WeakMap<Registry, WeakSet<object>>();

/** True the first time `source` is attached to `registry`: prom-client refuses a metric name registered twice. */
export function attachOnce(registry: Registry, source: object): boolean {
  const seen = attached.get(registry) ?? new WeakSet<object>();
  attached.set(registry, seen);
  if (seen.has(source)) return false;
  seen.add(source);
  return true;
}

/** A gauge whose value is read from its source when Prometheus scrapes, so nothing has to keep it current. */
export function scrapedGauge(registry: Registry, name: string, help: string, read: () => number): Gauge {
  const { Gauge } = optionalPeer('prom-client', 'the wafleet metrics');
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}
