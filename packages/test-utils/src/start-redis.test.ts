import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { killAll } from './process-registry.js';
import { redisForTests } from './redis-for-tests.js';
import { REDIS_SERVER_NOT_FOUND, redisServerBinary } from './redis-server-binary.js';
import { startRedis } from './start-redis.js';

afterAll(killAll);

/** Resolves with the socket error code, or 'connected'. */
function connectResult(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('startRedis', () => {
  it('starts a private server on a free port that answers commands', async () => {
    const server = await startRedis();
    try {
      expect(server.port).not.toBe(6379);
      expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
      const client = server.client();
      await client.set('k', 'v');
      expect(await client.get('k')).toBe('v');
      expect(await client.config('GET', 'save')).toEqual(['save', '']);
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'no']);
      expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
    } finally {
      await server.stop();
    }
  });

  it('stop terminates the process, closes its clients and removes the temp dir', async () => {
    const server = await startRedis();
    const client = server.client();
    await client.ping();
    expect(existsSync(server.dir)).toBe(true);
    await server.stop();
    expect(existsSync(server.dir)).toBe(false);
    expect(client.status).toBe('end');
    expect(await connectResult(server.port)).toBe('ECONNREFUSED');
    await server.stop();
  });

  it('restart with empty: true comes back without data on the same port', async () => {
    const server = await startRedis({ appendonly: true });
    try {
      const client = server.client();
      await client.set('k', 'v');
      const { port, pid } = server;
      await server.restart();
      expect(server.port).toBe(port);
      expect(server.pid).not.toBe(pid);
      expect(await client.get('k')).toBeNull();
    } finally {
      await server.stop();
    }
  });

  it('restart with appendonly and empty: false keeps acknowledged writes', async () => {
    const server = await startRedis({ appendonly: true });
    try {
      const client = server.client();
      await client.set('k', 'v');
      await server.restart({ empty: false });
      expect(await client.get('k')).toBe('v');
    } finally {
      await server.stop();
    }
  });

  it('pause makes commands time out until resume', async () => {
    const server = await startRedis();
    try {
      const client = server.client({ commandTimeout: 200 });
      await client.ping();
      server.pause();
      await expect(client.ping()).rejects.toThrow(/timed out/i);
      server.resume();
      expect(await client.ping()).toBe('PONG');
    } finally {
      await server.stop();
    }
  });

  it('stop also ends a paused server', async () => {
    const server = await startRedis();
    server.pause();
    const started = Date.now();
    await server.stop();
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(await connectResult(server.port)).toBe('ECONNREFUSED');
  });

  it('kill leaves the port refusing connections until restart', async () => {
    const server = await startRedis();
    try {
      await server.kill();
      expect(await connectResult(server.port)).toBe('ECONNREFUSED');
      await server.restart();
      expect(await connectResult(server.port)).toBe('connected');
    } finally {
      await server.stop();
    }
  });

  it('passes extra args through to redis-server', async () => {
    const server = await startRedis({ args: ['--hz', '50'] });
    try {
      expect(await server.client().config('GET', 'hz')).toEqual(['hz', '50']);
    } finally {
      await server.stop();
    }
  });
});

describe('redisServerBinary', () => {
  it('throws a one-line install hint when redis-server is not on PATH', () => {
    const saved = { PATH: process.env['PATH'], BIN: process.env['REDIS_SERVER_BIN'] };
    try {
      process.env['PATH'] = '/nonexistent';
      delete process.env['REDIS_SERVER_BIN'];
      expect(() => redisServerBinary()).toThrow(REDIS_SERVER_NOT_FOUND);
      expect(REDIS_SERVER_NOT_FOUND).not.toContain('\n');
    } finally {
      process.env['PATH'] = saved.PATH;
      if (saved.BIN !== undefined) process.env['REDIS_SERVER_BIN'] = saved.BIN;
    }
  });
});

describe('redisForTests', () => {
  it('uses REDIS_URL as a shared, non-private Redis without starting anything', async () => {
    const saved = process.env['REDIS_URL'];
    try {
      process.env['REDIS_URL'] = 'redis://127.0.0.1:1/9';
      const redis = await redisForTests();
      expect(redis).toMatchObject({ url: 'redis://127.0.0.1:1/9', private: false, server: undefined });
      await redis.close();
    } finally {
      if (saved === undefined) delete process.env['REDIS_URL'];
      else process.env['REDIS_URL'] = saved;
    }
  });

  it('starts a private server when REDIS_URL is unset and close stops it', async () => {
    const saved = process.env['REDIS_URL'];
    delete process.env['REDIS_URL'];
    try {
      const redis = await redisForTests();
      expect(redis.private).toBe(true);
      if (!redis.private) throw new Error('unreachable');
      expect(redis.url).toBe(redis.server.url);
      expect(await redis.server.client().ping()).toBe('PONG');
      await redis.close();
      expect(await connectResult(redis.server.port)).toBe('ECONNREFUSED');
    } finally {
      if (saved !== undefined) process.env['REDIS_URL'] = saved;
    }
  });
});
