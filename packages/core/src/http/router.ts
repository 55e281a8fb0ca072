import type { NextFunction, Request, Response, Router } from 'express';
import type { Registry } from 'prom-client';
import {
  ConfigError,
  describeValue as describe,
  OwnedElsewhereError,
  OwnerExpiringError,
  validateSessionId,
  type PlaceOptions,
} from '@wafleet/protocol';
import type { Fleet } from '../registry/fleet.js';
import { fleetInternals } from '../internals.js';
import { createFleetMetrics } from '../metrics/fleet-metrics.js';
import { createOutboxMetrics } from '../metrics/outbox-metrics.js';
import { createSupervisorMetrics } from '../metrics/supervisor-metrics.js';
import type { Outbox } from '../outbox/outbox.js';
import type { RebalanceOptions, Supervisor } from '../supervisor/supervisor.js';
import { answerError } from './answer-error.js';
import { authMiddleware, type RouterAuth } from './auth.js';
import { misdirected } from './guard.js';
import { optionalPeer } from './optional-peer.js';

/** Options of {@link createFleetRouter}. */
export interface FleetRouterOptions {
  /**
   * Who may call every route except `/livez`, `/readyz` (and `/metrics` with `publicMetrics`). Required: there is
   * no default, so a router is never open by accident. See {@link RouterAuth}.
   */
  auth: RouterAuth;
  /** Serves `/metrics` without authentication (labels are closed sets: no session ids or URLs). @default false */
  publicMetrics?: boolean;
  /** prom-client registry `/metrics` serves; the fleet metrics are added to it. @default a new Registry */
  registry?: Registry;
  /** The current QR code of a session this instance owns, for `GET /sessions/:id/qr`. */
  qr?: (sessionId: string) => string | undefined | Promise<string | undefined>;
  /**
   * Adds the webhook outbox metrics to `/metrics`, and the outbox admin routes: `GET /outbox` (backlog, dead letters,
   * oldest pending age, breaker, disabled targets), `GET /outbox/dead` (`?session`,
   * `?limit`: dead letters, oldest first, without their bodies), `POST /outbox/replay` (`{ ids?, session?, from?, to? }`:
   * dead letters back into delivery), `POST /outbox/targets/enable` (`{ target }`: a target disabled by 410 Gone).
   */
  outbox?: Outbox;
  /**
   * Stops and restarts sessions owned here for `POST /sessions/:id/stop` and `/restart`, so the engine stops
   * before the session is released and a restart keeps it here. Without it a stop releases through the fleet's
   * `stopSession` hook, and a restart releases and places the session again. A whole Supervisor also adds its
   * metrics to `/metrics` and its view of each session owned here (status, last failure, restarts, breaker hold) to
   * `GET /sessions` and `GET /sessions/:id` (as `local`), and serves `POST /rebalance` (this instance hands off its
   * share of the fleet's imbalance: see `Supervisor.rebalance`).
   */
  supervisor?: Pick<Supervisor, 'stopSession' | 'restartSession'> & Partial<Pick<Supervisor, 'stats' | 'session' | 'rebalance'>>;
}

/** Largest JSON body of `POST /sessions/:id/place`: labels plus 4096 bytes of metadata, with room to spare. */
const PLACE_BODY_LIMIT = '32kb';

/** The `{ labels?, metadata? }` body of `POST /sessions/:id/place`; anything else is a ConfigError (400). */
function placeBody(body: unknown): Omit<PlaceOptions, 'exclude'> {
  if (body === undefined || body === null || (typeof body === 'object' && Object.keys(body).length === 0)) return {};
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new ConfigError('body', `Expected the body to be a JSON object { labels?, metadata? }, got ${describe(body)}`);
  }
  const extra = Object.keys(body).filter((k) => k !== 'labels' && k !== 'metadata');
  if (extra.length > 0) throw new ConfigError('body', `Expected only \`labels\` and \`metadata\` in the body, got ${describe(extra)}`);
  const { labels, metadata } = body as Omit<PlaceOptions, 'exclude'>;
  return { ...(labels === undefined ? {} : { labels }), ...(metadata === undefined ? {} : { metadata }) };
}

/** The `{ dryRun?, spread?, maxMoves? }` body of `POST /rebalance`; anything else is a ConfigError (400). */
function rebalanceBody(body: unknown): RebalanceOptions {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new ConfigError('body', `Expected the body to be a JSON object { dryRun?, spread?, maxMoves? }, got ${describe(body)}`);
  }
  const extra = Object.keys(body).filter((k) => !['dryRun', 'spread', 'maxMoves'].includes(k));
  if (extra.length > 0)
    throw new ConfigError('body', `Expected only \`dryRun\`, \`spread\` and \`maxMoves\` in the body, got ${describe(extra)}`);
  const { dryRun } = body as RebalanceOptions;
  if (dryRun !== undefined && typeof dryRun !== 'boolean')
    throw new ConfigError('dryRun', `Expected \`dryRun\` to be a boolean, got ${describe(dryRun)}`);
  return body as RebalanceOptions;
}

function badId(res: Response, id: unknown): boolean {
  try {
    validateSessionId(id);
    return false;
  } catch (err) {
    res.status(400).json({ error: (err as { code: string }).code, message: (err as Error).message });
    return true;
  }
}

/**
 * The instance's operational routes: `GET /livez`, `GET /readyz` (503 while starting, fenced, draining or
 * closed), `GET /metrics`, `GET /sessions`, `GET /sessions/:id` (owner, status, desired state, reason,
 * metadata), `GET /sessions/:id/qr`, `POST /sessions/:id/place` (`{ labels?, metadata? }`),
 * `POST /sessions/:id/stop`, `POST /sessions/:id/restart`, `POST /drain`. Every route but the probes (and
 * `/metrics` when `publicMetrics`) answers 401 unless `auth` lets the caller in. Any instance places, and stops or
 * restarts a session nobody live owns; one owned by another live instance is answered 421 with its owner.
 * Failures answer JSON: 503 with `Retry-After` when Redis is unreachable, 500 without internals otherwise.
 * Needs the optional peers express and prom-client (loaded here, not when `@wafleet/core/express` is imported).
 * @throws ConfigError when `auth` is missing or a token is shorter than 32 characters, or when express or
 *   prom-client is not installed (`option` names the package)
 * @example
 * app.use(createFleetRouter(fleet, { auth: { token: process.env.WAFLEET_ADMIN_TOKEN }, qr: (id) => supervisor.qr(id) }));
 */
export function createFleetRouter(fleet: Fleet, options: FleetRouterOptions): Router {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('auth', "Expected an options object with `auth` ({ token }, { verify } or 'none')");
  }
  if ('drainToken' in options) {
    throw new ConfigError('drainToken', '`drainToken` was replaced by `auth: { token }`, which protects every route but the probes');
  }
  const log = fleetInternals(fleet).options.logger;
  const requireAuth = authMiddleware(options.auth, log);
  const { Router, json } = optionalPeer('express', 'createFleetRouter');
  const { Registry } = optionalPeer('prom-client', 'createFleetRouter (it serves /metrics)');
  const registry = createFleetMetrics(fleet, options.registry ?? new Registry());
  if (options.outbox) createOutboxMetrics(options.outbox, registry);
  if (typeof options.supervisor?.stats === 'function') createSupervisorMetrics(options.supervisor as Pick<Supervisor, 'stats'>, registry);
  /** The supervisor's view of a session owned here, without its transition history. */
  const local = (sessionId: string) => {
    const view = options.supervisor?.session?.(sessionId);
    if (!view) return undefined;
    const { status, desired, reason, restarts, failure, heldByBreaker } = view;
    return { status, desired, reason, restarts, failure: failure ?? null, heldByBreaker: heldByBreaker ?? null };
  };
  const router = Router();
  const handle =
    (fn: (req: Request, res: Response) => unknown) =>
    async (req: Request, res: Response): Promise<void> => {
      try {
        await fn(req, res);
      } catch (err) {
        answerError(res, err, log);
      }
    };

  // Alive unless closed: a fenced or draining instance is still making progress and must not be restarted.
  router.get('/livez', (_req, res) => {
    res.status(fleet.state === 'closed' ? 503 : 200).json({ status: fleet.state === 'closed' ? 'closed' : 'ok' });
  });

  router.get('/readyz', (_req, res) => {
    const ready = fleet.state === 'active' && fleet.leaseValid;
    res.status(ready ? 200 : 503).json({ ready, state: fleet.state, leaseValid: fleet.leaseValid });
  });

  const metrics = handle(async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  });
  if (options.publicMetrics === true) router.get('/metrics', metrics);
  else router.get('/metrics', requireAuth, metrics);

  router.get(
    '/sessions',
    requireAuth,
    handle((_req, res) => {
      const sessions = [...fleet.ownedSessions()].map(([sessionId, epoch]) => ({ sessionId, epoch, local: local(sessionId) }));
      res.json({ instance: fleet.instanceId, maxSessions: fleet.maxSessions, sessions });
    }),
  );

  router.get(
    '/sessions/:id',
    requireAuth,
    handle(async (req, res) => {
      if (badId(res, req.params.id)) return;
      const owner = await fleet.owner(req.params.id as string);
      if (!owner) res.status(404).json({ error: 'WAFLEET_NOT_FOUND', sessionId: req.params.id });
      else res.json(fleet.owns(owner.sessionId) ? { ...owner, local: local(owner.sessionId) } : owner);
    }),
  );

  router.get(
    '/sessions/:id/qr',
    requireAuth,
    handle(async (req, res) => {
      const sessionId = req.params.id as string;
      if (badId(res, sessionId)) return;
      if (!fleet.owns(sessionId)) return misdirected(fleet, sessionId, res);
      const qr = await options.qr?.(sessionId);
      if (qr === undefined) res.status(404).json({ error: 'WAFLEET_NOT_FOUND', message: 'No QR code for this session now' });
      else res.json({ sessionId, qr });
    }),
  );

  /** OwnedElsewhere: 421 with the owner (go there); OwnerExpiring: 503 until its adoption delay has passed. */
  const answerRouting = (res: Response, sessionId: string, err: unknown): void => {
    if (err instanceof OwnedElsewhereError) {
      res.status(421).json({ error: 'WAFLEET_MISDIRECTED', sessionId, owner: err.owner, ownerUrl: err.ownerUrl, epoch: err.epoch });
    } else if (err instanceof OwnerExpiringError) {
      res
        .status(503)
        .set('retry-after', String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))))
        .json({ error: err.code, message: err.message, owner: err.owner, retryAfterMs: err.retryAfterMs });
    } else throw err;
  };

  const sessionAction = (fn: (sessionId: string, req: Request, res: Response) => Promise<void>) =>
    handle(async (req, res) => {
      const sessionId = req.params.id as string;
      if (badId(res, sessionId)) return;
      try {
        await fn(sessionId, req, res);
      } catch (err) {
        answerRouting(res, sessionId, err);
      }
    });

  router.post(
    '/sessions/:id/place',
    requireAuth,
    json({ limit: PLACE_BODY_LIMIT }),
    sessionAction(async (sessionId, req, res) => {
      const placed = await fleet.place(sessionId, placeBody(req.body));
      res.status(placed.outcome === 'pending' ? 202 : 200).json(placed);
    }),
  );

  router.post(
    '/sessions/:id/stop',
    requireAuth,
    sessionAction(async (sessionId, _req, res) => {
      // Owned here: the engine stops before the release (the supervisor, else the fleet's stopSession hook).
      if (fleet.owns(sessionId) && options.supervisor) await options.supervisor.stopSession(sessionId);
      else await fleet.stop(sessionId);
      res.json({ sessionId, desired: 'stopped', reason: 'stopped by request' });
    }),
  );

  router.post(
    '/sessions/:id/restart',
    requireAuth,
    sessionAction(async (sessionId, _req, res) => {
      if (fleet.owns(sessionId) && options.supervisor) {
        await options.supervisor.restartSession(sessionId);
        res.json({ sessionId, outcome: 'restarted', owner: fleet.instanceId, ownerUrl: fleet.url, epoch: fleet.epochOf(sessionId) ?? '' });
        return;
      }
      const placed = await fleet.restart(sessionId);
      res.status(placed.outcome === 'pending' ? 202 : 200).json(placed);
    }),
  );

  router.post(
    '/drain',
    requireAuth,
    handle((_req, res) => {
      // Answer at once: the readiness probe turns 503 now and the drain proceeds in the background.
      void fleet.drain().catch((err: unknown) => log.error('drain failed', { err }));
      res.status(202).json({ draining: true, sessions: fleet.ownedSessions().size });
    }),
  );

  if (options.outbox) {
    const outbox = options.outbox;
    router.get(
      '/outbox',
      requireAuth,
      handle((_req, res) => {
        const { pending, dead, oldestPendingAt, breaker, disabledTargets } = outbox.stats();
        const oldestPendingAgeMs = oldestPendingAt === undefined ? 0 : Math.max(0, Date.now() - oldestPendingAt);
        res.json({ pending, dead, oldestPendingAgeMs, breaker, disabledTargets });
      }),
    );
    router.get(
      '/outbox/dead',
      requireAuth,
      handle(async (req, res) => {
        const limit = req.query['limit'] === undefined ? 100 : Number(req.query['limit']);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
          throw new ConfigError('limit', 'Expected `limit` to be an integer from 1 to 1000');
        const session = typeof req.query['session'] === 'string' ? req.query['session'] : undefined;
        if (session !== undefined) validateSessionId(session);
        const rows = await outbox.deadLetters({ session, limit });
        // Metadata only: bodies carry message texts and phone numbers, and the target URL may carry a token.
        const events = rows.map(({ id, session: s, seq, type, attempts, createdAt, lastError, deadReason, target }) => ({
          id,
          session: s,
          seq,
          type,
          attempts,
          createdAt,
          lastError,
          deadReason,
          target: new URL(target).origin + new URL(target).pathname,
        }));
        res.json({ events });
      }),
    );
    router.post(
      '/outbox/replay',
      requireAuth,
      json({ limit: '64kb' }),
      handle(async (req, res) => {
        const body = (req.body ?? {}) as Record<string, unknown>;
        const extra = Object.keys(body).filter((k) => !['ids', 'session', 'from', 'to'].includes(k));
        if (extra.length > 0)
          throw new ConfigError('body', `Expected only \`ids\`, \`session\`, \`from\` and \`to\` in the body, got ${describe(extra)}`);
        if (body['ids'] !== undefined && (!Array.isArray(body['ids']) || !body['ids'].every((id) => typeof id === 'string')))
          throw new ConfigError('ids', 'Expected `ids` to be an array of event ids');
        if (body['session'] !== undefined) validateSessionId(body['session']);
        for (const k of ['from', 'to'] as const)
          if (body[k] !== undefined && !Number.isInteger(body[k])) throw new ConfigError(k, `Expected \`${k}\` to be a Unix ms integer`);
        const replayed = await outbox.replay(body as { ids?: string[]; session?: string; from?: number; to?: number });
        res.json({ replayed });
      }),
    );
    router.post(
      '/outbox/targets/enable',
      requireAuth,
      json({ limit: '4kb' }),
      handle(async (req, res) => {
        const target = (req.body as { target?: unknown } | undefined)?.target;
        if (typeof target !== 'string' || !URL.canParse(target))
          throw new ConfigError('target', 'Expected `target` to be the URL the outbox disabled');
        await outbox.enableTarget(target);
        res.json({ enabled: target });
      }),
    );
  }

  router.post(
    '/rebalance',
    requireAuth,
    json({ limit: '4kb' }),
    handle(async (req, res) => {
      const supervisor = options.supervisor;
      if (typeof supervisor?.rebalance !== 'function') {
        res.status(501).json({ error: 'WAFLEET_CONFIG', message: 'This instance was given no supervisor that can rebalance' });
        return;
      }
      res.json(await supervisor.rebalance(rebalanceBody(req.body)));
    }),
  );

  // Whatever a route lets escape (or express itself raises) is answered as JSON, not the host's HTML page.
  router.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    // The JSON body parser's own refusals (malformed JSON, too large) are the caller's mistake, not a 500.
    const status = (err as { status?: unknown; type?: unknown } | null)?.status;
    if ((status === 400 || status === 413) && typeof (err as { type?: unknown }).type === 'string') {
      res.status(status).json({ error: 'WAFLEET_CONFIG', message: status === 413 ? 'Body too large' : 'Body is not valid JSON' });
      return;
    }
    answerError(res, err, log);
  });
  return router;
}
