import { Router, type NextFunction, type Request, type Response } from 'express';
import { Registry } from 'prom-client';
import { ConfigError } from '../errors.js';
import type { Fleet } from '../registry/fleet.js';
import { validateSessionId } from '../ids.js';
import { createFleetMetrics } from '../metrics/fleet-metrics.js';
import { createOutboxMetrics } from '../metrics/outbox-metrics.js';
import type { Outbox } from '../outbox/outbox.js';
import { answerError } from './answer-error.js';
import { authMiddleware, type RouterAuth } from './auth.js';
import { misdirected } from './guard.js';

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
  /** Adds the webhook outbox metrics to `/metrics`. */
  outbox?: Outbox;
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
 * closed), `GET /metrics`, `GET /sessions`, `GET /sessions/:id`, `GET /sessions/:id/qr`, `POST /drain`. Every
 * route but the probes (and `/metrics` when `publicMetrics`) answers 401 unless `auth` lets the caller in.
 * Failures answer JSON: 503 with `Retry-After` when Redis is unreachable, 500 without internals otherwise.
 * @throws ConfigError when `auth` is missing or a token is shorter than 32 characters
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
  const log = fleet.options.logger;
  const requireAuth = authMiddleware(options.auth, log);
  const registry = createFleetMetrics(fleet, options.registry ?? new Registry());
  if (options.outbox) createOutboxMetrics(options.outbox, registry);
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
      const sessions = [...fleet.ownedSessions()].map(([sessionId, epoch]) => ({ sessionId, epoch }));
      res.json({ instance: fleet.options.instanceId, maxSessions: fleet.options.maxSessions, sessions });
    }),
  );

  router.get(
    '/sessions/:id',
    requireAuth,
    handle(async (req, res) => {
      if (badId(res, req.params.id)) return;
      const owner = await fleet.owner(req.params.id as string);
      if (!owner) res.status(404).json({ error: 'WAFLEET_NOT_FOUND', sessionId: req.params.id });
      else res.json(owner);
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

  router.post(
    '/drain',
    requireAuth,
    handle((_req, res) => {
      // Answer at once: the readiness probe turns 503 now and the drain proceeds in the background.
      void fleet.drain().catch((err: unknown) => log.error('drain failed', { err }));
      res.status(202).json({ draining: true, sessions: fleet.ownedSessions().size });
    }),
  );

  // Whatever a route lets escape (or express itself raises) is answered as JSON, not the host's HTML page.
  router.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => answerError(res, err, log));
  return router;
}
