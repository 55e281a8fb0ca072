import { existsSync } from 'node:fs';
import { copyFile, link, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, type BlobBackend, type BlobName } from '@wafleet/core';
import type { Store } from 'whatsapp-web.js';

/** Options of {@link remoteAuthStoreBackend}. */
export interface RemoteAuthStoreBackendOptions {
  /**
   * Where uploads are staged as `<sessionId>.<uploadId>.zip` for the store to read. The store sees the session
   * `path.join(scratchDir, "<sessionId>.<uploadId>")` and keys on it, so give every instance the same value; a
   * relative path resolves against the process's working directory, as community stores resolve `${session}.zip`.
   */
  scratchDir: string;
}

/**
 * A `BlobBackend` for `createSessionData()` over any community RemoteAuth store (wwebjs-mongo, S3 stores...): every
 * upload goes to the store under a fresh name (`<sessionId>.<uploadId>`), never over the version the next owner
 * restores, so the store gets wafleet's commit fencing (a stale owner's late upload is never committed, and is
 * removed). Replaces the check-then-act `createFencedStore` (deprecated).
 * @example
 * const sessionData = createSessionData({ fleet, backend: remoteAuthStoreBackend(new MongoStore({ mongoose }), { scratchDir: '.wafleet-scratch' }) });
 * const store = createRemoteAuthStore({ sessionData, dataPath: '.wwebjs_auth' });
 */
export function remoteAuthStoreBackend(store: Store, options: RemoteAuthStoreBackendOptions): BlobBackend {
  for (const method of ['sessionExists', 'save', 'extract', 'delete'] as const) {
    if (typeof store?.[method] !== 'function')
      throw new ConfigError('store', `Expected \`store\` to be a RemoteAuth store with ${method}()`);
  }
  if (typeof options?.scratchDir !== 'string' || options.scratchDir === '') {
    throw new ConfigError('scratchDir', 'Expected `scratchDir` to be a non-empty string');
  }
  const { scratchDir } = options;
  const sessionOf = (name: BlobName) => path.join(scratchDir, `${name.sessionId}.${name.uploadId}`);

  return {
    kind: 'remote-auth-store',
    async put(name, file) {
      const session = sessionOf(name);
      const staged = path.resolve(`${session}.zip`);
      await mkdir(path.dirname(staged), { recursive: true });
      await rm(staged, { force: true });
      // A hard link costs nothing; across file systems it is a copy.
      await link(file, staged).catch(() => copyFile(file, staged));
      try {
        await store.save({ session });
      } finally {
        await rm(staged, { force: true });
      }
    },
    async get(name, file) {
      await store.extract({ session: sessionOf(name), path: file });
      // Some community stores resolve without writing anything when the object is missing.
      if (!existsSync(file)) throw new Error(`The RemoteAuth store wrote nothing for ${name.sessionId}.${name.uploadId}`);
    },
    async remove(name) {
      const session = sessionOf(name);
      if (await store.sessionExists({ session })) await store.delete({ session });
    },
  };
}
