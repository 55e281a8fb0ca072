import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { WafleetError } from '@wafleet/protocol';
import type { EventRow, NewEvent, OutboxStore, ReplayFilter, StoreCounts } from './store.js';

/** The outbox store could not be opened or used: unwritable path, corrupt file, or held by another process. */
export class OutboxStoreError extends WafleetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WAFLEET_OUTBOX_STORE', message, options);
  }
}

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

interface Row {
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

const toEvent = (r: Row): EventRow => ({
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

function prepareStatements(db: Database.Database) {
  return {
    nextSeq: db.prepare<[string], { seq: number }>(
      'INSERT INTO session_seq (session, seq) VALUES (?, 1) ON CONFLICT (session) DO UPDATE SET seq = seq + 1 RETURNING seq',
    ),
    supersede: db.prepare("UPDATE events SET state = 'superseded' WHERE session = ? AND supersede_group = ? AND state = 'pending'"),
    insert: db.prepare(
      "INSERT INTO events (id, session, seq, type, supersede_group, target, body, state, created_at, age_from, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
    ),
    // Per session only the oldest pending event may go: later ones wait, so deliveries stay in seq order.
    due: db.prepare<[number, number], Row>(`
      SELECT e.* FROM events e
      WHERE e.state = 'pending' AND e.next_at <= ?
        AND (e.session = '' OR e.seq = (SELECT MIN(p.seq) FROM events p WHERE p.session = e.session AND p.state = 'pending'))
      ORDER BY e.next_at LIMIT ?`),
    isPending: db.prepare<[string], { one: number }>("SELECT 1 AS one FROM events WHERE id = ? AND state = 'pending'"),
    nextDueAt: db.prepare<[], { at: number | null }>("SELECT MIN(next_at) AS at FROM events WHERE state = 'pending'"),
    delivered: db.prepare("UPDATE events SET state = 'delivered', attempts = ?, next_at = ?, last_error = '' WHERE id = ?"),
    retry: db.prepare("UPDATE events SET attempts = ?, next_at = ?, last_error = ? WHERE id = ? AND state = 'pending'"),
    dead: db.prepare("UPDATE events SET state = 'dead', attempts = ?, dead_reason = ?, last_error = ? WHERE id = ? AND state = 'pending'"),
    disable: db.prepare('INSERT OR REPLACE INTO disabled_targets (target, at) VALUES (?, ?)'),
    enable: db.prepare('DELETE FROM disabled_targets WHERE target = ?'),
    disabled: db.prepare<[], { target: string }>('SELECT target FROM disabled_targets'),
    counts: db.prepare<[], { pending: number; dead: number; oldest: number | null }>(
      "SELECT SUM(state = 'pending') AS pending, SUM(state = 'dead') AS dead, MIN(CASE WHEN state = 'pending' THEN created_at END) AS oldest FROM events",
    ),
    cleanup: db.prepare("DELETE FROM events WHERE state IN ('delivered', 'superseded') AND created_at < ?"),
    wake: db.prepare("UPDATE events SET next_at = ? WHERE state = 'pending' AND next_at > ?"),
    has: db.prepare<[string], { one: number }>('SELECT 1 AS one FROM events WHERE id = ?'),
    adopt: db.prepare(
      'INSERT INTO events (id, session, seq, type, supersede_group, target, body, state, attempts, created_at, age_from, next_at, last_error, dead_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

/**
 * One SQLite file per instance (better-sqlite3): WAL, synchronous FULL, so an insert is on disk before it
 * returns; an exclusive lock, so a second process cannot deliver the same events.
 */
export class SqliteOutboxStore implements OutboxStore {
  #db: Database.Database | undefined;
  #statements: Statements | undefined;

  constructor(readonly path: string) {}

  async open(): Promise<void> {
    try {
      if (this.path !== ':memory:') mkdirSync(dirname(this.path), { recursive: true });
      const db = new Database(this.path, { timeout: 2000 });
      this.#db = db;
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      // Held until close: a second process opening the same file fails here instead of double-delivering.
      db.pragma('locking_mode = EXCLUSIVE');
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw new Error(`integrity check failed: ${String(check)}`);
      db.exec(SCHEMA);
      this.#statements = prepareStatements(db);
    } catch (err) {
      this.#db?.close();
      this.#db = undefined;
      const reason = (err as Error).message;
      const hint = /locked|busy/i.test(reason) ? ' (is another process using this outbox file?)' : '';
      throw new OutboxStoreError(`Cannot open the outbox store at ${this.path}: ${reason}${hint}`, { cause: err });
    }
  }

  /**
   * Runs one store operation: SQLite errors (disk full, I/O, corruption) surface as {@link OutboxStoreError} with
   * the SQLite error as `cause`. Every write is one statement or one transaction, so a failure leaves nothing
   * half-written.
   */
  #run<T>(operation: string, fn: (s: Statements, db: Database.Database) => T): T {
    const s = this.#statements;
    if (!s || !this.#db) throw new OutboxStoreError(`The outbox store at ${this.path} is not open`);
    try {
      return fn(s, this.#db);
    } catch (err) {
      // An OutboxStoreError, or an event refused while its body was built: the transaction rolled back either way.
      if (err instanceof WafleetError) throw err;
      throw new OutboxStoreError(`Outbox store ${operation} failed at ${this.path}: ${(err as Error).message}`, { cause: err });
    }
  }

  async insert(events: readonly NewEvent[]): Promise<Array<{ id: string; seq: number }>> {
    return this.#run('insert', (s, db) =>
      db.transaction((batch: readonly NewEvent[]) =>
        batch.map((e) => {
          const seq = e.session === '' ? 0 : s.nextSeq.get(e.session)!.seq;
          if (e.supersedeGroup !== '' && e.session !== '') s.supersede.run(e.session, e.supersedeGroup);
          s.insert.run(e.id, e.session, seq, e.type, e.supersedeGroup, e.target, e.body(seq), e.createdAt, e.createdAt, e.createdAt);
          return { id: e.id, seq };
        }),
      )(events),
    );
  }

  /**
   * Takes over events of another instance's file (see `adoptOrphans`) in one transaction: same id, body, target,
   * attempts and age; pending ones due at `now`. Each gets a new seq of its session in this store, in the order
   * given, so a session's adopted events go in their original order, after the events already pending here and
   * before any enqueued later; the body keeps the original seq. An id already here is skipped (a second adoption
   * after a crash between the two commits). Returns how many were added.
   */
  async adopt(events: readonly EventRow[], now: number): Promise<number> {
    return this.#run('adopt', (s, db) =>
      db.transaction((batch: readonly EventRow[]) => {
        let added = 0;
        for (const e of batch) {
          if (s.has.get(e.id)) continue;
          const seq = e.session === '' ? 0 : s.nextSeq.get(e.session)!.seq;
          const nextAt = e.state === 'pending' ? now : e.nextAt;
          s.adopt.run(
            e.id,
            e.session,
            seq,
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
      })(events),
    );
  }

  async retryPendingNow(now: number): Promise<number> {
    return this.#run('retryPendingNow', (s) => s.wake.run(now, now).changes);
  }

  async due(now: number, limit: number, busySessions: ReadonlySet<string>, busyIds: ReadonlySet<string>): Promise<EventRow[]> {
    const rows = this.#run('due', (s) => s.due.all(now, limit + busySessions.size + busyIds.size));
    return rows
      .filter((r) => !busyIds.has(r.id) && (r.session === '' || !busySessions.has(r.session)))
      .slice(0, limit)
      .map(toEvent);
  }

  async nextDueAt(): Promise<number | undefined> {
    return this.#run('nextDueAt', (s) => s.nextDueAt.get()?.at ?? undefined);
  }

  async isPending(id: string): Promise<boolean> {
    return this.#run('isPending', (s) => s.isPending.get(id) !== undefined);
  }

  async markDelivered(id: string, attempts: number, at: number): Promise<void> {
    this.#run('markDelivered', (s) => s.delivered.run(attempts, at, id));
  }

  async markRetry(id: string, attempts: number, nextAt: number, lastError: string): Promise<void> {
    this.#run('markRetry', (s) => s.retry.run(attempts, nextAt, lastError, id));
  }

  async markDead(id: string, attempts: number, reason: string, lastError: string): Promise<void> {
    this.#run('markDead', (s) => s.dead.run(attempts, reason, lastError, id));
  }

  async disableTarget(target: string, at: number): Promise<void> {
    this.#run('disableTarget', (s) => s.disable.run(target, at));
  }

  async enableTarget(target: string): Promise<void> {
    this.#run('enableTarget', (s) => s.enable.run(target));
  }

  async disabledTargets(): Promise<string[]> {
    return this.#run('disabledTargets', (s) => s.disabled.all().map((r) => r.target));
  }

  async replay(filter: ReplayFilter, now: number): Promise<number> {
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
    return this.#run('replay', (_, db) => db.prepare(sql).run(now, now, ...params).changes);
  }

  async list(filter: { state: EventRow['state']; session?: string; limit: number }): Promise<EventRow[]> {
    const sql = `SELECT * FROM events WHERE state = ?${filter.session !== undefined ? ' AND session = ?' : ''} ORDER BY created_at, seq LIMIT ?`;
    const params = filter.session !== undefined ? [filter.state, filter.session, filter.limit] : [filter.state, filter.limit];
    return this.#run('list', (_, db) => db.prepare(sql).all(...params) as Row[]).map(toEvent);
  }

  async counts(): Promise<StoreCounts> {
    const r = this.#run('counts', (s) => s.counts.get()!);
    return { pending: r.pending ?? 0, dead: r.dead ?? 0, oldestPendingAt: r.oldest ?? undefined };
  }

  async cleanup(before: number): Promise<number> {
    return this.#run('cleanup', (s) => s.cleanup.run(before).changes);
  }

  async close(): Promise<void> {
    const db = this.#db;
    this.#statements = undefined;
    this.#db = undefined;
    try {
      db?.close();
    } catch (err) {
      throw new OutboxStoreError(`Cannot close the outbox store at ${this.path}: ${(err as Error).message}`, { cause: err });
    }
  }
}

/**
 * Another instance's outbox file, opened for adoption: with a zero busy timeout, so a file whose live owner
 * holds its exclusive lock is refused at once, and holding that lock itself until {@link close}. Nothing is
 * created or converted: a SQLite file that is not an outbox is left as it is.
 */
export class OrphanOutboxFile {
  readonly #db: Database.Database;

  private constructor(db: Database.Database) {
    this.#db = db;
  }

  /** The file, locked; `'busy'` while another connection holds it (its owner is alive); `'foreign'` when not an outbox. */
  static open(path: string): OrphanOutboxFile | 'busy' | 'foreign' {
    let db: Database.Database | undefined;
    try {
      db = new Database(path, { timeout: 0, fileMustExist: true });
      // Before the first read: the lock taken below is then kept until close, across the commits.
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('synchronous = FULL');
      db.exec('BEGIN EXCLUSIVE');
      const columns = db.pragma('table_info(events)') as Array<{ name: string }>;
      db.exec('COMMIT');
      const names = new Set(columns.map((c) => c.name));
      if (!['id', 'session', 'seq', 'body', 'state', 'target', 'age_from'].every((c) => names.has(c))) {
        db.close();
        return 'foreign';
      }
      return new OrphanOutboxFile(db);
    } catch (err) {
      db?.close();
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && /^SQLITE_(BUSY|LOCKED)/.test(code)) return 'busy';
      if (code === 'SQLITE_NOTADB') return 'foreign';
      throw new OutboxStoreError(`Cannot open the orphaned outbox at ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Pending and dead events, per session in seq order; superseded and delivered ones stay behind. */
  movable(): EventRow[] {
    return (
      this.#db.prepare("SELECT * FROM events WHERE state IN ('pending', 'dead') ORDER BY session, seq, created_at").all() as Row[]
    ).map(toEvent);
  }

  /** Deletes the moved events in one transaction: a returning owner finds them gone, not pending twice. */
  remove(ids: readonly string[]): void {
    const del = this.#db.prepare('DELETE FROM events WHERE id = ?');
    this.#db.transaction((all: readonly string[]) => {
      for (const id of all) del.run(id);
    })(ids);
  }

  close(): void {
    this.#db.close();
  }
}
