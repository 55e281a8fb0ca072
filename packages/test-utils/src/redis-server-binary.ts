import { findExecutable } from './find-executable.js';

/** The one-line message tests print when no redis-server can be found. */
export const REDIS_SERVER_NOT_FOUND =
  'redis-server not found on PATH: install it (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis) or set REDIS_URL';

/**
 * Path of the `redis-server` executable: `REDIS_SERVER_BIN` if set, else the
 * first `redis-server` on `PATH`.
 *
 * @throws Error with the one-line {@link REDIS_SERVER_NOT_FOUND} message when
 *   there is none, so a failing test run says exactly how to fix it.
 */
export function redisServerBinary(): string {
  const configured = process.env['REDIS_SERVER_BIN'];
  if (configured) {
    const found = findExecutable(configured);
    if (!found) throw new Error(`REDIS_SERVER_BIN=${configured} is not an executable file`);
    return found;
  }
  const found = findExecutable('redis-server');
  if (!found) throw new Error(REDIS_SERVER_NOT_FOUND);
  return found;
}
