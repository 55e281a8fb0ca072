import { describe } from './describe.js';
import { ConfigError } from './errors.js';

/** Most labels on one instance or session. */
export const MAX_LABELS = 32;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
/** A lone surrogate: it would be stored as U+FFFD, so two different values would read back the same. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Validates labels (an instance's, or the ones a session requires): a plain object of at most 32 entries, keys
 * like `auth` or `example.com/region` (letters, digits, '.', '_', '/', '-', at most 63), string values of at most
 * 256 characters without control characters or lone surrogates. Returns a copy.
 * @throws ConfigError naming `option`
 */
export function validateLabels(option: string, value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) {
    throw new ConfigError(option, `Expected \`${option}\` to be a plain object of string values, got ${describe(value)}`);
  }
  const entries = Object.entries(value);
  if (entries.length > MAX_LABELS) throw new ConfigError(option, `Expected at most ${MAX_LABELS} \`${option}\`, got ${entries.length}`);
  for (const [k, v] of entries) {
    if (!LABEL_KEY.test(k)) {
      throw new ConfigError(option, `Expected \`${option}\` keys to match ${LABEL_KEY.source}, got ${describe(k)}`);
    }
    if (typeof v !== 'string' || v.length > 256 || CONTROL.test(v) || LONE_SURROGATE.test(v)) {
      throw new ConfigError(
        option,
        `Expected \`${option}.${k}\` to be a string of at most 256 characters without control characters, got ${describe(v)}`,
      );
    }
  }
  return Object.fromEntries(entries) as Record<string, string>;
}
