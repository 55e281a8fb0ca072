import { unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Logger } from '@wafleet/core';

interface Unzipper {
  Open: { file(zip: string): Promise<{ extract(options: { path: string; concurrency?: number }): Promise<unknown> }> };
}

interface RestoringStrategy {
  userDataDir?: string;
  unCompressSession?: (zip: string) => Promise<void>;
}

/** RemoteAuth's own unzipper (an optional dependency of whatsapp-web.js), or undefined when it cannot be found. */
function remoteAuthUnzipper(): Unzipper | undefined {
  try {
    const wwebjs = createRequire(import.meta.url).resolve('whatsapp-web.js');
    return createRequire(wwebjs)('unzipper') as Unzipper;
  } catch {
    return undefined;
  }
}

/**
 * RemoteAuth restores by streaming the zip through unzipper's `Extract` and resolves on its `finish`: that fires
 * before the last files are written, and on the zips RemoteAuth itself writes (entries with data descriptors) the
 * stream parser skips files (88 of 204 restored in this package's test). This reads the zip by its central directory
 * instead and resolves once every file is written, so the whole profile is on disk before Chromium starts.
 */
export function completeRestore(strategy: RestoringStrategy, log: Logger): void {
  if (typeof strategy.unCompressSession !== 'function') return;
  const unzipper = remoteAuthUnzipper();
  if (!unzipper) {
    log.debug('unzipper not found next to whatsapp-web.js: RemoteAuth restores as it does by itself');
    return;
  }
  strategy.unCompressSession = async (zip) => {
    const directory = await unzipper.Open.file(zip);
    await directory.extract({ path: strategy.userDataDir!, concurrency: 10 });
    await unlink(zip);
  };
}
