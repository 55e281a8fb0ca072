/**
 * The dead-man switch's watchdog: the program `startDeadmanSwitch()` runs as a separate, detached Node process.
 *
 * Browsers outlive the instance that launched them: after kill -9, SIGSTOP or a blocked event loop of the instance,
 * Chromium stays connected to WhatsApp, and once another instance adopts the session it runs twice and the phone is
 * logged out. This process kills the tracked browsers when the instance stops refreshing its deadline or dies.
 *
 * Protocol, one JSON object per line on stdin:
 * - `{"t":"deadline","inMs":N}`: fire unless a newer deadline arrives within N ms (this process's monotonic clock).
 * - `{"t":"track","id":"<session>","pids":[...]}`: the processes to kill for a session (replaces earlier ones).
 * - `{"t":"untrack","id":"<session>"}`: forget a session's processes.
 * - `{"t":"close"}`: exit without killing anything.
 *
 * On stdout it writes `{"t":"ready","pid":N}` once it reads commands, and `{"t":"fired","reason":...,"killed":[...]}`
 * after it fired, just before it exits. It fires on the deadline, and when stdin ends or fails: only the instance
 * holds the other end of that pipe, so end-of-file means the instance is gone.
 *
 * It imports nothing but Node's globals: it must start fast and stay small, one per instance.
 * @module
 */

/** Longest delay `setTimeout` takes; longer deadlines are waited for in steps. */
const MAX_TIMER_MS = 2_147_483_647;
/** A line longer than this is no command of ours; dropping it bounds memory if the pipe carries garbage. */
const MAX_LINE_CHARS = 1 << 20;

const tracked = new Map<string, number[]>();
/** `performance.now()` at which to fire; undefined until the first deadline, so a fresh watchdog never fires on a timer. */
let deadlineAt: number | undefined;
let timer: ReturnType<typeof setTimeout> | undefined;
let finished = false;
let buffered = '';

function isPid(value: unknown): value is number {
  // 0, 1 and negative numbers would address our own group, init, or every process (-1): never signal those.
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 1 && value !== process.pid;
}

function arm(): void {
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  if (deadlineAt === undefined || finished) return;
  const remaining = deadlineAt - performance.now();
  if (remaining <= 0) {
    fire('deadline');
    return;
  }
  // Re-checked against performance.now() on expiry: a timer may run a fraction of a millisecond early.
  // Left ref'd: this timer is the reason the process exists.
  timer = setTimeout(arm, Math.min(Math.ceil(remaining), MAX_TIMER_MS));
}

function handle(line: string): void {
  let cmd: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (parsed === null || typeof parsed !== 'object') return;
    cmd = parsed as Record<string, unknown>;
  } catch {
    return;
  }
  switch (cmd['t']) {
    case 'deadline': {
      const inMs = cmd['inMs'];
      if (typeof inMs !== 'number' || Number.isNaN(inMs)) return;
      deadlineAt = performance.now() + Math.max(0, inMs);
      arm();
      return;
    }
    case 'track': {
      const id = cmd['id'];
      const pids = cmd['pids'];
      if (typeof id !== 'string' || !Array.isArray(pids)) return;
      tracked.set(id, pids.filter(isPid));
      return;
    }
    case 'untrack':
      if (typeof cmd['id'] === 'string') tracked.delete(cmd['id']);
      return;
    case 'close':
      finish(undefined);
      return;
    default:
      return;
  }
}

function onData(chunk: string): void {
  if (finished) return;
  buffered += chunk;
  let nl: number;
  while (!finished && (nl = buffered.indexOf('\n')) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    if (line.trim() !== '') handle(line);
  }
  if (buffered.length > MAX_LINE_CHARS) buffered = '';
}

function killOne(pid: number): boolean {
  let signalled = false;
  // Puppeteer launches Chromium detached, as the leader of its own process group: signalling the group takes the
  // zygote and renderers too, even those that have been re-parented after the main process died.
  try {
    process.kill(-pid, 'SIGKILL');
    signalled = true;
  } catch {
    // Not a group leader, or the group is gone.
  }
  try {
    process.kill(pid, 'SIGKILL');
    signalled = true;
  } catch {
    // Already gone.
  }
  return signalled;
}

function fire(reason: 'deadline' | 'parent-gone'): void {
  if (finished) return;
  const pids = [...new Set([...tracked.values()].flat())];
  // Kill before anything else: writing to a stopped instance's pipe is the one step here that could stall.
  const killed = pids.filter(killOne);
  finish(`${JSON.stringify({ t: 'fired', reason, killed })}\n`);
}

function finish(line: string | undefined): void {
  if (finished) return;
  finished = true;
  if (timer !== undefined) clearTimeout(timer);
  process.stdin.pause();
  const exit = (): never => process.exit(0);
  if (line === undefined || !process.stdout.writable) return exit();
  // A safety net only: with nobody reading, the callback might never come.
  setTimeout(exit, 1_000);
  try {
    process.stdout.write(line, () => exit());
  } catch {
    exit();
  }
}

// Without these listeners EPIPE on a vanished instance's pipe would be an uncaught exception.
process.stdout.on('error', () => {
  if (finished) process.exit(0);
});
process.stdin.setEncoding('utf8');
process.stdin.on('data', onData);
process.stdin.on('end', () => fire('parent-gone'));
process.stdin.on('error', () => fire('parent-gone'));
process.stdin.on('close', () => fire('parent-gone'));
process.stdout.write(`${JSON.stringify({ t: 'ready', pid: process.pid })}\n`);
