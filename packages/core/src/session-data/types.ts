/** Names one uploaded version of a session's data. Every upload has a fresh `uploadId`: nothing is overwritten. */
export interface BlobName {
  readonly sessionId: string;
  readonly uploadId: string;
}

/**
 * Where the bytes of a session's data versions live (Redis chunks, a shared directory, a third-party RemoteAuth store).
 * A backend only stores bytes under fresh names; which version counts is decided by the fenced commit in Redis.
 */
export interface BlobBackend {
  /** For logs and metrics: `'redis'`, `'directory'`, `'remote-auth-store'`, ... */
  readonly kind: string;
  /** Stores the bytes of the file at `file` under `name` (never an existing name). */
  put(name: BlobName, file: string): Promise<void>;
  /** Writes the bytes stored under `name` to `file`; rejects (e.g. `WAFLEET_DATA_CORRUPT`) when there are none. */
  get(name: BlobName, file: string): Promise<void>;
  /** Removes what is stored under `name`, also a partial upload. Idempotent. */
  remove(name: BlobName): Promise<void>;
}

/** The version of a session's data that the next owner restores. */
export interface CommittedVersion {
  sessionId: string;
  /** 1 for the first commit, then +1 per commit. */
  version: number;
  uploadId: string;
  /** Bytes. */
  size: number;
  /** SHA-256 of the bytes, 64 hex digits. */
  sha256: string;
  /** The epoch the writer owned the session under (a decimal string). */
  epoch: string;
  /** Instance id of the writer. */
  writer: string;
  /** Redis server time of the commit (ms since the epoch). */
  committedAt: number;
}

/** What `Fleet.commitSessionData` is asked to commit. */
export interface SessionDataUpload {
  /** The epoch `beginSessionData` returned: the fencing token. */
  epoch: string;
  uploadId: string;
  size: number;
  sha256: string;
  /** This session's uploads begun longer ago are garbage, handed back to be removed. @default 600000 */
  uploadTimeoutMs?: number;
}

/** Result of `Fleet.commitSessionData`. */
export interface SessionDataCommit {
  committed: CommittedVersion;
  /** Upload id of the version this commit replaced, '' when none: remove its bytes. */
  previousUploadId: string;
  /** Upload ids of this session's abandoned uploads (older than the upload timeout): remove their bytes. */
  garbage: string[];
}

/** Result of `Fleet.dropSessionData`: upload ids whose bytes the caller removes. */
export interface SessionDataDrop {
  /** The version that was current, '' when none. */
  previousUploadId: string;
  /** Uploads that were begun and not committed. */
  uploads: string[];
}

/**
 * What session data needs of a fleet (`Fleet` from `createFleet()` has it): the fenced scripts run with the
 * instance's id and incarnation, which only the fleet holds.
 */
export interface SessionDataFleet {
  readonly namespace: string;
  /** The epoch under which this instance owns `sessionId`, or undefined. */
  epochOf(sessionId: string): string | undefined;
  beginSessionData(sessionId: string, uploadId: string): Promise<{ epoch: string; startedAt: number }>;
  commitSessionData(sessionId: string, upload: SessionDataUpload): Promise<SessionDataCommit>;
  sessionData(sessionId: string): Promise<CommittedVersion | null>;
  dropSessionData(sessionId: string): Promise<SessionDataDrop>;
}
