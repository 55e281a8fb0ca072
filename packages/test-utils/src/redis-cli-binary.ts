import { dirname, join } from 'node:path';
import { findExecutable } from './find-executable.js';

/**
 * Path of the `redis-cli` executable, needed to create clusters:
 * `REDIS_CLI_BIN` if set, else a `redis-cli` next to the resolved
 * `redis-server` (so a custom `REDIS_SERVER_BIN` build brings its own cli),
 * else the first `redis-cli` on `PATH`.
 *
 * @param serverBinary - resolved redis-server path, used to look for a sibling cli
 * @throws Error (one line) when there is none
 */
export function redisCliBinary(serverBinary?: string): string {
  const configured = process.env['REDIS_CLI_BIN'];
  if (configured) {
    const found = findExecutable(configured);
    if (!found) throw new Error(`REDIS_CLI_BIN=${configured} is not an executable file`);
    return found;
  }
  const sibling = serverBinary ? findExecutable(join(dirname(serverBinary), 'redis-cli')) : undefined;
  const found = sibling ?? findExecutable('redis-cli');
  if (!found) {
    throw new Error(
      'redis-cli not found on PATH: install it (Debian/Ubuntu: apt-get install -y redis-tools; macOS: brew install redis) or set REDIS_CLI_BIN',
    );
  }
  return found;
}
