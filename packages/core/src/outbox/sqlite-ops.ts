import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { EventRow, ReplayFilter, StoreCounts } from './store.js';

/**
 * The outbox file's SQL, run on whichever thread holds the connection (the store's worker, or the event loop with
 * `thread: 'main'`). Requests arrive in order and are answered in order; {@link SqliteEngine.runBatch} commits a
 * group of them in one transaction (one fsync) or each in its own.
 */

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY,
  session TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  supersede_group TEXT NOT NULL,
  target TEXT NOT NULL,
  body TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  age_from INTEGER NOT NULL,
  next_at INTEGER NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  dead_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_pending_due ON events (next_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_pending_session ON events (session, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_state_created ON events (state, created_at);
CREATE TABLE IF NOT EXISTS session_seq (session TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS disabled_targets (target TEXT PRIMARY KEY, at INTEGER NOT NULL);
`;

export interface Row {
  id: string;
  session: string;
  seq: number;
  type: string;
  supersede_group: string;
  target: string;
  body: string;
  state: EventRow['state'];
  attempts: number;
  created_at: number;
  age_from: number;
  next_at: number;
  last_error: string;
  dead_reason: string;
}

export const toEvent = (r: Row): EventRow => ({
  id: r.id,
  session: r.session,
  seq: r.seq,
  type: r.type,
  supersedeGroup: r.supersede_group,
  target: r.target,
  body: r.body,
  state: r.state,
  attempts: r.attempts,
  createdAt: r.created_at,
  ageFrom: r.age_from,
  nextAt: r.next_at,
  lastError: r.last_error,
  deadReason: r.dead_reason,
});

/** An event ready to store: its seq and body were settled by the store's owner thread. */
export type InsertRow = Pick<EventRow, 'id' | 'session' | 'seq' | 'type' | 'supersedeGroup' | 'target' | 'body' | 'createdAt'>;

/** One request to the engine: the method and its arguments, as they cross a thread boundary. */
type Operation = Exclude<keyof SqliteEngine, 'runBatch' | 'close' | 'writes'>;

/** The requests that write (and so need a commit on disk); the others only read. */
const WRITES: ReadonlySet<string> = new Set<Operation>([
  'insert',
  'adopt',
  'retryPendingNow',
  'markDelivered',
  'markRetry',
  'markDead',
  'disableTarget',
  'enableTarget',
  'replay',
  'cleanup',
]);
export type Request = { [K in Operation]: { op: K; args: Parameters<SqliteEngine[K]> } }[Operation];

/** A request's outcome; errors travel as plain fields, since an Error loses its `code` between threads. */
export type Reply = { ok: true; value: unknown } | { ok: false; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
}

export const serializeError = (err: unknown): SerializedError => {
  const e = err as { name?: unknown; message?: unknown; code?: unknown };
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(err),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
  };
};

export const deserializeError = (s: SerializedError): Error => Object.assign(new Error(s.message), s);

function prepareStatements(db: Database.Database) {
  return {
    seqOf: db.prepare<[string], { seq: number }>('SELECT seq FROM session_seq WHERE session = ?'),
    raiseSeq: db.prepare(
      'INSERT INTO session_seq (session, seq) VALUES (?, ?) ON CONFLICT (session) DO UPDATE SET seq = max(seq, excluded.seq)',
    ),
    // INDEXED BY: left to itself the planner picks events_state_created and visits every pending event.
    supersede: db.prepare(
      "UPDATE events INDEXED BY events_pending_session SET state = 'superseded' WHERE session = ? AND supersede_group = ? AND state = 'pending'",
    ),
    insert: db.prepare(
      "INSERT INTO events (id, session, seq, type, supersede_group, target, body, state, created_at, age_from, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
    ),
    // Per session only the oldest pending event may go: later ones wait, so deliveries stay in seq order.
    due: db.prepare<[number, number], Row>(`
      SELECT e.* FROM events e INDEXED BY events_pending_due
      WHERE e.state = 'pending' AND e.next_at <= ?
        AND (e.session = '' OR e.seq = (SELECT MIN(p.seq) FROM events p WHERE p.session = e.session AND p.state = 'pending'))
      ORDER BY e.next_at LIMIT ?`),
    isPending: db.prepare<[string], { one: number }>("SELECT 1 AS one FROM events WHERE id = ? AND state = 'pending'"),
    nextDueAt: db.prepare<[], { at: number | null }>(
      "SELECT MIN(next_at) AS at FROM events INDEXED BY events_pending_due WHERE state = 'pending'",
    ),
    delivered: db.prepare<[number, number, string], { session: string }>(
      "UPDATE events SET state = 'delivered', attempts = ?, next_at = ?, last_error = '' WHERE id = ? RETURNING session",
    ),
    head: db.prepare<[string], Row>("SELECT * FROM events WHERE session = ? AND state = 'pending' ORDER BY seq LIMIT 1"),
    retry: db.prepare("UPDATE events SET attempts = ?, next_at = ?, last_error = ? WHERE id = ? AND state = 'pending'"),
    dead: db.prepare("UPDATE events SET state = 'dead', attempts = ?, dead_reason = ?, last_error = ? WHERE id = ? AND state = 'pending'"),
    disable: db.prepare('INSERT OR REPLACE INTO disabled_targets (target, at) VALUES (?, ?)'),
    enable: db.prepare('DELETE FROM disabled_targets WHERE target = ?'),
    disabled: db.prepare<[], { target: string }>('SELECT target FROM disabled_targets'),
    // Each from its index: delivered events kept for the retention period are never visited.
    counts: db.prepare<[], { pending: number; dead: number; oldest: number | null }>(
      "SELECT (SELECT COUNT(*) FROM events WHERE state = 'pending') AS pending, (SELECT COUNT(*) FROM events WHERE state = 'dead') AS dead, (SELECT MIN(created_at) FROM events WHERE state = 'pending') AS oldest",
    ),
    cleanup: db.prepare("DELETE FROM events WHERE state IN ('delivered', 'superseded') AND created_at < ?"),
    wake: db.prepare("UPDATE events INDEXED BY events_pending_due SET next_at = ? WHERE state = 'pending' AND next_at > ?"),
    has: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM events WHERE id = ?'),
    adopt: db.prepare(
      'INSERT INTO events (id, session, seq, type, supersede_group, target, body, state, attempts, created_at, age_from, next_at, last_error, dead_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

/**
 * A request's answer that depends on the whole batch (which event is due next): computed after the batch's last
 * request, inside its transaction, so it is what the commit makes durable and no later request of the batch (a
 * newer event superseding that one) has changed it since.
 */
class Deferred<T> {
  constructor(
    readonly answer: () => T,
    /** The answer if reading it fails: these answers only spare the outbox a look, so none is needed. */
    readonly fallback: T,
  ) {}
}

function settled(value: unknown): unknown {
  if (!(value instanceof Deferred)) return value;
  try {
    return value.answer();
  } catch {
    return value.fallback;
  }
}

/** How requests become transactions: a group of queued requests per commit, or one commit per request. */
export type CommitMode = 'group' | 'event';

/**
 * One open outbox file: WAL, synchronous FULL (a commit is on disk before its requests are answered), and an
 * exclusive lock held until close, so a second process cannot deliver the same events. Its public methods are the
 * operations a {@link Request} can name; each runs inside its batch's transaction.
 */
export class SqliteEngine {
  readonly #db: Database.Database;
  readonly #s: Statements;
  /** Write requests answered, and the commits that made them durable: their ratio is the group size. */
  readonly writes = { requests: 0, commits: 0 };

  private constructor(db: Database.Database) {
    this.#db = db;
    this.#s = prepareStatements(db);
  }

  /** Opens (and creates) the file; throws what SQLite or the file system threw. */
  static open(path: string): SqliteEngine {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path, { timeout: 2000 });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      // Held until close: a second process opening the same file fails here instead of double-delivering.
      db.pragma('locking_mode = EXCLUSIVE');
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw new Error(`integrity check failed: ${String(check)}`);
      db.exec(SCHEMA);
      return new SqliteEngine(db);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** The last seq given out per session (0 for a session never seen). */
  seqs(sessions: string[]): number[] {
    return sessions.map((session) => this.#s.seqOf.get(session)?.seq ?? 0);
  }

  /** Answers, once its batch has run, which events are due at once: the oldest pending one of their session. */
  insert(rows: InsertRow[]): Deferred<boolean[]> {
    for (const e of rows) {
      if (e.session !== '') {
        this.#s.raiseSeq.run(e.session, e.seq);
        if (e.supersedeGroup !== '') this.#s.supersede.run(e.session, e.supersedeGroup);
      }
      this.#s.insert.run(e.id, e.session, e.seq, e.type, e.supersedeGroup, e.target, e.body, e.createdAt, e.createdAt, e.createdAt);
    }
    return new Deferred(
      () => rows.map((e) => (e.session === '' ? this.isPending(e.id) : this.#s.head.get(e.session)?.id === e.id)),
      rows.map(() => false),
    );
  }

  /** Events of another instance's file, each with its new seq here; ids already here are skipped. */
  adopt(events: Array<EventRow & { localSeq: number }>, now: number): number {
    let added = 0;
    for (const e of events) {
      if (this.#s.has.get(e.id)) continue;
      if (e.session !== '') this.#s.raiseSeq.run(e.session, e.localSeq);
      const nextAt = e.state === 'pending' ? now : e.nextAt;
      this.#s.adopt.run(
        e.id,
        e.session,
        e.localSeq,
        e.type,
        e.supersedeGroup,
        e.target,
        e.body,
        e.state,
        e.attempts,
        e.createdAt,
        e.ageFrom,
        nextAt,
        e.lastError,
        e.deadReason,
      );
      added++;
    }
    return added;
  }

  retryPendingNow(now: number): number {
    return this.#s.wake.run(now, now).changes;
  }

  due(now: number, limit: number, busySessions: string[], busyIds: string[]): EventRow[] {
    const sessions = new Set(busySessions);
    const ids = new Set(busyIds);
    return this.#s.due
      .all(now, limit + sessions.size + ids.size)
      .filter((r) => !ids.has(r.id) && (r.session === '' || !sessions.has(r.session)))
      .slice(0, limit)
      .map(toEvent);
  }

  nextDueAt(): number | undefined {
    return this.#s.nextDueAt.get()?.at ?? undefined;
  }

  isPending(id: string): boolean {
    return this.#s.isPending.get(id) !== undefined;
  }

  /** Answers, once its batch has run, with the next pending event of the session if it is due at `at`. */
  markDelivered(id: string, attempts: number, at: number): Deferred<EventRow | undefined> {
    const session = this.#s.delivered.get(attempts, at, id)?.session;
    return new Deferred<EventRow | undefined>(() => {
      if (!session) return undefined;
      const next = this.#s.head.get(session);
      return next && next.next_at <= at ? toEvent(next) : undefined;
    }, undefined);
  }

  markRetry(id: string, attempts: number, nextAt: number, lastError: string): void {
    this.#s.retry.run(attempts, nextAt, lastError, id);
  }

  markDead(id: string, attempts: number, reason: string, lastError: string): void {
    this.#s.dead.run(attempts, reason, lastError, id);
  }

  disableTarget(target: string, at: number): void {
    this.#s.disable.run(target, at);
  }

  enableTarget(target: string): void {
    this.#s.enable.run(target);
  }

  disabledTargets(): string[] {
    return this.#s.disabled.all().map((r) => r.target);
  }

  replay(filter: ReplayFilter, now: number): number {
    const where: string[] = [];
    const params: Array<string | number> = [];
    const states = filter.states ?? ['dead'];
    where.push(`state IN (${states.map(() => '?').join(', ')})`);
    params.push(...states);
    if (filter.ids) {
      if (filter.ids.length === 0) return 0;
      where.push(`id IN (${filter.ids.map(() => '?').join(', ')})`);
      params.push(...filter.ids);
    }
    const conditions: Array<[string, string | number | undefined]> = [
      ['session = ?', filter.session],
      ['created_at >= ?', filter.from],
      ['created_at < ?', filter.to],
    ];
    for (const [condition, value] of conditions) {
      if (value === undefined) continue;
      where.push(condition);
      params.push(value);
    }
    if (!filter.ids && filter.session === undefined && filter.from === undefined && filter.to === undefined) return 0;
    const sql = `UPDATE events SET state = 'pending', attempts = 0, next_at = ?, age_from = ?, dead_reason = '', last_error = '' WHERE ${where.join(' AND ')}`;
    return this.#db.prepare(sql).run(now, now, ...params).changes;
  }

  list(filter: { state: EventRow['state']; session?: string; limit: number }): EventRow[] {
    const sql = `SELECT * FROM events WHERE state = ?${filter.session !== undefined ? ' AND session = ?' : ''} ORDER BY created_at, seq LIMIT ?`;
    const params = filter.session !== undefined ? [filter.state, filter.session, filter.limit] : [filter.state, filter.limit];
    return (this.#db.prepare(sql).all(...params) as Row[]).map(toEvent);
  }

  counts(): StoreCounts {
    const r = this.#s.counts.get()!;
    return { pending: r.pending ?? 0, dead: r.dead ?? 0, oldestPendingAt: r.oldest ?? undefined };
  }

  cleanup(before: number): number {
    return this.#s.cleanup.run(before).changes;
  }

  /**
   * Runs requests in order and answers each. `group`: all of them in one transaction, so one fsync covers every
   * write; if any request fails, the group is rolled back and each request runs again alone, so a failure (a full
   * disk, a refused row) answers only the requests it belongs to and leaves nothing of them written.
   */
  runBatch(requests: readonly Request[], mode: CommitMode): Reply[] {
    if (requests.length === 0) return [];
    if (mode === 'event' || requests.length === 1) return this.#runEach(requests);
    try {
      this.#db.exec('BEGIN IMMEDIATE');
      const values = requests.map((r) => this.#call(r)).map(settled);
      this.#db.exec('COMMIT');
      const writes = requests.filter((r) => WRITES.has(r.op)).length;
      this.writes.requests += writes;
      if (writes > 0) this.writes.commits++;
      return values.map((value) => ({ ok: true, value }));
    } catch {
      try {
        if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
      } catch {
        // SQLite rolls back by itself when it cannot go on (I/O errors); each request below meets the same failure.
      }
      return this.#runEach(requests);
    }
  }

  close(): void {
    this.#db.close();
  }

  /**
   * Each request in its own transaction. The answers that depend on the batch (which event is due next) are read after
   * the last one, as in a group: an event superseded by a later request of the batch is not reported due.
   */
  #runEach(requests: readonly Request[]): Reply[] {
    const outcomes = requests.map((request): { ok: true; value: unknown } | { ok: false; error: SerializedError } => {
      try {
        const value = this.#db.transaction(() => this.#call(request))();
        if (WRITES.has(request.op)) {
          this.writes.requests++;
          this.writes.commits++;
        }
        return { ok: true, value };
      } catch (err) {
        return { ok: false, error: serializeError(err) };
      }
    });
    return outcomes.map((o) => (o.ok ? { ok: true, value: settled(o.value) } : o));
  }

  #call(request: Request): unknown {
    return (this[request.op] as (...args: unknown[]) => unknown).apply(this, request.args);
  }
}
