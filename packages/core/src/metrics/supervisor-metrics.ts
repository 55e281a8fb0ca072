import type { Registry } from 'prom-client';
import { SESSION_STATUSES } from '@wafleet/protocol';
import { optionalPeer } from '../http/optional-peer.js';
import { FAILURE_CLASSES } from '../supervisor/failures.js';
import type { Supervisor } from '../supervisor/supervisor.js';
import { attachOnce, scrapedCounter, scrapedGauge } from './metric-helpers.js';

/**
 * Registers the supervisor's metrics on `registry`, once per registry and supervisor: failed runs by class, this
 * instance's sessions by status, restarts held by the start breaker, the breaker's state, browser memory, recycles
 * and sends. Label values come from closed sets only.
 * @throws ConfigError when prom-client (an optional peer dependency) is not installed
 * @example
 * createSupervisorMetrics(supervisor, registry);
 */
export function createSupervisorMetrics(supervisor: Pick<Supervisor, 'stats'>, registry: Registry): Registry {
  const { Gauge } = optionalPeer('prom-client', 'createSupervisorMetrics');
  if (!attachOnce(registry, supervisor)) return registry;
  const stats = () => supervisor.stats();
  scrapedCounter(
    registry,
    'wafleet_session_failures_total',
    'Failed session runs on this instance by class (crash, zombie, start deadline, ...)',
    () => stats().failures,
    {
      name: 'class',
      values: FAILURE_CLASSES,
    },
  );
  new Gauge({
    name: 'wafleet_supervised_sessions',
    help: 'Sessions this instance supervises, by status',
    labelNames: ['status'] as const,
    registers: [registry],
    collect() {
      const { statuses } = stats();
      for (const status of SESSION_STATUSES) this.set({ status }, statuses[status] ?? 0);
    },
  });
  scrapedGauge(registry, 'wafleet_restarts_held', 'Sessions whose restart waits because the start breaker is open', () => stats().held);
  scrapedGauge(registry, 'wafleet_start_breaker_open', '1 while the fleet-wide start breaker is open (as this instance saw it last)', () =>
    stats().breaker === 'open' ? 1 : 0,
  );
  scrapedCounter(
    registry,
    'wafleet_start_breaker_opened_total',
    'Times this instance opened the fleet-wide start breaker (one instance per opening)',
    () => stats().breakerOpened,
  );
  scrapedGauge(
    registry,
    'wafleet_browser_memory_bytes',
    'Resident memory of this instance’s browsers when last read',
    () => stats().memoryBytes,
  );
  scrapedCounter(
    registry,
    'wafleet_recycles_total',
    'Sessions handed off to recycle their browser, by reason (memory, age)',
    () => stats().recycles,
    {
      name: 'reason',
      values: ['memory', 'age'] as const,
    },
  );
  scrapedCounter(
    registry,
    'wafleet_sends_total',
    'Messages sent through supervisor.send by outcome (acknowledged, unacknowledged, failed, refused)',
    () => stats().sends,
    { name: 'outcome', values: ['acknowledged', 'unacknowledged', 'failed', 'refused'] as const },
  );
  return registry;
}
