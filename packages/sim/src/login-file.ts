import { ConfigError } from '@wafleet/core';

/** What a simulated login file says about itself: whose login it is and who wrote it. */
export interface SimLoginHeader {
  /** The session the login belongs to. */
  readonly session: string;
  /** The instance that wrote it (`seeder` for a login seeded before the run). */
  readonly writer: string;
  /** The epoch its writer held the session under. */
  readonly epoch: string;
  /** Saves of the writer's engine so far, this one included. */
  readonly n: number;
}

const MAGIC = 'wafleet-sim-login/1';

/** Smallest login file the simulator writes: a header line, whatever size was asked. */
const MIN_BYTES = 64;

/** Validates a login file size option (bytes). */
export function checkLoginBytes(option: string, bytes: unknown): number {
  if (typeof bytes !== 'number' || !Number.isInteger(bytes) || bytes < MIN_BYTES || bytes > 512 * 1024 * 1024) {
    throw new ConfigError(option, `Expected \`${option}\` to be an integer from ${MIN_BYTES} to 536870912, got ${String(bytes)}`);
  }
  return bytes;
}

/**
 * The bytes of a simulated login: one JSON header line, padded with `.` to `bytes` (the header alone when it is
 * longer), so stores move something the size of a real archive.
 */
export function loginFileContent(header: SimLoginHeader, bytes: number): Buffer {
  const line = `${JSON.stringify({ magic: MAGIC, ...header })}\n`;
  const head = Buffer.from(line, 'utf8');
  if (head.length >= bytes) return head;
  return Buffer.concat([head, Buffer.alloc(bytes - head.length, '.')]);
}

/** Reads the header of a login file; throws when the bytes are not a simulated login (a corrupt restore). */
export function parseLoginFile(content: Buffer): SimLoginHeader {
  const end = content.indexOf(0x0a);
  let parsed: unknown;
  try {
    parsed = JSON.parse(content.subarray(0, end < 0 ? content.length : end).toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const h = (parsed ?? {}) as Record<string, unknown>;
  if (h['magic'] !== MAGIC || typeof h['session'] !== 'string' || typeof h['writer'] !== 'string') {
    throw new Error('not a simulated login file');
  }
  return { session: h['session'], writer: h['writer'], epoch: String(h['epoch'] ?? ''), n: Number(h['n'] ?? 0) };
}
