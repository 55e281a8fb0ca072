import { rename, stat } from 'node:fs/promises';
import {
  ConfigError,
  createLogger,
  describeValue as describe,
  validateSessionId,
  WafleetError,
  type WafleetErrorCode,
} from '@wafleet/protocol';
import { SESSION_DATA_UPLOAD_TIMEOUT_MS } from '../registry/fleet.js';
import { DataCorruptError } from './errors.js';
import { digestFile, newUploadId, removeFile, siblingTempPath } from './files.js';
import type { BlobBackend, BlobName, CommittedVersion, SessionDataFleet } from './types.js';

/** Options of {@link createSessionData}. */
export interface SessionDataOptions {
  /** Runs the fenced scripts: a `Fleet` from `createFleet()`, started. */
  fleet: SessionDataFleet;
  /** Where the bytes go: `redisBlobBackend`, `directoryBlobBackend`, or your own. */
  backend: BlobBackend;
  /** pino, winston or console-like (wrap it in `wafleetLogger` to choose how session ids appear). @default no logging */
  logger?: unknown;
  /** An upload not committed within this time is garbage, removed by a later commit of its session. @default 600000 */
  uploadTimeoutMs?: number;
}

/** A session's login data, saved and restored through the fenced commit protocol. */
export interface SessionData {
  /**
   * Uploads the file at `file` under a fresh name, then commits it: it becomes the version the next owner restores
   * only if this instance still owns the session at the epoch it began under, checked in Redis in the same script as
   * the registry. A refused commit removes the upload and rejects with LeaseLostError (`WAFLEET_LEASE_LOST`),
   * NotOwnerError (`WAFLEET_NOT_OWNER`) or `WAFLEET_DATA_UPLOAD_EXPIRED`. After the commit it removes the previous
   * version and this session's uploads abandoned for longer than `uploadTimeoutMs`.
   * @throws also DataTooLargeError, InvalidIdError, ConfigError (no such file; nothing written)
   */
  save(sessionId: string, file: string): Promise<CommittedVersion>;
  /**
   * Writes the newest committed version to `file` (atomically: a sibling temp file renamed into place) after
   * checking its size and SHA-256; null when nothing is committed.
   * @throws DataCorruptError (`WAFLEET_DATA_CORRUPT`; nothing written at `file`), InvalidIdError
   */
  restore(sessionId: string, file: string): Promise<CommittedVersion | null>;
  /** The committed version, or null. */
  current(sessionId: string): Promise<CommittedVersion | null>;
  /**
   * Removes the session's data (pointer and bytes): only when the registry has no record of it or its desired state
   * is 'stopped' (logged out, stopped by request).
   * @throws OwnedElsewhereError when the session should run
   */
  drop(sessionId: string): Promise<void>;
}

/** Refusals after which the upload is certainly not committed, so its bytes may go. */
const REFUSED: ReadonlySet<WafleetErrorCode> = new Set([
  'WAFLEET_LEASE_LOST',
  'WAFLEET_NOT_OWNER',
  'WAFLEET_NOT_FOUND',
  'WAFLEET_DATA_UPLOAD_EXPIRED',
]);

/** How many times a restore follows a pointer that moved while it read (a commit removes the version it replaces). */
const RESTORE_ATTEMPTS = 3;

/**
 * Fenced session data: large bytes go to the backend under a fresh name, and a Redis script swaps the session's
 * pointer only for the owner at its epoch, so a stale owner's late save never replaces a newer one and a crash
 * mid-upload leaves the previous version in place.
 * @example
 * const data = createSessionData({ fleet, backend: redisBlobBackend({ redis, namespace: fleet.namespace }) });
 * await data.restore('5511999990000', '/data/RemoteAuth-5511999990000.zip'); // before the browser starts
 * await data.save('5511999990000', '/data/RemoteAuth-5511999990000.zip');    // while the lease is held
 */
export function createSessionData(options: SessionDataOptions): SessionData {
  const { fleet, backend } = options ?? ({} as SessionDataOptions);
  const uploadTimeoutMs = options?.uploadTimeoutMs ?? SESSION_DATA_UPLOAD_TIMEOUT_MS;
  if (!fleet || typeof fleet.commitSessionData !== 'function') {
    throw new ConfigError('fleet', `Expected \`fleet\` to be a Fleet from createFleet(), got ${describe(fleet)}`);
  }
  if (!backend || typeof backend.put !== 'function' || typeof backend.get !== 'function' || typeof backend.remove !== 'function') {
    throw new ConfigError('backend', `Expected \`backend\` to have put, get and remove methods, got ${describe(backend)}`);
  }
  if (!Number.isSafeInteger(uploadTimeoutMs) || uploadTimeoutMs < 1000) {
    throw new ConfigError(
      'uploadTimeoutMs',
      `Expected \`uploadTimeoutMs\` to be an integer of at least 1000, got ${describe(uploadTimeoutMs)}`,
    );
  }
  const log = createLogger(options.logger, 'session-data');

  /** Best effort: bytes that nothing points to are only wasted space, never wrong data. */
  const removeQuietly = async (name: BlobName, why: string) => {
    try {
      await backend.remove(name);
    } catch (err) {
      log.warn('session data not removed; it is unreferenced', { sessionId: name.sessionId, backend: backend.kind, why, err });
    }
  };

  return {
    async save(sessionId, file) {
      validateSessionId(sessionId);
      const before = await statFile(file);
      const uploadId = newUploadId();
      const name = { sessionId, uploadId };
      const { epoch } = await fleet.beginSessionData(sessionId, uploadId);
      let commit;
      let committing = false;
      try {
        const { size, sha256 } = await digestFile(file);
        await backend.put(name, file);
        const after = await statFile(file);
        if (after.size !== size || after.mtimeMs !== before.mtimeMs) {
          throw new WafleetError('WAFLEET_DATA_CORRUPT', `The file of session ${sessionId} changed while it was saved; save it again`);
        }
        committing = true;
        commit = await fleet.commitSessionData(sessionId, { epoch, uploadId, size, sha256, uploadTimeoutMs });
      } catch (err) {
        const refused = err instanceof WafleetError && REFUSED.has(err.code);
        if (refused) log.warn('session data save refused', { sessionId, code: err.code });
        // A commit whose outcome is unknown (Redis unreachable mid-call) may have landed: keep its bytes. If it did
        // not, the pending upload is garbage that a later commit collects.
        if (!committing || refused) await removeQuietly(name, 'upload not committed');
        throw err;
      }
      const stale = [commit.previousUploadId, ...commit.garbage].filter((id) => id !== '' && id !== uploadId);
      await Promise.all(stale.map((id) => removeQuietly({ sessionId, uploadId: id }, 'replaced or abandoned')));
      log.info('session data saved', { sessionId, version: commit.committed.version, size: commit.committed.size, backend: backend.kind });
      return commit.committed;
    },

    async restore(sessionId, file) {
      validateSessionId(sessionId);
      for (let attempt = 1; ; attempt++) {
        const current = await fleet.sessionData(sessionId);
        if (!current) return null;
        const tmp = siblingTempPath(file, 'wafleet-restore');
        try {
          await backend.get({ sessionId, uploadId: current.uploadId }, tmp);
          const got = await digestFile(tmp);
          if (got.size !== current.size || got.sha256 !== current.sha256) {
            throw new DataCorruptError(
              sessionId,
              `Version ${current.version} of session ${sessionId} read back ${got.size} bytes with another SHA-256 than the ${current.size} committed`,
            );
          }
          await rename(tmp, file);
          log.info('session data restored', { sessionId, version: current.version, size: current.size, backend: backend.kind });
          return current;
        } catch (err) {
          await removeFile(tmp);
          // A commit replaced (and removed) the version while it was read: follow the new pointer.
          const moved = attempt < RESTORE_ATTEMPTS && (await fleet.sessionData(sessionId))?.uploadId !== current.uploadId;
          if (moved) continue;
          if (err instanceof DataCorruptError)
            log.error('session data corrupt', { sessionId, version: current.version, backend: backend.kind });
          throw err;
        }
      }
    },

    current(sessionId) {
      return fleet.sessionData(sessionId);
    },

    async drop(sessionId) {
      const dropped = await fleet.dropSessionData(sessionId);
      const ids = [dropped.previousUploadId, ...dropped.uploads].filter((id) => id !== '');
      await Promise.all(ids.map((id) => removeQuietly({ sessionId, uploadId: id }, 'dropped')));
      log.info('session data dropped', { sessionId, versions: ids.length });
    },
  };
}

async function statFile(file: string): Promise<{ size: number; mtimeMs: number }> {
  try {
    const s = await stat(file);
    if (s.isFile()) return s;
  } catch {
    // reported below
  }
  throw new ConfigError('file', `Expected \`file\` to be a readable regular file, got ${describe(file)}`);
}
