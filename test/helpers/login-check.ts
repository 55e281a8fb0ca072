import { existsSync, readFileSync } from 'node:fs';

/**
 * Checks of the login journal the sim runner writes with `--login-journal` (G9: session data follows the session).
 *
 * Every restore and every committed save is a line; a save is journaled right after its commit was acknowledged, a
 * restore right after it read the store (with the time it began). Lines of killed or paused processes may come late
 * or never, so every check only uses orderings the journal proves: a save journaled before a restore began was
 * committed before it.
 */

/** One line of `--login-journal`. */
export interface LoginLine {
  t: number;
  instance: string;
  session: string;
  ev: 'restore' | 'save' | 'save-refused' | 'save-failed' | 'restore-failed';
  epoch: string;
  version: number | null;
  writer?: string;
  writerEpoch?: string;
  startedAt?: number;
  reason?: string;
  code?: string;
  ms?: number;
}

export function readLoginJournal(path: string): LoginLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LoginLine);
}

/** What the login journal shows. */
export interface LoginReport {
  restores: number;
  restoreFailures: number;
  /** Restores that found the committed version's bytes missing or damaged (WAFLEET_DATA_CORRUPT): a login lost. */
  corruptRestores: string[];
  /** Saves committed, by reason (seed, ready, interval, handoff). */
  saves: Record<string, number>;
  /** Saves the store refused at commit (the writer no longer owned the session at its epoch). */
  refused: number;
  /** Saves that failed otherwise (store unreachable): the previous version stayed. */
  failedSaves: number;
  /** Launches that found no committed login although one had been committed in the same era: SCAN_QR_CODE by a fault. */
  qrByFault: string[];
  /** Launches that found no login because Redis had restarted empty since the last commit (counted apart). */
  qrAfterDataLoss: number;
  /** Restores that got an older version than one journaled as committed before the restore began. */
  olderThanCommitted: string[];
  /** Restores whose version is lower than that of a restore that finished before it began. */
  nonMonotonic: string[];
  /** Committed versions whose writer's epoch is older than that of a lower version (a stale save became visible). */
  staleCommits: string[];
  /** Restored bytes written by someone else than the journaled save of that version. */
  wrongBytes: string[];
  /** Highest committed version per session (over all eras): min, median, max. */
  maxVersion: { min: number; median: number; max: number };
  /** Median restore and save time (ms). */
  restoreMs: number;
  saveMs: number;
}

const median = (xs: number[]): number => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/** A Redis restart that lost every key: from when it was killed until it answered again (unix ms). */
export interface DataLoss {
  from: number;
  to: number;
}

/**
 * A line journaled this soon after an empty Redis restart may still be the reply of a command the old server ran: an
 * instance on a loaded box handles a commit's reply (and journals it) some time after Redis sent it.
 */
const ERA_GRACE_MS = 1000;

/**
 * Analyses the journal. `losses`: Redis restarts that lost all data (the committed pointers included); each starts a
 * new era of versions, and the checks compare lines of one era only. Lines journaled during a loss or within
 * ERA_GRACE_MS after it belong to no era (it is unknown which server they reached) and are left out of the checks.
 */
export function checkLogins(lines: readonly LoginLine[], losses: readonly DataLoss[]): LoginReport {
  const sorted = [...losses].sort((a, b) => a.from - b.from);
  /** Era number, or -1 when the line may belong to either side of a loss. */
  const eraOf = (t: number) =>
    sorted.some((l) => t >= l.from && t <= l.to + ERA_GRACE_MS) ? -1 : sorted.filter((l) => l.from <= t).length;
  const bySession = new Map<string, LoginLine[]>();
  for (const l of lines) bySession.set(l.session, [...(bySession.get(l.session) ?? []), l]);
  const r: LoginReport = {
    restores: 0,
    restoreFailures: 0,
    corruptRestores: [],
    saves: {},
    refused: 0,
    failedSaves: 0,
    qrByFault: [],
    qrAfterDataLoss: 0,
    olderThanCommitted: [],
    nonMonotonic: [],
    staleCommits: [],
    wrongBytes: [],
    maxVersion: { min: 0, median: 0, max: 0 },
    restoreMs: median(lines.filter((l) => l.ev === 'restore' && l.version !== null).map((l) => l.ms ?? 0)),
    saveMs: median(lines.filter((l) => l.ev === 'save' && l.reason !== 'seed').map((l) => l.ms ?? 0)),
  };
  const maxima: number[] = [];
  for (const [sid, all] of bySession) {
    const saves = all.filter((l) => l.ev === 'save');
    const restores = all.filter((l) => l.ev === 'restore').sort((a, b) => a.t - b.t);
    r.refused += all.filter((l) => l.ev === 'save-refused').length;
    r.failedSaves += all.filter((l) => l.ev === 'save-failed').length;
    r.restoreFailures += all.filter((l) => l.ev === 'restore-failed').length;
    for (const l of all)
      if (l.ev === 'restore-failed' && l.code === 'WAFLEET_DATA_CORRUPT') r.corruptRestores.push(`${l.session} on ${l.instance} at ${l.t}`);
    for (const s of saves) r.saves[s.reason ?? '?'] = (r.saves[s.reason ?? '?'] ?? 0) + 1;
    maxima.push(Math.max(0, ...saves.map((s) => s.version ?? 0)));

    // Within an era, a higher version never carries an older epoch, and no version is committed twice.
    const eras = new Map<number, LoginLine[]>();
    for (const s of saves) eras.set(eraOf(s.t), [...(eras.get(eraOf(s.t)) ?? []), s]);
    eras.delete(-1);
    for (const [era, list] of eras) {
      const sorted = [...list].sort((a, b) => a.version! - b.version!);
      for (let i = 1; i < sorted.length; i++) {
        const [a, b] = [sorted[i - 1]!, sorted[i]!];
        if (a.version === b.version)
          r.staleCommits.push(
            `${sid} era ${era}: version ${a.version} committed twice (${a.instance}@${a.epoch}, ${b.instance}@${b.epoch})`,
          );
        else if (BigInt(b.epoch) < BigInt(a.epoch))
          r.staleCommits.push(
            `${sid} era ${era}: version ${b.version} by ${b.instance}@${b.epoch} is newer than ${a.version} by ${a.instance}@${a.epoch}`,
          );
      }
    }

    for (const x of restores) {
      r.restores += x.version === null ? 0 : 1;
      const began = x.startedAt ?? x.t;
      const era = eraOf(x.t);
      if (era < 0) {
        if (x.version === null) r.qrAfterDataLoss++;
        continue;
      }
      const before = saves.filter((s) => eraOf(s.t) === era && s.t < began);
      const newest = Math.max(0, ...before.map((s) => s.version!));
      if (x.version === null) {
        if (before.length > 0)
          r.qrByFault.push(`${sid} on ${x.instance}@${x.epoch} at ${x.t}: no login, though version ${newest} was committed before`);
        else r.qrAfterDataLoss++;
        continue;
      }
      if (x.version < newest)
        r.olderThanCommitted.push(`${sid} on ${x.instance}@${x.epoch}: restored ${x.version}, ${newest} committed before`);
      const seen = restores.filter((y) => y !== x && y.version !== null && y.t < began && eraOf(y.t) === era);
      const highest = Math.max(0, ...seen.map((y) => y.version!));
      if (x.version < highest)
        r.nonMonotonic.push(`${sid} on ${x.instance}@${x.epoch}: restored ${x.version} after a restore of ${highest}`);
      const source = saves.find((s) => eraOf(s.t) === era && s.version === x.version);
      if (source && (source.instance !== x.writer || source.epoch !== x.writerEpoch))
        r.wrongBytes.push(
          `${sid} version ${x.version}: restored bytes of ${x.writer}@${x.writerEpoch}, committed by ${source.instance}@${source.epoch}`,
        );
    }
  }
  r.maxVersion = { min: Math.min(...maxima), median: median(maxima), max: Math.max(...maxima) };
  return r;
}
