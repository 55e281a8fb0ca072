import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { SqliteEngine, serializeError, type CommitMode, type Reply, type Request } from './sqlite-ops.js';

/**
 * The outbox store's worker thread: owns the SQLite connection, so commits and their fsyncs never block the event
 * loop the instance shares with its WhatsApp sockets. Requests queue on the port while a commit runs; the next
 * commit takes all of them (group commit, without any added delay).
 */

interface Data {
  port: MessagePort;
  path: string;
  commit: CommitMode;
}

/** A message from the store: requests numbered in order (the reply carries the first number). */
export interface WorkerRequests {
  first: number;
  requests: Request[];
}

export interface WorkerReplies {
  first: number;
  replies: Reply[];
  /** The engine's write counts so far. */
  writes: SqliteEngine['writes'];
}

const { port, path, commit } = workerData as Data;
let engine: SqliteEngine | undefined;
try {
  engine = SqliteEngine.open(path);
  port.postMessage({ opened: true });
} catch (err) {
  port.postMessage({ opened: false, error: serializeError(err) });
  port.close();
}

const queue: WorkerRequests[] = [];
let closing = false;

function take(message: WorkerRequests | 'close'): void {
  if (message === 'close') closing = true;
  else queue.push(message);
}

function drain(): void {
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) take(m.message as WorkerRequests | 'close');
}

function run(e: SqliteEngine): void {
  drain();
  while (queue.length > 0) {
    const batch = queue.splice(0);
    const replies = e.runBatch(
      batch.flatMap((b) => b.requests),
      commit,
    );
    let at = 0;
    for (const b of batch) {
      port.postMessage({ first: b.first, replies: replies.slice(at, at + b.requests.length), writes: e.writes } satisfies WorkerReplies);
      at += b.requests.length;
    }
    // What arrived during that commit goes in the next one.
    drain();
  }
  if (!closing) return;
  let error: ReturnType<typeof serializeError> | undefined;
  try {
    e.close();
  } catch (err) {
    error = serializeError(err);
  }
  port.postMessage({ closed: true, error });
  port.close();
}

if (engine) {
  const e = engine;
  port.on('message', (message: WorkerRequests | 'close') => {
    take(message);
    run(e);
  });
}
