import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { freePort } from './free-port.js';
import {
  closeClient,
  hasExited,
  removeTempDir,
  signalProcess,
  trackClient,
  trackTempDir,
  waitForExit,
  type TrackedProcess,
} from './process-registry.js';
import { launchRedis, RedisStartError, redisArgs, type RedisLayout, type RedisSecurity } from './redis-process.js';
import { redisServerBinary } from './redis-server-binary.js';
import { sleep } from './sleep.js';
import { createTestCertificates, type TestCertificates } from './test-certificates.js';

/** Options for {@link startRedis}. */
export interface StartRedisOptions {
  /** Extra redis-server arguments, appended last so they override the defaults. */
  args?: string[];
  /**
   * Turn on the AOF with `appendfsync always`, so every acknowledged write
   * survives `kill -9` and `restart({ empty: false })`. Default false.
   */
  appendonly?: boolean;
  /** Password of the default user (`requirepass`); it goes into `url` and `client()`. Default none. */
  password?: string;
  /**
   * Serve TLS only, with a CA and server certificate generated into the temp dir by `openssl` (see
   * `handle.tls`); `url` becomes `rediss://` and `client()` trusts the CA. Default false.
   */
  tls?: boolean;
}

/** Options for {@link RedisServerHandle.restart}. */
export interface RestartRedisOptions {
  /**
   * Delete the data directory before starting again so the server comes back
   * with no data (default true). With false the AOF is kept, so data written
   * with `appendonly: true` survives.
   */
  empty?: boolean;
}

/** A private redis-server started by {@link startRedis}. */
export interface RedisServerHandle {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:PORT`; `rediss://` with `tls`, and `:PASSWORD@` (percent-encoded) with `password`. */
  readonly url: string;
  /** The default user's password, when started with one. */
  readonly password: string | undefined;
  /** The generated certificates (`ca` is the PEM clients must trust), when started with `tls`. */
  readonly tls: TestCertificates | undefined;
  /** Pid of the current redis-server process; changes on restart. */
  readonly pid: number;
  /** Private temporary directory (data directory and `redis.log`), removed by stop(). */
  readonly dir: string;
  /** Path of the server log, handy when a test needs to see why Redis misbehaved. */
  readonly logFile: string;
  /** SIGTERM, wait for exit, close tracked clients and remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL) and waits for the exit; the handle can be restart()ed. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** `kill -9`, then start again on the same port (see {@link RestartRedisOptions}). */
  restart(opts?: RestartRedisOptions): Promise<void>;
  /** SIGSTOP: the server keeps its connections but answers nothing. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /**
   * A new ioredis connection to this server (with its password and CA), disconnected on stop(). Its
   * `error` events are absorbed (commands still reject) so that killing the
   * server in a test does not spam "Unhandled error event" logs.
   */
  client(options?: RedisOptions): Redis;
}

const HOST = '127.0.0.1';
const START_ATTEMPTS = 5;
const RESTART_ATTEMPTS = 10;

/**
 * Starts a private redis-server on 127.0.0.1 on a free port, with its own
 * temporary directory under `os.tmpdir()` (`wafleet-redis-*`), no RDB
 * snapshots, AOF only if asked for, `noeviction`, and its log in the temp dir.
 * Resolves once it answers PING; rejects with the log tail after 10 s.
 *
 * Tests must only ever use servers they started (or an explicit `REDIS_URL`,
 * see `redisForTests`), never the machine's own Redis.
 */
export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServerHandle> {
  const binary = redisServerBinary();
  const dir = await mkdtemp(join(tmpdir(), 'wafleet-redis-'));
  trackTempDir(dir);
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'redis.log');
  const appendonly = opts.appendonly ?? false;
  const extra = opts.args ?? [];

  let layout: RedisLayout | undefined;
  let tracked: TrackedProcess | undefined;
  const security: RedisSecurity = { password: opts.password };
  try {
    await mkdir(dataDir);
    if (opts.tls) security.tls = await createTestCertificates(dir);
    for (let attempt = 1; !tracked; attempt++) {
      layout = { port: await freePort(), dataDir, logFile, appendonly, security };
      try {
        tracked = await launchRedis(binary, layout, redisArgs(layout, extra));
      } catch (err) {
        // Another process may take the port between freePort() and bind;
        // a fresh port fixes that, anything else is a real failure.
        if (!(err instanceof RedisStartError && err.addressInUse) || attempt >= START_ATTEMPTS) throw err;
      }
    }
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }

  const port = layout!.port;
  let current: TrackedProcess = tracked;
  let stopped = false;
  const clients = new Set<Redis>();

  const killCurrent = async (signal: NodeJS.Signals): Promise<void> => {
    signalProcess(current, signal);
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') return;
    if (!(await waitForExit(current.child, 10_000))) {
      throw new Error(`redis-server pid ${current.child.pid} on port ${port} did not exit after ${signal}`);
    }
  };

  const handle: RedisServerHandle = {
    host: HOST,
    port,
    url: `${security.tls ? 'rediss' : 'redis'}://${opts.password === undefined ? '' : `:${encodeURIComponent(opts.password)}@`}${HOST}:${port}`,
    password: opts.password,
    tls: security.tls,
    get pid(): number {
      return current.child.pid ?? -1;
    },
    dir,
    logFile,

    async stop() {
      if (stopped) return;
      stopped = true;
      for (const c of clients) closeClient(c);
      clients.clear();
      if (!hasExited(current.child)) {
        signalProcess(current, 'SIGTERM');
        if (!(await waitForExit(current.child, 5_000))) {
          signalProcess(current, 'SIGKILL');
          await waitForExit(current.child, 5_000);
        }
      }
      await removeTempDir(dir);
    },

    async kill(signal = 'SIGKILL') {
      await killCurrent(signal);
    },

    async restart(restartOpts = {}) {
      if (stopped) throw new Error(`redis-server on port ${port} was stopped; start a new one instead`);
      await killCurrent('SIGKILL');
      if (restartOpts.empty ?? true) {
        await rm(dataDir, { recursive: true, force: true, maxRetries: 3 });
        await mkdir(dataDir, { recursive: true });
      }
      const sameLayout: RedisLayout = { port, dataDir, logFile, appendonly, security };
      for (let attempt = 1; ; attempt++) {
        try {
          current = await launchRedis(binary, sameLayout, redisArgs(sameLayout, extra));
          return;
        } catch (err) {
          // The old socket may linger briefly (or another process may grab
          // the port); unlike the first start, the port must stay the same.
          if (!(err instanceof RedisStartError && err.addressInUse) || attempt >= RESTART_ATTEMPTS) throw err;
          await sleep(100 * attempt);
        }
      }
    },

    pause() {
      signalProcess(current, 'SIGSTOP');
    },

    resume() {
      signalProcess(current, 'SIGCONT');
    },

    client(options: RedisOptions = {}) {
      if (stopped) throw new Error(`redis-server on port ${port} was stopped`);
      const secure = { password: opts.password, ...(security.tls ? { tls: { ca: security.tls.ca } } : {}) };
      const c = new Redis({ host: HOST, port, ...secure, ...options });
      c.on('error', () => {});
      clients.add(c);
      trackClient(c);
      return c;
    },
  };
  return handle;
}
