// The parts of @wafleet/core's session data (createSessionData, BlobBackend) this package uses, as narrow interfaces:
// any SessionData from core fits, and unit tests pass plain objects.

/** The name of one uploaded version: a fresh `uploadId` for every upload, so nothing is ever overwritten. */
export interface BlobName {
  readonly sessionId: string;
  readonly uploadId: string;
}

/** Where the bytes of one version live (core's `BlobBackend`). */
export interface BlobBackend {
  readonly kind: string;
  /** Stores the file at `file` under `name`. */
  put(name: BlobName, file: string): Promise<void>;
  /** Writes the bytes stored under `name` to `file`. */
  get(name: BlobName, file: string): Promise<void>;
  /** Removes what is stored under `name`; idempotent. */
  remove(name: BlobName): Promise<void>;
}

/** A committed version of a session's data, as core's `SessionData` reports it. */
export interface CommittedVersionLike {
  readonly version: number;
  readonly size: number;
}

/** The part of core's `SessionData` a RemoteAuth store drives. */
export interface SessionDataLike {
  save(sessionId: string, file: string): Promise<CommittedVersionLike>;
  restore(sessionId: string, file: string): Promise<CommittedVersionLike | null>;
  current(sessionId: string): Promise<CommittedVersionLike | null>;
  drop(sessionId: string): Promise<void>;
}
