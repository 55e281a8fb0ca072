import type { Registry } from 'prom-client';
import type { Fleet, FleetState } from '../registry/fleet.js';
import { optionalPeer } from '../http/optional-peer.js';
import { attachOnce, scrapedCounter, scrapedGauge } from './metric-helpers.js';

const STATES: readonly FleetState[] = ['idle', 'starting', 'active', 'fenced', 'draining', 'closed'];

/**
 * Registers the fleet's metrics (prefix `wafleet_`) on `registry`, once per registry and fleet. Values are read
 * from the fleet when Prometheus scrapes; label values come from closed sets only (no session ids or URLs).
 * @throws ConfigError when prom-client (an optional peer dependency) is not installed
 * @example
 * const registry = new Registry();
 * createFleetMetrics(fleet, registry);
 */
export function createFleetMetrics(fleet: Fleet, registry: Registry): Registry {
  const { Gauge } = optionalPeer('prom-client', 'createFleetMetrics');
  if (!attachOnce(registry, fleet)) return registry;
  const registers = [registry];
  // Cumulative counters live in fleet.stats(); a collect() re-reads them at scrape time.
  const counter = (name: string, help: string, read: () => number) => scrapedCounter(registry, name, help, read);
  const gauge = (name: string, help: string, read: () => number) => scrapedGauge(registry, name, help, read);

  gauge('wafleet_sessions_owned', 'Sessions this instance owns, starting ones included', () => fleet.ownedSessions().size);
  gauge('wafleet_sessions_capacity', 'maxSessions of this instance', () => fleet.maxSessions);
  gauge('wafleet_lease_valid', '1 while this instance holds a lease it can prove', () => (fleet.leaseValid ? 1 : 0));
  gauge(
    'wafleet_heartbeat_gap_max_seconds',
    'Longest gap between two heartbeat attempts (process or event-loop stall)',
    () => fleet.stats().maxHeartbeatGapMs / 1000,
  );
  new Gauge({
    name: 'wafleet_instance_state',
    help: 'Lifecycle state of this instance (1 for the current state)',
    labelNames: ['state'] as const,
    registers,
    collect() {
      for (const state of STATES) this.set({ state }, fleet.state === state ? 1 : 0);
    },
  });
  scrapedCounter(
    registry,
    'wafleet_lease_renewals_total',
    'Lease renewals by result',
    () => ({ ok: fleet.stats().renewals, failed: fleet.stats().renewalFailures }),
    { name: 'result', values: ['ok', 'failed'] as const },
  );
  scrapedCounter(registry, 'wafleet_claims_total', 'Claims by this instance by result', () => fleet.stats().claims, {
    name: 'result',
    values: ['ok', 'refused', 'error'] as const,
  });
  counter(
    'wafleet_fenced_sessions_total',
    'Sessions this instance had to stop because it could not prove ownership',
    () => fleet.stats().fencedSessions,
  );
  counter(
    'wafleet_adoptions_total',
    'Sessions placed by this instance’s sweeps (adopted orphans and retried placements)',
    () => fleet.stats().sweepPlaced,
  );
  counter('wafleet_handoffs_total', 'Sessions handed off by drain or close', () => fleet.stats().handoffs);
  counter(
    'wafleet_reregistrations_total',
    'Times this instance registered a new incarnation after losing its lease',
    () => fleet.stats().reRegistrations,
  );
  return registry;
}
