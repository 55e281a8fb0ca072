import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';

/** A child process spawned by this package, with the state cleanup needs. */
export interface TrackedProcess {
  readonly child: ChildProcess;
  /** Set while SIGSTOPped, so cleanup knows to SIGCONT before killing. */
  paused: boolean;
}

/** Anything with an ioredis-style synchronous `disconnect()`. */
interface Disconnectable {
  disconnect(): void;
}

const processes = new Set<TrackedProcess>();
const tempDirs = new Set<string>();
const clients = new Set<Disconnectable>();
let hooksInstalled = false;

/** Registers a child so {@link killAll} and the exit hook can reap it. */
export function trackProcess(child: ChildProcess): TrackedProcess {
  installHooks();
  const tracked: TrackedProcess = { child, paused: false };
  if (hasExited(child)) return tracked;
  processes.add(tracked);
  child.once('exit', () => processes.delete(tracked));
  child.once('error', () => {
    if (hasExited(child)) processes.delete(tracked);
  });
  return tracked;
}

/** Registers a temporary directory to delete on {@link killAll} / process exit. */
export function trackTempDir(dir: string): void {
  installHooks();
  tempDirs.add(dir);
}

/** Deletes a tracked temporary directory now and forgets it. */
export async function removeTempDir(dir: string): Promise<void> {
  tempDirs.delete(dir);
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Registers a Redis client to disconnect on {@link killAll}. */
export function trackClient(client: Disconnectable): void {
  clients.add(client);
}

/** Disconnects a tracked client now and forgets it. */
export function closeClient(client: Disconnectable): void {
  clients.delete(client);
  client.disconnect();
}

/** True once the child has exited or never started (spawn error). */
export function hasExited(child: ChildProcess): boolean {
  return child.pid === undefined || child.exitCode !== null || child.signalCode !== null;
}

/**
 * Resolves `true` when the child has exited, `false` if it is still running
 * after `timeoutMs`.
 */
export function waitForExit(child: ChildProcess, timeoutMs = 10_000): Promise<boolean> {
  if (hasExited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(hasExited(child));
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/**
 * Sends `signal`, resuming the process first if it is stopped, because a
 * SIGSTOPped process would otherwise sit on a SIGTERM until continued.
 */
export function signalProcess(tracked: TrackedProcess, signal: NodeJS.Signals): void {
  const { child } = tracked;
  if (hasExited(child)) return;
  if (signal === 'SIGSTOP') {
    child.kill('SIGSTOP');
    tracked.paused = true;
    return;
  }
  if (signal === 'SIGCONT') {
    child.kill('SIGCONT');
    tracked.paused = false;
    return;
  }
  child.kill(signal);
  if (tracked.paused && signal !== 'SIGKILL') child.kill('SIGCONT');
  tracked.paused = false;
}

/**
 * SIGKILLs every process this package spawned (SIGCONT first if paused),
 * disconnects the Redis clients it created and deletes its temporary
 * directories. Safe to call repeatedly, e.g. from a global `afterAll`.
 */
export async function killAll(): Promise<void> {
  for (const client of [...clients]) closeClient(client);
  const children = [...processes];
  for (const tracked of children) signalProcess(tracked, 'SIGKILL');
  await Promise.all(children.map((t) => waitForExit(t.child, 5_000)));
  await Promise.all([...tempDirs].map((dir) => removeTempDir(dir)));
}

/** Synchronous variant for `exit` / signal hooks, where nothing async runs. */
function killAllSync(): void {
  for (const tracked of processes) {
    try {
      if (tracked.paused) tracked.child.kill('SIGCONT');
      tracked.child.kill('SIGKILL');
    } catch {
      // Best effort: the process may already be gone.
    }
  }
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Best effort: never turn a cleanup problem into a crash at exit.
    }
  }
}

const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // A crashed or interrupted test run must not leave redis-servers behind;
  // 'exit' covers normal exits and process.exit(), the signal handlers cover
  // runners that terminate their workers with a signal ('exit' never fires then).
  process.on('exit', killAllSync);
  for (const signal of FORWARDED_SIGNALS) {
    const onSignal = (): void => {
      killAllSync();
      // If we were the only listener, installing one suppressed the default
      // "terminate" action, so restore it and re-raise.
      if (process.listenerCount(signal) === 1) {
        process.off(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}
