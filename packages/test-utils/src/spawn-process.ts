import { spawn } from 'node:child_process';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { hasExited, signalProcess, trackProcess } from './process-registry.js';

/** Options for {@link spawnProcess}. */
export interface SpawnProcessOptions {
  /**
   * Environment overrides merged over `process.env`; a key set to
   * `undefined` is removed from the child's environment.
   */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Label used in error messages (default: the command's basename). */
  name?: string;
}

/** How a child ended, as reported by its `exit` event. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A child process started by {@link spawnProcess}. */
export interface ChildHandle {
  readonly pid: number;
  readonly name: string;
  /** Every stdout line so far, in order. */
  readonly lines: string[];
  /** The stdout lines that parsed as JSON objects, in order. */
  readonly messages: Array<Record<string, unknown>>;
  /** Everything written to stderr so far. */
  stderr(): string;
  /**
   * Resolves with the first message (already received or arriving later)
   * that satisfies `predicate`. Rejects after `timeoutMs` (default 15000), or
   * as soon as the process has exited without a match, with an error that
   * names the process and shows its last 20 stdout/stderr lines.
   */
  waitFor<T = Record<string, unknown>>(predicate: (msg: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<T>;
  /** Writes `JSON.stringify(obj)` and a newline to stdin. Throws if the process is gone. */
  send(obj: unknown): void;
  /**
   * Sends `signal` (default SIGKILL) and waits for the exit, except for
   * SIGSTOP/SIGCONT which return immediately.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Settles when the process exits; never rejects. */
  readonly exited: Promise<ChildExit>;
  alive(): boolean;
}

const TAIL_LINES = 20;
const KEPT_TAIL = 200;
const KILL_WAIT_MS = 30_000;

/**
 * Spawns `command` with piped stdio for tests that drive a worker process
 * over JSON lines: stdout is split into lines, JSON-object lines are
 * collected as messages, stdin takes JSON via `send()`. The process is
 * registered so `killAll()` and the exit hook reap it.
 */
export function spawnProcess(command: string, args: string[], opts: SpawnProcessOptions = {}): ChildHandle {
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: mergeEnv(opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const name = opts.name ?? basename(command);
  // Without a listener a failed spawn or a write to a dead child's stdin
  // would be an uncaught 'error' and take the whole test worker down.
  child.on('error', () => {});
  child.stdin.on('error', () => {});
  if (child.pid === undefined) {
    throw new Error(`spawnProcess(${name}): could not start ${command} (is it installed and on PATH?)`);
  }
  const pid = child.pid;
  const tracked = trackProcess(child);

  const lines: string[] = [];
  const messages: Array<Record<string, unknown>> = [];
  const tail: string[] = [];
  let stderrText = '';
  const listeners = new Set<(msg: Record<string, unknown>) => void>();
  const closeListeners = new Set<() => void>();
  let closed = false;

  const remember = (line: string): void => {
    tail.push(line);
    if (tail.length > KEPT_TAIL) tail.splice(0, tail.length - KEPT_TAIL);
  };

  createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
    lines.push(line);
    remember(`[stdout] ${line}`);
    const msg = parseObject(line);
    if (!msg) return;
    messages.push(msg);
    for (const listener of [...listeners]) listener(msg);
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderrText += chunk;
  });
  createInterface({ input: child.stderr, crlfDelay: Infinity }).on('line', (line) => remember(`[stderr] ${line}`));

  const exited = new Promise<ChildExit>((resolve) => {
    if (hasExited(child)) resolve({ code: child.exitCode, signal: child.signalCode });
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  // 'close' (not 'exit') means stdout is drained, so no message can still arrive.
  child.once('close', () => {
    closed = true;
    for (const listener of [...closeListeners]) listener();
  });

  const describeTail = (): string => {
    const last = tail.slice(-TAIL_LINES);
    return last.length ? `last ${last.length} output lines:\n${last.join('\n')}` : '(no output)';
  };

  return {
    pid,
    name,
    lines,
    messages,
    exited,
    stderr: () => stderrText,
    alive: () => !hasExited(child),

    waitFor<T = Record<string, unknown>>(predicate: (msg: Record<string, unknown>) => boolean, timeoutMs = 15_000): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        try {
          const seen = messages.find((m) => predicate(m));
          if (seen) return resolve(seen as T);
        } catch (err) {
          return reject(err);
        }
        const done = (): void => {
          clearTimeout(timer);
          listeners.delete(onMessage);
          closeListeners.delete(onClose);
        };
        const onMessage = (msg: Record<string, unknown>): void => {
          let matched: boolean;
          try {
            matched = predicate(msg);
          } catch (err) {
            done();
            return reject(err);
          }
          if (!matched) return;
          done();
          resolve(msg as T);
        };
        const onClose = (): void => {
          done();
          const how = `code ${child.exitCode}, signal ${child.signalCode}`;
          reject(new Error(`${name} (pid ${pid}) exited (${how}) before a matching message arrived\n${describeTail()}`));
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name} (pid ${pid}): no matching message within ${timeoutMs} ms\n${describeTail()}`));
        }, timeoutMs);
        listeners.add(onMessage);
        if (closed) onClose();
        else closeListeners.add(onClose);
      });
    },

    send(obj: unknown): void {
      if (hasExited(child) || !child.stdin.writable) {
        throw new Error(`${name} (pid ${pid}): cannot send, the process has exited or closed stdin`);
      }
      child.stdin.write(`${JSON.stringify(obj)}\n`);
    },

    async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
      if (hasExited(child)) return;
      signalProcess(tracked, signal);
      if (signal === 'SIGSTOP' || signal === 'SIGCONT') return;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), KILL_WAIT_MS);
      });
      const result = await Promise.race([exited, timeout]).finally(() => clearTimeout(timer));
      if (result === 'timeout') {
        throw new Error(`${name} (pid ${pid}) did not exit within ${KILL_WAIT_MS} ms of ${signal}`);
      }
    },
  };
}

function mergeEnv(overrides: Record<string, string | undefined> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(overrides ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

function parseObject(line: string): Record<string, unknown> | undefined {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(trimmed);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
