import path from 'node:path';
import { ConfigError, WafleetError, createLogger } from '@wafleet/core';
import type { Store } from 'whatsapp-web.js';

/** Who may write a session's backup right now; `fleet.owns(sessionId)` from `@wafleet/core` fits. */
export interface OwnershipGuard {
  owns(sessionId: string): boolean;
}

/** Options of {@link createFencedStore}. */
export interface FencedStoreOptions {
  /**
   * Maps the basename of RemoteAuth's `session` argument (`"RemoteAuth-<clientId>"`) to the wafleet session id the
   * guard knows. Needed when the session id holds characters that RemoteAuth's `clientId` refuses (`/^[-_\w]+$/`).
   * @default strips the `RemoteAuth-` prefix
   */
  sessionIdOf?: (remoteAuthSessionName: string) => string;
  /** pino, winston or console-like; a refused write is logged at `warn`. @default no logging */
  logger?: unknown;
}

/**
 * A `save` or `delete` of a session backup was refused because this instance does not own the session (any more).
 * The inner store was not called.
 */
export class FencedWriteError extends WafleetError {
  constructor(
    readonly operation: 'save' | 'delete',
    readonly sessionId: string,
  ) {
    super('WAFLEET_LEASE_LOST', `Refused to ${operation} the backup of session ${sessionId}: this instance does not own it`);
  }
}

const PREFIX = 'RemoteAuth-';

function stripPrefix(name: string): string {
  return name.startsWith(PREFIX) ? name.slice(PREFIX.length) : name;
}

/**
 * @deprecated Check-then-act: the ownership check runs before the write starts, so a save that began while the lease
 * was valid can land after another instance adopted the session and overwrite its newer login. Use
 * `createRemoteAuthStore({ sessionData })` with `remoteAuthStoreBackend(store, { scratchDir })` as the session data's
 * backend: the commit is fenced where the data lands. Kept for hosts that upgrade, removed in the next minor version.
 *
 * Wraps a RemoteAuth store so that `save` and `delete` reach it only while `guard.owns(sessionId)` holds; otherwise
 * they reject with {@link FencedWriteError} (`code: 'WAFLEET_LEASE_LOST'`). `sessionExists` and `extract` pass through.
 *
 * RemoteAuth deletes the backup on CONFLICT, UNPAIRED and other terminal states; without the fence a stale owner that
 * loses the socket to the new owner wipes the backup the new owner restores from. Note that RemoteAuth calls `save`
 * from a timer without catching: a refused periodic backup surfaces as an `unhandledRejection` in the host.
 * @example
 * const store = createFencedStore(myS3Store, fleet);
 * const client = new Client({ authStrategy: new RemoteAuth({ store, clientId: sessionId, backupSyncIntervalMs: 300_000 }) });
 */
export function createFencedStore(store: Store, guard: OwnershipGuard, options: FencedStoreOptions = {}): Store {
  if (typeof guard?.owns !== 'function') throw new ConfigError('guard', 'Expected `guard` to have an owns(sessionId) method');
  const sessionIdOf = options.sessionIdOf ?? stripPrefix;
  const log = createLogger(options.logger, 'session-store');

  // save receives "<dataPath>/RemoteAuth-<id>" in 1.34.6 (PR #3375) but the bare name again in 1.34.7; the others the name.
  const fenced =
    (operation: 'save' | 'delete') =>
    async (args: { session: string }): Promise<unknown> => {
      const sessionId = sessionIdOf(path.basename(args.session));
      if (!guard.owns(sessionId)) {
        log.warn('session backup write refused: not the owner', { sessionId, operation });
        throw new FencedWriteError(operation, sessionId);
      }
      return store[operation](args);
    };

  return {
    sessionExists: (args) => store.sessionExists(args),
    extract: (args) => store.extract(args),
    save: fenced('save'),
    delete: fenced('delete'),
  };
}
