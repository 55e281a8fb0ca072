/** Log fields: small, closed-vocabulary values only. Never secrets, tokens or message bodies. */
export type LogFields = Record<string, unknown>;

/** The logger wafleet writes to. `createLogger()` adapts pino, winston or console-like objects to it. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

type Level = keyof Logger;
const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];

const noop: Logger = Object.freeze({ debug() {}, info() {}, warn() {}, error() {} });

/**
 * Adapts a host logger. pino takes `(fields, msg)`; winston and console take `(msg, fields)`; a winston logger is
 * recognised by its `transports` array. Without a logger nothing is logged.
 * @example
 * createFleet({ ..., logger: pino() })
 */
export function createLogger(target?: unknown): Logger {
  if (target === undefined || target === null) return noop;
  const host = target as Record<string, unknown>;
  const winstonStyle = Array.isArray(host.transports) || typeof host.child !== 'function';
  const out = {} as Record<Level, (msg: string, fields?: LogFields) => void>;
  for (const level of LEVELS) {
    const fn = host[level];
    if (typeof fn !== 'function') {
      out[level] = () => {};
      continue;
    }
    out[level] = winstonStyle
      ? (msg, fields) => (fn as (m: string, f?: LogFields) => void).call(host, msg, fields ?? {})
      : (msg, fields) => (fn as (f: LogFields, m: string) => void).call(host, fields ?? {}, msg);
  }
  return Object.freeze(out);
}
