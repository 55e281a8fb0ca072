import { ConfigError, createLogger, describeValue as describe, inboxKeys, lua, validateSessionId, type Logger } from '@wafleet/protocol';
import { integer } from '../registry/options.js';
import { fleetInternals, type FleetInternals } from '../internals.js';
import type { Outbox } from '../outbox/outbox.js';
import type { Fleet } from '../registry/fleet.js';
import type { CatchUpRequest, InboundMessage, MessageCursor } from '../supervisor/engine.js';

/** Options of {@link createInbox}. */
export interface InboxOptions {
  /** The fleet whose Redis keeps what was delivered (per session: seen ids, per-chat cursors). */
  fleet: Fleet;
  /** Where messages go: one webhook per message, committed to disk before it counts as delivered. */
  outbox: Outbox;
  /** The webhook's event type. @default 'message.received' */
  eventType?: string;
  /** Catch-up after every start, or `false` for none. */
  catchUp?: false | { perChat?: number; total?: number; fallbackMs?: number; timeoutMs?: number };
  /** Message ids remembered per session for deduplication (the newest). @default 5000 */
  seenKept?: number;
  /** A session's bookkeeping expires this long after its last message. @default 604800000 (7 days) */
  ttlMs?: number;
  /** pino, winston or console-like logger. @default the fleet's logger */
  logger?: unknown;
}

/** Messages by what became of them, since the inbox was created. */
export interface InboxStats {
  /** Delivered to the outbox as they arrived. */
  live: number;
  /** Delivered to the outbox by a catch-up (`caughtUp: true` in the webhook). */
  caughtUp: number;
  /** Dropped: already delivered (live and by catch-up, or by a previous owner). */
  duplicates: number;
  /** Not delivered: the outbox refused to store it, or the engine reported a malformed message. */
  failed: number;
  /** Left out of a catch-up by its bounds (older than the newest `perChat` of a chat or `total` of a session). */
  truncated: number;
  /** Catch-ups that read history and delivered what was missing. */
  catchUps: number;
}

const DEFAULTS = Object.freeze({ perChat: 50, total: 500, fallbackMs: 600_000, timeoutMs: 30_000, seenKept: 5000, ttlMs: 604_800_000 });
const MAX_ID = 256;

/** Creates the inbox; give it to `createSupervisor({ inbox })`. */
export function createInbox(options: InboxOptions): Inbox {
  return new Inbox(options);
}

/**
 * Inbound messages, once each, across restarts and moves. Every message an engine reports goes to the outbox as one
 * webhook (`message.received`, with `caughtUp: false`); its id is remembered per session in Redis, and per chat the
 * newest delivered message is the cursor. After every start the supervisor asks the engine for the history since the
 * cursors (bounded per chat and in total) and delivers what is missing with `caughtUp: true`: messages that arrived
 * while the session was down, crashed, moving or restarting. A message seen before (live and by catch-up, or by the
 * previous owner) is dropped, so a receiver sees each message once; only a crash between the outbox commit and the
 * Redis write can repeat one, with the same message id.
 * @example
 * const inbox = createInbox({ fleet, outbox });
 * const supervisor = createSupervisor({ fleet, engine, inbox });
 */
export class Inbox {
  readonly #internals: FleetInternals;
  readonly #outbox: Outbox;
  readonly #o: {
    eventType: string;
    catchUp: false | { perChat: number; total: number; fallbackMs: number; timeoutMs: number };
    seenKept: number;
    ttlMs: number;
  };
  readonly #log: Logger;
  readonly #stats: InboxStats = { live: 0, caughtUp: 0, duplicates: 0, failed: 0, truncated: 0, catchUps: 0 };

  constructor(options: InboxOptions) {
    this.#internals = fleetInternals(options?.fleet);
    if (typeof options.outbox?.enqueue !== 'function')
      throw new ConfigError('outbox', 'Expected `outbox` to be an Outbox from createOutbox()');
    this.#outbox = options.outbox;
    const eventType = options.eventType ?? 'message.received';
    if (typeof eventType !== 'string' || !/^[\w.:-]{1,128}$/.test(eventType))
      throw new ConfigError('eventType', `Expected \`eventType\` to match [A-Za-z0-9_.:-]{1,128}, got ${describe(eventType)}`);
    const c = options.catchUp;
    if (c !== undefined && c !== false && (typeof c !== 'object' || c === null))
      throw new ConfigError('catchUp', `Expected \`catchUp\` to be an object or false, got ${describe(c)}`);
    this.#o = {
      eventType,
      catchUp:
        c === false
          ? false
          : {
              perChat: integer('catchUp.perChat', c?.perChat ?? DEFAULTS.perChat, 1),
              total: integer('catchUp.total', c?.total ?? DEFAULTS.total, 1),
              fallbackMs: integer('catchUp.fallbackMs', c?.fallbackMs ?? DEFAULTS.fallbackMs, 0),
              timeoutMs: integer('catchUp.timeoutMs', c?.timeoutMs ?? DEFAULTS.timeoutMs, 1),
            },
      seenKept: integer('seenKept', options.seenKept ?? DEFAULTS.seenKept, 1),
      ttlMs: integer('ttlMs', options.ttlMs ?? DEFAULTS.ttlMs, 1000),
    };
    this.#log = options.logger === undefined ? this.#internals.options.logger : createLogger(options.logger, 'inbox');
  }

  /** Counts since creation. */
  stats(): InboxStats {
    return { ...this.#stats };
  }

  /** Opens the bookkeeping of one run of a session (the supervisor does, at every launch). */
  open(sessionId: string, epoch: string): InboxRun {
    validateSessionId(sessionId);
    const keys = inboxKeys(this.#internals.keys.namespace, sessionId);
    const redis = () => this.#internals.redis();
    const o = this.#o;
    const ops: InboxOps = {
      catchUp: o.catchUp,
      log: this.#log,
      count: (what, n = 1) => {
        this.#stats[what] += n;
      },
      seen: async (id) => (await redis().zscore(keys.seen, id)) !== null,
      cursors: async () => {
        const cursors = new Map<string, MessageCursor>();
        let watermark: number | undefined;
        for (const [field, value] of Object.entries(await redis().hgetall(keys.cursors))) {
          if (field === '*') watermark = Number(value);
          else {
            const { id, ts } = JSON.parse(value) as { id: string; ts: string };
            cursors.set(field, { id, timestamp: Number(ts) });
          }
        }
        return { cursors, watermark };
      },
      mark: async (messages, advance, watermark) => {
        await lua.inboxMark(redis(), keys, {
          keep: o.seenKept,
          ttlMs: o.ttlMs,
          advance: advance ? '1' : '0',
          watermark: watermark === undefined ? '' : Math.floor(watermark),
          messages: JSON.stringify(messages.map((m) => [m.id, m.chatId, Math.floor(m.timestamp)])),
        });
      },
      enqueue: (runEpoch, message, caughtUp) => {
        const data = { ...message.data, id: message.id, chatId: message.chatId, timestamp: message.timestamp, caughtUp };
        return this.#outbox.enqueue({ type: o.eventType, session: sessionId, epoch: runEpoch, data });
      },
    };
    return new InboxRun(ops, sessionId, epoch);
  }
}

/** What an {@link InboxRun} does with its session's Redis keys and the outbox (built by `Inbox.open`; not public API). */
export interface InboxOps {
  readonly catchUp: false | { perChat: number; total: number; fallbackMs: number; timeoutMs: number };
  readonly log: Logger;
  count(what: keyof InboxStats, n?: number): void;
  seen(id: string): Promise<boolean>;
  cursors(): Promise<{ cursors: Map<string, MessageCursor>; watermark: number | undefined }>;
  mark(messages: readonly InboundMessage[], advance: boolean, watermark: number | undefined): Promise<void>;
  enqueue(epoch: string, message: InboundMessage, caughtUp: boolean): Promise<unknown>;
}

/** A malformed message is refused before anything is written: its reason, or undefined when it is fine. */
function malformed(m: InboundMessage): string | undefined {
  if (typeof m?.id !== 'string' || m.id === '' || m.id.length > MAX_ID) return 'id';
  if (typeof m.chatId !== 'string' || m.chatId === '' || m.chatId.length > MAX_ID || m.chatId === '*') return 'chatId';
  if (typeof m.timestamp !== 'number' || !Number.isFinite(m.timestamp) || m.timestamp < 0) return 'timestamp';
  if (m.data !== undefined && (typeof m.data !== 'object' || m.data === null || Array.isArray(m.data))) return 'data';
  return undefined;
}

/**
 * The inbox of one run of a session: deliveries one at a time, in the order they arrived. Until the run's catch-up
 * has delivered everything it found, cursors stay where the previous runs left them (a live message must not move a
 * chat's cursor past an older one the catch-up has yet to deliver, or a crash now would lose that one for good).
 */
export class InboxRun {
  readonly #inbox: InboxOps;
  readonly #sessionId: string;
  #epoch: string;
  #chain: Promise<void> = Promise.resolve();
  /** Cursors move only once the catch-up is done, and never after a message failed to reach the outbox. */
  #caughtUp = false;
  #broken = false;
  /** Newest delivered per chat in this run: the cursors to write when the catch-up ends or Redis lost them. */
  readonly #newest = new Map<string, InboundMessage>();
  #watermark: number | undefined;
  #closed = false;

  constructor(inbox: InboxOps, sessionId: string, epoch: string) {
    this.#inbox = inbox;
    this.#sessionId = sessionId;
    this.#epoch = epoch;
  }

  /** Delivers a message that arrived now; resolves when it is in the outbox (or dropped as a duplicate). */
  deliver(message: InboundMessage): Promise<void> {
    return this.#serial(() => this.#deliver(message, false));
  }

  /**
   * Reads what arrived while the session ran nowhere (through `read`, the engine's `catchUp`) and delivers what is
   * missing, oldest first; then moves the cursors and the watermark to this run. `readyAt` is when the run's live
   * messages began. Never throws: a failed catch-up leaves the cursors where they were, for the next run.
   */
  async catchUp(read: (request: CatchUpRequest) => Promise<InboundMessage[]>, readyAt: number): Promise<void> {
    const settings = this.#inbox.catchUp;
    const log = this.#inbox.log;
    try {
      if (settings) {
        const { cursors, watermark } = await this.#inbox.cursors();
        const since = watermark ?? readyAt - settings.fallbackMs;
        const request: CatchUpRequest = { cursors, since, perChat: settings.perChat, total: settings.total };
        let timer: NodeJS.Timeout | undefined;
        const found = await Promise.race([
          read(request),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${settings.timeoutMs} ms`)), settings.timeoutMs);
            timer.unref();
          }),
        ]).finally(() => clearTimeout(timer));
        const wanted = bounded(found, request);
        this.#inbox.count('truncated', wanted.truncated);
        for (const m of wanted.messages) await this.#serial(() => this.#deliver(m, true));
        this.#inbox.count('catchUps');
      }
      await this.#serial(async () => {
        if (this.#broken || this.#closed) return;
        this.#caughtUp = true;
        this.#watermark = readyAt;
        await this.#inbox.mark([...this.#newest.values()], true, readyAt);
      });
    } catch (err) {
      log.warn('catch-up failed; the next start tries again from the same cursors', { sessionId: this.#sessionId, err });
    }
  }

  /**
   * Redis lost its data and the session was re-asserted under `epoch`: writes this run's cursors and watermark
   * again, so the next start catches up from here and not from the fallback.
   */
  reassert(epoch: string): Promise<void> {
    this.#epoch = epoch;
    return this.#serial(async () => {
      if (!this.#caughtUp || this.#broken) return;
      await this.#inbox.mark([...this.#newest.values()], true, this.#watermark).catch(() => undefined);
    });
  }

  /** No deliveries after this (the run ended). */
  close(): void {
    this.#closed = true;
  }

  #noteNewest(message: InboundMessage): void {
    const newest = this.#newest.get(message.chatId);
    if (!newest || newest.timestamp <= message.timestamp) this.#newest.set(message.chatId, message);
  }

  #serial(fn: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(fn);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  async #deliver(message: InboundMessage, caughtUp: boolean): Promise<void> {
    const inbox = this.#inbox;
    // A closed run delivers nothing more: what it dropped lies after its cursors, where the next catch-up looks.
    if (this.#closed) return;
    const bad = malformed(message);
    if (bad) {
      inbox.count('failed');
      inbox.log.warn('malformed message dropped', { sessionId: this.#sessionId, field: bad });
      return;
    }
    // Unknown (Redis unreachable) counts as not seen: a repeat beats a loss.
    if (await inbox.seen(message.id).catch(() => false)) {
      inbox.count('duplicates');
      // Delivered before (by this run or an earlier one): the chat's cursor may move up to it.
      this.#noteNewest(message);
      return;
    }
    try {
      await inbox.enqueue(this.#epoch, message, caughtUp);
    } catch (err) {
      // Not stored: the cursors must stay behind it for the rest of this run, so the next catch-up finds it.
      this.#broken = true;
      inbox.count('failed');
      inbox.log.error('message not stored in the outbox; the next catch-up delivers it', { sessionId: this.#sessionId, err });
      return;
    }
    inbox.count(caughtUp ? 'caughtUp' : 'live');
    this.#noteNewest(message);
    const advance = this.#caughtUp && !this.#broken;
    await inbox.mark([message], advance, undefined).catch((err: unknown) => {
      inbox.log.debug('message not recorded as seen', { sessionId: this.#sessionId, err });
    });
  }
}

/** Keeps the newest `perChat` of each chat and the newest `total` overall, oldest first. */
function bounded(found: readonly InboundMessage[], request: CatchUpRequest): { messages: InboundMessage[]; truncated: number } {
  const byChat = new Map<string, InboundMessage[]>();
  for (const m of Array.isArray(found) ? found : []) {
    const since = request.cursors.get(m?.chatId)?.timestamp ?? request.since;
    if (typeof m?.timestamp !== 'number' || m.timestamp < since) continue;
    const list = byChat.get(m.chatId) ?? [];
    list.push(m);
    byChat.set(m.chatId, list);
  }
  let kept: InboundMessage[] = [];
  let considered = 0;
  for (const list of byChat.values()) {
    considered += list.length;
    kept.push(...list.sort((a, b) => a.timestamp - b.timestamp).slice(-request.perChat));
  }
  kept = kept.sort((a, b) => a.timestamp - b.timestamp).slice(-request.total);
  return { messages: kept, truncated: considered - kept.length };
}
