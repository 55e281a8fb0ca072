import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ConfigError, describeValue as describe, validateSessionId } from '@wafleet/protocol';
import { DataCorruptError } from './errors.js';
import { checkUploadId, fsyncPath, removeFile } from './files.js';
import type { BlobBackend, BlobName } from './types.js';

/** Options of {@link directoryBlobBackend}. */
export interface DirectoryBlobBackendOptions {
  /**
   * The directory every instance that may own these sessions reaches: a shared volume (NFS, EFS) or a host path
   * shared by the instances of one machine. One subdirectory per session, one file per version.
   */
  dir: string;
}

/**
 * Stores session data versions as files in a shared directory: each upload is written to `<uploadId>.tmp`, flushed
 * (fsync), then renamed to `<uploadId>` and the directory flushed, so a crash never leaves a half-written version
 * under a final name. Which version counts is decided by the fenced commit, never by the files.
 * @example
 * const data = createSessionData({ fleet, backend: directoryBlobBackend({ dir: '/mnt/shared/wafleet-data' }) });
 */
export function directoryBlobBackend(options: DirectoryBlobBackendOptions): BlobBackend {
  const dir = options?.dir;
  if (typeof dir !== 'string' || dir.length === 0) {
    throw new ConfigError('dir', `Expected \`dir\` to be a non-empty path, got ${describe(dir)}`);
  }
  const root = resolve(dir);
  // Session ids are validated (no '/', no '.' first), so a session's folder never leaves `root`.
  const folder = (name: BlobName) => join(root, validateSessionId(name.sessionId));
  const finalPath = (name: BlobName) => join(folder(name), checkUploadId(name.uploadId));
  return {
    kind: 'directory',

    async put(name, file) {
      await mkdir(folder(name), { recursive: true });
      const tmp = `${finalPath(name)}.tmp`;
      await pipeline(createReadStream(file), createWriteStream(tmp, { flags: 'wx' }));
      await fsyncPath(tmp, 'r+');
      await rename(tmp, finalPath(name));
      await fsyncPath(folder(name));
    },

    async get(name, file) {
      try {
        await pipeline(createReadStream(finalPath(name)), createWriteStream(file));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        throw new DataCorruptError(name.sessionId, `The stored version ${name.uploadId} of session ${name.sessionId} is missing`, {
          cause: err,
        });
      }
    },

    async remove(name) {
      await Promise.all([removeFile(finalPath(name)), removeFile(`${finalPath(name)}.tmp`)]);
    },
  };
}
