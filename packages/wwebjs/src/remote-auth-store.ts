import path from 'node:path';
import { ConfigError, createLogger, type SessionData, type WafleetError } from '@wafleet/core';
import type { Store } from 'whatsapp-web.js';

/** The part of a `SessionData` (from `createSessionData()` in `@wafleet/core`) the store drives. */
export type SessionDataLike = Pick<SessionData, 'save' | 'restore' | 'current' | 'drop'>;

/** Options of {@link createRemoteAuthStore}. */
export interface RemoteAuthStoreOptions {
  /** The session's fenced data (`createSessionData()` from `@wafleet/core`). */
  sessionData: SessionDataLike;
  /**
   * RemoteAuth's `dataPath` (the same value, resolved against the process's working directory as RemoteAuth does):
   * whatsapp-web.js 1.34.7 hands `save` only the session's name, and its zip lies in this directory.
   */
  dataPath: string;
  /**
   * Maps RemoteAuth's session name (`"RemoteAuth-<clientId>"`) to the wafleet session id. Needed when session ids
   * hold characters that RemoteAuth's `clientId` refuses (`/^[-_\w]+$/`).
   * @default strips the `RemoteAuth-` prefix
   */
  sessionIdOf?: (remoteAuthSessionName: string) => string;
  /** pino, winston or console-like; refused writes are logged at `warn`, kept backups at `info`. @default no logging */
  logger?: unknown;
}

/** Errors meaning "this instance may not write this session's data": the storage side refused, nothing changed. */
const REFUSED = new Set([
  'WAFLEET_LEASE_LOST',
  'WAFLEET_NOT_OWNER',
  'WAFLEET_NOT_FOUND',
  'WAFLEET_OWNED_ELSEWHERE',
  // The upload outlived `uploadTimeoutMs` or the session was dropped meanwhile: it is garbage, never committed.
  'WAFLEET_DATA_UPLOAD_EXPIRED',
]);

const PREFIX = 'RemoteAuth-';

function stripPrefix(name: string): string {
  return name.startsWith(PREFIX) ? name.slice(PREFIX.length) : name;
}

function refused(error: unknown): boolean {
  return REFUSED.has((error as WafleetError | undefined)?.code ?? '');
}

/**
 * A whatsapp-web.js RemoteAuth `Store` on wafleet's fenced session data: a backup becomes the one the next owner
 * restores only if the fleet still owns the session at commit time, and a crash mid-save leaves the previous version.
 *
 * - `save` never rejects because of a refused commit (RemoteAuth calls it from a timer without catching): the refusal
 *   is logged and the newer owner's version stays.
 * - `delete` removes the data only when the registry says the session should not run (desired `stopped`); on
 *   CONFLICT, UNPAIRED or any other refused state of a session that should run, it keeps the only backup. It never
 *   rejects (RemoteAuth calls it from the client's state handler without catching).
 * @example
 * const store = createRemoteAuthStore({ sessionData, dataPath: '.wwebjs_auth' });
 * new Client({ authStrategy: new RemoteAuth({ store, clientId: sessionId, dataPath: '.wwebjs_auth', backupSyncIntervalMs: 300_000 }) });
 */
export function createRemoteAuthStore(options: RemoteAuthStoreOptions): Store {
  const { sessionData } = options;
  for (const method of ['save', 'restore', 'current', 'drop'] as const) {
    if (typeof sessionData?.[method] !== 'function') {
      throw new ConfigError('sessionData', 'Expected `sessionData` to be a SessionData from createSessionData()');
    }
  }
  if (typeof options.dataPath !== 'string' || options.dataPath === '') {
    throw new ConfigError('dataPath', "Expected `dataPath` to be RemoteAuth's dataPath, a non-empty string");
  }
  const dataPath = path.resolve(options.dataPath);
  const sessionIdOf = options.sessionIdOf ?? stripPrefix;
  const log = createLogger(options.logger, 'remote-auth-store');
  const idOf = (session: string) => sessionIdOf(path.basename(session));
  // 1.34.6 hands save the absolute "<dataPath>/RemoteAuth-<id>", 1.34.7 the bare name; the zip is next to either.
  const zipOf = (session: string) => (path.isAbsolute(session) ? `${session}.zip` : path.join(dataPath, `${session}.zip`));

  return {
    async sessionExists({ session }) {
      return (await sessionData.current(idOf(session))) !== null;
    },
    async save({ session }) {
      const sessionId = idOf(session);
      try {
        const committed = await sessionData.save(sessionId, zipOf(session));
        log.debug('session data saved', { sessionId, version: committed.version, size: committed.size });
      } catch (error) {
        if (!refused(error)) throw error;
        log.warn('session data save refused: this instance does not own the session at its epoch', {
          sessionId,
          code: (error as WafleetError).code,
        });
      }
    },
    async extract({ session, path: file }) {
      const sessionId = idOf(session);
      const restored = await sessionData.restore(sessionId, file);
      if (!restored) throw new Error(`No committed session data for session ${sessionId} (removed since sessionExists?)`);
      log.info('session data restored', { sessionId, version: restored.version, size: restored.size });
    },
    async delete({ session }) {
      const sessionId = idOf(session);
      try {
        await sessionData.drop(sessionId);
        log.info('session data removed (the session is stopped)', { sessionId });
      } catch (error) {
        // RemoteAuth deletes from the client's state handler, without catching: a rejection here is unhandled.
        if (refused(error))
          log.info('session data kept: the session should still run (CONFLICT, UNPAIRED... are no logout)', { sessionId });
        else log.warn('session data not removed', { sessionId, err: error as Error });
      }
    },
  };
}
