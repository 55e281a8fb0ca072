import type { Request } from 'express';

/** How a middleware finds the session id of a request. */
export type SessionIdOf = (req: Request) => string | undefined;

/** Default: the route parameter `sessionId`, `session` or `id`, in that order. */
export const sessionIdFromParams: SessionIdOf = (req) => {
  const value: unknown = req.params?.sessionId ?? req.params?.session ?? req.params?.id;
  return typeof value === 'string' ? value : undefined;
};
