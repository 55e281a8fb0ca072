import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';
import { removeTempDir, signalProcess, trackTempDir, waitForExit, type TrackedProcess } from './process-registry.js';
import { launchRedis } from './redis-process.js';
import { redisServerBinary } from './redis-server-binary.js';
import { sleep } from './sleep.js';
import { startRedis, type RedisServerHandle } from './start-redis.js';
import { startTcpProxy } from './tcp-proxy.js';

/** Options of {@link startRedisSentinel}. */
export interface StartRedisSentinelOptions {
  /** Sentinel's `down-after-milliseconds`: how long the master may not answer before it is considered down. @default 1000 */
  downAfterMs?: number;
  /** Sentinel's `failover-timeout`. @default 5000 */
  failoverTimeoutMs?: number;
  /**
   * Put a proxy in front of the first master, which everyone (clients, sentinels, the replica) reaches through it, so
   * that `pauseReplication()` can hold the replica's link alone. @default false
   */
  proxyMaster?: boolean;
}

/** A private 1 master + 1 replica + 3 sentinels setup from {@link startRedisSentinel}. */
export interface RedisSentinelHandle {
  /** The monitored master's name. */
  readonly name: string;
  /** The two data servers: the first started as the master, the second as its replica (roles swap on failover). */
  readonly servers: readonly [RedisServerHandle, RedisServerHandle];
  /** `redis://127.0.0.1:PORT` of each sentinel. */
  readonly sentinelUrls: readonly string[];
  /** Port of the master the sentinels name now. */
  masterPort(): Promise<number>;
  /** `SENTINEL FAILOVER`: promotes the replica; resolves with the new master's port once every sentinel names it. */
  failover(): Promise<number>;
  /**
   * With `proxyMaster`: the replica stops receiving the first master's writes (they wait in the proxy, its link stays
   * up); a failover after the master died promotes a replica without them.
   */
  pauseReplication(): void;
  /** With `proxyMaster`: the replica receives what waited, and the master's writes again. */
  resumeReplication(): void;
  /** Stops the sentinels and both servers. Idempotent. */
  stop(): Promise<void>;
}

const NAME = 'wafleet';

/** Starts a master, a replica and three sentinels monitoring them (quorum 2), all on loopback. */
export async function startRedisSentinel(options: StartRedisSentinelOptions = {}): Promise<RedisSentinelHandle> {
  // No 5 s wait for more replicas before the first (diskless) sync.
  const master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
  const proxy = options.proxyMaster ? await startTcpProxy(master.port) : undefined;
  // The address everyone knows the first master by.
  const masterAddressPort = proxy?.port ?? master.port;
  const replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(masterAddressPort)] });
  const sentinels: Array<{ port: number; process: TrackedProcess; dir: string }> = [];
  const clients: Redis[] = [];
  const stopAll = async () => {
    for (const c of clients.splice(0)) c.disconnect();
    for (const s of sentinels.splice(0)) {
      signalProcess(s.process, 'SIGKILL');
      await waitForExit(s.process.child, 5000);
      await removeTempDir(s.dir);
    }
    await Promise.all([master.stop(), replica.stop(), proxy?.close()]);
  };
  try {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const dir = await mkdtemp(join(tmpdir(), 'wafleet-sentinel-'));
      trackTempDir(dir);
      const conf = join(dir, 'sentinel.conf');
      await writeFile(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          'protected-mode no',
          `dir ${dir}`,
          `logfile ${join(dir, 'sentinel.log')}`,
          `sentinel monitor ${NAME} 127.0.0.1 ${masterAddressPort} 2`,
          `sentinel down-after-milliseconds ${NAME} ${options.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${NAME} ${options.failoverTimeoutMs ?? 5000}`,
          `sentinel parallel-syncs ${NAME} 1`,
          '',
        ].join('\n'),
      );
      const layout = { port, dataDir: dir, logFile: join(dir, 'sentinel.log'), appendonly: false };
      sentinels.push({ port, dir, process: await launchRedis(redisServerBinary(), layout, [conf, '--sentinel']) });
    }
    const ask = (port: number) => {
      const c = new Redis({ host: '127.0.0.1', port, lazyConnect: false, maxRetriesPerRequest: 1 });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    };
    const sentinelClients = sentinels.map((s) => ask(s.port));
    // Ready once the replica holds the master's data (its first sync done) ...
    const replicaClient = replica.client();
    for (const until = Date.now() + 20_000; !/master_link_status:up/.test(await replicaClient.info('replication'));) {
      if (Date.now() > until) throw new Error('the replica did not finish its first sync within 20 s');
      await sleep(50);
    }
    // ... and every sentinel sees the replica and the two other sentinels.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const views = await Promise.all(
        sentinelClients.map(async (c) => {
          const flat = (await c.call('SENTINEL', 'MASTER', NAME)) as string[];
          const info = Object.fromEntries(flat.flatMap((v, i) => (i % 2 === 0 ? [[v, flat[i + 1]]] : [])));
          return Number(info['num-slaves']) >= 1 && Number(info['num-other-sentinels']) >= 2;
        }),
      );
      if (views.every(Boolean)) break;
      if (Date.now() > deadline) throw new Error('sentinels did not discover the replica and each other within 20 s');
      await sleep(100);
    }
    const masterPort = async () => Number(((await sentinelClients[0]!.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME)) as string[])[1]);
    return {
      name: NAME,
      servers: [master, replica],
      sentinelUrls: sentinels.map((s) => `redis://127.0.0.1:${s.port}`),
      masterPort,
      async failover() {
        const before = await masterPort();
        await sentinelClients[0]!.call('SENTINEL', 'FAILOVER', NAME);
        const until = Date.now() + 20_000;
        for (;;) {
          const ports = await Promise.all(
            sentinelClients.map(async (c) => Number(((await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME)) as string[])[1])),
          );
          if (ports.every((p) => p !== before && p === ports[0])) return ports[0]!;
          if (Date.now() > until) throw new Error(`failover from ${before} not seen by every sentinel within 20 s: ${ports.join(', ')}`);
          await sleep(100);
        }
      },
      pauseReplication() {
        if (!proxy) throw new Error('pauseReplication() needs startRedisSentinel({ proxyMaster: true })');
        // The replica's link is the connection that sent REPLCONF (its handshake, then an ACK every second).
        proxy.pause(/REPLCONF/i);
      },
      resumeReplication() {
        proxy?.resume();
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
