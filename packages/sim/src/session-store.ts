import { appendFileSync } from 'node:fs';
import { createSessionData, directoryBlobBackend, redisBlobBackend, type Fleet, type SessionData } from '@wafleet/core';
import { connect, disconnect, resolveRedisOption, type RedisOption } from '@wafleet/protocol';
import type { SimLoginEvent } from './sim-engine.js';

/** Where the runner keeps logins: chunks in the fleet's Redis, or files in a directory every instance shares. */
export type SessionStoreSpec = { kind: 'redis' } | { kind: 'dir'; dir: string };

/** A SessionData over the chosen backend, and how to close what it opened. */
export interface OpenSessionStore {
  readonly sessionData: SessionData;
  close(): Promise<void>;
}

/** Opens the store for `fleet` (whose ownership fences every commit). */
export function openSessionStore(spec: SessionStoreSpec, fleet: Fleet, redis: RedisOption, namespace: string): OpenSessionStore {
  if (spec.kind === 'dir') {
    return { sessionData: createSessionData({ fleet, backend: directoryBlobBackend({ dir: spec.dir }) }), close: async () => undefined };
  }
  // Its own connection: chunk transfers never queue in front of the fleet's registry commands.
  const connection = connect(resolveRedisOption(redis), 'command', { commandTimeoutMs: 10_000, heartbeatIntervalMs: 1000 });
  const { client } = connection;
  return {
    sessionData: createSessionData({ fleet, backend: redisBlobBackend({ redis: client, namespace }) }),
    close: () => disconnect(connection),
  };
}

/**
 * One JSON line per login restore and save, appended synchronously: a restore is on disk before the engine
 * authenticates, a save right after its commit, so kill -9 loses neither.
 */
export function loginJournal(file: string | undefined, instance: string): ((event: SimLoginEvent) => void) | undefined {
  if (!file) return undefined;
  return (event) => {
    const { ev, sessionId, epoch, ...rest } = event;
    const { durationMs, ...more } = rest as { durationMs?: number };
    const version = 'version' in rest ? rest.version : null;
    const line = {
      t: Date.now(),
      instance,
      session: sessionId,
      ev,
      epoch,
      ...more,
      version,
      ...(durationMs === undefined ? {} : { ms: durationMs }),
    };
    appendFileSync(file, `${JSON.stringify(line)}\n`);
  };
}
