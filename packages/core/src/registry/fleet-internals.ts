// Core-internal: what core's own modules (guard, idempotency, router) read of a fleet beyond its public surface.
// The package entries (index.ts, http/index.ts) never export this module, so none of it is public API.
import type { Cluster, Redis } from 'ioredis';
import { ConfigError, type RegistryKeys } from '@wafleet/protocol';
import type { Fleet } from './fleet.js';
import type { ResolvedFleetOptions } from './options.js';

/** A fleet's validated options, keys and command connection. */
export interface FleetInternals {
  readonly options: ResolvedFleetOptions;
  readonly keys: RegistryKeys;
  /**
   * The fleet's command connection (never close it).
   * @throws StateError `WAFLEET_NOT_STARTED` before `start()`
   */
  redis(): Redis | Cluster;
}

const internals = new WeakMap<Fleet, FleetInternals>();

/** Called by the Fleet constructor, once per fleet. */
export function exposeFleetInternals(fleet: Fleet, value: FleetInternals): void {
  internals.set(fleet, value);
}

/**
 * The internals of a fleet made by `createFleet()`.
 * @throws ConfigError for anything else (e.g. a test double given to `fleetGuard`)
 */
export function fleetInternals(fleet: Fleet): FleetInternals {
  const found = internals.get(fleet);
  if (!found) throw new ConfigError('fleet', 'Expected a Fleet from createFleet()');
  return found;
}
