import type { Registry } from 'prom-client';
import type { Fleet, FleetState } from '../registry/fleet.js';
import { optionalPeer } from '../http/optional-peer.js';
import { performance } from 'node:perf_hooks';
import { FENCE_REASONS, readFleetCensus, type FleetCensus } from '@wafleet/protocol';
import { fleetInternals } from '../internals.js';
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
  scrapedCounter(
    registry,
    'wafleet_fenced_sessions_total',
    'Sessions this instance had to stop because it could not prove ownership, by reason',
    () => fleet.stats().fencedByReason,
    { name: 'reason', values: FENCE_REASONS },
  );
  counter(
    'wafleet_sweeps_total',
    'Sweeps this instance ran (the fleet runs one per sweep interval, by whichever renews first)',
    () => fleet.stats().sweeps,
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
  counter(
    'wafleet_registry_eras_total',
    'New registry eras this instance saw (Redis failed over, restarted from its files or lost its data): its sessions re-asserted',
    () => fleet.stats().newEras,
  );
  scrapedCounter(
    registry,
    'wafleet_replica_acks_total',
    'Session starts that waited for a replica to have their grant (WAIT 1), by result (timeout: started anyway)',
    () => fleet.stats().replicaAcks,
    { name: 'result', values: ['acked', 'timeout'] as const },
  );
  const { Histogram } = optionalPeer('prom-client', 'createFleetMetrics');
  const handoffSeconds = new Histogram({
    name: 'wafleet_handoff_duration_seconds',
    help: 'Handoffs from this instance (drain, recycle, rebalance): engine stop, login save and release',
    labelNames: ['outcome'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20],
    registers,
  });
  fleet.on('handoff', ({ outcome, durationMs }) => handoffSeconds.observe({ outcome }, durationMs / 1000));
  const adoptionSeconds = new Histogram({
    name: 'wafleet_adoption_delay_seconds',
    help: 'Sessions this instance’s sweeps adopted: from the dead owner’s lease deadline to the new assignment',
    buckets: [0.25, 0.5, 1, 2, 3, 5, 10, 30, 60],
    registers,
  });
  fleet.on('adopted', ({ delaysMs }) => {
    for (const ms of delaysMs) adoptionSeconds.observe(ms / 1000);
  });
  fleetGauges(fleet, registry);
  return registry;
}

/** How long one census serves the scrapes of the fleet-wide gauges. */
const CENSUS_MAX_AGE_MS = 10_000;

/**
 * The fleet-wide gauges (`wafleet_fleet_*`), exported by one instance only, so that a sum over instances never counts
 * the fleet twice: the live, managed, non-draining instance with the smallest id (no election; when it dies or
 * drains, the next one reports from its next scrape). It reads a census of the registry at most every 10 s.
 */
function fleetGauges(fleet: Fleet, registry: Registry): void {
  const { Gauge } = optionalPeer('prom-client', 'createFleetMetrics');
  let cached: { at: number; census: Promise<FleetCensus | undefined> } | undefined;
  const census = (): Promise<FleetCensus | undefined> => {
    if (cached && performance.now() - cached.at < CENSUS_MAX_AGE_MS) return cached.census;
    const next = (async () => {
      if (fleet.state !== 'active') return undefined;
      const { redis, keys } = fleetInternals(fleet);
      const instances = await fleet.instances();
      const reporter = instances
        .filter((i) => i.live && !i.draining && i.mode === 'managed')
        .map((i) => i.id)
        .sort()[0];
      return reporter === fleet.instanceId ? readFleetCensus(redis(), keys, instances) : undefined;
    })().catch(() => undefined);
    cached = { at: performance.now(), census: next };
    return next;
  };
  const gauge = <L extends string>(name: string, help: string, label: L, read: (c: FleetCensus) => Record<string, number>) =>
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      async collect() {
        const c = await census();
        this.reset();
        if (c) for (const [value, n] of Object.entries(read(c))) this.set({ [label]: value } as Record<L, string>, n);
      },
    });
  gauge('wafleet_fleet_sessions', 'Sessions in the whole fleet by recorded status (exported by one instance)', 'status', (c) => c.statuses);
  gauge(
    'wafleet_fleet_sessions_waiting',
    'Sessions of the whole fleet not running anywhere: ownerless (desired running, no live owner), pending (no instance had room), stopped (waiting for a human)',
    'reason',
    (c) => ({ ownerless: c.ownerless, pending: c.pending, stopped: c.stopped }),
  );
  gauge(
    'wafleet_fleet_instances',
    'Registered instances by state (live, draining, expired and not reaped yet)',
    'state',
    (c) => c.instances,
  );
  gauge('wafleet_fleet_capacity', 'maxSessions summed over the live instances, and the sessions they hold', 'kind', (c) => ({
    max: c.capacity,
    load: c.load,
  }));
}
