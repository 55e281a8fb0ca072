import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';

/**
 * Journal checking for chaos tests over the sim instance runner (`wafleet-sim instance --journal ... --browser-processes`).
 *
 * The journal says when an instance launched a session (`start`, before the engine is up, with the pid of that run's
 * browser) and when it saw it down (`stop`). A killed or paused instance writes no stop, and its browsers may outlive
 * it, so the ground truth of "the session runs here" is the browser process itself: {@link BrowserWatch} polls every
 * journaled pid and records when it was first seen dead. A run then lasts from its journaled start until the earlier of
 * its stop and its browser's death; a run with neither never ends.
 */

/** One journal line of the sim runner. */
export interface JournalLine {
  /** Unix ms (the instance's clock; same machine as the test). */
  t: number;
  instance: string;
  session: string;
  event: 'start' | 'stop';
  epoch: string;
  /** The run's browser process (the newest engine's pid for the session at the time of the line). */
  pid?: number;
}

/** Reads a journal file incrementally (new complete lines on each call); several instances may append to it. */
export class JournalTail {
  readonly lines: JournalLine[] = [];
  #offset = 0;
  #partial = '';

  constructor(readonly path: string) {}

  /** Reads what was appended since the last call and returns the new lines. */
  poll(): JournalLine[] {
    if (!existsSync(this.path)) return [];
    const fd = openSync(this.path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size <= this.#offset) return [];
      const buf = Buffer.alloc(size - this.#offset);
      const n = readSync(fd, buf, 0, buf.length, this.#offset);
      this.#offset += n;
      const text = this.#partial + buf.subarray(0, n).toString('utf8');
      const parts = text.split('\n');
      this.#partial = parts.pop() ?? '';
      const fresh = parts.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as JournalLine);
      this.lines.push(...fresh);
      return fresh;
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * True when `pid` no longer runs: kill(pid, 0) fails with ESRCH, or /proc says it is a zombie (an orphaned or
 * paused-parent child that was killed but not yet reaped does not run any more).
 */
export function isProcessDead(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "<pid> (<comm>) <state> ...": comm may contain spaces and parentheses, the state follows the last ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    // No /proc entry any more (raced with the exit), or no /proc at all: trust kill(0).
    return !existsSync('/proc') ? false : !existsSync(`/proc/${pid}`);
  }
}

/**
 * Tails a journal and polls the liveness of every browser pid it names (and of any extra pid, e.g. the dead-man
 * watchdogs), recording the first time each one was seen dead. Death times are upper bounds: at most one poll
 * interval (plus event-loop lag of the test process) late, which can only make runs look longer, never shorter.
 */
export class BrowserWatch {
  readonly journal: JournalTail;
  /** pid -> unix ms at which it was first seen alive (or journaled). */
  readonly firstSeen = new Map<number, number>();
  /** pid -> unix ms at which it was first seen dead. */
  readonly deaths = new Map<number, number>();
  /** The pids named by the journal (browsers), as opposed to extra watched pids. */
  readonly browserPids = new Set<number>();
  /** Longest gap between two polls (ms): the resolution of the death times. */
  maxPollGapMs = 0;
  /** Unix ms at which the longest gap ended. */
  maxPollGapAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #lastPoll = 0;

  constructor(
    journalPath: string,
    readonly intervalMs = 20,
  ) {
    this.journal = new JournalTail(journalPath);
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.poll(), this.intervalMs);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Also watch this pid (e.g. a watchdog process). */
  watch(pid: number): void {
    if (!this.firstSeen.has(pid)) this.firstSeen.set(pid, Date.now());
  }

  /** One poll: new journal lines, then every pid not yet seen dead. */
  poll(): void {
    const now = Date.now();
    if (this.#lastPoll > 0 && now - this.#lastPoll > this.maxPollGapMs) {
      this.maxPollGapMs = now - this.#lastPoll;
      this.maxPollGapAt = now;
    }
    this.#lastPoll = now;
    for (const line of this.journal.poll()) {
      if (typeof line.pid !== 'number') continue;
      this.browserPids.add(line.pid);
      this.watch(line.pid);
    }
    for (const pid of this.firstSeen.keys()) {
      if (this.deaths.has(pid)) continue;
      if (isProcessDead(pid)) this.deaths.set(pid, Date.now());
    }
  }

  /** Journaled browser pids still running. */
  aliveBrowsers(): number[] {
    return [...this.browserPids].filter((pid) => !this.deaths.has(pid));
  }
}

/** One run of a session on an instance, as the journal and the browser's death tell it. */
export interface BrowserRun {
  session: string;
  instance: string;
  epoch: string;
  pid: number | undefined;
  start: number;
  /** min(journaled stop, browser death); +Infinity when neither happened. */
  end: number;
  /** What ended it. */
  endedBy: 'stop' | 'death' | 'never';
  stopAt: number | undefined;
  deathAt: number | undefined;
}

/** Something in the journal that does not add up (reported, not an overlap). */
export interface JournalAnomaly {
  kind: 'stop-without-start' | 'stop-pid-mismatch' | 'stop-before-death';
  line: JournalLine;
  detail: string;
}

/**
 * Turns journal lines into runs. Per (instance id, session) the runs are sequential; a stop closes the open start
 * with the stop's pid, else the oldest open start of that pair (a killed process never journals its stops, and its
 * successor with the same id journals its own). A run ends at min(stop, death of its browser), or never. A stop
 * journaled while its browser was still seen alive more than `slackMs` later (poll resolution) does not end the run:
 * the runner journals a stop only after the engine is down, so such a stop names the wrong run or lies; the run then
 * ends at its browser's death, and the line is reported as an anomaly.
 */
export function browserRuns(
  lines: readonly JournalLine[],
  deathOf: (pid: number) => number | undefined,
  slackMs = 250,
): { runs: BrowserRun[]; anomalies: JournalAnomaly[] } {
  const sorted = [...lines].sort((a, b) => a.t - b.t);
  const open = new Map<string, JournalLine[]>();
  const runs: BrowserRun[] = [];
  const anomalies: JournalAnomaly[] = [];
  const close = (s: JournalLine, stop: JournalLine | undefined): void => {
    const deathAt = s.pid === undefined ? undefined : deathOf(s.pid);
    let stopAt = stop?.t;
    if (stop && stopAt !== undefined && deathAt !== undefined && deathAt > stopAt + slackMs) {
      anomalies.push({
        kind: 'stop-before-death',
        line: stop,
        detail: `stop of ${s.session} on ${s.instance} journaled ${deathAt - stopAt} ms before its browser ${s.pid} was seen dead`,
      });
      stopAt = undefined;
    }
    const end = Math.min(stopAt ?? Infinity, deathAt ?? Infinity);
    const endedBy = end === Infinity ? 'never' : end === stopAt ? 'stop' : 'death';
    runs.push({ session: s.session, instance: s.instance, epoch: s.epoch, pid: s.pid, start: s.t, end, endedBy, stopAt: stop?.t, deathAt });
  };
  for (const e of sorted) {
    const key = `${e.instance}\u0000${e.session}`;
    const queue = open.get(key) ?? [];
    open.set(key, queue);
    if (e.event === 'start') {
      queue.push(e);
      continue;
    }
    let i = e.pid === undefined ? -1 : queue.findIndex((s) => s.pid === e.pid);
    if (i < 0 && queue.length > 0) {
      i = 0;
      if (e.pid !== undefined && queue[0]!.pid !== undefined) {
        anomalies.push({
          kind: 'stop-pid-mismatch',
          line: e,
          detail: `stop of ${e.session} on ${e.instance} names pid ${e.pid}, no open run has it; taken as the end of browser ${queue[0]!.pid}`,
        });
      }
    }
    if (i < 0) {
      anomalies.push({ kind: 'stop-without-start', line: e, detail: `stop of ${e.session} on ${e.instance} without an open start` });
      continue;
    }
    const [s] = queue.splice(i, 1);
    close(s!, e);
  }
  for (const queue of open.values()) for (const s of queue) close(s, undefined);
  return { runs: runs.sort((a, b) => a.start - b.start), anomalies };
}

/** Two runs of one session that overlap in time. */
export interface RunOverlap {
  session: string;
  a: BrowserRun;
  b: BrowserRun;
  from: number;
  to: number;
  /** to - from (Infinity when neither run ended). */
  ms: number;
}

/**
 * Pairs of runs of the same session that overlap in time: on different instances (G1), or with `sameInstance`,
 * two browsers of the session on one instance.
 */
export function runOverlaps(runs: readonly BrowserRun[], options: { sameInstance?: boolean } = {}): RunOverlap[] {
  const bySession = new Map<string, BrowserRun[]>();
  for (const r of runs) bySession.set(r.session, [...(bySession.get(r.session) ?? []), r]);
  const found: RunOverlap[] = [];
  for (const [session, list] of bySession) {
    list.sort((x, y) => x.start - y.start);
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        const a = list[i]!;
        const b = list[j]!;
        if ((a.instance === b.instance) !== (options.sameInstance ?? false)) continue;
        const from = Math.max(a.start, b.start);
        const to = Math.min(a.end, b.end);
        if (from < to) found.push({ session, a, b, from, to, ms: to - from });
      }
    }
  }
  return found.sort((x, y) => y.ms - x.ms);
}

/** Count, sessions, summed duration (ms) of the bounded ones, count of unbounded ones, and the worst of a list of overlaps. */
export function overlapStats(list: readonly RunOverlap[]): {
  count: number;
  sessions: number;
  totalMs: number;
  unbounded: number;
  worst: RunOverlap | undefined;
} {
  const bounded = list.filter((o) => o.ms !== Infinity);
  return {
    count: list.length,
    sessions: new Set(list.map((o) => o.session)).size,
    totalMs: bounded.reduce((sum, o) => sum + o.ms, 0),
    unbounded: list.length - bounded.length,
    worst: list.reduce<RunOverlap | undefined>((w, o) => (w === undefined || o.ms > w.ms ? o : w), undefined),
  };
}

const fmtRun = (r: BrowserRun, t0: number): string => {
  const end = r.end === Infinity ? 'never' : `+${r.end - t0} ms (${r.endedBy})`;
  return `${r.instance} pid ${r.pid ?? '?'} epoch ${r.epoch} [+${r.start - t0} ms .. ${end}]`;
};

/** A one-line description of an overlap, times relative to `t0`. */
export function describeOverlap(o: RunOverlap, t0: number): string {
  return `${o.session}: ${o.ms === Infinity ? 'unbounded' : `${o.ms} ms`} overlap; ${fmtRun(o.a, t0)} vs ${fmtRun(o.b, t0)}`;
}

/** A process found by {@link taggedProcesses}. */
export interface TaggedProcess {
  pid: number;
  /** argv joined with spaces. */
  cmdline: string;
}

/**
 * Processes of this user whose environment contains `NAME=value` (children inherit it, so tagging the instances
 * finds their browsers and watchdogs too, journaled or not, after they were re-parented). Linux only; [] elsewhere.
 */
export function taggedProcesses(name: string, value: string): TaggedProcess[] {
  if (!existsSync('/proc')) return [];
  const needle = `${name}=${value}`;
  const found: TaggedProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (!env.includes(needle)) continue;
      if (isProcessDead(pid)) continue;
      found.push({ pid, cmdline: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ') });
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

/** SIGKILLs a process and its process group (the sim's browsers are detached group leaders); ignores the gone. */
export function killTree(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // Not a group leader, or already gone.
    }
  }
}

/** Median of a list of numbers (NaN when empty). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
