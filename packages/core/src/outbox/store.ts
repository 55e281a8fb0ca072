/** A stored event. Times are wall-clock ms (they must survive restarts; leases never use them). */
export interface EventRow {
  id: string;
  session: string;
  /**
   * Delivery order within the session in this store: the body's seq, except for an event adopted from another
   * instance's file, which gets a new one here and keeps its original seq (and epoch) in the body.
   */
  seq: number;
  type: string;
  /** Events of one session and group: a newer one supersedes older undelivered ones. '' for none. */
  supersedeGroup: string;
  /** Absolute URL the event is POSTed to. */
  target: string;
  /** The exact JSON body, built once at enqueue. */
  body: string;
  state: 'pending' | 'delivered' | 'dead' | 'superseded';
  attempts: number;
  createdAt: number;
  /** Start of the max-age window: enqueue time, or the last replay. */
  ageFrom: number;
  nextAt: number;
  lastError: string;
  deadReason: string;
}

/** What the outbox hands the store to insert; the store assigns the per-session seq. */
export interface NewEvent {
  id: string;
  session: string;
  type: string;
  supersedeGroup: string;
  target: string;
  createdAt: number;
  /**
   * Builds the exact body once the seq is known. It may throw (`WAFLEET_EVENT_INVALID`, `WAFLEET_EVENT_TOO_LARGE`):
   * the store then stores nothing of the batch and rethrows that error unchanged.
   */
  body: (seq: number) => string;
}

/** Selects events for replay: any combination; an empty filter selects nothing. */
export interface ReplayFilter {
  ids?: readonly string[];
  session?: string;
  /** Enqueued at or after (ms). */
  from?: number;
  /** Enqueued before (ms). */
  to?: number;
  /** Which states to replay. @default ['dead'] */
  states?: ReadonlyArray<'dead' | 'delivered'>;
}

/** Counts for metrics. */
export interface StoreCounts {
  pending: number;
  dead: number;
  oldestPendingAt: number | undefined;
}

/**
 * Where the outbox keeps events. Every write is durable when its promise resolves, and atomic: a failed one
 * (rejecting, ideally with `OutboxStoreError`) leaves nothing half-written. Operations take effect, and their
 * promises resolve, in the order they were called: an answer (a due event, a session's next event) is acted on at
 * once, so it must not be older than the answers to operations called after it.
 */
export interface OutboxStore {
  open(): Promise<void>;
  /**
   * Stores the events in one transaction. `due`, which a store may leave out: the stored event, when it is already
   * the oldest pending event of its session (the outbox sends it at once instead of looking for it).
   */
  insert(events: readonly NewEvent[]): Promise<Array<{ id: string; seq: number; due?: EventRow }>>;
  /**
   * Pending events due by `now`, only the oldest pending one per session, skipping `busySessions` and the events
   * in `busyIds` (attempts in flight: an event without a session is otherwise due again while on the wire).
   */
  due(now: number, limit: number, busySessions: ReadonlySet<string>, busyIds: ReadonlySet<string>): Promise<EventRow[]>;
  /** The earliest `nextAt` of a pending event, if any. */
  nextDueAt(): Promise<number | undefined>;
  /** Whether the event is still pending (not delivered, dead or superseded meanwhile). */
  isPending(id: string): Promise<boolean>;
  /**
   * Resolves, optionally, with the next pending event of the same session when it is due by `at`: the outbox sends it
   * at once, without looking for it.
   */
  markDelivered(id: string, attempts: number, at: number): Promise<EventRow | undefined | void>;
  /** Only while still pending: a superseded event is not revived by a failed attempt. */
  markRetry(id: string, attempts: number, nextAt: number, lastError: string): Promise<void>;
  markDead(id: string, attempts: number, reason: string, lastError: string): Promise<void>;
  disableTarget(target: string, at: number): Promise<void>;
  enableTarget(target: string): Promise<void>;
  disabledTargets(): Promise<string[]>;
  replay(filter: ReplayFilter, now: number): Promise<number>;
  list(filter: { state: EventRow['state']; session?: string; limit: number }): Promise<EventRow[]>;
  counts(): Promise<StoreCounts>;
  /**
   * Makes every pending event due at `now`, keeping its attempt count (so the schedule resumes where it was).
   * Called at start: the process that scheduled the retries is gone, maybe with the outage. Optional: without
   * it, a started outbox keeps the persisted times.
   */
  retryPendingNow?(now: number): Promise<number>;
  /**
   * Adds events taken from another instance's outbox file (`adoptOrphans`), keeping id, body, target, state
   * (pending or dead), attempts and age; skips ids it already has. Needed only for `adoptOrphans`.
   */
  adopt?(events: readonly EventRow[], now: number): Promise<number>;
  /** Deletes delivered and superseded events enqueued before `before`; returns how many. */
  cleanup(before: number): Promise<number>;
  close(): Promise<void>;
  /** Optional: write requests answered and the commits (fsyncs) they took, for `stats().store` and metrics. */
  stats?(): { writes: number; commits: number };
}
