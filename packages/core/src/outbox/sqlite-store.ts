import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { ConfigError, describeValue as describe, WafleetError } from '@wafleet/protocol';
import {
  deserializeError,
  SqliteEngine,
  toEvent,
  type CommitMode,
  type InsertRow,
  type Reply,
  type Request,
  type Row,
  type SerializedError,
} from './sqlite-ops.js';
import type { WorkerReplies, WorkerRequests } from './sqlite-worker.js';
import type { EventRow, NewEvent, OutboxStore, ReplayFilter, StoreCounts } from './store.js';

/** The outbox store could not be opened or used: unwritable path, corrupt file, or held by another process. */
export class OutboxStoreError extends WafleetError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WAFLEET_OUTBOX_STORE', message, options);
  }
}

/** Options of {@link SqliteOutboxStore} (and `createOutbox({ sqlite })`). */
export interface SqliteStoreOptions {
  /**
   * Where SQLite runs. `worker`: a worker thread of its own, so commits (and their fsyncs) never block the event loop
   * the instance shares with its WhatsApp sockets. `main`: on the event loop, for a runtime without worker threads
   * or a bundle that cannot ship the worker's file.
   * @default 'worker'
   */
  thread?: 'worker' | 'main';
  /**
   * `group`: requests that queue up while a commit runs are committed together, in one transaction and one fsync
   * (with `thread: 'main'`, those of one event-loop turn). Nothing is answered before its commit, so durability is
   * the same as `event`, which commits (and fsyncs) every write on its own.
   * @default 'group'
   */
  commit?: CommitMode;
}

/** A just-inserted event as the file now holds it. */
const storedRow = (r: InsertRow): EventRow => ({
  ...r,
  state: 'pending',
  attempts: 0,
  ageFrom: r.createdAt,
  nextAt: r.createdAt,
  lastError: '',
  deadReason: '',
});

/** Runs requests against the engine, on its thread; answers in order. */
interface Link {
  send(request: Request): Promise<unknown>;
  close(): Promise<void>;
  /** Write requests answered and the commits they took, as last reported. */
  readonly writes: { requests: number; commits: number };
}

const settle = (reply: Reply, resolve: (value: unknown) => void, reject: (err: Error) => void): void => {
  if (reply.ok) resolve(reply.value);
  else reject(deserializeError(reply.error));
};

/** The engine on the event loop: each request at once, or the requests of one turn in one commit. */
class LocalLink implements Link {
  #queue: Array<{ request: Request; resolve: (value: unknown) => void; reject: (err: Error) => void }> = [];

  constructor(
    private readonly engine: SqliteEngine,
    private readonly commit: CommitMode,
  ) {}

  get writes() {
    return { ...this.engine.writes };
  }

  send(request: Request): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.commit === 'event') settle(this.engine.runBatch([request], 'event')[0]!, resolve, reject);
      else if (this.#queue.push({ request, resolve, reject }) === 1) setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    const batch = this.#queue.splice(0);
    const replies = this.engine.runBatch(
      batch.map((b) => b.request),
      'group',
    );
    batch.forEach((b, i) => settle(replies[i]!, b.resolve, b.reject));
  }

  async close(): Promise<void> {
    this.#flush();
    this.engine.close();
  }
}

/** The engine in a worker thread; requests of one microtask checkpoint travel in one message. */
class WorkerLink implements Link {
  readonly #worker: Worker;
  readonly #port: MessagePort;
  #next = 0;
  #outgoing: Request[] = [];
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  #stopped: Error | undefined;
  #closed: ((error: Error | undefined) => void) | undefined;
  writes = { requests: 0, commits: 0 };

  private constructor(worker: Worker, port: MessagePort) {
    this.#worker = worker;
    this.#port = port;
    port.on('message', (m: WorkerReplies | { closed: true; error?: SerializedError }) => {
      if ('closed' in m) return this.#closed?.(m.error && deserializeError(m.error));
      this.writes = m.writes;
      m.replies.forEach((reply, i) => {
        const waiting = this.#pending.get(m.first + i);
        this.#pending.delete(m.first + i);
        if (waiting) settle(reply, waiting.resolve, waiting.reject);
      });
      // While closing, the worker must keep the process alive until it has closed the file.
      if (this.#pending.size === 0 && !this.#closed) this.#idle(true);
    });
    worker.on('error', (err) => this.#stop(err));
    worker.on('exit', (code) => this.#stop(new Error(`the outbox store's worker thread exited (code ${code})`)));
    this.#idle(true);
  }

  /** Starts the worker and waits until it has opened the file; rejects with what opening threw. */
  static open(path: string, commit: CommitMode): Promise<WorkerLink> {
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(new URL('./sqlite-worker.js', import.meta.url), {
      workerData: { port: port2, path, commit },
      transferList: [port2],
    });
    return new Promise((resolve, reject) => {
      const failed = (err: Error) => {
        port1.close();
        void worker.terminate();
        reject(err);
      };
      const exited = (code: number) => failed(new Error(`the outbox store's worker thread exited (code ${code}) while opening`));
      worker.once('error', failed);
      worker.once('exit', exited);
      port1.once('message', (m: { opened: boolean; error?: SerializedError }) => {
        worker.off('error', failed);
        worker.off('exit', exited);
        if (!m.opened) return failed(deserializeError(m.error!));
        resolve(new WorkerLink(worker, port1));
      });
    });
  }

  send(request: Request): Promise<unknown> {
    if (this.#stopped) return Promise.reject(this.#stopped);
    return new Promise((resolve, reject) => {
      this.#pending.set(this.#next++, { resolve, reject });
      if (this.#outgoing.push(request) === 1) queueMicrotask(() => this.#flush());
      if (this.#pending.size === 1) this.#idle(false);
    });
  }

  #flush(): void {
    if (this.#outgoing.length === 0) return;
    const requests = this.#outgoing;
    const first = this.#next - requests.length;
    this.#outgoing = [];
    try {
      this.#port.postMessage({ first, requests } satisfies WorkerRequests);
    } catch (err) {
      // A request that cannot be copied to the worker (a DataCloneError): those requests fail, nothing else.
      for (let n = first; n < first + requests.length; n++) {
        this.#pending.get(n)?.reject(err as Error);
        this.#pending.delete(n);
      }
      if (this.#pending.size === 0 && !this.#closed) this.#idle(true);
    }
  }

  /** While nothing is waiting the worker does not keep the process alive; while something is, it does. */
  #idle(idle: boolean): void {
    if (idle) {
      this.#worker.unref();
      this.#port.unref();
    } else {
      this.#worker.ref();
      this.#port.ref();
    }
  }

  #stop(err: Error): void {
    this.#stopped ??= err;
    for (const waiting of this.#pending.values()) waiting.reject(this.#stopped);
    this.#pending.clear();
    this.#closed?.(undefined);
    this.#idle(true);
  }

  async close(): Promise<void> {
    if (this.#stopped) return;
    this.#flush();
    const closed = new Promise<Error | undefined>((resolve) => (this.#closed = resolve));
    this.#idle(false);
    this.#port.postMessage('close');
    const error = await closed;
    this.#port.close();
    await this.#worker.terminate();
    if (error) throw error;
  }
}

/**
 * One SQLite file per instance (better-sqlite3): WAL, synchronous FULL, so a write's promise resolves only after its
 * commit is on disk; an exclusive lock, so a second process cannot deliver the same events. By default SQLite runs
 * in a worker thread and commits the writes that queue up together ({@link SqliteStoreOptions}).
 */
export class SqliteOutboxStore implements OutboxStore {
  readonly #thread: 'worker' | 'main';
  readonly #commit: CommitMode;
  #link: Link | undefined;
  /**
   * The last seq given out per session, read from the file on first use. Given out here, on the caller's thread,
   * because the body (which holds it) is built here; a write that fails leaves a gap, never a seq used twice.
   */
  readonly #seqs = new Map<string, number>();
  /** Inserts and adoptions take their seqs one after another, in call order (see {@link #inOrder}). */
  #seqQueue: Promise<void> = Promise.resolve();
  #opening: Promise<void> | undefined;
  #lastWrites = { requests: 0, commits: 0 };

  constructor(
    readonly path: string,
    options: SqliteStoreOptions = {},
  ) {
    const { thread = 'worker', commit = 'group' } = options ?? {};
    if (thread !== 'worker' && thread !== 'main') {
      throw new ConfigError('sqlite.thread', `Expected \`sqlite.thread\` to be 'worker' or 'main', got ${describe(thread)}`);
    }
    if (commit !== 'group' && commit !== 'event') {
      throw new ConfigError('sqlite.commit', `Expected \`sqlite.commit\` to be 'group' or 'event', got ${describe(commit)}`);
    }
    this.#thread = thread;
    this.#commit = commit;
  }

  /** Write requests answered and the commits (fsyncs) that made them durable since `open()`. */
  stats(): { writes: number; commits: number } {
    const { requests, commits } = this.#link?.writes ?? this.#lastWrites;
    return { writes: requests, commits };
  }

  open(): Promise<void> {
    if (this.#link) return Promise.resolve();
    this.#opening ??= this.#open().finally(() => (this.#opening = undefined));
    return this.#opening;
  }

  async #open(): Promise<void> {
    try {
      this.#link =
        this.#thread === 'worker'
          ? await WorkerLink.open(this.path, this.#commit)
          : new LocalLink(SqliteEngine.open(this.path), this.#commit);
    } catch (err) {
      const reason = (err as Error).message;
      const hint = /locked|busy/i.test(reason) ? ' (is another process using this outbox file?)' : '';
      throw new OutboxStoreError(`Cannot open the outbox store at ${this.path}: ${reason}${hint}`, { cause: err });
    }
  }

  /**
   * Runs one store request: SQLite errors (disk full, I/O, corruption) surface as {@link OutboxStoreError} with the
   * SQLite error as `cause`. Every write is one transaction, or part of a group commit that is undone and retried
   * request by request when anything in it fails, so a failure leaves nothing half-written.
   */
  async #run<T>(operation: string, request: Request): Promise<T> {
    const link = this.#link;
    if (!link) throw new OutboxStoreError(`The outbox store at ${this.path} is not open`);
    try {
      return (await link.send(request)) as T;
    } catch (err) {
      throw new OutboxStoreError(`Outbox store ${operation} failed at ${this.path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Reads the last seqs of the sessions not seen yet. */
  async #loadSeqs(operation: string, sessions: Iterable<string>): Promise<void> {
    const missing = [...new Set(sessions)].filter((s) => s !== '' && !this.#seqs.has(s));
    if (missing.length === 0) return;
    const seqs = await this.#run<number[]>(operation, { op: 'seqs', args: [missing] });
    missing.forEach((s, i) => {
      if (!this.#seqs.has(s)) this.#seqs.set(s, seqs[i]!);
    });
  }

  /**
   * Runs `fn` once the sessions' last seqs are known and every earlier call's `fn` has run: seqs are given out in call
   * order, and each call's request reaches the file before the next call's (`fn` sends it synchronously).
   */
  #inOrder<T>(operation: string, sessions: readonly string[], fn: () => T): Promise<T> {
    const load = this.#loadSeqs(operation, sessions);
    const turn = this.#seqQueue.then(() => load).then(fn);
    this.#seqQueue = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }

  /** The next seq of each item's session in order (0 without a session); taken only once every item is ready. */
  #assignSeqs<T extends { session: string }, R>(items: readonly T[], build: (item: T, seq: number) => R): R[] {
    const last = new Map<string, number>();
    const built = items.map((item) => {
      if (item.session === '') return build(item, 0);
      const base = last.get(item.session) ?? this.#seqs.get(item.session);
      // Closed (or reopened) since its seqs were read.
      if (base === undefined) throw new OutboxStoreError(`The outbox store at ${this.path} is not open`);
      const seq = base + 1;
      last.set(item.session, seq);
      return build(item, seq);
    });
    for (const [session, seq] of last) this.#seqs.set(session, seq);
    return built;
  }

  async insert(events: readonly NewEvent[]): Promise<Array<{ id: string; seq: number; due?: EventRow }>> {
    const { rows, stored } = await this.#inOrder(
      'insert',
      events.map((e) => e.session),
      () => {
        // A body that cannot be built (WAFLEET_EVENT_*) is thrown as it is, and nothing of the batch is stored.
        const built: InsertRow[] = this.#assignSeqs(events, (e, seq) => ({
          id: e.id,
          session: e.session,
          seq,
          type: e.type,
          supersedeGroup: e.supersedeGroup,
          target: e.target,
          body: e.body(seq),
          createdAt: e.createdAt,
        }));
        return { rows: built, stored: this.#run<boolean[]>('insert', { op: 'insert', args: [built] }) };
      },
    );
    const due = await stored;
    return rows.map((r, i) => ({ id: r.id, seq: r.seq, ...(due[i] ? { due: storedRow(r) } : {}) }));
  }

  /**
   * Takes over events of another instance's file (see `adoptOrphans`) in one transaction: same id, body, target,
   * attempts and age; pending ones due at `now`. Each gets a new seq of its session in this store, in the order
   * given, so a session's adopted events go in their original order, after the events already pending here and
   * before any enqueued later; the body keeps the original seq. An id already here is skipped (a second adoption
   * after a crash between the two commits). Returns how many were added.
   */
  async adopt(events: readonly EventRow[], now: number): Promise<number> {
    return this.#inOrder(
      'adopt',
      events.map((e) => e.session),
      () => this.#run<number>('adopt', { op: 'adopt', args: [this.#assignSeqs(events, (e, localSeq) => ({ ...e, localSeq })), now] }),
    );
  }

  retryPendingNow(now: number): Promise<number> {
    return this.#run('retryPendingNow', { op: 'retryPendingNow', args: [now] });
  }

  due(now: number, limit: number, busySessions: ReadonlySet<string>, busyIds: ReadonlySet<string>): Promise<EventRow[]> {
    return this.#run('due', { op: 'due', args: [now, limit, [...busySessions], [...busyIds]] });
  }

  nextDueAt(): Promise<number | undefined> {
    return this.#run('nextDueAt', { op: 'nextDueAt', args: [] });
  }

  isPending(id: string): Promise<boolean> {
    return this.#run('isPending', { op: 'isPending', args: [id] });
  }

  markDelivered(id: string, attempts: number, at: number): Promise<EventRow | undefined> {
    return this.#run('markDelivered', { op: 'markDelivered', args: [id, attempts, at] });
  }

  markRetry(id: string, attempts: number, nextAt: number, lastError: string): Promise<void> {
    return this.#run('markRetry', { op: 'markRetry', args: [id, attempts, nextAt, lastError] });
  }

  markDead(id: string, attempts: number, reason: string, lastError: string): Promise<void> {
    return this.#run('markDead', { op: 'markDead', args: [id, attempts, reason, lastError] });
  }

  disableTarget(target: string, at: number): Promise<void> {
    return this.#run('disableTarget', { op: 'disableTarget', args: [target, at] });
  }

  enableTarget(target: string): Promise<void> {
    return this.#run('enableTarget', { op: 'enableTarget', args: [target] });
  }

  disabledTargets(): Promise<string[]> {
    return this.#run('disabledTargets', { op: 'disabledTargets', args: [] });
  }

  replay(filter: ReplayFilter, now: number): Promise<number> {
    // A plain copy: what crosses to the worker must be cloneable.
    const { ids, session, from, to, states } = filter;
    const plain: ReplayFilter = { ids: ids && [...ids], session, from, to, states: states && [...states] };
    return this.#run('replay', { op: 'replay', args: [plain, now] });
  }

  list(filter: { state: EventRow['state']; session?: string; limit: number }): Promise<EventRow[]> {
    return this.#run('list', { op: 'list', args: [{ state: filter.state, session: filter.session, limit: filter.limit }] });
  }

  counts(): Promise<StoreCounts> {
    return this.#run('counts', { op: 'counts', args: [] });
  }

  cleanup(before: number): Promise<number> {
    return this.#run('cleanup', { op: 'cleanup', args: [before] });
  }

  async close(): Promise<void> {
    const link = this.#link;
    this.#link = undefined;
    this.#seqs.clear();
    if (link) this.#lastWrites = link.writes;
    try {
      await link?.close();
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
