/** Engine runs of sessions across in-process hosts, from their supervisors' `onEngine` callbacks. */
export type EngineRuns = Array<{ sessionId: string; host: string; start: number; stop: number | undefined }>;

/** An `onEngine` callback journaling the runs of `host` into `runs` (a start before the engine is up, a stop after). */
export function recordRuns(runs: EngineRuns, host: string) {
  return ({ event, sessionId }: { event: 'start' | 'stop'; sessionId: string }): void => {
    if (event === 'start') runs.push({ sessionId, host, start: Date.now(), stop: undefined });
    else {
      const run = runs.find((r) => r.sessionId === sessionId && r.host === host && r.stop === undefined);
      if (run) run.stop = Date.now();
    }
  };
}

/** Runs of one session that overlap in time on two hosts (G1 says: none). */
export function runOverlaps(runs: EngineRuns): string[] {
  const found: string[] = [];
  for (const a of runs)
    for (const b of runs) {
      if (a === b || a.sessionId !== b.sessionId || a.host >= b.host) continue;
      if (a.start < (b.stop ?? Infinity) && b.start < (a.stop ?? Infinity)) found.push(`${a.sessionId}: ${a.host} and ${b.host}`);
    }
  return found;
}
