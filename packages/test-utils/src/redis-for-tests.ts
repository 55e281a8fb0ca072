import { startRedis, type RedisServerHandle } from './start-redis.js';

/** The Redis a test suite should use, from {@link redisForTests}. */
export type TestRedis =
  | {
      /** `REDIS_URL` as given; shared with others, so never flush it. */
      url: string;
      private: false;
      server: undefined;
      /** No-op: a Redis we did not start is not ours to stop. */
      close(): Promise<void>;
    }
  | {
      url: string;
      /** A server this process started and owns. */
      private: true;
      server: RedisServerHandle;
      /** Stops the private server and removes its temp dir. */
      close(): Promise<void>;
    };

/**
 * Returns `REDIS_URL` if it is set (the suite then shares that Redis, must
 * isolate itself with `uniqueNamespace()` and never flushes), otherwise a
 * private redis-server started with {@link startRedis}. Never falls back to
 * 127.0.0.1:6379, which may be somebody's real data.
 */
export async function redisForTests(): Promise<TestRedis> {
  const url = process.env['REDIS_URL'];
  if (url) return { url, private: false, server: undefined, close: async () => {} };
  const server = await startRedis();
  return { url: server.url, private: true, server, close: () => server.stop() };
}
