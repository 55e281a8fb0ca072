import type { Counter, Gauge, Registry } from 'prom-client';
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

/**
 * A counter whose cumulative value lives in its source (a `stats()`): read at scrape time. With `label`, one series
 * per value of a closed set, read as a record.
 */
export function scrapedCounter(registry: Registry, name: string, help: string, read: () => number): Counter;
export function scrapedCounter<K extends string>(
  registry: Registry,
  name: string,
  help: string,
  read: () => Record<K, number>,
  label: { name: string; values: readonly K[] },
): Counter;
export function scrapedCounter<K extends string>(
  registry: Registry,
  name: string,
  help: string,
  read: () => number | Record<K, number>,
  label?: { name: string; values: readonly K[] },
): Counter {
  const { Counter } = optionalPeer('prom-client', 'the wafleet metrics');
  return new Counter({
    name,
    help,
    labelNames: label ? [label.name] : [],
    registers: [registry],
    collect() {
      const value = read();
      this.reset();
      if (typeof value === 'number') this.inc(value);
      else for (const v of label!.values) this.inc({ [label!.name]: v }, value[v]);
    },
  });
}
