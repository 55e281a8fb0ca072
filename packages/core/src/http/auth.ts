import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ConfigError, createLogger, describeValue as describe, type Logger } from '@wafleet/protocol';
import { answerError } from './answer-error.js';

/**
 * Who may call the operational routes that show or change the fleet (session list and records, QR codes, drain):
 * - `{ token }`: `Authorization: Bearer <token>`; several tokens during a rotation. Tokens are at least 32
 *   visible ASCII characters (e.g. `openssl rand -base64 32`).
 * - `{ verify }`: your own check (a session cookie, mTLS, an API gateway header); true lets the request through.
 * - `'none'`: no check at all, for a router that only your own authenticated middleware or a private network
 *   reaches. Anyone who can reach an open router can link their phone to your customers' WhatsApp accounts.
 */
export type RouterAuth = { token: string | readonly string[] } | { verify: (req: Request) => boolean | Promise<boolean> } | 'none';

/** Shortest bearer token accepted: 32 characters of base64 carry 192 bits. */
export const MIN_TOKEN_LENGTH = 32;
const TOKEN = /^[\x21-\x7e]+$/;

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Validates `auth` and returns the middleware that enforces it: 401 JSON (`WAFLEET_UNAUTHORIZED`) unless the
 * caller is let in. The router uses it; hosts can protect their own routes with the same decision.
 * @throws ConfigError when `auth` is missing, of the wrong shape, or a token is shorter than 32 characters
 * @example
 * const admin = requireAuth({ token: process.env.WAFLEET_ADMIN_TOKEN });
 * app.post('/sessions/:sessionId/restart', admin, fleetGuard(fleet), restart);
 */
export function requireAuth(auth: RouterAuth, options: { logger?: unknown } = {}): RequestHandler {
  return authMiddleware(auth, createLogger(options.logger, 'http'));
}

/** {@link requireAuth} with an adapted logger. */
export function authMiddleware(auth: unknown, logger: Logger): RequestHandler {
  if (auth === 'none') return (_req, _res, next) => next();
  if (typeof auth !== 'object' || auth === null || (!('token' in auth) && !('verify' in auth))) {
    throw new ConfigError(
      'auth',
      `Expected \`auth\` to be { token }, { verify } or 'none', got ${describe(auth)}: the router serves QR codes and the session list, so it never opens to anonymous callers by default`,
    );
  }
  if ('verify' in auth) {
    const verify = auth.verify;
    if (typeof verify !== 'function') throw new ConfigError('auth.verify', 'Expected `auth.verify` to be a function (req) => boolean');
    return async (req: Request, res: Response, next: NextFunction) => {
      let allowed: unknown;
      try {
        allowed = await verify(req);
      } catch (err) {
        answerError(res, err, logger);
        return;
      }
      if (allowed === true) next();
      else unauthorized(res);
    };
  }
  const list: unknown[] = typeof auth.token === 'string' ? [auth.token] : Array.isArray(auth.token) ? auth.token : [auth.token];
  if (list.length === 0) throw new ConfigError('auth.token', 'Expected `auth.token` to be a token or a non-empty list of tokens');
  // Hashing first makes every comparison the same length, so timing shows neither a prefix nor a length.
  const wanted = list.map((token, i) => {
    // Never quote a token: it is a credential.
    if (typeof token !== 'string' || token.length < MIN_TOKEN_LENGTH || token.length > 4096 || !TOKEN.test(token)) {
      throw new ConfigError(
        'auth.token',
        `Expected \`auth.token\`${list.length > 1 ? `[${i}]` : ''} to be at least ${MIN_TOKEN_LENGTH} visible ASCII characters (e.g. openssl rand -base64 32)`,
      );
    }
    return digest(token);
  });
  return (req: Request, res: Response, next: NextFunction) => {
    const given = /^Bearer +(\S+) *$/i.exec(req.get('authorization') ?? '')?.[1];
    const givenDigest = digest(given ?? '');
    let ok = false;
    for (const want of wanted) ok = timingSafeEqual(givenDigest, want) || ok;
    if (ok && given !== undefined) next();
    else unauthorized(res);
  };
}

function unauthorized(res: Response): void {
  res.status(401).set('www-authenticate', 'Bearer').json({ error: 'WAFLEET_UNAUTHORIZED', message: 'Missing or wrong credentials' });
}
