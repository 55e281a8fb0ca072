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
  | { type: 'pids'; pids: number[] };

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
}

/** Creates the engine of one session run. */
export type EngineFactory = (context: EngineContext) => SessionEngine | Promise<SessionEngine>;
