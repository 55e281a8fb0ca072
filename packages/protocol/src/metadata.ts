import { describe } from './describe.js';
import { ConfigError } from './errors.js';

/** A session's metadata: the host's own per-session data (workspace id, account), a plain JSON object. */
export type SessionMetadata = Record<string, unknown>;

/** Default bound of a session's metadata, serialized as JSON (UTF-8 bytes). */
export const MAX_METADATA_BYTES = 4096;
/** Deepest nesting accepted; JSON this deep is a mistake, not data. */
const MAX_DEPTH = 16;
/** A lone surrogate: JSON would carry it, but Redis and most receivers would turn it into U+FFFD. */
const LONE_SURROGATE = /\p{Cs}/u;

function problem(value: unknown, depth: number): string | undefined {
  if (value === null || typeof value === 'boolean') return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : `a finite number, got ${describe(value)}`;
  if (typeof value === 'string') return !LONE_SURROGATE.test(value) ? undefined : 'strings without lone surrogates';
  if (depth >= MAX_DEPTH) return `nested at most ${MAX_DEPTH} levels deep`;
  if (Array.isArray(value)) {
    for (const item of value) {
      const p = problem(item, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [k, v] of Object.entries(value)) {
      if (LONE_SURROGATE.test(k)) return 'keys without lone surrogates';
      const p = problem(v, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  return `JSON values only (null, booleans, finite numbers, strings, arrays, plain objects), got ${describe(value)}`;
}

/**
 * Validates a session's metadata and returns it serialized, as the registry stores it (text that round-trips
 * exactly, also for big integers' strings and empty arrays): a plain object of JSON values, at most `maxBytes`
 * UTF-8 bytes serialized, no lone surrogates.
 * @throws ConfigError with option `metadata`; nothing is written
 */
export function serializeMetadata(value: unknown, maxBytes = MAX_METADATA_BYTES): string {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) {
    throw new ConfigError('metadata', `Expected \`metadata\` to be a plain JSON object, got ${describe(value)}`);
  }
  const why = problem(value, 0);
  if (why) throw new ConfigError('metadata', `Expected \`metadata\` to hold ${why}`);
  const text = JSON.stringify(value);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) {
    throw new ConfigError('metadata', `Expected \`metadata\` to be at most ${maxBytes} bytes as JSON, got ${bytes}`);
  }
  return text;
}

/** The metadata argument of the claim and place scripts: '' keeps the recorded metadata. */
export function metadataArg(options: { metadata?: unknown } | undefined, maxBytes = MAX_METADATA_BYTES): string {
  return options?.metadata === undefined ? '' : serializeMetadata(options.metadata, maxBytes);
}

/** Parses stored metadata text; `{}` for none (or for text another writer corrupted). */
export function parseMetadata(text: string | undefined): SessionMetadata {
  if (!text) return {};
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as SessionMetadata) : {};
  } catch {
    return {};
  }
}
