import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisClusterHandle } from './start-redis-cluster.js';
import { startRedisCluster } from './start-redis-cluster.js';
import { killAll } from './process-registry.js';

describe('startRedisCluster', () => {
  let cluster: RedisClusterHandle;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  });
  afterAll(async () => {
    await cluster?.stop();
    await killAll();
  });

  it('reports cluster_state:ok on every one of the 3 masters', async () => {
    expect(cluster.nodes).toHaveLength(3);
    for (const node of cluster.nodes) {
      expect(node.port + 10_000).toBeLessThanOrEqual(65_535);
      expect(node.port).not.toBe(6379);
    }
    for (const url of cluster.urls) {
      const node = new Redis(url);
      try {
        const info = String(await node.call('CLUSTER', 'INFO'));
        expect(info).toContain('cluster_state:ok');
        expect(info).toContain('cluster_known_nodes:3');
        expect(info).toContain('cluster_size:3');
      } finally {
        node.disconnect();
      }
    }
  });

  it('routes keys in different slots to their owners', async () => {
    const client = cluster.client();
    const keys = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot'];
    const slots = new Set(await Promise.all(keys.map((k) => client.call('CLUSTER', 'KEYSLOT', k))));
    expect(slots.size).toBeGreaterThan(1);
    await Promise.all(keys.map((k) => client.set(k, `v-${k}`)));
    expect(await Promise.all(keys.map((k) => client.get(k)))).toEqual(keys.map((k) => `v-${k}`));
  });

  it('runs an EVAL over two keys sharing a hash tag', async () => {
    const client = cluster.client();
    const result = await client.eval(
      "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[2]); return redis.call('MGET', KEYS[1], KEYS[2])",
      2,
      '{t}:a',
      '{t}:b',
      '1',
      '2',
    );
    expect(result).toEqual(['1', '2']);
  });

  it('rejects a multi-key command across slots, as a real cluster must', async () => {
    // The Cluster client would refuse this itself, so ask a node directly.
    const node = new Redis(cluster.urls[0]!);
    try {
      await expect(node.call('MGET', 'alpha', 'bravo')).rejects.toThrow(/CROSSSLOT/);
    } finally {
      node.disconnect();
    }
  });

  it('a single-master cluster serves every slot and stop shuts it down', async () => {
    const small = await startRedisCluster({ masters: 1 });
    const client = small.client();
    await client.set('x', '1');
    expect(await client.get('x')).toBe('1');
    await small.stop();
    expect(client.status).toBe('end');
    const probe = new Redis(small.urls[0]!, { retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => {});
    await expect(probe.ping()).rejects.toThrow();
    probe.disconnect();
  });

  it('a two-master cluster (below the redis-cli minimum) splits slots between both', async () => {
    const pair = await startRedisCluster({ masters: 2 });
    try {
      const client = pair.client();
      const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
      await Promise.all(keys.map((k) => client.set(k, k)));
      expect(await Promise.all(keys.map((k) => client.get(k)))).toEqual(keys);
      const perNode = await Promise.all(
        pair.urls.map(async (url) => {
          const node = new Redis(url);
          try {
            return await node.dbsize();
          } finally {
            node.disconnect();
          }
        }),
      );
      expect(perNode.every((n) => n > 0)).toBe(true);
    } finally {
      await pair.stop();
    }
  });
});
