import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import { Agent, request } from 'undici';
import type { Fleet } from '../registry/fleet.js';
import { EPOCH_HEADER, FORWARDED_BY_HEADER, FORWARDED_HEADER, IDEMPOTENCY_HEADER, urlUnder, type SessionOwner } from '@wafleet/protocol';

/** RFC 9110 7.6.1 connection-specific fields, plus `host` (the owner's own) and `proxy-connection` (obsolete). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);
/** RFC 9110 idempotent methods: a repeat has the effect of one request. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Failures that happen before a request leaves this instance: nothing reached the owner. */
const NOT_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
/** How often a waiting forwarder reads the registry again (one read per session, shared by its waiting requests). */
export const OWNER_POLL_MS = 100;

let agent: Agent | undefined;
/** One keep-alive pool per process, shared by every forwarding guard: a forwarded request reuses a warm socket. */
function forwardAgent(): Agent {
  agent ??= new Agent({ keepAliveTimeout: 30_000, connections: 256 });
  return agent;
}

/** What a request carries, and whether it can be sent again. */
export type ForwardBody =
  | { kind: 'none' }
  /** Still unread: streamed to the owner, replayable only until the first chunk is taken. */
  | { kind: 'stream'; taken: boolean }
  /** Read by a body parser before the guard: sent again as bytes (a parsed JSON body is serialized again). */
  | { kind: 'bytes'; bytes: Buffer };

/**
 * The body of `req` for forwarding, or undefined when a body parser consumed it into something that cannot be sent
 * again faithfully (a form, a multipart upload): put the guard before the parser.
 */
export function forwardBody(req: Request): ForwardBody | undefined {
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) return { kind: 'none' };
  if (!req.readableDidRead && !req.readableEnded) return { kind: 'stream', taken: false };
  const parsed: unknown = req.body;
  if (Buffer.isBuffer(parsed)) return { kind: 'bytes', bytes: parsed };
  if (typeof parsed === 'string') return { kind: 'bytes', bytes: Buffer.from(parsed) };
  if (parsed !== undefined && /^application\/(?:[\w.+-]+\+)?json\b/i.test(req.get('content-type') ?? '')) {
    return { kind: 'bytes', bytes: Buffer.from(JSON.stringify(parsed)) };
  }
  return undefined;
}

/** Whether a request may reach the owner twice: an idempotent method, or an `Idempotency-Key` the owner honours. */
export function retrySafe(req: Request): boolean {
  return IDEMPOTENT.has(req.method) || req.headers[IDEMPOTENCY_HEADER] !== undefined;
}

/** Whether `body` can be sent once more. */
export const replayable = (body: ForwardBody): boolean => body.kind !== 'stream' || !body.taken;

/** Fields named in a `Connection` header are hop-by-hop too. */
function connectionFields(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Set<string> {
  const listed = headers.connection;
  const names = (Array.isArray(listed) ? listed.join(',') : (listed ?? '')).split(',');
  return new Set(names.map((n) => n.trim().toLowerCase()).filter(Boolean));
}

function requestHeaders(req: Request, owner: SessionOwner, via: string, body: ForwardBody): Record<string, string | string[]> {
  const drop = connectionFields(req.headers);
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && !drop.has(name)) out[name] = value;
  }
  if (body.kind === 'bytes') {
    // The parser decoded (and possibly inflated) the body: what goes out is plain bytes of this length.
    delete out['content-encoding'];
    out['content-length'] = String(body.bytes.length);
  }
  out[EPOCH_HEADER] = owner.epoch;
  out[FORWARDED_HEADER] = via;
  const client = req.socket.remoteAddress;
  if (client) out['x-forwarded-for'] = out['x-forwarded-for'] ? `${String(out['x-forwarded-for'])}, ${client}` : client;
  return out;
}

function responseHeaders(headers: Record<string, string | string[] | undefined>, via: string): OutgoingHttpHeaders {
  const drop = connectionFields(headers);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && !drop.has(name)) out[name] = value;
  }
  out[FORWARDED_BY_HEADER] = via;
  return out;
}

/** Pulls `req` only when the owner's socket is ready for the body, so a refused connection leaves it unread. */
async function* streamOf(req: Request, body: { taken: boolean }): AsyncGenerator<Buffer> {
  body.taken = true;
  // A failed forward must not destroy the caller's request: it still gets an answer.
  for await (const chunk of req.iterator({ destroyOnReturn: false })) yield chunk as Buffer;
}

/**
 * How one forward ended: `answered` (the owner's response went to the caller, or the caller left), `not-sent` (no
 * connection: nothing reached the owner), `misdirected` (the owner answered 421: not executed), `failed` (the
 * connection broke before the response: the owner may have executed it).
 */
export type ForwardOutcome = 'answered' | 'not-sent' | 'misdirected' | 'failed';

/**
 * Sends `req` to `owner` once, on the owner's origin with the same path and query, and streams the answer back.
 * Hop-by-hop headers are dropped; `x-wafleet-epoch` is the owner's epoch and `x-wafleet-forwarded` names this
 * instance, so the owner never forwards it again.
 */
export async function forwardOnce(
  req: Request,
  res: Response,
  owner: SessionOwner,
  body: ForwardBody,
  options: { via: string; headersTimeoutMs: number },
): Promise<{ outcome: ForwardOutcome; error?: unknown }> {
  const url = urlUnder('ownerUrl', owner.ownerUrl, req.originalUrl);
  const controller = new AbortController();
  // The caller left before the owner answered: stop the owner's request too.
  const onClose = () => controller.abort();
  res.once('close', onClose);
  let upstream: Awaited<ReturnType<typeof request>>;
  try {
    upstream = await request(url, {
      method: req.method as 'GET',
      headers: requestHeaders(req, owner, options.via, body),
      // undici sends an async iterable as a body; its types list only streams.
      body: body.kind === 'none' ? undefined : body.kind === 'bytes' ? body.bytes : (streamOf(req, body) as unknown as Readable),
      dispatcher: forwardAgent(),
      signal: controller.signal,
      headersTimeout: options.headersTimeoutMs,
    });
  } catch (error) {
    res.off('close', onClose);
    if (res.destroyed) return { outcome: 'answered' };
    return { outcome: sentNothing(error) ? 'not-sent' : 'failed', error };
  }
  if (upstream.statusCode === 421) {
    res.off('close', onClose);
    await upstream.body.dump().catch(() => undefined);
    return { outcome: 'misdirected' };
  }
  res.writeHead(upstream.statusCode, responseHeaders(upstream.headers, options.via));
  // A caller that leaves mid-body, or an owner that dies mid-body: the pipeline destroys the other side.
  await pipeline(upstream.body, res).catch(() => undefined);
  res.off('close', onClose);
  return { outcome: 'answered' };
}

function sentNothing(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && NOT_SENT.has(e.code)) return true;
  }
  return false;
}

/** The next registry read of a session, shared by every request waiting on it: one read per session per poll. */
export class OwnerPoll {
  readonly #next = new Map<string, Promise<SessionOwner | null>>();

  constructor(readonly fleet: Pick<Fleet, 'owner'>) {}

  next(sessionId: string): Promise<SessionOwner | null> {
    let read = this.#next.get(sessionId);
    if (!read) {
      read = new Promise<void>((resolve) => setTimeout(resolve, OWNER_POLL_MS))
        .then(() => this.fleet.owner(sessionId))
        .finally(() => this.#next.delete(sessionId));
      this.#next.set(sessionId, read);
    }
    return read;
  }
}
