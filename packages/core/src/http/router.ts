import { timingSafeEqual } from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { Registry } from 'prom-client';
import type { Fleet } from '../registry/fleet.js';
import { validateSessionId } from '../ids.js';
import { createFleetMetrics } from '../metrics/fleet-metrics.js';
import { createOutboxMetrics } from '../metrics/outbox-metrics.js';
import type { Outbox } from '../outbox/outbox.js';

/** Options of {@link createFleetRouter}. */
export interface FleetRouterOptions {
  /** prom-client registry `/metrics` serves; the fleet metrics are added to it. @default a new Registry */
  registry?: Registry;
  /** Bearer token `POST /drain` requires. @default none: the endpoint is open (keep it on an internal port) */
  drainToken?: string;
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

function tokenMatches(req: Request, token: string): boolean {
  const given = Buffer.from(/^Bearer (.+)$/i.exec(req.get('authorization') ?? '')?.[1] ?? '');
  const wanted = Buffer.from(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/**
 * The instance's operational routes: `GET /livez`, `GET /readyz` (503 while starting, fenced, draining or
 * closed), `GET /metrics`, `GET /sessions`, `GET /sessions/:id`, `GET /sessions/:id/qr`, `POST /drain`.
 * @example
 * app.use(createFleetRouter(fleet, { drainToken: process.env.DRAIN_TOKEN }));
 */
export function createFleetRouter(fleet: Fleet, options: FleetRouterOptions = {}): Router {
  const registry = createFleetMetrics(fleet, options.registry ?? new Registry());
  if (options.outbox) createOutboxMetrics(options.outbox, registry);
  const router = Router();

  // Alive unless closed: a fenced or draining instance is still making progress and must not be restarted.
  router.get('/livez', (_req, res) => {
    res.status(fleet.state === 'closed' ? 503 : 200).json({ status: fleet.state === 'closed' ? 'closed' : 'ok' });
  });

  router.get('/readyz', (_req, res) => {
    const ready = fleet.state === 'active' && fleet.leaseValid;
    res.status(ready ? 200 : 503).json({ ready, state: fleet.state, leaseValid: fleet.leaseValid });
  });

  router.get('/metrics', async (_req, res, next) => {
    try {
      res.type(registry.contentType).send(await registry.metrics());
    } catch (err) {
      next(err);
    }
  });

  router.get('/sessions', (_req, res) => {
    const sessions = [...fleet.ownedSessions()].map(([sessionId, epoch]) => ({ sessionId, epoch }));
    res.json({ instance: fleet.options.instanceId, maxSessions: fleet.options.maxSessions, sessions });
  });

  router.get('/sessions/:id', async (req, res, next) => {
    if (badId(res, req.params.id)) return;
    try {
      const owner = await fleet.owner(req.params.id);
      if (!owner) res.status(404).json({ error: 'WAFLEET_NOT_FOUND', sessionId: req.params.id });
      else res.json(owner);
    } catch (err) {
      next(err);
    }
  });

  router.get('/sessions/:id/qr', async (req, res, next) => {
    if (badId(res, req.params.id)) return;
    try {
      if (!fleet.owns(req.params.id)) {
        const owner = await fleet.owner(req.params.id);
        res.status(421).json({
          error: 'WAFLEET_MISDIRECTED',
          sessionId: req.params.id,
          owner: owner?.live ? owner.owner : '',
          ownerUrl: owner?.live ? owner.ownerUrl : '',
          epoch: owner?.epoch ?? '',
        });
        return;
      }
      const qr = await options.qr?.(req.params.id);
      if (qr === undefined) res.status(404).json({ error: 'WAFLEET_NOT_FOUND', message: 'No QR code for this session now' });
      else res.json({ sessionId: req.params.id, qr });
    } catch (err) {
      next(err);
    }
  });

  router.post('/drain', (req, res) => {
    if (options.drainToken !== undefined && !tokenMatches(req, options.drainToken)) {
      res.status(401).set('www-authenticate', 'Bearer').json({ error: 'WAFLEET_UNAUTHORIZED' });
      return;
    }
    // Answer at once: the readiness probe turns 503 now and the drain proceeds in the background.
    void fleet.drain().catch(() => undefined);
    res.status(202).json({ draining: true, sessions: fleet.ownedSessions().size });
  });

  return router;
}
