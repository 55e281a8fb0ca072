import type { Registry } from 'prom-client';
import { SESSION_STATUSES } from '@wafleet/protocol';
import { optionalPeer } from '../http/optional-peer.js';
import { FAILURE_CLASSES } from '../supervisor/failures.js';
import type { Supervisor } from '../supervisor/supervisor.js';
import { attachOnce, scrapedGauge } from './metric-helpers.js';

/**
 * Registers the supervisor's metrics on `registry`, once per registry and supervisor: failed runs by class, this
 * instance's sessions by status, restarts held by the start breaker, the breaker's state, browser memory and recycles.
 * Label values come from closed sets only.
 * @throws ConfigError when prom-client (an optional peer dependency) is not installed
 * @example
 * createSupervisorMetrics(supervisor, registry);
 */
export function createSupervisorMetrics(supervisor: Pick<Supervisor, 'stats'>, registry: Registry): Registry {
  const { Counter, Gauge } = optionalPeer('prom-client', 'createSupervisorMetrics');
  if (!attachOnce(registry, supervisor)) return registry;
  const registers = [registry];
  new Counter({
    name: 'wafleet_session_failures_total',
    help: 'Failed session runs on this instance by class (crash, zombie, start deadline, ...)',
    labelNames: ['class'] as const,
    registers,
    collect() {
      const { failures } = supervisor.stats();
      this.reset();
      for (const c of FAILURE_CLASSES) this.inc({ class: c }, failures[c]);
    },
  });
  new Gauge({
    name: 'wafleet_supervised_sessions',
    help: 'Sessions this instance supervises, by status',
    labelNames: ['status'] as const,
    registers,
    collect() {
      const { statuses } = supervisor.stats();
      for (const status of SESSION_STATUSES) this.set({ status }, statuses[status] ?? 0);
    },
  });
  scrapedGauge(
    registry,
    'wafleet_restarts_held',
    'Sessions whose restart waits because the start breaker is open',
    () => supervisor.stats().held,
  );
  scrapedGauge(registry, 'wafleet_start_breaker_open', '1 while the fleet-wide start breaker is open (as this instance saw it last)', () =>
    supervisor.stats().breaker === 'open' ? 1 : 0,
  );
  new Counter({
    name: 'wafleet_start_breaker_opened_total',
    help: 'Times this instance opened the fleet-wide start breaker (one instance per opening)',
    registers,
    collect() {
      this.reset();
      this.inc(supervisor.stats().breakerOpened);
    },
  });
  scrapedGauge(
    registry,
    'wafleet_browser_memory_bytes',
    'Resident memory of this instance’s browsers when last read',
    () => supervisor.stats().memoryBytes,
  );
  new Counter({
    name: 'wafleet_recycles_total',
    help: 'Sessions handed off to recycle their browser, by reason (memory, age)',
    labelNames: ['reason'] as const,
    registers,
    collect() {
      const { recycles } = supervisor.stats();
      this.reset();
      for (const reason of ['memory', 'age'] as const) this.inc({ reason }, recycles[reason]);
    },
  });
  new Counter({
    name: 'wafleet_sends_total',
    help: 'Messages sent through supervisor.send by outcome (acknowledged, unacknowledged, failed, refused)',
    labelNames: ['outcome'] as const,
    registers,
    collect() {
      const { sends } = supervisor.stats();
      this.reset();
      for (const outcome of ['acknowledged', 'unacknowledged', 'failed', 'refused'] as const) this.inc({ outcome }, sends[outcome]);
    },
  });
  return registry;
}
