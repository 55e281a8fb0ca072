/**
 * What a session engine reports. A whatsapp-web.js binding maps `qr`, `code`, `authenticated`, `ready`,
 * `change_state`, `disconnected`, browser disconnect and page close onto these.
 */
export type EngineEvent =
  /** A QR code to scan (the session needs a human). */
  | { type: 'qr'; qr: string }
  /** A pairing code (pairing by phone number). */
  | { type: 'code'; code: string }
  /** Authenticated; may fire more than once. */
  | { type: 'authenticated' }
  /** Ready to send and receive; may fire more than once. */
  | { type: 'ready' }
  /** The account was logged out (by the phone, or the session was unpaired): never restart on its own. */
  | { type: 'logout'; reason: string }
  /** Another client took the session (WhatsApp CONFLICT): stop, then check ownership; never reconnect on its own. */
  | { type: 'conflict' }
  /** The engine died (browser disconnected, page closed, fatal error): restart with backoff. */
  | { type: 'crashed'; reason: string }
  /** Browser process ids, for the dead-man switch to kill if this instance stops refreshing its deadline. */
  | { type: 'pids'; pids: number[] }
  /** A message arrived (whatsapp-web.js `message`): the supervisor hands it to its inbox, deduplicated by id. */
  | { type: 'message'; message: InboundMessage }
  /**
   * A sent message's acknowledgement changed (whatsapp-web.js `message_ack`): -1 error, 0 pending (only on this
   * phone), 1 the server has it, 2 delivered to the device, 3 read, 4 played.
   */
  | { type: 'ack'; messageId: string; ack: number };

/** An inbound WhatsApp message as an engine reports it. */
export interface InboundMessage {
  /** WhatsApp's id of the message (`message.id._serialized`): what duplicates are recognised by. */
  id: string;
  /** The chat it arrived in (`message.from`, or the group). */
  chatId: string;
  /** When it was sent, Unix ms (whatsapp-web.js gives seconds: multiply by 1000). */
  timestamp: number;
  /** What the webhook carries besides id, chat and time (body, type, author, ...): a JSON object. */
  data?: Record<string, unknown>;
}

/** The newest message delivered in one chat. */
export interface MessageCursor {
  id: string;
  /** Unix ms. */
  timestamp: number;
}

/** What a catch-up asks an engine for: messages newer than what was delivered, within bounds. */
export interface CatchUpRequest {
  /** Per chat, the newest message delivered through the outbox: return that chat's messages at or after it. */
  cursors: ReadonlyMap<string, MessageCursor>;
  /** For chats without a cursor: return their messages at or after this time (Unix ms). */
  since: number;
  /** At most this many messages per chat (the newest). */
  perChat: number;
  /** At most this many in all (the newest). */
  total: number;
}

/** Handed to the factory: how the engine reports, the fencing epoch it runs under, and the session's metadata. */
export interface EngineContext {
  readonly sessionId: string;
  readonly epoch: string;
  /**
   * The session's metadata as the registry holds it at this start (`{}` when none): what the host stored with
   * `claim`, `place` or `setMetadata`, on whichever instance. Read on every start, adoption and handoff included.
   */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Report an event. Events after `stop()` was called are ignored. */
  report(event: EngineEvent): void;
  /**
   * True while this instance owns the session at `epoch` (its lease is valid and nobody took the session since):
   * what an engine checks before touching state another instance may use, e.g. a shared browser profile.
   */
  owns(): boolean;
}

/**
 * Why the supervisor stops an engine. An engine that keeps the session's login data may save it first when the
 * session goes on elsewhere or again (`handoff`, `shutdown`, `restart`); never when it was `fenced` (another instance
 * may own it now: a save would be refused at commit anyway) or `ended` (logout, conflict, crash).
 * - `handoff`: the fleet hands the session to another instance (drain, close)
 * - `shutdown`: the supervisor closes; the fleet hands the session off next
 * - `restart`: restarted on this instance
 * - `release`: stopped by request (desired stopped)
 * - `fenced`: this instance lost the session (lease lost, taken)
 * - `ended`: the engine ended the run itself (logout, conflict, crash)
 */
export type EngineStopReason = 'handoff' | 'shutdown' | 'restart' | 'release' | 'fenced' | 'ended';

/**
 * One run of one session (a whatsapp-web.js `Client`, a simulated engine). The supervisor creates a new engine for
 * every start and never reuses a stopped one.
 */
export interface SessionEngine {
  /** Launches the session; resolves once launched (readiness arrives later as a `ready` event). */
  start(): Promise<void>;
  /**
   * Stops the session and closes its browser; must be safe to call at any time and more than once (the first call's
   * `reason` counts). Engines written before `reason` existed may ignore it. One exception: a call with `fenced`
   * while an earlier stop is still saving the login (`handoff`, `shutdown`, `restart`) must cut that save short and
   * close the browser at once, because another instance may own the session from now on; the supervisor makes that
   * call when the fleet fences a session whose engine is stopping.
   */
  stop(reason?: EngineStopReason): Promise<void>;
  /** Health probe: resolves true when the engine answers as connected; false or a rejection marks a zombie. */
  probe(): Promise<boolean>;
  /**
   * Reads chat history for a catch-up after a start (messages that arrived while the session ran nowhere): the
   * supervisor calls it once per run, after `ready`, when it has an inbox. Returning messages already delivered is
   * fine: they are recognised by id and dropped. Optional: an engine without it gets no catch-up.
   */
  catchUp?(request: CatchUpRequest): Promise<InboundMessage[]>;
  /**
   * Resident memory of this session's browser (all its processes), in bytes, or undefined when unknown: what the
   * supervisor reports, and recycles a session by (`recycle.memoryLimitBytes`). Optional.
   */
  memoryBytes?(): Promise<number | undefined>;
  /**
   * Sends a text message and resolves with WhatsApp's id of it as soon as the page took it (whatsapp-web.js
   * `sendMessage`); its acknowledgements arrive later as `ack` events. Optional: `supervisor.send` needs it.
   */
  send?(chatId: string, text: string): Promise<{ id: string }>;
}

/** Creates the engine of one session run. */
export type EngineFactory = (context: EngineContext) => SessionEngine | Promise<SessionEngine>;
