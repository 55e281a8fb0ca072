import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Cluster, Redis } from 'ioredis';
import { ConfigError, describeValue as describe, sessionBlobKey, validateNamespace } from '@wafleet/protocol';
import { DataCorruptError, DataTooLargeError } from './errors.js';
import type { BlobBackend, BlobName } from './types.js';

/** Options of {@link redisBlobBackend}. */
export interface RedisBlobBackendOptions {
  /** The connection to store chunks with (a Cluster spreads them over its slots). Never closed here. */
  redis: Redis | Cluster;
  /** The fleet's namespace: chunk keys are `wafleet:<namespace>:blob:<sessionId>:<uploadId>:<i>`. */
  namespace: string;
  /**
   * Bytes per chunk (one Redis string each). The default stays 1 KiB under 1 MiB: a string of exactly 1 MiB plus its
   * header falls into jemalloc's 1.25 MiB size class and wastes 25 % of Redis memory (measured, bench/session-data.mjs).
   * @default 1047552 (1 MiB - 1 KiB)
   */
  chunkBytes?: number;
  /** Largest archive stored; a larger one is refused with `WAFLEET_DATA_TOO_LARGE`. @default 268435456 (256 MiB) */
  maxBytes?: number;
}

/** Defaults of {@link redisBlobBackend}. */
export const REDIS_BLOB_DEFAULTS = Object.freeze({ chunkBytes: 1024 * 1024 - 1024, maxBytes: 256 * 1024 * 1024 });

/** Chunk writes and reads in flight per upload or restore. */
const WINDOW = 4;
/**
 * Chunk indices removed per round; a round that removes nothing ends the removal. Writes keep at most WINDOW chunks
 * in flight, so a crashed upload leaves gaps shorter than this and its tail is still found.
 */
const REMOVE_BATCH = 32;

const MIN_CHUNK = 4 * 1024;
const MAX_CHUNK = 64 * 1024 * 1024;

/**
 * Stores session data versions in Redis as chunks of `chunkBytes`, each its own key outside the registry's hash tag,
 * so a Redis Cluster spreads an archive over its slots; files are streamed chunk by chunk, never held whole.
 * Which version counts is decided by the fenced commit (the pointer under the hash tag), never by the chunks.
 * Redis needs `maxmemory-policy noeviction` (as for the registry): an evicted chunk is detected at restore.
 * @example
 * const backend = redisBlobBackend({ redis: new Redis(process.env.REDIS_URL), namespace: 'wa' });
 * const data = createSessionData({ fleet, backend });
 */
export function redisBlobBackend(options: RedisBlobBackendOptions): BlobBackend {
  const { redis, namespace } = options ?? ({} as RedisBlobBackendOptions);
  const chunkBytes = options?.chunkBytes ?? REDIS_BLOB_DEFAULTS.chunkBytes;
  const maxBytes = options?.maxBytes ?? REDIS_BLOB_DEFAULTS.maxBytes;
  if (!redis || typeof (redis as Redis).getBuffer !== 'function') {
    throw new ConfigError('redis', `Expected \`redis\` to be an ioredis Redis or Cluster, got ${describe(redis)}`);
  }
  validateNamespace(namespace);
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < MIN_CHUNK || chunkBytes > MAX_CHUNK) {
    throw new ConfigError(
      'chunkBytes',
      `Expected \`chunkBytes\` to be an integer from ${MIN_CHUNK} to ${MAX_CHUNK}, got ${describe(chunkBytes)}`,
    );
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new ConfigError('maxBytes', `Expected \`maxBytes\` to be a positive integer, got ${describe(maxBytes)}`);
  }
  const key = (name: BlobName, i: number) => sessionBlobKey(namespace, name.sessionId, name.uploadId, i);

  return {
    kind: 'redis',

    async put(name, file) {
      const { size } = await stat(file);
      if (size > maxBytes) throw new DataTooLargeError(name.sessionId, size, maxBytes);
      const inFlight = new Set<Promise<void>>();
      let failure: unknown;
      let index = 0;
      let total = 0;
      const write = async (chunk: Buffer) => {
        const p: Promise<void> = redis.set(key(name, index++), chunk).then(
          () => void inFlight.delete(p),
          (err: unknown) => {
            failure ??= err;
            inFlight.delete(p);
          },
        );
        inFlight.add(p);
        if (inFlight.size >= WINDOW) await Promise.race(inFlight);
        if (failure !== undefined) throw failure;
      };
      try {
        for await (const chunk of readChunks(file, chunkBytes)) {
          total += chunk.length;
          // The file grew after the check: never store more than the limit.
          if (total > maxBytes) throw new DataTooLargeError(name.sessionId, total, maxBytes);
          await write(chunk);
        }
        // Chunk 0 always exists, also for an empty file, so a missing version is told apart from an empty one.
        if (index === 0) await write(Buffer.alloc(0));
      } finally {
        await Promise.all(inFlight);
      }
      if (failure !== undefined) throw failure;
    },

    async get(name, file) {
      async function* chunks(): AsyncGenerator<Buffer> {
        for (let base = 0; ; base += WINDOW) {
          const batch = await Promise.all(Array.from({ length: WINDOW }, (_, j) => redis.getBuffer(key(name, base + j))));
          if (base === 0 && batch[0] === null) {
            throw new DataCorruptError(name.sessionId, `The stored version ${name.uploadId} of session ${name.sessionId} is missing`);
          }
          for (const chunk of batch) {
            if (chunk === null) return;
            yield chunk;
          }
        }
      }
      await pipeline(Readable.from(chunks()), createWriteStream(file));
    },

    async remove(name) {
      for (let base = 0; ; base += REMOVE_BATCH) {
        const removed = await Promise.all(Array.from({ length: REMOVE_BATCH }, (_, j) => redis.del(key(name, base + j))));
        if (removed.every((n) => n === 0)) return;
      }
    },
  };
}

/** The file's bytes in pieces of exactly `size` (the last one shorter), streamed. */
async function* readChunks(file: string, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const data of createReadStream(file, { highWaterMark: Math.min(size, 1024 * 1024) }) as AsyncIterable<Buffer>) {
    let rest = data;
    while (held + rest.length >= size) {
      const take = size - held;
      parts.push(rest.subarray(0, take));
      yield Buffer.concat(parts);
      rest = rest.subarray(take);
      parts = [];
      held = 0;
    }
    if (rest.length > 0) {
      parts.push(rest);
      held += rest.length;
    }
  }
  if (held > 0) yield Buffer.concat(parts);
}
