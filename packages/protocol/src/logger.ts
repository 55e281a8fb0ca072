import { createHmac } from 'node:crypto';
import { ConfigError } from './errors.js';

/** Log fields: small, closed-vocabulary values only. Never secrets, tokens or message bodies. */
export type LogFields = Record<string, unknown>;

/** The logger wafleet writes to. `createLogger()` adapts pino, winston or console-like objects to it. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** How session ids (usually phone numbers) appear in log lines. */
export interface LogPrivacyOptions {
  /**
   * `hash`: a stable short keyed hash (`sid_` and 12 hex digits) instead of the id, in the `sessionId`, `session`
   * and `sessionIds` fields and wherever that id appears in the message, other string fields and error messages
   * of the same line. `plain`: ids as they are. @default 'hash'
   */
  sessionIds?: 'hash' | 'plain';
  /**
   * Key of the hash. The same key on every instance and backend gives the same hash for a session everywhere.
   * With the default (public) key, anyone holding the logs can test candidate phone numbers against a hash; set a
   * secret of your own to prevent that. @default 'wafleet'
   */
  hashKey?: string;
}

type Level = keyof Logger;
const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];
const ADAPTED = Symbol('wafleet.logger');
/** What an adapted logger was built from, so that a component's logger can be derived from it. */
const SOURCE = Symbol('wafleet.logger.source');
const ID_FIELDS = ['sessionId', 'session'] as const;

const noop: Logger = Object.freeze({ debug() {}, info() {}, warn() {}, error() {}, [ADAPTED]: true });

/**
 * Adapts a host logger and sets how session ids appear in it; pass the result as any wafleet `logger` option.
 * A host logger passed directly is adapted with the defaults (session ids hashed with the public key).
 * @example
 * createFleet({ ..., logger: wafleetLogger(pino(), { hashKey: process.env.LOG_HASH_KEY }) })
 */
export function wafleetLogger(target: unknown, options: LogPrivacyOptions = {}): Logger {
  return adapt(target, options, undefined);
}

function adapt(target: unknown, options: LogPrivacyOptions, component: string | undefined): Logger {
  const mode = options.sessionIds ?? 'hash';
  if (mode !== 'hash' && mode !== 'plain') throw new ConfigError('sessionIds', "Expected `sessionIds` to be 'hash' or 'plain'");
  const key = options.hashKey ?? 'wafleet';
  if (typeof key !== 'string' || key.length === 0) throw new ConfigError('hashKey', 'Expected `hashKey` to be a non-empty string');
  if (target === undefined || target === null) return noop;
  const source = (target as Record<symbol, { target: unknown; options: LogPrivacyOptions } | undefined>)[SOURCE];
  if (source) return component === undefined ? (target as Logger) : adapt(source.target, source.options, component);
  if ((target as Record<symbol, unknown>)[ADAPTED]) return target as Logger;
  // pino and winston bind the component in a child logger; a console-like logger gets it as a field.
  const parent = target as Record<string, unknown>;
  const bindsChild = component !== undefined && typeof parent.child === 'function';
  const host = bindsChild ? ((parent.child as (b: object) => Record<string, unknown>).call(parent, { component }) ?? parent) : parent;
  const extra = component !== undefined && !bindsChild ? { component } : undefined;
  const winstonStyle = Array.isArray(host.transports) || typeof host.child !== 'function';
  const hash = (id: string) => `sid_${createHmac('sha256', key).update(id).digest('hex').slice(0, 12)}`;
  const redact =
    mode === 'hash'
      ? (msg: string, fields: LogFields) => redactIds(msg, fields, hash)
      : (msg: string, fields: LogFields) => [msg, fields] as const;
  const out = { [ADAPTED]: true, [SOURCE]: { target, options } } as unknown as Record<Level, (msg: string, fields?: LogFields) => void>;
  for (const level of LEVELS) {
    const fn = host[level];
    if (typeof fn !== 'function') {
      out[level] = () => {};
      continue;
    }
    out[level] = (message, given) => {
      const [msg, fields] = redact(message, extra ? { ...extra, ...given } : (given ?? {}));
      if (winstonStyle) (fn as (m: string, f?: LogFields) => void).call(host, msg, fields);
      else (fn as (f: LogFields, m: string) => void).call(host, fields, msg);
    };
  }
  return Object.freeze(out);
}

/**
 * Adapts a host logger. pino takes `(fields, msg)`; winston and console take `(msg, fields)`; a winston logger is
 * recognised by its `transports` array. Without a logger nothing is logged. Session ids are hashed unless the host
 * passed a {@link wafleetLogger} that says otherwise. `component` (`fleet`, `outbox`, `supervisor`, ...) is bound in
 * a child logger (pino, winston) or added as a field, so lines of the parts of wafleet can be told apart.
 * @example
 * createFleet({ ..., logger: pino() })
 */
export function createLogger(target?: unknown, component?: string): Logger {
  return adapt(target, {}, component);
}

function redactIds(msg: string, fields: LogFields, hash: (id: string) => string): readonly [string, LogFields] {
  const ids = new Set<string>();
  for (const name of ID_FIELDS) if (typeof fields[name] === 'string' && fields[name] !== '') ids.add(fields[name]);
  if (Array.isArray(fields.sessionIds)) for (const id of fields.sessionIds) if (typeof id === 'string' && id !== '') ids.add(id);
  if (ids.size === 0) return [msg, fields];
  // Longest first, so an id that contains another is replaced whole.
  const sorted = [...ids].sort((a, b) => b.length - a.length);
  const scrub = (text: string) => sorted.reduce((t, id) => t.split(id).join(hash(id)), text);
  const out: LogFields = {};
  for (const [name, value] of Object.entries(fields)) {
    if (name === 'sessionIds' && Array.isArray(value)) out[name] = value.map((v) => (typeof v === 'string' ? hash(v) : v));
    else if (typeof value === 'string') out[name] = scrub(value);
    else if (value instanceof Error) out[name] = scrubError(value, scrub);
    else out[name] = value;
  }
  return [scrub(msg), out];
}

/** A copy of `err` (still an Error, so pino's serializer applies) with ids scrubbed from its message and stack. */
function scrubError(err: Error, scrub: (text: string) => string): Error {
  const copy = new Error(scrub(err.message));
  copy.name = err.name;
  copy.stack = err.stack === undefined ? undefined : scrub(err.stack);
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) Object.assign(copy, { code });
  return copy;
}
