import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { freePortPair } from './free-port.js';
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
import { launchRedis, logTail, RedisStartError, redisArgs, type RedisLayout, type RedisSecurity } from './redis-process.js';
import { redisCliBinary } from './redis-cli-binary.js';
import { redisServerBinary } from './redis-server-binary.js';
import { createTestCertificates, type TestCertificates } from './test-certificates.js';
import { waitUntil } from './wait-until.js';

/** Options for {@link startRedisCluster}. */
export interface StartRedisClusterOptions {
  /** Number of master nodes (default 3). */
  masters?: number;
  /** Replicas per master (default 0); with replicas, at least 3 masters. */
  replicas?: number;
  /** Extra redis-server arguments for every node, appended last. */
  args?: string[];
  /** Turn on the AOF (`appendfsync always`) on every node. Default false. */
  appendonly?: boolean;
  /** Password of the default user on every node (`requirepass`, `masterauth`). Default none. */
  password?: string;
  /** TLS only, for clients and the cluster bus, with generated certificates (see `startRedis`). Default false. */
  tls?: boolean;
}

/** Address of one cluster node. */
export interface RedisClusterNode {
  host: string;
  port: number;
}

/** A private Redis Cluster started by {@link startRedisCluster}. */
export interface RedisClusterHandle {
  readonly nodes: RedisClusterNode[];
  /** `redis://127.0.0.1:PORT` for every node; `rediss://` with `tls`, `:PASSWORD@` with `password`. */
  readonly urls: string[];
  readonly password: string | undefined;
  /** The generated certificates (`ca` is the PEM clients must trust), when started with `tls`. */
  readonly tls: TestCertificates | undefined;
  /** Private temporary directory holding every node's data, config and log. */
  readonly dir: string;
  /** Closes tracked clients, SIGTERMs every node, waits, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /**
   * A new ioredis Cluster client seeded with every node, disconnected on
   * stop(). `error` events are absorbed; commands still reject.
   */
  client(options?: ClusterOptions): Cluster;
  /**
   * `kill -9` of the master serving `slot`; resolves with the `host:port` of the replica promoted in its place once
   * every surviving node reports `cluster_state:ok` (cluster-node-timeout 2 s, then the election). Needs `replicas`.
   */
  killMasterOf(slot: number): Promise<string>;
}

const HOST = '127.0.0.1';
const TOTAL_SLOTS = 16384;
const CREATE_TIMEOUT_MS = 20_000;
const NODE_ATTEMPTS = 5;

interface NodeProcess {
  port: number;
  logFile: string;
  tracked: TrackedProcess;
}

/**
 * Starts `masters` private redis-server processes in cluster mode (no
 * replicas, `cluster-node-timeout 2000`, same persistence flags as
 * `startRedis`), joins them with `redis-cli --cluster create` and resolves
 * once every node reports `cluster_state:ok`, knows every other node and
 * sees all 16384 slots assigned (bounded: 20 s).
 *
 * redis-cli refuses to create clusters with fewer than 3 masters, so for 1
 * or 2 masters the slots are assigned and the nodes introduced directly.
 */
export async function startRedisCluster(opts: StartRedisClusterOptions = {}): Promise<RedisClusterHandle> {
  const masters = opts.masters ?? 3;
  if (!Number.isInteger(masters) || masters < 1) {
    throw new Error(`startRedisCluster: masters must be a positive integer, got ${masters}`);
  }
  const replicas = opts.replicas ?? 0;
  if (!Number.isInteger(replicas) || replicas < 0 || (replicas > 0 && masters < 3)) {
    throw new Error(`startRedisCluster: replicas must be a non-negative integer, with at least 3 masters, got ${replicas}`);
  }
  const binary = redisServerBinary();
  const cli = masters >= 3 ? redisCliBinary(binary) : undefined;
  const dir = await mkdtemp(join(tmpdir(), 'wafleet-redis-cluster-'));
  trackTempDir(dir);
  const security: RedisSecurity = { password: opts.password };
  const launched: NodeProcess[] = [];
  const killNodes = async (signal: NodeJS.Signals): Promise<void> => {
    for (const node of launched) signalProcess(node.tracked, signal);
    const exited = await Promise.all(launched.map((n) => waitForExit(n.tracked.child, 5_000)));
    if (signal !== 'SIGKILL' && exited.includes(false)) await killNodes('SIGKILL');
  };

  try {
    if (opts.tls) security.tls = await createTestCertificates(dir);
    // allSettled, not all: on failure every node that did come up must be
    // in `launched` before the cleanup below kills them.
    const results = await Promise.allSettled(
      Array.from({ length: masters * (1 + replicas) }, () => launchNode(binary, dir, opts, security, launched)),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    const nodes = [...launched];
    if (cli)
      await createWithCli(
        cli,
        nodes.map((n) => n.port),
        security,
        replicas,
      );
    else
      await createByHand(
        nodes.map((n) => n.port),
        security,
      );
    await waitForClusterOk(nodes, security);
  } catch (err) {
    await killNodes('SIGKILL');
    await removeTempDir(dir);
    throw err;
  }

  const nodes = launched.map((n) => ({ host: HOST, port: n.port }));
  const clients = new Set<Cluster>();
  let stopped = false;

  return {
    nodes,
    urls: nodes.map((n) => `${security.tls ? 'rediss' : 'redis'}://${userInfo(security)}${n.host}:${n.port}`),
    password: security.password,
    tls: security.tls,
    dir,

    async stop() {
      if (stopped) return;
      stopped = true;
      for (const c of clients) closeClient(c);
      clients.clear();
      await killNodes('SIGTERM');
      await removeTempDir(dir);
    },

    async killMasterOf(slot: number) {
      const survivors = () => launched.filter((n) => !hasExited(n.tracked.child)).map((n) => n.port);
      const masterOf = async (): Promise<string> =>
        withNodeClients(survivors().slice(0, 1), security, async ([c]) => {
          const ranges = (await c!.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
          const range = ranges.find(([first, last]) => first <= slot && slot <= last);
          if (!range) throw new Error(`no node serves slot ${slot}`);
          return `${range[2][0]}:${range[2][1]}`;
        });
      const before = await masterOf();
      const victim = launched.find((n) => `${HOST}:${n.port}` === before);
      if (!victim) throw new Error(`slot ${slot} is served by ${before}, not a node of this cluster`);
      signalProcess(victim.tracked, 'SIGKILL');
      await waitForExit(victim.tracked.child, 5_000);
      await waitUntil(
        async () => {
          try {
            if ((await masterOf()) === before) return false;
            return await withNodeClients(survivors(), security, async (clients) =>
              (await Promise.all(clients.map((c) => c.call('CLUSTER', 'INFO')))).every((info) => String(info).includes('cluster_state:ok')),
            );
          } catch {
            return false;
          }
        },
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      return masterOf();
    },

    client(options: ClusterOptions = {}) {
      if (stopped) throw new Error('redis cluster was stopped');
      const c = new Cluster(
        nodes.map((n) => ({ host: n.host, port: n.port })),
        { ...options, redisOptions: { ...clientSecurity(security), ...options.redisOptions } },
      );
      c.on('error', () => {});
      clients.add(c);
      trackClient(c);
      return c;
    },
  };
}

const userInfo = (security: RedisSecurity) => (security.password === undefined ? '' : `:${encodeURIComponent(security.password)}@`);

/** ioredis options that pass a node's password and trust its CA. */
const clientSecurity = (security: RedisSecurity): RedisOptions => ({
  ...(security.password === undefined ? {} : { password: security.password }),
  ...(security.tls ? { tls: { ca: security.tls.ca } } : {}),
});

async function launchNode(
  binary: string,
  dir: string,
  opts: StartRedisClusterOptions,
  security: RedisSecurity,
  launched: NodeProcess[],
): Promise<NodeProcess> {
  for (let attempt = 1; ; attempt++) {
    const { port } = await freePortPair();
    const layout: RedisLayout = {
      port,
      dataDir: join(dir, `node-${port}`),
      logFile: join(dir, `node-${port}.log`),
      appendonly: opts.appendonly ?? false,
      security,
    };
    await mkdir(layout.dataDir);
    const args = redisArgs(layout, [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      join(dir, `nodes-${port}.conf`),
      '--cluster-node-timeout',
      '2000',
      // A node learns its own address only from a MEET; a lone master never
      // gets one and would advertise "" in CLUSTER SLOTS, stalling clients.
      '--cluster-announce-ip',
      HOST,
      ...(security.password === undefined ? [] : ['--masterauth', security.password]),
      ...(security.tls ? ['--tls-cluster', 'yes', '--tls-replication', 'yes'] : []),
      ...(opts.args ?? []),
    ]);
    try {
      const tracked = await launchRedis(binary, layout, args);
      const node = { port, logFile: layout.logFile, tracked };
      launched.push(node);
      return node;
    } catch (err) {
      await rm(layout.dataDir, { recursive: true, force: true });
      if (!(err instanceof RedisStartError && err.addressInUse) || attempt >= NODE_ATTEMPTS) throw err;
    }
  }
}

function createWithCli(cli: string, ports: number[], security: RedisSecurity, replicas: number): Promise<void> {
  const args = [
    ...(security.tls ? ['--tls', '--cacert', security.tls.caFile] : []),
    '--cluster',
    'create',
    ...ports.map((p) => `${HOST}:${p}`),
    '--cluster-replicas',
    String(replicas),
    '--cluster-yes',
  ];
  // The password goes by environment, so it is neither in `ps` nor in the error below.
  const env = security.password === undefined ? process.env : { ...process.env, REDISCLI_AUTH: security.password };
  return new Promise((resolve, reject) => {
    execFile(cli, args, { timeout: CREATE_TIMEOUT_MS, maxBuffer: 4 * 1024 * 1024, env }, (err, stdout, stderr) => {
      if (!err) return resolve();
      const out = `${stdout}\n${stderr}`.trim().split('\n').slice(-30).join('\n');
      reject(new Error(`${cli} ${args.join(' ')} failed: ${err.message}\n${out}`));
    });
  });
}

/** Even slot split plus CLUSTER MEET, for the 1–2 master case redis-cli rejects. */
async function createByHand(ports: number[], security: RedisSecurity): Promise<void> {
  const per = Math.ceil(TOTAL_SLOTS / ports.length);
  await withNodeClients(ports, security, async (clients) => {
    await Promise.all(
      clients.map((c, i) => {
        const first = i * per;
        const last = Math.min(TOTAL_SLOTS, (i + 1) * per) - 1;
        return c.call('CLUSTER', 'ADDSLOTSRANGE', first, last);
      }),
    );
    const seed = clients[0]!;
    for (const port of ports.slice(1)) await seed.call('CLUSTER', 'MEET', HOST, port);
  });
}

async function waitForClusterOk(nodes: NodeProcess[], security: RedisSecurity): Promise<void> {
  let lastInfo = '';
  const expected = ['cluster_state:ok', `cluster_slots_assigned:${TOTAL_SLOTS}`, `cluster_known_nodes:${nodes.length}`];
  await withNodeClients(
    nodes.map((n) => n.port),
    security,
    async (clients) => {
      try {
        await waitUntil(
          async () => {
            for (const [i, c] of clients.entries()) {
              if (hasExited(nodes[i]!.tracked.child)) throw new Error(`node ${nodes[i]!.port} exited`);
              const info = String(await c.call('CLUSTER', 'INFO'));
              lastInfo = `node ${nodes[i]!.port}:\n${info.trim()}`;
              if (!expected.every((line) => info.includes(line))) return false;
            }
            return true;
          },
          { timeoutMs: CREATE_TIMEOUT_MS, intervalMs: 100 },
        );
      } catch (err) {
        const logs = nodes.map((n) => `--- ${n.logFile}\n${logTail(n.logFile, 10)}`).join('\n');
        throw new Error(
          `redis cluster did not reach cluster_state:ok within ${CREATE_TIMEOUT_MS} ms\nlast CLUSTER INFO from ${lastInfo}\n${logs}`,
          { cause: err },
        );
      }
    },
  );
}

/** Short-lived admin connections, one per node, always disconnected. */
async function withNodeClients<T>(ports: number[], security: RedisSecurity, fn: (clients: Redis[]) => Promise<T>): Promise<T> {
  const clients = ports.map((port) => {
    const c = new Redis({ host: HOST, port, maxRetriesPerRequest: 1, commandTimeout: 2_000, ...clientSecurity(security) });
    c.on('error', () => {});
    return c;
  });
  try {
    return await fn(clients);
  } finally {
    for (const c of clients) c.disconnect();
  }
}
