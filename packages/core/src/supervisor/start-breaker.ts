import { EventEmitter } from 'node:events';
import { ConfigError, createLogger, describeValue as describe, lua, validateSessionId, type Logger } from '@wafleet/protocol';
import { integer } from '../registry/options.js';
import { fleetInternals, type FleetInternals } from '../internals.js';
import type { Fleet } from '../registry/fleet.js';
import { failureKind } from './failures.js';

/** Options of {@link createStartBreaker}. */
export interface StartBreakerOptions {
  /** The fleet whose Redis holds the breaker (one breaker per namespace, shared by every instance). */
  fleet: Fleet;
  /** Starts are counted over this window. @default 60000 */
  windowMs?: number;
  /** Distinct sessions that must fail the same way within the window before it opens. @default 5 */
  minFailures?: number;
  /** Share of the window's starts (0 < ratio <= 1) that must have failed that way. @default 0.8 */
  failureRatio?: number;
  /** While open, a probe round lasts this long: the first round begins when it opens. @default 30000 */
  probeIntervalMs?: number;
  /** While open, restarts permitted per probe round across the fleet. @default 2 */
  probeStarts?: number;
  /** pino, winston or console-like logger. @default the fleet's logger */
  logger?: unknown;
}

/** What a supervisor may do with a restart. */
export type StartPermit =
  | { permitted: true; /** A probe start while the breaker is open. */ probe: boolean }
  | { permitted: false; /** The failure that opened the breaker. */ kind: string; retryAfterMs: number };

/** The breaker's state: `closed` (starts go) or `open` (restarts wait, a few probe). */
export type StartBreakerState = 'closed' | 'open';

/** Events of a {@link StartBreaker}. */
export interface StartBreakerEvents {
  /**
   * This instance opened or closed the breaker (one instance per change, so one alert): `kind` is the failure that
   * opened it. Other instances learn the state from their next start or permit.
   */
  change: [{ state: StartBreakerState; kind: string }];
}

const DEFAULTS = Object.freeze({ windowMs: 60_000, minFailures: 5, failureRatio: 0.8, probeIntervalMs: 30_000, probeStarts: 2 });

/** Creates the fleet-wide start breaker; give it to `createSupervisor({ breaker })` on every instance. */
export function createStartBreaker(options: StartBreakerOptions): StartBreaker {
  return new StartBreaker(options);
}

/**
 * A fleet-wide circuit breaker for session starts, kept in the registry's Redis. When most starts across the fleet
 * fail the same way within the window (a WhatsApp Web update that breaks injection, a missing browser), it opens:
 * supervisors stop restarting (sessions stay owned, FAILED, and say why), one instance emits `change` and sends the
 * `fleet.breaker.opened` webhook through the fleet's outbox, and a few probe restarts per round test whether starts
 * work again. The first successful start anywhere closes it (`fleet.breaker.closed`) and the held sessions restart
 * through each supervisor's launch queue. Redis errors never hold a restart: the breaker fails open.
 * @example
 * const breaker = createStartBreaker({ fleet });
 * const supervisor = createSupervisor({ fleet, engine, breaker });
 */
export class StartBreaker extends EventEmitter<StartBreakerEvents> {
  readonly #internals: FleetInternals;
  readonly #args: { windowMs: string; minFailures: string; ratioPercent: string; probeIntervalMs: string; probeStarts: string };
  readonly #log: Logger;
  #state: StartBreakerState = 'closed';
  #kind = '';
  readonly #stats = { opened: 0, closed: 0, held: 0, probes: 0 };

  constructor(options: StartBreakerOptions) {
    super();
    this.#internals = fleetInternals(options?.fleet);
    const windowMs = integer('windowMs', options.windowMs ?? DEFAULTS.windowMs, 1);
    const minFailures = integer('minFailures', options.minFailures ?? DEFAULTS.minFailures, 1);
    const ratio = options.failureRatio ?? DEFAULTS.failureRatio;
    if (typeof ratio !== 'number' || !(ratio > 0 && ratio <= 1))
      throw new ConfigError('failureRatio', `Expected \`failureRatio\` to be a number in (0, 1], got ${describe(ratio)}`);
    this.#args = {
      windowMs: String(windowMs),
      minFailures: String(minFailures),
      ratioPercent: String(Math.ceil(ratio * 100)),
      probeIntervalMs: String(integer('probeIntervalMs', options.probeIntervalMs ?? DEFAULTS.probeIntervalMs, 1)),
      probeStarts: String(integer('probeStarts', options.probeStarts ?? DEFAULTS.probeStarts, 1)),
    };
    this.#log = options.logger === undefined ? this.#internals.options.logger : createLogger(options.logger, 'breaker');
  }

  /** The state this instance saw last (from its own starts and permits). */
  get state(): StartBreakerState {
    return this.#state;
  }

  /** The failure kind that opened the breaker ('' while closed). */
  get kind(): string {
    return this.#kind;
  }

  /** Changes made by this instance, restarts it held, and probe restarts it was permitted. */
  stats(): { opened: number; closed: number; held: number; probes: number } {
    return { ...this.#stats };
  }

  /** Records a start that reached WORKING or SCAN_QR_CODE (`ok`) or failed (with its reason). Never throws. */
  async record(sessionId: string, outcome: { ok: true } | { ok: false; reason: string }): Promise<void> {
    validateSessionId(sessionId);
    try {
      const reply = await this.#call(outcome.ok ? 'ok' : 'fail', sessionId, outcome.ok ? '' : failureKind(outcome.reason));
      if (reply.code === 'OK') this.#saw(reply.state, reply.kind, reply.change);
    } catch (err) {
      this.#log.debug('start outcome not recorded', { sessionId, err });
    }
  }

  /** Asks whether a restart may go now. Never throws: when Redis cannot answer, the restart goes. */
  async permit(sessionId: string): Promise<StartPermit> {
    validateSessionId(sessionId);
    try {
      const reply = await this.#call('permit', '', '');
      if (reply.code === 'BREAKER_OPEN') {
        this.#saw('open', reply.kind, '');
        this.#stats.held++;
        return { permitted: false, kind: reply.kind, retryAfterMs: reply.retryAfterMs };
      }
      if (reply.code !== 'OK') return { permitted: true, probe: false };
      this.#saw(reply.state, reply.kind, '');
      if (reply.change === 'probe') this.#stats.probes++;
      return { permitted: true, probe: reply.change === 'probe' };
    } catch (err) {
      this.#log.debug('breaker unreadable; the restart goes', { sessionId, err });
      return { permitted: true, probe: false };
    }
  }

  #call(op: string, sessionId: string, kind: string) {
    return lua.breaker(this.#internals.redis(), this.#internals.keys, { op, sessionId, kind, ...this.#args });
  }

  #saw(state: StartBreakerState, kind: string, change: string): void {
    this.#state = state;
    this.#kind = state === 'open' ? kind : '';
    if (change !== 'opened' && change !== 'closed') return;
    const opened = change === 'opened';
    this.#stats[opened ? 'opened' : 'closed']++;
    if (opened) this.#log.error('start breaker opened: most starts across the fleet fail the same way; restarts wait', { kind });
    else this.#log.warn('start breaker closed: starts succeed again', { kind });
    this.emit('change', { state, kind });
    const outbox = this.#internals.options.outbox;
    if (!outbox) return;
    const data = { state, kind, windowMs: Number(this.#args.windowMs) };
    outbox.enqueue({ type: opened ? 'fleet.breaker.opened' : 'fleet.breaker.closed', data }).catch((err: unknown) => {
      this.#log.error('breaker webhook not enqueued', { err });
    });
  }
}
