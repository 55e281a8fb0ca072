// Core-internal access between core's modules: what the guard, idempotency middleware and router read of a fleet
// beyond its public surface, and how a fleet gives its identity to the outbox it is given. The package entries
// (index.ts, http/index.ts) never export this module, so none of it is public API.
import type { Cluster, Redis } from 'ioredis';
import { ConfigError, type RegistryKeys } from '@wafleet/protocol';
import type { InstanceIdentity, Outbox } from './outbox/outbox.js';
import type { Fleet } from './registry/fleet.js';
import type { ResolvedFleetOptions } from './registry/options.js';

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

/** What a fleet does to the outbox it is given. */
export interface OutboxInternals {
  /**
   * Sends as `identity` from now on when the outbox was created without `instance`.
   * @throws ConfigError (`outbox`) when it sends as another instance
   */
  identify(identity: InstanceIdentity): void;
}

/** Values one class's constructor hands to core's other modules, keyed by the instance. */
function channel<T extends object, V>(option: string, expected: string) {
  const values = new WeakMap<T, V>();
  return {
    expose(target: T, value: V): void {
      values.set(target, value);
    },
    /** @throws ConfigError naming `option` for an object the constructor never saw (e.g. a test double) */
    of(target: T): V {
      const value = values.get(target);
      if (value === undefined) throw new ConfigError(option, expected);
      return value;
    },
  };
}

const fleets = channel<Fleet, FleetInternals>('fleet', 'Expected a Fleet from createFleet()');
const outboxes = channel<Outbox, OutboxInternals>('outbox', 'Expected `outbox` to be an Outbox from createOutbox()');

/** Called by the Fleet constructor. */
export const exposeFleetInternals = fleets.expose;
/** The internals of a Fleet from `createFleet()`; a ConfigError (`fleet`) for anything else. */
export const fleetInternals = fleets.of;
/** Called by the Outbox constructor. */
export const exposeOutboxInternals = outboxes.expose;
/** The internals of an Outbox from `createOutbox()`; a ConfigError (`outbox`) for anything else. */
export const outboxInternals = outboxes.of;
