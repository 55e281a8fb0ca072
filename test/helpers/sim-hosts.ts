import {
  createSessionData,
  createSupervisor,
  directoryBlobBackend,
  type Fleet,
  type FleetOptions,
  type Supervisor,
  type SupervisorOptions,
} from '@wafleet/core';
import { createSimEngine, type SimEngine, type SimEngineOptions, type SimLoginEvent } from '@wafleet/sim';
import { recordRuns, type EngineRuns } from './engine-runs.js';
import { testFleet } from './fleet-harness.js';

/** An in-process instance: fleet, supervisor and simulated engine. */
export interface SimHost {
  id: string;
  fleet: Fleet;
  supervisor: Supervisor;
  sim: SimEngine;
}

/**
 * Starts an in-process instance whose simulated sessions keep a 1 KiB login in `dataDir` (shared by the hosts of a
 * test), journals its engine runs into `runs` and its login events into `logins`; `close` gets what to close.
 */
export async function startSimHost(options: {
  redisUrl: string;
  namespace: string;
  id: string;
  dataDir: string;
  runs: EngineRuns;
  close: (fn: () => Promise<unknown>) => void;
  logins?: Array<SimLoginEvent & { host: string }>;
  fleet?: Partial<FleetOptions>;
  supervisor?: Partial<SupervisorOptions>;
  sim?: Omit<SimEngineOptions, 'login'>;
}): Promise<SimHost> {
  const { id, logins } = options;
  const fleet = testFleet(options.redisUrl, options.namespace, id, options.fleet);
  const sim = createSimEngine({
    ...options.sim,
    login: {
      store: createSessionData({ fleet, backend: directoryBlobBackend({ dir: options.dataDir }) }),
      writer: id,
      bytes: 1024,
      ...(logins ? { onEvent: (event: SimLoginEvent) => logins.push({ ...event, host: id }) } : {}),
    },
  });
  const supervisor = createSupervisor({ fleet, engine: sim.factory, onEngine: recordRuns(options.runs, id), ...options.supervisor });
  await fleet.start();
  supervisor.start();
  options.close(() => fleet.close());
  options.close(() => supervisor.close());
  return { id, fleet, supervisor, sim };
}
